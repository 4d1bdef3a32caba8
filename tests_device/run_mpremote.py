"""Runs tests_device on a board (or the unix port behind tools/replrelay.py) through mpremote.

    mpremote connect /dev/ttyUSB0 mount . run tests_device/run_mpremote.py
    mpremote connect /dev/ttyUSB0 mount . exec "TESTS=['engine']" run tests_device/run_mpremote.py
    mpremote connect socket://127.0.0.1:PORT resume mount . run tests_device/run_mpremote.py

Owns one job: ``mpremote run`` sends this file's text to the REPL, so there is no
``__file__`` and ``sys.argv`` is the REPL's.  ``mount .`` makes the host's repository
the device's working directory (``/remote``); this puts its ``tests_device``, ``lib``
and ``firmware`` on ``sys.path`` right after ``.frozen`` (ahead of a deployed ``/lib``, so
the code under test is the host's), then runs ``run.main`` with the name filters in
``TESTS`` (a list set by an ``exec`` before ``run``; absent: every test).  Prints the
runner's ``N passed, N failed`` line.
"""

import os
import sys


def _paths(root):
    # Every import probes each path entry in turn, and each probe of the mounted folder is a
    # round trip over the serial line (~50 ms with mpremote): built-in and frozen modules
    # first, then the three folders, then the rest ("" is /remote itself: dropped).
    ours = [root + "/tests_device", root + "/lib", root + "/firmware"]
    rest = [p for p in sys.path if p not in ours and p not in ("", ".frozen")]
    sys.path[:] = [".frozen"] + ours + rest


def _main():
    root = os.getcwd()  # /remote under ``mpremote mount .``
    try:
        os.stat(root + "/tests_device/run.py")
    except OSError:
        print("run_mpremote: no tests_device/run.py under %s: use 'mpremote mount .' from the "
              "repository root" % root)
        return 2
    _paths(root)
    import run  # tests_device/run.py

    filters = globals().get("TESTS") or []
    if isinstance(filters, str):
        filters = [filters]
    return run.main(list(filters))


_main()
