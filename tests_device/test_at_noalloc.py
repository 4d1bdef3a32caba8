"""The AT read path allocates nothing: 100,000+ lines through reader, tokenizer and dispatch
inside ``micropython.heap_lock()`` (any allocation raises MemoryError), with every
outcome checked."""

import gc

from atmq.compat import heap_lock, heap_unlock
from traffic import Driver, build

MIN_LINES = 100_000


def test_read_path_allocates_nothing():
    block, kinds, ends, exp = build(seed=3)
    d = Driver(block, kinds, ends, seed=11, max_chunk=97)
    d.cycle()  # warm up: first-use allocations (dict slots, bound methods) happen here
    for i in range(len(d.got)):
        d.got[i] = 0
    lines0 = d.at.tok.lines
    cycles = 0
    gc.collect()
    heap_lock()
    try:
        while d.at.tok.lines - lines0 < MIN_LINES:
            d.cycle()
            cycles += 1
    finally:
        heap_unlock()
    lines = d.at.tok.lines - lines0
    got = d.got
    assert lines >= MIN_LINES, lines
    assert got[6] == 0, "wrong outcomes: %d" % got[6]
    assert got[0] == exp["ok"] * cycles, (got[0], exp["ok"], cycles)
    assert got[1] == exp["cme"] * cycles
    assert got[2] == exp["msgs"] * cycles
    assert got[3] == exp["dropped"] * cycles
    assert got[4] == exp["connlost"] * cycles
    assert got[5] == exp["csq"] * cycles
    assert d.at.ring.overflows == 0
    assert d.at.tok.truncations >= exp["trunc"] * cycles
    print("lines", lines, "cycles", cycles, "bytes", len(block) * cycles,
          "prompts", d.at.tok.prompts, "raw frames", d.at.tok.raw_frames)


def test_one_byte_reads_same_outcome():
    block, kinds, ends, exp = build(seed=5, exchanges=120)
    d = Driver(block, kinds, ends, seed=1, max_chunk=1)
    d.cycle()
    got = d.got
    assert got[6] == 0
    assert got[0] == exp["ok"] and got[2] == exp["msgs"] and got[3] == exp["dropped"]
