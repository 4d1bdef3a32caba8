"""Board entry point: the telelogger (tlog.app), restarted by tlog.safeboot if it dies."""

import tlog.safeboot

tlog.safeboot.run()
