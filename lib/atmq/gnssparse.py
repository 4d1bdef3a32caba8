"""Modem GNSS answers (``+CGPSINFO:``, ``+CGNSSINFO:``) parsed in place into a ``Fix``.

Owned here: the two SIMCom answer parsers and the allocation-free field and
number helpers that ``nmea`` reuses.  Every parser takes ``(buf, start, end,
fix)`` over a bytes/bytearray line (no slicing, no str) and returns True only
for a valid fix; ``end < 0`` means ``len(buf)``.  A no-fix answer (empty
fields) clears ``fix`` and returns False; a malformed one returns False, sets
``fix.valid = False`` (other fields are then undefined: parse into a scratch
Fix and ``copy_from`` it on success) and records the problem in ``stats``
(a counter and a constant message naming the field).

Formats, SIM767XX AT manual (seed 003) chapter 21:
  21.2.20 +CGPSINFO: <lat>,<N/S>,<log>,<E/W>,<date>,<UTC time>,<alt>,<speed>,<course>
          lat ddmm.mmmm, log dddmm.mmmm, date ddmmyy, time hhmmss.sss,
          alt metres (MSL), speed knots, course degrees.
          Example: +CGPSINFO:3113.343286,N,12121.234064,E,250311,072809.33,44.1,0.0,0
  21.2.21 +CGNSSINFO: <mode>,<GPS-SVs>,<GLONASS-SVs>,<GALILEO-SVs>,<BEIDOU-SVs>,<lat>,
          <N/S>,<log>,<E/W>,<date>,<UTC-time>,<alt>,<speed>,<course>,<PDOP>,<HDOP>,
          <VDOP>,<NoSV>; lat dd.dddddd, log ddd.dddddd; no fix: +CGNSSINFO:,,,,,,,,,,,,,
The SIM7600 firmware prints +CGNSSINFO with three SV counts and ddmm.mmmm
coordinates; the parser finds the N/S field rather than trusting a fixed index,
and takes the coordinate format from the latitude's integer digits (3 or more
= ddmm.mmmm, as a decimal latitude never has more than 2).
"""

from .compat import const

# Sentinels returned by the number helpers; no real field value reaches them.
EMPTY = const(-0x3FFFFFFF)
BAD = const(-0x3FFFFFFE)

_MAX_FIELDS = const(24)
_COMMA = const(44)
_DOT = const(46)
_MINUS = const(45)
_SPACE = const(32)
_D0 = const(48)
_D9 = const(57)

# Field boundaries of the line being parsed: preallocated, filled by split_fields.
# Parsers never await, so one set per process is enough.
fs = [0] * _MAX_FIELDS
fe = [0] * _MAX_FIELDS


class ParseStats:
    """Counters for one parser family; ``last_error`` is a constant string, never built."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.fixes = 0
        self.no_fix = 0
        self.malformed = 0
        self.bad_checksum = 0
        self.no_checksum = 0
        self.ignored = 0
        self.last_error = ""

    def bad(self, why):
        self.malformed += 1
        self.last_error = why


stats = ParseStats()


def trim_end(buf, start, end):
    """End index with trailing CR/LF/spaces dropped (two functions: a tuple would allocate)."""
    while end > start and buf[end - 1] in (10, 13, _SPACE):
        end -= 1
    return end


def trim_start(buf, start, end):
    """Start index with leading spaces skipped."""
    while start < end and buf[start] == _SPACE:
        start += 1
    return start


def split_fields(buf, start, end):
    """Record comma-separated field bounds of buf[start:end] in ``fs``/``fe``; returns count.

    Returns -1 when the line has more than the preallocated number of fields.
    """
    n = 0
    i = start
    while True:
        if n >= _MAX_FIELDS:
            return -1
        j = buf.find(b",", i, end)
        if j < 0:
            j = end
        s = i
        while s < j and buf[s] == _SPACE:
            s += 1
        fs[n] = s
        fe[n] = j
        n += 1
        if j >= end:
            return n
        i = j + 1


def hexval(c):
    """One ASCII hex digit (byte value) -> 0..15; -1 when it is not one."""
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    if 97 <= c <= 102:
        return c - 87
    return -1


def uint(buf, s, e):
    """Decimal digits only -> int; EMPTY for an empty field, BAD otherwise."""
    if s >= e:
        return EMPTY
    v = 0
    while s < e:
        c = buf[s]
        if c < _D0 or c > _D9:
            return BAD
        v = v * 10 + c - _D0
        s += 1
    return v


def decimal(buf, s, e, places):
    """'-12.345' -> int scaled by 10**places, rounding the first dropped digit.

    EMPTY for an empty field, BAD for anything that is not [-]digits[.digits].
    """
    if s >= e:
        return EMPTY
    neg = buf[s] == _MINUS
    if neg:
        s += 1
    v = 0
    ndig = 0
    frac = -1  # decimals consumed after the dot; -1 before the dot
    roundup = 0
    while s < e:
        c = buf[s]
        s += 1
        if c == _DOT:
            if frac >= 0:
                return BAD
            frac = 0
            continue
        if c < _D0 or c > _D9:
            return BAD
        ndig += 1
        if frac < 0:
            v = v * 10 + c - _D0
        elif frac < places:
            v = v * 10 + c - _D0
            frac += 1
        elif frac == places:
            roundup = 1 if c >= 53 else 0  # '5'
            frac += 1
    if ndig == 0:
        return BAD
    if frac < 0:
        frac = 0
    elif frac > places:
        frac = places
    while frac < places:
        v *= 10
        frac += 1
    v += roundup
    return -v if neg else v


def int_digits(buf, s, e):
    """How many digits precede the dot (or the end) of buf[s:e]."""
    n = 0
    while s < e and _D0 <= buf[s] <= _D9:
        n += 1
        s += 1
    return n


def hemisphere(buf, hs, he, pos, neg):
    """1 for ``pos`` (N or E), -1 for ``neg`` (S or W), 0 for anything else."""
    if he - hs != 1:
        return 0
    h = buf[hs]
    if h == pos:
        return 1
    if h == neg:
        return -1
    return 0


def coord_abs_e7(buf, s, e, limit_deg, ddmm):
    """Unsigned coordinate -> degrees x 1e7 (>= 0), or EMPTY / BAD.

    ``ddmm`` selects (d)ddmm.mmmm (NMEA, +CGPSINFO) over decimal degrees.  The
    integer and fraction parts are read separately so every intermediate stays
    a small int on the ESP32.
    """
    if s >= e:
        return EMPTY
    dot = buf.find(b".", s, e)
    if dot < 0:
        dot = e
    ip = uint(buf, s, dot)
    if ip < 0:
        return BAD
    if ddmm:
        frac = decimal(buf, dot, e, 6) if dot < e else 0  # minutes fraction x 1e6
        if frac < 0:
            return BAD
        deg = ip // 100
        min_e6 = (ip - deg * 100) * 1000000 + frac
        if min_e6 >= 60000000:
            return BAD
        # 1 minute = 1e7/60 units of 1e-7 degree: min_e6 * 10 / 60 = min_e6 / 6.
        frac = (min_e6 + 3) // 6
    else:
        deg = ip
        frac = decimal(buf, dot, e, 7) if dot < e else 0
        if frac < 0:
            return BAD
    if deg > limit_deg or (deg == limit_deg and frac):
        return BAD
    return deg * 10000000 + frac


def coord_e7(buf, s, e, hs, he, pos, neg, limit_deg, ddmm, fix, is_lon):
    """Coordinate plus hemisphere into ``fix.lat_e7``/``lon_e7``; 1 ok, 0 empty, -1 bad."""
    v = coord_abs_e7(buf, s, e, limit_deg, ddmm)
    if v == EMPTY:
        return 0 if he <= hs else -1
    if v == BAD:
        return -1
    sign = hemisphere(buf, hs, he, pos, neg)
    if sign == 0:
        return -1
    if sign < 0:
        v = -v
    if is_lon:
        fix.lon_e7 = v
    else:
        fix.lat_e7 = v
    return 1


def date_into(buf, s, e, fix):
    """ddmmyy -> fix.year/month/day; False when malformed."""
    if e - s != 6:
        return False
    v = uint(buf, s, e)
    if v < 0:
        return False
    dd = v // 10000
    mo = (v // 100) % 100
    if dd < 1 or dd > 31 or mo < 1 or mo > 12:
        return False
    fix.day = dd
    fix.month = mo
    fix.year = 2000 + v % 100
    return True


def time_into(buf, s, e, fix):
    """hhmmss[.sss] -> fix.hh/mm/ss/ms; False when malformed."""
    if e - s < 6:
        return False
    v = uint(buf, s, s + 6)
    if v < 0:
        return False
    hh = v // 10000
    mm = (v // 100) % 100
    ss = v % 100
    if hh > 23 or mm > 59 or ss > 60:
        return False
    ms = 0
    if e > s + 6:
        if buf[s + 6] != _DOT:
            return False
        ms = decimal(buf, s + 6, e, 3)
        if ms < 0:
            return False
    fix.hh = hh
    fix.mm = mm
    fix.ss = ss
    fix.ms = ms
    return True


def knots_to_ckmh(knots_e3):
    """Knots x 1000 -> 0.01 km/h (1 kn = 1.852 km/h exactly), rounded."""
    return (knots_e3 * 1852 + 5000) // 10000


def find_prefix(buf, start, end, prefix):
    """Index just after ``prefix`` if the line starts with it (after spaces), else -1."""
    start = trim_start(buf, start, end)
    if not buf.startswith(prefix, start):
        return -1
    return start + len(prefix)


def _all_empty(n):
    i = 0
    while i < n:
        if fe[i] > fs[i]:
            return False
        i += 1
    return True


def _tail_into(buf, f, fix, st, what_date, what_time, what_alt, what_speed, what_course):
    """Fields date,time,alt,speed,course starting at index f; False (and counted) if bad."""
    if not date_into(buf, fs[f], fe[f], fix):
        st.bad(what_date)
        return False
    if not time_into(buf, fs[f + 1], fe[f + 1], fix):
        st.bad(what_time)
        return False
    v = decimal(buf, fs[f + 2], fe[f + 2], 1)
    if v == BAD:
        st.bad(what_alt)
        return False
    fix.alt_dm = 0 if v == EMPTY else v
    v = decimal(buf, fs[f + 3], fe[f + 3], 3)
    if v == BAD or (v < 0 and v != EMPTY):
        st.bad(what_speed)
        return False
    fix.speed_ckmh = 0 if v == EMPTY else knots_to_ckmh(v)
    v = decimal(buf, fs[f + 4], fe[f + 4], 2)
    if v == BAD or (v < 0 and v != EMPTY) or v >= 36000:
        st.bad(what_course)
        return False
    fix.course_cdeg = 0 if v == EMPTY else v
    return True


def _fields(buf, start, end, prefix, too_many, fix):
    """Split the answer after ``prefix`` into ``fs``/``fe``: the field count, or -1 when
    the line is not this answer, has too many fields, or holds no fix (each counted)."""
    if end < 0:
        end = len(buf)
    st = stats
    i = find_prefix(buf, start, end, prefix)
    if i < 0:
        st.ignored += 1
        return -1
    end = trim_end(buf, i, end)
    start = trim_start(buf, i, end)
    n = split_fields(buf, start, end)
    if n < 0:
        fix.valid = False
        st.bad(too_many)
        return -1
    if _all_empty(n):
        fix.clear()
        st.no_fix += 1
        return -1
    return n


def parse_cgpsinfo(buf, start, end, fix):
    """``+CGPSINFO: lat,N,lon,E,ddmmyy,hhmmss.s,alt,knots,course`` -> fix (21.2.20)."""
    n = _fields(buf, start, end, b"+CGPSINFO:", "CGPSINFO: too many fields", fix)
    if n < 0:
        return False
    st = stats
    if n < 9:
        fix.valid = False
        st.bad("CGPSINFO: fewer than 9 fields")
        return False
    fix.valid = False
    if coord_e7(buf, fs[0], fe[0], fs[1], fe[1], 78, 83, 90, True, fix, False) <= 0:  # N, S
        st.bad("CGPSINFO: latitude or N/S malformed")
        return False
    if coord_e7(buf, fs[2], fe[2], fs[3], fe[3], 69, 87, 180, True, fix, True) <= 0:  # E, W
        st.bad("CGPSINFO: longitude or E/W malformed")
        return False
    if not _tail_into(buf, 4, fix, st, "CGPSINFO: date not ddmmyy",
                      "CGPSINFO: time not hhmmss.s", "CGPSINFO: altitude malformed",
                      "CGPSINFO: speed malformed", "CGPSINFO: course malformed"):
        return False
    fix.sats = 0  # +CGPSINFO does not report satellites or DOP
    fix.hdop_x10 = 0
    fix.update_epoch()
    fix.valid = True
    st.fixes += 1
    return True


def parse_cgnssinfo(buf, start, end, fix):
    """``+CGNSSINFO: mode,SVs..,lat,N,lon,E,date,time,alt,speed,course,PDOP,HDOP,VDOP[,NoSV]``.

    ``sats`` is NoSV when present, else the sum of the per-constellation counts.
    """
    n = _fields(buf, start, end, b"+CGNSSINFO:", "CGNSSINFO: too many fields", fix)
    if n < 0:
        return False
    st = stats
    fix.valid = False
    # N/S sits after mode + 3 (SIM7600) or 4 (A76xx/SIM767x manual) SV counts.
    ns = -1
    k = 4
    while k <= 6 and k < n:
        if fe[k] - fs[k] == 1 and buf[fs[k]] in (78, 83):
            ns = k
            break
        k += 1
    if ns < 0:
        st.bad("CGNSSINFO: no N/S field after the SV counts")
        return False
    lat_f = ns - 1
    if n < ns + 11:
        st.bad("CGNSSINFO: fewer fields than lat..VDOP")
        return False
    mode = uint(buf, fs[0], fe[0])
    if mode != 2 and mode != 3:
        st.bad("CGNSSINFO: mode not 2 (2D) or 3 (3D)")
        return False
    ddmm = int_digits(buf, fs[lat_f], fe[lat_f]) >= 3
    if coord_e7(buf, fs[lat_f], fe[lat_f], fs[ns], fe[ns], 78, 83, 90, ddmm, fix, False) <= 0:
        st.bad("CGNSSINFO: latitude or N/S malformed")
        return False
    if coord_e7(buf, fs[ns + 1], fe[ns + 1], fs[ns + 2], fe[ns + 2], 69, 87, 180, ddmm,
                fix, True) <= 0:
        st.bad("CGNSSINFO: longitude or E/W malformed")
        return False
    if not _tail_into(buf, ns + 3, fix, st, "CGNSSINFO: date not ddmmyy",
                      "CGNSSINFO: time not hhmmss.s", "CGNSSINFO: altitude malformed",
                      "CGNSSINFO: speed malformed", "CGNSSINFO: course malformed"):
        return False
    hdop = decimal(buf, fs[ns + 9], fe[ns + 9], 1)
    if hdop == BAD or (hdop < 0 and hdop != EMPTY):
        st.bad("CGNSSINFO: HDOP malformed")
        return False
    sats = EMPTY
    if n > ns + 11:
        sats = uint(buf, fs[ns + 11], fe[ns + 11])
        if sats == BAD:
            st.bad("CGNSSINFO: NoSV malformed")
            return False
    if sats == EMPTY:
        sats = 0
        k = 1
        while k < lat_f:
            v = uint(buf, fs[k], fe[k])
            if v == BAD:
                st.bad("CGNSSINFO: SV count malformed")
                return False
            if v > 0:
                sats += v
            k += 1
    fix.hdop_x10 = 0 if hdop == EMPTY else hdop
    fix.sats = sats
    fix.update_epoch()
    fix.valid = True
    st.fixes += 1
    return True


def parse(buf, start, end, fix):
    """Dispatch on the answer's prefix: +CGNSSINFO or +CGPSINFO; False for anything else."""
    if end < 0:
        end = len(buf)
    if buf.startswith(b"+CGNSSINFO:", trim_start(buf, start, end)):
        return parse_cgnssinfo(buf, start, end, fix)
    return parse_cgpsinfo(buf, start, end, fix)
