"""CMQTT driver on the MicroPython unix port: the transcript replays of cmqtt_cases at
one byte, seven bytes and seeded random per read, and the inbound assembly path
(+CMQTTRX* URCs, raw frames into the Inbox, oversize skipping, events) run under
``heap_lock`` so any allocation in the reader-side handlers raises MemoryError."""

import gc

import cmqtt_cases as C
from atmq.cmqtt import CMQTTDriver
from atmq.compat import heap_lock, heap_unlock
from atmq.engine import Engine
from atmq.events import EV_MSG, EV_MSG_DROPPED, EventQueue
from atmq.inbox import Inbox
from drivercases import IdleStream, run_all


async def _all(chunk):
    await run_all(C.NAMES, C.run_case, chunk)


async def test_replays_one_byte():
    await _all(1)


async def test_replays_seven_bytes():
    await _all(7)


async def test_replays_random_chunks():
    await _all("random")


def _rx(topic_chunks, payload_chunks):
    tl = sum(len(t) for t in topic_chunks)
    pl = sum(len(p) for p in payload_chunks)
    out = b"\r\n+CMQTTRXSTART: 0,%d,%d\r\n" % (tl, pl)
    for t in topic_chunks:
        out += b"+CMQTTRXTOPIC: 0,%d\r\n" % len(t) + t + b"\r\n"
    for p in payload_chunks:
        out += b"+CMQTTRXPAYLOAD: 0,%d\r\n" % len(p) + p + b"\r\n"
    return out + b"+CMQTTRXEND: 0\r\n"


def test_inbound_path_allocates_nothing():
    at = Engine(IdleStream())
    ev = EventQueue(16)
    ib = Inbox(4, 32, 64)
    drv = CMQTTDriver(at, ev, ib)
    block = (_rx([b"cmd/a/"], [b"{}"])
             + _rx([b"cmd/", b"b"], [b"x\r\nOK\r\n", b">y", b"+CMQTTRXEND: 0"])
             + _rx([b"cmd/big"], [b"z" * 60, b"+CMQTTRXEND: 0\r\n" + b"w" * 40])  # oversize
             + _rx([b"cmd/empty"], [])
             + b"\r\n+CMQTTCONNLOST: 1,1\r\n")  # another client's URC: ignored
    pieces = [block[i:i + 13] for i in range(0, len(block), 13)]  # preallocated chunks

    def cycle():
        for p in pieces:
            at.ring.put(p, len(p))
            at.process()
        n_msg = n_drop = 0
        while True:
            k = ev.get()
            if k < 0:
                break
            if k == EV_MSG:
                n_msg += 1
            elif k == EV_MSG_DROPPED:
                n_drop += 1
        while ib.get() >= 0:
            ib.release()
        return n_msg * 10 + n_drop

    assert cycle() == 31  # warm-up: 3 kept, 1 dropped
    gc.collect()
    bad = 0
    heap_lock()
    try:
        for _ in range(300):
            if cycle() != 31:
                bad += 1
    finally:
        heap_unlock()
    assert bad == 0, bad
    st = drv.stats
    assert st["received"] == 3 * 301 and st["rx_oversize"] == 301, st
    assert st["connlost"] == 0 and at.unknown == 0
