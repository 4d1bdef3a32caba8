"""The second publish session's life in tlog.uplink (issue 14): made only while the main
session is up and a backlog of two batches waits, and only with heap room; closed (its
client index released) when the backlog is gone or the heap runs low; a MemoryError
while making it is counted and the drain goes on with one batch in flight."""

import asyncio

from app_fakes import append_records
from test_app_uplink import GateClient

import tlog.uplink as uplink_mod
from tlog.config import Config
from tlog.spool import from_config
from tlog.uplink import Uplink

TOPIC = "tlog/dev1/telemetry"


class Lane(GateClient):
    """A second session the factory makes: counts run/close, never touches a modem."""

    made = 0

    def __init__(self, broker):
        super().__init__("b", broker)
        Lane.made += 1
        self.connects = 1
        self.closed = False
        self.ran = asyncio.Event()

    async def run(self):
        self.ran.set()
        await asyncio.Event().wait()

    async def close(self, task):
        if task is not None:
            task.cancel()
        self.closed = True


async def _no_sleep(ms):
    await asyncio.sleep(0)


async def _one_batch_on_the_main_session(up, a):
    """``send_once`` with its publish answered: the number of records acknowledged."""
    t = asyncio.create_task(up.send_once())
    while not a.pending:
        await asyncio.sleep(0)
    a.settle()
    return await asyncio.wait_for(t, 2)


def make(tmp_path, free=-1, factory_error=None, **cfg):
    c = Config(None, dict({"batch_max_records": 5, "uplink_inflight": 2}, **cfg))
    sp = from_config(str(tmp_path / "spool"), c)
    up = Uplink(sp, c, TOPIC, "dev1", sleep=_no_sleep)
    broker = []
    a = GateClient("a", broker)
    up.bind(a, TOPIC, "dev1")
    made = []

    def factory():
        if factory_error is not None:
            raise factory_error
        lane = Lane(broker)
        made.append(lane)
        return lane
    up.lane_factory = factory
    up.heap_free = lambda: free
    return up, sp, a, made


def test_not_made_without_a_backlog_then_made_with_one(tmp_path):
    up, sp, _a, made = make(tmp_path)
    append_records(sp, 0, 9)  # < two batches of 5

    async def body():
        await up._lane_check()
        assert up.client2 is None and not made and up.window() == 1
        append_records(sp, 9, 1)
        await up._lane_check()
        assert up.client2 is made[0] and up.lane_opens == 1
        assert len(up._out2) == len(up._out)  # the second payload buffer, same size
        await asyncio.sleep(0)
        assert made[0].ran.is_set() and up.window() == 2
        await up.close_lane()

    asyncio.run(body())


def test_not_made_while_the_main_session_is_down_or_key_is_one(tmp_path):
    up, sp, a, made = make(tmp_path)
    append_records(sp, 0, 20)
    a.up.clear()

    async def body():
        await up._lane_check()
        assert not made
        a.up.set()
        up.cfg.set("uplink_inflight", 1)
        await up._lane_check()
        assert not made

    asyncio.run(body())


def test_low_heap_not_made_counted_one_in_flight(tmp_path):
    up, sp, a, made = make(tmp_path, free=8000)  # < payload buffer + room

    async def body():
        append_records(sp, 0, 20)
        await up._lane_check()
        assert not made and up.lane_degraded == 1 and up.window() == 1
        assert await _one_batch_on_the_main_session(up, a) == 5

    asyncio.run(body())


def test_memory_error_while_making_it_is_counted_and_the_drain_goes_on(tmp_path):
    up, sp, a, made = make(tmp_path, factory_error=MemoryError("memory allocation failed"))
    append_records(sp, 0, 20)

    async def body():
        await up._lane_check()
        assert up.client2 is None and up._out2 is None and up.lane_degraded == 1
        await up._lane_check()  # not tried again at once
        assert up.lane_degraded == 1
        assert await _one_batch_on_the_main_session(up, a) == 5

    asyncio.run(body())


def test_closed_when_heap_runs_low_and_when_the_backlog_is_gone(tmp_path, monkeypatch):
    up, sp, _a, made = make(tmp_path)
    append_records(sp, 0, 20)
    clock = [0]
    monkeypatch.setattr(uplink_mod, "ticks_ms", lambda: clock[0])

    async def body():
        await up._lane_check()
        lane = made[0]
        up.heap_free = lambda: 1000  # the heap runs low: closed, counted, one in flight
        await up._lane_check()
        assert lane.closed and up.client2 is None and up._out2 is None
        assert up.lane_degraded == 1 and up.window() == 1
        up.heap_free = lambda: -1
        await up._lane_check()
        assert len(made) == 1  # not again within the retry delay
        clock[0] += uplink_mod._LANE_RETRY_MS
        await up._lane_check()
        lane2 = made[1]
        while sp.depth() > 1:  # the backlog is gone (one record waits)
            sp.ack(sp.peek_batch(sp.depth() - 1))
        await up._lane_check()
        assert not lane2.closed  # idle since now
        clock[0] += uplink_mod._LANE_IDLE_MS - 1
        await up._lane_check()
        assert not lane2.closed
        clock[0] += 1
        await up._lane_check()
        assert lane2.closed and up.client2 is None
        st = up.second_stats()
        assert st["opens"] == 2 and st["degraded"] == 1 and st["inflight"] == 0

    asyncio.run(body())


async def _second_then_first_then_the_rest(up, sp, a, b, t):
    """Both of 12 records' first two batches fly: the second's result comes first (nothing
    is acknowledged before the first's), then the first's, then the last batch on ``a``."""
    b.settle()
    assert sp.depth() == 12
    a.settle()
    while not a.pending:
        await asyncio.sleep(0.01)
    a.settle()
    assert await asyncio.wait_for(t, 2) == 12
    await up.close_lane()


def _all_twelve_once(up, sp, a):
    assert sorted(s for _n, ss in a.broker for s in ss) == list(range(12))
    assert sp.depth() == 0 and up.lane_published == 1


def test_two_in_flight_share_the_spools_one_batch(tmp_path):
    """Both batches are read into the spool's Batch; each in-flight one keeps only its end,
    and the acknowledgements move the cursor exactly (no spare batch is allocated)."""
    up, sp, a, made = make(tmp_path)
    append_records(sp, 0, 12)

    async def body():
        await up._lane_check()
        b = made[0]
        t = asyncio.create_task(up.send_two())
        while not (a.pending and b.pending):
            await asyncio.sleep(0)
        assert up.second_stats()["inflight"] == 2
        await _second_then_first_then_the_rest(up, sp, a, b, t)

    asyncio.run(body())
    _all_twelve_once(up, sp, a)


def test_heap_low_mid_drain_stops_new_batches_then_the_session_closes(tmp_path):
    """The heap runs low while both are in flight: no new batch starts, the two in flight
    are acknowledged in order, send_two returns, and the next check closes the session;
    the rest goes on one session."""
    up, sp, a, made = make(tmp_path)
    append_records(sp, 0, 20)

    async def body():
        await up._lane_check()
        b = made[0]
        t = asyncio.create_task(up.send_two())
        while not (a.pending and b.pending):
            await asyncio.sleep(0)
        up.heap_free = lambda: 2000
        a.settle()
        b.settle()
        assert await asyncio.wait_for(t, 2) == 10  # the two in flight, nothing new
        assert not a.pending and sp.depth() == 10
        await up._lane_check()
        assert b.closed and up.window() == 1 and up.lane_degraded == 1
        assert await _one_batch_on_the_main_session(up, a) == 5

    asyncio.run(body())


def test_second_session_up_mid_flight_takes_the_next_batch_at_once(tmp_path):
    """The second session connects while the first batch flies alone: the next batch goes
    on it before the first one's result (not one round trip later); acknowledgements stay
    in order and every record arrives once."""
    up, sp, a, made = make(tmp_path)
    append_records(sp, 0, 12)

    async def body():
        await up._lane_check()
        b = made[0]
        b.up.clear()  # made, still connecting
        assert up.window() == 1
        t = asyncio.create_task(up.send_two())
        for _ in range(200):
            if a.pending:
                break
            await asyncio.sleep(0.01)
        assert len(a.pending) == 1 and not b.pending
        b.up.set()  # CONNECT answered while batch 1 waits for its PUBACK
        for _ in range(200):
            if b.pending:
                break
            await asyncio.sleep(0.01)
        assert len(a.pending) == 1 and len(b.pending) == 1
        await _second_then_first_then_the_rest(up, sp, a, b, t)

    asyncio.run(body())
    _all_twelve_once(up, sp, a)


def test_an_error_reading_the_next_batch_lets_the_one_in_flight_finish(tmp_path):
    """A MemoryError (or a flash read error) reading the second batch while the first one
    flies: the first publish is not cancelled mid-command (the modem would be left at its
    ">" prompt); it finishes and is acknowledged, then the error is raised."""
    up, sp, a, made = make(tmp_path)
    append_records(sp, 0, 12)
    real_peek = sp.peek_batch
    calls = []

    def peek(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("the heap, once")
        return real_peek(*args, **kw)
    sp.peek_batch = peek

    async def body():
        await up._lane_check()
        t = asyncio.create_task(up.send_two())
        while not a.pending:
            await asyncio.sleep(0)
        for _ in range(5):
            await asyncio.sleep(0)
        assert not t.done() and len(a.pending) == 1  # still waiting for its result
        a.settle()
        try:
            await asyncio.wait_for(t, 2)
            raise AssertionError("the fill error was swallowed")
        except MemoryError:
            pass
        await up.close_lane()

    asyncio.run(body())
    assert sp.depth() == 7  # the first batch (5) acknowledged, nothing lost or skipped
    assert [s for _n, ss in a.broker for s in ss] == list(range(5))


def test_resize_falls_back_to_a_smaller_buffer_and_retries_at_the_next_drain(tmp_path,
                                                                            monkeypatch):
    """A MemoryError making the new payload buffer (a heap in pieces) leaves a smaller one
    that still sends, never a 0-byte one that stalls the uplink; the full size is tried
    again at the next drain.  A resize while a batch flies waits for the drain's end."""
    up, sp, a, _made = make(tmp_path, batch_max_bytes=4096)
    up.resize()
    assert len(up._out) == 4096
    real = bytearray

    def tight(n=0):
        if n > 2048:
            raise MemoryError("no block of %d" % n)
        return real(n)
    monkeypatch.setattr(uplink_mod, "bytearray", tight, raising=False)
    up.cfg._v["batch_max_bytes"] = 8192  # (a live set of the key, without its checks)
    up.resize()
    assert len(up._out) == 2048 and up._resize_due
    monkeypatch.undo()
    append_records(sp, 0, 3)

    async def body():
        t = asyncio.create_task(up.send_once())
        while not a.pending:
            await asyncio.sleep(0)
        assert len(up._out) == 8192 and not up._resize_due  # remade before this batch
        up.cfg._v["batch_max_bytes"] = 1024
        up.resize()  # mid-flight: deferred, the buffer in flight is kept
        assert len(up._out) == 8192 and up._resize_due
        a.settle()
        assert await asyncio.wait_for(t, 2) == 3

    asyncio.run(body())
    up.resize()
    assert len(up._out) == 1024 and not up._resize_due
