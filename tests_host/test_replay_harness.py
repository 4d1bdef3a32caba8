"""The replaying modem itself (tests_device/atxreplay.py) on CPython.

Mismatch reports, chunking down to one byte, extra bytes, unread bytes, boot
URCs, simulated and real-time delays, and every fixture replayed at several
chunkings by a scripted host.
"""

import asyncio
import os
import sys

import pytest
from atmq import atx
# compat.wait_readable on CPython; imported from _host because pyright reads
# compat's MicroPython branch (a generator) and rejects `await` on it.
from atmq._host import wait_readable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "tests_device"))
import atxreplay as R  # noqa: E402  # pyright: ignore[reportMissingImports]

TRANSCRIPTS = os.path.join(os.path.dirname(__file__), "transcripts")

SESSION = """\
# a small session with a boot URC, echo, a delayed result URC and a prompt
@model SIM7600E
@source test
< \\r\\nRDY\\r\\n
> AT+CMQTTSTART\\r
< AT+CMQTTSTART\\r
< \\r\\nOK\\r\\n
< +30 \\r\\n+CMQTTSTART: 0\\r\\n
> AT+CMQTTTOPIC=0,9\\r
< AT+CMQTTTOPIC=0,9\\r
< \\r\\n>
> simcommsg
< \\r\\nOK\\r\\n
> AT+CSQ\\r
< AT+CSQ\\r\\r\\n+CSQ: 23,0\\r\\n\\r\\nERROR\\r\\n
""".splitlines()

EVENTS = [
    b"RDY",
    b"AT+CMQTTSTART",
    b"OK",
    b"+CMQTTSTART: 0",
    b"AT+CMQTTTOPIC=0,9",
    b">",
    b"OK",
    b"AT+CSQ",
    b"+CSQ: 23,0",
    b"ERROR",
]


class MiniDriver:
    """A tiny line decoder over the stream protocol: enough to exercise the harness."""

    def __init__(self, modem, bufsize=64):
        self.m = modem
        self.buf = bytearray(bufsize)
        self.line = bytearray()
        self.events = []
        self.largest_read = 0

    async def send(self, data):
        mv = memoryview(data)
        while mv:
            n = self.m.write(mv)
            mv = mv[n:]

    async def until(self, finals):
        """Read until an event in ``finals``; the bytes after it stay buffered."""
        while True:
            n = self.m.readinto(self.buf)
            if n is None:
                await wait_readable(self.m)
                continue
            self.largest_read = max(self.largest_read, n)
            for b in self.buf[:n]:
                self.line.append(b)
                ev = None
                if b in (10, 13):
                    ev = bytes(self.line).strip()
                    self.line = bytearray()
                elif self.line == b">":
                    ev = b">"
                    self.line = bytearray()
                if ev:
                    self.events.append(ev)
            if self.events and self.events[-1] in finals:
                return


async def run_session(modem, bufsize=64):
    d = MiniDriver(modem, bufsize)
    await d.until((b"RDY",))
    await d.send(b"AT+CMQTTSTART\r")
    await d.until((b"+CMQTTSTART: 0",))
    await d.send(b"AT+CMQTTTOPIC=0,9\r")
    await d.until((b">",))
    await d.send(b"simcommsg")
    await d.until((b"OK",))
    await d.send(b"AT+CSQ\r")
    await d.until((b"ERROR",))
    while modem.readable_now():  # the LF after the last CR
        n = modem.readinto(d.buf)
        assert bytes(d.buf[:n]).strip() == b""
    return d


CHUNKINGS = [None, 1, 2, 3, 7, R.Seeded(5, 1), R.Seeded(11, 42), R.Seeded(2, 99)]


@pytest.mark.parametrize("chunk", CHUNKINGS, ids=lambda c: repr(getattr(c, "n", c)))
@pytest.mark.parametrize("write_chunk", [None, 1, 4])
def test_same_events_at_every_chunking(chunk, write_chunk):
    m = R.ReplayModem(SESSION, chunk=chunk, write_chunk=write_chunk)
    d = asyncio.run(R.drive(m, run_session(m), 2000))
    assert d.events == EVENTS
    m.assert_done()
    assert m.done()
    assert bytes(m.written) == b"AT+CMQTTSTART\rAT+CMQTTTOPIC=0,9\rsimcommsgAT+CSQ\r"
    limit = chunk if isinstance(chunk, int) else getattr(chunk, "n", 64)
    assert d.largest_read <= limit
    if chunk == 1:
        total = sum(len(r[3]) for r in atx.read(SESSION)[1] if r[1] == "<")
        assert m.reads == total  # one byte per read, every byte read


def test_seeded_chunker_is_deterministic_and_in_range():
    a = [R.Seeded(7, 3).next() for _ in range(1)]
    c1, c2 = R.Seeded(7, 3), R.Seeded(7, 3)
    seq = [c1.next() for _ in range(500)]
    assert seq == [c2.next() for _ in range(500)]
    assert set(seq) == set(range(1, 8))
    assert a[0] == seq[0]
    # the same sequence on MicroPython (checked in tests_device/test_atx_device.py)
    assert seq[:8] == [4, 3, 7, 4, 4, 2, 1, 3]


def test_mismatch_raises_at_once_names_line_and_shows_escaped_bytes():
    m = R.ReplayModem(SESSION)
    buf = bytearray(64)
    assert m.readinto(buf) == 7
    m.write(b"AT+CMQ")
    with pytest.raises(R.ReplayMismatch) as e:
        m.write(b"TTSTOP\r\n")
    err = e.value
    assert err.lineno == 5
    assert err.expected == b"AT+CMQTTSTART\r"
    assert err.actual == b"AT+CMQTTSTOP\r\n"
    assert str(err) == (
        "line 5: host wrote 'AT+CMQTTSTOP\\r\\n' where the transcript expects "
        "'AT+CMQTTSTART\\r' (byte 10 of the run)"
    )
    assert m.failure is err
    # the modem stays failed: more writes re-raise it, reads get nothing
    with pytest.raises(R.ReplayMismatch):
        m.write(b"AT\r")
    assert m.readinto(buf) is None
    with pytest.raises(R.ReplayMismatch):
        m.assert_done()


def test_mismatch_in_the_second_record_of_a_run_names_that_record():
    lines = ["> AT+CMQTTTOPIC=0,9\\r", "> simcommsg", "< \\r\\nOK\\r\\n"]
    m = R.ReplayModem(lines)
    with pytest.raises(R.ReplayMismatch) as e:
        m.write(b"AT+CMQTTTOPIC=0,9\rsimcomXsg")
    assert e.value.lineno == 2
    assert e.value.expected == b"AT+CMQTTTOPIC=0,9\rsimcommsg"


def test_a_swallowed_mismatch_is_still_reported_by_drive():
    m = R.ReplayModem(SESSION)

    async def sloppy_driver():
        try:
            m.write(b"AT+WRONG\r")
        except Exception:
            pass  # a careless driver
        return "finished"

    with pytest.raises(R.ReplayMismatch) as e:
        asyncio.run(R.drive(m, sloppy_driver()))
    assert e.value.lineno == 5


def test_extra_bytes_after_the_end_are_a_failure():
    m = R.ReplayModem(["> AT\\r", "< \\r\\nOK\\r\\n"])
    assert m.write(b"AT\r") == 3
    assert m.done()
    with pytest.raises(R.ReplayMismatch) as e:
        m.write(b"AT+CSQ\r")
    assert e.value.lineno is None
    assert "after the end of the transcript" in str(e.value)
    assert e.value.actual == b"AT+CSQ\r"
    with pytest.raises(R.ReplayMismatch):
        m.assert_done(rx=False)


def test_extra_bytes_in_the_same_write_as_the_last_run():
    m = R.ReplayModem(["> AT\\r", "< \\r\\nOK\\r\\n"])
    with pytest.raises(R.ReplayMismatch) as e:
        m.write(b"AT\rX")
    assert e.value.actual == b"X"


def test_assert_done_reports_unwritten_records_and_unread_bytes():
    m = R.ReplayModem(SESSION)
    with pytest.raises(R.ReplayIncomplete) as e:
        m.assert_done()
    assert e.value.lineno == 5
    assert "waiting for the host to write 'AT+CMQTTSTART\\r'" in str(e.value)
    m2 = R.ReplayModem(["> AT\\r", "< \\r\\nOK\\r\\n"])
    m2.write(b"AT\r")
    with pytest.raises(R.ReplayIncomplete) as e:
        m2.assert_done()
    assert "did not read 6 modem bytes: '\\r\\nOK\\r\\n'" in str(e.value)
    m2.assert_done(rx=False)  # the cursor is at the end


def test_partial_write_is_reported_by_where_and_assert_done():
    m = R.ReplayModem(["> AT+CSQ\\r", "< \\r\\nOK\\r\\n"])
    m.write(b"AT+C")
    assert not m.done()
    assert m.where() == (
        "line 1: waiting for the host to write 'AT+CSQ\\r'; it wrote 'AT+C' of the run"
    )


def test_drive_timeout_says_where_the_cursor_waits():
    m = R.ReplayModem(SESSION)

    async def stuck():
        await wait_readable(m)  # RDY is there
        m.readinto(bytearray(64))
        await wait_readable(m)  # never: the modem waits for AT+CMQTTSTART

    with pytest.raises(R.ReplayTimeout) as e:
        asyncio.run(R.drive(m, stuck(), 50))
    assert "line 5: waiting for the host to write 'AT+CMQTTSTART\\r'" in str(e.value)


def test_boot_urcs_wait_for_boot_when_not_started_and_feed_injects():
    m = R.ReplayModem(SESSION, start=False)
    buf = bytearray(64)
    assert m.readinto(buf) is None
    m.boot()
    assert bytes(buf[: m.readinto(buf)]) == b"\r\nRDY\r\n"
    m.feed(b"\r\n+CPIN: READY\r\n")
    assert bytes(buf[: m.readinto(buf)]) == b"\r\n+CPIN: READY\r\n"

    async def waiter():
        m2 = R.ReplayModem(SESSION, start=False)

        async def later():
            await asyncio.sleep(0)
            m2.boot()

        t = asyncio.create_task(later())
        await wait_readable(m2)
        await t
        return m2.readinto(buf)

    assert asyncio.run(asyncio.wait_for(waiter(), 2)) == 7


def test_host_may_write_the_next_command_before_reading_the_answer():
    m = R.ReplayModem(["> AT\\r", "< \\r\\nOK\\r\\n", "> AT+CSQ\\r", "< \\r\\nOK\\r\\n"])
    m.write(b"AT\rAT+CSQ\r")
    buf = bytearray(64)
    assert bytes(buf[: m.readinto(buf)]) == b"\r\nOK\r\n\r\nOK\r\n"
    m.assert_done()


def test_simulated_delays_release_at_once_and_add_up():
    lines = ["> AT\\r", "< +10000 \\r\\nOK\\r\\n", "< +500", "< +250 \\r\\n+X: 1\\r\\n"]
    lines.append("> +7 AT\\r")
    m = R.ReplayModem(lines + ["< \\r\\nOK\\r\\n"])
    m.write(b"AT\r")
    buf = bytearray(64)
    assert bytes(buf[: m.readinto(buf)]) == b"\r\nOK\r\n\r\n+X: 1\r\n"
    assert m.sim_ms == 10750
    m.write(b"AT\r")
    assert m.sim_ms == 10757
    assert m.readinto(buf) == 6


def test_realtime_delays_follow_the_clock():
    now = [1000]
    lines = ["> AT\\r", "< +100 \\r\\nOK\\r\\n", "< +50 \\r\\n+X: 1\\r\\n", "> AT\\r", "< +5 Z"]
    m = R.ReplayModem(lines, clock=lambda: now[0])
    buf = bytearray(64)
    now[0] = 1010
    m.write(b"AT\r")  # at 1010: OK due 1110, +X due 1160
    assert m.readinto(buf) is None
    assert m.ioctl(3, 1) == 0
    now[0] = 1109
    assert m.readinto(buf) is None
    now[0] = 1110
    assert m.ioctl(3, 1) == 1
    assert bytes(buf[: m.readinto(buf)]) == b"\r\nOK\r\n"
    assert m.pending_rx() == 9
    now[0] = 1160
    assert bytes(buf[: m.readinto(buf)]) == b"\r\n+X: 1\r\n"
    # the host writes late: the next delay counts from its write, not from the schedule
    now[0] = 2000
    m.write(b"AT\r")
    now[0] = 2004
    assert m.readinto(buf) is None
    now[0] = 2005
    assert bytes(buf[: m.readinto(buf)]) == b"Z"
    m.assert_done()


def test_realtime_on_the_real_clock_waits_at_least_the_delay():
    from atmq.compat import ticks_diff, ticks_ms

    m = R.ReplayModem(["> AT\\r", "< +40 \\r\\nOK\\r\\n"], realtime=True)

    async def go():
        t0 = ticks_ms()
        m.write(b"AT\r")
        await wait_readable(m)
        return ticks_diff(ticks_ms(), t0), m.readinto(bytearray(16))

    waited, n = asyncio.run(asyncio.wait_for(go(), 2))
    assert n == 6
    assert waited >= 40  # a lower bound only: data never comes early


def test_metadata_and_sources():
    m = R.ReplayModem(SESSION)
    assert m.meta == {"model": "SIM7600E", "source": "test"}
    m2 = R.ReplayModem(atx.read(SESSION))
    assert m2.meta == m.meta


def _fixtures():
    return sorted(n for n in os.listdir(TRANSCRIPTS) if n.endswith(".atx"))


def _scripted_host(path, chunk, write_chunk):
    """Write each ">" run as the real host did; read everything the modem has
    released before the next one (simulated time releases it all at once)."""
    meta, recs = atx.read(path)
    m = R.ReplayModem((meta, recs), chunk=chunk, write_chunk=write_chunk)
    got = bytearray()
    buf = bytearray(32)
    runs = []
    for _, d, _, data in recs:
        if d == ">" and data:
            if runs and runs[-1][0] == ">":
                runs[-1][1].extend(data)
            else:
                runs.append((">", bytearray(data)))
        elif d == "<" and data:
            if not runs or runs[-1][0] != "<":
                runs.append(("<", bytearray()))
    for d, data in runs:
        while m.readable_now():
            n = m.readinto(buf)
            got.extend(buf[:n])
        if d == ">":
            mv = memoryview(bytes(data))
            while mv:
                mv = mv[m.write(mv) :]
    while m.readable_now():
        n = m.readinto(buf)
        got.extend(buf[:n])
    m.assert_done()
    return bytes(got), b"".join(r[3] for r in recs if r[1] == "<")


@pytest.mark.parametrize("name", _fixtures())
@pytest.mark.parametrize("chunk", [1, 3, R.Seeded(13, 5)], ids=["1", "3", "rnd13"])
def test_every_fixture_replays_by_its_own_host_side(name, chunk):
    got, want = _scripted_host(os.path.join(TRANSCRIPTS, name), chunk, 2)
    assert got == want
