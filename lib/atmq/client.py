"""The MQTT client the application uses, the same above every modem family.

Owns the session as the app sees it: ``connect`` (first connect, errors to the
caller as in mqtt_as), the supervisor task ``run`` (events from the modem and
the driver, recovery through the ``recovery`` ladder, a low-rate health check
while idle), ``publish`` that returns only once the modem confirmed it and
raises on failure (the caller keeps its record), subscriptions that survive
reconnects, inbound messages (async iterator or callback), ``up``/``down``
events and counters for the health report.

Where it differs from mqtt_as (ecosystem study 2.5/2.6), on purpose:
- no WiFi coupling: the link is a cellular modem (``Modem`` + a family driver);
- event-driven supervisor, no 5 ms polling under a global lock;
- ``publish`` is bounded: it waits for the link at most ``publish_timeout_ms``
  and never cancels a modem operation half-way (what corrupts mqtt_as's state);
- resubscription after every reconnect is the client's job, not the app's;
- ``clean_init`` / ``clean`` as in mqtt_as #40 (first connect vs reconnects);
- DNS is the modem's, per connect: a broker that moves is followed;
- bad input raises ``ValueError``/``ConfigError`` naming the problem, never ``assert``;
- every recovery step is reported (``on_recovery``) and counted.

Driver interface (``cmqtt.CMQTTDriver``, the SM family driver): ``connected``;
``start()``, ``configure_tls(tls)``, ``connect(host, port, client_id, keepalive_s,
clean, user, password, will, tls, timeout_ms)``, ``disconnect()``, ``stop()``,
``publish(topic, payload, qos, retain)``, ``subscribe(topic, qos)``,
``unsubscribe(topic)``, ``is_connected()``; events EV_MSG (a: inbox slot),
EV_MSG_DROPPED, EV_CONNLOST, EV_NONET on the shared ``EventQueue``.
"""

import asyncio

from . import errtab
from . import power as _power
from .compat import const, sleep_ms, ticks_add, ticks_diff, ticks_ms
from .errors import ATTimeout, ConfigError, ModemError
from .link import Link, is_fatal
from .recovery import Escalate, Ladder, Recovery

# Other modules' constants, mirrored (folded at compile time: no global-dict entry each,
# issue 11; tests_host/test_const_mirrors.py checks every "# = module.NAME" below)
_EV_MSG = const(1)  # = atmq.events.EV_MSG
_EV_MSG_DROPPED = const(2)  # = atmq.events.EV_MSG_DROPPED
_EV_CONNLOST = const(3)  # = atmq.events.EV_CONNLOST
_EV_NONET = const(4)  # = atmq.events.EV_NONET
_EV_REBOOT = const(5)  # = atmq.events.EV_REBOOT
_EV_SIM = const(6)  # = atmq.events.EV_SIM
_EV_REG = const(7)  # = atmq.events.EV_REG
_EV_URC = const(10)  # = atmq.events.EV_URC
_ST_BOOTING = const(1)  # = atmq.link.ST_BOOTING
_ST_REGISTERED = const(4)  # = atmq.link.ST_REGISTERED
_ST_DATA_UP = const(5)  # = atmq.link.ST_DATA_UP
_ST_MQTT_STARTED = const(6)  # = atmq.link.ST_MQTT_STARTED
_ST_CLIENT_ACQUIRED = const(7)  # = atmq.link.ST_CLIENT_ACQUIRED
_ST_CONNECTED = const(8)  # = atmq.link.ST_CONNECTED
_ST_SUBSCRIBED = const(9)  # = atmq.link.ST_SUBSCRIBED
_ST_FATAL = const(10)  # = atmq.link.ST_FATAL
_RUNG_PROBE = const(0)  # = atmq.recovery.RUNG_PROBE
_RUNG_SESSION = const(1)  # = atmq.recovery.RUNG_SESSION
_RUNG_DATA = const(2)  # = atmq.recovery.RUNG_DATA
_RUNG_RESET = const(3)  # = atmq.recovery.RUNG_RESET

KICK = -0x7FF  # EV_URC a-value the client posts to wake its own supervisor
_HEALTH_NOW = const(-2)
_UP_POLL_MS = const(50)  # a publish waiting for the link without a supervisor looks this often
_TICK_MS = const(1000)  # the supervisor's timer (health check due, publish deadlines)

_DEFAULTS = {
    "host": None,
    "port": None,  # 8883 with tls, else 1883
    "client_id": None,  # default "atmq-<IMEI>"
    "keepalive_s": 60,
    "clean": True,  # reconnects
    "clean_init": None,  # first connect; None: same as clean
    "user": None,
    "password": None,
    "will": None,  # {"topic", "payload", "qos", "retain"} or (topic, payload, qos, retain)
    "tls": None,  # dict for driver.configure_tls (see atmq.tls), None: plain
    "subscriptions": (),  # topic, (topic, qos) or {"topic", "qos"}
    "qos": 1,  # default publish qos
    "publish_timeout_ms": 60000,  # how long publish waits for the link
    "connect_timeout_ms": 30000,
    "health_s": 120,  # AT+CMQTTCONNECT?-style check after this long without traffic
    "reg_check_s": 600,  # registration poll (health report), at most this often
    "reg_timeout_ms": 180000,  # recovery: wait for registration before reopening data
    "boot_timeout_ms": 30000,
    "fatal_retry_s": 1800,  # a fatal error (credentials, no SIM...): next try after this
}


class LinkDown(OSError):
    """``publish``/``subscribe`` could not reach the broker within the allowed time."""


def _cfg_error(key, problem):
    return ConfigError("mqtt." + key, problem)


def _topic(t, what="topic"):
    if isinstance(t, str):
        t = t.encode()
    if not isinstance(t, (bytes, bytearray, memoryview)):
        raise TypeError("%s must be str or bytes, got %s" % (what, type(t).__name__))
    if len(t) == 0:
        raise ValueError("%s is empty" % what)
    return bytes(t)


def _qos(q):
    if q not in (0, 1, 2):
        raise ValueError("qos must be 0, 1 or 2, got %r" % (q,))
    return q


def normalize(config, imei=None):
    """Validated copy of a client config dict (unknown keys are errors: typos fail loudly)."""
    if not isinstance(config, dict):
        raise _cfg_error("", "the client config must be a dict")
    c = dict(_DEFAULTS)
    for k in config:
        if k not in _DEFAULTS:
            raise _cfg_error(k, "unknown key (known: %s)" % ", ".join(sorted(_DEFAULTS)))
        c[k] = config[k]
    if not isinstance(c["host"], str) or not c["host"]:
        raise _cfg_error("host", "required: the broker's host name or address")
    if c["port"] is None:
        c["port"] = 8883 if c["tls"] else 1883
    if not isinstance(c["port"], int) or not 1 <= c["port"] <= 65535:
        raise _cfg_error("port", "must be 1..65535, got %r" % (c["port"],))
    if c["client_id"] is None:
        if not imei:
            raise _cfg_error("client_id", "required when the modem's IMEI is not known")
        c["client_id"] = "atmq-" + imei
    if not isinstance(c["client_id"], str) or not c["client_id"]:
        raise _cfg_error("client_id", "must be a non-empty string")
    for k in ("keepalive_s", "publish_timeout_ms", "connect_timeout_ms", "health_s",
              "reg_check_s", "reg_timeout_ms", "boot_timeout_ms", "fatal_retry_s"):
        if not isinstance(c[k], int) or c[k] <= 0:
            raise _cfg_error(k, "must be a positive int, got %r" % (c[k],))
    if c["clean_init"] is None:
        c["clean_init"] = c["clean"]
    if c["password"] is not None and c["user"] is None:
        raise _cfg_error("password", "a password needs a user name")
    try:
        _qos(c["qos"])
    except ValueError as e:
        raise _cfg_error("qos", str(e)) from None
    w = c["will"]
    if w is not None:
        if isinstance(w, dict):
            try:
                w = (w["topic"], w.get("payload", w.get("message", b"")), w.get("qos", 0),
                     w.get("retain", False))
            except KeyError:
                raise _cfg_error("will", "needs a topic") from None
        if not isinstance(w, (tuple, list)) or len(w) != 4:
            raise _cfg_error("will", "must be a dict or (topic, payload, qos, retain)")
        c["will"] = tuple(w)
    if c["tls"] is not None and not isinstance(c["tls"], dict):
        raise _cfg_error("tls", "must be a dict of TLS settings or None")
    subs = []
    for s in c["subscriptions"]:
        if isinstance(s, dict):
            s = (s.get("topic"), s.get("qos", 1))
        elif not isinstance(s, (tuple, list)):
            s = (s, 1)
        try:
            subs.append([_topic(s[0], "subscription topic"), _qos(s[1])])
        except (TypeError, ValueError) as e:
            raise _cfg_error("subscriptions", str(e)) from None
    c["subscriptions"] = subs
    return c


class _Messages:
    """``async for topic, payload in client.messages()``: bytes copies, oldest first."""

    def __init__(self, client):
        self.c = client

    def __aiter__(self):
        return self

    async def __anext__(self):
        c = self.c
        inbox = c.inbox
        while True:
            s = inbox.get()
            if s >= 0:
                # copy before release: the reader overwrites the oldest slot when full
                t = bytes(inbox.topic(s))
                p = bytes(inbox.payload(s))
                inbox.release()
                c.delivered += 1
                return t, p
            c._msg_ev.clear()
            await c._msg_ev.wait()


class MQTTClient:
    """One MQTT session through a modem; see the module docstring.

    ``on_message(topic, payload)``: called from the supervisor with memoryviews
    into the inbox, valid only during the call (copy what you keep); when set,
    ``messages()`` is not available.  ``on_recovery(step, rung, detail)``: every
    recovery step (``recovery.STEP_*``).  ``ladder``: a ``recovery.Ladder`` to use
    (default: power rung only when the board wires the modem's pins).  ``link``: the
    ``atmq.link.Link`` that owns the modem's bring-up (default: one made here).
    """

    def __init__(self, modem, driver, events, inbox, config, on_message=None, on_recovery=None,
                 ladder=None, sleep=None, clock=None, link=None):
        self.modem = modem
        self.driver = driver
        self.events = events
        self.inbox = inbox
        self.cfg = normalize(config, modem.facts.get("imei"))
        self.on_message = on_message
        self.on_recovery = on_recovery
        self._sleep = sleep or sleep_ms
        self._clock = clock or ticks_ms
        c = self.cfg
        if link is None:
            link = Link(modem, driver, reg_timeout_ms=c["reg_timeout_ms"],
                        boot_timeout_ms=c["boot_timeout_ms"],
                        fatal_retry_ms=c["fatal_retry_s"] * 1000, sleep=self._sleep,
                        clock=self._clock)
        self.link = link
        self.up = asyncio.Event()
        self.down = asyncio.Event()
        self.down.set()
        self._msg_ev = asyncio.Event()
        self._wake = asyncio.Event()  # pulsed: the link came up, or a second went by
        self._waiters = 0  # callers in wait_up
        self._ticking = False  # run()'s timer pulses _wake
        self._subs = [list(s) for s in self.cfg["subscriptions"]]
        self._topic_cache = [None, None]  # type: list  # publish(): last topic, its bytes
        self._closing = False
        self._connected_once = False
        now = self._clock()
        self._last_activity = now
        self._last_health = now
        self._last_reg = now
        self._suspect = False
        if ladder is None:
            pins = modem.board is not None and modem.pins is not None and \
                _power.has_pins(modem.board)
            ladder = Ladder(enabled=(True, True, True, True, pins))
        self.recovery = Recovery(
            ladder,
            (self._act_probe, self._act_session, self._act_data, self._act_reset,
             self._act_power),
            on_step=self._step, sleep=self._sleep, clock=self._clock, fatal=is_fatal,
            quick=self._quick)
        # counters (health report)
        self.published = 0  # publishes the modem confirmed
        self.failed = 0  # publishes that raised to the caller
        self.publish_retries = 0
        self.reconnects = 0  # successful recoveries
        self.rx = 0  # inbound messages committed
        self.rx_dropped = 0  # inbound dropped (oversize, inbox full, torn)
        self.delivered = 0  # handed to the app
        self.connlost = 0
        self.nonet = 0
        self.reboots = 0
        self.sim_events = 0
        self.reg_events = 0
        self.health_checks = 0
        self.health_failures = 0
        self.last_error = None
        self.last_reg = None

    # ---- state ---------------------------------------------------------------------------

    def isconnected(self):
        return self.up.is_set()

    def _set_up(self):
        self.down.clear()
        self.up.set()
        self._last_activity = self._clock()
        self._pulse()

    def _set_down(self):
        self.up.clear()
        self.down.set()

    def _kick(self):
        self._suspect = True
        self.events.put(_EV_URC, KICK, 0)

    def stats(self):
        """Counters for the health report (plain ints; ``ladder`` holds per-rung counts)."""
        return {
            "up": self.up.is_set(),
            "published": self.published,
            "failed": self.failed,
            "publish_retries": self.publish_retries,
            "reconnects": self.reconnects,
            "rx": self.rx,
            "rx_dropped": self.rx_dropped,
            "delivered": self.delivered,
            "connlost": self.connlost,
            "nonet": self.nonet,
            "reboots": self.reboots,
            "health_checks": self.health_checks,
            "health_failures": self.health_failures,
            "ladder": self.recovery.ladder.stats(),
            "link": self.link.name,
            "fatal": self.link.fatal_text(),
        }

    # ---- session -------------------------------------------------------------------------

    async def connect(self):
        """First connect: modem up if needed, data, session, subscriptions.

        Raises whatever failed (ModemError with the manual's code, ConfigError,
        ValueError): at first connect the app decides, as with mqtt_as.
        """
        m = self.modem
        lk = self.link
        lk.sync()
        if not m.inited or not m.data_open:
            await lk.up(first=not m.inited)
        elif not lk.at_least(_ST_DATA_UP):
            lk.mark(_ST_DATA_UP, "found up")
        f = getattr(self.driver, "set_model", None)
        if f is not None:  # the model's manual gives the driver's deadlines
            f(m.facts.get("model"))
        c = self.cfg
        if c["clean_init"] and not c["clean"]:
            # mqtt_as #40: drop the backlog of a long power-off (clean connect), then open
            # the persistent session that keeps qos 1 messages across later outages
            await self._session(True, rebuild=False, subscribe=False)
            await self.driver.disconnect()
            self._set_down()
            await self._session(False, rebuild=False)
        else:
            await self._session(c["clean_init"], rebuild=False)
        self._connected_once = True

    async def _session(self, clean, rebuild=True, subscribe=True):
        d = self.driver
        c = self.cfg
        lk = self.link
        lk.sync()
        if rebuild and not lk.mqtt_fresh:  # after a reboot there is nothing to tear down
            try:
                await d.stop()
            except ATTimeout:
                raise  # no answer at all: not a state problem (the ladder probes)
            except ModemError as e:  # stale state is what a rebuild is for
                self.last_error = e
        await d.start()
        lk.mark(_ST_MQTT_STARTED)
        await d.configure_tls(c["tls"])
        await d.connect(c["host"], c["port"], c["client_id"], keepalive_s=c["keepalive_s"],
                        clean=clean, user=c["user"], password=c["password"], will=c["will"],
                        tls=c["tls"] is not None, timeout_ms=c["connect_timeout_ms"])
        lk.mark(_ST_CONNECTED)
        if subscribe:
            for t, q in self._subs:
                await d.subscribe(t, q)
            if self._subs:
                lk.mark(_ST_SUBSCRIBED)
        self._set_up()

    async def disconnect(self):
        """Leave cleanly (MQTT DISCONNECT: no will); the supervisor stops recovering."""
        self._closing = True
        self.recovery.stop()  # a recovery in progress ends after its current step
        self._set_down()
        self.events.put(_EV_URC, KICK, 0)  # wake the supervisor so that it ends
        self._pulse()  # and the callers waiting for the link (they raise LinkDown)
        await self.driver.disconnect()

    @property
    def at(self):
        """The ``Engine`` (the modem's): a property, not an attribute, so that the
        instance's attribute table stays one growth step smaller (issue 11)."""
        return self.modem.at

    # ---- publish / subscribe -------------------------------------------------------------

    async def wait_up(self, timeout_ms):
        """True once the broker session is up, False after ``timeout_ms`` (or at
        ``disconnect``) without it.

        What ``wait_for_ms(client.up.wait(), ms)`` does, without its cost: that holds a task
        and two coroutine frames besides the waiter's (~700 bytes on a 32-bit port) for
        every caller waiting out an outage, at the heap's peak (issue 11), and leaves a
        CancelledError behind at each wake.  Here ``_wake`` is pulsed when the link comes up
        and, while the supervisor runs, every second by ``_timer`` (the deadline); without a
        supervisor the wait polls every _UP_POLL_MS.
        """
        deadline = ticks_add(self._clock(), timeout_ms)
        while not self.up.is_set():
            left = ticks_diff(deadline, self._clock())
            if left <= 0 or self._closing:
                return False
            if self._ticking:
                self._waiters += 1
                try:
                    await self._wake.wait()
                finally:
                    self._waiters -= 1
            else:
                await sleep_ms(left if left < _UP_POLL_MS else _UP_POLL_MS)
        return True

    async def publish(self, topic, payload, qos=None, retain=False, timeout_ms=None):
        """Publish and return once the modem confirmed it (qos 1/2: the broker's ack).

        Waits for the link when it is down, up to ``timeout_ms`` (config
        ``publish_timeout_ms``) in all; raises ``LinkDown`` then, or the
        ``ModemError`` of a failure that a retry cannot fix.  The caller keeps
        its record until this returns.
        """
        tc = self._topic_cache  # [topic as given, its checked bytes]: the uplink's str
        if topic is tc[0] or topic == tc[0]:  # topic is not encoded again at every batch
            t = tc[1]
        else:
            t = _topic(topic)
            if t.find(b"+") >= 0 or t.find(b"#") >= 0:
                raise ValueError("a publish topic must not contain the wildcards + or #")
            if isinstance(topic, (str, bytes)):  # immutable: safe to keep
                tc[0] = topic
                tc[1] = t
        if isinstance(payload, str):
            payload = payload.encode()
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise TypeError("payload must be bytes or str, got %s" % type(payload).__name__)
        q = _qos(self.cfg["qos"] if qos is None else qos)
        limit = self.cfg["publish_timeout_ms"] if timeout_ms is None else timeout_ms
        deadline = ticks_add(self._clock(), limit)
        tries = 0
        while True:
            # (no coroutine object made while the link is up)
            if not self.up.is_set() and not await self.wait_up(
                    ticks_diff(deadline, self._clock())):
                self.failed += 1
                raise LinkDown("publish: no broker connection within the allowed time")
            try:
                await self.driver.publish(t, payload, q, retain)
            except (ValueError, TypeError):
                self.failed += 1
                raise
            except ModemError as e:
                self.last_error = e
                if e.cls == errtab.FATAL:
                    self.failed += 1
                    raise
                tries += 1
                self.publish_retries += 1
                if not self.driver.connected:
                    self._set_down()  # the driver saw the link go: wait for the supervisor
                self._kick()
                left = ticks_diff(deadline, self._clock())
                if left <= 0:
                    self.failed += 1
                    raise
                if not self.up.is_set():
                    continue  # wait_up waits for the reconnect: no backoff on top of it
                back = 500 << (tries if tries < 5 else 5)  # 1 s .. 16 s, bounded by the deadline
                await self._sleep(back if back < left else left)
                continue
            self.published += 1
            self._last_activity = self._clock()
            return

    async def subscribe(self, topic, qos=1):
        """Subscribe now (waits for the link, bounded) and again after every reconnect."""
        t = _topic(topic)
        q = _qos(qos)
        for s in self._subs:
            if s[0] == t:
                s[1] = q
                break
        else:
            self._subs.append([t, q])
        if not await self.wait_up(self.cfg["publish_timeout_ms"]):
            raise LinkDown("subscribe: no broker connection within the allowed time")
        await self.driver.subscribe(t, q)

    async def unsubscribe(self, topic):
        t = _topic(topic)
        self._subs = [s for s in self._subs if s[0] != t]
        if not await self.wait_up(self.cfg["publish_timeout_ms"]):
            raise LinkDown("unsubscribe: no broker connection within the allowed time")
        await self.driver.unsubscribe(t)

    def subscriptions(self):
        return [(s[0], s[1]) for s in self._subs]

    def messages(self):
        """Async iterator of ``(topic, payload)`` bytes; exclusive with ``on_message``."""
        if self.on_message is not None:
            raise ValueError("messages() and on_message are exclusive: on_message is set")
        return _Messages(self)

    # ---- supervisor ------------------------------------------------------------------------

    def _idle_ms(self):
        """Time left until the idle health check is due (nothing came or went and no check
        for ``health_s``); 0 when it is due."""
        now = self._clock()
        h = self.cfg["health_s"] * 1000
        since = ticks_diff(now, self._last_activity)
        since_h = ticks_diff(now, self._last_health)
        return 0 if since >= h and since_h >= h else h - min(since, since_h)

    def _pulse(self):
        # wake every caller waiting in wait_up (they look at the link and their deadline)
        w = self._wake
        w.set()
        w.clear()

    async def _timer(self):
        # Once a second: wakes the supervisor (a KICK on an empty queue) when the health
        # check is due, so that it waits on the queue alone (a ``wait_for`` there held a
        # task and two frames all the time, ~700 bytes, and left a CancelledError at every
        # event), and the callers waiting for the link (their deadlines).  No allocation.
        q = self.events
        while not self._closing:
            if self._idle_ms() <= 0 and not len(q):
                q.put(_EV_URC, KICK, 0)
            await sleep_ms(_TICK_MS)
            if self._waiters:
                self._pulse()

    async def run(self):
        """The supervisor: forever (until ``disconnect``) dispatch events, recover, check."""
        q = self.events
        lk = self.link
        timer = asyncio.create_task(self._timer())
        self._ticking = True
        try:
            while not self._closing:
                if lk.state == _ST_FATAL:
                    # parked: only the long backoff or retry() (set/reconnect) tries again
                    while True:
                        k = q.get()
                        if k < 0:
                            break
                        self._dispatch(k, q.a, q.b)
                    if not await lk.wait_retry():
                        continue
                    rung = _RUNG_DATA
                else:
                    k = q.get()
                    if k < 0:
                        # the idle health check is due when nothing came or went for health_s
                        if self._idle_ms() > 0:
                            await q.wait()  # an event, or _timer's KICK when the check is due
                            continue
                        rung = await self._health()
                    else:
                        rung = self._dispatch(k, q.a, q.b)
                        if rung == _HEALTH_NOW:
                            rung = await self._health()
                    if rung < 0 or self._closing:
                        continue
                    # trouble comes in bursts (CONNLOST, NONET, +CIPEVENT...): take the whole
                    # burst first and start on the highest rung it asks for
                    while True:
                        k = q.get()
                        if k < 0:
                            break
                        r2 = self._dispatch(k, q.a, q.b)
                        if r2 > rung:
                            rung = r2
                # recover here, not in a coroutine of its own: one frame less under the
                # ladder's (the recovery path's stack of frames is the heap's peak, issue 11)
                self._set_down()
                try:
                    await self.recovery.recover(rung)
                except Exception as e:  # a fatal error, or max_attempts reached: report
                    self.last_error = e
                    if is_fatal(e):
                        self.link.fail(e)  # off the ladder: no CFUN/CRESET/power cycle
                    continue
                self.reconnects += 1
        finally:
            self._ticking = False
            timer.cancel()
            self._pulse()  # the waiters poll from now on

    def _dispatch(self, k, a, b):
        """One event -> a rung to recover from, or -1."""
        d = self.driver
        m = self.modem
        if k == _EV_MSG:
            self.rx += 1
            self._last_activity = self._clock()
            cb = self.on_message
            if cb is None:
                self._msg_ev.set()  # messages() takes it
                return -1
            inbox = self.inbox
            while True:
                s = inbox.get()
                if s < 0:
                    break
                try:
                    cb(inbox.topic(s), inbox.payload(s))
                    self.delivered += 1
                except Exception as e:  # the app's bug must not stop the supervisor
                    self.last_error = e
                inbox.release()
        elif k == _EV_MSG_DROPPED:
            self.rx_dropped += 1
        elif k == _EV_CONNLOST:
            self.connlost += 1
            if not d.connected:  # a CONNLOST from before the last recovery is stale
                self.link.lost(_ST_CLIENT_ACQUIRED)
                return _RUNG_SESSION
        elif k == _EV_NONET:
            self.nonet += 1
            if not m.data_open:
                self.link.lost(_ST_REGISTERED)
                return _RUNG_DATA
            if not d.connected:
                self.link.lost(_ST_DATA_UP)  # +CMQTTNONET: the MQTT service stopped (16.4)
                return _RUNG_SESSION
        elif k == _EV_REBOOT:
            self.reboots += 1
            if not m.inited:
                self.link.lost(_ST_BOOTING)  # (the modem's handler told it already)
                return _RUNG_DATA  # re-init, SIM, registration, data, session
        elif k == _EV_SIM:
            self.sim_events += 1
        elif k == _EV_REG:
            self.reg_events += 1
        elif k == _EV_URC and a == KICK:
            if self._suspect and self.up.is_set():
                self._suspect = False
                return _HEALTH_NOW  # a publish failed while the link looked up: check it
        return -1

    async def _health(self):
        """Idle check: is the broker session alive (and, rarely, the registration)?"""
        self._last_health = self._clock()
        self.health_checks += 1
        self.recovery.tick()
        if not self._connected_once:
            return -1
        try:
            ok = await self.driver.is_connected()
            now = self._clock()
            if ticks_diff(now, self._last_reg) >= self.cfg["reg_check_s"] * 1000:
                self._last_reg = now
                self.last_reg = await self.modem.registration()
        except ATTimeout as e:
            self.last_error = e
            self.health_failures += 1
            return _RUNG_PROBE
        except ModemError as e:
            self.last_error = e
            ok = False
        if ok:
            if not self.up.is_set():
                self._set_up()
            return -1
        self.health_failures += 1
        return _RUNG_SESSION

    def _quick(self, e):
        # Recovery: retry at once after a command that waited out its manual deadline, or
        # an attempt the module's reboot cut short (it is up again: nothing to wait for)
        return isinstance(e, ATTimeout) or not getattr(self.modem, "inited", True)

    def _step(self, step, rung, detail):
        f = self.on_recovery
        if f is not None:
            f(step, rung, detail)

    # ---- rungs (the actions the ladder runs; each ends with the session up) ----------------

    async def _timed_out(self, e):
        # A timeout inside a repair: if the module does not answer AT either, go to reset.
        # (Called from the action's except clause, not wrapping its coroutine: one frame
        # less on the recovery path's stack of coroutines.)
        if not await self.modem.probe(3):
            raise Escalate(_RUNG_RESET) from None
        raise e

    async def _act_probe(self):
        # The link fell below data_up while this episode ran (a reboot or a PDP loss that
        # the reader saw): a session rebuild cannot work, rebuild from the data rung
        if self.link.sync() < _ST_DATA_UP or not self.modem.inited:
            raise Escalate(_RUNG_DATA)
        if not await self.modem.probe(3):
            raise Escalate(_RUNG_RESET)
        if self.driver.connected and await self.driver.is_connected():
            self._set_up()  # a false alarm (a timeout that passed)
            return True
        try:
            await self._session(self.cfg["clean"])
        except ATTimeout as e:
            await self._timed_out(e)
        return True

    async def _act_session(self):
        # The link fell below data_up while this episode ran (a reboot or a PDP loss that
        # the reader saw): a session rebuild cannot work, rebuild from the data rung
        if self.link.sync() < _ST_DATA_UP or not self.modem.inited:
            raise Escalate(_RUNG_DATA)
        try:
            await self._session(self.cfg["clean"])
        except ATTimeout as e:
            await self._timed_out(e)
        return True

    async def _act_data(self):
        try:
            await self.link.up(True)
            await self._session(self.cfg["clean"])
        except ATTimeout as e:
            await self._timed_out(e)
        return True

    async def _act_reset(self):
        if self.recovery.ladder.streak == 0 and await self.modem.probe(1):
            # first try on this rung, module answering: detach/re-attach the radio
            # (AT+CFUN=0/1) cures a stuck registration or PDP without a reboot
            await self.link.radio_cycle()
        else:
            await self.link.restart()
        await self._session(self.cfg["clean"])
        return True

    async def _act_power(self):
        await self.link.power_cycle()
        await self._session(self.cfg["clean"])
        return True
