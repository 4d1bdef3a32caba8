"""What the MQTT driver replay cases share (cmqtt_cases.py, sm_cases.py).

A case is ``(name, transcript, body, ctx options)``; ``run_case`` replays the
transcript through a fresh context (replaying modem -> Engine -> EventQueue,
Inbox -> the family's driver) at a chunking, awaits the body under a deadline
and checks that every modem byte was read.  Runs on CPython and MicroPython.
"""

import asyncio

import atxreplay as R  # pyright: ignore[reportMissingImports]
from atmq.compat import sleep_ms
from atmq.engine import Engine
from atmq.errors import ModemError
from atmq.events import EventQueue
from atmq.inbox import Inbox


def _dirname(p):
    i = p.rfind("/")
    return p[:i] if i > 0 else "."


TRANSCRIPTS = _dirname(_dirname(__file__)) + "/tests_host/transcripts/"


class DriverCtx:
    """Modem, engine, events and inbox of one case; the family's Ctx adds ``drv``."""

    def __init__(self, source, chunk, inbox, line_max=512):
        self.modem = R.ReplayModem(source, chunk=chunk)
        self.at = Engine(self.modem, line_max=line_max)
        self.ev = EventQueue(32)
        self.inbox = Inbox(inbox[0], inbox[1], inbox[2])
        self.seen = []

    def events(self):
        """Every event queued so far (kept in ``seen``) as (kind, a, b)."""
        q = self.ev
        while True:
            k = q.get()
            if k < 0:
                return self.seen
            self.seen.append((k, q.a, q.b))


class IdleStream:
    """A stream with nothing to read: a test feeds the engine's ring itself."""

    def readinto(self, buf):
        return None

    def write(self, buf):
        return len(buf)


async def settle(c):
    """Wait (bounded) until the reader has consumed every byte the modem released."""
    for _ in range(3000):
        if c.modem.pending_rx() == 0 and c.at.ring.count() == 0:
            return
        await sleep_ms(1)
    raise AssertionError("modem bytes left unread: %s" % c.modem.where())


async def expect(coro, kind, code):
    """Await ``coro``; it must raise ModemError(kind, code). Returns the exception."""
    try:
        await coro
    except ModemError as e:
        assert e.kind == kind and e.code == code, "got %r %r, want %s %d" % (
            e.kind, e.code, kind, code)
        return e
    raise AssertionError("no ModemError %s %d" % (kind, code))


def chunker(chunk, name):
    """``"random"``: a seeded chunker, the seed from the case name (same on both Pythons)."""
    if chunk == "random":
        seed = 1
        for ch in name:
            seed = (seed * 31 + ord(ch)) & 0xFFFFFFFF
        return R.Seeded(9, seed)
    return chunk


async def run_case(cases, make_ctx, name, chunk, timeout_ms=10000):
    """Replay case ``name`` of ``cases``; ``make_ctx(source, chunker, **opts)`` builds it."""
    case = None
    for cs in cases:
        if cs[0] == name:
            case = cs
    if case is None:
        raise ValueError("no case %r" % name)
    _, source, body, opts = case
    c = make_ctx(source, chunker(chunk, name), **opts)
    task = asyncio.create_task(c.at.run())
    try:
        await R.drive(c.modem, body(c), timeout_ms)
        await settle(c)
        c.modem.assert_done()
    finally:
        task.cancel()
    return c


async def run_all(names, run, chunk):
    """Every case at one chunking; the failures are reported together."""
    failed = []
    for name in names:
        try:
            await run(name, chunk)
        except Exception as e:
            failed.append("%s: %r" % (name, e))
    assert not failed, "\n".join(failed)
