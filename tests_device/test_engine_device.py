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
