"""Fakes for the telelogger app tests: a fake clock, an MQTT client that fails on demand,
records made and stored the way the sampler does it."""

import asyncio
import json

from atmq.client import LinkDown
from atmq.errors import ModemError
from tlog.records import PACKED_MAX, Record, TS_UPTIME, pack_into


class Clock:
    def __init__(self, t=1000):
        self.t = t

    def __call__(self):
        return self.t

    def advance(self, ms):
        self.t += ms


class FakeClient:
    """The part of MQTTClient the app uses.  ``plan``: outcomes of the next publishes in
    order ("ok", "linkdown", "modem", "lost_ack": the broker got it but the modem's
    confirmation never came, so the caller sees a failure); empty plan = ok."""

    def __init__(self, plan=()):
        self.plan = list(plan)
        self.up = asyncio.Event()
        self.down = asyncio.Event()
        self.up.set()
        self.broker = []  # (topic, payload bytes, qos, retain) that reached the broker
        self.calls = 0
        self.cfg = {"qos": 1}
        self.inbound = asyncio.Queue()

    def isconnected(self):
        return self.up.is_set()

    async def publish(self, topic, payload, qos=1, retain=False):
        self.calls += 1
        await asyncio.sleep(0)
        what = self.plan.pop(0) if self.plan else "ok"
        if what == "linkdown":
            raise LinkDown("publish: no broker connection within the allowed time")
        if what == "modem":
            raise ModemError("CMQTT", 11, b"AT+CMQTTPUB=0,1,60")
        if isinstance(payload, str):
            payload = payload.encode()  # MQTTClient.publish takes str or bytes
        self.broker.append((topic, bytes(payload), qos, retain))
        if what == "lost_ack":
            raise ModemError("CMQTT", 17, b"AT+CMQTTPUB=0,1,60")  # timeout: PUBACK not seen

    def telemetry_seqs(self):
        out = []
        for t, p, _q, _r in self.broker:
            if t.endswith("/telemetry"):
                out.extend(r["seq"] for r in json.loads(p))
        return out

    def messages(self):
        q = self.inbound

        class _It:
            def __aiter__(self):
                return self

            async def __anext__(self):
                return await q.get()

        return _It()


def append_records(spool, first, n, with_obd=0):
    buf = bytearray(PACKED_MAX)
    r = Record()
    for s in range(first, first + n):
        r.clear()
        r.seq = s
        r.set_time(s, TS_UPTIME)
        for i in range(with_obd):
            r.add_obd(i + 1, s)
        k = pack_into(r, buf, 0)
        spool.append(memoryview(buf)[:k])
