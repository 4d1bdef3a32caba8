"""Board entry point: the telelogger (tlog.app), restarted by tlog.safeboot if it dies.

Should even ``tlog.safeboot`` fail to import (a broken update), the ESP32 still
resets instead of sitting at the REPL: at once while an OTA update is on
probation, so boot.py counts the crash and rolls back after ``ota_max_boots``
of them (issue 15), else after a pause (Ctrl-C in it leaves you at the REPL).
The unix port raises (its launcher is the "reset").
"""

try:
    import tlog.safeboot

    tlog.safeboot.run()
except Exception as e:
    import sys

    if sys.platform == "esp32":
        import os
        import time

        import machine  # type: ignore

        try:
            os.stat("/ota/probation")
            on_probation = True
        except OSError:
            on_probation = False
        sys.print_exception(e)  # type: ignore
        if not on_probation:
            time.sleep(30)
        machine.reset()
    raise
