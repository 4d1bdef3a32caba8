"""The ``Modem``'s steps that run at bring-up and recovery, and its rarely used queries:
imported for one call and dropped after it (issue 11: static heap).

Every method of a class costs RAM for the whole boot on a board (a function object
and a slot in the class dict, ~24-32 bytes each, even with the bytecode frozen in
flash), and so does every module while it is imported.  What a connected board does
not call lives here instead, still read as attributes of a ``Modem``
(``Modem.__getattr__`` -> ``attr`` below: same names, arguments and results):

- the bring-up and recovery steps ``power_on()``, ``power_cycle()``, ``wait_ready()``,
  ``init()`` (its command table ``_INIT``), ``sim_state()``, ``set_apn()``,
  ``data_up()``, ``data_down()``, ``radio_cycle()``, ``restart()``;
- the public queries ``serving_cell()`` (``AT+CPSI?``), ``data_is_open()``,
  ``registered()``, ``roaming`` and ``expect_reboot()``;
- the sm family's data path (``AT+SAPBR`` bearer, SIM800 MQTT note 4.1; ``AT+CNACT``,
  SIM7000/SIM7070/SIM7080), called by ``data_up`` on an sm board only.

Each call imports this module and removes it from ``sys.modules`` when it ends; no
class is defined here, so nothing that outlives a call keeps it alive.
"""

import asyncio
import sys

from . import log
from .compat import const, sleep_ms, ticks_add, ticks_diff, ticks_ms, wait_for_ms
from .errors import ATTimeout, ConfigError, ModemError
from .modem import reg_ok, reg_roaming

# atmq.script is dropped with this module unless something else had it (the firmware on a
# cmqtt board: only these lazy modules run scripts)
_SCRIPT_HAD = "atmq.script" in sys.modules
from . import script as _script  # noqa: E402

_R_OK = const(1)  # = atmq.engine.R_OK
_R_ERROR = const(2)  # = atmq.engine.R_ERROR
_MUST = const(0)  # = atmq.script.MUST
_OPTIONAL = const(1)  # = atmq.script.OPTIONAL
_NOINT = const(-0x3FFFFFFF)  # arg_int default that no field value reaches (as in atmq.modem)
_T5 = const(5000)  # 003: the max response time of most set/read commands (ATI 2.2.5,
# CGDCONT 5.2.5, CGAUTH 5.2.11, CICCID 6.2.1, CPIN 6.2.2, CCLK 3.2.7, CSQ 3.2.2)
_T_CFUN = const(25000)  # 3.2.1 AT+CFUN: 25 s
_OWN_TEARDOWN_MS = const(5000)  # "+CGEV: ME ..." after our own NETCLOSE/CFUN=0 is ours

_METHODS = const(("serving_cell", "data_is_open", "registered", "expect_reboot", "power_on",
                  "power_cycle", "wait_ready", "init", "sim_state", "set_apn", "data_up",
                  "data_down", "radio_cycle", "restart"))
_SYNC = const(("registered", "expect_reboot"))


def attr(m, name):
    """``getattr(m, name)`` for the names kept here (a function that runs the call, then
    drops this module); AttributeError for any other."""
    if name == "roaming":
        _drop()
        return reg_roaming(m.best_stat())
    if name not in _METHODS:
        _drop()  # a probe (``getattr(x, name, None)``) leaves nothing imported
        raise AttributeError(name)
    f = globals()[name]
    if name in _SYNC:  # not a coroutine: the function holds what it needs
        _drop()
        return lambda *args, **kw: f(m, *args, **kw)

    async def call(*args, **kw):
        try:
            return await f(m, *args, **kw)
        finally:
            _drop()
    return call


def _drop():
    # the module object goes when nothing refers to it any more (frozen code stays in flash)
    pkg = sys.modules.get("atmq")
    for name in (__name__, None if _SCRIPT_HAD else "atmq.script"):
        if name is not None:
            sys.modules.pop(name, None)
            if pkg is not None:
                pkg.__dict__.pop(name[5:], None)


# init() as data (atmq.script): echo off (a payload echo would read as lines), numeric
# errors, registration URCs, packet domain events; timeouts: the 003 manual's max times.
_INIT = const((
    (b"ATE0", None, None, 5000, _MUST, "003 s.2.2.6"),
    (b"AT+CMEE=1", None, None, 5000, _MUST, "003 s.3.2.8"),
    (b"AT+CREG=1", None, None, 5000, _MUST, "003 s.4.2.1"),
    (b"AT+CGREG=1", None, None, 9000, _MUST, "003 s.5.2.1: 9 s"),
    # ERROR on 2G-only modules (SIM800): no EPS registration there
    (b"AT+CEREG=1", None, None, 5000, _OPTIONAL, "003 s.5.2.2"),
    # +CGEV reports (modes 0 and 1 only); refused (SIM800): PDP loss is seen by polling
    (b"AT+CGEREP=1", None, None, 5000, _OPTIONAL, "003 s.5.2.10"),
))
_I_CGEREP = const(5)
_RADIO_CYCLE = const((
    (b"AT+CFUN=0", None, None, 25000, _MUST, "003 s.3.2.1: 25 s"),
    (b"AT+CFUN=1", None, None, 25000, _MUST, "003 s.3.2.1: 25 s"),
))


def _quoted(name, value):
    # Values go into "..." of an AT command: a quote or a line end would break it.
    if isinstance(value, bytes):
        value = value.decode()
    if not isinstance(value, str):
        raise ConfigError(name, "must be a string, got %r" % (value,))
    for c in value:
        if c == '"' or c < " " or c == "\\":
            # a backslash: SIMCom parsers read "\22" / "\0d\0a" escapes inside quoted
            # strings on some commands, so a value could smuggle a quote or a line end
            # (issue 10 #11); no value we send needs one
            raise ConfigError(name, "contains a quote, a backslash or a control character: %r"
                              % (value,))
    return value


async def _cpin(at):
    try:
        r = await at.cmd(b"AT+CPIN?", resp=b"+CPIN:", timeout_ms=5000)
    except ModemError as e:
        if e.kind == "CME":
            if e.code == 10:
                return "NOT INSERTED"
            if e.code == 14:
                return "BUSY"
            if e.code == 13 or e.code == 15:
                return "FAILURE"
        raise
    a = r.find(b"+CPIN:")
    return a.arg_str(0) if a is not None else "UNKNOWN"




def registered(m):
    """True when a packet domain (CGREG or CEREG) is registered, home or roaming."""
    return reg_ok(m.reg[1]) or reg_ok(m.reg[2])


def expect_reboot(m, on=True):
    """Say that a reset is on purpose (recovery): boot URCs then raise no EV_REBOOT."""
    m._expect_boot = on


async def serving_cell(m):
    """``AT+CPSI?`` (manual 4.2.6) as a dict: mode, op_mode, mcc, mnc, lac/tac, cell_id...

    LTE adds band, earfcn, rsrq, rsrp, rssi, rssnr (the module's units);
    GSM arfcn, rxlev; WCDMA band, psc, freq, ecio, rscp.  "NO SERVICE" gives
    only mode and op_mode.
    """
    r = await m.at.cmd(b"AT+CPSI?", resp=b"+CPSI:", timeout_ms=5000)
    a = r.find(b"+CPSI:")
    if a is None:
        return None
    n = a.count()
    mode = a.arg_str(0)
    d = {"mode": mode, "op_mode": a.arg_str(1) if n > 1 else ""}
    if n < 5:
        return d
    plmn = a.arg_str(2)
    k = plmn.find("-")
    try:
        d["mcc"] = int(plmn[:k])
        d["mnc"] = int(plmn[k + 1:])
    except ValueError:
        d["mcc"] = d["mnc"] = None
    area = a.arg_str(3)
    try:
        area = int(area, 16)
    except ValueError:
        area = None
    d["tac" if mode == "LTE" else "lac"] = area
    v = a.arg_int(4, _NOINT)
    d["cell_id"] = None if v == _NOINT else v
    if mode == "LTE":
        keys = ("pci", "band", "earfcn", "dlbw", "ulbw", "rsrq", "rsrp", "rssi", "rssnr")
    elif mode == "GSM":
        keys = ("arfcn", "rxlev", "track_lo", "c1c2")
    else:
        keys = ("band", "psc", "freq", "ssc", "ecio", "rscp", "qual", "rxlev", "txpwr")
    for i in range(len(keys)):
        j = 5 + i
        if j >= n:
            break
        v = a.arg_int(j, _NOINT)
        d[keys[i]] = v if v != _NOINT else a.arg_str(j)
    return d


async def data_is_open(m):
    """Ask the module whether the PDP for data is up (NETOPEN? / SAPBR=2,1 / CNACT?)."""
    if m.family == "cmqtt":
        r = await m.at.cmd(b"AT+NETOPEN?", resp=b"+NETOPEN:", timeout_ms=5000)
        a = r.find(b"+NETOPEN:")
        up = a is not None and a.arg_int(0) == 1
    elif m.model_key in ("SIM7000", "SIM7070", "SIM7080"):
        up = await cnact_query(m, m.model_key != "SIM7000")
    else:
        up = await sapbr_query(m) == 1
    m.data_open = up
    return up


# ---- the sm family's data path ---------------------------------------------------------


async def sapbr_up(m, timeout_ms):
    # SIM800 MQTT note 4.1: profile 1 as GPRS with the APN, open, query
    at = m.at
    st = await sapbr_query(m)
    if st == 1:
        return
    await at.cmd(b'AT+SAPBR=3,1,"Contype","GPRS"')
    if m.apn:
        await at.cmd(('AT+SAPBR=3,1,"APN","%s"' % _quoted("apn", m.apn)).encode())
    if m.apn_user:
        await at.cmd(('AT+SAPBR=3,1,"USER","%s"' % _quoted("apn_user", m.apn_user)).encode())
    if m.apn_password:
        await at.cmd(('AT+SAPBR=3,1,"PWD","%s"' % _quoted("apn_password",
                                                           m.apn_password)).encode())
    await at.cmd(b"AT+SAPBR=1,1", timeout_ms=timeout_ms)
    if await sapbr_query(m) != 1:
        raise ModemError("AT", -1, b"AT+SAPBR=2,1")


async def sapbr_query(m):
    m._checked_seq = m._nonet_seq
    r = await m.at.cmd(b"AT+SAPBR=2,1", resp=b"+SAPBR:", check=False)
    a = r.find(b"+SAPBR:")
    if r.final != _R_OK or a is None:
        return -1
    st = a.arg_int(1)  # <cid>,<Status 0 connecting 1 connected 2 closing 3 closed>,<IP>
    m.ip = a.arg_str(2) if st == 1 else None
    return st


async def cnact_up(m, timeout_ms):
    new = m.model_key != "SIM7000"  # SIM7070/SIM7080: <pdpidx>,<statusx>,<addr>
    if await cnact_query(m, new):
        return
    if new:
        cmd = b"AT+CNACT=0,1"
    else:
        cmd = ('AT+CNACT=1,"%s"' % _quoted("apn", m.apn or "")).encode()
    await m.at.cmd(cmd, done=b"+APP PDP:", done_timeout_ms=timeout_ms)
    if not await cnact_query(m, new):
        raise ModemError("AT", -1, cmd)


async def cnact_query(m, new):
    m._checked_seq = m._nonet_seq
    r = await m.at.cmd(b"AT+CNACT?", resp=b"+CNACT:", check=False)
    if r.final != _R_OK:
        return False
    for i in range(r.count):
        a = r.line(i)
        if new and a.arg_int(0) == 0 and a.arg_int(1) == 1:
            m.ip = a.arg_str(2)
            return True
        if not new and a.arg_int(0) == 1:
            m.ip = a.arg_str(1)
            return True
    return False


# ---- power and boot ------------------------------------------------------------------


async def power_on(m):
    """PWRKEY on pulse per the board's timings (``atmq.power``); None without pins."""
    if m.board is None or m.pins is None:
        return None
    from . import power

    return await power.power_on(m.board, m.pins)


async def power_cycle(m):
    """Hardware reset (RESET pin, supply cycle or PWRKEY off+on); None without pins."""
    if m.board is None or m.pins is None:
        return None
    m.reset_state()
    m.boot_urcs = 0
    m._ready_ev.clear()
    from . import power

    return await power.reset(m.board, m.pins)


async def wait_ready(m, timeout_ms=30000, probe_ms=1000, need_boot=False):
    """Return once the module answers ``AT`` (autobaud: repeated probes train it).

    A boot URC (RDY, +CPIN: READY, SMS DONE, PB DONE, APP RDY) cuts the wait
    short.  ``need_boot``: a reset was just sent, so an ``OK`` from the old
    firmware must not count: probe only after a boot URC, or in the second
    half of the wait for modules that print none (SIM800 in autobaud).
    Raises ``ATTimeout`` at the deadline.
    """
    t0 = ticks_ms()
    deadline = ticks_add(t0, timeout_ms)
    quiet_until = ticks_add(t0, timeout_ms // 2)
    while True:
        left = ticks_diff(deadline, ticks_ms())
        if left <= 0:
            raise ATTimeout(b"AT", timeout_ms)
        may_probe = (not need_boot or m.boot_urcs
                     or ticks_diff(quiet_until, ticks_ms()) <= 0)
        if may_probe:
            try:
                await m.at.cmd(b"AT", timeout_ms=min(probe_ms, left))
                # booted and listening: a boot URC from now on is a new boot (_boot),
                # the one a reset asked for included
                m._awake = True
                m._expect_boot = False
                return True
            except ATTimeout:
                pass
            except ModemError:  # ERROR while booting: still alive, try again soon
                await sleep_ms(min(probe_ms, max(1, ticks_diff(deadline, ticks_ms()))))
            continue
        m._ready_ev.clear()
        if m.boot_urcs:
            continue
        try:
            await wait_for_ms(m._ready_ev.wait(),
                              max(1, min(left, ticks_diff(quiet_until, ticks_ms()))))
        except asyncio.TimeoutError:
            pass


async def init(m):
    """Idempotent set-up after every boot: echo off, numeric errors, URC modes, facts."""
    failed = await _script.run(m.at, _INIT)
    m.cgerep = _I_CGEREP not in failed
    at = m.at
    f = m.facts
    r = await at.cmd(b"ATI", bare=True, timeout_ms=_T5)
    for i in range(r.count):
        t = r.line(i).text()
        k = t.find(":")
        key = t[:k].strip().lower() if k > 0 else ""
        v = t[k + 1:].strip() if k > 0 else t.strip()
        if key in ("manufacturer", "model", "revision", "imei"):
            f[key] = v
        elif k < 0 and v and i == 0:  # SIM800: "SIM800 R14.18"
            sp = v.find(" ")
            f["model"] = v if sp < 0 else v[:sp]
            if sp > 0:
                f["revision"] = v[sp + 1:]
    r = await at.cmd(b"AT+CGMR", bare=True, check=False)
    if r.final == _R_OK and r.count:
        t = r.line(0).text()
        k = t.find(":")
        f["firmware"] = (t[k + 1:] if k >= 0 else t).strip()
        if f["revision"] is None:
            f["revision"] = f["firmware"]
    r = await at.cmd(b"AT+CGSN", bare=True, check=False)
    if r.final == _R_OK and r.count:
        f["imei"] = r.line(0).text().strip()
    if m.family == "sm":
        r = await at.cmd(b"AT+CCID", bare=True, check=False)  # SIM800/SIM7000: bare digits
    else:
        r = await at.cmd(b"AT+CICCID", resp=b"+ICCID:", timeout_ms=_T5,
                         check=False)  # manual 6.2.1
    if r.final == _R_OK and r.count:
        a = r.line(0)
        f["iccid"] = a.arg_str(0) if a.startswith(b"+") else a.text().strip()
    else:
        f["iccid"] = None  # no SIM (CME 10) is reported by sim_state()
    m.inited = True
    m._session = True
    m._expect_boot = False
    return m.facts


async def sim_state(m):
    """``AT+CPIN?`` -> "READY", "SIM PIN", "SIM PUK", "NOT INSERTED", "BUSY", ...

    On "SIM PIN" with a configured PIN the PIN is sent once; a rejected PIN
    is never sent again (three wrong PINs lock the SIM behind its PUK).
    """
    st = await _cpin(m.at)
    m._set_sim(st)
    if st == "SIM PIN" and m.pin and not m.pin_rejected:
        pin = _quoted("modem.pin", m.pin)
        log.add_secret(pin)  # issue 10 #5: never in a log line or an error
        m.pin_attempts += 1
        try:
            await m.at.cmd(('AT+CPIN="%s"' % pin).encode(), timeout_ms=5000)
        except ModemError as e:
            if e.kind == "CME" and e.code in (16, 12):  # incorrect password / PUK now
                m.pin_rejected = True
            raise
        st = await _cpin(m.at)
        m._set_sim(st)
    return st


async def set_apn(m, apn, user=None, password=None, cid=1, pdp_type="IP"):
    """``AT+CGDCONT`` (manual 5.2.6) and, with credentials, ``AT+CGAUTH`` PAP (5.2.11).

    On the sm family the APN is also remembered for the bearer.
    """
    apn = _quoted("apn", apn)
    m.apn = apn
    m.apn_user = user
    m.apn_password = password
    m.cid = cid
    await m.at.cmd(('AT+CGDCONT=%d,"%s","%s"' % (cid, _quoted("pdp_type", pdp_type),
                                                       apn)).encode(), timeout_ms=_T5)
    if user or password:
        # <cid>,<auth_type>,<passwd>,<user>: the password comes first (manual 5.2.11)
        if password:
            log.add_secret(password)
        await m.at.cmd(('AT+CGAUTH=%d,1,"%s","%s"' % (
            cid, _quoted("apn_password", password or ""),
            _quoted("apn_user", user or ""))).encode(), timeout_ms=_T5)


# ---- data ------------------------------------------------------------------------------


async def data_up(m, timeout_ms=None):
    """Open the data path; returns the IP address string (None if the module hides it)."""
    if m.family == "cmqtt":
        await _netopen(m, timeout_ms or m.netclose_ms)
    else:
        if m.model_key in ("SIM7000", "SIM7070", "SIM7080"):
            await cnact_up(m, timeout_ms or 60000)
        else:
            await sapbr_up(m, timeout_ms or 85000)
    ip = m.ip
    # a PDP-loss URC decoded after the final check is newer than it: it wins
    still = m._nonet_seq == m._checked_seq
    m.data_open = still
    m.ip = ip if still else None
    return ip


async def _netopen(m, timeout_ms):
    at = m.at
    r = await at.cmd(b"AT+NETOPEN", resp=b"+IP ERROR:", done=b"+NETOPEN:",
                     done_timeout_ms=timeout_ms, check=False)
    if r.final == _R_OK:
        err = r.line(r.done).arg_int(0)
        if err != 0:
            raise ModemError("NET", err, b"AT+NETOPEN")
    elif r.final == _R_ERROR and r.find(b"+IP ERROR:") is not None:
        t = r.find(b"+IP ERROR:").arg_str(0)
        from .errtab import code_for

        if code_for("IP", t) != 4:  # 4: "Network is already opened" (manual 13.2.1)
            raise ModemError("IP", code_for("IP", t) or -1, b"AT+NETOPEN")
    else:
        raise at.error(b"AT+NETOPEN")
    m._checked_seq = m._nonet_seq
    r = await at.cmd(b"AT+IPADDR", resp=b"+IPADDR:", timeout_ms=5000)  # 13.2.7
    a = r.find(b"+IPADDR:")
    m.ip = a.arg_str(0) if a is not None else None


async def data_down(m, timeout_ms=None):
    """Close the data path; "already closed" counts as success."""
    at = m.at
    m._closing = True
    try:
        if m.family == "cmqtt":
            r = await at.cmd(b"AT+NETCLOSE", resp=b"+IP ERROR:", done=b"+NETCLOSE:",
                             done_timeout_ms=timeout_ms or m.netclose_ms, check=False)
            if r.final != _R_OK and r.find(b"+IP ERROR:") is None:
                # 003 s.13.2.2 case 5: not activated answers "+NETCLOSE: <err>" then
                # ERROR.  Closed is what we want: confirm with the read form (13.2.1)
                r = await at.cmd(b"AT+NETOPEN?", resp=b"+NETOPEN:", timeout_ms=_T5,
                                 check=False)
                a = r.find(b"+NETOPEN:")
                if r.final != _R_OK or a is None or a.arg_int(0) != 0:
                    raise at.error(b"AT+NETCLOSE")
        elif m.model_key in ("SIM7000", "SIM7070", "SIM7080"):
            cmd = b"AT+CNACT=0,0" if m.model_key != "SIM7000" else b"AT+CNACT=0"
            await at.cmd(cmd, timeout_ms=timeout_ms or 10000, check=False)
        else:
            await at.cmd(b"AT+SAPBR=0,1", timeout_ms=timeout_ms or 65000, check=False)
    finally:
        m._closing = False
        m._own_teardown = ticks_add(ticks_ms(), _OWN_TEARDOWN_MS)
        m.data_open = False
        m.ip = None


# ---- resets ----------------------------------------------------------------------------


async def radio_cycle(m):
    """``AT+CFUN=0`` then ``AT+CFUN=1`` (manual 3.2.1): re-attach without a reboot."""
    m.data_open = False
    m.ip = None
    # "+CGEV: ME ..." during and just after the cycle is our own doing
    m._own_teardown = ticks_add(ticks_ms(), 2 * _T_CFUN + _OWN_TEARDOWN_MS)
    await _script.run(m.at, _RADIO_CYCLE)
    m._own_teardown = ticks_add(ticks_ms(), _OWN_TEARDOWN_MS)


async def restart(m, timeout_ms=30000):
    """Software reboot and re-init: ``AT+CRESET`` (cmqtt, manual 3.2.4) or
    ``AT+CFUN=1,1`` (sm), then wait for the boot URCs and run ``init``."""
    m._expect_boot = True  # boot URCs of this reset raise no EV_REBOOT
    try:
        m.reset_state()
        m.boot_urcs = 0
        m._ready_ev.clear()
        cmd = b"AT+CRESET" if m.family == "cmqtt" else b"AT+CFUN=1,1"
        try:
            await m.at.cmd(cmd, timeout_ms=9000)
        except ATTimeout:
            pass  # it may reboot before the OK leaves the UART
        await wait_ready(m, timeout_ms, need_boot=True)
        await init(m)
    finally:
        m._expect_boot = False
