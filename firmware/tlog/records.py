"""The telemetry record (the data contract) and its encoders.

Owns: ``Record`` (one sampling cycle: seq, UTC time and where it came from,
an optional GNSS fix in scaled integers, OBD-II PIDs, battery, signal,
temperature, acceleration), its compact binary form stored in the spool
(``pack_into`` / ``Record.unpack``), and the two wire formats written into a
caller's preallocated buffer:

* JSON, one object per record, an array for a batch (schema in RECORDS.md);
* the Freematics / Traccar "freematics" text format
  ``DEVID#0:seq,11:DDMMYY,10:HHMMSScc,A:lat,...*CS`` where CS is the 8-bit sum
  of every byte before ``*`` (``DEVID#`` included) as two upper-case hex
  digits, as Traccar computes it (``Checksum.sum``).  Unlike the anchor
  firmware it sends a date (PID 11) and the real UTC time (PID 10) only when
  the clock is real, temperature in 0.1 degC (what Traccar's PID 82 expects),
  HDOP as the plain integer Traccar's PID 12 stores, and no position PIDs at
  all without a fix (never 0,0).

Values are scaled integers throughout (no floats on the hot path); decimal
text is produced digit by digit into the buffer.
"""

import struct
from array import array

from atmq.compat import const

TS_GNSS = const(0)
TS_MODEM = const(1)
TS_NTP = const(2)
TS_UPTIME = const(3)  # no wall clock yet: ts is seconds since boot, and the record says so
TS_SRC_NAMES = ("gnss", "modem", "ntp", "uptime")
_TS_SRC_B = const((b"gnss", b"modem", b"ntp", b"uptime"))

MAX_OBD = const(16)
FORMAT_VERSION = const(1)
PACKED_MAX = const(123)  # 10 + fix 21 + 2 + 1 + 2 + 6 + 1 + 16 * 5

_F_FIX = const(0x04)
_F_BATT = const(0x08)
_F_RSSI = const(0x10)
_F_TEMP = const(0x20)
_F_ACC = const(0x40)
_F_OBD = const(0x80)

_U32 = const(0xFFFFFFFF)
_I32_MIN = const(-2147483648)
_I32_MAX = const(2147483647)


def _check(name, v, lo, hi):
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or v > hi:
        raise ValueError("record %s=%r: must be an integer in %d..%d" % (name, v, lo, hi))
    return v


class Record:
    """One sample.  Reused: ``clear()`` and fill, or ``unpack()`` a stored one into it."""

    def __init__(self):
        self.obd_pid = bytearray(MAX_OBD)
        self.obd_val = array("i", [0] * MAX_OBD)
        self.clear()

    def clear(self):
        self.seq = 0
        self.ts = 0
        self.ts_src = TS_UPTIME
        self.has_fix = False
        self.lat_e7 = 0  # degrees * 1e7, north positive
        self.lon_e7 = 0  # degrees * 1e7, east positive
        self.alt_dm = 0  # metres above mean sea level * 10
        self.speed_ckmh = 0  # km/h * 100 over ground (atmq.fix units)
        self.course_cdeg = 0  # course over ground, degrees * 100, 0..35999
        self.sats = 0
        self.hdop_x10 = 0
        self.batt_mv = None
        self.rssi_dbm = None
        self.temp_dc = None  # device temperature, degC * 10
        self.acc_mg = None  # (x, y, z) in milli-g, or None
        self.n_obd = 0

    def set_time(self, ts, src):
        self.ts = _check("ts", ts, 0, _U32)
        self.ts_src = _check("ts_src", src, TS_GNSS, TS_UPTIME)

    def set_fix(
        self, lat_e7, lon_e7, alt_dm=0, speed_ckmh=0, course_cdeg=0, sats=0, hdop_x10=0
    ):
        self.lat_e7 = _check("lat_e7", lat_e7, -900000000, 900000000)
        self.lon_e7 = _check("lon_e7", lon_e7, -1800000000, 1800000000)
        self.alt_dm = _check("alt_dm", alt_dm, _I32_MIN, _I32_MAX)
        self.speed_ckmh = _check("speed_ckmh", speed_ckmh, 0, _U32)
        self.course_cdeg = _check("course_cdeg", course_cdeg, 0, 35999)
        self.sats = _check("sats", sats, 0, 255)
        self.hdop_x10 = _check("hdop_x10", hdop_x10, 0, 0xFFFF)
        self.has_fix = True

    def take_fix(self, fix):
        """Copy the position of an ``atmq.fix.Fix`` (same units) when it is valid."""
        if fix.valid:
            self.set_fix(
                fix.lat_e7,
                fix.lon_e7,
                fix.alt_dm,
                fix.speed_ckmh,
                fix.course_cdeg,
                fix.sats,
                fix.hdop_x10,
            )
        else:
            self.has_fix = False

    def add_obd(self, pid, value):
        """One mode-01 PID (0..255) with its decoded integer value (rpm, km/h, %, degC)."""
        if self.n_obd >= MAX_OBD:
            raise ValueError("record: more than %d OBD PIDs" % MAX_OBD)
        _check("obd pid", pid, 0, 255)
        _check("obd value", value, _I32_MIN, _I32_MAX)
        self.obd_pid[self.n_obd] = pid
        self.obd_val[self.n_obd] = value
        self.n_obd += 1

    def obd(self, pid):
        """The value stored for ``pid``, or None."""
        for i in range(self.n_obd):
            if self.obd_pid[i] == pid:
                return self.obd_val[i]
        return None

    def unpack(self, buf, off=0):
        """Fill this record from its packed form at ``buf[off:]``; returns the end offset."""
        if len(buf) - off < 10 or buf[off] != FORMAT_VERSION:
            raise ValueError("record: not a packed v%d record" % FORMAT_VERSION)
        flags = buf[off + 1]
        # every part the flags announce must be there: a short record is a ValueError (the
        # uplink skips it: tlog.uplink._first_bad), never an IndexError (MicroPython's
        # buf[p] past the end) that would stop the drain at it on every try
        need = off + 10
        if flags & _F_FIX:
            need += 21
        if flags & _F_BATT:
            need += 2
        if flags & _F_RSSI:
            need += 1
        if flags & _F_TEMP:
            need += 2
        if flags & _F_ACC:
            need += 6
        if flags & _F_OBD:
            need += 1
        if need > len(buf):
            raise ValueError("record: packed record truncated")
        self.seq, self.ts = struct.unpack_from("<II", buf, off + 2)
        self.ts_src = flags & 3
        p = off + 10
        self.has_fix = bool(flags & _F_FIX)
        if self.has_fix:
            (
                self.lat_e7,
                self.lon_e7,
                self.alt_dm,
                self.speed_ckmh,
                self.course_cdeg,
                self.sats,
                self.hdop_x10,
            ) = struct.unpack_from("<iiiIHBH", buf, p)
            p += 21
        else:
            self.lat_e7 = self.lon_e7 = self.alt_dm = 0
            self.speed_ckmh = self.course_cdeg = self.sats = self.hdop_x10 = 0
        self.batt_mv = None
        if flags & _F_BATT:
            self.batt_mv = buf[p] | (buf[p + 1] << 8)
            p += 2
        self.rssi_dbm = None
        if flags & _F_RSSI:
            v = buf[p]
            self.rssi_dbm = v - 256 if v > 127 else v
            p += 1
        self.temp_dc = None
        if flags & _F_TEMP:
            self.temp_dc = struct.unpack_from("<h", buf, p)[0]
            p += 2
        self.acc_mg = None
        if flags & _F_ACC:
            self.acc_mg = struct.unpack_from("<hhh", buf, p)
            p += 6
        self.n_obd = 0
        if flags & _F_OBD:
            n = buf[p]
            p += 1
            if n > MAX_OBD:
                raise ValueError("record: %d OBD PIDs stored, at most %d" % (n, MAX_OBD))
            if p + 5 * n > len(buf):
                raise ValueError("record: packed record truncated")
            for i in range(n):
                self.obd_pid[i] = buf[p]
                self.obd_val[i] = struct.unpack_from("<i", buf, p + 1)[0]
                p += 5
            self.n_obd = n
        if p > len(buf):
            raise ValueError("record: packed record truncated")
        return p


def pack_into(rec, buf, off=0):
    """Write ``rec`` in the spool's binary form at ``buf[off:]`` (<= PACKED_MAX bytes).

    Returns the end offset.  Optional values are range-checked here, so a bad
    reading is refused with its name instead of being truncated on flash.
    """
    if len(buf) - off < PACKED_MAX:
        raise ValueError("record: pack buffer needs %d bytes" % PACKED_MAX)
    _check("seq", rec.seq, 0, _U32)
    _check("ts", rec.ts, 0, _U32)
    flags = _check("ts_src", rec.ts_src, TS_GNSS, TS_UPTIME)
    p = off + 10
    if rec.has_fix:
        flags |= _F_FIX
        struct.pack_into(
            "<iiiIHBH",
            buf,
            p,
            rec.lat_e7,
            rec.lon_e7,
            rec.alt_dm,
            rec.speed_ckmh,
            rec.course_cdeg,
            rec.sats,
            rec.hdop_x10,
        )
        p += 21
    if rec.batt_mv is not None:
        flags |= _F_BATT
        struct.pack_into("<H", buf, p, _check("batt_mv", rec.batt_mv, 0, 0xFFFF))
        p += 2
    if rec.rssi_dbm is not None:
        flags |= _F_RSSI
        struct.pack_into("<b", buf, p, _check("rssi_dbm", rec.rssi_dbm, -128, 127))
        p += 1
    if rec.temp_dc is not None:
        flags |= _F_TEMP
        struct.pack_into("<h", buf, p, _check("temp_dc", rec.temp_dc, -32768, 32767))
        p += 2
    if rec.acc_mg is not None:
        flags |= _F_ACC
        a = rec.acc_mg
        if len(a) != 3:
            raise ValueError("record acc_mg: needs 3 axes")
        for i in range(3):
            _check("acc_mg", a[i], -32768, 32767)
        struct.pack_into("<hhh", buf, p, a[0], a[1], a[2])
        p += 6
    if rec.n_obd:
        flags |= _F_OBD
        buf[p] = rec.n_obd
        p += 1
        for i in range(rec.n_obd):
            buf[p] = rec.obd_pid[i]
            struct.pack_into("<i", buf, p + 1, rec.obd_val[i])
            p += 5
    buf[off] = FORMAT_VERSION
    buf[off + 1] = flags
    struct.pack_into("<II", buf, off + 2, rec.seq, rec.ts)
    return p


# ---- text writers: digits straight into the buffer ------------------------------------------


def _put(buf, p, s):
    n = len(s)
    buf[p : p + n] = s
    return p + n


def _put_uint(buf, p, v, width=0):
    """Decimal ``v`` (>= 0), zero-padded to ``width`` digits."""
    n = 1
    t = v
    while t >= 10:
        t //= 10
        n += 1
    if n < width:
        n = width
    end = p + n
    q = end
    while q > p:
        q -= 1
        buf[q] = 48 + v % 10
        v //= 10
    return end


def _put_int(buf, p, v):
    if v < 0:
        buf[p] = 45  # '-'
        return _put_uint(buf, p + 1, -v)
    return _put_uint(buf, p, v)


def _put_fixed(buf, p, v, decimals, scale):
    """``v / scale`` with ``decimals`` digits after the point (scale = 10**decimals)."""
    if v < 0:
        buf[p] = 45
        p += 1
        v = -v
    p = _put_uint(buf, p, v // scale)
    buf[p] = 46  # '.'
    return _put_uint(buf, p + 1, v % scale, decimals)


def _round_div(v, d):
    """v / d rounded half away from zero, in integers."""
    if v < 0:
        return -((-v + d // 2) // d)
    return (v + d // 2) // d


def _hexdigit(v):
    return 48 + v if v < 10 else 55 + v


def _put_hex(buf, p, v, width):
    """Upper-case hex without leading zeros beyond ``width`` digits minimum."""
    n = 1
    t = v >> 4
    while t:
        t >>= 4
        n += 1
    if n < width:
        n = width
    end = p + n
    q = end
    while q > p:
        q -= 1
        buf[q] = _hexdigit(v & 15)
        v >>= 4
    return end


def civil_from_days(days):
    """(year, month, day) of a day count since 1970-01-01 (proleptic Gregorian)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if m <= 2 else 0), m, d


# ---- JSON ------------------------------------------------------------------------------------


def json_max(rec, dev=None):
    """Upper bound of ``encode_json``'s output for ``rec`` (bytes)."""
    n = 56 + 22 * rec.n_obd + 10
    if dev:
        n += 10 + len(dev)
    if rec.has_fix:
        n += 160
    return n + 17 + 17 + 18 + 33 + 2


def encode_json(rec, buf, p=0, dev=None):
    """One JSON object for ``rec`` at ``buf[p:]``; returns the end offset.

    ``dev`` (bytes, [A-Za-z0-9_-]) adds a ``"dev"`` member.  Raises ValueError
    when the buffer has less room than ``json_max(rec, dev)``.
    """
    if len(buf) - p < json_max(rec, dev):
        raise ValueError("record json: buffer too small")
    p = _put(buf, p, b'{"seq":')
    p = _put_uint(buf, p, rec.seq)
    if dev:
        p = _put(buf, p, b',"dev":"')
        p = _put(buf, p, dev)
        buf[p] = 34
        p += 1
    p = _put(buf, p, b',"ts":')
    p = _put_uint(buf, p, rec.ts)
    p = _put(buf, p, b',"ts_src":"')
    p = _put(buf, p, _TS_SRC_B[rec.ts_src])
    buf[p] = 34
    p += 1
    if rec.has_fix:
        p = _put(buf, p, b',"fix":{"lat_e7":')
        p = _put_int(buf, p, rec.lat_e7)
        p = _put(buf, p, b',"lon_e7":')
        p = _put_int(buf, p, rec.lon_e7)
        p = _put(buf, p, b',"alt_dm":')
        p = _put_int(buf, p, rec.alt_dm)
        p = _put(buf, p, b',"speed_ckmh":')
        p = _put_uint(buf, p, rec.speed_ckmh)
        p = _put(buf, p, b',"course_cdeg":')
        p = _put_uint(buf, p, rec.course_cdeg)
        p = _put(buf, p, b',"sats":')
        p = _put_uint(buf, p, rec.sats)
        p = _put(buf, p, b',"hdop_x10":')
        p = _put_uint(buf, p, rec.hdop_x10)
        buf[p] = 125  # '}'
        p += 1
    if rec.n_obd:
        p = _put(buf, p, b',"obd":{')
        for i in range(rec.n_obd):
            if i:
                buf[p] = 44
                p += 1
            buf[p] = 34
            p = _put_hex(buf, p + 1, rec.obd_pid[i], 2)
            p = _put(buf, p, b'":')
            p = _put_int(buf, p, rec.obd_val[i])
        buf[p] = 125
        p += 1
    if rec.batt_mv is not None:
        p = _put(buf, p, b',"batt_mv":')
        p = _put_uint(buf, p, rec.batt_mv)
    if rec.rssi_dbm is not None:
        p = _put(buf, p, b',"rssi_dbm":')
        p = _put_int(buf, p, rec.rssi_dbm)
    if rec.temp_dc is not None:
        p = _put(buf, p, b',"temp_dc":')
        p = _put_int(buf, p, rec.temp_dc)
    if rec.acc_mg is not None:
        a = rec.acc_mg
        p = _put(buf, p, b',"acc_mg":[')
        p = _put_int(buf, p, a[0])
        buf[p] = 44
        p = _put_int(buf, p + 1, a[1])
        buf[p] = 44
        p = _put_int(buf, p + 1, a[2])
        buf[p] = 93  # ']'
        p += 1
    buf[p] = 125
    return p + 1


# ---- Freematics / Traccar text ----------------------------------------------------------------


def freematics_max(rec):
    """Upper bound of ``encode_freematics``'s output for ``rec`` (bytes, no envelope)."""
    n = 14 + 22 + 16 * rec.n_obd + 9 + 9 + 11 + 28
    if rec.has_fix:
        n += 90
    return n


def encode_freematics(rec, buf, p=0):
    """One record's ``PID:value`` pairs at ``buf[p:]`` (no ``DEVID#`` and no ``*CS``).

    PID 0 carries ``seq`` and starts the record (Traccar starts a new position
    at PID 0).  PIDs 11/10 (UTC date DDMMYY, time HHMMSScc) only when ``ts`` is
    a real clock; A..F and 12 only with a fix; OBD PIDs as 0x100 + pid.
    """
    if len(buf) - p < freematics_max(rec):
        raise ValueError("record freematics: buffer too small")
    p = _put(buf, p, b"0:")
    p = _put_uint(buf, p, rec.seq)
    if rec.ts_src != TS_UPTIME:
        days = rec.ts // 86400
        secs = rec.ts - days * 86400
        y, m, d = civil_from_days(days)
        p = _put(buf, p, b",11:")
        p = _put_uint(buf, p, d, 2)
        p = _put_uint(buf, p, m, 2)
        p = _put_uint(buf, p, y % 100, 2)
        p = _put(buf, p, b",10:")
        p = _put_uint(buf, p, secs // 3600, 2)
        p = _put_uint(buf, p, (secs // 60) % 60, 2)
        p = _put_uint(buf, p, secs % 60, 2)
        p = _put(buf, p, b"00")
    if rec.has_fix:
        p = _put(buf, p, b",A:")
        p = _put_fixed(buf, p, rec.lat_e7, 7, 10000000)
        p = _put(buf, p, b",B:")
        p = _put_fixed(buf, p, rec.lon_e7, 7, 10000000)
        p = _put(buf, p, b",C:")
        p = _put_fixed(buf, p, rec.alt_dm, 1, 10)
        p = _put(buf, p, b",D:")
        p = _put_fixed(buf, p, _round_div(rec.speed_ckmh, 10), 1, 10)
        p = _put(buf, p, b",E:")  # Traccar parses the course as an integer
        p = _put_uint(buf, p, _round_div(rec.course_cdeg, 100) % 360)
        p = _put(buf, p, b",F:")
        p = _put_uint(buf, p, rec.sats)
        if rec.hdop_x10:
            p = _put(buf, p, b",12:")  # Traccar stores this integer as the HDOP itself
            p = _put_uint(buf, p, max(1, _round_div(rec.hdop_x10, 10)))
    for i in range(rec.n_obd):
        buf[p] = 44
        p = _put_hex(buf, p + 1, 0x100 + rec.obd_pid[i], 1)
        buf[p] = 58  # ':'
        p = _put_int(buf, p + 1, rec.obd_val[i])
    if rec.batt_mv is not None:
        p = _put(buf, p, b",24:")  # volts * 100
        p = _put_uint(buf, p, _round_div(rec.batt_mv, 10))
    if rec.rssi_dbm is not None:
        p = _put(buf, p, b",81:")
        p = _put_int(buf, p, rec.rssi_dbm)
    if rec.temp_dc is not None:
        p = _put(buf, p, b",82:")  # Traccar multiplies by 0.1
        p = _put_int(buf, p, rec.temp_dc)
    if rec.acc_mg is not None:
        a = rec.acc_mg
        p = _put(buf, p, b",20:")  # g with 2 decimals, as the Freematics hub shows it
        p = _put_fixed(buf, p, _round_div(a[0], 10), 2, 100)
        buf[p] = 59  # ';'
        p = _put_fixed(buf, p + 1, _round_div(a[1], 10), 2, 100)
        buf[p] = 59
        p = _put_fixed(buf, p + 1, _round_div(a[2], 10), 2, 100)
    return p


def checksum(buf, start, end):
    """8-bit sum of ``buf[start:end]`` (Traccar ``Checksum.sum``)."""
    s = 0
    for i in range(start, end):
        s += buf[i]
    return s & 0xFF


def freematics_begin(buf, dev, p=0):
    """Write ``DEVID#``; returns the offset where the first record goes."""
    p = _put(buf, p, dev)
    buf[p] = 35  # '#'
    return p + 1


def freematics_end(buf, p, start=0):
    """Append ``*CS`` for the message that began at ``start``; returns the end offset."""
    cs = checksum(buf, start, p)
    buf[p] = 42  # '*'
    buf[p + 1] = _hexdigit(cs >> 4)
    buf[p + 2] = _hexdigit(cs & 15)
    return p + 3


# ---- batches ----------------------------------------------------------------------------------


def _fits_one(k, payloads):
    if k == 0 and len(payloads):
        raise ValueError("record batch: output buffer too small for one record")


def _front_free(cap, tail, n):
    # the envelope's start is written before the first record is read: it must end before
    # the records (tlog.uplink reads into the spool's own buffer below _INTO_MIN)
    if tail and cap - tail < n:
        raise ValueError("record batch: the message's start would overwrite unread records")


def encode_batch(payloads, fmt, dev, out, rec=None, tail=0):
    """Encode packed records (oldest first) into ``out`` as one message.

    ``fmt`` is "json" (an array of objects) or "freematics" (one
    ``DEVID#...*CS`` line).  Stops before the first record that would not fit;
    returns ``(nbytes, nrecords)`` so the caller publishes ``out[:nbytes]`` and
    acknowledges exactly ``nrecords``.  ``rec`` is a scratch Record to reuse.

    ``tail``: the payloads' bytes are the last ``tail`` bytes of ``out`` itself
    (``Spool.peek_batch(into=)``): each record is unpacked before its bytes can be
    overwritten; one that fits only over the payloads not read yet is the last one.
    """
    if rec is None:
        rec = Record()
    if isinstance(dev, str):
        dev = dev.encode()
    cap = len(out)
    k = 0
    if fmt == "json":
        _front_free(cap, tail, 1)
        p = 1
        out[0] = 91  # '['
        for pl in payloads:
            rec.unpack(pl)
            if tail:
                tail -= len(pl)  # read: its bytes are free now
            room = cap - p - 2
            need = json_max(rec, dev)
            if room < need:
                break
            if k:
                out[p] = 44
                p += 1
            p = encode_json(rec, out, p, dev)
            k += 1
            if room - tail < need:
                break  # written over the payloads after it: they go in the next batch
        _fits_one(k, payloads)
        out[p] = 93
        return p + 1, k
    if fmt == "freematics":
        _front_free(cap, tail, len(dev) + 1)
        p = freematics_begin(out, dev)
        for pl in payloads:
            rec.unpack(pl)
            if tail:
                tail -= len(pl)
            room = cap - p - 4
            need = freematics_max(rec)
            if room < need:
                break
            if k:
                out[p] = 44
                p += 1
            p = encode_freematics(rec, out, p)
            k += 1
            if room - tail < need:
                break
        _fits_one(k, payloads)
        return freematics_end(out, p, 0), k
    raise ValueError("payload_format %r: must be 'json' or 'freematics'" % (fmt,))
