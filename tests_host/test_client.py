"""MQTTClient above a fake family driver and a fake modem: first connect, reconnect on
CONNLOST/NONET/REBOOT through the ladder, resubscription, publish waiting for the link,
bounded failure, inbound messages (iterator and callback), counters, config errors.

The fakes implement the driver interface the client is written against (cmqtt.py's);
the clock is fake (recovery backoff and registration waits advance it, never sleep)."""

import asyncio
import time

import pytest
from app_fakes import FakeModem
from atmq import recovery as rc
from atmq.client import LinkDown, MQTTClient, normalize
from atmq.errors import ATTimeout, ConfigError, ModemError
from atmq.events import EV_CONNLOST, EV_MSG, EV_MSG_DROPPED, EV_NONET, EV_REBOOT, EventQueue
from atmq.inbox import Inbox

CFG = {"host": "broker.example", "client_id": "dev1", "subscriptions": ["cmd/dev1", ("cfg/#", 0)]}


class Clock:
    def __init__(self):
        self.t = 1000
        self.slept = []

    def __call__(self):
        return self.t

    async def sleep(self, ms):
        self.slept.append(ms)
        self.t += ms
        await asyncio.sleep(0)


class FakeDriver:
    """The family driver interface; ``fail[name]`` = outcomes to raise in order (None: ok)."""

    def __init__(self, events, inbox):
        self.events = events
        self.inbox = inbox
        self.connected = False
        self.calls = []
        self.fail = {}
        self.broker = []  # what reached the "broker"
        self.subs = {}

    async def _do(self, name, *args):
        self.calls.append((name,) + args)
        await asyncio.sleep(0)
        f = self.fail.get(name)
        if f:
            e = f.pop(0)
            if e is not None:
                raise e

    async def start(self):
        await self._do("start")

    async def configure_tls(self, tls):
        await self._do("configure_tls", tls)

    async def connect(self, host, port, client_id, keepalive_s=60, clean=True, user=None,
                      password=None, will=None, tls=False, timeout_ms=30000):
        await self._do("connect", host, port, client_id, clean, will, tls)
        self.connected = True
        self.subs = {}  # a fresh session (clean) forgets subscriptions at the broker

    async def disconnect(self):
        await self._do("disconnect")
        self.connected = False

    async def stop(self):
        await self._do("stop")
        self.connected = False

    async def publish(self, topic, payload, qos=1, retain=False):
        if not self.connected:
            self.calls.append(("publish", topic))
            raise ModemError("CMQTT", 11, b"AT+CMQTTPUB")  # no connection
        await self._do("publish", topic)
        self.broker.append((bytes(topic), bytes(payload), qos, retain))

    async def subscribe(self, topic, qos=1):
        await self._do("subscribe", topic, qos)
        self.subs[bytes(topic)] = qos

    async def unsubscribe(self, topic):
        await self._do("unsubscribe", topic)
        self.subs.pop(bytes(topic), None)

    async def is_connected(self):
        await self._do("is_connected")
        return self.connected

    def reset(self):  # smmqtt's: the module booted, its settings are the defaults again
        self.calls.append(("reset",))

    # what the real driver's URC handlers do
    def drop(self, cause=1):
        self.connected = False
        self.events.put(EV_CONNLOST, 0, cause)

    def deliver(self, topic, payload):
        ib = self.inbox
        s = ib.start(len(topic), len(payload))
        if s < 0:
            self.events.put(EV_MSG_DROPPED, 1, 0)
            return
        ib.topic_buf(s)[: len(topic)] = topic
        ib.payload_buf(s)[: len(payload)] = payload
        ib.topic_fill = len(topic)
        ib.payload_fill = len(payload)
        self.events.put(EV_MSG, ib.commit(), 0)


class Rig:
    def __init__(self, cfg=None, real_clock=False, **kw):
        self.clock = Clock()
        self.q = EventQueue(16)
        self.inbox = Inbox(slots=4, topic_max=64, payload_max=256)
        self.d = FakeDriver(self.q, self.inbox)
        self.m = FakeModem(data_open=True)
        self.m.reg = [2, 1]
        self.steps = []
        self.c = MQTTClient(self.m, self.d, self.q, self.inbox, dict(cfg or CFG),
                            on_recovery=lambda s, r, d: self.steps.append((s, r)),
                            sleep=self.clock.sleep, clock=None if real_clock else self.clock,
                            **kw)
        self.sup = None

    def start(self):
        self.sup = asyncio.create_task(self.c.run())

    async def stop(self):
        sup = self.sup
        if sup is None:
            return
        if sup.done():
            await sup  # the supervisor must not have died of an exception
            return
        sup.cancel()
        try:
            await sup
        except asyncio.CancelledError:
            pass

    def names(self):
        return [c[0] for c in self.d.calls]


async def until(cond, what, steps=2000):
    for _ in range(steps):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened: " + what)


def run(coro):
    async def bounded():
        return await asyncio.wait_for(coro, 10)
    return asyncio.run(bounded())


def test_first_connect_subscribes_and_sets_up():
    async def t():
        r = Rig()
        await r.c.connect()
        assert r.names() == ["start", "configure_tls", "connect", "subscribe", "subscribe"]
        assert r.d.calls[2] == ("connect", "broker.example", 1883, "dev1", True, None, False)
        assert r.d.subs == {b"cmd/dev1": 1, b"cfg/#": 0}
        assert r.c.up.is_set() and not r.c.down.is_set() and r.c.isconnected()
        assert r.m.calls == []  # the modem was up already
    run(t())


def test_clean_init_then_persistent_session():
    async def t():
        r = Rig({"host": "h", "client_id": "c", "clean": False, "clean_init": True,
                 "subscriptions": ["s/1"]})
        await r.c.connect()
        conn = [c[4] for c in r.d.calls if c[0] == "connect"]
        assert conn == [True, False]  # clean first (drop the backlog), then persistent
        assert r.names() == ["start", "configure_tls", "connect", "disconnect", "start",
                             "configure_tls", "connect", "subscribe"]
        assert r.c.up.is_set()
        r.start()
        r.d.drop()
        await until(lambda: r.c.reconnects == 1, "reconnect")
        assert [c[4] for c in r.d.calls if c[0] == "connect"][-1] is False
        await r.stop()
    run(t())


def test_disconnect_stops_a_recovery_between_steps():
    async def t():
        r = Rig()
        await r.c.connect()
        r.d.fail["connect"] = [ModemError("CMQTT", 3, b"C")] * 100
        r.start()
        r.d.drop()
        await until(lambda: r.c.recovery.ladder.fails[rc.RUNG_SESSION] >= 2, "failing")
        sup = r.sup
        assert sup is not None
        await r.c.disconnect()
        await until(sup.done, "supervisor ended")
        assert isinstance(r.c.last_error, rc.Stopped) and r.c.reconnects == 0
    run(t())


def test_first_connect_errors_go_to_the_app():
    async def t():
        r = Rig()
        r.d.fail["connect"] = [ModemError("CMQTT", 32, b"AT+CMQTTCONNECT")]
        with pytest.raises(ModemError) as e:
            await r.c.connect()
        assert e.value.code == 32 and not r.c.up.is_set()
        assert r.steps == []  # no recovery behind the app's back
    run(t())


def test_connect_brings_the_modem_up_when_needed():
    async def t():
        r = Rig()
        r.m.inited = False
        r.m.data_open = False
        await r.c.connect()
        # the link owner's cold start: power, boot wait, init, SIM, registration (searching,
        # then home), data
        assert r.m.calls == ["power_on", "wait_ready", "init", "sim_state", "registration",
                             "registration", "data_up"]
        assert r.c.link.name == "subscribed"
    run(t())


def test_reconnect_on_connlost_rebuilds_and_resubscribes():
    async def t():
        r = Rig()
        await r.c.connect()
        r.start()
        await r.c.subscribe("extra/topic", 2)
        r.d.calls.clear()
        r.d.drop(cause=3)
        await until(lambda: r.c.reconnects == 1, "reconnect")
        assert r.names() == ["stop", "start", "configure_tls", "connect", "subscribe",
                             "subscribe", "subscribe"]
        assert r.d.subs == {b"cmd/dev1": 1, b"cfg/#": 0, b"extra/topic": 2}
        assert r.c.up.is_set() and r.c.connlost == 1
        assert (rc.STEP_BEGIN, rc.RUNG_SESSION) in r.steps
        assert r.steps[-1] == (rc.STEP_OK, rc.RUNG_SESSION)
        await r.stop()
    run(t())


def test_stale_connlost_after_recovery_is_ignored():
    async def t():
        r = Rig()
        await r.c.connect()
        r.q.put(EV_CONNLOST, 0, 1)  # the driver is connected: an old event
        r.start()
        await until(lambda: r.c.connlost == 1, "event seen")
        await asyncio.sleep(0)
        assert r.c.reconnects == 0 and "stop" not in r.names()
        await r.stop()
    run(t())


def test_publish_waits_for_the_link_then_succeeds():
    async def t():
        r = Rig()
        await r.c.connect()
        r.d.fail["connect"] = [ModemError("CMQTT", 3, b"AT+CMQTTCONNECT"), None]
        r.start()
        r.d.drop()
        await until(lambda: not r.c.up.is_set(), "down")
        pub = asyncio.create_task(r.c.publish("t/1", b"rec-1"))
        await asyncio.sleep(0)
        assert not pub.done()  # waiting for the link
        await until(pub.done, "publish finished")
        await pub
        assert r.d.broker == [(b"t/1", b"rec-1", 1, False)]
        assert r.c.published == 1 and r.c.failed == 0 and r.c.reconnects == 1
        # the first rebuild failed (transient 3): backoff slept on the fake clock, bounded
        assert len(r.clock.slept) >= 1 and all(0 < s <= 300000 for s in r.clock.slept)
        assert (rc.STEP_FAIL, rc.RUNG_SESSION) in r.steps
        await r.stop()
    run(t())


def test_wait_up_true_at_the_reconnect_false_at_its_deadline():
    """wait_up (the cheap ``wait_for(up.wait())``): woken when the session comes back; with
    the supervisor running its deadline is kept by the supervisor's timer (a second's
    steps), without one by polling; no CancelledError, no task left behind."""
    async def t():
        r = Rig()
        await r.c.connect()
        r.d.fail["connect"] = [ModemError("CMQTT", 3, b"AT+CMQTTCONNECT"), None]
        r.start()
        r.d.drop()
        await until(lambda: not r.c.up.is_set(), "down")
        w = asyncio.create_task(r.c.wait_up(600000))
        await until(w.done, "woken by the reconnect")
        assert w.result() is True and r.c.isconnected() and r.c._waiters == 0
        assert await r.c.wait_up(1) is True  # up: at once
        await r.stop()

        r = Rig(real_clock=True)  # supervisor running, never connected
        r.start()
        await until(lambda: r.c._ticking, "timer running")
        t0 = time.monotonic()
        assert await r.c.wait_up(300) is False
        assert 0.29 <= time.monotonic() - t0 < 3.0 and r.c._waiters == 0
        await r.stop()

        r = Rig(real_clock=True)  # no supervisor: polled
        t0 = time.monotonic()
        assert await r.c.wait_up(120) is False
        assert 0.11 <= time.monotonic() - t0 < 2.0
    run(t())


def test_publish_fails_after_its_timeout_and_counts_it():
    async def t():
        r = Rig(real_clock=True)  # never connected; the wait is bounded by real time
        with pytest.raises(LinkDown):
            await r.c.publish("t/1", b"x", timeout_ms=50)
        assert r.c.failed == 1 and r.d.broker == []
    run(t())


def test_publish_raises_fatal_at_once_and_retries_transient():
    async def t():
        r = Rig()
        await r.c.connect()
        r.d.fail["publish"] = [ModemError("CMQTT", 14, b"AT+CMQTTPUB"), None]  # busy
        await r.c.publish("t/1", "str payload", qos=0, retain=True)
        assert r.d.broker == [(b"t/1", b"str payload", 0, True)]
        assert r.c.publish_retries == 1 and r.c.published == 1
        r.d.fail["publish"] = [ModemError("CME", 4, b"AT+CMQTTPUB")]  # not supported: FATAL
        with pytest.raises(ModemError):
            await r.c.publish("t/2", b"y")
        assert r.c.failed == 1
    run(t())


@pytest.mark.parametrize("topic, payload, qos, err", [
    ("", b"x", 1, ValueError),
    ("a/+/b", b"x", 1, ValueError),
    ("a/#", b"x", 1, ValueError),
    (5, b"x", 1, TypeError),
    ("a", 5, 1, TypeError),
    ("a", b"x", 3, ValueError),
])
def test_publish_rejects_bad_input_before_sending(topic, payload, qos, err):
    async def t():
        r = Rig()
        await r.c.connect()
        r.d.calls.clear()
        with pytest.raises(err):
            await r.c.publish(topic, payload, qos)
        assert r.d.calls == []
    run(t())


def test_messages_iterator_in_order_with_counters():
    async def t():
        r = Rig()
        await r.c.connect()
        r.start()
        got = []

        async def consume():
            async for topic, payload in r.c.messages():
                got.append((topic, payload))
                if len(got) == 3:
                    return

        task = asyncio.create_task(consume())
        r.d.deliver(b"cmd/dev1", b"reboot")
        r.d.deliver(b"cfg/a", b"")
        r.d.deliver(b"x" * 65, b"too long topic")  # dropped: oversize (counted)
        r.d.deliver(b"cfg/b", b"\r\nOK\r\n")
        await until(task.done, "three messages")
        assert got == [(b"cmd/dev1", b"reboot"), (b"cfg/a", b""), (b"cfg/b", b"\r\nOK\r\n")]
        assert r.c.rx == 3 and r.c.rx_dropped == 1 and r.c.delivered == 3
        await r.stop()
    run(t())


def test_callback_gets_each_message_and_a_raising_callback_is_contained():
    async def t():
        seen = []

        def cb(topic, payload):
            seen.append((bytes(topic), bytes(payload)))
            if payload == b"boom":
                raise RuntimeError("app bug")

        r = Rig(on_message=cb)
        await r.c.connect()
        r.start()
        r.d.deliver(b"cmd/dev1", b"boom")
        r.d.deliver(b"cmd/dev1", b"next")
        await until(lambda: len(seen) == 2, "both delivered")
        assert seen == [(b"cmd/dev1", b"boom"), (b"cmd/dev1", b"next")]
        assert isinstance(r.c.last_error, RuntimeError) and len(r.inbox) == 0
        with pytest.raises(ValueError):
            r.c.messages()
        await r.stop()
    run(t())


def test_nonet_reopens_data_then_session():
    async def t():
        r = Rig()
        await r.c.connect()
        r.start()
        r.m.data_open = False  # the modem's PDP URC handler did this
        r.d.connected = False
        r.q.put(EV_NONET, 0, 0)
        await until(lambda: r.c.reconnects == 1, "recovered")
        assert r.m.calls == ["sim_state", "registration", "registration", "data_up"]
        assert r.clock.slept == [2000]  # one registration poll while searching (stat 2)
        assert "reset" not in r.names()  # no boot: the driver's cached settings stand
        assert "connect" in r.names() and r.c.nonet == 1
        await r.stop()
    run(t())


def test_a_burst_of_trouble_is_one_episode_on_its_highest_rung():
    async def t():
        r = Rig()
        await r.c.connect()
        r.m.reg = [1]
        r.d.drop(cause=3)  # CONNLOST: session...
        r.m.data_open = False
        r.q.put(EV_NONET, 0, 0)  # ...and NONET in the same burst: data
        r.start()
        await until(lambda: r.c.reconnects == 1, "recovered")
        for _ in range(10):
            await asyncio.sleep(0)
        assert r.steps[0] == (rc.STEP_BEGIN, rc.RUNG_DATA)
        assert r.c.recovery.ladder.episodes == 1 and r.c.reconnects == 1
        assert r.c.connlost == 1 and r.c.nonet == 1
        await r.stop()
    run(t())


def test_reboot_reinits_the_modem_before_the_session():
    async def t():
        r = Rig()
        await r.c.connect()
        r.start()
        r.m.inited = False
        r.m.data_open = False
        r.d.connected = False
        r.m.reg = [1]
        r.q.put(EV_REBOOT, 1, 0)
        await until(lambda: r.c.reconnects == 1, "recovered")
        assert r.m.calls == ["wait_ready", "init", "sim_state", "registration", "data_up"]
        assert r.c.reboots == 1 and r.c.up.is_set()
        # the driver was told of the boot, and the session is rebuilt from "booted": the
        # module's MQTT service is gone, so nothing is torn down first (no DISC/REL/STOP)
        after = r.names()[r.names().index("reset") + 1:]
        assert after == ["start", "configure_tls", "connect", "subscribe", "subscribe"]
        assert r.c.link.name == "subscribed"
        await r.stop()
    run(t())


def test_timeouts_escalate_to_a_modem_reset():
    async def t():
        r = Rig()
        await r.c.connect()
        r.start()
        r.m.probe_ok = False
        r.m.reg = [1]
        r.d.fail["stop"] = [ATTimeout(b"AT+CMQTTDISC=0,60", 10000)]
        r.d.drop()
        await until(lambda: r.c.reconnects == 1, "recovered")
        # the session rebuild timed out, AT did not answer: reset rung (no radio cycle
        # for a module that does not answer), then everything
        assert r.m.calls[:3] == ["probe", "probe", "restart"]
        esc = [s for s in r.steps if s[0] == rc.STEP_ESCALATE]
        assert esc == [(rc.STEP_ESCALATE, rc.RUNG_RESET)]
        assert r.c.recovery.ladder.oks[rc.RUNG_RESET] == 1
        assert r.c.stats()["ladder"]["floor"] == rc.RUNG_RESET
        await r.stop()
    run(t())


def test_reset_rung_tries_a_radio_cycle_first_then_a_restart():
    async def t():
        r = Rig()
        await r.c.connect()
        r.m.reg = [1]
        r.d.fail["connect"] = [ModemError("CMQTT", 3, b"C"), None]
        rung = await r.c.recovery.recover(rc.RUNG_RESET)
        assert rung == rc.RUNG_RESET
        assert r.m.calls == ["probe", "radio_cycle", "sim_state", "registration", "data_up",
                             "restart", "sim_state", "registration"]
        assert r.c.recovery.ladder.tries[rc.RUNG_RESET] == 2
    run(t())


def test_idle_health_check_finds_a_dead_session():
    async def t():
        r = Rig({"host": "h", "client_id": "c", "health_s": 60})
        await r.c.connect()
        r.start()
        await asyncio.sleep(0)
        r.d.connected = False  # died silently: no URC
        r.clock.t += 61000
        r.q.put(EV_MSG_DROPPED, 1, 0)  # any event wakes the supervisor to re-plan
        await until(lambda: r.c.reconnects == 1, "recovered by the health check")
        assert r.c.health_checks == 1 and r.c.health_failures == 1
        assert "is_connected" in r.names()
        await r.stop()
    run(t())


def test_no_health_check_while_traffic_flows():
    async def t():
        r = Rig({"host": "h", "client_id": "c", "health_s": 60})
        await r.c.connect()
        r.start()
        r.clock.t += 50000
        await r.c.publish("t", b"1")
        r.clock.t += 30000  # 80 s since connect, 30 s since traffic
        r.q.put(EV_MSG_DROPPED, 1, 0)
        await until(lambda: r.c.rx_dropped == 1, "event seen")
        for _ in range(10):
            await asyncio.sleep(0)
        assert r.c.health_checks == 0
        await r.stop()
    run(t())


def test_disconnect_ends_the_supervisor():
    async def t():
        r = Rig()
        await r.c.connect()
        r.start()
        sup = r.sup
        assert sup is not None
        await r.c.disconnect()
        await until(sup.done, "supervisor ended")
        assert not r.c.up.is_set() and r.names()[-1] == "disconnect"
    run(t())


def test_config_normalisation_and_errors():
    c = normalize({"host": "h", "tls": {"ssl_ctx": 0}, "will": {"topic": "w", "payload": b"bye"}},
                  imei="123")
    assert c["port"] == 8883 and c["client_id"] == "atmq-123"
    assert c["will"] == ("w", b"bye", 0, False) and c["clean_init"] is True
    for bad, key in [({"host": ""}, "mqtt.host"),
                     ({"host": "h", "client_id": "c", "prot": 1}, "mqtt.prot"),
                     ({"host": "h", "client_id": "c", "port": 0}, "mqtt.port"),
                     ({"host": "h"}, "mqtt.client_id"),
                     ({"host": "h", "client_id": "c", "qos": 5}, "mqtt.qos"),
                     ({"host": "h", "client_id": "c", "password": "p"}, "mqtt.password"),
                     ({"host": "h", "client_id": "c", "subscriptions": [("", 1)]},
                      "mqtt.subscriptions"),
                     ({"host": "h", "client_id": "c", "keepalive_s": 0}, "mqtt.keepalive_s")]:
        with pytest.raises(ConfigError) as e:
            normalize(bad)
        assert e.value.key == key, bad


def test_fatal_error_leaves_the_ladder_and_parks_until_retry():
    """Issue 9: CMQTT 30/31 (credentials) during recovery must not climb to CFUN, CRESET
    or a power cycle: the link parks in "fatal" with the code and its meaning, and tries
    again on the long backoff or at once on retry() (a set/reconnect command)."""
    async def t():
        r = Rig(dict(CFG, fatal_retry_s=3600))
        await r.c.connect()
        r.start()
        r.d.fail["connect"] = [ModemError("CMQTT", 31, b"AT+CMQTTCONNECT=0")]
        r.d.drop()
        await until(lambda: r.c.link.name == "fatal", "parked in fatal")
        lad = r.c.recovery.ladder
        assert lad.tries[rc.RUNG_RESET] == 0 and lad.tries[rc.RUNG_POWER] == 0
        assert "radio_cycle" not in r.m.calls and "restart" not in r.m.calls
        assert "power_cycle" not in r.m.calls
        st = r.c.stats()
        assert st["link"] == "fatal" and st["fatal"].startswith("CMQTT 31 ")
        assert not r.c.up.is_set()
        connects = r.names().count("connect")
        for _ in range(50):  # parked: nothing is sent while the backoff runs
            await asyncio.sleep(0)
        assert r.names().count("connect") == connects
        r.c.link.retry()  # the set/reconnect command
        await until(lambda: r.c.up.is_set(), "reconnected after retry()")
        assert r.c.link.name == "subscribed" and r.c.link.fatal_text() is None
        assert r.c.link.fatals == 1
        await r.stop()
    run(t())


def test_fatal_backoff_runs_out_by_itself():
    async def t():
        r = Rig(dict(CFG, fatal_retry_s=60))
        await r.c.connect()
        r.start()
        r.d.fail["connect"] = [ModemError("CME", 10, b"AT+CPIN?")]  # no SIM
        r.d.drop()
        await until(lambda: r.c.link.name == "fatal", "parked in fatal")
        r.clock.t += 60000  # the fake clock: the long backoff has passed
        await until(lambda: r.c.up.is_set(), "retried after the backoff", steps=20000)
        await r.stop()
    run(t())


def test_reboot_seen_during_a_session_rebuild_rebuilds_from_the_data_rung():
    """Issue 9: wherever the reboot lands, the state machine rebuilds from the right state:
    a session-rung episode whose modem rebooted (the reader told the link) goes to the
    data rung (init, SIM, registration, data) instead of retrying a session on it."""
    async def t():
        r = Rig()
        await r.c.connect()
        r.m.reg = [1]
        r.d.drop()  # CONNLOST: a session rung episode
        r.c.link.lost(1)  # ...and the reader saw RDY before the supervisor got to it
        r.m.inited = False
        r.m.data_open = False
        r.start()
        await until(lambda: r.c.reconnects == 1, "recovered")
        assert (rc.STEP_ESCALATE, rc.RUNG_DATA) in r.steps
        assert r.m.calls[:2] == ["wait_ready", "init"] and "data_up" in r.m.calls
        assert r.c.link.name == "subscribed"
        await r.stop()
    run(t())
