#!/usr/bin/env python3
"""A MicroPython unix-port "board" on a TCP port, for mpremote without hardware.

Owns one job: start ``micropython`` (its REPL) on a pty with a given working
directory (the "device flash"), and relay bytes between the pty and one TCP
client at a time on 127.0.0.1:PORT.  mpremote then talks to it with
``mpremote connect socket://127.0.0.1:PORT resume ...`` (``resume`` because a
soft reset ends the unix port's process; toolchain-facts s.5).

    replrelay.py --dir /tmp/flash            # prints socket://127.0.0.1:PORT, runs until
                                             # SIGTERM/SIGINT or the REPL exits
    replrelay.py --dir D --port 40000 --respawn

As a library: ``with Relay(dir) as r: r.url`` starts it in a thread.
"""

import argparse
import os
import pty  # noqa: F401  (documents the dependency: openpty comes from os)
import selectors
import signal
import socket
import subprocess
import sys
import threading
import tty

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)


def default_micropython():
    venv = os.path.join(_ROOT, ".venv", "bin", "micropython")
    return venv if os.path.exists(venv) else "micropython"


class Relay:
    """MicroPython REPL on a pty, relayed to a loopback TCP listener."""

    def __init__(self, workdir, port=0, micropython=None, path=".frozen:lib", respawn=False,
                 heapsize=None):
        self.workdir = os.path.abspath(workdir)
        self.micropython = micropython or default_micropython()
        self.mpath = path
        self.respawn = respawn
        self.heapsize = heapsize
        self.proc = None
        self.master = -1
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(1)
        # the ESP32 socket stub in typings/ lacks getsockname; CPython has it
        self.port = int(self.listener.getsockname()[1])  # pyright: ignore[reportAttributeAccessIssue]
        self.client = None
        self.sel = selectors.DefaultSelector()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = None
        self.exit_code = None

    @property
    def url(self):
        return "socket://127.0.0.1:%d" % self.port

    def _spawn(self):
        os.makedirs(self.workdir, exist_ok=True)
        master, slave = os.openpty()
        tty.setraw(slave)
        env = dict(os.environ)
        # MICROPYPATH replaces the default path: keep .frozen (asyncio) and add
        # lib/ as on the ESP32, where /lib is on sys.path.
        env["MICROPYPATH"] = self.mpath
        cmd = [self.micropython]
        if self.heapsize:
            cmd += ["-X", "heapsize=%s" % self.heapsize]
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdin=slave, stdout=slave,
                                     stderr=slave, env=env, close_fds=True,
                                     start_new_session=True)
        os.close(slave)
        self.master = master
        os.set_blocking(master, False)
        self.sel.register(master, selectors.EVENT_READ, "pty")

    def _close_pty(self):
        if self.master >= 0:
            self.sel.unregister(self.master)
            os.close(self.master)
            self.master = -1

    def _drop_client(self):
        if self.client is not None:
            self.sel.unregister(self.client)
            self.client.close()
            self.client = None

    def serve(self):
        """Relay until stop() or the REPL exits (without --respawn). Returns its exit code."""
        self._spawn()
        self.sel.register(self.listener, selectors.EVENT_READ, "listen")
        self.sel.register(self._stop_r, selectors.EVENT_READ, "stop")
        try:
            while True:
                for key, _ in self.sel.select(timeout=1.0):
                    what = key.data
                    if what == "stop":
                        return self.exit_code
                    if what == "listen":
                        conn, _addr = self.listener.accept()
                        # one client at a time: a new one replaces the old
                        self._drop_client()
                        conn.setblocking(False)
                        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        self.client = conn
                        self.sel.register(conn, selectors.EVENT_READ, "client")
                    elif what == "client" and self.client is not None:
                        try:
                            data = self.client.recv(4096)
                        except (BlockingIOError, InterruptedError):
                            continue
                        except OSError:
                            data = b""
                        if not data:
                            self._drop_client()
                        elif self.master >= 0:
                            try:
                                self._write_all(self.master, data)
                            except OSError:
                                pass  # the REPL is going away: like a UART to a rebooting board
                    elif what == "pty":
                        try:
                            data = os.read(self.master, 4096)
                        except BlockingIOError:
                            continue
                        except OSError:  # EIO: the REPL process has gone
                            data = b""
                        if not data:
                            if self._reap():
                                return self.exit_code
                            continue
                        if self.client is not None:
                            try:
                                self.client.sendall(data)
                            except OSError:
                                self._drop_client()
                        # with no client the REPL's output is dropped, like a UART
                if self.proc is not None and self.proc.poll() is not None and self._reap():
                    return self.exit_code
        finally:
            self._shutdown()

    def _reap(self):
        """The REPL died: respawn it or report that serve() should end."""
        self._close_pty()
        if self.proc is not None:
            self.exit_code = self.proc.wait(timeout=5)
        if self.respawn:
            self._spawn()
            return False
        return True

    @staticmethod
    def _write_all(fd, data):
        view = memoryview(data)
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_WRITE)
        try:
            while view:
                try:
                    n = os.write(fd, view)
                    view = view[n:]
                except BlockingIOError:
                    if not sel.select(timeout=5.0):
                        raise TimeoutError("pty write stalled for 5 s") from None
        finally:
            sel.close()

    def _shutdown(self):
        self._drop_client()
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.exit_code = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.exit_code = self.proc.wait(timeout=5)
        self._close_pty()
        try:
            self.sel.unregister(self.listener)
        except (KeyError, ValueError):
            pass
        self.listener.close()

    def stop(self):
        try:
            os.write(self._stop_w, b"x")
        except OSError:
            pass

    # thread use

    def start(self):
        self._thread = threading.Thread(target=self.serve, daemon=True)
        self._thread.start()
        return self

    def join(self, timeout=10.0):
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self.join()


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Run the MicroPython unix port's REPL on a pty and relay it to "
                    "127.0.0.1:PORT, so mpremote can treat it as a board "
                    "(mpremote connect socket://127.0.0.1:PORT resume ...).")
    p.add_argument("--dir", required=True, help="working directory of the REPL (the flash)")
    p.add_argument("--port", type=int, default=0, help="TCP port (0: pick a free one)")
    p.add_argument("--micropython", default=None, help="micropython executable "
                   "(default: .venv/bin/micropython)")
    p.add_argument("--path", default=".frozen:lib",
                   help="MICROPYPATH for the REPL, relative to --dir (default .frozen:lib)")
    p.add_argument("--heapsize", default=None, help="e.g. 110K (like an ESP32 without PSRAM)")
    p.add_argument("--respawn", action="store_true",
                   help="start the REPL again when it exits (e.g. after a soft reset)")
    a = p.parse_args(argv)
    relay = Relay(a.dir, a.port, a.micropython, a.path, a.respawn, a.heapsize)

    def on_signal(_sig, _frm):
        relay.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sys.stdout.write(relay.url + "\n")
    sys.stdout.flush()
    rc = relay.serve()
    return 0 if rc is None else (rc if rc >= 0 else 0)


if __name__ == "__main__":
    sys.exit(main())
