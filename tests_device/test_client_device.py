"""MQTTClient and the recovery ladder on the MicroPython unix port: the same behaviour as the
host tests (first connect, reconnect on CONNLOST with resubscription, publish waiting for
the link, inbound messages through the iterator), with a small fake driver and modem."""

import asyncio
from atmq import recovery as rc
from atmq.client import MQTTClient
from atmq.errors import ModemError
from atmq.events import EV_CONNLOST, EV_MSG, EventQueue
from atmq.inbox import Inbox


class Clock:
    def __init__(self):
        self.t = 1000

    def __call__(self):
        return self.t

    async def sleep(self, ms):
        self.t += ms
        await asyncio.sleep_ms(0)


class Driver:
    def __init__(self, q, inbox):
        self.q = q
        self.inbox = inbox
        self.connected = False
        self.calls = []
        self.broker = []
        self.fail_connect = 0

    async def _do(self, *c):
        self.calls.append(c)
        await asyncio.sleep_ms(0)

    async def start(self):
        await self._do("start")

    async def configure_tls(self, tls):
        await self._do("tls")

    async def connect(self, host, port, client_id, keepalive_s=60, clean=True, user=None,
                      password=None, will=None, tls=False, timeout_ms=30000):
        await self._do("connect", clean)
        if self.fail_connect:
            self.fail_connect -= 1
            raise ModemError("CMQTT", 3, b"AT+CMQTTCONNECT")
        self.connected = True

    async def disconnect(self):
        await self._do("disconnect")
        self.connected = False

    async def stop(self):
        await self._do("stop")
        self.connected = False

    async def publish(self, topic, payload, qos=1, retain=False):
        await self._do("publish")
        if not self.connected:
            raise ModemError("CMQTT", 11, b"AT+CMQTTPUB")
        self.broker.append((bytes(topic), bytes(payload)))

    async def subscribe(self, topic, qos=1):
        await self._do("subscribe", bytes(topic))

    async def unsubscribe(self, topic):
        await self._do("unsubscribe", bytes(topic))

    async def is_connected(self):
        return self.connected

    def deliver(self, topic, payload):
        ib = self.inbox
        s = ib.start(len(topic), len(payload))
        ib.topic_buf(s)[0:len(topic)] = topic
        ib.payload_buf(s)[0:len(payload)] = payload
        ib.topic_fill = len(topic)
        ib.payload_fill = len(payload)
        self.q.put(EV_MSG, ib.commit(), 0)


class Modem:
    def __init__(self):
        self.facts = {"imei": "1"}
        self.board = None
        self.pins = None
        self.inited = True
        self.data_open = True

    async def probe(self, tries=3):
        return True


async def _until(cond, what):
    for _ in range(3000):
        if cond():
            return
        await asyncio.sleep_ms(0)
    raise AssertionError("never happened: " + what)


async def test_reconnect_resubscribe_publish_and_messages():
    clock = Clock()
    q = EventQueue(16)
    inbox = Inbox(slots=2, topic_max=32, payload_max=64)
    d = Driver(q, inbox)
    steps = []
    c = MQTTClient(Modem(), d, q, inbox, {"host": "h", "client_id": "c",
                                          "subscriptions": ["cmd/1"]},
                   on_recovery=lambda s, r, x: steps.append((s, r)),
                   sleep=clock.sleep, clock=clock)
    await c.connect()
    if [x[0] for x in d.calls] != ["start", "tls", "connect", "subscribe"]:
        raise AssertionError(repr(d.calls))
    sup = asyncio.create_task(c.run())
    d.connected = False
    d.fail_connect = 1
    q.put(EV_CONNLOST, 0, 1)
    await _until(lambda: not c.up.is_set(), "down")
    await c.publish("t/1", b"rec")  # waits for the link, then goes out
    if d.broker != [(b"t/1", b"rec")] or c.reconnects != 1 or c.published != 1:
        raise AssertionError("publish after reconnect: %r %d" % (d.broker, c.reconnects))
    if d.calls.count(("subscribe", b"cmd/1")) != 2:
        raise AssertionError("not resubscribed: %r" % d.calls)
    if (rc.STEP_FAIL, rc.RUNG_SESSION) not in steps or steps[-1] != (rc.STEP_OK, 1):
        raise AssertionError(repr(steps))
    it = c.messages()
    d.deliver(b"cmd/1", b"go")
    msg = await asyncio.wait_for(it.__anext__(), 2)
    if msg != (b"cmd/1", b"go"):
        raise AssertionError(repr(msg))
    await _until(lambda: c.rx == 1, "rx counted by the supervisor")
    sup.cancel()


def test_ladder_backoff_bounds_and_escalation():
    lad = rc.Ladder(base_ms=1000, max_ms=8000, seed=4)
    lad.begin(rc.RUNG_PROBE, 0)
    seen = []
    for k in range(1, 12):
        moved = lad.failed(0)
        d = lad.delay_ms()
        cap = min(8000, 1000 << (k - 1))
        if not cap // 2 <= d <= cap:
            raise AssertionError("delay %d outside [%d, %d]" % (d, cap // 2, cap))
        seen.append((moved, lad.rung))
    # (1, 3, 2, 2, 1): probe 1 failure, session 3, data 2, reset 2, then power for good
    rungs = [r for _, r in seen]
    if rungs != [1, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4]:
        raise AssertionError(repr(rungs))
