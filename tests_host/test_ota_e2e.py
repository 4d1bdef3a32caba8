"""OTA end to end: the firmware on the MicroPython unix port, run as a board runs it (boot.py,
then main.py, from a flash folder whose lib/ holds the .mpy tree tools/ota.py built),
the SIMCom simulator, Mosquitto, and tools/ota.py's Sender publishing a real bundle.

- a full update with a corrupted chunk, a power cut (SIGKILL) at ~30 % and the MQTT
  link lost at ~60 %: resumed from the device's offset, verified, switched, confirmed;
- a new version that cannot connect: rolled back by the probation, and the old version
  reports why;
- telemetry all along: every record made reaches the broker (sequence numbers skip only
  the unused rest of a lease block after a reboot, tlog/seqno.py), spool empty at the end.

A "reboot" is the launcher loop below starting boot.py and main.py again after main.py
exits (the app's reset on the unix port) or is killed."""

import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest
from brokerfix import broker  # noqa: F401

import e2erig
import ota as otatool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
KEY = b"e2e-fleet-key-0123456789abcdef"
DEV = "ota-e2e"
LEASE = 64  # tlog/seqno.py _DEFAULT_BLOCK

pytestmark = pytest.mark.skipif(not os.path.exists(MICROPYTHON),
                                reason="no MicroPython unix port in .venv")


@pytest.fixture(scope="module")
def baseline():
    """The 1.0.0 tree as .mpy (x64, the unix port's arch), built once per module."""
    _hdr, stream, _man = otatool.build(ROOT, "unix", "x64", "1.0.0")
    return stream


class Board:
    """boot.py + main.py in a loop, as a board boots after every reset; power_cut() kills."""

    def __init__(self, flash, modem, log_path):
        self.flash = flash
        self.env = dict(os.environ)
        self.env.update({
            "MICROPYPATH": ".frozen:" + os.path.join(flash, "lib"),
            "TLOG_BOARD": os.path.join(ROOT, "boards", "unix.json"),
            "TLOG_CONFIG": os.path.join(flash, "config.json"),
            "TLOG_FLASH": flash, "TLOG_MODEM": modem, "TLOG_STDIN_STOP": "1",
            "TLOG_SECONDS": "300"})
        self.log = open(log_path, "a")
        self.log_path = log_path
        self.proc = None
        self.boots = 0
        self.exits = []
        self.stopping = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _loop(self):
        while not self.stopping:
            self.log.write("=== boot %d\n" % (self.boots + 1))
            self.log.flush()
            subprocess.run([MICROPYTHON, "boot.py"], cwd=self.flash, env=self.env,
                           stdout=self.log, stderr=subprocess.STDOUT, timeout=60)
            with self.lock:
                if self.stopping:
                    return
                self.boots += 1
                self.proc = subprocess.Popen(
                    [MICROPYTHON, "-X", "heapsize=1M", "main.py"], cwd=self.flash,
                    env=self.env, stdin=subprocess.PIPE, stdout=self.log,
                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = self.proc.wait(320)
            except subprocess.TimeoutExpired:
                self._kill()
                rc = self.proc.wait(10)
            self.exits.append(rc)
            time.sleep(0.2)

    def _kill(self):
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def power_cut(self):
        with self.lock:
            self._kill()

    def stop(self, timeout=30):
        """Clean stop (stdin closed: spool flushed, "offline", disconnect), then the loop ends."""
        with self.lock:
            self.stopping = True
            p = self.proc
        if p is not None and p.poll() is None:
            try:
                if p.stdin is not None:
                    p.stdin.close()
                p.wait(timeout)
            except (subprocess.TimeoutExpired, OSError):
                self._kill()
        self.thread.join(timeout)
        self.log.close()

    def text(self):
        with open(self.log_path) as f:
            return f.read()


def _flash(tmp_path, baseline, broker_port, **cfg):
    flash = str(tmp_path / "flash")
    os.makedirs(flash)
    otatool.unpack(baseline, os.path.join(flash, "lib"))
    for name in ("boot.py", "main.py"):
        shutil.copyfile(os.path.join(ROOT, "firmware", name), os.path.join(flash, name))
    e2erig.make_config(os.path.join(flash, "config.json"), DEV, broker_port,
                       ota_key=KEY.decode(), **cfg)
    return flash


def _statuses(sub):
    return [m["payload"] for m in sub.snapshot() if m["topic"].endswith("/ota/status")
            and not m["retain"]]


def _check_records(sub, board):
    """Every record made reached the broker: the only holes in the sequence are lease
    skips after a reboot (they end on a multiple of the lease block), at most one per boot."""
    a = e2erig.analyze(sub.snapshot())
    seqs = sorted({s for _t, s, _r in e2erig.telemetry(sub.snapshot())})
    assert seqs and seqs[0] == 0, seqs[:5]
    holes = [(x, y) for x, y in zip(seqs, seqs[1:], strict=False) if y != x + 1]
    assert all(y % LEASE == 0 for _x, y in holes), holes
    assert len(holes) <= board.boots, (holes, board.boots)
    assert "spool depth 0" in board.text().rsplit("stopped:", 1)[-1], board.text()[-2000:]
    return a, holes


def _telemetry_msgs(sub):
    return sum(1 for m in sub.snapshot() if m["topic"].endswith("/telemetry"))


def _more_records(sub, k):
    """Wait for ``k`` more records, then one more telemetry message: the uplink keeps one
    publish in flight, so the records before it left the spool (a stop now loses none)."""
    n = e2erig.analyze(sub.snapshot())["unique"]
    assert sub.wait(lambda: e2erig.analyze(sub.snapshot())["unique"] >= n + k, 30)
    m = _telemetry_msgs(sub)
    assert sub.wait(lambda: _telemetry_msgs(sub) > m, 30)


def _outcome(final, want, version, sub, board):
    """The update ended as ``want`` says (the sender's last status starts with it), the
    collector saw that status too, naming ``version``; returns every status it saw."""
    assert final.startswith(want), (final, _statuses(sub), board.text()[-4000:])
    head = want.split(":")[0]
    # the collector has its own connection: give it the last status too
    assert sub.wait(lambda: any(p.startswith(head) for p in _statuses(sub)), 10)
    st = _statuses(sub)
    assert any(p.startswith(head) and "v=" + version in p for p in st), st
    return st


def _stop_with_every_record(sub, board, flash, version):
    """Records keep arriving under the version that runs now, then a clean stop: every
    record reached the broker and ``version`` is the one on flash."""
    _more_records(sub, 3)
    board.stop()
    a, holes = _check_records(sub, board)
    with open(os.path.join(flash, "lib", "tlog", "version.mpy"), "rb") as f:
        assert version.encode() in f.read()
    return a, holes


def _teardown(tmp_path, sub, sender, board, sim):
    (tmp_path / "statuses.txt").write_text("\n".join(map(str, _statuses(sub))))
    if sender is not None:
        sender.close()
    board.stop()
    sim.stop()
    sub.close()


def _rig(broker, tmp_path, flash):  # noqa: F811
    sim = e2erig.SimThread(persona="SIM7600E", broker=(broker.host, broker.port), fast=True)
    port = sim.start()
    sub = e2erig.Collector(broker.host, broker.port, "tlog/%s/#" % DEV,
                           client_id="ota-e2e-sub-%d" % os.getpid())
    board = Board(flash, "tcp:127.0.0.1:%d" % port, str(tmp_path / "device.log")).start()
    return sim, sub, board


def _wait_running(sub, board):
    """Telemetry flows (the OTA module itself is loaded only when the offer arrives)."""
    ok = sub.wait(lambda: e2erig.analyze(sub.snapshot())["unique"] >= 2, 60)
    assert ok, board.text()[-3000:]


def test_update_with_corrupt_chunk_power_cut_and_link_loss(broker, tmp_path, baseline):  # noqa: F811
    from modemsim import faults

    flash = _flash(tmp_path, baseline, broker.port, ota_probation_s=60)
    sim, sub, board = _rig(broker, tmp_path, flash)
    sender = None
    try:
        _wait_running(sub, board)
        hdr, stream, _man = otatool.build(ROOT, "unix", "x64", "1.1.0", min_from="1.0.0")
        events = []
        size = len(stream)

        def on_chunk(off, msg):
            if off >= size // 5 and "corrupt" not in events:
                events.append("corrupt")
                b = bytearray(msg)
                b[-1] ^= 0xFF  # data changed, CRC as sent: the device must ask again
                return bytes(b)
            return msg

        def progress(off, total):
            if off >= total * 3 // 10 and "cut" not in events:
                events.append("cut")
                board.power_cut()
            elif off >= total * 6 // 10 and "cut" in events and "lost" not in events:
                events.append("lost")
                sim.call(lambda: faults.connlost(sim.sim.modem, None, 1))

        sender = otatool.Sender(broker.host, broker.port, "tlog", DEV, KEY, hdr, stream,
                                on_chunk=on_chunk, progress=progress,
                                client_id="ota-e2e-sender", log=lambda *a: None)
        t0 = time.monotonic()
        final = sender.run(timeout=150)
        took = time.monotonic() - t0
        st = _outcome(final, "confirmed", "1.1.0", sub, board)
        assert events == ["corrupt", "cut", "lost"], events
        heads = [otatool.parse_status(p)[0] for p in st]
        for want in ("verified", "switched", "confirmed"):
            assert want in heads, (want, heads)
        a, holes = _stop_with_every_record(sub, board, flash, "1.1.0")
        assert not os.path.exists(os.path.join(flash, "lib.old"))
        print("OTA_E2E " + json.dumps({"bytes": size, "seconds": round(took, 1),
                                       "boots": board.boots, "records": a["unique"],
                                       "lease_skips": len(holes), "dups": a["dups"]}))
    finally:
        _teardown(tmp_path, sub, sender, board, sim)


def test_new_version_that_cannot_connect_is_rolled_back(broker, tmp_path, baseline):  # noqa: F811
    flash = _flash(tmp_path, baseline, broker.port, ota_probation_s=12)
    src = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "lib"), src / "lib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(os.path.join(ROOT, "firmware"), src / "firmware",
                    ignore=shutil.ignore_patterns("__pycache__"))
    client = src / "lib" / "atmq" / "client.py"
    text = client.read_text()
    marker = "    async def connect(self):\n"
    assert marker in text
    client.write_text(text.replace(
        marker, marker + '        raise OSError("this build cannot connect")\n', 1))
    sim, sub, board = _rig(broker, tmp_path, flash)
    sender = None
    try:
        _wait_running(sub, board)
        hdr, stream, _man = otatool.build(str(src), "unix", "x64", "1.2.0")
        sender = otatool.Sender(broker.host, broker.port, "tlog", DEV, KEY, hdr, stream,
                                client_id="ota-e2e-sender2", log=lambda *a: None)
        final = sender.run(timeout=150)
        st = _outcome(final, "rolled back: no MQTT connection within 12 s", "1.0.0", sub, board)
        assert "switched" not in [otatool.parse_status(p)[0] for p in st]  # never connected
        # the old version runs again and sends what the new one recorded meanwhile
        _stop_with_every_record(sub, board, flash, "1.0.0")
    finally:
        _teardown(tmp_path, sub, sender, board, sim)
