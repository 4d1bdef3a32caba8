"""SM driver (SIM800 / SIM70x0 AT+SM*): every transcript replay of tests_device/sm_cases.py
(the seed 004 worked examples and the sm/ transcripts) at chunk sizes 1, 2, 3, 7 and seeded
random (the replay checks every byte written; the cases check results, exceptions, events,
Inbox contents and counters), and input validation that must refuse before a byte is
written."""

import asyncio
import os
import sys

import pytest
from atmq.engine import Engine
from atmq.errors import ConfigError
from atmq.events import EventQueue
from atmq.inbox import Inbox
from atmq.smmqtt import SMDriver

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "tests_device"))
import atxreplay as R  # noqa: E402  # pyright: ignore[reportMissingImports]
import sm_cases as C  # noqa: E402  # pyright: ignore[reportMissingImports]

CHUNKS = [1, 2, 3, 7, "random"]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("name", C.NAMES)
def test_replay(name, chunk):
    asyncio.run(C.run_case(name, chunk))


def _idle(variant="sim800", tx_max=600):
    m = R.ReplayModem([])  # an empty transcript: any byte written fails the replay
    at = Engine(m, tx_max=tx_max)
    return m, SMDriver(at, EventQueue(4), Inbox(1, 8, 8), 0, None, variant)


BAD_CALLS = [
    ("sim800", "publish", ("", b"x"), {}, ValueError, "topic is 0 bytes"),
    ("sim800", "publish", ("a/+", b"x"), {}, ValueError, "wildcards"),
    ("sim800", "publish", ("a", b'say "hi"'), {}, ValueError, "inline in quotes"),
    ("sim800", "publish", ("a", b"x\r\ny"), {}, ValueError, "inline in quotes"),
    ("sim800", "publish", ("a", b"x" * 1025), {}, ValueError, "0..1024"),
    ("sim800", "publish", ("a", b"x" * 700), {}, ValueError, "tx_max"),
    ("sim800", "publish", ("a", b"x"), {"qos": 2}, ValueError, "seed 004 3.5"),
    ("sim800", "publish", ("a", 5), {}, TypeError, "payload must be str or bytes"),
    ("sim800", "subscribe", ("a",), {"qos": 2}, ValueError, "seed 004 3.4"),
    ("sim800", "subscribe", ('a"b',), {}, ValueError, "must not contain"),
    ("sim800", "unsubscribe", ("",), {}, ValueError, "topic is 0 bytes"),
    ("sim800", "connect", ("h", 1883, "id"), {"keepalive_s": 30}, ValueError, "60..3600"),
    ("sim800", "connect", ("h", 1883, "id"), {"will": ("w", "m", 1, False)}, ValueError,
     "no will"),
    ("sim800", "connect", ("h", 70000, "id"), {}, ValueError, "port=70000"),
    ("sim800", "connect", ("h", 1883, "id"), {"password": "p"}, ValueError,
     "needs a user name"),
    ("sim800", "connect", ("h", 1883, "id"), {"tls": True}, ConfigError, "configure_tls"),
    ("sim800", "configure_tls", ({"ssl_ctx": 0},), {}, ConfigError, "unknown key"),
    ("sim800", "configure_tls", ({"root": "C:\\CA.CRT"},), {}, ConfigError, "root_len"),
    ("sim800", "configure_tls", ("yes",), {}, ConfigError, "must be a dict"),
    ("sim70x0", "publish", ("a", b"x" * 1025), {}, ValueError, "0..1024"),
    ("sim70x0", "publish", ("a", b"x"), {"qos": 3}, ValueError, "qos=3"),
    ("sim70x0", "connect", ("h", 1883, "id"), {"keepalive_s": 70000}, ValueError, "KEEPTIME"),
    ("sim70x0", "connect", ("h", 1883, "id"), {"will": ("w/#", "m", 1, False)}, ValueError,
     "wildcards"),
    ("sim70x0", "connect", ("h", 1883, "id"), {"will": ("w", "", 1, False)}, ValueError,
     "will message"),
    ("sim70x0", "configure_tls", ({"ssl_ctx": 6},), {}, ConfigError, "0..5"),
    ("sim70x0", "configure_tls", ({"clientcert": "c.crt"},), {}, ConfigError, "go together"),
    ("sim70x0", "configure_tls", ({"root": "x"},), {}, ConfigError, "unknown key"),
    ("sim70x0", "connect_azure", ("h", "d", "k"), {}, ValueError, "SIM800 command"),
]


@pytest.mark.parametrize("variant,method,args,kw,exc,text", BAD_CALLS)
def test_bad_input_refused_before_sending(variant, method, args, kw, exc, text):
    m, d = _idle(variant)

    async def go():
        with pytest.raises(exc) as ei:
            await getattr(d, method)(*args, **kw)
        return ei.value

    e = asyncio.run(go())
    assert text in str(e)
    assert m.written == b"" and m.failure is None


def test_constructor_refuses_what_the_family_lacks():
    at = Engine(R.ReplayModem([]))
    with pytest.raises(ValueError, match="variant"):
        SMDriver(at, EventQueue(2), Inbox(1, 8, 8), 0, None, "sim7600")
    with pytest.raises(ValueError, match="one MQTT client"):
        SMDriver(at, EventQueue(2), Inbox(1, 8, 8), 1)
    assert SMDriver(at, EventQueue(2), Inbox(1, 8, 8), 0, None, "sim70x0", 512).payload_max == 512
