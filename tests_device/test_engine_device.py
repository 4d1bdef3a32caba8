"""The seed transcripts replayed through the Engine on MicroPython at 1, 2, 7 and 64 B per read."""

import asyncio
import os

from atmq import atx
from atmq.engine import R_ERROR, R_OK
from atxplay import play
from atxreplay import ReplayModem, drive

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
_DIR = _HERE + "/../tests_host/transcripts"


def _fixtures():
    return sorted(_DIR + "/" + n for n in os.listdir(_DIR) if n.endswith(".atx"))


def _replay(path, chunk):
    meta, recs = atx.read(path)
    m = ReplayModem((meta, recs), chunk=chunk)
    at, out = asyncio.run(drive(m, play(m, recs), 20000))
    m.assert_done()
    return at, out


def test_every_seed_fixture_at_three_chunkings():
    n = 0
    for path in _fixtures():
        for chunk in (7, 64):  # one byte per read: seed001 below (the fake stream polls at 1 ms)
            at, out = _replay(path, chunk)
            assert at.tok.truncations == 0, path
            n += 1
    assert n >= 3


def test_seed001_failures_decoded():
    _at, out = _replay(_DIR + "/seed001_s1_sim7600e_cmqtt_subtopic_busy.atx", 1)
    assert out[-1][1] == R_ERROR and out[-1][3] == [b"+CMQTTSUBTOPIC: 0,14"]
    _at, out = _replay(_DIR + "/seed001_s2_sim7600e_cmqtts_topic_noconn.atx", 2)
    assert [o for o in out if o[0] == b"AT+NETOPEN"][0][1:] == (R_OK, -1, [b"+NETOPEN: 0"])
    assert out[-1][3] == [b"+CMQTTTOPIC: 0,11"]


def test_raising_handlers_counted_and_reader_goes_on():
    from atmq.engine import Engine

    at = Engine(None)
    seen = []

    def bad(a):
        raise RuntimeError("driver bug")

    at.on(b"+BAD:", bad)
    at.on(b"+GOOD:", lambda a: seen.append(a.arg_int(0)))
    at.feed(b"\r\n+BAD: 1\r\n+GOOD: 2\r\n+BAD: 3\r\n+BAD: 4\r\n+GOOD: 5\r\n+BAD: 6\r\n")
    assert seen == [2, 5], seen
    assert at.handler_errors == 4 and isinstance(at.last_handler_error, RuntimeError)
    assert at.urcs == 6 and at.unknown == 0
    at.feed(b"+GOOD: 7\r\nOK\r\n")
    assert seen == [2, 5, 7] and at.unknown == 1


def test_echo_response_final_and_two_phase_on_the_viper_path():
    from atmq.engine import R_CME, Engine

    at = Engine(None)
    at.begin(b"AT+CSQ", b"+CSQ:", False, None, -1, False)
    at.feed(b"AT+CSQ\r\r\n+CSQ: 21,99\r\n\r\n+CME ERROR: 10\r\n")
    r = at.resp
    assert at.echoes == 1 and r.count == 1 and r.line(0).arg_int(0) == 21
    assert r.final == R_CME and r.code == 10
    at.end()
    at.begin(b"AT+CMQTTPUB=0,1,60", None, False, b"+CMQTTPUB:", 0, False)
    at.feed(b"\r\n+CMQTTPUB: 1,0\r\n+CMQTTPUB: 0,0\r\n\r\nOK\r\n")
    assert r.ok and r.done == 0 and r.line(r.done).arg_int(1) == 0
    assert at.unknown == 1  # the other client's completion is not ours
    at.end()


def test_an_error_of_the_reader_itself_is_raised_not_retried_forever():
    from atmq.engine import Engine

    at = Engine(None)
    at.reader._hot = None  # the dispatcher's own state is gone: it fails consuming nothing
    try:
        at.feed(b"abcd\r\n")
    except Exception:
        pass
    else:
        raise AssertionError("the reader's own error was swallowed")
    assert at.handler_errors == 1


def test_feed_takes_more_than_the_ring_holds():
    # issue 10 #11: 12 KB given at once to a 64-byte ring: fed in parts, nothing lost
    from atmq.engine import Engine

    at = Engine(None, ring_size=64, chunk_size=64)
    seen = []
    at.on(b"+N:", lambda a: seen.append(a.arg_int(0)))
    data = b"".join(b"\r\n+N: %d\r\n" % i for i in range(1000))
    at.feed(data)
    assert seen == list(range(1000)), seen[:5]
    assert at.ring.overflows == 0 and at.ring.dropped == 0 and at.unknown == 0


def test_raw_frame_over_the_bound_is_refused_and_lines_go_on():
    # issue 10 #3: "+CMQTTRXPAYLOAD: 0,999999999" must not make the reader deaf
    from atmq.engine import Engine
    from atmq.reader import RAW_MAX

    at = Engine(None)
    armed = []
    at.on(b"+CMQTTRXPAYLOAD:", lambda a: armed.append(at.tok.arm_raw(None, 0, a.arg_int(1))))
    at.on(b"+CSQ:", lambda a: armed.append(a.arg_int(0)))
    at.feed(b"\r\n+CMQTTRXPAYLOAD: 0,999999999\r\n+CSQ: 21,99\r\n")
    at.feed(b"\r\n+CMQTTRXPAYLOAD: 0,%d\r\n+CSQ: 22,99\r\n" % (RAW_MAX + 1))
    at.feed(b"\r\n+CMQTTRXPAYLOAD: 0,-4\r\n+CSQ: 23,99\r\n")
    assert armed == [False, 21, False, 22, False, 23]
    assert at.tok.raw_refused == 3 and at.tok.raw_left == 0


class _Idle:
    """A stream with bytes queued by the test, then nothing."""

    def __init__(self):
        self.q = []

    def readinto(self, buf):
        if not self.q:
            return None
        d = self.q.pop(0)
        buf[0:len(d)] = d
        return len(d)

    def write(self, buf):  # the engine takes only a stream it can also write to
        return len(buf)


def test_late_raw_frame_is_abandoned_counted_and_the_reader_resyncs():
    # issue 10 #3: 20 bytes announced, 4 sent; a read finding the stream idle after the
    # deadline (2 x 20 bytes at 115200 baud + 250 ms) drops the frame; the next line parses
    import time

    from atmq.engine import Engine
    from atmq.reader import T_LOST

    s = _Idle()
    at = Engine(s, chunk_size=64)
    kinds = []
    buf = bytearray(32)
    at.on(b"+CMQTTRXPAYLOAD:", lambda a: at.tok.arm_raw(buf, 0, a.arg_int(1)))
    at.on(b"+CMQTTRXEND:", lambda a: kinds.append("end"))
    at.on_raw = kinds.append
    assert at.reader.frame_ms(20) == 253
    s.q.append(b"\r\n+CMQTTRXPAYLOAD: 0,20\r\nabcd")
    at.pump()
    at.pump()  # idle, deadline not reached: still armed
    assert at.tok.raw_left == 16 and kinds == []
    time.sleep(0.3)
    at.pump()  # a read that finds the stream idle past the deadline abandons the frame
    s.q.append(b"\r\n+CMQTTRXEND: 0\r\n")
    at.pump()
    assert kinds == [T_LOST, "end"], kinds
    assert at.tok.raw_abandoned == 1 and at.tok.raw_left == 0


def test_a_reader_behind_the_stream_does_not_abandon_a_frame():
    # a reader that fell behind (busy for longer than the deadline) reads the frame's
    # waiting bytes before any read finds the stream idle: it completes
    import time

    from atmq.engine import Engine
    from atmq.reader import T_RAW

    s = _Idle()
    at = Engine(s, chunk_size=16)
    kinds = []
    buf = bytearray(64)
    at.on(b"+RX:", lambda a: at.tok.arm_raw(buf, 0, a.arg_int(0)))
    at.on_raw = kinds.append
    data = b"\r\n+RX: 40\r\n" + b"0123456789" * 4
    s.q.append(data[:16])  # a full chunk
    at.pump()
    time.sleep(0.3)
    s.q.extend([data[16:32], data[32:48], data[48:]])  # full chunks: catching up
    while s.q:
        at.pump()
    assert kinds == [T_RAW] and bytes(buf[:40]) == b"0123456789" * 4
    assert at.tok.raw_abandoned == 0


def test_command_over_tx_max_gets_a_clear_error():
    # issue 10 #11: a command over the limit is refused with CommandTooLong (a ValueError)
    # before a byte is written; tx_max itself is bounded by the modem's line buffer
    import asyncio

    from atmq.engine import CMD_LINE_MAX, CommandTooLong, Engine

    class W:
        written = 0

        def write(self, b):
            W.written += len(b)
            return len(b)

        def readinto(self, buf):
            return None

    at = Engine(W(), tx_max=1024)

    async def go():
        try:
            await at.cmd(b"AT+X=" + b"1" * 1020)
        except CommandTooLong as e:
            return str(e)
        return None

    msg = asyncio.run(go())
    assert msg is not None and "1025" in msg and "1024" in msg, msg
    assert W.written == 0 and at.tx_bytes == 0
    for bad in (CMD_LINE_MAX + 1, 1):
        try:
            Engine(None, tx_max=bad)
        except ValueError:
            pass
        else:
            raise AssertionError("tx_max %d accepted" % bad)


def test_store_entries_fill_slots_without_a_handler():
    from array import array

    from atmq.engine import Engine

    at = Engine(None)
    sig = array("i", [7, 7, 0])
    at.on_store(b"+CSQ:", sig, 0, 1, 0, 2)
    reg = array("i", [0, 0])
    at.on_store(b"+CEREG:", reg, 0, 0, 0, 1)
    at.feed(b"\r\n+CSQ: 21,99\r\n+CEREG: 5\r\n+CSQ: x\r\n")
    assert list(sig) == [-1, -1, 2] and list(reg) == [5, 1]
    assert at.tok.stores == 3 and at.urcs == 3 and at.unknown == 0


def test_store_then_call_entries_hand_the_numbers_to_the_handler():
    from array import array

    from atmq.engine import Engine

    at = Engine(None)
    num = array("i", [0, 0, 0, 0])
    seen = []

    def handler(a):
        # the numbers are stored before the call; the Args view is still the line's
        seen.append((num[0], num[1], num[2], num[3], a.count(), a.arg_bytes(2)))
        if num[0] == 13:
            raise ValueError("a broken handler")

    at.on_store(b"+RX:", num, 0, 2, 0, 3, then=handler)
    at.feed(b"\r\n+RX: 12,-3,abc\r\n+RX: 7\r\n+RX: 13,1,2\r\n+RX: 1,2,3\r\n")
    assert seen == [(12, -3, -1, 1, 3, b"abc"), (7, -1, -1, 2, 1, b""),
                    (13, 1, 2, 3, 3, b"2"), (1, 2, 3, 4, 3, b"3")], seen
    assert at.tok.stores == 4 and at.urcs == 4 and at.handler_errors == 1
    for bad in ((b"+RX:", num, 0, 4, 0), (b"", num, 0, 0, 0)):
        try:
            at.on_store(*bad, then=handler)
        except ValueError:
            pass
        else:
            raise AssertionError("on_store%r accepted" % (bad,))


def test_frame_entries_arm_declared_frames_and_hand_the_rest_to_the_handler():
    """Engine.on_frame: a chunk that fits the announced total is copied by the reader (no
    call); another index, a zero, negative, unreadable or too long length, or no gate go
    to the handler; a lost frame reaches on_raw with the mark still set."""
    from array import array

    from atmq.engine import Engine
    from atmq.reader import RAW_MAX, T_LOST

    at = Engine(None)
    # slots: 0 index, 1 length, 2 gate, 3 total, 4 fill, 5 mark
    num = array("i", [0, 0, 1, 10, 0, 0])
    buf = bytearray(10)
    frame = [buf]
    calls = []
    raws = []
    at.on_raw = raws.append
    at.on_frame(b"+RXP:", num, 0, 1, 0, frame, lambda a: calls.append((num[0], num[1])),
                length=1, match=0, gate=2, gate_value=1, fill=4, total=3, mark=5)
    at.feed(b"\r\n+RXP: 0,4\r\nab\r\n+RXP: 0,3\r\nxyz\r\n+RXP: 0,4\r\n")
    assert calls == [(0, 4)] and buf[:7] == b"ab\r\nxyz" and num[4] == 7 and num[5] == 0, \
        (calls, buf, num)
    assert raws == []  # the reader's own frames end without a call
    del calls[:]
    at.feed(b"+RXP: 1,2\r\n+RXP: 0,0\r\n+RXP: 0,-1\r\n+RXP: 0,x\r\n+RXP: 0,%d\r\n"
            % (RAW_MAX + 1))
    assert calls == [(1, 2), (0, 0), (0, -1), (0, -1), (0, RAW_MAX + 1)], calls
    num[2] = 0  # the gate closed: the handler decides
    del calls[:]
    at.feed(b"+RXP: 0,1\r\n")
    assert calls == [(0, 1)] and num[4] == 7
    num[2] = 1
    frame[0] = None  # no buffer: the handler too
    at.feed(b"+RXP: 0,1\r\n")
    assert len(calls) == 2
    frame[0] = buf
    # a frame lost to a ring overflow: T_LOST to on_raw, the mark still 1, resync at LF
    at.feed(b"+RXP: 0,3\r\n")
    assert num[5] == 1 and at.tok.raw_left == 3
    at.reader.st[3] = 1  # _R_LOST: as put() flags an overflow
    at.feed(b"\r\nOK\r\n")
    assert raws == [T_LOST] and num[5] == 1 and num[4] == 7, (raws, num)
    for bad in ((b"+RXP:", num, 0, 1, 0, frame, None), (b"+RXP:", num, 0, 1, 0, None, len)):
        try:
            at.on_frame(*bad, length=1, match=0, gate=2, gate_value=1, fill=4, total=3,
                        mark=5)
        except ValueError:
            pass
        else:
            raise AssertionError("on_frame accepted %r" % (bad,))


def test_cmqtt_chunk_armed_by_the_reader_abandoned_at_its_deadline():
    """A +CMQTTRXPAYLOAD chunk armed by the reader itself (a frame entry) that the modem
    never finishes: abandoned at its deadline (issue 10 #3), the message counted torn,
    and the next message is received whole, with no Python call per chunk."""
    import time

    from atmq.cmqtt import CMQTTDriver
    from atmq.engine import Engine
    from atmq.events import EV_MSG, EV_MSG_DROPPED, EventQueue
    from atmq.inbox import Inbox

    s = _Idle()
    at = Engine(s, chunk_size=64)
    ev = EventQueue(8)
    ib = Inbox(2, 16, 32)
    d = CMQTTDriver(at, ev, ib)
    s.q.append(b"\r\n+CMQTTRXSTART: 0,3,20\r\n+CMQTTRXTOPIC: 0,3\r\na/b\r\n")
    s.q.append(b"+CMQTTRXPAYLOAD: 0,20\r\nabcd")
    at.pump()
    at.pump()
    assert at.tok.raw_left == 16 and at.tok.raw_frames == 1  # the topic came whole
    time.sleep(0.3)  # past 2 x 20 bytes at 115200 baud + 250 ms
    at.pump()  # the idle read abandons the chunk: T_LOST, the driver drops the message
    assert at.tok.raw_abandoned == 1 and d.stats["rx_torn"] == 1
    assert ev.get() == EV_MSG_DROPPED and ev.get() == -1
    s.q.extend((b"\r\n+CMQTTRXEND: 0\r\n\r\n+CMQTTRXSTART: 0,3,5\r\n",
                b"+CMQTTRXTOPIC: 0,3\r\nc/d\r\n+CMQTTRXPAYLOAD: 0,5\r\nhello",
                b"\r\n+CMQTTRXEND: 0\r\n"))
    while s.q:
        at.pump()
    assert ev.get() == EV_MSG and d.stats["received"] == 1 and d.stats["rx_torn"] == 1
    slot = ev.a
    assert bytes(ib.topic(slot)) == b"c/d" and bytes(ib.payload(slot)) == b"hello"
    assert at.reader.handler_errors == 0
