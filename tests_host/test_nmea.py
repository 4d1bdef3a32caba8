"""NMEA RMC/GGA/GNS into the Fix, with pynmeagps as the independent reference."""

from typing import Any

import pytest
from atmq import nmea
from atmq.fix import Fix
from pynmeagps import GET, NMEAMessage, NMEAParseError, NMEAReader


@pytest.fixture(autouse=True)
def _reset():
    nmea.stats.reset()


def e7(x):
    return round(x * 1e7)


@pytest.mark.parametrize("lat, lon", [
    (52.5, 13.4), (-33.8688, -151.2093), (-0.5, -0.25), (89.99999, 179.99999), (0.0001, -179.5),
])
def test_rmc_against_pynmeagps(lat, lon):
    raw = NMEAMessage("GP", "RMC", GET, time="12:34:56.25", status="A", lat=lat,
                      NS="N" if lat >= 0 else "S", lon=lon, EW="E" if lon >= 0 else "W",
                      spd=12.3, cog=359.99, date="2026-11-21", posMode="A").serialize()
    ref: Any = NMEAReader.parse(raw)
    f = Fix()
    assert nmea.parse(raw, 0, -1, f)
    assert abs(f.lat_e7 - e7(ref.lat)) <= 1 and abs(f.lon_e7 - e7(ref.lon)) <= 1
    assert (f.lat_e7 < 0) == (lat < 0) and (f.lon_e7 < 0) == (lon < 0)
    assert f.speed_ckmh == round(ref.spd * 185.2)
    assert f.course_cdeg == 35999
    assert (f.year, f.month, f.day) == (2026, 11, 21)
    assert (f.hh, f.mm, f.ss, f.ms) == (12, 34, 56, 250)
    assert f.valid and nmea.stats.fixes == 1


def test_gga_then_rmc_fill_one_fix():
    gga = NMEAMessage("GN", "GGA", GET, time="08:00:01", lat=-12.5, NS="S", lon=-45.25, EW="W",
                      quality=2, numSV=11, HDOP=0.7, alt=-3.4, sep=10.0).serialize()
    rmc = NMEAMessage("GN", "RMC", GET, time="08:00:01", status="A", lat=-12.5, NS="S",
                      lon=-45.25, EW="W", spd=0.5, cog=10.0, date="2024-02-29").serialize()
    f = Fix()
    assert nmea.parse(gga, 0, -1, f)
    assert f.sats == 11 and f.hdop_x10 == 7 and f.alt_dm == -34
    assert f.lat_e7 == -125000000 and f.lon_e7 == -452500000
    assert f.epoch_s == 0  # no date yet
    assert nmea.parse(rmc, 0, -1, f)
    assert f.sats == 11 and f.speed_ckmh == 93 and f.course_cdeg == 1000
    import calendar
    assert f.unix_s() == calendar.timegm((2024, 2, 29, 8, 0, 1))


def test_gns_modes():
    raw = NMEAMessage("GN", "GNS", GET, time="23:59:58.5", lat=-33.8688, NS="S", lon=-151.2093,
                      EW="W", posMode="ADN", numSV=12, HDOP=0.8, alt=-12.3,
                      sep=20.1).serialize()
    f = Fix()
    assert nmea.parse(raw, 0, -1, f)
    assert f.sats == 12 and f.hdop_x10 == 8 and f.alt_dm == -123 and f.ms == 500
    raw = NMEAMessage("GN", "GNS", GET, time="23:59:59", lat=0, NS="N", lon=0, EW="E",
                      posMode="NNN", numSV=0, HDOP=99.9, alt=0, sep=0).serialize()
    assert not nmea.parse(raw, 0, -1, f)
    assert not f.valid and nmea.stats.no_fix == 1


def test_no_fix_sentences():
    f = Fix()
    for raw in (b"$GPRMC,235947.000,V,,,,,,,281123,,,N*41\r\n",
                b"$GPGGA,235947.000,,,,,0,00,,,M,,M,,*74\r\n"):
        body = raw[1:raw.index(b"*")]
        cs = 0
        for c in body:
            cs ^= c
        raw = raw[:raw.index(b"*") + 1] + b"%02X\r\n" % cs
        assert not nmea.parse(raw, 0, -1, f)
        assert not f.valid
    assert nmea.stats.no_fix == 2 and nmea.stats.bad_checksum == 0
    assert (f.hh, f.mm, f.ss) == (23, 59, 47) and (f.year, f.day) == (2023, 28)


def test_bad_checksum_refused_and_counted():
    raw = bytearray(NMEAMessage("GP", "RMC", GET, time="12:34:56", status="A", lat=52.5, NS="N",
                                lon=13.4, EW="E", spd=1.0, cog=1.0,
                                date="2026-11-21").serialize())
    f = Fix()
    good = bytes(raw)
    i = raw.index(b"5230")
    raw[i] = ord("6")  # corrupt a digit: pynmeagps refuses it too
    with pytest.raises(NMEAParseError):
        NMEAReader.parse(bytes(raw), validate=1)
    assert not nmea.parse(raw, 0, -1, f)
    assert not f.valid and f.lat_e7 == 0  # untouched
    assert nmea.stats.bad_checksum == 1
    no_cs = good[:good.index(b"*")]
    assert not nmea.parse(no_cs, 0, -1, f)
    assert nmea.stats.no_checksum == 1
    lower_hex = good[:-4] + good[-4:-2].lower() + b"\r\n"
    assert nmea.parse(lower_hex, 0, -1, f) and f.valid


def test_malformed_named_and_other_sentences_ignored():
    def mk(body):
        cs = 0
        for c in body:
            cs ^= c
        return b"$" + body + b"*%02X" % cs
    f = Fix()
    assert not nmea.parse(mk(b"GPRMC,123456,A,52xx.0,N,01324.0,E,1.0,1.0,211126,,"), 0, -1, f)
    assert "RMC" in nmea.stats.last_error and nmea.stats.malformed == 1
    assert not nmea.parse(mk(b"GPGSV,3,1,11,03,03,111,00"), 0, -1, f)
    assert nmea.stats.ignored == 1


def test_line_assembler_stream_split_anywhere():
    s = b"garbage\r\n"
    s += NMEAMessage("GP", "RMC", GET, time="01:02:03", status="A", lat=1.5, NS="N", lon=2.5,
                     EW="E", spd=0.0, cog=0.0, date="2026-01-02").serialize()
    s += b"$GPGGA," + b"9" * 300 + b"\r\n"  # over-long: dropped whole
    s += NMEAMessage("GP", "GGA", GET, time="01:02:03", lat=1.5, NS="N", lon=2.5, EW="E",
                     quality=1, numSV=5, HDOP=1.1, alt=5.0, sep=0.0).serialize()
    for chunk in (1, 3, 7, 64, len(s)):
        nmea.stats.reset()
        asm = nmea.LineAssembler(128)
        f = Fix()
        got = 0
        for i in range(0, len(s), chunk):
            part = s[i:i + chunk]
            got += asm.feed(part, len(part), f)
        assert got == 2 and asm.overflows == 1
        assert f.sats == 5 and f.lat_e7 == 15000000 and f.year == 2026
