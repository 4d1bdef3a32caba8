"""OBD-II through an ELM327-compatible adapter: link setup, PID decoding, tiered polling.

Owned here: the ELM327 command/response exchange over a non-blocking byte
stream (``readinto``/``write``; waits are deadline-bounded sleep-polls, see
``command``), the supported-PID bitmap, SAE J1979 mode 01 decoding into scaled
ints, VIN (mode 09 PID 02), stored DTCs (mode 03), battery voltage (ATRV),
and the tiered poll cycle with error counting and re-initialisation.

ELM327 behaviour relied on (ELM327 data sheet): a command is ASCII ending in
CR; the answer is CR-separated lines ending with the ``>`` prompt; nothing may
be sent before the prompt (a byte sent while busy aborts the command and the
adapter prints ``STOPPED``).  Status lines: ``SEARCHING...``, ``BUS INIT: ...``
(then ``OK`` or ``ERROR``), ``NO DATA``, ``UNABLE TO CONNECT``, ``CAN ERROR``,
``BUS ERROR``, ``BUS BUSY``, ``DATA ERROR``, ``BUFFER FULL``, ``FB ERROR``,
``<RX ERROR``, ``LV RESET``, ``ERRnn``, ``?`` (unknown command).

Units of decoded values (``pid_unit``): temperatures degC, speed km/h, rpm,
percentages in 0.1 %, MAF 0.01 g/s, timing advance 0.1 deg, module voltage
mV, fuel rate 0.01 L/h, pressures kPa, distances km, times s/min.
"""

from atmq.compat import const, sleep_ms, ticks_add, ticks_diff, ticks_ms
from atmq.gnssparse import hexval  # the field helpers' hex digit (loaded with the GNSS parser)

# Result of one exchange (``Elm327.result``)
R_OK = const(0)  # data or OK lines before the prompt
R_NO_DATA = const(1)
R_UNABLE = const(2)  # UNABLE TO CONNECT: no ECU answered (ignition off?)
R_CAN_ERROR = const(3)
R_BUS_INIT = const(4)  # BUS INIT: ...ERROR (ISO 9141 / 14230 init failed)
R_UNKNOWN = const(5)  # '?': the adapter did not understand the command
R_STOPPED = const(6)
R_BUS = const(7)  # BUS ERROR, BUS BUSY, DATA ERROR, FB ERROR, <RX ERROR, ERRnn, LV RESET
R_BUFFER_FULL = const(8)
R_TIMEOUT = const(9)  # no prompt before the deadline
R_OVERFLOW = const(10)  # the answer did not fit the receive buffer
R_BAD_ANSWER = const(11)  # prompt seen, but no line answered the request

RESULT_NAMES = ("OK", "NO DATA", "UNABLE TO CONNECT", "CAN ERROR", "BUS INIT ERROR",
                "UNKNOWN COMMAND", "STOPPED", "BUS ERROR", "BUFFER FULL", "TIMEOUT",
                "OVERFLOW", "BAD ANSWER")

_PROMPT = const(62)  # '>'
_CR = const(13)
_LF = const(10)
_SPACE = const(32)
_COLON = const(58)
_MAX_LINES = const(24)
_HEX = const(b"0123456789ABCDEF")
_POLL_MAX_MS = const(8)
_FIRST_RETRY_MS = const(2000)

SHORT_MS = const(1000)  # per PID, as the anchor's OBD link timeout
LONG_MS = const(10000)  # protocol search after ATSP0 and multi-frame answers
RESET_MS = const(3000)

# Status lines -> result, matched as prefixes (ELM327 data sheet "Messages").
_STATUS = const((
    (b"NO DATA", R_NO_DATA),
    (b"UNABLE TO CONNECT", R_UNABLE),
    (b"CAN ERROR", R_CAN_ERROR),
    (b"STOPPED", R_STOPPED),
    (b"BUFFER FULL", R_BUFFER_FULL),
    (b"BUS ERROR", R_BUS),
    (b"BUS BUSY", R_BUS),
    (b"DATA ERROR", R_BUS),
    (b"FB ERROR", R_BUS),
    (b"<RX ERROR", R_BUS),
    (b"LV RESET", R_BUS),
    (b"ERR", R_BUS),
    (b"?", R_UNKNOWN),
))

# Mode 01 PIDs decoded here: (pid, data bytes of its answer (SAE J1979 / ISO 15031-5 PID
# table), unit of the decoded value).  One tuple of constants: frozen, it stays in flash (two
# dicts built at import took ~1.2 KB of heap); looked up by a short scan, allocation free.
_PIDS = const((
    (0x04, 1, "load_0.1%"), (0x05, 1, "coolant_C"),
    (0x06, 1, "stft1_0.1%"), (0x07, 1, "ltft1_0.1%"),
    (0x08, 1, "stft2_0.1%"), (0x09, 1, "ltft2_0.1%"),
    (0x0A, 1, "fuel_pressure_kPa"), (0x0B, 1, "map_kPa"),
    (0x0C, 2, "rpm"), (0x0D, 1, "speed_kmh"),
    (0x0E, 1, "timing_0.1deg"), (0x0F, 1, "intake_C"),
    (0x10, 2, "maf_0.01gps"), (0x11, 1, "throttle_0.1%"),
    (0x1F, 2, "runtime_s"), (0x21, 2, "mil_distance_km"),
    (0x22, 2, "fuel_rail_rel_0.001kPa"), (0x23, 2, "fuel_rail_kPa"),
    (0x2C, 1, "egr_0.1%"), (0x2F, 1, "fuel_0.1%"),
    (0x30, 1, "warmups"), (0x31, 2, "clear_distance_km"),
    (0x33, 1, "baro_kPa"), (0x3C, 2, "cat_temp_0.1C"),
    (0x42, 2, "module_mV"), (0x43, 2, "abs_load_0.1%"),
    (0x45, 1, "rel_throttle_0.1%"), (0x46, 1, "ambient_C"),
    (0x47, 1, "throttle_b_0.1%"), (0x49, 1, "pedal_d_0.1%"),
    (0x4A, 1, "pedal_e_0.1%"), (0x4C, 1, "cmd_throttle_0.1%"),
    (0x4D, 2, "mil_time_min"), (0x4E, 2, "clear_time_min"),
    (0x51, 1, "fuel_type"), (0x52, 1, "ethanol_0.1%"),
    (0x5A, 1, "rel_pedal_0.1%"), (0x5B, 1, "hybrid_batt_0.1%"),
    (0x5C, 1, "oil_C"), (0x5E, 2, "fuel_rate_0.01Lph"),
    (0x61, 1, "demand_torque_%"), (0x62, 1, "actual_torque_%"),
    (0x63, 2, "ref_torque_Nm"), (0xA6, 4, "odometer_0.1km"),
))


def _pid_row(pid):
    for row in _PIDS:
        if row[0] == pid:
            return row
    return None


def pids():
    """The decoded PIDs, ascending."""
    return [row[0] for row in _PIDS]


def pid_unit(pid):
    """The unit of a decoded PID's value (e.g. "rpm", "coolant_C"), None if not decoded."""
    row = _pid_row(pid)
    return None if row is None else row[2]


_PCT1 = const((0x04, 0x11, 0x2C, 0x2F, 0x45, 0x47, 0x49, 0x4A, 0x4C, 0x52, 0x5A, 0x5B))
_TEMP1 = const((0x05, 0x0F, 0x46, 0x5C))
_TRIM = const((0x06, 0x07, 0x08, 0x09))
_RAW16 = const((0x10, 0x1F, 0x21, 0x31, 0x42, 0x4D, 0x4E, 0x63))
_RAW8 = const((0x0B, 0x0D, 0x30, 0x33, 0x51))


def pid_len(pid):
    """Data bytes of a decoded PID's answer, 0 for PIDs this module does not decode."""
    row = _pid_row(pid)
    return 0 if row is None else row[1]


def decode_pid(pid, a, b=0, c=0, d=0):
    """SAE J1979 mode 01 formula -> scaled int (units: ``pid_unit``); None if unknown."""
    if pid in _PCT1:
        return (a * 1000 + 127) // 255  # A*100/255 %, in 0.1 %
    if pid in _TEMP1:
        return a - 40
    if pid in _RAW8:
        return a
    if pid in _RAW16:
        return a * 256 + b
    if pid in _TRIM:
        return ((a - 128) * 1000) // 128 if a >= 128 else -(((128 - a) * 1000) // 128)
    if pid == 0x0C:
        return (a * 256 + b) >> 2  # (256A+B)/4 rpm
    if pid == 0x0E:
        return a * 5 - 640  # A/2 - 64 deg, in 0.1 deg
    if pid == 0x0A:
        return a * 3
    if pid == 0x22:
        return (a * 256 + b) * 79  # 0.079 kPa per bit, in 0.001 kPa
    if pid == 0x23:
        return (a * 256 + b) * 10
    if pid == 0x3C:
        return a * 256 + b - 400  # (256A+B)/10 - 40 degC, in 0.1 degC
    if pid == 0x43:
        return ((a * 256 + b) * 1000 + 127) // 255
    if pid == 0x5E:
        return (a * 256 + b) * 5  # (256A+B)/20 L/h, in 0.01 L/h
    if pid == 0x61 or pid == 0x62:
        return a - 125
    if pid == 0xA6:
        return (a << 24) | (b << 16) | (c << 8) | d
    return None


def dtc_code(a, b):
    """Two DTC bytes -> 'P0133' etc. (first two bits: P, C, B, U; SAE J2012)."""
    return "PCBU"[a >> 6] + "%X%X%02X" % ((a >> 4) & 3, a & 15, b)


def hex_bytes(buf, s, e, out, off):
    """Hex pairs (spaces allowed between bytes) of buf[s:e] -> out[off:]; count or -1."""
    n = 0
    cap = len(out)
    while s < e:
        c = buf[s]
        if c == _SPACE:
            s += 1
            continue
        if s + 1 >= e:
            return -1
        hi = hexval(c)
        lo = hexval(buf[s + 1])
        if hi < 0 or lo < 0 or off + n >= cap:
            return -1
        out[off + n] = hi << 4 | lo
        n += 1
        s += 2
    return n


class Elm327:
    """One ELM327 on a stream; one exchange at a time (callers share it via one task).

    ``tier1``/``tier2``/``tier3`` are tuples of mode 01 PIDs.  Tier 1 is read
    every cycle; the i-th PID of tier 2 (3) on cycles where (cycle + i) is a
    multiple of ``every2`` (``every3``), so lower tiers are spread over cycles
    instead of bunching.  Only PIDs the ECU lists in its supported bitmap are
    read.  ``max_failures`` failed exchanges in a row mark the link down and
    the next ``poll_cycle`` re-runs ``init`` (with a back-off after failures).
    """

    def __init__(self, stream, tier1=(0x0D, 0x0C, 0x11, 0x04), tier2=(0x0A, 0x0E, 0x10, 0x2F),
                 tier3=(0x05, 0x0F, 0x33, 0x42, 0x46, 0x1F, 0x21, 0x5E), every2=3, every3=9,
                 max_failures=3, spaces=False, rx_size=256, max_retry_ms=60000,
                 clock=ticks_ms):
        self.stream = stream
        self.tier1 = tier1
        self.tier2 = tier2
        self.tier3 = tier3
        self.every2 = every2
        self.every3 = every3
        self.max_failures = max_failures
        self.spaces = spaces  # ATS0 (default) halves the bytes on the wire
        # one answer up to the prompt: 8 ECUs answering a PID with headers are ~170 bytes,
        # a VIN (0902, three CAN frames) ~60; longer is R_OVERFLOW, counted, never cut
        self._rx = bytearray(rx_size)
        self._chunk = bytearray(64)
        self._rxn = 0
        self._tx = bytearray(24)
        # exact-length views of _tx, each made the first time its length is sent (a few
        # lengths are: "010C\r", the AT commands of init), then reused: no slice per
        # exchange, and not 25 views (~0.5 KB) made ahead (issue 11)
        self._txv = [None] * (len(self._tx) + 1)  # type: list
        self._overflow = False
        self._cmd_pid = bytearray(4)
        self._data = bytearray(64)
        self._ls = [0] * _MAX_LINES  # data line bounds inside _rx after an exchange
        self._le = [0] * _MAX_LINES
        self.nlines = 0
        self.result = R_OK
        self.supported = bytearray(32)  # bit (pid) set = mode 01 PID supported, 0x00..0xFF
        self.protocol = 0  # ATDPN number: 1..5 legacy, 6..C CAN
        self.version = ""
        self.connected = False
        self.cycle = 0
        self.failures = 0  # failed exchanges in a row
        self.errors = 0  # failed exchanges since start
        self.timeouts = 0
        self.reinits = 0  # init attempts, the first included
        self.clock = clock
        self.max_retry_ms = max_retry_ms
        self._retry_ms = _FIRST_RETRY_MS
        self._retry_at = None
        self.exchanges = 0
        pids = {}
        for t in (tier1, tier2, tier3):
            for p in t:
                pids[p] = None
        self.values = pids  # pid -> last decoded value (None until read)
        self.read_ms = dict(pids)  # pid -> ticks_ms() of the last good read
        self.pid_errors = {}
        for p in pids:
            self.pid_errors[p] = 0

    # ---- one exchange -------------------------------------------------------------

    def _drain(self):
        """Discard bytes left over from an earlier (timed-out) answer."""
        s = self.stream
        n = 0
        while True:
            k = s.readinto(self._chunk)
            if not k:
                return n
            n += k

    async def _write_rest(self, off, n):
        """Finish a partial write of _tx[off:n] (rare: the UART FIFO was full)."""
        mv = memoryview(self._tx)
        s = self.stream
        deadline = ticks_add(ticks_ms(), SHORT_MS)
        step = 1
        while off < n:
            k = s.write(mv[off:n])
            if k:
                off += k
                continue
            left = ticks_diff(deadline, ticks_ms())
            if left <= 0:
                return False
            await sleep_ms(step if step < left else left)
            step = step * 2 if step < _POLL_MAX_MS else _POLL_MAX_MS
        return True

    def _pump(self):
        """Move what the stream has into _rx; True once the '>' prompt arrived."""
        s = self.stream
        rx = self._rx
        chunk = self._chunk
        cap = len(rx)
        while True:
            k = s.readinto(chunk)
            if not k:
                return False
            pos = self._rxn
            i = 0
            while i < k:
                c = chunk[i]
                i += 1
                if c == _PROMPT:
                    self._rxn = pos
                    return True
                if pos < cap:
                    rx[pos] = c
                    pos += 1
                else:
                    self._overflow = True
            self._rxn = pos

    async def command(self, cmd, timeout_ms=SHORT_MS):
        """Send ``cmd`` (bytes, no CR) and collect the answer; returns an R_* result.

        Data lines (echo and SEARCHING/BUS INIT progress removed) are indexed for
        ``line(i)``/``decode_line``; status lines set the result.  Waits are
        sleep-polls with a 1 -> 8 ms back-off, not ``wait_for_ms(wait_readable())``:
        on the unix port the wait_for task cost ~4.7 KB per exchange, a sleep-poll
        nothing, and <= 8 ms of added latency is small next to an ECU's 30-100 ms.
        The exchange is inline so that it costs one coroutine frame.
        """
        self.exchanges += 1
        self._drain()
        tx = self._tx
        n = len(cmd)
        i = 0
        while i < n:
            tx[i] = cmd[i]
            i += 1
        tx[n] = _CR
        n += 1
        k = self.stream.write(self._view(n))
        if k is None:
            k = 0
        r = R_OK
        if k < n and not await self._write_rest(k, n):
            r = R_TIMEOUT
        if r == R_OK:
            self._rxn = 0
            self._overflow = False
            deadline = ticks_add(ticks_ms(), timeout_ms)
            step = 1
            while not self._pump():
                left = ticks_diff(deadline, ticks_ms())
                if left <= 0:
                    r = R_TIMEOUT
                    break
                await sleep_ms(step if step < left else left)
                step = step * 2 if step < _POLL_MAX_MS else _POLL_MAX_MS
        if r == R_TIMEOUT:
            self.timeouts += 1
            await self._resync()
        elif self._overflow:
            r = R_OVERFLOW
        else:
            r = self._split(cmd)
        self.result = r
        return r

    def _view(self, n):
        """The first ``n`` bytes of ``_tx`` (a view made once per length)."""
        v = self._txv[n]
        if v is None:
            v = self._txv[n] = memoryview(self._tx)[:n]
        return v

    async def _resync(self):
        # Any byte aborts a running command (the adapter answers STOPPED and '>').
        self._tx[0] = _CR
        self.stream.write(self._view(1))
        self._rxn = 0
        deadline = ticks_add(ticks_ms(), 300)
        while not self._pump() and ticks_diff(deadline, ticks_ms()) > 0:
            await sleep_ms(4)
        self._rxn = 0
        self.nlines = 0

    def _split(self, cmd):
        rx = self._rx
        end = self._rxn
        i = 0
        self.nlines = 0
        result = R_OK
        clen = len(cmd)
        while i < end:
            j = i
            while j < end and rx[j] != _CR and rx[j] != _LF:
                j += 1
            s = i
            e = j
            i = j + 1
            while s < e and rx[s] == _SPACE:
                s += 1
            while e > s and rx[e - 1] == _SPACE:
                e -= 1
            if s == e:
                continue
            if e - s == clen and _same(rx, s, cmd, clen):
                continue  # echo (before ATE0 takes effect)
            if rx.startswith(b"SEARCHING", s):
                continue
            if rx.startswith(b"BUS INIT", s):
                if rx.find(b"ERROR", s, e) >= 0:
                    result = R_BUS_INIT
                continue
            st = self._status(s, e)
            if st >= 0:
                if result == R_OK:
                    result = st
                continue
            if self.nlines < _MAX_LINES:
                self._ls[self.nlines] = s
                self._le[self.nlines] = e
                self.nlines += 1
        return result

    def _status(self, s, e):
        rx = self._rx
        for prefix, r in _STATUS:
            if rx.startswith(prefix, s):
                if r == R_BUS and prefix == b"ERR" and e - s > 5:
                    return -1  # "ERRnn" only; longer text starting ERR is not a code
                return r
        return -1

    def line(self, i):
        """Line i of the last answer as bytes (allocates; for logs and ATI/ATRV)."""
        return bytes(self._rx[self._ls[i]:self._le[i]])

    def decode_line(self, i):
        """Hex bytes of data line i into the scratch ``_data``; count or -1."""
        return hex_bytes(self._rx, self._ls[i], self._le[i], self._data, 0)

    def _count(self, r):
        if r == R_OK:
            self.failures = 0
            return True
        self.errors += 1
        self.failures += 1
        if self.failures >= self.max_failures:
            self.connected = False
        return False

    # ---- setup --------------------------------------------------------------------

    async def init(self):
        """Reset and configure the adapter, find the protocol, read the PID bitmaps.

        True when an ECU answered 0100; ``result`` says why not otherwise.
        """
        self.connected = False
        self.reinits += 1
        await self._resync()
        r = await self.command(b"ATZ", RESET_MS)
        if r != R_OK:
            return False
        for i in range(self.nlines):
            if self._rx.find(b"ELM", self._ls[i], self._le[i]) >= 0:
                self.version = self.line(i).decode()
        setup = (b"ATE0", b"ATL0", b"ATS1" if self.spaces else b"ATS0", b"ATH0", b"ATSP0")
        for c in setup:
            r = await self.command(c)
            if r != R_OK:
                return False
        for i in range(32):
            self.supported[i] = 0
        base = 0
        while base <= 0xE0:
            # 0100 triggers the protocol search: allow the long timeout.
            self._tx_pid(base)
            r = await self.command(self._cmd_pid, LONG_MS if base == 0 else SHORT_MS)
            if r != R_OK or not self._bitmap(base):
                if base == 0:
                    if r == R_OK:
                        self.result = R_BAD_ANSWER
                    return False
                break
            if not self.is_supported(base + 0x20):
                break
            base += 0x20
        r = await self.command(b"ATDPN")
        if r == R_OK and self.nlines:
            s = self._ls[0]
            e = self._le[0]
            if e > s and self._rx[s] == 65:  # 'A' = chosen by auto search
                s += 1
            self.protocol = hexval(self._rx[s]) if e > s else 0
        self.connected = True
        self.failures = 0
        return True

    def _bitmap(self, base):
        """OR the 4-byte bitmaps of every ECU that answered 41 <base>."""
        seen = False
        data = self._data
        for i in range(self.nlines):
            n = self.decode_line(i)
            if n >= 6 and data[0] == 0x41 and data[1] == base:
                k = base >> 3
                for j in range(4):
                    self.supported[k + j] |= data[2 + j]
                seen = True
        return seen

    def is_supported(self, pid):
        """Bit for ``pid`` in the bitmap: byte pid-1 >> 3, MSB first (PID 01 = bit 7)."""
        if pid <= 0 or pid > 0xFF:
            return False
        p = pid - 1
        return bool(self.supported[p >> 3] & (0x80 >> (p & 7)))

    def is_can(self):
        return self.protocol >= 6

    # ---- reads --------------------------------------------------------------------

    async def read_pid(self, pid):
        """One mode 01 PID -> decoded int (unit: pid_unit), or None (``result`` says why)."""
        if pid_len(pid) == 0:
            return None
        self._tx_pid(pid)
        return self._take_pid(pid, await self.command(self._cmd_pid, SHORT_MS))

    def _take_pid(self, pid, r):
        """Decode the answer to 01<pid> just received; counts failures; value or None."""
        nb = pid_len(pid)
        data = self._data
        if r == R_OK:
            r = R_BAD_ANSWER
            for i in range(self.nlines):
                n = self.decode_line(i)
                if n >= 2 + nb and data[0] == 0x41 and data[1] == pid:
                    r = R_OK
                    break
            self.result = r
        if not self._count(r):
            if pid in self.pid_errors:
                self.pid_errors[pid] += 1
            return None
        return decode_pid(pid, data[2], data[3] if nb > 1 else 0, data[4] if nb > 2 else 0,
                          data[5] if nb > 3 else 0)

    def _tx_pid(self, pid):
        # b"01XX" built in a preallocated buffer (no per-read formatting).
        c = self._cmd_pid
        c[0] = 48
        c[1] = 49
        c[2] = _HEX[pid >> 4]
        c[3] = _HEX[pid & 15]

    async def read_battery_mv(self):
        """ATRV ('13.1V') -> millivolts, or None."""
        r = await self.command(b"ATRV")
        if r != R_OK or not self.nlines:
            self._count(R_BAD_ANSWER if r == R_OK else r)
            return None
        rx = self._rx
        s = self._ls[0]
        e = self._le[0]
        if e > s and rx[e - 1] in (86, 118):  # V, v
            e -= 1
        mv = 0
        frac = -1
        while s < e:
            c = rx[s]
            s += 1
            if c == 46 and frac < 0:
                frac = 0
            elif 48 <= c <= 57 and frac < 3:
                mv = mv * 10 + c - 48
                if frac >= 0:
                    frac += 1
            elif not (48 <= c <= 57):
                self._count(R_BAD_ANSWER)
                self.result = R_BAD_ANSWER
                return None
        if frac < 0:
            frac = 0
        while frac < 3:
            mv *= 10
            frac += 1
        self._count(R_OK)
        return mv

    def _payload(self, mode_resp, pid):
        """Join a (possibly multi-frame) answer into _data; returns its length or -1.

        CAN with headers off prints ``014`` (byte count) then ``0: ..``, ``1: ..``
        lines; legacy protocols print one ``49 02 <seq> d d d d`` line per frame.
        Returned bytes start after the service/PID (and the CAN item count).
        """
        rx = self._rx
        data = self._data
        total = -1
        n = 0
        numbered = False
        for i in range(self.nlines):
            s = self._ls[i]
            e = self._le[i]
            if e - s == 3 and hexval(rx[s]) >= 0 and hex_bytes(rx, s + 1, e, data, n) == 1:
                total = hexval(rx[s]) * 256 + data[n]  # ISO-TP length header
                continue
            if e - s > 2 and rx[s + 1] == _COLON:
                numbered = True
                k = hex_bytes(rx, s + 2, e, data, n)
                if k < 0:
                    return -1
                n += k
                continue
            k = hex_bytes(rx, s, e, data, n)
            if k < 3 or data[n] != mode_resp or data[n + 1] != pid:
                continue  # another ECU's or an unrelated line
            if self.is_can():
                # Single-frame CAN answer: 49 02 <count> data...
                for j in range(k - 3):
                    data[j] = data[n + 3 + j]
                return k - 3
            # Legacy frame: 49 02 <seq> then 4 data bytes; keep only the data.
            for j in range(k - 3):
                data[n + j] = data[n + 3 + j]
            n += k - 3
        if numbered:
            if total > 0 and total < n:
                n = total
            if n < 3 or data[0] != mode_resp or data[1] != pid:
                return -1
            for j in range(n - 3):
                data[j] = data[j + 3]
            return n - 3
        return n if n else -1

    async def read_vin(self):
        """Mode 09 PID 02 -> 17-character VIN str, or None."""
        r = await self.command(b"0902", LONG_MS)
        if r != R_OK:
            self._count(r)
            return None
        n = self._payload(0x49, 0x02)
        if n < 17:
            self.result = R_BAD_ANSWER
            self._count(R_BAD_ANSWER)
            return None
        data = self._data
        # Drop leading pad bytes (legacy frames carry three 00s before the VIN).
        s = n - 17
        for j in range(s, n):
            c = data[j]
            if c < 0x30 or c > 0x5A:
                self.result = R_BAD_ANSWER
                self._count(R_BAD_ANSWER)
                return None
        self._count(R_OK)
        return bytes(data[s:n]).decode()

    async def read_dtcs(self, limit=16):
        """Mode 03 stored DTCs -> list of str like 'P0133' (empty list: none), or None."""
        r = await self.command(b"03", LONG_MS)
        if r == R_NO_DATA:
            self._count(R_OK)
            return []
        if r != R_OK:
            self._count(r)
            return None
        rx = self._rx
        data = self._data
        out = []
        numbered = False
        total = -1
        n = 0
        for i in range(self.nlines):
            s = self._ls[i]
            e = self._le[i]
            if e - s == 3 and hexval(rx[s]) >= 0 and hex_bytes(rx, s + 1, e, data, n) == 1:
                total = hexval(rx[s]) * 256 + data[n]
                continue
            if e - s > 2 and rx[s + 1] == _COLON:
                numbered = True
                k = hex_bytes(rx, s + 2, e, data, n)
                if k > 0:
                    n += k
                continue
            k = hex_bytes(rx, s, e, data, 0)
            if k < 1 or data[0] != 0x43:
                continue
            if self.is_can():
                _dtc_pairs(data, 2, k, out, limit)  # 43 <count> pairs
            else:
                _dtc_pairs(data, 1, k, out, limit)  # 43 + three pairs, 0000 = none
        if numbered:
            if 0 < total < n:
                n = total
            if n >= 2 and data[0] == 0x43:
                _dtc_pairs(data, 2, n, out, limit)
        self._count(R_OK)
        return out

    # ---- the poll cycle -----------------------------------------------------------

    def due(self, tier, index):
        """True when PID ``index`` of ``tier`` (1..3) is read on the current cycle."""
        if tier == 1:
            return True
        every = self.every2 if tier == 2 else self.every3
        return every <= 1 or (self.cycle + index) % every == 0

    async def poll_cycle(self):
        """Read the PIDs due this cycle; returns how many were read.

        A failed PID is counted and skipped; ``max_failures`` failures in a row
        end the cycle and mark the link down, and the next call re-initialises.
        Returns -1 when the link is down and ``init`` failed again, or when the
        retry back-off (2 s doubling to ``max_retry_ms``; ignition off means
        every init fails) has not expired yet: then nothing is sent.
        """
        if not self.connected:
            now = self.clock()
            if self._retry_at is not None and ticks_diff(self._retry_at, now) > 0:
                return -1
            if not await self.init():
                self._retry_at = ticks_add(self.clock(), self._retry_ms)
                self._retry_ms = min(self._retry_ms * 2, self.max_retry_ms)
                return -1
            self._retry_at = None
            self._retry_ms = _FIRST_RETRY_MS
        got = 0
        tier = 1
        for pids in (self.tier1, self.tier2, self.tier3):
            for i in range(len(pids)):
                pid = pids[i]
                if not self.is_supported(pid) or not self.due(tier, i) or not pid_len(pid):
                    continue
                self._tx_pid(pid)  # read_pid inline: one coroutine frame per PID
                v = self._take_pid(pid, await self.command(self._cmd_pid, SHORT_MS))
                if v is not None:
                    self.values[pid] = v
                    self.read_ms[pid] = ticks_ms()
                    got += 1
                elif not self.connected:
                    self.cycle += 1
                    return got
            tier += 1
        self.cycle += 1
        return got

    def stats(self):
        return {
            "exchanges": self.exchanges,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "reinits": self.reinits,
            "failures_in_row": self.failures,
            "last": RESULT_NAMES[self.result],
        }


def _same(buf, s, cmd, n):
    # bytearray.startswith(bytearray) is a TypeError on MicroPython: compare by hand.
    i = 0
    while i < n:
        if buf[s + i] != cmd[i]:
            return False
        i += 1
    return True


def _dtc_pairs(data, start, end, out, limit):
    j = start
    while j + 1 < end and len(out) < limit:
        a = data[j]
        b = data[j + 1]
        j += 2
        if a or b:
            out.append(dtc_code(a, b))
