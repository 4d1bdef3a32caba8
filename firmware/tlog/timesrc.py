"""Wall-clock time for records, and where it came from: GNSS, NTP, modem clock or uptime.

Owns the choice of time source.  Rank, best first: a GNSS fix with a date
(``TS_GNSS``), the modem clock right after an ``AT+CNTP`` sync (``TS_NTP``),
the modem clock set by the network (``AT+CCLK?``, ``TS_MODEM``).  A better
source always wins; a worse one replaces the current one only when that is
older than ``stale_ms`` (a GNSS time from yesterday is worse than NTP now).
Without any, ``now()`` returns seconds since boot and says ``TS_UPTIME`` (the
anchor sends ``millis()`` and never says so).  The tick clock wraps (2**30 ms
on the ESP32), so the base is carried forward at least once a day.
"""

from atmq.compat import const, ticks_add, ticks_diff, ticks_ms

from .records import TS_GNSS, TS_MODEM, TS_NTP, TS_UPTIME

UNIX_2000 = const(946684800)  # 2000-01-01 in Unix seconds (atmq.fix epoch)
_CARRY_MS = const(86400000)  # re-base once a day: far from the ticks_diff sign flip
_MIN_UNIX = const(1577836800)  # 2020-01-01: anything earlier is a module without time
_RANK = (0, 2, 1, 3)  # by TS_* value (gnss, modem, ntp, uptime): lower is better


class TimeSource:
    def __init__(self, clock=ticks_ms, stale_ms=3600000):
        self.clock = clock
        self.stale_ms = stale_ms
        t = clock()
        self._up_tick = t
        self._up_s = 0
        self._base_tick = t
        self._base_s = 0  # Unix seconds at _base_tick (0: no wall clock yet)
        self.src = TS_UPTIME
        self.synced_tick = t
        self.syncs = [0, 0, 0, 0]  # accepted updates per source
        self.refused = 0  # updates ignored (worse source, or an implausible time)

    def _carry(self):
        now = self.clock()
        d = ticks_diff(now, self._up_tick)
        if d >= _CARRY_MS:
            self._up_s += d // 1000
            self._up_tick = ticks_add(self._up_tick, (d // 1000) * 1000)
        if self._base_s:
            d = ticks_diff(now, self._base_tick)
            if d >= _CARRY_MS:
                self._base_s += d // 1000
                self._base_tick = ticks_add(self._base_tick, (d // 1000) * 1000)
        return now

    def uptime_s(self):
        now = self._carry()
        return self._up_s + ticks_diff(now, self._up_tick) // 1000

    def offer(self, unix_s, src):
        """A time reading from ``src``; True when it became the clock."""
        if unix_s is None or unix_s < _MIN_UNIX or src < TS_GNSS or src >= TS_UPTIME:
            self.refused += 1
            return False
        now = self._carry()
        have = self._base_s != 0
        stale = ticks_diff(now, self.synced_tick) >= self.stale_ms
        if have and _RANK[src] > _RANK[self.src] and not stale:
            self.refused += 1
            return False
        self._base_s = unix_s
        self._base_tick = now
        self.src = src
        self.synced_tick = now
        self.syncs[src] += 1
        return True

    def offer_fix(self, fix):
        """A GNSS fix: its UTC time counts only when it is valid and carries a date."""
        if not fix.valid or not fix.epoch_s:
            return False
        return self.offer(fix.epoch_s + UNIX_2000, TS_GNSS)

    def offer_modem(self, s2000, ntp=False):
        """``Modem.clock()`` (seconds since 2000, or None): NTP-synced or network time."""
        if s2000 is None:
            return False
        return self.offer(s2000 + UNIX_2000, TS_NTP if ntp else TS_MODEM)

    def now(self):
        """(seconds, source): Unix seconds with the source, or uptime with TS_UPTIME."""
        now = self._carry()
        if not self._base_s:
            return self._up_s + ticks_diff(now, self._up_tick) // 1000, TS_UPTIME
        return self._base_s + ticks_diff(now, self._base_tick) // 1000, self.src

    def name(self):
        return ("gnss", "modem", "ntp", "uptime")[self.src]
