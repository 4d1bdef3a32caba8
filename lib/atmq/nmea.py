"""NMEA 0183 sentences from a GNSS receiver (RMC, GGA, GNS) parsed in place into a ``Fix``.

Owned here: checksum verification, the three position sentences and a line
assembler for a receiver on its own UART.  Parsers take ``(buf, start, end,
fix)`` over bytes/bytearray (``end < 0`` = ``len(buf)``) and return True only
when the sentence carries a valid fix.  Each sentence updates only the fields
it has, so an RMC + GGA pair per epoch fills the whole Fix:
  RMC  time, status A/V, lat, lon, speed (knots), course, date, [mode]
  GGA  time, lat, lon, quality 0-8, sats used, HDOP, altitude MSL
  GNS  time, lat, lon, mode letters per constellation, sats, HDOP, altitude
GGA/GNS carry no date: ``epoch_s`` then uses the date of the last RMC.

A sentence whose ``*hh`` checksum is wrong or missing is refused and counted
(``stats.bad_checksum`` / ``stats.no_checksum``); the Fix is left untouched.
Any talker (GP, GN, GL, GA, GB, BD) is accepted.
"""

from .compat import const
from .gnssparse import (
    BAD,
    EMPTY,
    ParseStats,
    coord_e7,
    date_into,
    decimal,
    fe,
    fs,
    hexval,
    knots_to_ckmh,
    split_fields,
    time_into,
    trim_end,
    trim_start,
    uint,
)

_DOLLAR = const(36)
_STAR = const(42)
_LF = const(10)
_CR = const(13)

stats = ParseStats()


def checksum(buf, start, end):
    """XOR of buf[start:end] (the bytes between '$' and '*')."""
    x = 0
    while start < end:
        x ^= buf[start]
        start += 1
    return x


def verify(buf, start, end):
    """Index of '*' when ``$...*hh`` checks out; -1 bad checksum, -2 none, -3 not NMEA."""
    if end - start < 7 or buf[start] != _DOLLAR:
        return -3
    star = end - 3
    if buf[star] != _STAR:
        return -2
    hi = hexval(buf[end - 2])
    lo = hexval(buf[end - 1])
    if hi < 0 or lo < 0:
        return -2
    if checksum(buf, start + 1, star) != (hi << 4 | lo):
        return -1
    return star


def _pos_into(buf, f, fix):
    """lat,N,lon,E at field index f; 1 ok, 0 all empty, -1 malformed."""
    a = coord_e7(buf, fs[f], fe[f], fs[f + 1], fe[f + 1], 78, 83, 90, True, fix, False)
    b = coord_e7(buf, fs[f + 2], fe[f + 2], fs[f + 3], fe[f + 3], 69, 87, 180, True, fix, True)
    if a < 0 or b < 0:
        return -1
    if a == 0 and b == 0:
        return 0
    return 1 if a > 0 and b > 0 else -1


def _time(buf, f, fix, st, why):
    if fe[f] == fs[f]:
        return True
    if not time_into(buf, fs[f], fe[f], fix):
        st.bad(why)
        return False
    return True


def _sats_hdop_alt(buf, fsat, fix, st, why):
    """numSV, HDOP, altitude at fields fsat, fsat+1, fsat+2 (GGA and GNS share the order)."""
    sats = uint(buf, fs[fsat], fe[fsat])
    hdop = decimal(buf, fs[fsat + 1], fe[fsat + 1], 1)
    alt = decimal(buf, fs[fsat + 2], fe[fsat + 2], 1)
    if sats == BAD or hdop == BAD or alt == BAD or (hdop < 0 and hdop != EMPTY):
        st.bad(why)
        return False
    fix.sats = 0 if sats == EMPTY else sats
    fix.hdop_x10 = 0 if hdop == EMPTY else hdop
    if alt != EMPTY:
        fix.alt_dm = alt
    return True


def _rmc(buf, n, fix, st):
    if n < 10:
        st.bad("RMC: fewer than 10 fields")
        return False
    if fe[2] - fs[2] != 1:
        st.bad("RMC: status not A or V")
        return False
    status = buf[fs[2]]
    if status != 65 and status != 86:  # A, V
        st.bad("RMC: status not A or V")
        return False
    if not _time(buf, 1, fix, st, "RMC: time not hhmmss.ss"):
        return False
    if fe[9] > fs[9] and not date_into(buf, fs[9], fe[9], fix):
        st.bad("RMC: date not ddmmyy")
        return False
    # NMEA 2.3+ mode indicator: N = no fix, E = dead reckoning; neither is a fix.
    mode_ok = n < 13 or fe[12] == fs[12] or buf[fs[12]] not in (78, 69)
    if status != 65 or not mode_ok:
        fix.valid = False
        fix.update_epoch()
        st.no_fix += 1
        return False
    r = _pos_into(buf, 3, fix)
    if r <= 0:
        fix.valid = False
        st.bad("RMC: position or hemisphere malformed")
        return False
    spd = decimal(buf, fs[7], fe[7], 3)
    cog = decimal(buf, fs[8], fe[8], 2)
    if spd == BAD or cog == BAD or (spd < 0 and spd != EMPTY) or (cog < 0 and cog != EMPTY):
        fix.valid = False
        st.bad("RMC: speed or course malformed")
        return False
    fix.speed_ckmh = 0 if spd == EMPTY else knots_to_ckmh(spd)
    fix.course_cdeg = 0 if cog == EMPTY else cog % 36000
    fix.update_epoch()
    fix.valid = True
    st.fixes += 1
    return True


def _settle(buf, fix, st, has_fix, bad_pos):
    """The end of GGA and GNS: no fix by their quality field, else the position (fields 2-5)
    makes the fix valid or the sentence malformed (``bad_pos``)."""
    if not has_fix:
        fix.valid = False
        st.no_fix += 1
        return False
    if _pos_into(buf, 2, fix) <= 0:
        fix.valid = False
        st.bad(bad_pos)
        return False
    fix.valid = True
    st.fixes += 1
    return True


def _gga(buf, n, fix, st):
    if n < 10:
        st.bad("GGA: fewer than 10 fields")
        return False
    if not _time(buf, 1, fix, st, "GGA: time not hhmmss.ss"):
        return False
    q = uint(buf, fs[6], fe[6])
    if q == BAD:
        st.bad("GGA: quality not a digit")
        return False
    if not _sats_hdop_alt(buf, 7, fix, st, "GGA: sats, HDOP or altitude malformed"):
        return False
    fix.update_epoch()
    # Quality 1 GPS, 2 DGPS, 3 PPS, 4 RTK, 5 float RTK; 0 none, 6 estimated, 7 manual, 8 sim.
    return _settle(buf, fix, st, q != EMPTY and 1 <= q <= 5,
                   "GGA: position or hemisphere malformed")


def _gns(buf, n, fix, st):
    if n < 10:
        st.bad("GNS: fewer than 10 fields")
        return False
    if not _time(buf, 1, fix, st, "GNS: time not hhmmss.ss"):
        return False
    if not _sats_hdop_alt(buf, 7, fix, st, "GNS: sats, HDOP or altitude malformed"):
        return False
    fix.update_epoch()
    # One mode letter per constellation; A autonomous, D differential, P precise,
    # R RTK, F float RTK count as a fix; N, E, M, S do not.
    ok = False
    i = fs[6]
    while i < fe[6]:
        if buf[i] in (65, 68, 80, 82, 70):
            ok = True
        i += 1
    return _settle(buf, fix, st, ok, "GNS: position or hemisphere malformed")


def parse(buf, start, end, fix):
    """One sentence ``$ttXXX,...*hh[\\r\\n]`` -> fix; True only for a valid fix.

    Sentences other than RMC/GGA/GNS are counted in ``stats.ignored``.
    """
    if end < 0:
        end = len(buf)
    st = stats
    end = trim_end(buf, start, end)
    start = trim_start(buf, start, end)
    star = verify(buf, start, end)
    if star < 0:
        if star == -1:
            st.bad_checksum += 1
            st.last_error = "NMEA: checksum mismatch"
        elif star == -2:
            st.no_checksum += 1
            st.last_error = "NMEA: no *hh checksum"
        else:
            st.bad("NMEA: not a $ sentence")
        return False
    n = split_fields(buf, start, star)
    if n < 0:
        st.bad("NMEA: too many fields")
        return False
    # Address field: $ + 2-letter talker + 3-letter type.
    if fe[0] - fs[0] != 6:
        st.ignored += 1
        return False
    t = start + 3
    if buf.startswith(b"RMC", t):
        return _rmc(buf, n, fix, st)
    if buf.startswith(b"GGA", t):
        return _gga(buf, n, fix, st)
    if buf.startswith(b"GNS", t):
        return _gns(buf, n, fix, st)
    st.ignored += 1
    return False


class LineAssembler:
    """Collects receiver bytes into lines in a fixed buffer and parses each one.

    ``feed(data, n, fix)`` consumes ``data[:n]`` and returns how many valid
    fixes it produced.  An over-long line is dropped whole (counted in
    ``overflows``) instead of being parsed as a truncated sentence.
    """

    def __init__(self, size=128):
        self.buf = bytearray(size)
        self.n = 0
        self.overflows = 0
        self._skip = False

    def feed(self, data, n, fix):
        got = 0
        buf = self.buf
        cap = len(buf)
        i = 0
        while i < n:
            c = data[i]
            i += 1
            if c == _LF or c == _CR:
                if self.n and not self._skip and parse(buf, 0, self.n, fix):
                    got += 1
                self.n = 0
                self._skip = False
                continue
            if c == _DOLLAR:  # a new sentence always restarts the line
                self.n = 0
                self._skip = False
            if self._skip:
                continue
            if self.n >= cap:
                self.overflows += 1
                self._skip = True
                self.n = 0
                continue
            buf[self.n] = c
            self.n += 1
        return got
