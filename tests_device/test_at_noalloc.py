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


def test_urc_mix_real_handlers_allocate_nothing():
    # The URC-heavy mix of the benchmark through the real Engine with Modem's and
    # CMQTTDriver's handlers (store-then-call entries, raw frames into the Inbox).
    import io

    from atmq.cmqtt import CMQTTDriver
    from atmq.engine import Engine
    from atmq.events import EventQueue
    from atmq.inbox import Inbox
    from atmq.modem import Modem
    from traffic import build_urc

    block, _lines = build_urc(seed=1)
    stream = io.BytesIO(block)
    at = Engine(stream, chunk_size=256)
    events = EventQueue(1024)
    inbox = Inbox(4, 64, 256)
    Modem(at, events)
    mqtt = CMQTTDriver(at, events, inbox)

    def one_pass():
        stream.seek(0)
        while at.pump() > 0:
            pass
        while events.get() >= 0:
            pass
        while inbox.get() >= 0:
            inbox.release()

    one_pass()  # warm up
    received = mqtt.stats["received"]
    lines0 = at.tok.lines
    gc.collect()
    heap_lock()
    try:
        for _ in range(5):
            one_pass()
    finally:
        heap_unlock()
    per_pass = mqtt.stats["received"] - received
    assert received > 0 and per_pass == 5 * received, (received, per_pass)
    assert at.tok.lines - lines0 == 5 * lines0
    assert at.reader.handler_errors == 0, at.reader.last_handler_error
