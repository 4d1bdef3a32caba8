"""tlog.acquire: records made from the readings cache (fresh fix only, OBD values, battery,
signal, temperature), stamped with seq and a time that names its source, appended to the
spool; the modem poller's clock sync prefers NTP when the data link is up."""

import asyncio

from app_fakes import Clock

from tlog.acquire import Acquisition
from tlog.config import Config
from tlog.motion import Motion
from tlog.records import TS_MODEM, TS_NTP, TS_UPTIME, Record
from tlog.seqno import SeqNo
from tlog.spool import from_config
from tlog.timesrc import UNIX_2000, TimeSource

T2000 = 849312000  # 2026-11-30 in seconds since 2000


class Args:
    def __init__(self, v):
        self.v = v

    def arg_int(self, i, default=-1):
        return self.v


class FakeAt:
    """Engine stand-in: records commands; AT+CNTP answers OK and, like the modem, sends
    its result later as a "+CNTP: <err>" URC (None: never)."""

    def __init__(self, ntp_result: "int | None" = 0):
        self.sent = []
        self.ntp_result = ntp_result
        self.urcs = {}
        self.busy_during_wait = []  # commands sent while the NTP result was pending

    def on(self, prefix, handler, nargs=-1):
        self.urcs[prefix] = (handler, nargs)

    async def cmd(self, cmd, **kw):
        assert "done" not in kw  # the NTP result must not hold the AT channel
        self.sent.append(cmd)
        if cmd == b"AT+CNTP" and self.ntp_result is not None:
            handler, nargs = self.urcs[b"+CNTP:"]
            assert nargs == 1
            asyncio.get_running_loop().call_later(0.05, handler, Args(self.ntp_result))
        return None


class FakeModem:
    def __init__(self, ntp_result: "int | None" = 0):
        self.at = FakeAt(ntp_result)
        self.inited = True
        self.gnss_set = "cgps"
        self.gnss_on = False
        self.fixes = 0
        self.family = "cmqtt"

    async def clock(self):
        return T2000

    async def signal(self):
        return -71, 0

    async def gnss(self, on):
        self.gnss_on = on

    async def gnss_fix(self, fix):
        self.fixes += 1
        fix.valid = True
        fix.lat_e7, fix.lon_e7, fix.speed_ckmh = 482000000, 92500000, 5000
        fix.year, fix.month, fix.day, fix.hh, fix.mm, fix.ss = 2026, 11, 30, 0, 0, 10
        fix.update_epoch()
        return True


class FakeElm:
    connected = True

    def __init__(self, clock):
        self.values = {0x0C: 2150, 0x0D: 54, 0x05: None}
        self.read_ms = {0x0C: clock(), 0x0D: clock(), 0x05: None}


def make(tmp_path, modem=None, elm=None, link=False, **cfg):
    clock = Clock(5000)
    c = Config(None, cfg)
    sp = from_config(str(tmp_path / "spool"), c)
    seq = SeqNo(str(tmp_path / "seqno"))
    ts = TimeSource(clock)
    ev = asyncio.Event() if link else None
    if ev is not None:
        ev.set()
    woke = []
    a = Acquisition(c, sp, seq, ts, Motion(clock=clock), modem=modem, elm=elm,
                    temp=lambda: 315, clock=clock, on_record=lambda: woke.append(1),
                    link_up=ev)
    return a, sp, clock, woke


def stored(sp):
    r = Record()
    out = []
    for p in sp.peek_batch(256):
        r.unpack(p)
        out.append((r.seq, r.ts, r.ts_src, r.has_fix, r.lat_e7, r.rssi_dbm, r.temp_dc,
                    r.batt_mv, {r.obd_pid[i]: r.obd_val[i] for i in range(r.n_obd)}))
    return out


def test_records_without_any_source_say_uptime(tmp_path):
    a, sp, clock, woke = make(tmp_path)
    a.sample()
    clock.advance(2500)
    a.sample()
    assert stored(sp) == [(0, 0, TS_UPTIME, False, 0, None, 315, None, {}),
                          (1, 2, TS_UPTIME, False, 0, None, 315, None, {})]
    assert woke == [1, 1] and a.records == 2


def test_fix_only_when_fresh(tmp_path):
    a, sp, clock, _w = make(tmp_path)
    m = FakeModem()
    asyncio.run(m.gnss_fix(a.fix))
    a._got_fix()
    a.sample()
    clock.advance(a.fix_max_age_ms + 1)  # the receiver went quiet: no stale position
    a.sample()
    rows = stored(sp)
    assert rows[0][3] is True and rows[0][4] == 482000000
    assert rows[1][3] is False
    assert rows[0][2] == 0  # TS_GNSS: the fix carried a date
    assert a.motion.cause == 1  # fix speed counted as motion


def test_obd_battery_signal_in_record(tmp_path):
    clock = Clock(5000)
    a, sp, clock, _w = make(tmp_path)
    a.elm = FakeElm(clock)
    a.batt_mv, a.batt_tick = 12467, clock()
    a.rssi_dbm, a.rssi_tick = -83, clock()
    a.sample()
    row = stored(sp)[0]
    assert row[5] == -83 and row[7] == 12467 and row[8] == {0x0C: 2150, 0x0D: 54}
    clock.advance(6000)  # OBD values older than 5 s are left out
    a.sample()
    assert stored(sp)[1][8] == {}


def test_seq_continues_across_restart(tmp_path):
    a, sp, _c, _w = make(tmp_path)
    for _ in range(3):
        a.sample()
    sp.close()
    b, sp2, _c2, _w2 = make(tmp_path)
    b.sample()
    # numbers are leased in blocks of 64: a restart skips the unused rest, never reuses
    assert [r[0] for r in stored(sp2)] == [0, 1, 2, 64]


def test_clock_sync_ntp_when_link_up(tmp_path):
    m = FakeModem(ntp_result=0)
    a, sp, _c, _w = make(tmp_path, modem=m, link=True)
    assert asyncio.run(a.sync_clock())
    assert m.at.sent == [b'AT+CNTP="pool.ntp.org",0', b"AT+CNTP"]
    assert a.time.now() == (T2000 + UNIX_2000, TS_NTP) and a.ntp_synced


def test_clock_sync_without_link_or_failed_ntp_is_modem_time(tmp_path):
    m = FakeModem()
    a, _sp, _c, _w = make(tmp_path, modem=m, link=False)
    assert asyncio.run(a.sync_clock())
    assert m.at.sent == [] and a.time.now() == (T2000 + UNIX_2000, TS_MODEM)
    m2 = FakeModem(ntp_result=None)  # +CNTP never comes
    b, _sp2, _c2, _w2 = make(tmp_path, modem=m2, link=True)
    b.ntp_timeout_ms = 300  # the bounded wait for a result that does not come
    assert asyncio.run(b.sync_clock()) and b.time.src == TS_MODEM and b.modem_errors == 1
    m3 = FakeModem(ntp_result=1)  # 12.2.4: an error code on the SIM7600
    c, _sp3, _c3, _w3 = make(tmp_path, modem=m3, link=True)
    assert asyncio.run(c.sync_clock()) and c.time.src == TS_MODEM and not c.ntp_synced


def test_clock_sync_success_code_of_the_sm_family(tmp_path):
    m = FakeModem(ntp_result=1)  # SIM800/SIM70x0: "+CNTP: 1" is success
    m.family = "sm"
    a, _sp, _c, _w = make(tmp_path, modem=m, link=True)
    assert asyncio.run(a.sync_clock()) and a.ntp_synced and a.time.src == TS_NTP


def test_clock_sync_leaves_the_at_channel_free_while_ntp_runs(tmp_path):
    m = FakeModem(ntp_result=0)
    a, _sp, _c, _w = make(tmp_path, modem=m, link=True)

    async def both():
        sync = asyncio.create_task(a.sync_clock())
        for _ in range(1000):  # bounded: a few loop turns reach the AT+CNTP
            if b"AT+CNTP" in m.at.sent:
                break
            await asyncio.sleep(0)
        assert b"AT+CNTP" in m.at.sent
        await m.at.cmd(b"AT+CMQTTPUB=0,1,60")  # another task's command, while NTP runs
        return await sync

    assert asyncio.run(both()) and a.ntp_synced
    assert m.at.sent == [b'AT+CNTP="pool.ntp.org",0', b"AT+CNTP", b"AT+CMQTTPUB=0,1,60"]


def test_locate_with_modem_gnss(tmp_path):
    m = FakeModem()
    a, _sp, _c, _w = make(tmp_path, modem=m)
    fix = asyncio.run(a.locate())
    assert m.gnss_on and fix is not None and fix.lat_e7 == 482000000 and a.fix_tick


def test_gnss_jump_filter(tmp_path):
    a, _sp, clock, _w = make(tmp_path)
    f = a.fix

    def offer(lat_e7, lon_e7):
        f.valid = True
        f.lat_e7, f.lon_e7 = lat_e7, lon_e7
        return a._got_fix()

    assert offer(482000000, 92500000)
    clock.advance(1000)
    assert offer(482000000 + 9000, 92500000)  # 100 m in 1 s: a car
    clock.advance(1000)
    assert not offer(482000000 + 900000, 92500000)  # 10 km in 1 s: an outlier
    assert not f.valid and a.jumps == 1
    clock.advance(1000)
    assert offer(482000000 + 18000, 92500000 + 9000)  # back on track
    for _ in range(3):  # the receiver insists on the new place: after 3 drops, taken
        clock.advance(1000)
        assert not offer(-338688000, 1512093000)
    clock.advance(1000)
    assert offer(-338688000, 1512093000) and a.jumps == 4


def test_the_modem_poller_outlives_a_memory_error(tmp_path, monkeypatch):
    """A MemoryError inside one poll (the heap at its peak: a URC entry that could not be
    added) is counted; the poller goes on and the next poll reads the signal."""
    import tlog.acquire

    async def no_wait(ms):
        await asyncio.sleep(0)
    monkeypatch.setattr(tlog.acquire, "sleep_ms", no_wait)
    m = FakeModem()
    calls = []

    async def signal():
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("memory allocation failed, allocating 256 bytes")
        return -71, 0
    m.signal = signal
    a, _sp, clock, _w = make(tmp_path, modem=m, gnss_source="none")

    async def go():
        t = asyncio.create_task(a.run_modem())
        for _ in range(100):  # bounded: each turn advances the fake clock past _SIGNAL_MS
            await asyncio.sleep(0)
            clock.t += 60000
            if a.rssi_dbm is not None:
                break
        t.cancel()
    asyncio.run(go())
    assert a.modem_errors == 1 and isinstance(a.last_error, MemoryError)
    assert a.rssi_dbm == -71 and len(calls) >= 2
