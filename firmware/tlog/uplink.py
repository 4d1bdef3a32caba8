"""Uplink: drains the spool to the broker in chronological batches; a record leaves the
spool only after the modem confirmed its publish.

Owns the drain loop.  ``peek_batch`` (oldest first, not removed) -> encode
(JSON array or Freematics line, ``records.encode_batch``, which stops before a
record that would not fit the payload buffer) -> ``client.publish`` at
``mqtt_qos`` (1: returns after the broker's PUBACK) -> ``ack`` exactly the
records that went out.  A publish that raises leaves the whole batch in the
spool; it is sent again after a backoff, so delivery is at-least-once and a
duplicate is at most one batch per failure (the receiver de-duplicates on
dev+seq).  While records are waiting, batches go back to back: a drain after
an outage keeps the UART busy instead of sending one record per interval (the
anchor drains newest-first and frees a record before sending it).

Two batches in flight (``uplink_inflight`` 2, issue 14): with a second MQTT session
bound (``bind_second``: another client index, AT+CMQTTACCQ 0-1, 003 s.16.2.3) the
next batch's TOPIC/PAYLOAD/PUB goes over the UART while the previous batch waits for
its PUBACK.  Not on one client: a CMQTT client answers 14 "client is busy" to a
command sent while its own operation's result is pending (seed 001) and
``+CMQTTPUB: <idx>,<err>`` carries no packet id to match results by.  Batch B is
peeked after batch A (``peek_batch(after=A)``) and results are taken in the order
the batches went out: A is acknowledged first; B only after A.  If A fails, B is
not acknowledged even if it was delivered: both go again (duplicates at most the two
batches); records reach the broker at most one batch out of order (RECORDS.md).  While
the second session connects the drain goes on with one batch and hands the next one to
it as soon as it is up.  Each publish crosses the UART whole (atmq.cmqtt's lock shared
by both client indexes, released at PUB's OK), so one batch's round trip overlaps the
next one's bytes.

RAM of the second session (a 96 KB heap without PSRAM): once a batch is encoded only
where it ends in the spool is kept (``_Mark``, 3 numbers), so both batches are read
into the spool's one ``Batch``; the second session's own cost is its payload buffer
(the size of the first one: ``batch_max_bytes`` capped by the payload limit of the
modem seen) and its driver.  It is made (``lane_factory``) only while the main
session is up and a backlog of at least two batches waits, and only when the heap
has room for it; it is closed (DISC/REL of its client index) when the spool has been
empty for ``_LANE_IDLE_MS`` or the free heap falls below ``_LANE_HEAP_LOW``: one in
flight again, counted in ``lane_degraded`` (never a MemoryError that stops the
uplink).
"""

import asyncio
import gc

from atmq import log as alog
from atmq.compat import TYPE_CHECKING, const, sleep_ms, ticks_add, ticks_diff, ticks_ms, \
    wait_for_ms

from .records import Record, encode_batch

if TYPE_CHECKING:  # never true at run time
    from typing import Any  # noqa: F401

# AT+CMQTTPAYLOAD <req_length> by the modem's identity (model, revision)
_PAYLOAD_MAX_A76XX = 10240  # A76xx MQTT(S) note 2.1.11: 1..10240
_PAYLOAD_MAX_SIM76XX = 4096  # manual 003 s.16.2.11: "The SIM76XX is: (1-4096)"


def cmqtt_payload_max(model, revision=None):
    """The largest publish payload a CMQTT modem takes, from what it says it is (ATI model,
    AT+CGMR revision): 10240 on the A76xx, 4096 on the SIM7600/SIM7500/SIM767x and on
    anything not recognised (the smaller limit is the safe one)."""
    for text in (model, revision):
        t = (text or "").upper()
        if t.find("A76") >= 0 and t.find("SIM76") < 0:
            return _PAYLOAD_MAX_A76XX
    return _PAYLOAD_MAX_SIM76XX


_BACKOFF_MIN_MS = 1000
_BACKOFF_MAX_MS = 60000
_IDLE_WAIT_MS = 5000  # wake at least this often while idle (watchdog beat)
# The second session (see the module's docstring): made when this much heap stays free
# beyond its payload buffer, closed below _LANE_HEAP_LOW or after the spool was empty
# this long, not made again for _LANE_RETRY_MS after a close or a failed allocation.
# ROOM: the lane's objects (~1.6 KB) + a publish's and a recovery's peak above the idle
# heap (2-5 KB, README memory section) + a margin, so it opens at 96K (14.9 KB free after a
# drop, frozen 32-bit build) and not at 88K (6.6 KB), where it would stall the uplink.
_LANE_HEAP_ROOM = const(8192)
_LANE_HEAP_LOW = const(6144)
_LANE_IDLE_MS = const(30000)
_LANE_RETRY_MS = const(30000)
_LANE_POLL_MS = const(20)  # one batch in flight, the second session not up yet: look again
_LANE_BUF_MIN = const(1024)  # the least payload buffer made when the heap has no bigger block
# A batch is read into the end of the payload buffer it is encoded into (one block, not a
# payload buffer and a packed batch: issue 11).  How much of it: what the last batch's
# records took packed for the buffer's size encoded, plus one record (records read that
# do not fit are the cost: the encoder stops at the first unread byte); at most a third
# (a record's JSON or Freematics bound is over 3 times its packed size: that holds every
# record a batch can carry; also the first batch's share), never less than one packed record
# (records.PACKED_MAX <= 128, what spool.from_config allows).  A buffer under _INTO_MIN (a
# small modem cap) reads into the spool's own one-record buffer instead: the message's
# envelope ('[', or "DEVID#" of up to 33 bytes) is written before the first record is read,
# so the share must leave at least that much in front (from 256 bytes it leaves >= 128;
# below, the spool's 128 bytes hold as much as the share would).
_PACKED_ROOM = const(128)
_INTO_MIN = const(256)


def _buffer_at_most(n):
    """A payload buffer of ``n`` bytes, or the largest half of it a heap in pieces still
    has (not below _LANE_BUF_MIN: then the MemoryError is raised)."""
    while True:
        try:
            return bytearray(n)
        except MemoryError:
            if n // 2 < _LANE_BUF_MIN:
                raise
            n //= 2


def peek_room(n, packed=0, encoded=0):
    """How many bytes of an ``n``-byte payload buffer a batch is read into, after one whose
    ``packed`` bytes of records were ``encoded`` bytes (0: none yet)."""
    most = n // 3
    room = n * packed // encoded + _PACKED_ROOM if encoded > 0 else most
    if room > most:
        room = most
    return room if room > _PACKED_ROOM else _PACKED_ROOM


def _tail(batch, out):
    """The packed batch's bytes at the end of ``out`` (``Uplink._peek``), 0: elsewhere."""
    return batch.nbytes if len(out) >= _INTO_MIN else 0


def _heap_free():
    f = getattr(gc, "mem_free", None)  # MicroPython; CPython has no heap limit to watch
    return -1 if f is None else f()


class _Mark:
    """Where an in-flight batch ends in the spool: what ``Spool.ack`` and
    ``Spool.peek_batch(after=)`` read of a ``Batch`` (its last record's segment, offset
    and index, at position 0, ``count`` 1), so the batch's payloads can be overwritten by
    the next ``peek_batch`` once they are encoded."""

    def __init__(self):
        self.count = 0
        self.end_segs = [0]
        self.end_offs = [0]
        self.end_idxs = [0]

    def take(self, batch, k):
        i = k - 1
        self.end_segs[0] = batch.end_segs[i]
        self.end_offs[0] = batch.end_offs[i]
        self.end_idxs[0] = batch.end_idxs[i]
        self.count = 1
        return self


class Uplink:
    def __init__(self, spool, cfg, topic, dev, wd=None, sleep=sleep_ms):
        self.spool = spool
        self.cfg = cfg
        self.topic = topic
        self.dev = dev.encode() if isinstance(dev, str) else dev
        self.wd = wd
        self._sleep = sleep
        self.client = None  # set once the MQTT client exists
        self.client2 = None  # type: Any  # a second session (other client index)
        self._out2 = None  # type: Any  # its payload buffer
        self._marks = (_Mark(), _Mark())  # where each session's batch in flight ends
        self.lane_factory = None  # type: Any  # makes the second session (None: none)
        self.heap_free = _heap_free  # -1: unknown (no limit)
        self._lane_task = None
        self._lane_next = None  # ticks_ms before which no second session is made again
        self._lane_idle = None  # ticks_ms since when the spool is empty, with one open
        self.lane_opens = 0  # second sessions made
        self.lane_degraded = 0  # not made, or closed, for want of heap
        self.lane_published = 0  # batches the second session delivered
        self.lane_failures = 0  # its publishes that failed
        self.lane_connects = 0  # its connects, of the sessions closed since
        self.wake = asyncio.Event()  # set by the sampler (new record) and by ``flush``
        self.rec = Record()  # scratch for decoding (shared with tlog.acquire's sampler)
        self.payload_cap = 0  # the modem's own payload limit (0: none beyond the config)
        self.forced_format = ""  # a payload format the modem needs whatever the config says
        self._out = bytearray(cfg.get("batch_max_bytes"))
        self._limit = 0  # max records for the next peek (0: configured) after a bad record
        self._ratio = [0, 0, ""]  # the last batch: packed bytes, encoded bytes, format
        self._flying = 0  # batches in flight now
        self._resize_due = False  # resize() was deferred or got less than it wanted
        # counters (health)
        self.batches = 0
        self.sent = 0  # records acknowledged
        self.failures = 0  # publishes that raised (batch kept)
        self.bad_records = 0  # records that could not be decoded: skipped and counted
        self.last_error = None
        self.backoff_ms = 0

    def bind(self, client, topic, dev):
        """The MQTT client (None until it exists), the telemetry topic and the device id."""
        self.client = client
        self.topic = topic
        self.dev = dev.encode() if isinstance(dev, str) else dev

    def bind_second(self, client):
        """A second MQTT session (None: none) publishing to the same topic; its payload
        buffer (the size of the first one) is allocated here."""
        self.client2 = client
        if client is None:
            self._out2 = None
            self.spool.unlend()
        elif self._out2 is None:
            self._out2 = bytearray(len(self._out))

    def _backlog(self):
        """At least two batches wait (the second session has something to carry)."""
        return self.spool.depth() >= 2 * self.cfg.get("batch_max_records")

    async def _lane_check(self):
        """Make the second session when it is wanted and fits; close it when it is idle or
        the heap runs low (the drain loop calls this between batches, never mid-flight)."""
        lane = self.client2
        if self.lane_factory is None:
            return
        now = ticks_ms()
        if lane is not None:
            free = self._heap_low()
            if free >= 0:
                self.lane_degraded += 1
                alog.warn("uplink", "heap low (%d B free): second session closed", free)
                await self.close_lane()
                return
            if self.cfg.get("uplink_inflight") < 2 or self._out2 is None:
                # (no second buffer: resize() could not remake it; made again with the lane)
                await self.close_lane()
                return
            if self._backlog():
                self._lane_idle = None
            elif self._lane_idle is None:
                self._lane_idle = now
            elif ticks_diff(now, self._lane_idle) >= _LANE_IDLE_MS:
                alog.info("uplink", "no backlog: second session closed")
                await self.close_lane()
            return
        nxt = self._lane_next
        if nxt is not None:
            if ticks_diff(now, nxt) < 0:
                return
            self._lane_next = None  # (cleared: a stale one would read as future on wrap)
        c = self.client
        if self.cfg.get("uplink_inflight") < 2 or c is None or not c.isconnected() or \
                not self._backlog():
            return
        gc.collect()
        free = self.heap_free()
        if 0 <= free < len(self._out) + _LANE_HEAP_ROOM:
            self.lane_degraded += 1
            self._lane_next = ticks_add(now, _LANE_RETRY_MS)
            alog.warn("uplink", "heap low (%d B free): one batch in flight", free)
            return
        self._lane_next = ticks_add(now, _LANE_RETRY_MS)  # a failed one: not again soon
        try:
            # first (the lane's driver peers last); a heap in pieces may have no block the
            # size of the first buffer: a smaller one still overlaps round trips
            self._out2 = self._second_buffer()
            lane = self.lane_factory()
        except Exception as e:  # noqa: BLE001 - MemoryError above all: one in flight
            self._out2 = None
            if isinstance(e, MemoryError):
                self.lane_degraded += 1
                e = "no heap"  # (not a crash: the log says what happened, not its type)
            else:
                self.last_error = e
            alog.warn("uplink", "second session not made: %s; one batch in flight", e)
            gc.collect()
            return
        self.client2 = lane
        self._lane_task = asyncio.create_task(lane.run())
        self.lane_opens += 1
        self._lane_idle = None
        alog.info("uplink", "backlog of %d: second session (heap free %d B, buffer %d B)",
                  self.spool.depth(), free, len(self._out2))

    def _heap_low(self):
        """The free heap when it is below _LANE_HEAP_LOW after a collection, else -1."""
        free = self.heap_free()
        if 0 <= free < _LANE_HEAP_LOW:
            gc.collect()  # (only then: a collection is milliseconds of no UART reads)
            free = self.heap_free()
        return free if 0 <= free < _LANE_HEAP_LOW else -1

    def _second_buffer(self):
        return _buffer_at_most(len(self._out))

    async def close_lane(self):
        """Close the second session (DISC/REL of its client index) and free its buffer."""
        lane = self.client2
        self.client2 = self._out2 = None
        self.spool.unlend()  # the last batch may have been read into that buffer
        self._lane_idle = None
        self._lane_next = ticks_add(ticks_ms(), _LANE_RETRY_MS)  # a backlog may come back
        t = self._lane_task
        self._lane_task = None
        if lane is not None:
            self.lane_connects += getattr(lane, "connects", 0)
            close = getattr(lane, "close", None)
            if close is not None:
                await close(t)
            elif t is not None:
                t.cancel()
        gc.collect()

    def drop_lane(self):
        """Cancel the second session's task (the app stops); ``close_lane`` then releases
        its client index."""
        t = self._lane_task
        self._lane_task = None
        if t is not None:
            t.cancel()

    def second_stats(self):
        """/health's ``uplink2``: batches in flight now, the second session's opens and
        closes for want of heap, and its own counters while it exists (publishes,
        failures, reconnects)."""
        c2 = self.client2
        n = self.lane_connects + getattr(c2, "connects", 0)
        b2 = self._out2
        return {"inflight": self._flying, "up": c2 is not None and c2.isconnected(),
                "buffer": 0 if b2 is None else len(b2),
                "opens": self.lane_opens, "degraded": self.lane_degraded,
                "published": self.lane_published, "failures": self.lane_failures,
                "reconnects": n - self.lane_opens if n > self.lane_opens else 0}

    def window(self):
        """Batches that may be in flight now: ``uplink_inflight`` when both sessions are
        up, else 1."""
        c2 = self.client2
        if c2 is None or self._out2 is None or not c2.isconnected() or \
                self.cfg.get("uplink_inflight") < 2:
            return 1
        c = self.client
        return 2 if c is not None and c.isconnected() else 1

    def _beat(self):
        if self.wd is not None:
            self.wd.beat("uplink")

    def resize(self):
        """``batch_max_bytes`` changed (live key) or the modem's cap became known: a new
        payload buffer of the smaller of the two."""
        n = self.cfg.get("batch_max_bytes")
        if self.payload_cap and self.payload_cap < n:
            n = self.payload_cap
        if self._flying:
            # the batches in flight hold the old buffers: a new pair now would double the
            # RAM; the next drain makes it (``_resize_due``)
            self._resize_due = True
            return
        self._resize_due = False
        if n != len(self._out):
            had = self._out2 is not None
            self.spool.unlend()  # (its batch view would keep an old buffer on the heap)
            self._out2 = None  # the old ones go before the new ones are made
            self._out = bytearray(0)
            self._out = _buffer_at_most(n)
            # a smaller one (a heap in pieces) still sends, in smaller batches; the full
            # size is tried again at the next drain
            self._resize_due = len(self._out) < n
            if had:
                try:
                    self._out2 = self._second_buffer()
                except MemoryError:  # one in flight until the session is made again
                    self.lane_degraded += 1

    def fmt(self):
        return self.forced_format or self.cfg.get("payload_format")

    def _peek(self, out, after=None):
        """The next batch (after the one ``after`` marks), read into the end of ``out``."""
        n = len(out)
        lim = self._limit or self.cfg.get("batch_max_records")
        if n < _INTO_MIN:
            return self.spool.peek_batch(lim, 0, after)
        fmt = self.fmt()
        r = self._ratio
        room = peek_room(n, r[0], r[1]) if r[2] == fmt else peek_room(n)
        return self.spool.peek_batch(lim, room, after, memoryview(out))

    def _encode(self, b, out):
        """``encode_batch`` of ``b`` into ``out``; what it took is kept for the next read."""
        fmt = self.fmt()
        n, k = encode_batch(b, fmt, self.dev, out, self.rec, _tail(b, out))
        r = self._ratio
        r[0] = b.offs[k]
        r[1] = n
        r[2] = fmt
        return n, k

    def _first_bad(self, out):
        """After ``encode_batch`` raised ValueError: the index of the first record that
        cannot be decoded, -1 if none.  The batch is read again (the same one: nothing
        awaited since): encoding wrote over the records before the failing one."""
        batch = self._peek(out)
        for i in range(len(batch)):
            try:
                self.rec.unpack(batch.payload(i))
            except ValueError:
                return i
        return -1

    async def send_once(self):
        """Publish one batch if records wait: the number of records acknowledged.

        0 when nothing waits; raises what ``publish`` raised (the batch stays).
        """
        c = self.client
        if c is None:
            return 0
        if self._resize_due:
            self.resize()
        b = self._peek(self._out)
        if len(b) == 0:
            self._limit = 0
            return 0
        try:
            n, k = self._encode(b, self._out)
        except ValueError as e:
            i = self._first_bad(self._out)  # (read with the same _limit)
            self._limit = 0
            if i < 0:
                raise  # not a bad record: the buffer is too small for one record
            self.last_error = e
            if i == 0:  # unreadable on flash: it can never be sent; count and skip it
                self.bad_records += self.spool.ack(b, 1)
            else:
                self._limit = i  # send the good ones before it first
            return 0
        self._limit = 0
        self._flying = 1
        try:
            await c.publish(self.topic, memoryview(self._out)[:n], self.cfg.get("mqtt_qos"))
        finally:
            self._flying = 0
        done = self.spool.ack(b, k)
        self.batches += 1
        self.sent += done
        return k

    async def send_two(self):
        """Drain with two batches in flight, one per session, until nothing waits or a
        publish fails: the number of records acknowledged.  Results are taken in the
        order the batches went out; after a failure nothing later is acknowledged, the
        batches still in flight are awaited, then the first error is raised."""
        if self._resize_due:
            self.resize()
        lanes = (self.client, self.client2)
        outs = (self._out, self._out2)
        flight = []  # [lane, _Mark, k, task], oldest first
        acked = 0
        err = None
        halt = None  # reading the next batch failed: the ones in flight are still acked
        low = False  # the free heap fell below _LANE_HEAP_LOW
        try:
            while True:
                self._beat()
                while err is None and halt is None and not low and \
                        len(flight) < self.window():
                    lane = 1 if flight and flight[0][0] == 0 else 0
                    if outs[lane] is None:  # the second buffer could not be remade
                        break
                    prev = flight[-1][1] if flight else None
                    try:
                        # into the spool's one Batch (read into the end of this lane's
                        # buffer): the one in flight is encoded already and only its end
                        # is kept (its _Mark)
                        b = self._peek(outs[lane], prev)
                        if len(b) == 0:
                            break
                        try:
                            n, k = self._encode(b, outs[lane])
                        except ValueError as e:
                            if flight:  # the single path deals with it once these settled
                                break
                            if not await self._skip_bad(b, outs[lane], e):
                                raise
                            continue
                        self._limit = 0
                        # the next batch starts after the records that went out
                        mark = self._marks[lane].take(b, k)
                        task = asyncio.create_task(self._publish(lanes[lane], outs[lane], n))
                    except Exception as e:  # noqa: BLE001 - MemoryError, a flash read...
                        if not flight:
                            raise
                        # never cancel a publish mid-command (the modem would be left at
                        # its ">" prompt): the ones in flight finish, then this is raised
                        halt = e
                        break
                    flight.append([lane, mark, k, task])
                    self._flying = len(flight)
                if not flight:
                    break
                task = flight[0][3]
                if len(flight) == 1 and self.client2 is not None and err is None and \
                        halt is None and not low \
                        and self.window() == 1:
                    # the second session is being made (or reconnects): once it is up, the
                    # next batch goes on it at once, not after this one's round trip
                    while not task.done() and self.window() == 1:
                        await sleep_ms(_LANE_POLL_MS)
                    if not task.done():
                        continue  # the window grew: the next batch on the second session
                lane, b, k, task = flight.pop(0)
                e = await task
                self._flying = len(flight)
                if lane:
                    if e is None:
                        self.lane_published += 1
                    else:
                        self.lane_failures += 1
                if e is not None:  # LinkDown, ModemError...: this batch and later ones stay
                    if err is None:
                        err = e
                    continue
                if err is None:
                    try:
                        done = self.spool.ack(b, 1)  # the _Mark: its end, as one position
                    except Exception as e:  # noqa: BLE001 - a flash write: sent again later
                        err = e
                        continue
                    self.batches += 1
                    self.sent += done
                    acked += k
                    if self._heap_low() >= 0:
                        low = True  # no new batch: run() closes the second session
        finally:
            self._flying = 0
            for f in flight:  # cancelled: the publishes go with us
                f[3].cancel()
        if err is not None:
            raise err
        if halt is not None:
            raise halt
        return acked

    async def _publish(self, client, out, n):
        # The error is returned, not raised: a task that ends with an exception while nobody
        # awaits it yet (the second batch, while the first one is awaited) would be
        # reported by MicroPython's loop as "Task exception wasn't retrieved".
        try:
            await client.publish(self.topic, memoryview(out)[:n], self.cfg.get("mqtt_qos"))
        except Exception as e:  # noqa: BLE001 - handed to send_two, which raises it
            return e
        return None

    async def _skip_bad(self, b, out, e):
        """A record that cannot be decoded: skipped (the first) or sent after the good ones
        before it; False when no record is bad.  (``b``: the spool's one Batch, read again
        by ``_first_bad``.)"""
        i = self._first_bad(out)
        if i < 0:
            return False
        self.last_error = e
        if i == 0:
            self.bad_records += self.spool.ack(b, 1)
        else:
            self._limit = i
        return True

    async def run(self):
        """Forever: wait for the link and for records, publish, ack, back off on failure."""
        while True:
            self._beat()
            try:
                await self._lane_check()
            except Exception as e:  # noqa: BLE001 - the second session only; one in flight
                self.last_error = e
            c = self.client
            if c is None or not c.isconnected():
                if c is None:
                    await self._sleep(1000)
                else:
                    try:
                        await wait_for_ms(c.up.wait(), _IDLE_WAIT_MS)
                    except asyncio.TimeoutError:
                        pass
                continue
            try:
                # send_two also while the second session connects: it joins mid-drain
                two = self.window() > 1 or self.client2 is not None
                k = await (self.send_two() if two else self.send_once())
            except Exception as e:  # LinkDown, ModemError, ...: the batch stays in the spool
                self.failures += 1
                self.last_error = e
                b = self.backoff_ms
                b = _BACKOFF_MIN_MS if b == 0 else min(b * 2, _BACKOFF_MAX_MS)
                self.backoff_ms = b
                self._beat()
                await self._sleep(b)
                continue
            self.backoff_ms = 0
            if k:
                continue  # more may wait: the next batch right away
            if self.spool.depth():
                await self._sleep(100)  # a skipped bad record, or a short batch: go on
                continue
            self.wake.clear()
            try:
                await wait_for_ms(self.wake.wait(), _IDLE_WAIT_MS)
            except asyncio.TimeoutError:
                pass
