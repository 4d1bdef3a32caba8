"""Acquisition: sources polled into a cache, and records made from it on a fixed schedule.

Owns the pollers and the sampler.  Pollers talk to slow things and keep the
latest reading with its tick: the modem (GNSS fix via ``Modem.gnss_fix``,
signal every 10 s, clock sync hourly through the link owner: NTP via ``AT+CNTP``
then ``AT+CCLK?``, ``atmq.link.Link.network_time``),
an NMEA receiver on its own UART (``NmeaReader``), OBD-II (``obd.Elm327``,
tiered polling; vehicle battery from ``ATRV``).  The sampler never waits for
the modem (a publish can hold the AT channel for its PUBACK): at every
interval from ``motion.Motion`` it builds one ``Record`` from readings that are
fresh enough (a fix older than ``fix_max_age_ms`` is left out: no stale or
0,0 positions), stamps it (``seqno``, ``timesrc``) and appends it to the spool.
"""

import asyncio

from atmq.compat import const, sleep_ms, ticks_add, ticks_diff, ticks_ms
from atmq.errors import ModemError
from atmq.fix import Fix

from .motion import STANDBY
from .records import PACKED_MAX, Record, pack_into

_SIGNAL_MS = const(10000)  # the anchor's SIGNAL_CHECK_INTERVAL
_CLOCK_MS = const(3600000)
_GNSS_RETRY_MS = const(60000)
_OBD_RETRY_MS = const(30000)
_BATT_MS = const(5000)
_JUMP_RESET = const(3)


class Acquisition:
    """Readings cache + sampler; ``tasks()`` lists the coroutines the app starts."""

    def __init__(self, cfg, spool, seq, clock_src, motion, modem=None, elm=None, nmea=None,
                 temp=None, wd=None, clock=ticks_ms, on_record=None, link_up=None, link=None,
                 rec=None):
        self.cfg = cfg
        self.spool = spool
        self.seq = seq
        self.time = clock_src
        self.motion = motion
        self.modem = modem
        if link is None and modem is not None:
            from atmq.link import Link

            link = Link(modem)
        self.link = link  # the owner of AT+CNTP / AT+CCLK (atmq.link)
        self.elm = elm
        self.nmea = nmea
        self.temp = temp  # callable -> temp_dc or None
        self.wd = wd
        self.clock = clock
        self.on_record = on_record
        self.fix = Fix()
        self.fix_tick = 0
        self.fix_max_age_ms = 3000
        self.rssi_dbm = None
        self.rssi_tick = 0
        self.batt_mv = None
        self.batt_tick = 0
        self.ntp_synced = False
        self.ntp_timeout_ms = 65000  # the +CNTP result may take this long (bad coverage)
        self._ref_lat = self._ref_lon = self._ref_tick = 0  # last accepted fix (jump filter)
        self._rejects = 0
        self.jumps = 0  # fixes dropped as implausible jumps
        self.link_up = link_up  # asyncio.Event set while the data link is up (NTP needs it)
        # the Record filled by sample(): the uplink's scratch one when given (tlog.app; both
        # fill it within one synchronous step, never across an await: ~0.3 KB, issue 11)
        self._rec = Record() if rec is None else rec
        self._buf = bytearray(PACKED_MAX)
        self._mv = memoryview(self._buf)
        # counters (health)
        self.records = 0
        self.errors = 0
        self.gnss_errors = 0
        self.modem_errors = 0
        self.last_error = None

    # ---- the sampler ----------------------------------------------------------------------

    def _fresh(self, tick, max_age_ms):
        return tick and ticks_diff(self.clock(), tick) <= max_age_ms

    def sample(self):
        """Make one record from the cache and append it to the spool; returns the record."""
        r = self._rec
        r.clear()
        now = self.clock()
        if self.fix.valid and self._fresh(self.fix_tick, self.fix_max_age_ms):
            r.take_fix(self.fix)
            self.motion.speed(self.fix.speed_ckmh)
        elm = self.elm
        if elm is not None and elm.connected:
            rt = elm.read_ms
            vals = elm.values
            for pid in vals:
                v = vals[pid]
                t = rt[pid]
                if v is not None and t is not None and ticks_diff(now, t) <= 5000 \
                        and r.n_obd < 16:
                    r.add_obd(pid, v)
            v = vals.get(0x0D)
            if v is not None and self._fresh(rt.get(0x0D), 5000):
                self.motion.speed(v * 100)
            v = vals.get(0x0C)
            if v is not None and self._fresh(rt.get(0x0C), 5000):
                self.motion.rpm(v)
        if self.batt_mv is not None and self._fresh(self.batt_tick, 30000):
            r.batt_mv = self.batt_mv
            self.motion.battery(self.batt_mv)
        if self.rssi_dbm is not None and self._fresh(self.rssi_tick, 60000):
            r.rssi_dbm = self.rssi_dbm
        if self.temp is not None:
            t = self.temp()
            if t is not None:
                r.temp_dc = int(t)
        ts, src = self.time.now()
        r.set_time(ts, src)
        r.seq = self.seq.next()
        n = pack_into(r, self._buf, 0)
        self.spool.append(self._mv[:n])
        self.records += 1
        if self.on_record is not None:
            self.on_record()
        return r

    async def run_sampler(self):
        due = self.clock()
        while True:
            try:
                self.sample()
                if self.wd is not None:
                    self.wd.beat("acquire")  # progress: a record made and spooled
            except Exception as e:  # a bad reading or a flash error: count, keep sampling
                self.errors += 1
                self.last_error = e
            self.motion.update()
            due = ticks_add(due, self.motion.interval_ms())
            wait = ticks_diff(due, self.clock())
            if wait < 0:  # fell behind (flash stall): restart the schedule from now
                due = self.clock()
                wait = 0
            await sleep_ms(wait)

    # ---- modem poller -----------------------------------------------------------------------

    async def sync_clock(self):
        """NTP through the modem when the data link is up, else its network time; the AT
        side (AT+CNTP, its later +CNTP result, AT+CCLK?) is the link owner's."""
        lk = self.link
        if lk is None:
            return False
        use_ntp = self.link_up is not None and self.link_up.is_set()
        s, ntp = await lk.network_time(use_ntp, self.ntp_timeout_ms)
        if lk.last_time_error is not None:
            self.modem_errors += 1
            if isinstance(lk.last_time_error, ModemError):
                self.last_error = lk.last_time_error
        self.ntp_synced = self.ntp_synced or ntp
        return self.time.offer_modem(s, ntp)

    async def locate(self, timeout_ms=10000):
        """A fresh fix now (command ``locate``): the Fix, or None when there is none."""
        m = self.modem
        deadline = ticks_add(self.clock(), timeout_ms)
        if self.nmea is not None or m is None or m.gnss_set is None:
            t0 = self.fix_tick
            while ticks_diff(deadline, self.clock()) > 0:
                if self.fix.valid and self.fix_tick != t0:
                    return self.fix
                await sleep_ms(200)
            return None
        if not m.gnss_on:
            await m.gnss(True)
        while True:
            if await m.gnss_fix(self.fix) and self._got_fix():
                return self.fix
            if ticks_diff(deadline, self.clock()) <= 1000:
                return None
            await sleep_ms(1000)

    def _got_fix(self):
        """A valid fix arrived in ``self.fix``: keep it (and its time) unless it jumped.

        The anchor's GNSS jump filter, by speed instead of a fixed 0.001 degree: a fix
        farther from the last accepted one than 100 m/s could travel (+200 m) is dropped;
        after ``_JUMP_RESET`` drops in a row it is taken as the new reference (the receiver
        was right and the reference was the outlier)."""
        now = self.clock()
        f = self.fix
        if self._ref_tick:
            dt = ticks_diff(now, self._ref_tick)
            dlat = f.lat_e7 - self._ref_lat
            dlon = f.lon_e7 - self._ref_lon
            d = max(dlat if dlat >= 0 else -dlat, dlon if dlon >= 0 else -dlon)
            # 1e-7 degree of latitude is 1.11 cm (longitude never longer): d // 9 is in
            # 10 cm units, and 100 m/s is 10 cm per ms
            if d // 9 > dt + 2000 and self._rejects < _JUMP_RESET:  # in 10 cm units
                self._rejects += 1
                self.jumps += 1
                f.valid = False
                return False
        self._rejects = 0
        self._ref_lat = f.lat_e7
        self._ref_lon = f.lon_e7
        self._ref_tick = now or 1
        self.fix_tick = now or 1
        self.time.offer_fix(self.fix)
        return True

    async def run_modem(self):
        """GNSS (when the modem is the source), signal and clock, each at its own pace."""
        m = self.modem
        use_gnss = self.cfg.get("gnss_source") == "modem"
        last_sig = last_clk = last_gnss_try = None
        while True:
            now = self.clock()
            if m is not None and m.inited:
                try:
                    if last_sig is None or ticks_diff(now, last_sig) >= _SIGNAL_MS:
                        last_sig = now
                        dbm, _ber = await m.signal()
                        if dbm is not None:
                            self.rssi_dbm = dbm
                            self.rssi_tick = now or 1
                    if last_clk is None or ticks_diff(now, last_clk) >= _CLOCK_MS or (
                            not self.ntp_synced and self.link_up is not None
                            and self.link_up.is_set() and ticks_diff(now, last_clk) >= 60000):
                        last_clk = now
                        await self.sync_clock()
                    if use_gnss and m.gnss_set is not None:
                        if not m.gnss_on and (last_gnss_try is None or
                                              ticks_diff(now, last_gnss_try) >= _GNSS_RETRY_MS):
                            last_gnss_try = now
                            await m.gnss(True)
                        if m.gnss_on and self.motion.state != STANDBY:
                            if await m.gnss_fix(self.fix):
                                self._got_fix()
                except (ModemError, MemoryError) as e:
                    # timeouts while the modem reboots, or a heap at its peak: again later
                    # (the poller must outlive both: it keeps signal, clock and fix fresh)
                    self.modem_errors += 1
                    self.last_error = e
            if self.wd is not None:
                self.wd.beat("modem_poll")
            iv = self.motion.interval_ms()
            await sleep_ms(iv if iv < 5000 else 5000)

    # ---- OBD ------------------------------------------------------------------------------

    async def run_obd(self):
        elm = self.elm
        if elm is None:
            return
        while True:
            got = await elm.poll_cycle()
            if got < 0:
                await sleep_ms(_OBD_RETRY_MS)  # ignition off or no adapter: poll slowly
                continue
            now = self.clock()
            if self.batt_tick == 0 or ticks_diff(now, self.batt_tick) >= _BATT_MS:
                mv = await elm.read_battery_mv()
                if mv is not None:
                    self.batt_mv = mv
                    self.batt_tick = now or 1
            iv = self.motion.interval_ms()
            await sleep_ms(iv // 2 if iv > 1000 else 200)

    def tasks(self):
        out = []
        out.append(self.run_sampler())
        out.append(self.run_modem())
        if self.elm is not None:
            out.append(self.run_obd())
        if self.nmea is not None:
            out.append(self.nmea.run(self))
        return out


class NmeaReader:
    """An NMEA receiver on its own UART: keeps ``acq.fix`` current (RMC/GGA/GNS)."""

    def __init__(self, stream, size=128):
        from atmq.nmea import LineAssembler  # only with an external receiver: ~2 KB of heap

        self.stream = stream
        self.lines = LineAssembler(size)
        self._chunk = bytearray(64)
        self.fixes = 0

    async def run(self, acq):
        from atmq.compat import wait_readable

        s = self.stream
        buf = self._chunk
        while True:
            n = s.readinto(buf)
            if not n:
                await wait_readable(s)
                continue
            if self.lines.feed(buf, n, acq.fix):
                self.fixes += 1
                acq.fix.update_epoch()
                acq._got_fix()
            await asyncio.sleep(0)
