"""replrelay: the unix port's REPL on a TCP port; state survives reconnects; clean stop."""

import os
import signal
import subprocess
import sys

from relayfix import RELAY, mpremote, relay


def _children(pid):
    out = set()
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
            out |= {int(x) for x in f.read().split()}
    return out


def test_repl_runs_in_the_flash_dir_and_keeps_state_between_connections(tmp_path):
    (tmp_path / "hello.py").write_text("X = 41\n")
    with relay(tmp_path) as url:
        r = mpremote(url, "exec", "import hello; hello.X += 1")
        assert r.returncode == 0, r.stderr
        r = mpremote(url, "eval", "hello.X")  # a new connection, same interpreter
        assert (r.returncode, r.stdout.strip()) == (0, "42")
        r = mpremote(url, "fs", "cp", str(tmp_path / "hello.py"), ":copied.py")
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "copied.py").read_text() == "X = 41\n"


def test_sigterm_stops_the_relay_and_its_micropython(tmp_path):
    proc = subprocess.Popen([sys.executable, RELAY, "--dir", str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("socket://127.0.0.1:")
        r = mpremote(url, "eval", "1+2")
        assert r.stdout.strip() == "3"
        kids = _children(proc.pid)
        assert len(kids) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        for k in kids:
            assert not os.path.exists("/proc/%d" % k) or \
                open("/proc/%d/stat" % k).read().split()[2] == "Z"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_relay_ends_when_the_repl_exits(tmp_path):
    proc = subprocess.Popen([sys.executable, RELAY, "--dir", str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        # a soft reset (what mpremote does without `resume`) ends the unix port
        mpremote(url, "exec", "import sys; sys.exit(3)")
        assert proc.wait(timeout=15) == 3  # the REPL's exit status is passed on
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_respawn_starts_a_fresh_repl(tmp_path):
    proc = subprocess.Popen([sys.executable, RELAY, "--dir", str(tmp_path), "--respawn"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert mpremote(url, "exec", "Y = 5").returncode == 0
        mpremote(url, "exec", "import sys; sys.exit(0)")
        r = mpremote(url, "eval", "'Y' in globals()")
        assert (r.returncode, r.stdout.strip()) == (0, "False")
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_help():
    r = subprocess.run([sys.executable, RELAY, "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "--respawn" in r.stdout
