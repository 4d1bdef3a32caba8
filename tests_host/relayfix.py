"""Start tools/replrelay.py (MicroPython unix REPL on a TCP port) for a test, bounded.

``with relay(flash_dir) as url:`` yields ``socket://127.0.0.1:PORT``; on exit the
relay gets SIGTERM (it stops its micropython child) and is waited for.
"""

import contextlib
import os
import selectors
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELAY = os.path.join(ROOT, "tools", "replrelay.py")
MPREMOTE = os.path.join(ROOT, ".venv", "bin", "mpremote")


@contextlib.contextmanager
def relay(flash_dir, timeout=15.0):
    proc = subprocess.Popen([sys.executable, RELAY, "--dir", str(flash_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=timeout):
            raise TimeoutError("replrelay printed no URL within %.0f s" % timeout)
        url = proc.stdout.readline().strip()
        sel.close()
        if not url.startswith("socket://"):
            err = proc.stderr.read() if proc.stderr is not None else ""
            raise RuntimeError("replrelay said %r, stderr: %s" % (url, err))
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def mpremote(url, *args, timeout=60.0):
    """Run ``mpremote connect URL resume ARGS`` (no soft reset: it ends the unix port)."""
    return subprocess.run([MPREMOTE, "connect", url, "resume"] + list(args),
                          capture_output=True, text=True, timeout=timeout)
