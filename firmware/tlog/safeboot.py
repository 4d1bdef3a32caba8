"""The last resort of an unattended board: the app dies, the board restarts (not the REPL).

Owns ``run()``, what firmware/main.py calls.  A config that fails already boots on
the last good one (tlog.lastgood); if the app still ends with an exception on the
ESP32, the traceback is printed and the board resets after a pause (Ctrl-C in that
pause leaves you at the REPL) instead of waiting for someone with a USB cable.  On
the unix port the exception propagates (tests and users see it).
"""

_PAUSE_S = 30


def run():
    from . import app

    try:
        app.run()
    except Exception as e:  # noqa: BLE001 - nothing above this catches anything
        from . import platform

        if not platform.IS_ESP32:
            raise
        import sys
        import time

        sys.print_exception(e)  # type: ignore[attr-defined]
        print("[tlog] crashed: restarting in %d s (Ctrl-C for the REPL)" % _PAUSE_S)
        time.sleep(_PAUSE_S)
        platform.reset()
