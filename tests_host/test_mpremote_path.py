"""The serial test path, as on a real board: tests_device run through mpremote.

tools/replrelay.py puts the unix port's REPL on a pty and relays it to a TCP port; the
test then runs exactly what a user runs against /dev/ttyUSB0, with ``socket://`` for the
port and ``resume`` (a soft reset ends the unix port; toolchain-facts s.5):

    mpremote connect socket://127.0.0.1:PORT resume mount . \\
        exec "TESTS=['seqno', ...]" run tests_device/run_mpremote.py

and asserts the runner's ``N passed, 0 failed`` line.  The subset is small because every
file the device reads over ``mount`` costs serial round trips (~50 ms each with
mpremote's polling): a board pays the same.
"""

import os
import re

from relayfix import MPREMOTE, relay

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUBSET = ["seqno"]  # quick over the mount (~6 s): tlog.seqno + tlog.fsutil from firmware/
RESULT = re.compile(r"^(\d+) passed, (\d+) failed", re.M)


def _mpremote(url, *args, timeout=150.0):
    import subprocess

    return subprocess.run([MPREMOTE, "connect", url, "resume"] + list(args), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_tests_device_subset_over_mpremote_mount(tmp_path):
    with relay(tmp_path) as url:
        r = _mpremote(url, "mount", ".", "exec", "TESTS=%r" % SUBSET,
                      "run", "tests_device/run_mpremote.py")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "mounted at /remote" in out, out
    m = RESULT.search(r.stdout)
    assert m is not None, out
    passed, failed = int(m.group(1)), int(m.group(2))
    assert failed == 0 and passed >= 2, out
    for name in SUBSET:  # every chosen module ran (found under /remote/tests_device)
        assert "test_%s_device." % name in r.stdout, out
    assert "FAIL" not in r.stdout, out


def test_run_mpremote_says_when_not_mounted(tmp_path):
    """Run without ``mount .``: a clear message instead of an ImportError."""
    with relay(tmp_path) as url:
        r = _mpremote(url, "run", "tests_device/run_mpremote.py", timeout=60)
    assert "use 'mpremote mount .' from the repository root" in r.stdout, r.stdout + r.stderr
    assert not RESULT.search(r.stdout)
