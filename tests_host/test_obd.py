"""ELM327 client: J1979 formulas, answer handling on a scripted adapter, and a live emulator."""

import asyncio
import os
import socket
import sys
from typing import Any

import pytest
from atmq.compat import ticks_diff, ticks_ms
from tlog import obd
from tlog.obd import Elm327, decode_pid, dtc_code

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "tests_device"))
import elm_emu  # noqa: E402
from sockstream import SockStream  # noqa: E402
from elm_fake import ElmFake  # noqa: E402  # pyright: ignore[reportMissingImports]

INIT = {
    b"": b"",
    b"ATZ": b"\r\rELM327 v1.5",
    b"ATE0": b"OK", b"ATL0": b"OK", b"ATS0": b"OK", b"ATS1": b"OK", b"ATH0": b"OK",
    b"ATSP0": b"OK",
    b"0100": b"SEARCHING...\r4100BE3FA813",
    b"0120": b"4120901FF015",  # 0x20 set above -> 0120 asked; bit 0x40 set -> 0140
    b"0140": b"41407A1C8020",  # bit 0x60 clear: stop
    b"ATDPN": b"A6",
}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def fake(extra=None, **kw):
    answers = dict(INIT)
    answers.update(extra or {})
    return ElmFake(answers, **kw)


# ---- formulas --------------------------------------------------------------------


def test_published_examples():
    # Examples from the SAE J1979 PID table as commonly published (and the ELM327 sheet)
    assert decode_pid(0x0C, 0x1A, 0xF8) == 1726  # rpm
    assert decode_pid(0x05, 0x7B) == 83  # degC
    assert decode_pid(0x0D, 0xFF) == 255  # km/h, max
    assert decode_pid(0x04, 0xFF) == 1000  # 100.0 %
    assert decode_pid(0x0E, 0x00) == -640 and decode_pid(0x0E, 0xFF) == 635  # -64..63.5 deg
    assert decode_pid(0x10, 0xFF, 0xFF) == 65535  # 655.35 g/s
    assert decode_pid(0x42, 0x31, 0x2D) == 12589  # mV
    assert decode_pid(0x5E, 0xFF, 0xFF) == 327675  # 3276.75 L/h in 0.01
    assert decode_pid(0x06, 0x00) == -1000 and decode_pid(0x06, 0xFF) == 992  # -100..99.2 %
    assert decode_pid(0x3C, 0, 0) == -400  # -40.0 degC
    assert decode_pid(0xA6, 0, 0x01, 0x86, 0xA0) == 100000  # 10000.0 km
    assert decode_pid(0x99, 1) is None


def _pyobd_pids():
    import obd as pyobd  # python-OBD, installed with elm327-emulator

    cmds: Any = pyobd.commands[1]
    return [p for p in obd.pids()
            if p < len(cmds) and cmds[p] is not None and cmds[p].bytes - 2 == obd.pid_len(p)]


@pytest.mark.parametrize("pid", _pyobd_pids())
def test_formulas_against_python_obd(pid):
    """python-OBD is an independent decoder of the same J1979 table."""
    import obd as pyobd
    from obd.protocols.protocol import Message

    cmds: Any = pyobd.commands[1]
    cmd = cmds[pid]
    scale = {"0.1": 10, "0.01": 100, "0.001": 1000, "mV": 1000}
    mult = 1
    unit = obd.pid_unit(pid)
    assert unit is not None
    for k, v in scale.items():
        if k in unit:
            mult = v
    for a, b in ((0, 0), (1, 2), (0x7B, 0x31), (0x80, 0x80), (0xC8, 0x10), (0xFF, 0xFF)):
        raw = [a, b, 0x10, 0x20][:obd.pid_len(pid)]
        m = Message([])
        m.data = bytearray([0x41, pid] + raw)
        ref = cmd.decode([m])
        if ref is None:
            continue
        ref = getattr(ref, "magnitude", ref)
        if isinstance(ref, str):
            continue
        mine = decode_pid(pid, *raw)
        assert abs(mine - ref * mult) <= 1.0, (hex(pid), raw, mine, ref)


def test_dtc_codes():
    assert dtc_code(0x01, 0x33) == "P0133"
    assert dtc_code(0x41, 0x23) == "C0123"
    assert dtc_code(0x81, 0x00) == "B0100"
    assert dtc_code(0xC1, 0x5A) == "U015A"
    assert dtc_code(0x31, 0x00) == "P3100"


# ---- scripted adapter ------------------------------------------------------------


def test_init_sequence_and_bitmap():
    f = fake(echo=True)  # echo on until ATE0, as after power-up
    e = Elm327(f)
    assert run(e.init())
    assert f.sent == [b"", b"ATZ", b"ATE0", b"ATL0", b"ATS0", b"ATH0", b"ATSP0",
                      b"0100", b"0120", b"0140", b"ATDPN"]
    assert e.version == "ELM327 v1.5" and e.protocol == 6 and e.is_can()
    # BE = 1011 1110 -> 01, 03, 04, 05, 06, 07 supported; 02 and 08 not
    assert [p for p in range(1, 9) if e.is_supported(p)] == [1, 3, 4, 5, 6, 7]
    assert e.is_supported(0x0C) and e.is_supported(0x0D) and e.is_supported(0x20)
    assert e.is_supported(0x21) and e.is_supported(0x40) and not e.is_supported(0x60)
    assert not e.is_supported(0x61)


def test_bitmaps_of_two_ecus_are_ored():
    f = fake({b"0100": b"41 00 80 00 00 00 \r41 00 40 00 00 00", b"ATDPN": b"A6"},
             )
    e = Elm327(f, spaces=True)
    assert run(e.init())
    assert b"ATS1" in f.sent and e.is_supported(1) and e.is_supported(2)
    assert not e.is_supported(3)


@pytest.mark.parametrize("answer, result", [
    (b"SEARCHING...\rUNABLE TO CONNECT", obd.R_UNABLE),
    (b"BUS INIT: ...ERROR", obd.R_BUS_INIT),
    (b"CAN ERROR", obd.R_CAN_ERROR),
    (b"NO DATA", obd.R_NO_DATA),
    (b"?", obd.R_UNKNOWN),
    (b"STOPPED", obd.R_STOPPED),
    (b"BUS BUSY", obd.R_BUS),
    (b"ERR94", obd.R_BUS),
    (b"BUFFER FULL", obd.R_BUFFER_FULL),
])
def test_init_fails_with_named_result(answer, result):
    e = Elm327(fake({b"0100": answer}))
    assert not run(e.init())
    assert e.result == result and not e.connected


def test_bus_init_ok_is_progress_not_error():
    e = Elm327(fake({b"0100": b"BUS INIT: ...OK\r41 00 BE 3F A8 13", b"ATDPN": b"A3"}))
    assert run(e.init()) and e.protocol == 3 and not e.is_can()


def test_poll_cycle_tiers_and_failures_do_not_abort():
    answers = {
        b"010D": b"410D37", b"010C": b"410C1AF8", b"0111": b"NO DATA", b"0104": b"4104FF",
        b"010E": b"410E80", b"0105": b"41057B", b"010F": b"410F39", b"0133": b"413365",
        b"011F": b"411F0075", b"0110": b"41100190",
    }
    f = fake(answers)
    e = Elm327(f, tier1=(0x0D, 0x0C, 0x11, 0x04), tier2=(0x0E, 0x10),
               tier3=(0x05, 0x0F, 0x33, 0x1F), every2=2, every3=4, max_failures=3)
    assert run(e.init())
    f.sent.clear()
    got = run(e.poll_cycle())  # cycle 0: tier-2 index 0, tier-3 index 0
    assert f.sent == [b"010D", b"010C", b"0111", b"0104", b"010E", b"0105"]
    assert got == 5 and e.errors == 1 and e.pid_errors[0x11] == 1
    assert e.values[0x0D] == 0x37 and e.values[0x0C] == 1726 and e.values[0x04] == 1000
    assert e.values[0x0E] == 0 and e.values[0x05] == 83 and e.values[0x11] is None
    f.sent.clear()
    run(e.poll_cycle())  # cycle 1: tier-2 index 1, tier-3 index 3
    assert f.sent == [b"010D", b"010C", b"0111", b"0104", b"0110", b"011F"]
    assert e.values[0x1F] == 0x75 and e.values[0x10] == 400
    f.sent.clear()
    run(e.poll_cycle())  # cycle 2: tier-2 index 0, tier-3 index 2
    assert f.sent == [b"010D", b"010C", b"0111", b"0104", b"010E", b"0133"]
    assert e.connected and e.failures == 0


def test_repeated_failures_reinit():
    f = fake({b"010D": [b"NO DATA", b"NO DATA", b"NO DATA", b"410D10"]})
    e = Elm327(f, tier1=(0x0D,), tier2=(), tier3=(), max_failures=3)
    assert run(e.init())
    assert run(e.poll_cycle()) == 0 and run(e.poll_cycle()) == 0
    assert e.connected
    assert run(e.poll_cycle()) == 0
    assert not e.connected and e.errors == 3
    f.sent.clear()
    assert run(e.poll_cycle()) == 1  # re-init, then the read works
    assert f.sent[:3] == [b"", b"ATZ", b"ATE0"] and f.sent[-1] == b"010D"
    assert e.reinits == 2 and e.values[0x0D] == 16


def test_silent_adapter_times_out_within_deadline():
    f = fake({b"010D": None, b"010C": b"410C0FA0"})
    e = Elm327(f, tier1=(0x0D, 0x0C), tier2=(), tier3=())
    assert run(e.init())
    loop_t = asyncio.run(_timed(e))
    got, elapsed = loop_t
    assert got == 1 and e.values[0x0C] == 1000 and e.timeouts == 1
    # measured on the clock the deadline is kept on (ticks_ms floors to whole ms, so
    # asyncio's clock may show a hair under the 1000 ms); the upper bound is loose
    assert obd.SHORT_MS <= elapsed < obd.SHORT_MS + 5000
    # after the timeout a lone CR was sent to abort the command, then the next PID
    assert f.sent[-3:] == [b"010D", b"", b"010C"]


async def _timed(e):
    t0 = ticks_ms()
    got = await e.poll_cycle()
    return got, ticks_diff(ticks_ms(), t0)


def test_vin_can_numbered_with_and_without_spaces():
    for ans in (b"014\r0: 49 02 01 57 50 30 \r1: 5A 5A 5A 39 39 5A 54 \r2: 53 33 39 30 30 30 30 ",
                b"014\r0: 490201575030\r1: 5A5A5A39395A54\r2: 53333930303030"):
        e = Elm327(fake({b"0902": ans}))
        assert run(e.init())
        assert run(e.read_vin()) == "WP0ZZZ99ZTS390000"


def test_vin_legacy_lines_elm327_datasheet_example():
    ans = (b"49 02 01 00 00 00 31 \r49 02 02 44 34 47 50 \r49 02 03 30 30 52 35 \r"
           b"49 02 04 35 42 31 32 \r49 02 05 33 34 35 36 ")
    e = Elm327(fake({b"0902": ans, b"ATDPN": b"A3"}))
    assert run(e.init())
    assert run(e.read_vin()) == "1D4GP00R55B123456"


def test_vin_can_single_frame_and_bad():
    e = Elm327(fake({b"0902": [b"NO DATA", b"0: 49 02 01 57"]}))
    assert run(e.init())
    assert run(e.read_vin()) is None and e.result == obd.R_NO_DATA
    assert run(e.read_vin()) is None and e.result == obd.R_BAD_ANSWER


def test_dtcs_legacy_can_and_multiframe():
    e = Elm327(fake({b"03": b"43 01 33 00 00 00 00 \r43 41 23 81 00 C1 5A", b"ATDPN": b"A3"}))
    assert run(e.init())
    assert run(e.read_dtcs()) == ["P0133", "C0123", "B0100", "U015A"]
    e = Elm327(fake({b"03": b"43 02 01 33 01 34"}))
    assert run(e.init())
    assert run(e.read_dtcs()) == ["P0133", "P0134"]
    e = Elm327(fake({b"03": b"00A\r0: 43 04 01 33 01 34 \r1: 41 23 81 00 00 00 00"}))
    assert run(e.init())
    assert run(e.read_dtcs()) == ["P0133", "P0134", "C0123", "B0100"]
    e = Elm327(fake({b"03": b"NO DATA"}))
    assert run(e.init())
    assert run(e.read_dtcs()) == []


def test_battery_voltage():
    e = Elm327(fake({b"ATRV": [b"12.6V", b"14.05V", b"garbage"]}))
    assert run(e.read_battery_mv()) == 12600
    assert run(e.read_battery_mv()) == 14050
    assert run(e.read_battery_mv()) is None and e.result == obd.R_BAD_ANSWER


def test_late_bytes_from_timed_out_answer_are_drained():
    f = fake()
    e = Elm327(f, tier1=(0x0D,), tier2=(), tier3=())
    f.answers[b"010D"] = b"410D22"
    assert run(e.init())
    f.out += b"410D99\r\r>"  # stale answer still in the input
    assert run(e.read_pid(0x0D)) == 0x22


# ---- live: elm327-emulator over TCP ----------------------------------------------


@pytest.fixture(scope="module")
def emulator():
    proc, port = elm_emu.start()
    try:
        yield port
    finally:
        elm_emu.stop(proc)
        assert proc.returncode is not None


def test_live_emulator(emulator):
    async def main():
        sock = socket.create_connection(("127.0.0.1", emulator), timeout=5)
        s = SockStream(sock)
        e = Elm327(s)
        try:
            assert await e.init(), obd.RESULT_NAMES[e.result]
            assert bytes(s.tx).startswith(b"\rATZ\rATE0\rATL0\rATS0\rATH0\rATSP0\r0100\r0120\r")
            assert e.version.startswith("ELM327") and e.is_can()
            # The car scenario's 0100 answer is BE 3F A8 13
            assert [p for p in range(1, 0x21) if e.is_supported(p)] == [
                1, 3, 4, 5, 6, 7, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x13, 0x15, 0x1C, 0x1F,
                0x20]
            for _ in range(9):
                assert await e.poll_cycle() > 0
            assert 0 <= e.values[0x0C] <= 16383 and 0 <= e.values[0x0D] <= 255
            assert -40 <= e.values[0x05] <= 215 and 0 <= e.values[0x04] <= 1000
            assert e.values[0x33] is not None and e.values[0x42] is not None
            # 0146 answers, but the 0140 bitmap (7A 1C 80 21) does not list it: not polled
            assert not e.is_supported(0x46) and e.values[0x46] is None
            assert b"0146" not in s.tx
            assert e.values[0x5E] is None  # the emulator answers NO DATA (not supported)
            assert await e.read_vin() == "WP0ZZZ99ZTS390000"
            assert await e.read_dtcs() == []
            assert await e.read_battery_mv() == 13100
            assert e.connected and e.timeouts == 0
        finally:
            s.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_failed_init_backs_off_on_injected_clock():
    now = [0]
    f = fake({b"0100": b"SEARCHING...\rUNABLE TO CONNECT"})
    e = Elm327(f, clock=lambda: now[0], max_retry_ms=5000)
    assert run(e.poll_cycle()) == -1 and e.reinits == 1
    n = len(f.sent)
    now[0] = 1999
    assert run(e.poll_cycle()) == -1 and len(f.sent) == n  # nothing sent inside the back-off
    now[0] = 2000
    assert run(e.poll_cycle()) == -1 and e.reinits == 2  # retried; next wait 4 s
    now[0] = 5999
    assert run(e.poll_cycle()) == -1 and e.reinits == 2
    now[0] = 6000
    f.answers[b"0100"] = b"41 00 00 08 00 00"  # ignition on: PID 0D supported
    f.answers[b"010D"] = b"41 0D 20"
    assert run(e.poll_cycle()) == 1 and e.values[0x0D] == 32 and e.reinits == 3
