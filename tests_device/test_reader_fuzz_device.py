"""The engine fuzz (issue 10): hostile modem output through the reader under
``micropython.heap_lock()`` (any allocation raises), with CMQTT-style receive handlers and
store entries registered, and a normal ``AT``/``OK`` parsed after every case.

Each case mixes announced lengths that lie (too long, negative, 999999999, a bad client
index), torn receive sequences, quotes, NUL and 0xFF bytes, lone CR, overlong lines and
random bytes.  A frame still armed when a case ends is left to its deadline (moved into
the past: the time a real modem would take), so the abandon-and-resync path runs under
the lock too.  CI runs 2,000 cases; ``FUZZ_CASES=N`` runs more.
"""

import os
from array import array

from atmq.compat import heap_lock, heap_unlock, ticks_add, ticks_ms
from atmq.engine import R_OK
from difftest import Rand
from traffic import K_IDLE, Driver

_FRAGS = (b"+CMQTTRXSTART: 0,%d,%d\r\n", b"+CMQTTRXTOPIC: 0,%d\r\n", b"+CMQTTRXPAYLOAD: 0,%d\r\n",
          b"+CMQTTRXEND: 0\r\n", b"+CMQTTCONNLOST: 0,%d\r\n", b"+CSQ: %d,%d\r\n",
          b'+CREG: %d,"1A2B","%d"\r\n', b"RDY\r\n", b"+CPIN: READY\r\n", b"OK\r\n",
          b"ERROR\r\n", b"+CME ERROR: %d\r\n", b"> ", b"\r\n")
_LENS = (0, 1, 5, 20, 37, 255, 256, 3000, 16384, 16385, 999999999, -1, -5)
_NOISE = b"\r\n\x00\xff\",:>+ aZ9-"
BATCH = 100


def _cases():
    try:
        return int(os.getenv("FUZZ_CASES") or 0) or 2000
    except (AttributeError, ValueError):
        return 2000


def _case(rnd):
    out = []
    for _ in range(1 + rnd.next(8)):
        k = rnd.next(len(_FRAGS) + 3)
        if k < len(_FRAGS):
            f = _FRAGS[k]
            nargs = f.count(b"%d")
            vals = tuple(_LENS[rnd.next(len(_LENS))] for _ in range(nargs))
            line = f % vals if nargs else f
            if rnd.next(8) == 0:
                line = line.replace(b" 0,", b" x,")  # an unparseable client index
            out.append(line)
            if rnd.next(2):
                out.append(bytes(rnd.next(256) for _ in range(rnd.next(40))))
        elif k == len(_FRAGS):
            out.append(b"+LONG: " + b"z" * (200 + rnd.next(400)) + b"\r\n")
        elif k == len(_FRAGS) + 1:
            out.append(bytes(_NOISE[rnd.next(len(_NOISE))] for _ in range(rnd.next(80))))
        else:
            out.append(b"\r" * rnd.next(4) + b"\r\n")
    return b"".join(out)


def test_fuzz_under_heap_lock_then_ok_parses():
    rnd = Rand(2024)
    d = Driver(b"", array("b", [K_IDLE]), array("i", [0]), seed=1, max_chunk=64)
    at = d.at
    rd = at.reader
    sig = array("i", [0, 0, 0])
    at.on_store(b"+CSQ:", sig, 0, 1, 0, 2)
    d.cycle(False)  # warm up (first-use allocations happen here)
    at.begin(b"AT", None, False, None, -1, False)
    at.feed(b"\r\nOK\r\n")
    at.end()
    total = _cases()
    done = oks = 0
    while done < total:
        batch = [_case(rnd) for _ in range(min(BATCH, total - done))]
        heap_lock()
        try:
            for data in batch:
                at.feed(data)
                if at.tok.raw_left:
                    rd.raw[1] = ticks_add(ticks_ms(), -1)  # its deadline has passed
                    at.pump()  # the stream is idle: the frame is abandoned
                at.begin(b"AT", None, False, None, -1, False)
                at.feed(b"\r\nOK\r\n")
                if at.resp.final == R_OK:
                    oks += 1
                at.end()
                while d.events.get() >= 0:
                    pass
        finally:
            heap_unlock()
        done += len(batch)
    assert oks == total, (oks, total)
    assert at.tok.raw_refused > 0 and at.tok.raw_abandoned > 0 and at.tok.truncations > 0
    assert at.reader.handler_errors == 0, at.reader.last_handler_error
    print("fuzz cases", total, "refused", at.tok.raw_refused, "abandoned",
          at.tok.raw_abandoned, "stores", at.tok.stores)
