"""Board entry point: runs the telelogger application (firmware/tlog/app.py).

An exception out of the app while an OTA update is on probation resets the
ESP32, so boot.py counts the crash and rolls back after ``ota_max_boots`` of
them (issue 15); without the reset the board would sit at the REPL running the
broken version.  (The unix port exits; its launcher is the "reset".)
"""

try:
    import tlog.app

    tlog.app.run()
except Exception as e:
    import os
    import sys

    if sys.platform == "esp32":
        try:
            os.stat("/ota/probation")
            on_probation = True
        except OSError:
            on_probation = False
        if on_probation:
            sys.print_exception(e)  # type: ignore
            import machine  # type: ignore

            machine.reset()
    raise
