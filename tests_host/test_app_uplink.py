"""tlog.uplink on CPython with a real spool on disk and a client that fails on demand:
every record reaches the broker, in order, a failed publish keeps its batch, duplicates
are bounded by one batch per failure, partial batches are acknowledged exactly."""

import asyncio
import json

import pytest
from app_fakes import FakeClient, append_records

from atmq.errors import ModemError
from tlog.config import Config
from tlog.records import PACKED_MAX
from tlog.spool import from_config
from tlog.uplink import Uplink

TOPIC = "tlog/dev1/telemetry"


def make(tmp_path, plan=(), **cfg):
    c = Config(None, dict({"batch_max_records": 8}, **cfg))
    sp = from_config(str(tmp_path / "spool"), c)
    up = Uplink(sp, c, TOPIC, "dev1", sleep=_no_sleep)
    client = FakeClient(plan)
    up.bind(client, TOPIC, "dev1")
    return up, sp, client


async def _no_sleep(ms):
    await asyncio.sleep(0)


async def drain(up, limit=200):
    for _ in range(limit):
        try:
            k = await up.send_once()
        except Exception:
            up.failures += 1
            continue
        if k == 0 and up.spool.depth() == 0:
            return
    raise AssertionError("drain did not finish")


def test_batches_in_order_and_acked(tmp_path):
    up, sp, client = make(tmp_path)
    append_records(sp, 0, 20)
    asyncio.run(drain(up))
    assert client.telemetry_seqs() == list(range(20))
    assert [len(json.loads(p)) for _t, p, _q, _r in client.broker] == [8, 8, 4]
    assert all(q == 1 and not r and t == TOPIC for t, _p, q, r in client.broker)
    assert sp.depth() == 0 and up.sent == 20 and up.batches == 3


def test_failures_lose_nothing_keep_order_bound_duplicates(tmp_path):
    plan = ["ok", "linkdown", "modem", "ok", "lost_ack", "ok", "linkdown", "ok", "ok", "ok"]
    up, sp, client = make(tmp_path, plan)
    append_records(sp, 0, 30)
    asyncio.run(drain(up))
    seqs = client.telemetry_seqs()
    assert sorted(set(seqs)) == list(range(30))  # nothing lost
    # order: the first time each seq is seen is ascending (chronological drain)
    first = []
    for s in seqs:
        if s not in first:
            first.append(s)
    assert first == list(range(30))
    # only the batch whose ack was lost went twice: at most one batch of duplicates
    dups = len(seqs) - 30
    assert 0 < dups <= 8
    assert up.failures == 4 and sp.depth() == 0


def test_failed_publish_leaves_batch_in_spool(tmp_path):
    up, sp, client = make(tmp_path, ["modem"])
    append_records(sp, 0, 3)
    with pytest.raises(ModemError):
        asyncio.run(up.send_once())
    assert sp.depth() == 3 and client.broker == []
    assert asyncio.run(up.send_once()) == 3
    assert client.telemetry_seqs() == [0, 1, 2] and sp.depth() == 0


def test_batch_cut_to_payload_limit_acks_only_what_was_sent(tmp_path):
    # 16 OBD PIDs: all 6 packed records fit one peek (~91 B each), but the encoder
    # reserves json_max (~500 B) per record, so a 1024-byte payload carries 3 and the
    # other 3 stay in the spool for the next publish.
    up, sp, client = make(tmp_path, batch_max_bytes=1024)
    append_records(sp, 0, 6, with_obd=16)
    assert len(sp.peek_batch(8)) == 6
    asyncio.run(up.send_once())
    assert client.telemetry_seqs() == [0, 1, 2] and sp.depth() == 3
    asyncio.run(drain(up))
    assert client.telemetry_seqs() == list(range(6))
    assert all(len(p) <= 1024 for _t, p, _q, _r in client.broker)


def test_freematics_format(tmp_path):
    up, sp, client = make(tmp_path, payload_format="freematics")
    append_records(sp, 7, 2)
    asyncio.run(up.send_once())
    p = client.broker[0][1]
    assert p.startswith(b"dev1#0:7,") and b",0:8" in p
    body, cs = p.rsplit(b"*", 1)
    assert int(cs, 16) == sum(body) & 0xFF


def test_unreadable_record_is_skipped_and_counted(tmp_path):
    up, sp, client = make(tmp_path)
    append_records(sp, 0, 2)
    sp.append(b"\x07garbage-not-a-record")  # wrong format version
    append_records(sp, 2, 2)
    asyncio.run(drain(up))
    assert client.telemetry_seqs() == [0, 1, 2, 3]
    assert up.bad_records == 1 and sp.depth() == 0


def test_run_waits_for_link_then_drains(tmp_path):
    up, sp, client = make(tmp_path)
    client.up.clear()
    append_records(sp, 0, 5)

    async def go():
        t = asyncio.create_task(up.run())
        for _ in range(20):
            await asyncio.sleep(0)
        assert client.calls == 0  # link down: nothing tried
        client.up.set()
        for _ in range(200):
            if sp.depth() == 0:
                break
            await asyncio.sleep(0)
        t.cancel()

    asyncio.run(go())
    assert client.telemetry_seqs() == [0, 1, 2, 3, 4]


def test_backoff_grows_and_resets(tmp_path):
    slept = []

    async def sleep(ms):
        slept.append(ms)
        await asyncio.sleep(0)

    up, sp, client = make(tmp_path, ["modem", "modem", "modem", "ok"])
    up._sleep = sleep
    append_records(sp, 0, 1)

    async def go():
        t = asyncio.create_task(up.run())
        for _ in range(200):
            if sp.depth() == 0:
                break
            await asyncio.sleep(0)
        t.cancel()

    asyncio.run(go())
    assert slept[:3] == [1000, 2000, 4000] and up.backoff_ms == 0
    assert client.telemetry_seqs() == [0]


def test_packed_max_fits_spool_record_limit():
    assert PACKED_MAX <= 128  # spool.from_config's record_max


def test_modem_payload_cap_and_forced_format(tmp_path):
    # a SIM800-like driver: at most 120 bytes inline, no '"' (so the freematics text)
    up, sp, client = make(tmp_path)
    up.payload_cap = 120
    up.forced_format = "freematics"
    up.resize()
    append_records(sp, 0, 10)
    asyncio.run(drain(up))
    payloads = [p for _t, p, _q, _r in client.broker]
    assert all(len(p) <= 120 and b'"' not in p for p in payloads) and len(payloads) > 1
    seqs = []
    for p in payloads:
        body = p.rsplit(b"*", 1)[0].split(b"#", 1)[1]
        seqs += [int(f[2:]) for f in body.split(b",") if f.startswith(b"0:")]
    assert seqs == list(range(10))


# ---- two batches in flight (issue 14): one per MQTT session, results taken in order ------


class GateClient:
    """A session whose publishes wait until the test settles them: ``pending`` holds
    (payload, future) in the order they started; ``settle(i, err)`` ends one (the broker
    got it when ``delivered``)."""

    def __init__(self, name, broker):
        self.name = name
        self.broker = broker  # shared: (name, seqs) in the order the broker got them
        self.pending = []
        self.up = asyncio.Event()
        self.up.set()

    def isconnected(self):
        return self.up.is_set()

    async def publish(self, topic, payload, qos=1, retain=False):
        fut = asyncio.get_running_loop().create_future()
        self.pending.append((bytes(payload), fut))
        await fut

    def settle(self, err=None, delivered=True):
        payload, fut = self.pending.pop(0)
        if delivered:
            self.broker.append((self.name, [r["seq"] for r in json.loads(payload)]))
        if err is None:
            fut.set_result(None)
        else:
            fut.set_exception(err)


def make_two(tmp_path, inflight=2, **cfg):
    c = Config(None, dict({"batch_max_records": 5, "uplink_inflight": inflight}, **cfg))
    sp = from_config(str(tmp_path / "spool"), c)
    up = Uplink(sp, c, TOPIC, "dev1", sleep=_no_sleep)
    broker = []
    a, b = GateClient("a", broker), GateClient("b", broker)
    up.bind(a, TOPIC, "dev1")
    up.bind_second(b)
    return up, sp, a, b, broker


async def _until(cond, what, steps=200):
    for _ in range(steps):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("never: " + what)


def test_two_in_flight_overlap_and_in_order_ack(tmp_path):
    up, sp, a, b, broker = make_two(tmp_path)
    append_records(sp, 0, 12)
    assert up.window() == 2

    async def body():
        t = asyncio.create_task(up.send_two())
        # the second batch goes out on the other session while the first one waits
        await _until(lambda: len(a.pending) == 1 and len(b.pending) == 1, "both in flight")
        a.settle()
        await _until(lambda: sp.depth() == 7, "first batch acked")
        await _until(lambda: len(a.pending) == 1, "third batch on session a")
        b.settle()
        await _until(lambda: sp.depth() == 2, "second batch acked")
        a.settle()
        assert await asyncio.wait_for(t, 2) == 12

    asyncio.run(body())
    assert broker == [("a", [0, 1, 2, 3, 4]), ("b", [5, 6, 7, 8, 9]), ("a", [10, 11])]
    assert sp.depth() == 0 and up.sent == 12 and up.batches == 3


def test_second_result_first_waits_for_the_first(tmp_path):
    up, sp, a, b, broker = make_two(tmp_path)
    append_records(sp, 0, 10)

    async def body():
        t = asyncio.create_task(up.send_two())
        await _until(lambda: a.pending and b.pending, "both in flight")
        b.settle()  # B's PUBACK first: A is still owed, nothing may leave the spool
        for _ in range(20):
            await asyncio.sleep(0)
        assert sp.depth() == 10 and up.sent == 0
        a.settle()
        assert await asyncio.wait_for(t, 2) == 10

    asyncio.run(body())
    assert sorted(s for _n, seqs in broker for s in seqs) == list(range(10))
    assert sp.depth() == 0


@pytest.mark.parametrize("order", ["a_first", "b_first"])
def test_first_fails_second_delivered_both_resent(tmp_path, order):
    up, sp, a, b, broker = make_two(tmp_path)
    append_records(sp, 0, 10)

    async def body():
        t = asyncio.create_task(up.send_two())
        await _until(lambda: a.pending and b.pending, "both in flight")
        if order == "b_first":
            b.settle()
            a.settle(ModemError("CMQTT", 11, b"AT+CMQTTPUB=0,1,60"), delivered=False)
        else:
            a.settle(ModemError("CMQTT", 11, b"AT+CMQTTPUB=0,1,60"), delivered=False)
            await _until(lambda: not a.pending, "a settled")
            assert not a.pending  # nothing new goes out after a failure
            b.settle()
        with pytest.raises(ModemError):
            await asyncio.wait_for(t, 2)
        assert sp.depth() == 10  # B reached the broker but A did not: neither acked
        t = asyncio.create_task(up.send_two())  # next round: both again
        await _until(lambda: a.pending and b.pending, "both in flight again")
        a.settle()
        b.settle()
        assert await asyncio.wait_for(t, 2) == 10

    asyncio.run(body())
    seqs = [s for _n, ss in broker for s in ss]
    assert sorted(set(seqs)) == list(range(10))  # nothing lost
    assert len(seqs) - 10 <= 10  # duplicates at most the two batches
    assert sp.depth() == 0


def test_second_fails_first_acked(tmp_path):
    up, sp, a, b, broker = make_two(tmp_path)
    append_records(sp, 0, 10)

    async def body():
        t = asyncio.create_task(up.send_two())
        await _until(lambda: a.pending and b.pending, "both in flight")
        b.settle(ModemError("CMQTT", 11, b"AT+CMQTTPUB=1,1,60"), delivered=False)
        a.settle()
        with pytest.raises(ModemError):
            await asyncio.wait_for(t, 2)
        assert sp.depth() == 5 and up.sent == 5

    asyncio.run(body())


def test_power_cut_with_two_in_flight_loses_nothing(tmp_path):
    up, sp, a, b, broker = make_two(tmp_path)
    append_records(sp, 0, 10)
    sp.flush()

    async def body():
        t = asyncio.create_task(up.send_two())
        await _until(lambda: a.pending and b.pending, "both in flight")
        b.settle()  # delivered, but the board dies before A's result
        for _ in range(5):
            await asyncio.sleep(0)
        t.cancel()

    asyncio.run(body())
    sp2 = from_config(str(tmp_path / "spool"), up.cfg)  # reboot: the spool from flash
    assert sp2.depth() == 10
    up2, _sp, a2, b2, broker2 = make_two(tmp_path / "x")
    up2.spool = sp2
    up2.bind_second(b2)

    async def again():
        t = asyncio.create_task(up2.send_two())
        await _until(lambda: a2.pending and b2.pending, "both in flight after reboot")
        a2.settle()
        b2.settle()
        assert await asyncio.wait_for(t, 2) == 10

    asyncio.run(again())
    assert sorted(s for _n, ss in broker2 for s in ss) == list(range(10))
    assert sp2.depth() == 0


def test_window_one_without_second_session_or_key(tmp_path):
    up, sp, a, b, broker = make_two(tmp_path, inflight=1)
    assert up.window() == 1
    up2, _sp, _a, b2, _br = make_two(tmp_path / "y")
    b2.up.clear()
    assert up2.window() == 1  # the second session is down: one in flight


def test_batches_read_into_the_payload_buffer_lose_and_corrupt_nothing(tmp_path):
    """The app's spool lends the batch to the uplink (issue 11): its own buffer holds one
    record and each batch is read into the end of the payload buffer it is encoded into.
    OBD-heavy records in a small buffer (the encoder runs into the unread records), an
    unreadable record among them and failed publishes: every good record arrives once
    acknowledged, in order, intact; the bad one is counted."""
    c = Config(None, {"batch_max_records": 8, "batch_max_bytes": 1024})
    sp = from_config(str(tmp_path / "spool"), c, lent=True)
    assert len(sp._batch.buf) == 128  # one packed record (the scan at open)
    up = Uplink(sp, c, TOPIC, "dev1", sleep=_no_sleep)
    client = FakeClient(["ok", "linkdown", "ok", "modem", "ok"] + ["ok"] * 40)
    up.bind(client, TOPIC, "dev1")
    append_records(sp, 0, 7, with_obd=16)
    sp.append(b"\x07garbage-not-a-record")
    append_records(sp, 7, 9, with_obd=3)
    append_records(sp, 16, 20)
    asyncio.run(drain(up))
    assert sorted(set(client.telemetry_seqs())) == list(range(36))
    objs = [o for _t, p, _q, _r in client.broker for o in json.loads(p)]
    assert sum(1 for o in objs if o.get("obd")) >= 16
    for o in objs:  # the values the records were made with (append_records: value = seq)
        assert set((o.get("obd") or {}).values()) <= {o["seq"]} and o["ts"] == o["seq"]
    assert up.bad_records == 1 and sp.depth() == 0
    assert all(len(p) <= 1024 for _t, p, _q, _r in client.broker)


@pytest.mark.parametrize("cap", [146, 152, 158, 200, 255, 256, 300])
def test_a_small_modem_cap_with_a_long_device_id_loses_and_corrupts_nothing(tmp_path, cap):
    """A payload buffer of 128-255 bytes (a small modem cap, SIM800's AT+SMPUB within
    tx_max) and a 32-character device id: the Freematics "DEVID#" is written before the
    first record is read, so a batch read into the buffer's end (room 128) had its first
    record's bytes overwritten by it ("not a packed v1 record": the uplink stuck forever,
    or a seq silently wrong).  Every record arrives once, intact, in order."""
    c = Config(None, {"batch_max_records": 8, "payload_format": "freematics"})
    sp = from_config(str(tmp_path / "spool"), c, lent=True)
    dev = "d" * 32
    up = Uplink(sp, c, TOPIC, dev, sleep=_no_sleep)
    client = FakeClient([])
    up.bind(client, TOPIC, dev)
    up.payload_cap = cap
    up.resize()
    append_records(sp, 0, 12, with_obd=1)  # 16 bytes packed: 8 fill the 128-byte share
    asyncio.run(drain(up, 40))
    seqs = []
    for _t, p, _q, _r in client.broker:
        p = bytes(p)
        assert len(p) <= cap and p.startswith(dev.encode() + b"#")
        for pair in p[len(dev) + 1 : p.rindex(b"*")].split(b","):
            pid, val = pair.split(b":")
            if pid == b"0":
                seqs.append(int(val))
            else:  # the one OBD PID (0x100 + 1), its value the seq (append_records)
                assert pid == b"101" and int(val) == seqs[-1]
    assert seqs == list(range(12)) and up.failures == 0 and sp.depth() == 0


def test_the_envelope_never_overwrites_records_not_read_yet():
    """records.encode_batch refuses a ``tail`` that leaves no room in front for the
    message's start ('[' or "DEVID#") instead of unpacking overwritten bytes."""
    from tlog.records import encode_batch

    out = bytearray(64)
    with pytest.raises(ValueError, match="start would overwrite"):
        encode_batch([memoryview(out)[24:]], "freematics", b"d" * 30, out, None, 40)
    with pytest.raises(ValueError, match="start would overwrite"):
        encode_batch([memoryview(out)], "json", b"d", out, None, 64)


def test_a_payload_buffer_let_go_is_not_kept_by_the_spools_batch(tmp_path):
    """A batch read into a payload buffer (issue 11) must not keep that buffer on the heap
    once the uplink lets it go: resize() drops the old buffer before making the new one
    (two at once is what a 32-bit heap may not have), close_lane() frees the second
    session's, and a peek that found nothing keeps no view of the buffer."""
    c = Config(None, {"batch_max_records": 8, "batch_max_bytes": 2048})
    sp = from_config(str(tmp_path / "spool"), c, lent=True)
    up = Uplink(sp, c, TOPIC, "dev1", sleep=_no_sleep)
    client = FakeClient([])
    up.bind(client, TOPIC, "dev1")
    append_records(sp, 0, 20)
    assert asyncio.run(up.send_once()) == 8  # read into _out, encoded, acked
    old = up._out
    assert sp._batch.mv.obj is old
    up.payload_cap = 1024
    up.resize()
    assert len(up._out) == 1024 and sp._batch.mv.obj is not old
    up.bind_second(FakeClient([]))
    lane = up._out2
    b = up._peek(lane)  # (what send_two does for the second session's batch)
    assert len(b) == 8 and sp._batch.mv.obj is lane
    asyncio.run(up.close_lane())
    assert up._out2 is None and sp._batch.mv.obj is not lane
    asyncio.run(drain(up))
    assert client.telemetry_seqs() == list(range(20))
    b = up._peek(up._out)  # nothing waits
    assert len(b) == 0 and sp._batch.mv.obj is not up._out


def test_a_record_cut_short_is_skipped_not_a_stuck_drain(tmp_path):
    """A record on flash whose flags announce parts it does not hold (a battery reading,
    OBD PIDs): a ValueError, counted and skipped like any unreadable record; it was an
    IndexError that stopped the drain at it on every try (nothing after it ever sent)."""
    c = Config(None, {"batch_max_records": 8})
    sp = from_config(str(tmp_path / "spool"), c, lent=True)
    up = Uplink(sp, c, TOPIC, "dev1", sleep=_no_sleep)
    client = FakeClient([])
    up.bind(client, TOPIC, "dev1")
    append_records(sp, 0, 3)
    sp.append(b"\x01\x08" + bytes(8))  # v1, a battery reading announced, none there
    append_records(sp, 3, 3)
    sp.append(b"\x01\x80" + bytes(8) + b"\x02\x0c\x00\x00")  # 2 OBD PIDs, one cut
    append_records(sp, 6, 3)
    asyncio.run(drain(up, 40))
    assert client.telemetry_seqs() == list(range(9))
    assert up.bad_records == 2 and up.failures == 0 and sp.depth() == 0
