"""atmq.baud: every transcript in transcripts/baud/ replayed through the real Engine at read
chunk sizes 1, 7 and seeded random (tests_device/baud_cases.py), and the pure helpers."""

import asyncio
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests_device"))

import baud_cases  # noqa: E402  # pyright: ignore[reportMissingImports]
from atmq import baud  # noqa: E402
from atxreplay import Seeded  # noqa: E402  # pyright: ignore[reportMissingImports]

TDIR = os.path.join(HERE, "transcripts", "baud")
FILES = sorted(f for f in os.listdir(TDIR) if f.endswith(".atx"))


@pytest.fixture(autouse=True)
def _cwd(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("chunk", [1, 7, "random"])
@pytest.mark.parametrize("name", FILES)
def test_transcript(name, chunk):
    c = Seeded(13, seed=5) if chunk == "random" else chunk
    asyncio.run(baud_cases.run(baud_cases.TRANSCRIPTS + name, c))


def test_never_persists_a_speed():
    # AT+IPREX is AUTO_SAVE (003 s.8.2.4): no transcript, no code path may send it
    src = open(os.path.join(ROOT, "lib", "atmq", "baud.py")).read()
    assert "AT+IPREX=" not in src
    for f in FILES:
        assert "IPREX" not in open(os.path.join(TDIR, f)).read()


def test_parse_and_pick():
    assert baud.parse_speeds(b"+IPR: (600,1200,115200,460800)") == [600, 1200, 115200, 460800]
    assert baud.parse_speeds("+IPR: (300-921600)") == [300, 921600]
    assert baud.parse_speeds("+IPR: 115200") == []
    sp = [9600, 115200, 460800]
    assert baud.pick(sp, 921600) == 460800
    assert baud.pick(sp, 115200) == 115200
    assert baud.pick(sp, 300) == 0


def test_host_setter():
    class Uart:
        def __init__(self):
            self.calls = []

        def init(self, **kw):
            self.calls.append(kw)

    u = Uart()
    set_host = baud.host_setter(u)
    assert set_host is not None
    set_host(921600)
    assert u.calls == [{"baudrate": 921600}]
    assert baud.host_setter(object()) is None
