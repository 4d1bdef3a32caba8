"""Modem transcript replays on the MicroPython unix port: the same scenarios as
tests_host/test_modem.py (modem_scenarios.py), every transcript at chunk sizes 1 and 7
and a seeded random chunking, through the real Engine, Modem and ReplayModem."""

import os

import asyncio
import modem_scenarios
from atxreplay import Seeded


def _files():
    return sorted(n for n in os.listdir(modem_scenarios.TRANSCRIPTS[:-1]) if n.endswith(".atx"))


def _all(chunk):
    n = 0
    for name in _files():
        try:
            asyncio.run(modem_scenarios.run(modem_scenarios.TRANSCRIPTS + name, chunk))
        except Exception as e:
            raise AssertionError("%s (chunk %r): %r" % (name, chunk, e)) from None
        n += 1
    if n < 14:
        raise AssertionError("only %d modem transcripts found" % n)


def test_modem_transcripts_chunk_1():
    _all(1)


def test_modem_transcripts_chunk_7():
    _all(7)


def test_modem_transcripts_random_chunks():
    _all(Seeded(13, seed=7))


def test_cclk_and_csq_helpers():
    from atmq.modem import csq_dbm, parse_cclk

    if parse_cclk("24/01/01,02:15:00-20") != (1704093300 - 946684800, -20):
        raise AssertionError("CCLK negative zone")
    if parse_cclk("80/01/06,00:00:49+00") is not None:
        raise AssertionError("unsynced clock must be None")
    if csq_dbm(99) is not None or csq_dbm(31) != -51:
        raise AssertionError("CSQ scale")


def test_modem_urc_handlers_allocate_nothing():
    # Registration, SIM-ready, PDP-loss and reboot URCs decoded inside heap_lock(): the
    # handlers only record ints and enqueue events (reader rule, engine docstring).
    import gc

    from atmq.compat import heap_lock, heap_unlock
    from atmq.engine import Engine
    from atmq.events import EV_NONET, EV_REBOOT, EV_REG, EV_SIM, EventQueue
    from atmq.link import Link
    from atmq.modem import Modem

    class Null:
        def readinto(self, b):
            return None

        def write(self, b):
            return len(b)

    at = Engine(Null())
    q = EventQueue(128)
    m = Modem(at, q)
    link = Link(m)  # the link owner's lost() runs inside the handlers too (issue 9)
    m._session = True  # as after init(): RDY now means a spontaneous reboot
    m.sim = "READY"
    # +CPIN: <code> other than READY, and another context's +CGEV, decoded without
    # allocating (issue 10 #11)
    lines = (b"\r\n+CEREG: 2\r\n\r\n+CEREG: 5\r\n\r\n+CGREG: 1\r\n\r\n+CREG: 1\r\n"
             b"\r\n+CPIN: NOT READY\r\n\r\n+CPIN: SIM PIN\r\n\r\n+CPIN: WHATEVER\r\n"
             b"\r\n+CPIN: READY\r\n\r\n+CGEV: NW PDN DEACT 1\r\n\r\n+CGEV: NW PDN DEACT 7\r\n"
             b"\r\n+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY\r\n\r\nRDY\r\n")
    at.feed(lines)  # warm-up: first-use allocations happen here
    q.clear()
    m._session = True
    buf = bytearray(lines)
    link.mark(9)  # subscribed: the reboots below must bring it down to booting (1)
    gc.collect()
    heap_lock()
    try:
        for _ in range(7):  # 8 events each: the queue (64) keeps them all
            m._session = True
            at.feed(buf)
    finally:
        heap_unlock()
    kinds = []
    while True:
        k = q.get()
        if k < 0:
            break
        kinds.append(k)
    if kinds.count(EV_REBOOT) != 7 or kinds.count(EV_NONET) != 14 or q.discards:
        raise AssertionError("events: %r" % kinds)
    if kinds.count(EV_SIM) != 28 or m.sim is not None or link.sync() != 1:
        raise AssertionError("SIM events %d, sim %r, link %r" % (kinds.count(EV_SIM), m.sim,
                                                                link.name))
    if EV_REG not in kinds:
        raise AssertionError("no EV_REG")
