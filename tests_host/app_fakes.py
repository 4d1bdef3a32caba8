"""Fakes for the telelogger app tests: a fake clock, an MQTT client that fails on demand,
records made and stored the way the sampler does it; and the one Modem fake of the link
and client tests (tests_host/test_link.py, test_client.py)."""

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


class FakeModem:
    """The Modem steps the link owner and the client's recovery run (atmq.link,
    atmq.client), each recorded by name in ``calls``; ``apn_sets``: the arguments of every
    ``set_apn``.  ``fail[name]``: exceptions that step raises, in order; ``reg``: the
    ``registration()`` answers in order (the last one repeats); ``probe_ok``: what
    ``probe()`` answers.  ``data_open``: the PDP context open at the start."""

    def __init__(self, apn=None, user=None, password=None, data_open=False):
        self.facts = {"imei": "861234050011223"}
        self.family = "cmqtt"
        self.board = None
        self.pins = None
        self.inited = True
        self.data_open = data_open
        self.apn, self.apn_user, self.apn_password = apn, user, password
        self.calls = []
        self.apn_sets = []
        self.fail = {}
        self.reg = [1]
        self.probe_ok = True
        self.on_lost = None

    async def _c(self, name):
        self.calls.append(name)
        await asyncio.sleep(0)
        f = self.fail.get(name)
        if f:
            raise f.pop(0)

    async def power_on(self):
        await self._c("power_on")

    async def probe(self, tries=3):
        await self._c("probe")
        return self.probe_ok

    async def wait_ready(self, timeout_ms=0, **kw):
        await self._c("wait_ready")

    async def init(self):
        await self._c("init")
        self.inited = True

    async def sim_state(self):
        await self._c("sim_state")
        return "READY"

    async def registration(self):
        await self._c("registration")
        return self.reg.pop(0) if len(self.reg) > 1 else self.reg[0]

    async def set_apn(self, apn, user=None, password=None):
        self.apn_sets.append((apn, user, password))
        await self._c("set_apn")

    async def data_up(self):
        await self._c("data_up")
        self.data_open = True

    async def data_down(self):
        await self._c("data_down")
        self.data_open = False

    async def restart(self, timeout_ms=0):
        await self._c("restart")

    async def radio_cycle(self):
        await self._c("radio_cycle")
        self.data_open = False

    async def power_cycle(self):
        await self._c("power_cycle")


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
