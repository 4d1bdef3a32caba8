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
