"""Starts and stops elm327-emulator (`elm`) on a free loopback port.

Used by tests_host/test_obd.py in-process, and by tests_device/test_obd_device.py
through the command line (MicroPython sockets have no getsockname, so the port
is picked here, on CPython):

    python tests_host/elm_emu.py start FILE   # writes "PORT PID WORKDIR" to FILE, returns
    python tests_host/elm_emu.py stop PID WORKDIR   # SIGTERM (elm ignores stdin EOF), rm dir
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time



ELM = os.path.join(os.path.dirname(sys.executable), "elm")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(timeout_s=10.0):
    """Run ``elm -n PORT -s car -b BATCH`` and wait until it accepts; returns (proc, port)."""
    port = free_port()
    work = tempfile.mkdtemp(prefix="elm-")  # elm writes elm.log into its cwd
    batch = os.path.join(work, "batch.txt")
    open(batch, "w").close()
    proc = subprocess.Popen([ELM, "-n", str(port), "-s", "car", "-b", batch], cwd=work,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            proc.workdir = work  # type: ignore[attr-defined]
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                shutil.rmtree(work, ignore_errors=True)
                raise RuntimeError("elm327-emulator did not listen on %d" % port) from None
            time.sleep(0.05)


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    shutil.rmtree(getattr(proc, "workdir", ""), ignore_errors=True)


def main(argv):
    if len(argv) == 3 and argv[1] == "start":
        proc, port = start()
        with open(argv[2], "w") as f:
            f.write("%d %d %s\n" % (port, proc.pid, proc.workdir))  # type: ignore
        return 0
    if len(argv) == 4 and argv[1] == "stop":
        pid = int(argv[2])
        _kill(pid)
        if os.path.basename(argv[3]).startswith("elm-"):
            shutil.rmtree(argv[3], ignore_errors=True)
        return 0
    print(__doc__)
    return 2


def _kill(pid):
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
