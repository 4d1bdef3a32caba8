"""ELM327 client on MicroPython: a scripted adapter, then elm327-emulator over a TCP socket.

The emulator is started through tests_host/elm_emu.py on CPython (the unix
port's sockets have no getsockname, so CPython picks the port and writes
"PORT PID" to a file); if ELM_PORT is set, that running emulator is used.
"""

import os
import socket
import sys

from elm_fake import ElmFake
from tlog import obd
from tlog.obd import Elm327, decode_pid

import run

INIT = {
    b"": b"",
    b"ATZ": b"\r\rELM327 v1.5",
    b"ATE0": b"OK", b"ATL0": b"OK", b"ATS0": b"OK", b"ATH0": b"OK", b"ATSP0": b"OK",
    b"0100": b"SEARCHING...\r4100BE3FA813",
    b"0120": b"4120801FF015",
    b"ATDPN": b"A6",
}


def _root():
    here = __file__[:__file__.rfind("/")] if "/" in __file__ else "."
    return here + "/.."


def test_formulas():
    assert decode_pid(0x0C, 0x1A, 0xF8) == 1726
    assert decode_pid(0x05, 0x7B) == 83
    assert decode_pid(0x0E, 0x00) == -640
    assert decode_pid(0x42, 0x31, 0x2D) == 12589
    assert obd.dtc_code(0xC1, 0x5A) == "U015A"


async def test_scripted_cycle_vin_dtc():
    answers = dict(INIT)
    answers.update({
        b"010D": b"410D37", b"010C": b"410C1AF8", b"0111": b"NO DATA", b"0104": b"4104FF",
        b"0902": b"014\r0: 490201575030\r1: 5A5A5A39395A54\r2: 53333930303030",
        b"03": b"43 01 33 00 00 00 00",
    })
    f = ElmFake(answers, echo=True)
    e = Elm327(f, tier1=(0x0D, 0x0C, 0x11, 0x04), tier2=(), tier3=())
    assert await e.init()
    assert f.sent[:7] == [b"", b"ATZ", b"ATE0", b"ATL0", b"ATS0", b"ATH0", b"ATSP0"]
    assert await e.poll_cycle() == 3
    assert e.values[0x0C] == 1726 and e.values[0x11] is None and e.errors == 1
    assert await e.read_vin() == "WP0ZZZ99ZTS390000"
    e.protocol = 3  # legacy layout for the mode 03 answer
    assert await e.read_dtcs() == ["P0133"]


def _start_emulator():
    port = os.getenv("ELM_PORT")
    if port:
        return int(port), None, None
    py = sys.executable[:sys.executable.rfind("/") + 1] + "python"
    tmp = "/tmp/elm-port-%d.txt" % (os.urandom(1)[0] * 256 + os.urandom(1)[0])
    rc = os.system("%s %s/tests_host/elm_emu.py start %s" % (py, _root(), tmp))
    if rc != 0:
        raise run.SkipTest("could not start elm327-emulator (rc %d)" % rc)
    with open(tmp) as fh:
        port, pid, work = fh.read().split()
    os.remove(tmp)
    return int(port), int(pid), work


async def test_live_emulator_over_socket():
    port, pid, work = _start_emulator()
    s = socket.socket()
    try:
        s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        s.setblocking(False)
        e = Elm327(s)
        assert await e.init(), obd.RESULT_NAMES[e.result]
        assert e.version.startswith("ELM327") and e.is_can()
        assert e.is_supported(0x0C) and e.is_supported(0x0D) and not e.is_supported(0x02)
        for _ in range(9):
            assert await e.poll_cycle() > 0
        assert 0 <= e.values[0x0C] <= 16383 and 0 <= e.values[0x0D] <= 255
        assert e.values[0x05] is not None and e.values[0x42] is not None
        assert await e.read_vin() == "WP0ZZZ99ZTS390000"
        assert await e.read_dtcs() == []
        assert await e.read_battery_mv() == 13100
        assert e.timeouts == 0 and e.connected
    finally:
        s.close()
        if pid is not None:
            os.system("%s %s/tests_host/elm_emu.py stop %d %s" % (
                sys.executable[:sys.executable.rfind("/") + 1] + "python", _root(), pid, work))
