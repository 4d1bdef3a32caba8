"""The one owner of the cellular link: an explicit state machine from power-on to subscribed.

``Link`` is the only code that brings the module up (power, boot, init, SIM,
registration, APN, data) and the only one that asks it for network facts
(operator ``AT+COPS?``, network time ``AT+CNTP`` / ``AT+CCLK?``).  The MQTT
client and the telelogger ask it for the link; they never send bring-up
commands themselves.

States, lowest first (after Zephyr ``modem_cellular``): every transition goes
through ``_enter`` (which resets what depends on the state left) and is logged
by name (``atmq.log``, tag ``link``)::

    off booting at_ready sim_ready registered data_up
    mqtt_started client_acquired connected subscribed      fatal

What lowers the state comes from the reader: a reboot URC (``RDY``/``APP RDY``
mid-session) or a PDP/network loss (``+CGEV ... DEACT``, ``+NETCLOSE``,
``+CMQTTNONET``, ``+CMQTTCONNLOST``).  Those handlers only *record* the lowest
state reached (``lost()``) and abort the driver's pending result wait (so a
publish waiting for its ``+CMQTTPUB`` fails at once instead of after its
timeout); the task side applies it with ``sync()`` and rebuilds from there.

``fatal``: an error that no retry of the ladder can fix (credentials refused,
no SIM, PIN locked, a modem firmware that lacks a feature, a bad setting).
The link parks there with the code and its meaning (``fatal_text``), health
and status say so, and it is tried again only after ``fatal_retry_ms``
(minutes, configurable) or at once on ``retry()`` (a ``set`` of a link key or
a ``reconnect`` command); never by power cycling the modem.
"""

import asyncio

from . import log
from .compat import const, sleep_ms, ticks_add, ticks_diff, ticks_ms
from .errors import ModemError

ST_OFF = const(0)
ST_BOOTING = const(1)
ST_AT_READY = const(2)
ST_SIM_READY = const(3)
ST_REGISTERED = const(4)
ST_DATA_UP = const(5)
ST_MQTT_STARTED = const(6)
ST_CLIENT_ACQUIRED = const(7)
ST_CONNECTED = const(8)
ST_SUBSCRIBED = const(9)
ST_FATAL = const(10)
STATE_NAMES = ("off", "booting", "at_ready", "sim_ready", "registered", "data_up",
               "mqtt_started", "client_acquired", "connected", "subscribed", "fatal")

_REG_POLL_MS = const(2000)
_BOOT_RESTARTS = const(3)  # reboots during one bring-up that restart it at once
# mirrored (folded at compile time: no global each, issue 11)
_FATAL = const(3)  # = atmq.errtab.FATAL
_CNTP_IDLE = const(-2)
_CNTP_WAIT = const(-1)
_CNTP_UNHOOKED = const(-3)  # the +CNTP: handler is not registered yet
NTP_HOST = b"pool.ntp.org"


def state_name(st):
    return STATE_NAMES[st] if 0 <= st < len(STATE_NAMES) else "state %d" % st


def is_fatal(e):
    """True for an error no retry of the recovery ladder can fix (errtab FATAL class,
    ``tls.FirmwareError``, a ``ConfigError``/``ValueError`` from a setting)."""
    if isinstance(e, ModemError):
        return e.cls == _FATAL
    return isinstance(e, (ValueError, TypeError))


class Link:
    """The state machine of one modem's link (see the module docstring).

    ``modem``: an ``atmq.modem.Modem``; ``driver``: the family MQTT driver (its
    ``reset()`` is called when the module rebooted, its ``lost()`` from the reader
    on any link loss).  Timeouts: ``reg_timeout_ms`` for registration,
    ``boot_timeout_ms`` for the boot URCs / first ``OK``.
    """

    def __init__(self, modem, driver=None, reg_timeout_ms=180000, boot_timeout_ms=30000,
                 fatal_retry_ms=1800000, sleep=None, clock=None):
        self.modem = modem
        self.driver = driver
        self.reg_timeout_ms = reg_timeout_ms
        self.boot_timeout_ms = boot_timeout_ms
        self.fatal_retry_ms = fatal_retry_ms
        self._sleep = sleep or sleep_ms
        self._clock = clock or ticks_ms
        self.state = ST_OFF
        self.transitions = 0
        self.fatal_error = None  # the exception that parked the link in ST_FATAL
        self.fatals = 0
        self._fatal_at = 0
        self._retry = asyncio.Event()
        self._lost = -1  # the lowest state a reader handler recorded (-1: none)
        self._apn_sent = False  # CGDCONT/CGAUTH done since the last boot (issue 10 #9)
        self.operator = None
        self._op_reg = [None, None, None]  # m.reg when the operator was last asked
        self.last_reg = None
        self.ntp_synced = False
        self.last_time_error = None
        self.mqtt_fresh = False  # the module booted since the MQTT service last started
        self._cntp = _CNTP_UNHOOKED
        self._drv_lost = getattr(driver, "lost", None) if driver is not None else None
        modem.on_lost = self.lost

    # ---- state -----------------------------------------------------------------------------

    @property
    def name(self):
        return state_name(self.state)

    def at_least(self, st):
        return self.state != ST_FATAL and self.state >= st

    def _enter(self, st, why=""):
        """The one place the state changes: reset what depended on the state left, log it."""
        old = self.state
        if st == old:
            return
        self.state = st
        self.transitions += 1
        # Bringing one boot up: the URCs that boot prints late are its own, not a reboot.
        # The A76xx prints "APP RDY" seconds after RDY/+CPIN/SMS DONE/PB DONE, often after
        # init and while the SIM or registration is polled: counted as a reboot it cost a
        # second init at every cold boot.  The modem then applies its bring-up rule (a RDY,
        # or an "APP RDY" this boot printed already, is a new boot: Modem._boot).  Only on
        # the climb from booting: a link that falls below data_up later (PDP or registration
        # lost) brings no boot up, and an "APP RDY" then is a new boot (its RDY may be lost
        # in the garbage a module prints as it resets).
        if st <= ST_BOOTING:
            self.modem.settling = st == ST_BOOTING
        elif st >= ST_DATA_UP:
            self.modem.settling = False
        if st != ST_FATAL and old == ST_FATAL:
            self.fatal_error = None
        if st <= ST_BOOTING and old > ST_BOOTING and old != ST_FATAL:
            # the module (re)booted: its echo, URC modes, PDP, APN and MQTT service are gone
            self._apn_sent = False
            self.mqtt_fresh = True
            d = self.driver
            if d is not None:
                f = getattr(d, "reset", None)
                if f is not None:
                    f()
        if why:  # (no " (" + why + ")" built: two strings less per transition)
            log.info("link", "%s -> %s (%s)", state_name(old), state_name(st), why)
        else:
            log.info("link", "%s -> %s", state_name(old), state_name(st))

    def lost(self, to):
        """Reader side (URC handlers): the link fell to state ``to``.  Records only and
        aborts the driver's pending result wait; ``sync()`` applies it in a task."""
        if self._lost < 0 or to < self._lost:
            self._lost = to
        f = self._drv_lost
        if f is not None:
            f(to <= ST_BOOTING)

    def sync(self):
        """Apply what the reader recorded (reboot, PDP or connection loss); returns the state."""
        to = self._lost
        if to >= 0:
            self._lost = -1
            if to < self.state and self.state != ST_FATAL:
                self._enter(to, "reboot" if to <= ST_BOOTING else "lost")
        return self.state

    def mark(self, st, why=""):
        """The MQTT layer reports how far its part got (mqtt_started..subscribed) or fell."""
        if self.state != ST_FATAL:
            if st == ST_MQTT_STARTED:
                self.mqtt_fresh = False
            self._enter(st, why)

    # ---- fatal -----------------------------------------------------------------------------

    def fail(self, e):
        """Park the link in ``fatal`` with ``e`` (the ladder stops; see ``wait_retry``)."""
        self.fatal_error = e
        self.fatals += 1
        self._fatal_at = self._clock()
        self._retry.clear()
        self._enter(ST_FATAL, self.fatal_text() or "")
        log.error("link", "fatal: %s; next try in %d s (or on set/reconnect)",
                  self.fatal_text(), self.fatal_retry_ms // 1000)

    def fatal_text(self):
        e = self.fatal_error
        if e is None:
            return None
        if isinstance(e, ModemError):
            return log.redact(str(e))  # the manual's code and meaning, the command masked
        return "%s: %s" % (type(e).__name__, log.redact(str(e)))

    def retry(self):
        """Leave ``fatal`` now (a ``set``/``reconnect`` command): the next attempt runs at once."""
        self._retry.set()

    async def wait_retry(self, step_ms=10000):
        """In ``fatal``: return when the long backoff ran out or ``retry()`` was called;
        at most ``step_ms`` per call (the caller beats its watchdog between calls).
        True when it is time to try again."""
        if self.state != ST_FATAL:
            return True
        left = self.fatal_retry_ms - ticks_diff(self._clock(), self._fatal_at)
        if not self._retry.is_set() and left > 0:
            # in steps of at most 1 s on the link's own sleep (a fake clock in tests)
            step = min(left, step_ms, 1000)
            await self._sleep(step)
            left = self.fatal_retry_ms - ticks_diff(self._clock(), self._fatal_at)
        if self._retry.is_set() or self.state != ST_FATAL or left <= 0:
            self._retry.clear()
            self._enter(ST_OFF if not self.modem.inited else ST_AT_READY, "retry after fatal")
            return True
        return False

    # ---- bring-up --------------------------------------------------------------------------

    async def up(self, reopen=False, first=False):
        """From wherever the link is to ``data_up``: init after a reboot, SIM (PIN once),
        registration (bounded wait), APN (+ credentials, again after every boot), data.

        ``reopen``: close and reopen the data path even when it looks open (a stuck PDP).
        ``first``: a cold start (power, boot wait).  Raises ``ModemError`` with the code
        that names the reason (CME 10/11/12/13/14 for the SIM, 30 no service, 111 denied).

        A reboot of the module during any of it (its boot URCs abort the command in
        flight, ``Modem._boot``) starts it again from ``booting`` at once, up to
        ``_BOOT_RESTARTS`` times: the module lost every setting made so far, and waiting
        out a deadline or a backoff for that would only delay the rebuild.
        """
        m = self.modem
        n = 0
        while True:
            seq = getattr(m, "boots", 0)
            try:  # (inline, not a coroutine of its own: one frame less at every bring-up)
                self.sync()
                if first:  # cold start: PWRKEY, the boot URCs or an ``AT`` answer, ``init``
                    self._enter(ST_BOOTING, "power on")
                    await m.power_on()
                    await m.wait_ready(min(self.reg_timeout_ms, self.boot_timeout_ms))
                    await m.init()
                    self._enter(ST_AT_READY)
                elif not m.inited:
                    self._enter(ST_BOOTING, "module not initialised")
                    await m.wait_ready(self.boot_timeout_ms)
                    await m.init()
                    self._enter(ST_AT_READY)
                elif self.state < ST_AT_READY or self.state == ST_FATAL:
                    self._enter(ST_AT_READY)
                elif reopen and self.state > ST_REGISTERED:
                    self._enter(ST_REGISTERED, "reopen data")
                await self._sim()
                # a reboot between two commands aborted none of them: do not go on with a module
                # that lost its settings (``up`` starts again from booting)
                if not m.inited:
                    raise ModemError("AT", -2, b"RDY")
                await self._registered()
                if not m.inited:
                    raise ModemError("AT", -2, b"RDY")
                apn = getattr(m, "apn", None)
                if apn and getattr(m, "family", "cmqtt") == "cmqtt" and not self._apn_sent:
                    # CGDCONT + CGAUTH before data, after every boot: a failed CGAUTH leaves
                    # _apn_sent False so the credentials are sent again next time (issue 10 #9)
                    await m.set_apn(apn, m.apn_user, m.apn_password)
                    self._apn_sent = True
                if reopen and m.data_open:
                    try:
                        await m.data_down()
                    except ModemError as e:
                        log.warn("link", "data_down before reopen: %s", e)
                if reopen or not m.data_open:
                    await m.data_up()
                if not m.inited:
                    raise ModemError("AT", -2, b"RDY")
                self.sync()
                self._enter(ST_DATA_UP)
            except Exception:
                if getattr(m, "boots", 0) == seq or n >= _BOOT_RESTARTS:
                    raise
            else:
                if getattr(m, "boots", 0) == seq:
                    return
                if n >= _BOOT_RESTARTS:
                    raise ModemError("AT", -2, b"RDY")  # rebooting faster than it comes up
            n += 1
            log.warn("link", "the module rebooted during bring-up: from booting again (%d)", n)
            first = False  # powered: wait for it, no PWRKEY pulse (that would switch it off)
            reopen = False  # a boot closed the data path

    async def _sim(self):
        m = self.modem
        deadline = ticks_add(self._clock(), self.reg_timeout_ms)
        while True:
            st = await m.sim_state()
            if st == "READY":
                break
            if st != "BUSY" or ticks_diff(deadline, self._clock()) <= 0:
                # the CME code that names the state (manual 25.3 / 27.007 9.2.1)
                code = (10 if st == "NOT INSERTED" else 11 if st == "SIM PIN"
                        else 12 if st == "SIM PUK" else 14 if st == "BUSY" else 13)
                raise ModemError("CME", code, b"AT+CPIN?")
            await self._sleep(_REG_POLL_MS)
        if self.state < ST_SIM_READY:
            self._enter(ST_SIM_READY)

    async def _registered(self):
        m = self.modem
        deadline = ticks_add(self._clock(), self.reg_timeout_ms)
        while True:
            stat = await m.registration()
            self.last_reg = stat
            if stat == 1 or stat == 5 or stat == 9 or stat == 10:  # modem.reg_ok
                break
            left = ticks_diff(deadline, self._clock())
            if left <= 0:
                if stat == 3:
                    raise ModemError("CME", 111, b"AT+CEREG?")  # denied (PLMN not allowed)
                raise ModemError("CME", 30, b"AT+CEREG?")  # no network service
            await self._sleep(_REG_POLL_MS if left > _REG_POLL_MS else left)
        if self.state < ST_REGISTERED:
            self._enter(ST_REGISTERED)

    async def radio_cycle(self):
        """``AT+CFUN=0/1`` (re-attach without a reboot), then up with the data reopened."""
        self._enter(ST_AT_READY, "radio cycle")
        await self.modem.radio_cycle()
        await self.up(True)

    async def restart(self):
        """Software reboot (AT+CRESET / AT+CFUN=1,1), then up."""
        self._enter(ST_BOOTING, "restart")
        await self.modem.restart(self.boot_timeout_ms)
        self._enter(ST_AT_READY)
        await self.up(False)

    async def power_cycle(self):
        """Hardware reset through the board's pins, then up."""
        m = self.modem
        self._enter(ST_OFF, "power cycle")
        await m.power_cycle()
        self._enter(ST_BOOTING)
        await m.wait_ready(self.boot_timeout_ms)
        await m.init()
        self._enter(ST_AT_READY)
        await self.up(False)

    # ---- network facts (the only place that asks for them) ---------------------------------

    async def query_operator(self, idle=True):
        """``AT+COPS?``: the operator name or None; kept in ``operator``.

        The manual gives AT+COPS one max response time, 60 s, for every form, the read
        included (003 s.4.2.2): a module that does not answer holds the one AT channel
        that long.  So it is asked only when it can cost nothing: the link is up
        (connected; never inside bring-up or a rebuild), the caller is ``idle``
        (nothing waiting to be sent), and the answer may have changed (first time, or the
        registration changed since); else the last answer is returned.
        """
        m = self.modem
        reg = m.reg
        was = self._op_reg  # (compared and kept in place: no tuple per call)
        if reg[0] == was[0] and reg[1] == was[1] and reg[2] == was[2]:
            return self.operator  # asked since the last registration change
        if not idle or not self.at_least(ST_CONNECTED):
            return self.operator
        r = await m.at.cmd(b"AT+COPS?", resp=b"+COPS:", timeout_ms=60000)  # 003 s.4.2.2
        a = r.find(b"+COPS:")
        if a is not None and a.count() >= 3:
            self.operator = a.arg_str(2)
        was[0] = reg[0]
        was[1] = reg[1]
        was[2] = reg[2]
        return self.operator

    def _on_cntp(self, a):
        # URC handler (inside the reader): record only.  "+CNTP: <err>" (one argument) is
        # the result of AT+CNTP; the two-argument form answers AT+CNTP? (never seen here).
        self._cntp = a.arg_int(0, 99)

    async def network_time(self, use_ntp, timeout_ms=65000, ntp_host=NTP_HOST):
        """(UTC seconds since 2000 or None, synced by NTP).

        With ``use_ntp`` (the data path is up): ``AT+CNTP="<host>",0`` then ``AT+CNTP``,
        whose OK comes at once and whose ``+CNTP: <err>`` result comes later (manual
        12.2.4; up to a minute in bad coverage): a URC handler takes it, so the AT channel
        stays free meanwhile.  Then ``AT+CCLK?`` in any case.  Errors of the NTP part are
        returned as a failed sync (counted by the caller), the clock read raises.
        """
        m = self.modem
        at = m.at
        ntp = False
        err = None
        if use_ntp:
            try:
                if self._cntp == _CNTP_UNHOOKED:
                    at.on(b"+CNTP:", self._on_cntp, 1)
                await at.cmd(b'AT+CNTP="' + ntp_host + b'",0', timeout_ms=5000)
                self._cntp = _CNTP_WAIT
                await at.cmd(b"AT+CNTP")
                deadline = ticks_add(ticks_ms(), timeout_ms)
                while self._cntp == _CNTP_WAIT and ticks_diff(deadline, ticks_ms()) > 0:
                    await sleep_ms(200)
                if self._cntp == _CNTP_WAIT:
                    err = "no +CNTP result within %d ms" % timeout_ms
                # success is 0 on SIM7600/A76xx/SIM767x (manual 12.2.4) but 1 on the
                # SIM800/SIM70x0 ("+CNTP: 1", their AT manuals)
                ntp = self._cntp == (1 if m.family == "sm" else 0)
            except ModemError as e:
                err = e
            self._cntp = _CNTP_IDLE
        s = await m.clock()
        self.ntp_synced = self.ntp_synced or ntp
        self.last_time_error = err
        return s, ntp
