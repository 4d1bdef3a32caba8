"""SM driver on the MicroPython unix port: the transcript replays of sm_cases (seed 004
worked examples, SIM800 and SIM70x0 transcripts) at one byte, seven bytes and seeded
random per read, and the inbound paths (+SMPUBLISH on SIM800, +SMSUB: "topic","message"
on SIM70x0: slicing into the Inbox, oversize and torn drops, result URCs, link loss) run
under ``heap_lock`` so any allocation in the reader-side handlers raises MemoryError."""

import gc

import sm_cases as C
from atmq.compat import heap_lock, heap_unlock
from atmq.engine import Engine
from atmq.events import EV_CONNLOST, EV_MSG, EV_MSG_DROPPED, EventQueue
from atmq.inbox import Inbox
from drivercases import IdleStream, run_all
from atmq.smmqtt import SMDriver


async def _all(chunk):
    await run_all(C.NAMES, C.run_case, chunk)


async def test_replays_one_byte():
    await _all(1)


async def test_replays_seven_bytes():
    await _all(7)


async def test_replays_random_chunks():
    await _all("random")


def _noalloc(variant, block, want, rounds=300):
    at = Engine(IdleStream(), line_max=160)
    ev = EventQueue(16)
    ib = Inbox(4, 32, 64)
    drv = SMDriver(at, ev, ib, 0, None, variant)
    pieces = [block[i:i + 13] for i in range(0, len(block), 13)]  # preallocated chunks

    def cycle():
        drv.connected = True
        for p in pieces:
            at.ring.put(p, len(p))
            at.process()
        n_msg = n_drop = n_lost = 0
        while True:
            k = ev.get()
            if k < 0:
                break
            if k == EV_MSG:
                n_msg += 1
            elif k == EV_MSG_DROPPED:
                n_drop += 1
            elif k == EV_CONNLOST:
                n_lost += 1
        while ib.get() >= 0:
            ib.release()
        return n_msg * 100 + n_drop * 10 + n_lost

    assert cycle() == want, cycle()  # warm-up
    gc.collect()
    bad = 0
    heap_lock()
    try:
        for _ in range(rounds):
            if cycle() != want:
                bad += 1
    finally:
        heap_unlock()
    assert bad == 0, bad
    return drv


def test_sim800_inbound_path_allocates_nothing():
    block = (b'\r\n+SMPUBLISH: 1,"cmd/a",10,"{"x":"y,"}"\r\n'
             b'\r\n+SMPUBLISH: 2,"cmd/b",0,""\r\n'
             b'\r\n+SMPUBLISH: 3,"cmd/big",70,"' + b"z" * 70 + b'"\r\n'  # oversize
             # a line break inside: the rest is read as a raw frame by its length (kept)
             b'\r\n+SMPUBLISH: 4,"cmd/c",5,"ab\r\nc"\r\n'
             b'\r\n+SMPUB: 5,0\r\n\r\n+SMSUB: 6,0\r\n\r\n+SMUNSUB: 7,0\r\n'  # late results
             b'\r\n+SMSTATE: 0\r\n')  # link loss
    drv = _noalloc("sim800", block, 311)
    st = drv.stats
    assert st["received"] == 3 * 301 and st["rx_oversize"] == 301, st
    assert st["rx_torn"] == 0 and st["late_results"] == 3 * 301, st


def test_sim70x0_inbound_path_allocates_nothing():
    block = (b'\r\n+SMSUB: "cmd/a","{"x":"y,","z":""}"\r\n'
             b'\r\n+SMSUB: "cmd/b",""\r\n'
             b'\r\n+SMSUB: "cmd/big","' + b"z" * 70 + b'"\r\n'  # oversize
             b'\r\n+SMSUB: "cmd/c"\r\n'  # garbled
             b'\r\n+SMSTATE: 0\r\n')
    drv = _noalloc("sim70x0", block, 221)
    assert drv.stats["received"] == 2 * 301 and drv.stats["connlost"] == 301
