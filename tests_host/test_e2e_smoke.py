"""End to end: the firmware on the MicroPython unix port (tools/run_unix.py) drives the
SIMCom simulator (tools/modemsim, CLI; over TCP and over a pty) whose MQTT goes to a real
Mosquitto; a paho
subscriber sees retained "online", telemetry with consecutive seq, an ack for a ping on
/cmd, and retained "offline" after the clean stop.  Every process is stopped by pid and
every wait is bounded."""

import json
import os
import queue
import signal
import subprocess
import sys
import time

import pytest
from brokerfix import Subscriber, broker  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = os.path.join(ROOT, ".venv", "bin", "python")
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
DEV = "e2e-01"
BASE = "tlog/%s/" % DEV

pytestmark = pytest.mark.skipif(not os.path.exists(MICROPYTHON),
                                reason="no MicroPython unix port in .venv")


def _stop(proc, sig=signal.SIGTERM, wait=10):
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
    try:
        return proc.wait(wait)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait(5)


def _start_sim(broker_port, pty):
    """The simulator CLI; returns (process, the firmware's --modem argument)."""
    p = subprocess.Popen(
        [PY if os.path.exists(PY) else sys.executable, os.path.join(ROOT, "tools", "modemsim"),
         "--persona", "SIM7600E", "--broker", "127.0.0.1:%d" % broker_port, "--fast",
         "--port", "0", "--seconds", "120"] + (["--pty"] if pty else []),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline() if p.stdout else ""  # the simulator prints it at once
    if not line.startswith("LISTENING "):
        _stop(p)
        raise RuntimeError("modemsim did not start: %r" % line)
    if not pty:
        return p, "tcp:127.0.0.1:%d" % int(line.split()[1])
    line = p.stdout.readline() if p.stdout else ""
    if not line.startswith("PTY "):
        _stop(p)
        raise RuntimeError("modemsim gave no pty: %r" % line)
    return p, line.split()[1]


def _collect(sub, until, want):
    """Messages (topic, payload, qos, retain) until ``want(msgs)`` or the deadline."""
    msgs = []
    while not want(msgs):
        left = until - time.monotonic()
        if left <= 0:
            break
        try:
            msgs.append(sub.messages.get(timeout=min(left, 0.5)))
        except queue.Empty:
            pass
    return msgs


def _retained(b, topic):
    """What a subscriber that joins now gets for ``topic``: (payload, retain flag)."""
    late = Subscriber(b.host, b.port, client_id="e2e-late-%d" % time.monotonic_ns())
    try:
        late.subscribe(topic, 1)
        _t, p, _q, r = late.wait_for(topic, 10)
        return p, r
    finally:
        late.close()


def _seqs(msgs):
    out = []
    for t, p, _q, _r in msgs:
        if t == BASE + "telemetry":
            out.extend(r["seq"] for r in json.loads(p))
    return out


@pytest.mark.parametrize("link", ["tcp", "pty"])
def test_telemetry_and_ping(broker, tmp_path, link):  # noqa: F811
    sim, modem = _start_sim(broker.port, link == "pty")
    sub = Subscriber(broker.host, broker.port, client_id="e2e-sub")
    fw = None
    try:
        sub.subscribe(BASE + "#", 1)
        cfg = tmp_path / "config.json"
        cfg.write_text(json.dumps({
            "device_id": DEV, "mqtt_host": "127.0.0.1", "mqtt_port": 1883,
            "mqtt_tls": False, "obd_enable": False, "health_interval_s": 10}))
        out = open(tmp_path / "firmware.log", "w")
        fw = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tools", "run_unix.py"),
             "--modem", modem, "--config", str(cfg),
             "--flash", str(tmp_path / "flash"), "--seconds", "90", "--grace", "10"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 45
        msgs = _collect(sub, deadline, lambda m: len(_seqs(m)) >= 4 and any(
            t == BASE + "status" and p == b"online" for t, p, _q, _r in m))
        log = (tmp_path / "firmware.log").read_text()
        seqs = _seqs(msgs)
        assert len(seqs) >= 4, "telemetry seq %r; firmware log:\n%s" % (seqs, log)
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs  # consecutive
        assert _retained(broker, BASE + "status") == (b"online", True)
        sub.publish(BASE + "cmd", json.dumps({"id": "e2e-ping-1", "cmd": "ping"}))
        acks = _collect(sub, time.monotonic() + 20, lambda m: any(
            t == BASE + "cmd/ack" for t, _p, _q, _r in m))
        ack = [json.loads(p) for t, p, _q, _r in acks if t == BASE + "cmd/ack"]
        assert ack and ack[0]["id"] == "e2e-ping-1" and ack[0]["ok"] is True
        assert ack[0]["result"]["pong"] is True
        # clean stop through the launcher: "offline" retained, the spool saved
        os.kill(fw.pid, signal.SIGINT)
        rc = fw.wait(30)
        assert rc == 0, (tmp_path / "firmware.log").read_text()
        tail = _collect(sub, time.monotonic() + 10, lambda m: any(
            t == BASE + "status" and p == b"offline" for t, p, _q, _r in m))
        assert any(t == BASE + "status" and p == b"offline" for t, p, _q, _r in tail)
        assert _retained(broker, BASE + "status") == (b"offline", True)
        assert "stopped:" in (tmp_path / "firmware.log").read_text()
    finally:
        if fw is not None:
            _stop(fw, signal.SIGINT, 30)
        sub.close()
        _stop(sim)
