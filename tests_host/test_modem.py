"""Modem bring-up and facts: every transcript in transcripts/modem/ replayed through the
real Engine and Modem at read chunk sizes 1, 2, 3, 7 and seeded random (1..13)."""

import asyncio
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests_device"))

import modem_scenarios  # noqa: E402  # pyright: ignore[reportMissingImports]
from atmq import modem as modem_mod  # noqa: E402
from atmq.errors import ConfigError  # noqa: E402
from atxreplay import Seeded  # noqa: E402  # pyright: ignore[reportMissingImports]

TDIR = os.path.join(HERE, "transcripts", "modem")
FILES = sorted(f for f in os.listdir(TDIR) if f.endswith(".atx"))
CHUNKS = [1, 2, 3, 7, "random"]


def _chunk(c):
    return Seeded(13, seed=7) if c == "random" else c


@pytest.fixture(autouse=True)
def _cwd(monkeypatch):
    monkeypatch.chdir(ROOT)  # scenarios open transcripts by repo-relative path


def test_every_scenario_has_a_transcript():
    assert len(FILES) >= 17
    names = set()
    for f in FILES:
        with open(os.path.join(TDIR, f)) as fh:
            for line in fh:
                if line.startswith("@scenario "):
                    names.add(line.split()[1])
    assert names == set(modem_scenarios.SCENARIOS)


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("name", FILES)
def test_transcript(name, chunk):
    asyncio.run(modem_scenarios.run(modem_scenarios.TRANSCRIPTS + name, _chunk(chunk)))


def test_a_wrong_byte_is_caught(tmp_path):
    # The harness itself must fail when the driver writes something else.
    lines = open(os.path.join(TDIR, "csq_99.atx")).read().replace("AT+CSQ\\r", "AT+CSQ?\\r", 1)
    path = str(tmp_path / "csq_wrong.atx")
    with open(path, "w") as f:
        f.write(lines)
    with pytest.raises(Exception) as e:
        asyncio.run(modem_scenarios.run(path, 3))
    assert "AT+CSQ" in str(e.value)


@pytest.mark.parametrize("text, want", [
    ("24/01/01,00:00:00+00", (8766 * 86400, 0)),
    ("00/01/01,00:00:00+04", (-3600, 4)),  # local midnight at UTC+1 is 23:00 the day before
    ("24/01/01,00:00:00-96", (8766 * 86400 + 86400, -96)),
    ("24/01/01,00:00:00-97", None),
    ("24/13/01,00:00:00+00", None),
    ("70/01/01,00:00:00+00", None),
    ("24/01/01 00:00:00+00", None),
    ("", None),
])
def test_parse_cclk(text, want):
    assert modem_mod.parse_cclk(text) == want


@pytest.mark.parametrize("rssi, dbm", [(0, -113), (1, -111), (20, -73), (31, -51), (99, None),
                                       (100, -116), (191, -25), (199, None), (-1, None)])
def test_csq_dbm(rssi, dbm):
    assert modem_mod.csq_dbm(rssi) == dbm


def test_reg_decoding_covers_27007():
    assert [s for s in range(12) if modem_mod.reg_ok(s)] == [1, 5, 9, 10]
    assert modem_mod.reg_name(3) == "registration denied"
    assert modem_mod.reg_name(5) == "registered, roaming"
    assert modem_mod.reg_name(-1) == "not asked"
    assert modem_mod.reg_name(42) == "stat 42"


def test_bad_apn_is_refused_before_anything_is_sent():
    class NoStream:
        def readinto(self, b):
            return None

        def write(self, b):
            raise AssertionError("nothing may be written")

    from atmq.engine import Engine
    from atmq.events import EventQueue

    m = modem_mod.Modem(Engine(NoStream()), EventQueue(4))
    with pytest.raises(ConfigError) as e:
        asyncio.run(m.set_apn('bad"apn'))
    assert e.value.key == "apn"
    with pytest.raises(ConfigError):
        modem_mod.Modem(Engine(NoStream()), EventQueue(4), family="wifi")


def test_bring_up_steps_module_is_imported_for_a_call_only():
    # issue 11: init/data_up/... live in atmq.modemq, imported per call and dropped after it
    from atmq.engine import Engine
    from atmq.events import EventQueue

    class Idle:
        def readinto(self, b):
            return None

        def write(self, b):
            raise AssertionError("nothing may be written")

    m = modem_mod.Modem(Engine(Idle()), EventQueue(4))
    assert getattr(m, "no_such_step", None) is None and not m.registered() and not m.roaming
    assert "atmq.modemq" not in sys.modules


def test_registration_urcs_heard_on_change_and_after_state_set_elsewhere():
    # CREG/CGREG/CEREG handlers run only when the stored numbers or their count change
    # (Engine.on_store on_change); a reboot (reset_state) or a query answer sets reg[d]
    # outside them, so the next URC must be heard even when it repeats the last one
    from atmq.engine import Engine
    from atmq.events import EV_REG, EventQueue

    class Idle:
        def readinto(self, buf):
            return None

        def write(self, data):
            return len(data)

    at = Engine(Idle())
    ev = EventQueue(16)
    m = modem_mod.Modem(at, ev)

    def regs():
        got = []
        while (k := ev.get()) >= 0:
            if k == EV_REG:
                got.append((ev.a, ev.b))
        return got

    at.feed(b"\r\n+CREG: 1\r\n\r\n+CEREG: 5,\"1A2B\",\"01C3D4E5\",7\r\n")
    assert m.reg[0] == 1 and m.reg[2] == 5 and regs() == [(1, 0), (5, 2)]
    stores = at.tok.stores  # every line stored and counted, its handler or not
    at.feed(b"\r\n+CREG: 1\r\n" * 5)
    assert at.tok.stores == stores + 5 and regs() == [] and m._regn[2] == 6
    at.feed(b"\r\n+CREG: 0,5\r\n")  # a read answer that crossed a query: two arguments
    assert m.reg[0] == 5 and regs() == [(5, 0)]
    at.feed(b"\r\n+CREG: 1\r\n")
    assert m.reg[0] == 1 and regs() == [(1, 0)]
    m.reset_state()  # a reboot: reg unknown, the snapshot invalidated
    at.feed(b"\r\n+CREG: 1\r\n")
    assert m.reg[0] == 1 and regs() == [(1, 0)]
    m._on_reg(at.reader.args, 0)  # (the query path's crossing URC: the same invalidation)
    assert m._regn[9] == -1
