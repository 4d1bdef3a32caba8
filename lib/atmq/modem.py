"""The modem itself: power and boot, identity facts, SIM, registration, radio, data, clock, GNSS.

Owns everything about the module that is not MQTT: ``Modem`` holds the steps of
its bring-up (PWRKEY through ``power``, boot URCs or an ``AT`` probe loop,
``init``, SIM, registration, data) that ``atmq.link.Link`` runs in order, keeps
what it learned (``facts``: manufacturer, model, revision, firmware, imei,
iccid) and the state the URCs report (``sim``, ``reg``, ``data_open``), and
turns the unsolicited ones into events on the shared ``EventQueue``:

- ``RDY`` / ``APP RDY`` after ``init`` finished: the module rebooted by itself
  -> ``EV_REBOOT`` (a: which URC), state reset, the command in flight aborted;
- ``+CPIN: <code>`` -> ``EV_SIM`` (a: 1 ready, 0 not);
- ``+CREG/+CGREG/+CEREG: <stat>`` -> ``EV_REG`` (a: stat, b: 0/1/2 domain);
- PDP gone (``+CGEV: NW|ME [PDN] DEACT|DETACH`` manual 5.2.10, ``+NETCLOSE``,
  ``+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY`` manual 13.4, SIM800/SIM7000
  ``+PDP: DEACT``, ``+SAPBR 1: DEACT``, ``+APP PDP: [0,]DEACTIVE``) -> ``EV_NONET``.

Two data paths: the ``cmqtt`` family (SIM7600, A76xx, SIM767x) opens the
socket PDP with ``AT+NETOPEN`` (manual 13.2.1); the ``sm`` family uses the
bearer ``AT+SAPBR`` (SIM800 MQTT note 4.1) or ``AT+CNACT`` (SIM7000: one
context with the APN; SIM7070/SIM7080: ``<pdpidx>,<action>``).

Handlers only record state and enqueue events (they run inside the reader);
every command has a deadline taken from the manual's "Max Response Time".
"""

import asyncio
from array import array

from .compat import const, ticks_diff, ticks_ms
from .errors import ConfigError, ModemError
from .fix import Fix

# Other modules' constants, mirrored (folded at compile time: no global-dict entry each,
# issue 11; tests_host/test_const_mirrors.py checks them)
_R_OK = const(1)  # = atmq.engine.R_OK
_EV_NONET = const(4)  # = atmq.events.EV_NONET
_EV_REBOOT = const(5)  # = atmq.events.EV_REBOOT
_EV_SIM = const(6)  # = atmq.events.EV_SIM
_EV_REG = const(7)  # = atmq.events.EV_REG

# Boot URC bits (Modem.boot_urcs; the a of EV_REBOOT)
BOOT_RDY = const(1)
BOOT_CPIN = const(2)  # +CPIN: READY
BOOT_SMS = const(4)  # SMS DONE
BOOT_PB = const(8)  # PB DONE
BOOT_APP = const(16)  # APP RDY (A76xx)
# Modem._regn[_B_SEEN]: the boot URC bits (boot_urcs) and _B_SIM_READY while sim is "READY";
# the reader skips SMS DONE, PB DONE and +CPIN: READY when their bits are there already
# (Engine.on_seen): a repeat would change nothing (RDY and APP RDY always run: a new boot)
_B_SEEN = const(12)
_B_SIM_READY = const(256)

# EV_NONET causes (a) raised here; drivers use their own (CMQTTNONET...)
NONET_CGEV = const(1)  # +CGEV: ... DEACT / DETACH (27.007 packet domain events)
NONET_NETCLOSE = const(2)  # +NETCLOSE: <err> while we did not close it
NONET_CIPEVENT = const(3)  # +CIPEVENT: NETWORK CLOSED UNEXPECTEDLY
NONET_PDP = const(4)  # +PDP: DEACT, +SAPBR 1: DEACT, +APP PDP: DEACTIVE (sm family)

# Registration <stat> (manual 4.2.1 / 5.2.1 / 5.2.3; 3GPP TS 27.007 7.2, 10.1.20)
_REG_NAMES = const((
    "not registered, not searching",
    "registered, home",
    "not registered, searching",
    "registration denied",
    "unknown",
    "registered, roaming",
    "registered for SMS only, home",
    "registered for SMS only, roaming",
    "attached for emergency bearer services only",
    "registered for CSFB not preferred, home",
    "registered for CSFB not preferred, roaming",
    "attached for emergency bearer services only",  # SIMCom's number (manual 5.2.1)
))
REG_UNKNOWN = const(-1)  # not asked yet / domain not supported
_LOST_BOOTING = const(1)  # link.ST_BOOTING: what on_lost is told after a reboot
_LOST_NODATA = const(4)  # link.ST_REGISTERED: the data path is gone
# +CPIN: <code> values (003 s.6.2.2) the URC handler maps without allocating
_CPIN_CODES = const((b"READY", b"SIM PIN", b"SIM PUK", b"PH-SIM PIN", b"SIM PIN2", b"SIM PUK2",
               b"PH-NET PIN", b"NOT INSERTED", b"NOT READY"))
_CPIN_NAMES = const(("READY", "SIM PIN", "SIM PUK", "PH-SIM PIN", "SIM PIN2", "SIM PUK2",
               "PH-NET PIN", "NOT INSERTED", "NOT READY"))
_DOMAINS = const((b"+CREG:", b"+CGREG:", b"+CEREG:"))
_REG_QUERY = const((b"AT+CREG?", b"AT+CGREG?", b"AT+CEREG?"))
_NOINT = const(-0x3FFFFFFF)  # arg_int default that no field value reaches


def reg_name(stat):
    """Words for a registration ``stat`` (the manual's), ``"stat N"`` beyond the table."""
    if 0 <= stat < len(_REG_NAMES):
        return _REG_NAMES[stat]
    return "not asked" if stat == REG_UNKNOWN else "stat %d" % stat


def reg_ok(stat):
    """True for a stat that carries packet data: home or roaming (incl. CSFB not preferred)."""
    return stat == 1 or stat == 5 or stat == 9 or stat == 10


def reg_roaming(stat):
    return stat == 5 or stat == 7 or stat == 10


def csq_dbm(rssi):
    """AT+CSQ <rssi> -> dBm (manual 3.2.2: 0 = -113 or less, 31 = -51 or more), None if 99."""
    if 0 <= rssi <= 31:
        return -113 + 2 * rssi
    if 100 <= rssi <= 191:  # TD-SCDMA range of 27.007: 100 = -116 dBm, 191 = -25 dBm
        return rssi - 216
    return None


def _digits(b, s, n):
    v = 0
    for i in range(s, s + n):
        d = b[i] - 48
        if d < 0 or d > 9:
            return -1
        v = v * 10 + d
    return v


def parse_cclk(text):
    """``yy/MM/dd,hh:mm:ss+zz`` (AT+CCLK, zz: signed quarter hours) -> (UTC s since 2000, tz).

    Returns None when the module has no network time yet (its clock starts in
    1970/1980: a two-digit year of 70 or more) or the text is malformed.
    """
    b = text if isinstance(text, (bytes, bytearray)) else text.encode()
    if len(b) < 20 or b[2] != 47 or b[5] != 47 or b[8] != 44 or b[11] != 58 or b[14] != 58:
        return None
    yy = _digits(b, 0, 2)
    mo = _digits(b, 3, 2)
    dd = _digits(b, 6, 2)
    hh = _digits(b, 9, 2)
    mi = _digits(b, 12, 2)
    ss = _digits(b, 15, 2)
    sign = b[17]
    tz = _digits(b, 18, len(b) - 18)
    if min(yy, mo, dd, hh, mi, ss, tz) < 0 or sign not in (43, 45):
        return None
    if yy >= 70 or not (1 <= mo <= 12 and 1 <= dd <= 31 and hh < 24 and mi < 60 and ss < 61):
        return None
    if tz > 96:
        return None
    if sign == 45:
        tz = -tz
    from .fix import days_since_2000

    local = days_since_2000(2000 + yy, mo, dd) * 86400 + hh * 3600 + mi * 60 + ss
    return local - tz * 900, tz


def _need_gnss(m):
    s = m.gnss_set
    if s is None:
        raise ConfigError("modem.model", "no modem GNSS command set known for %r"
                          % (m.facts["model"],))
    return s


class Modem:
    """Bring-up and facts of one SIMCom module on an ``Engine`` (see the module docstring).

    ``board``: a validated board dict (``atmq.board``) or None (no pins: the
    unix port); ``family``: "cmqtt" or "sm"; ``pin_factory``: ``machine.Pin``
    or a test fake; ``pin``: the SIM PIN to enter once when asked; ``apn``
    (+ ``apn_user``/``apn_password``) for ``data_up`` on the sm family.
    """

    def __init__(self, at, events, board=None, family="cmqtt", pin_factory=None, pin=None,
                 apn=None, apn_user=None, apn_password=None):
        if family not in ("cmqtt", "sm"):
            raise ConfigError("modem.family", "must be 'cmqtt' or 'sm', got %r" % (family,))
        self.at = at
        self.events = events
        self.board = board
        self.family = family
        self.pins = pin_factory
        self.pin = pin
        self.apn = apn
        self.apn_user = apn_user
        self.apn_password = apn_password
        self.facts = {"manufacturer": None, "model": None, "revision": None, "firmware": None,
                      "imei": None, "iccid": None}
        if board is not None:
            m = board.get("modem") or {}
            if m.get("model"):
                self.facts["model"] = m["model"]
        self.reg = [REG_UNKNOWN, REG_UNKNOWN, REG_UNKNOWN]  # CREG, CGREG, CEREG
        # Per domain d (CREG, CGREG, CEREG) at 3 * d: the URC's first two numbers, stored by
        # the reader (Engine.on_store), and the URCs seen (a query answer must not undo one);
        # at 9 + d the URC's argument count (its handler runs only on a change: on_change).
        self._regn = array("i", bytes(4 * 13))  # 12: boot_urcs (see _B_SEEN)
        self.boot_urcs = 0  # BOOT_* bits seen since the last reset_state()
        self.reboots = 0  # spontaneous reboots seen after init
        self.boots = 0  # reboots seen while the link used the module (asked for or not)
        self.pin_attempts = 0  # PINs sent (one per need, never after a rejection)
        self.pin_rejected = False
        self.netclose_ms = 120000  # AT+NETOPEN/NETCLOSE max response (manual 13.2.1)
        self._ready_ev = asyncio.Event()
        self._session = False  # init() done: boot URCs now mean a reboot
        self._expect_boot = False  # a reset we asked for: no EV_REBOOT
        self._closing = False  # data_down in progress: our own PDP teardown URCs
        self._nonet_seq = 0  # PDP-loss URCs seen
        self._checked_seq = 0  # _nonet_seq when the data path was last checked up
        self._own_teardown = ticks_ms()  # until then "+CGEV: ME ..." is our own doing
        self._fix = Fix()
        self.cid = 1  # the PDP context the data path uses (NETOPEN's default, 003 s.13.2.1)
        self.cgerep = False  # +CGEV reporting is on (AT+CGEREP=1 answered OK)
        self.on_lost = None  # link.Link.lost(state): called from the handlers, records only
        # set by atmq.link while it brings this boot up (init done, not yet data_up): the
        # boot's own late URCs ("APP RDY") are not a reboot then (see _boot)
        self.settling = False
        self.reset_state()
        self._register()

    # ---- state ---------------------------------------------------------------------------

    def reset_state(self):
        """Forget what a reboot invalidates (echo is back on, PDP and GNSS are off)."""
        self.sim = None  # "READY", "SIM PIN", "SIM PUK", "NOT INSERTED", ... or None
        self._regn[_B_SEEN] &= ~_B_SIM_READY
        self.reg[0] = self.reg[1] = self.reg[2] = REG_UNKNOWN
        self._regn[9] = self._regn[10] = self._regn[11] = -1  # the next URCs are heard
        self.data_open = False
        self.ip = None
        self.gnss_on = False
        self.inited = False
        self._session = False
        self._awake = False  # wait_ready() returned since this boot: a RDY now is a new boot

    @property
    def model_key(self):
        # the product family inside the model string ("SIMCOM_SIM7600E" -> "SIM7600")
        m = (self.facts["model"] or "").upper()
        for k in ("SIM7600", "SIM7500", "SIM7670", "SIM7672", "A7670", "A7672", "A7608",
                  "A7600", "SIM7000", "SIM7070", "SIM7080", "SIM800"):
            if k in m:
                return k
        return ""

    @property
    def gnss_set(self):
        """"cgps" (SIM7600/SIM7500: AT+CGPS/AT+CGPSINFO), "cgnss" (A76xx/SIM767x:
        AT+CGNSSPWR/AT+CGNSSINFO, manual ch. 21) or None (no modem GNSS known)."""
        k = self.model_key
        if k in ("SIM7600", "SIM7500"):
            return "cgps"
        if k.startswith("A76") or k.startswith("SIM767"):
            return "cgnss"
        return None

    def __getattr__(self, name):
        # Only for names not found: the bring-up and recovery steps (power_on, power_cycle,
        # wait_ready, init, sim_state, set_apn, data_up, data_down, radio_cycle, restart)
        # and the rare queries (serving_cell(), data_is_open(), registered(), roaming,
        # expect_reboot()) live in atmq.modemq, imported for each call and dropped after
        # it (issue 11: each method here costs heap for the whole boot); AttributeError
        # for the rest.
        from . import modemq

        return modemq.attr(self, name)

    # ---- URC handlers (inside the reader: record and enqueue only) -----------------------

    @property
    def boot_urcs(self):
        """BOOT_* bits seen since the last reset_state() (kept where the reader reads them)."""
        return self._regn[_B_SEEN] & (_B_SIM_READY - 1)

    @boot_urcs.setter
    def boot_urcs(self, bits):
        n = self._regn
        n[_B_SEEN] = (n[_B_SEEN] & _B_SIM_READY) | bits

    def _register(self):
        at = self.at
        regn = self._regn
        at.on(b"RDY", self._on_rdy)
        at.on(b"APP RDY", self._on_app_rdy)
        at.on_seen(b"SMS DONE", self._on_sms_done, regn, _B_SEEN, BOOT_SMS)
        at.on_seen(b"PB DONE", self._on_pb_done, regn, _B_SEEN, BOOT_PB)
        at.on_seen(b"+CPIN: READY", self._on_cpin, regn, _B_SEEN, BOOT_CPIN | _B_SIM_READY,
                   nargs=1)
        at.on(b"+CPIN:", self._on_cpin)
        # the handlers run only when the numbers or their count changed (a repeated report
        # costs no Python call); whatever sets reg[d] otherwise writes -1 to _regn[9 + d]
        # and the reader sets reg[d] and posts EV_REG itself (on_state): <stat> first, the
        # second number of a stray read answer "<n>,<stat>" (2 arguments); a stat that is
        # not a number goes to the handler
        at.on_state(b"+CREG:", regn, 0, 1, 0, self._on_creg, 9, self.events, _EV_REG,
                    self.reg, 0, alt_count=2, seq=2)
        at.on_state(b"+CGREG:", regn, 0, 1, 3, self._on_cgreg, 10, self.events, _EV_REG,
                    self.reg, 1, alt_count=2, seq=5)
        at.on_state(b"+CEREG:", regn, 0, 1, 6, self._on_cereg, 11, self.events, _EV_REG,
                    self.reg, 2, alt_count=2, seq=8)
        for p in (b"+CGEV: NW DEACT", b"+CGEV: NW PDN DEACT", b"+CGEV: NW DETACH"):
            at.on(p, self._on_cgev)
        for p in (b"+CGEV: ME DEACT", b"+CGEV: ME PDN DEACT", b"+CGEV: ME DETACH"):
            at.on(p, self._on_cgev_me)
        at.on(b"+NETCLOSE:", self._on_netclose)
        at.on(b"+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY", self._on_cipevent)
        at.on(b"+PDP: DEACT", self._on_pdp_deact)
        at.on(b"+SAPBR 1: DEACT", self._on_pdp_deact)
        at.on(b"+APP PDP:", self._on_app_pdp)

    def _boot(self, bit):
        seen = self.boot_urcs & bit
        self.boot_urcs |= bit
        self._ready_ev.set()
        if self._session and not self.settling:
            new = bit == BOOT_RDY or bit == BOOT_APP
        else:
            # Bring-up (the module answered, init not finished, or the link still brings
            # this boot up: ``settling``): "RDY" is the first line a
            # booting module prints, before its UART takes commands, so one arriving now is
            # a new boot; "APP RDY" (A76xx) trails the others by seconds and is a new boot
            # only when this boot printed it already.  The command in flight would
            # otherwise wait out its deadline on a module that lost our settings.
            new = self._awake and (bit == BOOT_RDY or (bit == BOOT_APP and seen))
        if new:
            # the module restarted under us (brown-out, watchdog, crash)
            self.reset_state()
            self.boot_urcs = bit  # this boot's URCs from here on
            self.boots += 1
            if not self._expect_boot:
                self.reboots += 1
                self.events.put(_EV_REBOOT, bit)
                self.at.abort()
                f = self.on_lost
                if f is not None:
                    f(_LOST_BOOTING)

    def _on_rdy(self, a):
        self._boot(BOOT_RDY)

    def _on_app_rdy(self, a):
        self._boot(BOOT_APP)

    def _on_sms_done(self, a):
        self._boot(BOOT_SMS)

    def _on_pb_done(self, a):
        self._boot(BOOT_PB)

    def _set_sim(self, st):
        # EV_SIM on every change of the known state, whether a URC or a query saw it
        if st != self.sim:
            self.sim = st
            n = self._regn
            n[_B_SEEN] = (n[_B_SEEN] | _B_SIM_READY) if st == "READY" else \
                (n[_B_SEEN] & ~_B_SIM_READY)
            self.events.put(_EV_SIM, 1 if st == "READY" else 0)

    def _on_cpin(self, a):
        # inside the reader: no allocation (issue 10 #11), the state is one of the manual's
        # constants or "UNKNOWN"; ``sim_state()`` asks AT+CPIN? for anything else
        if a.arg_eq(0, b"READY"):
            self.boot_urcs |= BOOT_CPIN
            self._ready_ev.set()
            self._set_sim("READY")
            return
        for i in range(1, len(_CPIN_CODES)):
            if a.arg_eq(0, _CPIN_CODES[i]):
                self._set_sim(_CPIN_NAMES[i])
                return
        self._set_sim("UNKNOWN")

    # URC form is "<stat>[,<lac>,<ci>[,<act>]]"; a stray read answer "<n>,<stat>" has 2 args.

    def _on_reg(self, a, dom):
        # a URC that crossed a query (registration()): parsed and counted here
        self._regn[3 * dom + 2] += 1
        self._regn[9 + dom] = -1  # reg[dom] moved outside the store: the next URC is heard
        self._set_reg(dom, a.arg_int(1 if a.count() == 2 else 0))

    def _set_reg(self, dom, stat):
        if self.reg[dom] != stat:
            self.reg[dom] = stat
            self.events.put(_EV_REG, stat, dom)

    # From the reader: the numbers and their count already stored and the URC counted
    # (on_store); called only when they changed (on_change), a repeated report costs none.
    def _on_creg(self, a):
        n = self._regn
        stat = n[1] if n[9] == 2 else n[0]  # the reader stored the argument count
        if self.reg[0] != stat:
            self._set_reg(0, stat)

    def _on_cgreg(self, a):
        n = self._regn
        stat = n[4] if n[10] == 2 else n[3]  # the reader stored the argument count
        if self.reg[1] != stat:
            self._set_reg(1, stat)

    def _on_cereg(self, a):
        n = self._regn
        stat = n[7] if n[11] == 2 else n[6]  # the reader stored the argument count
        if self.reg[2] != stat:
            self._set_reg(2, stat)

    def _nonet(self, cause):
        if self._closing:
            return
        self._nonet_seq += 1
        self.data_open = False
        self.ip = None
        self.events.put(_EV_NONET, cause)
        f = self.on_lost
        if f is not None:
            f(_LOST_NODATA)

    def _ours(self, a):
        # 003 s.5.2.10: "+CGEV: NW|ME PDN DEACT <cid>[,<wlan_offload>]" and
        # "+CGEV: NW|ME DEACT <PDP_type>,<PDP_addr>[,<cid>]"; a DETACH drops every context.
        # Another context's deactivation (an IMS or a second APN) is not our data path.
        # No allocation: the digits before the first comma / the third argument are read.
        buf = a.buf
        s = a.s
        e = a.e
        j = s
        while j < e and buf[j] != 44:  # end of the first argument
            j += 1
        if a.startswith(b"+CGEV: NW PDN DEACT") or a.startswith(b"+CGEV: ME PDN DEACT"):
            k = j
            while k > s and 48 <= buf[k - 1] <= 57:
                k -= 1
            if k == j:
                return True  # no cid given: take it as ours
            cid = 0
            while k < j:
                cid = cid * 10 + buf[k] - 48
                k += 1
            return cid == self.cid
        if a.startswith(b"+CGEV: NW DEACT") or a.startswith(b"+CGEV: ME DEACT"):
            cid = a.arg_int(2, -1)
            return cid < 0 or cid == self.cid  # "[,<cid>]" absent: "if known to the MT"
        return True  # DETACH

    def _on_cgev(self, a):
        if self._ours(a):
            self._nonet(NONET_CGEV)

    def _on_cgev_me(self, a):
        # "ME" = the module itself deactivated: also the echo of our own NETCLOSE/CFUN=0,
        # which may trail the command's completion; ignored for a moment after those
        if ticks_diff(ticks_ms(), self._own_teardown) >= 0 and self._ours(a):
            self._nonet(NONET_CGEV)

    def _on_netclose(self, a):
        self._nonet(NONET_NETCLOSE)

    def _on_cipevent(self, a):
        self._nonet(NONET_CIPEVENT)

    def _on_pdp_deact(self, a):
        self._nonet(NONET_PDP)

    def _on_app_pdp(self, a):
        # SIM7000 "+APP PDP: DEACTIVE", SIM7070 "+APP PDP: 0,DEACTIVE"; ACTIVE is the open path
        if a.arg_eq(a.count() - 1, b"DEACTIVE"):
            self._nonet(NONET_PDP)

    # ---- power and boot --------------------------------------------------------------------

    async def probe(self, tries=3, timeout_ms=1000):
        """``AT`` up to ``tries`` times; True at the first OK."""
        for _ in range(tries):
            try:
                await self.at.cmd(b"AT", timeout_ms=timeout_ms)
                return True
            except ModemError:
                pass
        return False

    # ---- SIM and network -----------------------------------------------------------------

    async def registration(self):
        """Query CREG/CGREG/CEREG; returns the best data stat (see ``reg``/``reg_name``).

        Best: a registered packet domain (CEREG before CGREG), else a denial
        (3), else searching (2), else what there is.  Roaming (5) counts as
        registered; ``roaming`` says which.
        """
        for d in range(3):
            seq = self._regn[3 * d + 2]
            # a module without that domain (SIM800: no CEREG) answers ERROR: skipped
            r = await self.at.cmd(_REG_QUERY[d], resp=_DOMAINS[d], check=False)
            if r.final != _R_OK:
                continue
            for i in range(r.count):
                a = r.line(i)
                if a.count() == 2:  # the answer: "+CxREG: <n>,<stat>" (n=1 set by init)
                    if self._regn[3 * d + 2] == seq:  # else a URC after the answer is newer
                        self.reg[d] = a.arg_int(1)
                        self._regn[9 + d] = -1  # the next URC is heard (on_change)
                else:  # a URC "+CxREG: <stat>" that crossed the query: same prefix
                    self._on_reg(a, d)
        return self.best_stat()

    def best_stat(self):
        reg = self.reg
        for d in (2, 1):
            if reg_ok(reg[d]):
                return reg[d]
        for want in (3, 2):
            for d in (2, 1, 0):
                if reg[d] == want:
                    return want
        for d in (2, 1, 0):
            if reg[d] != REG_UNKNOWN:
                return reg[d]
        return REG_UNKNOWN

    async def signal(self):
        """``AT+CSQ`` -> (dBm or None, ber 0..7 or None) (manual 3.2.2)."""
        r = await self.at.cmd(b"AT+CSQ", resp=b"+CSQ:", timeout_ms=5000)
        a = r.find(b"+CSQ:")
        if a is None:
            return None, None
        ber = a.arg_int(1)
        return csq_dbm(a.arg_int(0)), (ber if 0 <= ber <= 7 else None)

    # ---- clock, battery, GNSS --------------------------------------------------------------

    async def clock(self):
        """``AT+CCLK?`` -> UTC seconds since 2000-01-01 (the ``Fix.epoch_s`` epoch; add
        ``fix.UNIX_OFFSET_S`` for Unix time), or None when the module has no time yet."""
        r = await self.at.cmd(b"AT+CCLK?", resp=b"+CCLK:", timeout_ms=5000)
        a = r.find(b"+CCLK:")
        if a is None:
            return None
        v = parse_cclk(a.arg_bytes(0))
        return None if v is None else v[0]

    async def battery_mv(self):
        """Supply voltage in mV: ``+CBC: 3.749V`` (manual 9.2.8) or SIM800 ``+CBC: 0,85,4050``."""
        r = await self.at.cmd(b"AT+CBC", resp=b"+CBC:", timeout_ms=5000)
        a = r.find(b"+CBC:")
        if a is None:
            return None
        if a.count() >= 3:
            v = a.arg_int(2, _NOINT)
            return None if v == _NOINT else v
        t = a.arg_str(0).rstrip("Vv ")
        k = t.find(".")
        try:
            if k < 0:
                return int(t) * 1000
            frac = (t[k + 1:] + "000")[:3]
            return int(t[:k]) * 1000 + int(frac)
        except ValueError:
            return None

    async def gnss(self, on):
        """Switch the modem's GNSS: ``AT+CGPS=1/0`` (SIM7600) or ``AT+CGNSSPWR=1/0`` (21.2.1)."""
        s = _need_gnss(self)
        at = self.at
        if s == "cgps":
            r = await at.cmd(b"AT+CGPS=1" if on else b"AT+CGPS=0", timeout_ms=9000, check=False)
            if r.final != _R_OK:
                # SIM7600 answers ERROR when already in that state: ask it
                r = await at.cmd(b"AT+CGPS?", resp=b"+CGPS:", timeout_ms=9000)
                a = r.find(b"+CGPS:")
                if a is None or (a.arg_int(0) == 1) != bool(on):
                    raise at.error(b"AT+CGPS")
        else:
            await at.cmd(b"AT+CGNSSPWR=1" if on else b"AT+CGNSSPWR=0", timeout_ms=10000)
        self.gnss_on = bool(on)

    async def gnss_fix(self, fix):
        """Read one position into ``fix`` (``AT+CGPSINFO`` 21.2.20 / ``AT+CGNSSINFO`` 21.2.21).

        True with ``fix`` filled when the module has a fix; False (``fix.valid``
        False, the rest kept) when it has none or the answer is malformed.
        """
        # imported at the first fix (a board without modem GNSS never loads it), then a lookup
        from .gnssparse import parse_cgnssinfo, parse_cgpsinfo

        s = _need_gnss(self)
        if s == "cgps":
            cmd, p, parse = b"AT+CGPSINFO", b"+CGPSINFO:", parse_cgpsinfo
        else:
            cmd, p, parse = b"AT+CGNSSINFO", b"+CGNSSINFO:", parse_cgnssinfo
        r = await self.at.cmd(cmd, resp=p, timeout_ms=10000)
        a = r.find(p)
        tmp = self._fix
        if a is not None and parse(a.buf, a.s, a.e, tmp):
            fix.copy_from(tmp)
            return True
        fix.valid = False
        return False
