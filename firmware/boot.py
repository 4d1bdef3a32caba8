"""Runs before main.py on the ESP32: nothing but a clean heap for the app.

The app configures its own UARTs, pins and watchdog (tlog.platform); keeping
boot.py trivial means a bad config can never stop the REPL from coming up.
"""

import gc

gc.collect()
