"""Board entry point: runs the telelogger application (firmware/tlog/app.py).

Unbrickable: a config that fails boots on the last good one (tlog.lastgood); if the
app still dies, the board says why and restarts after a pause (Ctrl-C in that pause
leaves you at the REPL) instead of sitting at the REPL until someone brings a cable.
"""

import tlog.app

try:
    tlog.app.run()
except Exception as e:  # noqa: BLE001 - last resort of an unattended board
    from tlog import platform

    if not platform.IS_ESP32:
        raise
    import sys
    import time

    sys.print_exception(e)  # type: ignore[attr-defined]
    print("[tlog] crashed: restarting in 30 s (Ctrl-C for the REPL)")
    time.sleep(30)
    platform.reset()
