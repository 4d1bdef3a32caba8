"""CMQTT driver: every transcript replay of tests_device/cmqtt_cases.py at chunk sizes
1, 2, 3, 7 and seeded random (the replay checks every byte written; the cases check
results, exceptions, events, Inbox contents and counters), a ring overflow inside an
inbound frame, and input validation that must refuse before a byte is written."""

import asyncio
import os
import sys

import pytest
from atmq.cmqtt import CMQTTDriver
from atmq.engine import Engine
from atmq.events import EV_MSG, EV_MSG_DROPPED, EventQueue
from atmq.inbox import Inbox

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "tests_device"))
import atxreplay as R  # noqa: E402  # pyright: ignore[reportMissingImports]
import cmqtt_cases as C  # noqa: E402  # pyright: ignore[reportMissingImports]

CHUNKS = [1, 2, 3, 7, "random"]
TLS_ONLY = ("sslversion_oldfw", "certs")  # replayed by test_tls.py


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("name", [n for n in C.NAMES if n not in TLS_ONLY])
def test_replay(name, chunk):
    asyncio.run(C.run_case(name, chunk))


class Idle:
    def readinto(self, buf):
        return None

    def write(self, buf):
        return len(buf)


def test_ring_overflow_inside_a_frame_drops_that_message_only():
    at = Engine(Idle(), ring_size=64, chunk_size=64)
    ev = EventQueue(8)
    ib = Inbox(2, 32, 256)
    drv = CMQTTDriver(at, ev, ib)

    def put(data):  # what the reader does per read, without its chunk limit
        at.ring.put(data, len(data))
        at.process()

    put(b"\r\n+CMQTTRXSTART: 0,3,200\r\n")
    put(b"+CMQTTRXTOPIC: 0,3\r\nt/a\r\n+CMQTTRXPAYLOAD: 0,200\r\n")
    put(b"p" * 200 + b"\r\n+CMQTTRXEND: 0\r\n")  # 219 bytes into a 64-byte ring: overflow
    put(b"\r\n+CMQTTRXSTART: 0,3,2\r\n+CMQTTRXTOPIC: 0,3\r\nt/b\r\n")
    put(b"+CMQTTRXPAYLOAD: 0,2\r\nok\r\n+CMQTTRXEND: 0\r\n")
    assert at.ring.overflows == 1
    got = []
    while (k := ev.get()) >= 0:
        got.append((k, ev.a))
    assert got == [(EV_MSG_DROPPED, 3), (EV_MSG, 0)]
    s0 = ib.get()
    assert bytes(ib.topic(s0)) == b"t/b" and bytes(ib.payload(s0)) == b"ok"
    assert drv.stats["rx_torn"] == 1 and drv.stats["received"] == 1


def _idle_driver(revision=None):
    m = R.ReplayModem([])  # an empty transcript: any byte written fails the replay
    at = Engine(m)
    return m, CMQTTDriver(at, EventQueue(4), Inbox(1, 8, 8), 0, revision)


BAD_CALLS = [
    ("publish", ("", b"x"), {}, ValueError, "topic is 0 bytes"),
    ("publish", ("t" * 1025, b"x"), {}, ValueError, "1..1024"),
    ("publish", ("a/+/b", b"x"), {}, ValueError, "wildcards"),
    ("publish", ("a/#", b"x"), {}, ValueError, "wildcards"),
    ("publish", ("a", b"x" * 4097), {}, ValueError, "0..4096"),
    ("publish", ("a", b"x"), {"qos": 3}, ValueError, "qos=3"),
    ("publish", ("a", 12), {}, TypeError, "payload must be str or bytes"),
    ("connect", ("h", 1883, ""), {}, ValueError, "client_id is 0 bytes"),
    ("connect", ("h", 1883, "c" * 129), {}, ValueError, "1..128"),
    ("connect", ("h", 1883, 'a"b'), {}, ValueError, "must not contain"),
    ("connect", ("h", 1883, "id"), {"keepalive_s": 0}, ValueError, "keepalive_s=0"),
    ("connect", ("h", 1883, "id"), {"keepalive_s": 64801}, ValueError, "1..64800"),
    ("connect", ("h", 70000, "id"), {}, ValueError, "port=70000"),
    ("connect", ("h" * 250, 1883, "id"), {}, ValueError, "server address is 261 bytes"),
    ("connect", ("h", 1883, "id"), {"password": "p"}, ValueError, "needs a user name"),
    ("connect", ("h", 1883, "id"), {"user": "u" * 257}, ValueError, "1..256"),
    ("connect", ("h", 1883, "id"), {"will": ("w", "m", 1, True)}, ValueError, "retain"),
    ("connect", ("h", 1883, "id"), {"will": ("w" * 1025, "m", 1, False)}, ValueError, "1..1024"),
    ("connect", ("h", 1883, "id"), {"will": ("w", "", 1, False)}, ValueError, "will message"),
    ("connect", ("h", 1883, "id"), {"will": ("w", "m", 5, False)}, ValueError, "will qos"),
    ("subscribe", ("",), {}, ValueError, "topic is 0 bytes"),
    ("subscribe", ("a",), {"qos": -1}, ValueError, "qos=-1"),
    ("subscribe_many", ([("a", 0), ("b", 1)],), {"two_step": False}, ValueError, "two-step"),
    ("subscribe_many", ([],), {}, ValueError, "nothing to subscribe"),
    ("unsubscribe", ("t" * 1025,), {}, ValueError, "1..1024"),
    ("disconnect", (), {"timeout_s": 30}, ValueError, "60..180"),
    ("configure", (), {"optimeout_s": 10}, ValueError, "20..120"),
    ("configure", (), {"version": 5}, ValueError, "3..4"),
    ("start", (), {"client_id": "x" * 129}, ValueError, "1..128"),
]


@pytest.mark.parametrize("method,args,kw,exc,text", BAD_CALLS)
def test_bad_input_refused_before_sending(method, args, kw, exc, text):
    m, d = _idle_driver()

    async def go():
        with pytest.raises(exc) as ei:
            await getattr(d, method)(*args, **kw)
        return ei.value

    e = asyncio.run(go())
    assert text in str(e)
    assert m.written == b"" and m.failure is None


def test_payload_limit_follows_the_model():
    assert _idle_driver("SIM7600M21-A_V1.1")[1].payload_max == 4096  # manual 003 16.2.11
    assert _idle_driver("A011B07A7600M7")[1].payload_max == 10240  # A7600 note 2.1.11
    at = Engine(R.ReplayModem([]))
    assert CMQTTDriver(at, EventQueue(2), Inbox(1, 8, 8), 1, None, 512).payload_max == 512
    with pytest.raises(ValueError):
        CMQTTDriver(at, EventQueue(2), Inbox(1, 8, 8), 2)
