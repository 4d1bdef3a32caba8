"""atmq.script: the one runner of AT step tables (commands built from arguments, rows
skipped for an unset argument, prompt data, "already" codes confirmed by the driver,
OPTIONAL refusals, the run's deadline for rows without a manual one)."""

import asyncio

import pytest
from atmq import script as S
from atmq.engine import R_ERROR, R_OK
from atmq.errors import ATError, ATTimeout, ModemError


class Resp:
    def __init__(self, final):
        self.final = final


class FakeAt:
    """The engine path: records every cmd() call, answers from ``finals``."""

    def __init__(self, finals):
        self.finals = list(finals)
        self.sent = []

    async def cmd(self, cmd, **kw):
        self.sent.append((cmd, kw))
        f = self.finals.pop(0)
        if f != R_OK and kw["check"]:
            raise ATError(cmd)
        return Resp(f)


ROWS = (
    ((b"AT+X=%d,\"%s\"", 0, 1), b"+X:", None, 5000, S.MUST, "s.1"),
    ((b"AT+Y=%d,%d", 0, 2), None, None, 5000, S.MUST, "s.2"),  # args[2] None: skipped
    ((b"AT+Z=%d,%d", 0, 3), b"+Z:", None, None, S.OPTIONAL, "s.3", (), 4),
)


def test_engine_path_builds_skips_and_sends_prompt_data():
    at = FakeAt([R_OK, R_ERROR])
    failed = asyncio.run(S.run(at, ROWS, args=(1, b"cid", None, 5, b"hello"), timeout_ms=777))
    assert failed == [2]  # the OPTIONAL row refused, the run went on
    assert [c for c, _ in at.sent] == [b'AT+X=1,"cid"', b"AT+Z=1,5"]
    kw = at.sent[1][1]
    assert kw["payload"] == b"hello" and kw["timeout_ms"] == 777 and kw["done_timeout_ms"] == 777
    assert at.sent[0][1]["payload"] is None and at.sent[0][1]["timeout_ms"] == 5000


def test_a_prompt_row_without_its_data_sends_nothing():
    """A row whose command is complete but whose prompt data is unset is refused before
    anything is written: sent, the modem would wait at ">" and eat the next command."""
    at = FakeAt([R_OK])
    with pytest.raises(ValueError, match="prompt"):
        asyncio.run(S.run(at, ROWS[2:], args=(1, b"cid", None, 5, None), timeout_ms=777))
    assert at.sent == []


def test_engine_path_must_raises():
    at = FakeAt([R_ERROR])
    with pytest.raises(ATError):
        asyncio.run(S.run(at, ((b"AT+A", None, None, 100, S.MUST, "s"),)))


class FakeDriver:
    def __init__(self, outcomes, held=True):
        self.outcomes = list(outcomes)
        self.held = held
        self.sent = []
        self.confirmed = []

    async def send(self, cmd, step, data, timeout_ms):
        self.sent.append((cmd, data, timeout_ms))
        e = self.outcomes.pop(0)
        if e is not None:
            raise e

    async def confirm(self, step, code, cmd):
        self.confirmed.append((code, cmd))
        return self.held

    @staticmethod
    def code_of(e):
        if isinstance(e, ATError):
            return S.BARE
        return e.code if e.kind == "CMQTT" else None

    def run(self, rows, args=(), timeout_ms=None):
        return S.run(None, rows, "t", args, self.send, self.confirm, self.code_of, timeout_ms)


ACCQ = (((b'AT+ACCQ=%d,"%s"', 0, 1), b"+ACCQ:", 0, 10000, S.MUST, "s", (19, S.BARE)),)


@pytest.mark.parametrize("err", [ModemError("CMQTT", 19, b"c"), ATError(b"c")])
def test_already_code_passes_when_confirmed(err):
    d = FakeDriver([err])
    assert asyncio.run(d.run(ACCQ, (0, b"me"))) == []
    assert d.confirmed == [(FakeDriver.code_of(err), b'AT+ACCQ=0,"me"')]


def test_already_code_raises_when_not_confirmed():
    d = FakeDriver([ModemError("CMQTT", 19, b"c")], held=False)
    with pytest.raises(ModemError) as ei:
        asyncio.run(d.run(ACCQ, (0, b"me")))
    assert ei.value.code == 19


@pytest.mark.parametrize("err", [ModemError("CMQTT", 14, b"c"), ModemError("CME", 19, b"c"),
                                 ATTimeout(b"c", 10)])
def test_other_codes_are_not_already(err):
    # busy is the driver's retry layer's, a CME 19 is not CMQTT 19, a timeout is no answer
    d = FakeDriver([err])
    with pytest.raises(ModemError):
        asyncio.run(d.run(ACCQ, (0, b"me")))
    assert d.confirmed == []


OPT = ((b"AT+V", b"+V:", 0, 10000, S.OPTIONAL, "s"), (b"AT+W", b"+W:", 0, None, S.MUST, "s"))


def test_optional_tolerates_a_plain_error_only():
    d = FakeDriver([ATError(b"AT+V"), None])
    assert asyncio.run(d.run(OPT, timeout_ms=1234)) == [0]
    assert d.sent == [(b"AT+V", None, 10000), (b"AT+W", None, 1234)]
    for err in (ModemError("CMQTT", 2, b"AT+V"), ATTimeout(b"AT+V", 10)):
        d = FakeDriver([err])
        with pytest.raises(ModemError):
            asyncio.run(d.run(OPT))
        assert len(d.sent) == 1  # nothing after a refusal that is not the module lacking it


def test_command_builder():
    assert S.command(b"AT", ()) == b"AT"
    assert S.command((b"AT+A=%d%s", 0, 1), (3, b",1")) == b"AT+A=3,1"
    assert S.command((b"AT+A=%d,%d", 0, 1), (3, None)) is None
