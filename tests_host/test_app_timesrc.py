"""tlog.timesrc: GNSS beats NTP beats the modem's network clock; a worse source replaces a
better one only once that went stale; no clock at all means uptime, and records say so."""

from app_fakes import Clock

from atmq.fix import Fix
from tlog.records import TS_GNSS, TS_MODEM, TS_NTP, TS_UPTIME
from tlog.timesrc import UNIX_2000, TimeSource

T = 1795305598  # 2026-11-21T...Z


def test_uptime_until_a_clock_is_known():
    c = Clock()
    ts = TimeSource(c)
    c.advance(12500)
    assert ts.now() == (12, TS_UPTIME) and ts.name() == "uptime"


def test_rank_and_staleness():
    c = Clock()
    ts = TimeSource(c, stale_ms=3600000)
    assert ts.offer(T, TS_MODEM) and ts.now() == (T, TS_MODEM)
    c.advance(2000)
    assert ts.offer(T + 5, TS_NTP) and ts.now() == (T + 5, TS_NTP)  # NTP beats network time
    assert not ts.offer(T + 100, TS_MODEM)  # worse and NTP is fresh: refused
    assert ts.now() == (T + 5, TS_NTP)
    assert ts.offer(T + 7, TS_GNSS) and ts.now() == (T + 7, TS_GNSS)
    assert not ts.offer(T + 9, TS_NTP)
    c.advance(3600001)  # GNSS stale: NTP may take over again
    assert ts.offer(T + 3700, TS_NTP) and ts.src == TS_NTP
    assert ts.refused == 2 and ts.syncs == [1, 1, 2, 0]


def test_implausible_times_refused():
    ts = TimeSource(Clock())
    assert not ts.offer(0, TS_MODEM)
    assert not ts.offer(315964800, TS_MODEM)  # 1980: a module without network time
    assert not ts.offer(T, TS_UPTIME)
    assert not ts.offer_modem(None)
    assert ts.now()[1] == TS_UPTIME


def test_fix_time_only_with_a_date():
    c = Clock()
    ts = TimeSource(c)
    f = Fix()
    f.valid = True
    f.hh, f.mm, f.ss = 12, 0, 0
    f.update_epoch()  # no date: no epoch
    assert not ts.offer_fix(f)
    f.year, f.month, f.day = 2026, 11, 21
    f.update_epoch()
    assert ts.offer_fix(f) and ts.now() == (f.epoch_s + UNIX_2000, TS_GNSS)
    f.valid = False
    assert not ts.offer_fix(f)


def test_modem_clock_and_ntp_flag():
    ts = TimeSource(Clock())
    assert ts.offer_modem(T - UNIX_2000) and ts.now() == (T, TS_MODEM)
    assert ts.offer_modem(T - UNIX_2000 + 1, ntp=True) and ts.now() == (T + 1, TS_NTP)


def test_runs_past_tick_wrap_and_many_days():
    c = Clock((1 << 30) - 5000)  # five seconds before the ESP32 tick wrap
    ts = TimeSource(c)
    ts.offer(T, TS_NTP)
    for _ in range(30):  # 30 days in 1-hour steps, each now() carries the base
        for _ in range(24):
            c.advance(3600000)
            c.t &= (1 << 30) - 1
            ts.now()
    assert ts.now() == (T + 30 * 86400, TS_NTP)
    assert ts.uptime_s() == 30 * 86400
