"""Modem simulator GNSS: fixes move along a track, in each persona's format (manual 003 ch.21)."""

from modemsim_at import run, sim_session

import re

from pynmeagps import NMEAMessage

CGPS_RE = re.compile(rb"\r\n\+CGPSINFO: (\d{4}\.\d{6}),([NS]),(\d{5}\.\d{6}),([EW]),(\d{6}),"
                     rb"(\d{6}\.\d),(-?\d+\.\d),(\d+\.\d),(\d+\.\d)\r\n\r\nOK\r\n")
CGNSS_RE = re.compile(rb"\r\n\+CGNSSINFO: 3,09,05,00,00,(\d+\.\d{6}),([NS]),(\d+\.\d{6}),([EW]),"
                      rb"(\d{6}),(\d{6}\.\d{2}),(-?\d+\.\d),(\d+\.\d),(\d+\.\d),1\.5,0\.9,1\.2,14"
                      rb"\r\n\r\nOK\r\n")

TRACK = [{"t": 0, "lat": 48.5, "lon": 9.25, "alt": 400.0, "speed": 10.0, "course": 90.0},
         {"t": 10, "lat": 48.5, "lon": 9.26, "alt": 402.0, "speed": 12.0, "course": 90.0},
         {"t": 20, "lat": 48.51, "lon": 9.26, "alt": 404.0, "speed": 0.0, "course": 0.0}]


def match(rx, data):
    m = rx.fullmatch(data)
    assert m is not None, data
    return m


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_cgpsinfo_moves_along_track_sim7600e():
    clock = Clock()

    async def t():
        async with sim_session("SIM7600E", track=TRACK, gnss_clock=clock) as (sim, at):
            await at.cmd(b"AT+CGPSINFO", b"\r\n+CGPSINFO: ,,,,,,,,\r\n\r\nOK\r\n")   # off
            await at.cmd(b"AT+CGPS=1", b"\r\nOK\r\n")
            await at.cmd(b"AT+CGPS?", b"\r\n+CGPS: 1,1\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CGPS=1", b"\r\nERROR\r\n")
            await at.send(b"AT+CGPSINFO\r")
            a = match(CGPS_RE, await at.until(b"\r\nOK\r\n"))
            assert a.group(1, 2, 3, 4) == (b"4830.000000", b"N", b"00915.000000", b"E")
            assert a.group(7, 8, 9) == (b"400.0", b"10.0", b"90.0")
            clock.t += 5                                             # halfway to point 2
            await at.send(b"AT+CGPSINFO\r")
            b = match(CGPS_RE, await at.until(b"\r\nOK\r\n"))
            assert b.group(1, 3, 7, 8) == (b"4830.000000", b"00915.300000", b"401.0", b"11.0")
            clock.t += 100                                           # past the end: holds
            await at.send(b"AT+CGPSINFO\r")
            c = match(CGPS_RE, await at.until(b"\r\nOK\r\n"))
            assert c.group(1, 3) == (b"4830.600000", b"00915.600000")
            await at.cmd(b"AT+CGPS=0", b"\r\nOK\r\n\r\n+CGPS: 0\r\n")
    run(t())


def test_cgnssinfo_format_a7600_and_periodic_report():
    clock = Clock()

    async def t():
        async with sim_session("A7600", track=TRACK, gnss_clock=clock) as (sim, at):
            await at.cmd(b"AT+CGNSSINFO", b"\r\n+CGNSSINFO: ,,,,,,,,,,,,,\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CGNSSPWR=1", b"\r\nOK\r\n\r\n+CGNSSPWR: READY!\r\n")
            await at.cmd(b"AT+CGNSSPWR?", b"\r\n+CGNSSPWR: 1\r\n\r\nOK\r\n")
            clock.t += 10
            await at.send(b"AT+CGNSSINFO\r")
            m = match(CGNSS_RE, await at.until(b"\r\nOK\r\n"))
            assert m.group(1, 2, 3, 4, 7) == (b"48.500000", b"N", b"9.260000", b"E", b"402.0")
            await at.cmd(b"AT+CGNSSINFO=1", b"\r\nOK\r\n")
            urc = await at.until(b"\r\n", timeout=5) + await at.until(b"\r\n", timeout=5)
            assert urc.startswith(b"\r\n+CGNSSINFO: 3,09,05,00,00,48.500000,N,9.260000,E,")
            await at.cmd(b"AT+CGNSSINFO=0", b"\r\nOK\r\n")
            await at.cmd(b"AT+CGPSINFO", b"\r\nERROR\r\n")           # SIM7600 command
    run(t())


def test_nmea_track_from_pynmeagps(tmp_path):
    lines = []
    for k, (lat, lon) in enumerate(((-33.5, 151.25), (-33.5, 151.3))):
        tm = "0100%02d.00" % (k * 10)
        lines.append(NMEAMessage("GP", "GGA", 0, time=tm, lat=lat, lon=lon, quality=1,
                                 numSV=8, HDOP=0.9, alt=55.0).serialize())
        lines.append(NMEAMessage("GP", "RMC", 0, time=tm, status="A", lat=lat, lon=lon,
                                 spd=5.0, cog=270.0, date="221126").serialize())
    path = tmp_path / "track.nmea"
    path.write_bytes(b"".join(lines))
    clock = Clock()

    async def t():
        async with sim_session("SIM7670", track=str(path), gnss_clock=clock) as (sim, at):
            await at.cmd(b"AT+CGNSSPWR=1", b"\r\nOK\r\n\r\n+CGNSSPWR: READY!\r\n")
            await at.send(b"AT+CGNSSINFO\r")
            a = match(CGNSS_RE, await at.until(b"\r\nOK\r\n"))
            clock.t += 10
            await at.send(b"AT+CGNSSINFO\r")
            b = match(CGNSS_RE, await at.until(b"\r\nOK\r\n"))
            assert a.group(1, 2, 3, 4) == (b"33.500000", b"S", b"151.250000", b"E")
            assert b.group(1, 3, 7, 8, 9) == (b"33.500000", b"151.300000", b"55.0", b"5.0",
                                              b"270.0")
    run(t())
