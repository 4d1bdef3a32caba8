"""+CGPSINFO / +CGNSSINFO parsing (manual 003 ch.21) into the scaled-int Fix."""

import pytest
from atmq import gnssparse
from atmq.fix import UNIX_OFFSET_S, Fix, days_since_2000
import calendar


@pytest.fixture(autouse=True)
def _reset():
    gnssparse.stats.reset()


def parse(line):
    f = Fix()
    ok = gnssparse.parse(line, 0, -1, f)
    return ok, f


def test_cgpsinfo_manual_example():
    # 21.2.20 example: 3113.343286,N = 31 deg 13.343286 min; 12121.234064,E
    ok, f = parse(b"+CGPSINFO:3113.343286,N,12121.234064,E,250311,072809.33,44.1,0.0,0\r\n")
    assert ok and f.valid
    assert f.lat_e7 == round((31 + 13.343286 / 60) * 1e7)
    assert f.lon_e7 == round((121 + 21.234064 / 60) * 1e7)
    assert (f.year, f.month, f.day, f.hh, f.mm, f.ss, f.ms) == (2011, 3, 25, 7, 28, 9, 330)
    assert f.alt_dm == 441 and f.speed_ckmh == 0 and f.course_cdeg == 0
    assert f.unix_s() == calendar.timegm((2011, 3, 25, 7, 28, 9))
    assert gnssparse.stats.fixes == 1


def test_cgpsinfo_south_west_speed_course():
    ok, f = parse(b"+CGPSINFO: 3352.128000,S,15112.558000,W,211126,235959.9,-12.5,10.0,359.99")
    assert ok
    assert f.lat_e7 == -338688000 and f.lon_e7 == -1512093000
    assert f.alt_dm == -125
    assert f.speed_ckmh == 1852  # 10 kn = 18.52 km/h exactly
    assert f.course_cdeg == 35999
    assert f.epoch_s == calendar.timegm((2026, 11, 21, 23, 59, 59)) - UNIX_OFFSET_S


def test_cgpsinfo_no_fix_clears():
    f = Fix()
    assert gnssparse.parse(b"+CGPSINFO:3113.343286,N,12121.234064,E,250311,072809.33,44.1,0.0,0",
                           0, -1, f)
    assert not gnssparse.parse(b"+CGPSINFO: ,,,,,,,,", 0, -1, f)
    assert not f.valid and f.lat_e7 == 0
    assert gnssparse.stats.no_fix == 1 and gnssparse.stats.malformed == 0


def test_cgnssinfo_manual_no_fix_forms():
    for line in (b"+CGNSSINFO:", b"+CGNSSINFO:,,,,,,,,,,,,,",
                 b"+CGNSSINFO: ,,,,,,,,,,,,,,,,,\r\n"):
        ok, f = parse(line)
        assert not ok and not f.valid
    assert gnssparse.stats.no_fix == 3


def test_cgnssinfo_manual_layout_decimal_degrees():
    # 21.2.21 order: mode,GPS,GLONASS,GALILEO,BEIDOU,lat(dd.dddddd),N/S,log,E/W,date,
    # time,alt,speed,course,PDOP,HDOP,VDOP,NoSV
    ok, f = parse(b"+CGNSSINFO: 3,10,04,02,01,31.222177,S,121.354376,W,221126,101530.00,"
                  b"12.5,10.5,123.45,1.2,0.9,0.8,15")
    assert ok
    assert f.lat_e7 == -312221770 and f.lon_e7 == -1213543760
    assert f.sats == 15 and f.hdop_x10 == 9
    assert f.speed_ckmh == 1945  # 10.5 kn = 19.446 km/h
    assert f.course_cdeg == 12345 and f.alt_dm == 125
    assert (f.year, f.month, f.day, f.hh, f.mm, f.ss) == (2026, 11, 22, 10, 15, 30)


def test_cgnssinfo_sim7600_layout_ddmm_and_sv_sum():
    # SIM7600 firmware: three SV counts, ddmm.mmmmmm, no NoSV -> sats = 9+5+0
    ok, f = parse(b"+CGNSSINFO: 2,09,05,00,3113.330650,N,12121.262554,E,131117,091918.0,"
                  b"32.9,0.0,255.0,1.1,0.8,0.7")
    assert ok
    assert f.lat_e7 == round((31 + 13.330650 / 60) * 1e7)
    assert f.lon_e7 == round((121 + 21.262554 / 60) * 1e7)
    assert f.sats == 14 and f.hdop_x10 == 8 and f.course_cdeg == 25500


@pytest.mark.parametrize("line, why", [
    (b"+CGPSINFO:3113.343286,X,12121.234064,E,250311,072809.33,44.1,0.0,0", "latitude"),
    (b"+CGPSINFO:3173.343286,N,12121.234064,E,250311,072809.33,44.1,0.0,0", "latitude"),
    (b"+CGPSINFO:3113.343286,N,18121.234064,E,250311,072809.33,44.1,0.0,0", "longitude"),
    (b"+CGPSINFO:3113.343286,N,12121.234064,E,251311,072809.33,44.1,0.0,0", "date"),
    (b"+CGPSINFO:3113.343286,N,12121.234064,E,250311,076009.33,44.1,0.0,0", "time"),
    (b"+CGPSINFO:3113.343286,N,12121.234064,E,250311,072809.33,4x.1,0.0,0", "altitude"),
    (b"+CGPSINFO:3113.343286,N,12121.234064,E,250311,072809.33,44.1,0.0", "fewer"),
    (b"+CGNSSINFO: 3,10,04,02,01,31.222177,S,121.354376,W,221126,101530.00,12.5", "fewer"),
    (b"+CGNSSINFO: 1,10,04,02,01,31.222177,S,121.354376,W,221126,101530.00,"
     b"12.5,10.5,123.45,1.2,0.9,0.8,15", "mode"),
    (b"+CGNSSINFO: 3,10,04,02,01,31.222177,,121.354376,W,221126,101530.00,"
     b"12.5,10.5,123.45,1.2,0.9,0.8,15", "N/S"),
])
def test_malformed_refused_and_named(line, why):
    ok, f = parse(line)
    assert not ok and not f.valid
    assert gnssparse.stats.malformed == 1
    assert why in gnssparse.stats.last_error


def test_offsets_without_slicing():
    line = b"junk+CGPSINFO:3113.343286,N,12121.234064,E,250311,072809.33,44.1,0.0,0\r\nmore"
    buf = bytearray(line)
    f = Fix()
    start = buf.find(b"+CG")
    end = buf.find(b"\r\n")
    assert gnssparse.parse_cgpsinfo(buf, start, end, f)
    assert f.lat_e7 == 312223881
    assert not gnssparse.parse_cgpsinfo(b"+CSQ: 20,99", 0, -1, f)
    assert gnssparse.stats.ignored == 1


def test_days_since_2000_matches_calendar():
    for y, m, d in ((2000, 1, 1), (2000, 3, 1), (2024, 2, 29), (2100, 3, 1), (2033, 12, 31)):
        want = (calendar.timegm((y, m, d, 0, 0, 0)) - UNIX_OFFSET_S) // 86400
        assert days_since_2000(y, m, d) == want


def test_fix_copy_and_dict():
    ok, f = parse(b"+CGPSINFO:3113.343286,N,12121.234064,E,250311,072809.33,44.1,0.0,0")
    g = Fix()
    g.copy_from(f)
    assert g.to_dict() == f.to_dict() and g.valid
    g.clear()
    assert not g.valid and g.to_dict()["lat_e7"] == 0
