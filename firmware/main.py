"""Board entry point: runs the telelogger application (firmware/tlog/app.py)."""

import tlog.app

tlog.app.run()
