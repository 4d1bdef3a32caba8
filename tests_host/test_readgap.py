"""tlog.readgap: the read-gap meter the drain bench puts under the engine (CPython side)."""

import json

from tlog import readgap


class Fake:
    def __init__(self, script):
        self.script = list(script)  # results of successive readinto calls

    def readinto(self, buf):
        return self.script.pop(0)

    def fileno(self):
        return 7


class Ring:
    overflows = 0


def test_gaps_after_data_reads_only(monkeypatch, tmp_path):
    # construction at 0; each read: its start, then (data only) the time it returned
    clock = iter([0, 10, 20, 1000, 5000, 5100, 9000, 9100, 100000, 100100, 400000])
    monkeypatch.setattr(readgap, "ticks_us", lambda: next(clock))
    m = readgap.ReadGapMeter(Fake([16, None, 8, 8, 8, None]), str(tmp_path / "g.json"))
    m.watch(Ring())
    buf = bytearray(256)
    for _ in range(6):
        m.readinto(buf)
    # gaps after a data read: 980 us (nothing came), 3.9 ms and 90.9 ms (data waited),
    # 299.9 ms (nothing came); the wait after the empty read at 1000 is not a gap
    st = m.stats()
    assert st["reads"] == 6 and st["bytes"] == 40 and st["max_read"] == 16
    assert st["gaps"] == 4 and st["data_gaps"] == 2
    assert abs(st["data_gap_max_ms"] - 90.9) < 1e-6
    assert abs(st["gap_max_ms"] - 299.9) < 1e-6
    assert st["gap_p99_ms"] == 299.9  # past the histogram's bins: the max
    assert st["ring_overflows"] == 0
    assert json.load(open(tmp_path / "g.json"))["gaps"] == 4  # written at the burst's end
    assert m.ioctl(10, 0) == 7  # MP_STREAM_GET_FILENO: the poller watches the fd


def test_from_env(monkeypatch, tmp_path):
    monkeypatch.delenv("TLOG_READ_GAPS", raising=False)
    assert readgap.from_env(Fake([])) is None
    monkeypatch.setenv("TLOG_READ_GAPS", str(tmp_path / "x.json"))
    assert isinstance(readgap.from_env(Fake([])), readgap.ReadGapMeter)
