"""The AT engine against replayed modems: exact bytes out, decoded answers and URCs in,
at every chunking from one byte per read."""

import asyncio
import glob
import os
import re

import pytest
from atmq import atx
from atmq.engine import R_CME, R_CMS, R_ERROR, R_OK, R_PENDING, Engine
from atmq.errors import ATError, ATTimeout, ModemError
from atmq.tokenizer import T_RAW
from atxplay import commands, play
from atxreplay import ReplayModem, Seeded, drive

HERE = os.path.dirname(__file__)
SEED_FIXTURES = sorted(glob.glob(os.path.join(HERE, "transcripts", "*.atx")))
CHUNKS = [1, 2, 3, 7, None, Seeded(13, seed=5), Seeded(64, seed=9)]
CHUNK_IDS = ["1", "2", "3", "7", "all", "rand13", "rand64"]


def run(coro):
    return asyncio.run(coro)


def replay(lines, chunk=None):
    return ReplayModem(atx.read(lines), chunk=chunk)


async def with_engine(modem, body, setup=None, **kw):
    at = Engine(modem, **kw)
    if setup is not None:
        setup(at)  # URC handlers go in before the reader sees the first byte
    task = asyncio.create_task(at.run())
    try:
        return await drive(modem, body(at), 5000)
    finally:
        task.cancel()


# ---- command flow -------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", CHUNKS, ids=CHUNK_IDS)
def test_response_with_echo_and_urc_in_the_middle(chunk):
    m = replay([
        "> AT+CCERTLIST\\r",
        '< AT+CCERTLIST\\r\\r\\n+CCERTLIST: "ca.pem"\\r\\n',
        "< +CMQTTCONNLOST: 0,3\\r\\n",
        '< +CCERTLIST: "client,cert.pem"\\r\\n\\r\\nOK\\r\\n',
    ], chunk)
    lost = []

    async def body(at):
        at.on(b"+CMQTTCONNLOST:", lambda a: lost.append((a.arg_int(0), a.arg_int(1))))
        r = await at.cmd(b"AT+CCERTLIST", resp=b"+CCERTLIST:")
        return at, r.final, [r.line(i).arg_str(0) for i in range(r.count)]

    at, final, names = run(with_engine(m, body))
    assert final == R_OK
    assert names == ["ca.pem", "client,cert.pem"]
    assert lost == [(0, 3)]
    assert at.echoes == 1 and at.unknown == 0
    m.assert_done()


@pytest.mark.parametrize("chunk", CHUNKS, ids=CHUNK_IDS)
def test_two_phase_completion_before_and_after_ok(chunk):
    m = replay([
        "> AT+CMQTTSTART\\r",
        "< \\r\\n+CMQTTSTART: 0\\r\\n\\r\\nOK\\r\\n",  # completion before OK (manual 16.2.1)
        '> AT+CMQTTCONNECT=0,"tcp://b:1883",60,1\\r',
        "< \\r\\nOK\\r\\n",
        "< +500 \\r\\n+CMQTTCONNECT: 0,0\\r\\n",
    ], chunk)

    async def body(at):
        r = await at.cmd(b"AT+CMQTTSTART", done=b"+CMQTTSTART:")
        a = r.done, r.line(r.done).arg_int(0)
        r = await at.cmd(b'AT+CMQTTCONNECT=0,"tcp://b:1883",60,1', done=b"+CMQTTCONNECT:",
                         done_arg=0, done_timeout_ms=2000)
        return a, (r.final, r.line(r.done).arg_int(1))

    assert run(with_engine(m, body)) == ((0, 0), (R_OK, 0))
    m.assert_done()


def test_two_phase_done_for_another_client_is_not_ours():
    m = replay([
        '> AT+CMQTTCONNECT=1,"tcp://b:1883",60,1\\r',
        "< \\r\\nOK\\r\\n\\r\\n+CMQTTCONNECT: 0,0\\r\\n\\r\\n+CMQTTCONNECT: 1,32\\r\\n",
    ])
    seen = []

    async def body(at):
        at.on(b"+CMQTTCONNECT:", lambda a: seen.append(a.text()))
        r = await at.cmd(b'AT+CMQTTCONNECT=1,"tcp://b:1883",60,1', done=b"+CMQTTCONNECT:",
                         done_arg=1)
        return r.line(r.done).text()

    assert run(with_engine(m, body)) == "+CMQTTCONNECT: 1,32"
    assert seen == ["+CMQTTCONNECT: 0,0"]  # client 0's result went to the URC table


@pytest.mark.parametrize("chunk", CHUNKS, ids=CHUNK_IDS)
def test_prompt_command_writes_exact_payload(chunk):
    payload = b'{"v":"a\r\nOK\r\n>b"}'
    m = replay([
        "> AT+CMQTTPAYLOAD=0,%d\\r" % len(payload),
        "< \\r\\n>",
        "> " + atx.escape(payload),
        "< \\r\\nOK\\r\\n",
        "> AT+CMQTTTOPIC=0,3\\r",
        "< \\r\\n>\\x20",  # SIM800-style prompt with a space
        "> a/b",
        "< \\r\\nOK\\r\\n",
    ], chunk)

    async def body(at):
        r1 = await at.cmd(b"AT+CMQTTPAYLOAD=0,%d" % len(payload), payload=payload)
        r1 = r1.final
        r2 = await at.cmd(b"AT+CMQTTTOPIC=0,3", payload=b"a/b")
        return r1, r2.final, at.tok.prompts

    assert run(with_engine(m, body)) == (R_OK, R_OK, 2)
    m.assert_done()


def test_prompt_refused_writes_no_payload():
    m = replay([
        "> AT+CMQTTTOPIC=0,3\\r",
        "< \\r\\n+CMQTTTOPIC: 0,11\\r\\n\\r\\nERROR\\r\\n",
    ])

    async def body(at):
        r = await at.cmd(b"AT+CMQTTTOPIC=0,3", resp=b"+CMQTTTOPIC:", payload=b"a/b", check=False)
        return r.final, r.line(0).arg_int(1)

    assert run(with_engine(m, body)) == (R_ERROR, 11)
    m.assert_done()  # a written payload would have been a mismatch


@pytest.mark.parametrize("line,kind,code", [
    ("+CME ERROR: 10", R_CME, 10),
    ("+CMS ERROR: 321", R_CMS, 321),
    ("+CME ERROR: SIM not inserted", R_CME, -1),  # verbose mode (AT+CMEE=2)
    ("ERROR", R_ERROR, -1),
])
def test_error_finals_raise_with_code(line, kind, code):
    m = replay(["> AT+CPIN?\\r", "< \\r\\n%s\\r\\n" % line])

    async def body(at):
        with pytest.raises(ModemError) as ei:
            await at.cmd(b"AT+CPIN?", resp=b"+CPIN:")
        return ei.value, at.resp.final, at.resp.code

    e, final, got_code = run(with_engine(m, body))
    assert (final, got_code) == (kind, code)
    if kind == R_ERROR:
        assert isinstance(e, ATError)
    else:
        assert e.kind == ("CME" if kind == R_CME else "CMS") and e.code == code
    assert "AT+CPIN?" in str(e)


def test_timeout_raises_and_engine_recovers():
    m = replay(["> AT+CSQ\\r", "> AT\\r", "< \\r\\nOK\\r\\n"])

    async def body(at):
        with pytest.raises(ATTimeout) as ei:
            await at.cmd(b"AT+CSQ", resp=b"+CSQ:", timeout_ms=50)
        r = await at.cmd(b"AT")
        return ei.value.timeout_ms, r.final, at.timeouts

    assert run(with_engine(m, body)) == (50, R_OK, 1)


def test_abort_from_urc_handler_fails_the_command_fast():
    m = replay(["> AT+CMQTTPUB=0,1,60\\r", "< \\r\\nOK\\r\\n\\r\\n+CMQTTCONNLOST: 0,1\\r\\n"])

    async def body(at):
        at.on(b"+CMQTTCONNLOST:", lambda a: at.abort())
        with pytest.raises(ModemError) as ei:
            await at.cmd(b"AT+CMQTTPUB=0,1,60", done=b"+CMQTTPUB:", done_arg=0,
                         done_timeout_ms=60000)
        return ei.value.kind, ei.value.code

    assert run(with_engine(m, body)) == ("AT", -2)


def test_pause_waits_for_the_command_in_flight_and_holds_the_next():
    """The clean stop's hold (tlog/app.py shutdown): pause() returns once the command in
    flight ended; no command starts until resume()."""
    m = replay(["> AT+CSQ\\r", "< \\r\\n+CSQ: 20,99\\r\\n\\r\\nOK\\r\\n", "> AT\\r",
                "< \\r\\nOK\\r\\n"])

    async def body(at):
        order = []

        async def csq():
            await at.cmd(b"AT+CSQ", resp=b"+CSQ:")
            order.append("csq")

        first = asyncio.create_task(csq())
        await asyncio.sleep(0)  # AT+CSQ in flight
        assert await at.pause(1000)
        order.append("paused")
        nxt = asyncio.create_task(at.cmd(b"AT"))
        await asyncio.sleep(0.05)
        held = not nxt.done() and at.commands == 1
        at.resume()
        at.resume()  # a second resume is a no-op, not a release of someone else's hold
        await nxt
        await first
        return order, held, at.commands

    assert run(with_engine(m, body)) == (["csq", "paused"], True, 2)


def test_pause_gives_up_on_a_command_that_does_not_end():
    m = replay(["> AT+COPS=?\\r", "> AT\\r", "< \\r\\nOK\\r\\n"])

    async def body(at):
        slow = asyncio.create_task(at.cmd(b"AT+COPS=?", timeout_ms=300))
        await asyncio.sleep(0)
        paused = await at.pause(50)  # the command is still waiting for its answer
        at.resume()  # nothing held: no-op
        with pytest.raises(ATTimeout):
            await slow
        r = await at.cmd(b"AT")  # the engine was never left locked
        return paused, r.final

    assert run(with_engine(m, body)) == (False, R_OK)


def test_pause_keeps_a_lock_that_came_just_as_the_deadline_ran_out(monkeypatch):
    """MicroPython's wait_for: when the lock is handed over in the same scheduler pass as
    the deadline, the acquiring task has already ended, its cancel is a no-op and
    TimeoutError is raised anyway.  pause() must then keep (and resume() release) that
    lock: dropped, the engine stayed locked for ever and the clean stop's last publish
    and DISCONNECT waited out their bounds."""
    import atmq.engine as engine_mod

    async def late(aw, timeout_ms):  # that outcome, made deterministic
        await aw
        raise asyncio.TimeoutError

    m = replay(["> AT\\r", "< \\r\\nOK\\r\\n"])

    async def body(at):
        monkeypatch.setattr(engine_mod, "wait_for_ms", late)
        try:
            paused = await at.pause(50)
        finally:
            monkeypatch.undo()
        at.resume()
        locked = at._lock.locked()
        r = await asyncio.wait_for(at.cmd(b"AT"), 2)
        return paused, locked, r.final

    assert run(with_engine(m, body)) == (True, False, R_OK)


def test_bad_commands_refused_before_anything_is_written():
    m = replay([])

    async def body(at):
        with pytest.raises(ValueError):
            await at.cmd(b"AT+X=" + b"1" * 700)
        with pytest.raises(ValueError):
            await at.cmd(b"AT\r+CFUN=0")
        return at.tx_bytes

    assert run(with_engine(m, body, tx_max=600)) == 0
    assert m.written == b""


# ---- tokenizer behaviour through the engine -------------------------------------------------


@pytest.mark.parametrize("chunk", CHUNKS, ids=CHUNK_IDS)
def test_raw_frames_hold_anything(chunk):
    topic = b"t/1"
    payload = b"x\r\nOK\r\n> +CMQTTRXEND: 0\r\nERROR\r\n"
    m = replay(["< " + atx.escape(
        b"\r\n+CMQTTRXSTART: 0,3,%d\r\n+CMQTTRXTOPIC: 0,3\r\n" % len(payload) + topic
        + b"\r\n+CMQTTRXPAYLOAD: 0,%d\r\n" % len(payload) + payload
        + b"\r\n+CMQTTRXEND: 0\r\n")], chunk)
    got = {}
    raws = []
    tbuf, pbuf = bytearray(16), bytearray(64)

    def setup(at):
        at.on(b"+CMQTTRXTOPIC:", lambda a: at.tok.arm_raw(tbuf, 0, a.arg_int(1)))
        at.on(b"+CMQTTRXPAYLOAD:", lambda a: at.tok.arm_raw(pbuf, 0, a.arg_int(1)))
        at.on(b"+CMQTTRXSTART:", lambda a: None)
        at.on(b"+CMQTTRXEND:",
              lambda a: got.update(t=bytes(tbuf[:3]), p=bytes(pbuf[:len(payload)])))
        at.on_raw = raws.append

    async def body(at):
        for _ in range(10000):
            if "p" in got:
                break
            await asyncio.sleep(0)
        return raws, at.unknown

    kinds, unknown = run(with_engine(m, body, setup))
    assert got == {"t": topic, "p": payload}
    assert kinds == [T_RAW, T_RAW] and unknown == 0


def test_overlong_line_is_cut_flagged_and_counted():
    m = replay(["< \\r\\n+LONG: " + "y" * 100 + "\\r\\n\\r\\nRDY\\r\\n"])
    seen = []

    def setup(at):
        at.on(b"+LONG:", lambda a: seen.append((len(a), at.tok.truncated)))
        at.on(b"RDY", lambda a: seen.append(("RDY", at.tok.truncated)))

    async def body(at):
        for _ in range(1000):
            if len(seen) == 2:
                break
            await asyncio.sleep(0)
        return at.tok.truncations

    assert run(with_engine(m, body, setup, line_max=32)) == 1
    assert seen == [(32, True), ("RDY", False)]


def test_ring_overflow_is_counted_and_resynchronised():
    # The engine drains the ring after every read, so only a chunk larger than the ring
    # can overflow it; the cut is counted and the tokenizer resyncs at the next LF.
    at = Engine(None, ring_size=64, chunk_size=64)
    lines = []
    at.on(b"+A:", lambda a: lines.append(a.text()))
    for chunk in (b"+A: 1\r\n+A: 2", b"x" * 80, b"yy\r\n+A: 3\r\n"):
        at.ring.put(chunk, len(chunk))
        at.process()
    assert (at.ring.overflows, at.ring.dropped) == (1, 16)
    assert lines == ["+A: 1", "+A: 3"]  # the line torn by the overflow is not delivered
    assert at.tok.resyncs == 1 and at.unknown == 0


def test_args_quotes_empty_and_negative():
    at = Engine(None)
    got = []
    at.on(b"+COPS:", lambda a: got.append(
        (a.count(), a.arg_int(0), a.arg_str(2), a.arg_int(3), a.arg_len(4), a.arg_int(5, 7),
         a.arg_eq(2, b"Tele,kom"), a.arg_int(9, -99))))
    at.feed(b'\r\n+COPS: 0, 1 ,"Tele,kom",-7,,x\r\n')
    assert got == [(6, 0, "Tele,kom", -7, 0, 7, True, -99)]


# ---- the seed transcripts, driven command by command -----------------------------------------

_FINAL = re.compile(rb"(?m)^(OK|ERROR|\+CME ERROR: ?(\d+)|\+CMS ERROR: ?(\d+))\r?$")


def _oracle(records):
    """Independent reading of the transcript: the last final code after each command."""
    finals = []
    rx = bytearray()
    started = False
    for _ln, d, _ms, data in records:
        if d == ">" and data.endswith(b"\r"):
            if started:
                finals.append(_last_final(rx))
            rx = bytearray()
            started = True
        elif d == "<":
            rx.extend(data)
    if started:
        finals.append(_last_final(rx))
    return finals


def _last_final(rx):
    found = _FINAL.findall(bytes(rx).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    if not found:
        return R_PENDING
    word = found[-1][0]
    if word == b"OK":
        return R_OK
    if word == b"ERROR":
        return R_ERROR
    return R_CME if word.startswith(b"+CME") else R_CMS


@pytest.mark.parametrize("path", SEED_FIXTURES, ids=[os.path.basename(p) for p in SEED_FIXTURES])
@pytest.mark.parametrize("chunk", [1, 3, Seeded(17, seed=3), None], ids=["1", "3", "rand", "all"])
def test_seed_fixture_replays_through_engine(path, chunk):
    meta, recs = atx.read(path)
    if not commands(recs):
        pytest.skip("no host commands in this transcript")
    m = ReplayModem((meta, recs), chunk=chunk)
    at, outcomes = run(drive(m, play(m, recs), 20000))
    m.assert_done()
    expected = _oracle(recs)
    assert [o[1] for o in outcomes] == expected[: len(outcomes)]
    assert at.tok.truncations == 0


def test_seed001_session1_busy_on_subtopic():
    path = os.path.join(HERE, "transcripts", "seed001_s1_sim7600e_cmqtt_subtopic_busy.atx")
    meta, recs = atx.read(path)
    m = ReplayModem((meta, recs), chunk=1)
    _at, out = run(drive(m, play(m, recs), 20000))
    cmd, final, _code, lines = out[-1]
    assert cmd == b"AT+CMQTTSUBTOPIC=0,10,1" and final == R_ERROR
    assert lines == [b"+CMQTTSUBTOPIC: 0,14"]


def test_seed001_session2_no_connection_on_topic():
    path = os.path.join(HERE, "transcripts", "seed001_s2_sim7600e_cmqtts_topic_noconn.atx")
    meta, recs = atx.read(path)
    m = ReplayModem((meta, recs), chunk=2)
    _at, out = run(drive(m, play(m, recs), 20000))
    by_cmd = {o[0]: o for o in out}
    assert by_cmd[b"AT+NETOPEN"][3] == [b"+NETOPEN: 0"]  # completion URC, two-phase
    assert by_cmd[b"AT+CMQTTCONNECT?"][3] == [b"+CMQTTCONNECT: 0", b"+CMQTTCONNECT: 1"]
    assert out[-1][0] == b"AT+CMQTTTOPIC=0,10" and out[-1][3] == [b"+CMQTTTOPIC: 0,11"]


def test_payload_written_in_packets_when_asked():
    payload = bytes(range(256)) * 30  # 7680 bytes: three packets of at most 3072
    m = replay([
        '> AT+CCERTDOWN="ca.pem",%d\\r' % len(payload),
        "< \\r\\n>",
        "> " + atx.escape(payload),
        "< \\r\\nOK\\r\\n",
    ])
    sizes = []

    async def body(at):
        real = m.write

        def spy(buf):
            sizes.append(len(buf))
            return real(buf)

        m.write = spy
        r = await at.cmd(b'AT+CCERTDOWN="ca.pem",%d' % len(payload), payload=payload,
                         payload_chunk=3072, payload_gap_ms=1)
        return r.final

    assert run(with_engine(m, body)) == R_OK
    assert sizes[1:] == [3072, 3072, 1536]
    m.assert_done()


# Checks written once for both interpreters (on MicroPython the dispatch is viper
# code): raising handlers, the reader's own error, echo/response/final/two-phase.
from test_engine_device import (  # noqa: E402
    test_a_reader_behind_the_stream_does_not_abandon_a_frame,  # noqa: F401
    test_an_error_of_the_reader_itself_is_raised_not_retried_forever,  # noqa: F401
    test_command_over_tx_max_gets_a_clear_error,  # noqa: F401
    test_feed_takes_more_than_the_ring_holds,  # noqa: F401
    test_cmqtt_chunk_armed_by_the_reader_abandoned_at_its_deadline,  # noqa: F401
    test_frame_entries_arm_declared_frames_and_hand_the_rest_to_the_handler,  # noqa: F401
    test_late_raw_frame_is_abandoned_counted_and_the_reader_resyncs,  # noqa: F401
    test_raw_frame_over_the_bound_is_refused_and_lines_go_on,  # noqa: F401
    test_store_entries_fill_slots_without_a_handler,  # noqa: F401
    test_echo_response_final_and_two_phase_on_the_viper_path,  # noqa: F401
    test_raising_handlers_counted_and_reader_goes_on,  # noqa: F401
)


def test_reader_task_abandons_a_frame_the_modem_never_finishes():
    # issue 10 #3 through the reader task: 20 bytes announced, 4 sent, then silence; the
    # task polls while the frame is armed, so it is abandoned at its deadline (2 x 20
    # bytes at 115200 baud + 250 ms) with no further byte, and the next line parses
    from atmq.tokenizer import T_LOST

    m = replay(["< \\r\\n+RX: 0,20\\r\\nabcd"])
    got = []
    buf = bytearray(32)

    def setup(at):
        at.on(b"+RX:", lambda a: at.tok.arm_raw(buf, 0, a.arg_int(1)))
        at.on(b"+CSQ:", lambda a: got.append(a.arg_int(0)))
        at.on_raw = got.append

    async def body(at):
        for _ in range(200):
            if got:
                break
            await asyncio.sleep(0.01)
        lost_at = list(got)
        at.feed(b"\r\n+CSQ: 17,99\r\n")
        return lost_at, at.tok.raw_abandoned

    lost_at, abandoned = run(with_engine(m, body, setup))
    assert lost_at == [T_LOST] and abandoned == 1
    assert got == [T_LOST, 17]
