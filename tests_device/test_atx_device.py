"""atmq.atx and the replaying modem on MicroPython (unix port).

The same replays as tests_host/test_replay_harness.py, waited on through
asyncio's poller (the modem's ioctl), at several chunkings.
"""

import io
import os

import asyncio
import atxreplay as R
import run
from atmq import atx
from atmq.compat import wait_readable

SESSION = [
    "< \\r\\nRDY\\r\\n",
    "> AT+CMQTTSTART\\r",
    "< AT+CMQTTSTART\\r",
    "< \\r\\nOK\\r\\n",
    "< +30 \\r\\n+CMQTTSTART: 0\\r\\n",
    "> AT+CMQTTTOPIC=0,9\\r",
    "< AT+CMQTTTOPIC=0,9\\r",
    "< \\r\\n>",
    "> simcommsg",
    "< \\r\\nOK\\r\\n",
]
EVENTS = [b"RDY", b"AT+CMQTTSTART", b"OK", b"+CMQTTSTART: 0", b"AT+CMQTTTOPIC=0,9", b">", b"OK"]


def _transcripts():
    here = __file__[: __file__.rfind("/")] if "/" in __file__ else "."
    return here + "/../tests_host/transcripts"


def test_every_byte_round_trips():
    data = bytes(range(256))
    text = atx.escape(data)
    assert atx.unescape(text) == data
    for b in range(256):
        one = bytes([b])
        assert atx.parse_line("< " + atx.escape(b"A" + one + one)) == ("<", 0, b"A" + one + one)


def test_malformed_lines_name_their_number():
    for lines, want in (
        (["@model X", "> AT\\r", "< \\q"], "line 3: "),
        (["> AT\\r", "@baud 1"], "line 2: metadata"),
        (["# c", ">"], "line 2: "),
    ):
        try:
            atx.read(lines)
        except ValueError as e:
            assert str(e).startswith(want), str(e)
        else:
            raise AssertionError("no error for %r" % lines)


def test_writer_splits_and_reads_back():
    s = io.StringIO()
    w = atx.Writer(s)
    w.meta("model", "SIM7600E")
    w.tx(b"AT+CSQ\r")
    w.rx(b"AT+CSQ\r\r\n+CSQ: 23,0\r\n\r\nOK\r\n", 12)
    w.rx(b"+1 x")
    lines = s.getvalue().split("\n")
    assert lines[:6] == [
        "@model SIM7600E",
        "> AT+CSQ\\r",
        "< +12 AT+CSQ\\r",
        "< \\r\\n+CSQ: 23,0\\r\\n",
        "< \\r\\nOK\\r\\n",
        "< +0 +1 x",
    ], lines
    meta, recs = atx.read(lines)
    assert meta == {"model": "SIM7600E"}
    assert recs[-1] == (6, "<", 0, b"+1 x")


def test_seeded_chunker_matches_cpython():
    c = R.Seeded(7, 3)
    assert [c.next() for _ in range(8)] == [4, 3, 7, 4, 4, 2, 1, 3]


async def _session(m):
    buf = bytearray(64)
    line = bytearray()
    events = []

    async def until(final):
        nonlocal line
        while not events or events[-1] != final:
            n = m.readinto(buf)
            if n is None:
                await wait_readable(m)
                continue
            for i in range(n):
                b = buf[i]
                line.append(b)
                ev = None
                if b == 10 or b == 13:
                    ev = bytes(line).strip()
                    line = bytearray()
                elif line == b">":
                    ev = b">"
                    line = bytearray()
                if ev:
                    events.append(ev)

    async def send(data):
        mv = memoryview(data)
        while len(mv):
            mv = mv[m.write(mv) :]

    await until(b"RDY")
    await send(b"AT+CMQTTSTART\r")
    await until(b"+CMQTTSTART: 0")
    await send(b"AT+CMQTTTOPIC=0,9\r")
    await until(b">")
    await send(b"simcommsg")
    await until(b"OK")
    while m.readable_now():
        m.readinto(buf)
    return events


def test_same_events_at_every_chunking_through_the_poller():
    for chunk in (None, 1, 2, 3, 7, R.Seeded(5, 1)):
        for wchunk in (None, 1):
            m = R.ReplayModem(SESSION, chunk=chunk, write_chunk=wchunk)
            events = asyncio.run(R.drive(m, _session(m), 3000))
            assert events == EVENTS, (chunk, events)
            m.assert_done()


def test_realtime_delay_is_waited_for_through_the_poller():
    from atmq.compat import ticks_diff, ticks_ms

    for chunk in (1, R.Seeded(4, 9)):
        m = R.ReplayModem(SESSION, chunk=chunk, realtime=True)
        t0 = ticks_ms()
        events = asyncio.run(R.drive(m, _session(m), 3000))
        assert events == EVENTS, events
        assert ticks_diff(ticks_ms(), t0) >= 30  # the +30 URC never comes early
        m.assert_done()


def test_poller_waits_for_boot():
    m = R.ReplayModem(SESSION, start=False)

    async def go():
        async def later():
            await asyncio.sleep_ms(5)
            m.boot()

        asyncio.create_task(later())
        await wait_readable(m)
        return m.readinto(bytearray(16))

    assert asyncio.run(asyncio.wait_for_ms(go(), 2000)) == 7


def test_mismatch_is_kept_and_reported_by_drive():
    m = R.ReplayModem(SESSION)

    async def sloppy():
        try:
            m.write(b"AT+CMQTTSTOP\r")
        except Exception:
            pass
        return 1

    try:
        asyncio.run(R.drive(m, sloppy()))
    except R.ReplayMismatch as e:
        assert e.lineno == 2
        assert e.expected == b"AT+CMQTTSTART\r"
        assert "'AT+CMQTTSTOP\\r'" in str(e), str(e)
    else:
        raise AssertionError("mismatch not reported")


def test_extra_bytes_and_timeout():
    m = R.ReplayModem(["> AT\\r", "< \\r\\nOK\\r\\n"])
    try:
        m.write(b"AT\rAT\r")
    except R.ReplayMismatch as e:
        assert e.lineno is None and e.actual == b"AT\r"
    else:
        raise AssertionError("extra bytes not detected")
    m2 = R.ReplayModem(SESSION)
    m2.readinto(bytearray(64))

    async def stuck():
        await wait_readable(m2)

    try:
        asyncio.run(R.drive(m2, stuck(), 30))
    except R.ReplayTimeout as e:
        assert "line 2: waiting for the host to write 'AT+CMQTTSTART\\r'" in str(e), str(e)
    else:
        raise AssertionError("no timeout")


def test_realtime_fake_clock_and_poll_flags():
    now = [0]
    m = R.ReplayModem(["> AT\\r", "< +100 \\r\\nOK\\r\\n"], clock=lambda: now[0])
    m.write(b"AT\r")
    assert m.ioctl(3, 1 | 4) == 4  # writable, not readable yet
    now[0] = 100
    assert m.ioctl(3, 1 | 4) == 5
    assert m.ioctl(10, 0) < 0  # no file descriptor: poll must use ioctl


def test_every_fixture_parses_and_replays_at_one_byte():
    d = _transcripts()
    try:
        names = [n for n in os.listdir(d) if n.endswith(".atx")]
    except OSError:
        raise run.SkipTest("no fixtures on this target") from None
    assert len(names) >= 10
    buf = bytearray(1)
    for name in names:
        meta, recs = atx.read(d + "/" + name)
        m = R.ReplayModem((meta, recs), chunk=1)
        got = bytearray()
        for _, di, _, data in recs:
            if di == ">" and data:
                while m.readable_now():
                    got.extend(buf[: m.readinto(buf)])
                m.write(data)
        while m.readable_now():
            got.extend(buf[: m.readinto(buf)])
        m.assert_done()
        assert bytes(got) == b"".join(r[3] for r in recs if r[1] == "<"), name


def test_capture_writer_allocates_nothing_per_record():
    import gc

    class Sink:
        n = 0

        def write(self, b):
            self.n += len(b)

    sink = Sink()
    w = atx.Writer(sink)
    line = b"\r\n+CMQTTRXPAYLOAD: 0,60\r\n" + b"0123456789" * 6 + b"\x00 \r\n"
    for _ in range(20):  # warm the line buffer up to its size
        w.rx(line, 12)
        w.tx(b"AT+CMQTTPUB=0,1,60\r")
    gc.collect()
    gc.disable()
    try:
        a0 = gc.mem_alloc()
        for _ in range(100):
            w.rx(line, 12)
            w.tx(b"AT+CMQTTPUB=0,1,60\r")
        grew = gc.mem_alloc() - a0
    finally:
        gc.enable()
    assert grew == 0, grew
    assert sink.n > 0
