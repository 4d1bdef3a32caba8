"""GNSS parsers on MicroPython: manual examples, hemispheres, checksums, no allocation."""

import gc

from atmq import gnssparse, nmea
from atmq.fix import Fix

CGPS = b"+CGPSINFO:3113.343286,N,12121.234064,E,250311,072809.33,44.1,0.0,0\r\n"
CGNSS = (b"+CGNSSINFO: 3,10,04,02,01,31.222177,S,121.354376,W,221126,101530.00,"
         b"12.5,10.5,123.45,1.2,0.9,0.8,15")
# Built with pynmeagps on the host (checksums included)
RMC = b"$GPRMC,123456.25,A,3352.12800,S,15112.55800,W,12.3,359.99,211126,0.0,,A,*59\r\n"
GGA = b"$GNGGA,123456,0030.00000,S,00015.00000,W,1,8,0.9,34.5,,47.0,,0.0,0*4D\r\n"


def test_cgpsinfo_manual_example():
    f = Fix()
    assert gnssparse.parse(CGPS, 0, -1, f)
    assert f.lat_e7 == 312223881 and f.lon_e7 == 1213539011
    assert (f.year, f.month, f.day, f.hh, f.mm, f.ss, f.ms) == (2011, 3, 25, 7, 28, 9, 330)
    assert f.epoch_s == 354353289 and f.alt_dm == 441


def test_cgnssinfo_south_west_and_no_fix():
    f = Fix()
    assert gnssparse.parse(CGNSS, 0, -1, f)
    assert f.lat_e7 == -312221770 and f.lon_e7 == -1213543760
    assert f.sats == 15 and f.hdop_x10 == 9 and f.speed_ckmh == 1945
    assert not gnssparse.parse(b"+CGNSSINFO:,,,,,,,,,,,,,", 0, -1, f)
    assert not f.valid and f.lat_e7 == 0


def test_nmea_rmc_gga_and_bad_checksum():
    f = Fix()
    nmea.stats.reset()
    assert nmea.parse(RMC, 0, -1, f)
    assert f.lat_e7 == -338688000 and f.lon_e7 == -1512093000
    assert f.speed_ckmh == 2278 and f.course_cdeg == 35999 and f.ms == 250
    assert nmea.parse(GGA, 0, -1, f)
    assert f.lat_e7 == -5000000 and f.lon_e7 == -2500000 and f.sats == 8
    bad = bytearray(RMC)
    bad[20] = 55  # a digit of the latitude
    g = Fix()
    assert not nmea.parse(bad, 0, -1, g)
    assert nmea.stats.bad_checksum == 1 and not g.valid and g.lat_e7 == 0


def test_parse_in_a_line_buffer_without_allocating():
    # lat/lon stay below 2**30 here (|lon| < 107 deg) so nothing is boxed on the ESP32 either
    line = bytearray(128)
    src = b"xx+CGPSINFO:3113.343286,N,01121.234064,E,250311,072809.33,44.1,1.5,10\r\n"
    line[0:len(src)] = src
    f = Fix()
    gnssparse.parse_cgpsinfo(line, 2, len(src), f)  # warm-up
    nmea.parse(RMC, 0, -1, f)
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(20):
        gnssparse.parse_cgpsinfo(line, 2, len(src), f)
        nmea.parse(GGA, 0, -1, f)
    after = gc.mem_alloc()
    assert f.valid and f.lon_e7 == -2500000
    assert after - before == 0, after - before
