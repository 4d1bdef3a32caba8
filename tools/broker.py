#!/usr/bin/env python3
"""Test MQTT broker on loopback: Mosquitto with a generated config and certificates.

Owns starting and stopping one broker for tests and demos.  Mosquitto (Debian,
/usr/sbin/mosquitto) runs with a plain listener and a TLS listener that asks for,
but does not require, a client certificate (so mutual TLS and server-only TLS both
work).  Certificates (CA, server with SAN localhost/127.0.0.1, client) are made on
the fly with openssl.  When Mosquitto cannot be had, amqtt runs in-process on a
thread instead (plain listener only, tls_port None) and says so on stderr.

    with Broker().start() as b:
        b.host, b.port, b.tls_port, b.ca_path, b.client_cert, b.client_key

CLI: python3 tools/broker.py --seconds N   (prints the ports and paths, then waits)
"""

import argparse
import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

MOSQUITTO = "/usr/sbin/mosquitto"
HOST = "127.0.0.1"


def free_port():
    """A free loopback TCP port (small race until the broker binds it)."""
    s = socket.socket()
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _openssl(args, cwd):
    subprocess.run(["openssl"] + args, cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_certs(folder):
    """CA, server cert (SAN localhost, 127.0.0.1) and client cert, all PEM, in folder."""
    _openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
              "-subj", "/CN=atmq-test-ca", "-keyout", "ca.key", "-out", "ca.crt"], folder)
    with open(os.path.join(folder, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, cn in (("server", "localhost"), ("client", "atmq-device")):
        _openssl(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn,
                  "-keyout", name + ".key", "-out", name + ".csr"], folder)
        extra = ["-extfile", "san.ext"] if name == "server" else []
        _openssl(["x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                  "-CAcreateserial", "-days", "2", "-out", name + ".crt"] + extra, folder)
    # Mosquitto drops root to user "mosquitto", which cannot read a 0600 key.
    for name in ("server.key", "client.key"):
        os.chmod(os.path.join(folder, name), 0o644)


def ensure_mosquitto():
    """True when the Mosquitto binary is there (installs it via apt when root)."""
    if os.path.exists(MOSQUITTO):
        return True
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-qq", "mosquitto"]
    if subprocess.call(cmd, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL) != 0:
        subprocess.call(["apt-get", "update", "-qq"], env=env,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.call(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return os.path.exists(MOSQUITTO)


def _wait_port(host, port, deadline):
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.01)
    return False


class Broker:
    """One loopback broker; start() returns self, stop() is bounded and idempotent."""

    def __init__(self, prefer="mosquitto", start_timeout=10.0):
        self.prefer = prefer
        self.start_timeout = start_timeout
        self.host = HOST
        self.port = 0
        self.tls_port = None
        self.kind = None
        self.dir = ""
        self.ca_path = self.client_cert = self.client_key = ""
        self.server_cert = self.server_key = ""
        self.log_path = ""
        self._proc = None
        self._amqtt = None

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        self.dir = tempfile.mkdtemp(prefix="atmq-broker-")
        os.chmod(self.dir, 0o755)       # mosquitto runs as user "mosquitto" when root starts it
        make_certs(self.dir)
        p = os.path.join
        self.ca_path, self.server_cert, self.server_key = (
            p(self.dir, "ca.crt"), p(self.dir, "server.crt"), p(self.dir, "server.key"))
        self.client_cert, self.client_key = p(self.dir, "client.crt"), p(self.dir, "client.key")
        if self.prefer == "mosquitto" and ensure_mosquitto():
            self._start_mosquitto()
        else:
            why = "requested" if self.prefer != "mosquitto" else "Mosquitto not available"
            print("broker: %s: using amqtt in-process (no TLS listener)" % why,
                  file=sys.stderr)
            self._start_amqtt()
        return self

    def _start_mosquitto(self):
        for _ in range(3):
            self.port, tls_port = free_port(), free_port()
            self.tls_port = tls_port
            conf = os.path.join(self.dir, "mosquitto.conf")
            with open(conf, "w") as f:
                f.write("\n".join([
                    "per_listener_settings false", "allow_anonymous true",
                    "persistence false", "log_dest stdout", "log_type all",
                    "listener %d %s" % (self.port, HOST),
                    "listener %d %s" % (tls_port, HOST),
                    "cafile " + self.ca_path, "certfile " + self.server_cert,
                    "keyfile " + self.server_key, "require_certificate false", ""]))
            self.log_path = os.path.join(self.dir, "mosquitto.log")
            log = open(self.log_path, "wb")
            proc = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=log,
                                    stderr=subprocess.STDOUT)
            self._proc = proc
            log.close()
            deadline = time.monotonic() + self.start_timeout
            if (_wait_port(HOST, self.port, deadline)
                    and _wait_port(HOST, tls_port, deadline)
                    and self._tls_ready(proc, tls_port, deadline)):
                self.kind = "mosquitto"
                return
            self._stop_proc()  # a port was taken in the race: try other ports
        raise RuntimeError("mosquitto did not start; see " + str(self.log_path))

    def _tls_ready(self, proc, tls_port, deadline):
        """A TLS handshake succeeds (Mosquitto opens its sockets before loading certs)."""
        ctx = ssl.create_default_context(cafile=self.ca_path)
        while time.monotonic() < deadline and proc.poll() is None:
            raw = None
            try:
                raw = socket.create_connection((HOST, tls_port), timeout=1)
                ctx.wrap_socket(raw, server_hostname="localhost").close()
                return True
            except (OSError, ssl.SSLError):
                time.sleep(0.02)   # not up yet: poll again within the deadline
            finally:
                if raw is not None:
                    raw.close()
        return False

    def _start_amqtt(self):
        from amqtt.broker import Broker as AmqttBroker

        self.port, self.tls_port = free_port(), None
        cfg = {"listeners": {"default": {"type": "tcp", "bind": "%s:%d" % (HOST, self.port)}},
               "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                           {"allow_anonymous": True}}}
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        holder = {}

        def run():
            asyncio.set_event_loop(loop)
            broker = AmqttBroker(cfg, loop=loop)
            loop.run_until_complete(broker.start())
            holder["broker"] = broker
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=run, name="amqtt", daemon=True)
        thread.start()
        if not ready.wait(self.start_timeout):
            raise RuntimeError("amqtt did not start")
        self._amqtt = (loop, thread, holder["broker"])
        self.kind = "amqtt"

    def _stop_proc(self):
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def stop(self):
        self._stop_proc()
        if self._amqtt is not None:
            loop, thread, broker = self._amqtt
            self._amqtt = None
            fut = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)
            try:
                fut.result(timeout=5)
            except Exception:  # noqa: BLE001 - shutdown noise must not hide the test result
                pass
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = ""

    def log_text(self):
        """Mosquitto's log so far (for failing-test diagnostics)."""
        try:
            with open(self.log_path or "", encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def __enter__(self):
        return self if self.kind else self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Run a loopback test broker (Mosquitto or amqtt).")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to run (default 60)")
    ap.add_argument("--amqtt", action="store_true", help="use amqtt even if Mosquitto exists")
    args = ap.parse_args(argv)
    # SIGTERM must run the finally below, or Mosquitto outlives us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    b = Broker(prefer="amqtt" if args.amqtt else "mosquitto").start()
    try:
        print("BROKER %s host=%s port=%s tls_port=%s" % (b.kind, b.host, b.port, b.tls_port))
        print("CA %s\nCLIENT_CERT %s\nCLIENT_KEY %s" % (b.ca_path, b.client_cert, b.client_key),
              flush=True)
        try:
            time.sleep(args.seconds)
        except KeyboardInterrupt:
            pass
    finally:
        b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
