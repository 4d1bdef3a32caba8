"""The CMQTT session's setup and teardown, imported for a bring-up and dropped after it.

``CMQTTDriver.start/connect/configure/configure_tls/subscribe/subscribe_many/
unsubscribe/disconnect/release/stop/set_model`` live here, reached through
``CMQTTDriver.__getattr__`` (same names, arguments and results as methods).  They run
at link bring-up, at a rebuild and at the end; between them a connected board needs
only the driver's publish path and URC handlers.  A module's function objects, its
globals and its flow tables cost heap for as long as it is imported, even with the
bytecode frozen in flash (issue 11), so a bring-up imports this module and connect,
subscribe or a teardown step removes it from ``sys.modules`` when it ends (see
``attr``): the next bring-up imports it again (only the function objects are made
again).  No class is defined here, so nothing that outlives a call keeps the module
alive.  ``atmq.tls`` is imported by ``configure_tls`` and
dropped the same way unless something else had imported it before.

The session flows are data run by ``atmq.script`` (one row per command: see there and
the tables below); busy (14) is retried by the driver's ``_retrying`` around a whole
run.  Manual references: 003 = SIM7600 series AT manual ch. 16 (CMQTT), 17 (SSL);
002 = A76xx MQTT(S) application note.
"""

import sys

from .cmqtt import _bytes, _int_in, _len_ok
from .compat import const
from .errors import ATError, ModemError

# atmq.script is dropped with this module unless something else had it (the firmware on a
# cmqtt board: only these lazy modules run scripts)
_SCRIPT_HAD = "atmq.script" in sys.modules
from . import script as _script  # noqa: E402

# Limits of the connect's arguments, manual 16.2 (bytes)
CLIENT_ID_MAX = const(128)  # 16.2.3
ADDR_MIN = const(9)  # 16.2.8 <server_addr> 9..256
ADDR_MAX = const(256)
CRED_MAX = const(256)  # user name / password 1..256
KEEPALIVE_MAX = const(64800)
WILL_MAX = const(1024)  # WILLMSG 1..1024

# Timeouts (ms)
_T_START_SIM76 = const(12000)  # 003 s.16.2.1 (SIM7600/SIM767x series)
_T_STOP = const(12000)  # 16.2.2
_T_ERR_GRACE = const(3000)  # after CONNECT's ERROR: how long its "+CMQTTCONNECT: i,err" may lag

# other modules' constants, mirrored (tests_host/test_const_mirrors.py checks them)
_MUST = const(0)  # = atmq.script.MUST
_OPTIONAL = const(1)  # = atmq.script.OPTIONAL
_TOPIC_MAX = const(1024)  # = atmq.cmqtt.TOPIC_MAX
_T_CMD = const(10000)  # = atmq.cmqtt._T_CMD
_T_START = const(120000)  # = atmq.cmqtt._T_START
_T_MARGIN = const(5000)  # = atmq.cmqtt._T_MARGIN
_E_NOCONN = const(11)  # = atmq.cmqtt._E_NOCONN
_E_NETNOTOPEN = const(9)  # = atmq.cmqtt._E_NETNOTOPEN
_E_USED = const(19)  # = atmq.cmqtt._E_USED
_E_NOTACQ = const(20)  # = atmq.cmqtt._E_NOTACQ
_E_NOTREL = const(21)  # = atmq.cmqtt._E_NOTREL
_E_NETOPENED = const(23)  # = atmq.cmqtt._E_NETOPENED
_BARE = const(-1)  # = atmq.cmqtt._BARE
_ABORTED = const(-2)  # = atmq.cmqtt._ABORTED
_K_START = const(1)  # = atmq.cmqtt._K_START
_K_STOP = const(2)  # = atmq.cmqtt._K_STOP
_K_CONNECT = const(3)  # = atmq.cmqtt._K_CONNECT
_K_DISC = const(4)  # = atmq.cmqtt._K_DISC
_K_SUB = const(6)  # = atmq.cmqtt._K_SUB
_K_UNSUB = const(7)  # = atmq.cmqtt._K_UNSUB

# ---- the session flows as data (atmq.script) --------------------------------------------------
# One row per command: (command, response prefix, result URC kind, timeout ms, policy, manual
# section[, codes that may mean "there already"[, prompt data]]).  Arguments come from the
# run's args (slots _A_*, ``_args``); a row whose argument is None is not sent (a CFG
# setting the caller left unset, no will).  The codes in the 7th field pass when
# ``_confirm`` finds the state there (the read forms).
_A_IDX = const(0)  # <client_index>
_A_CID = const(1)  # <clientID>, checked quotable
_A_SSL = const(2)  # ACCQ's ",1" (<server_type> SSL/TLS) or b""
_A_UTF8 = const(3)  # CFG checkUTF8 / optimeout / version values
_A_OPTO = const(4)
_A_VER = const(5)
_A_CTX = const(6)  # <ssl_ctx_index>
_A_ADDR = const(7)  # "tcp://host:port"
_A_KA = const(8)
_A_CLEAN = const(9)
_A_CRED = const(10)  # ',"user"[,"pass"]' or b""
_A_LEN = const(11)  # a prompt row's <req_length>, its qos and the bytes after the ">"
_A_QOS = const(12)
_A_DATA = const(13)
_A_LEN2 = const(14)  # the second prompt row of a run (WILLMSG)
_A_DATA2 = const(15)
_A_SIZE = const(16)

# the deadline is the model's (set_model): 12 s SIM7600/SIM767x, 120 s A76xx or unknown; a late
# OK may follow the result.  23 "network is opened" or a plain ERROR (16.2.1 case 3): started
_START = const(((b"AT+CMQTTSTART", b"+CMQTTSTART:", _K_START, None, _MUST,
                 "003 s.16.2.1: 12 s / 002 s.2.1.1: 120 s", (_E_NETOPENED, _BARE)),))
_ACCQ = const((((b'AT+CMQTTACCQ=%d,"%s"%s', _A_IDX, _A_CID, _A_SSL), b"+CMQTTACCQ:", 0, _T_CMD,
                _MUST, "003 s.16.2.3 / 002 s.2.1.3: no max given; 19 client is used",
                (_E_USED, _BARE)),))
_CFG = const((((b'AT+CMQTTCFG="checkUTF8",%d,%d', _A_IDX, _A_UTF8), b"+CMQTTCFG:", 0, _T_CMD,
               _MUST, "003 s.16.2.15 / 002 s.2.1.17"),
              ((b'AT+CMQTTCFG="optimeout",%d,%d', _A_IDX, _A_OPTO), b"+CMQTTCFG:", 0, _T_CMD,
               _MUST, "003 s.16.2.15 / 002 s.2.1.17"),
              # SIM767XX only: the A76xx note lists no "version" (002 s.2.1.17), the module
              # keeps its own
              ((b'AT+CMQTTCFG="version",%d,%d', _A_IDX, _A_VER), b"+CMQTTCFG:", 0, _T_CMD,
               _OPTIONAL, "003 s.16.2.15: version, SIM767XX only")))
_I_CFG_VERSION = const(2)
_SSLCFG = const((((b"AT+CMQTTSSLCFG=%d,%d", _A_IDX, _A_CTX), b"+CMQTTSSLCFG:", 0, _T_CMD, _MUST,
                  "003 s.16.2.5 / 002 s.2.1.5"),))
_WILL = const((((b"AT+CMQTTWILLTOPIC=%d,%d", _A_IDX, _A_LEN), b"+CMQTTWILLTOPIC:", 0, _T_CMD,
                _MUST, "003 s.16.2.6", (), _A_DATA),
               ((b"AT+CMQTTWILLMSG=%d,%d,%d", _A_IDX, _A_LEN2, _A_QOS), b"+CMQTTWILLMSG:", 0,
                _T_CMD, _MUST, "003 s.16.2.7", (), _A_DATA2)))
# 16.2.8 gives no max response time: the run's deadline (the caller's budget plus the TLS
# negotiatetime); 19 "client is used" is success when the read form lists our server
_CONNECT = const((((b'AT+CMQTTCONNECT=%d,"%s",%d,%d%s', _A_IDX, _A_ADDR, _A_KA, _A_CLEAN,
                    _A_CRED), b"+CMQTTCONNECT:", _K_CONNECT, None, _MUST,
                   "003 s.16.2.8 / 002 s.2.1.8", (_E_USED,)),))
_SUB = const((((b"AT+CMQTTSUB=%d,%d,%d", _A_IDX, _A_LEN, _A_QOS), b"+CMQTTSUB:", _K_SUB, _T_CMD,
               _MUST, "003 s.16.2.13", (), _A_DATA),))
_SUBTOPIC = const((((b"AT+CMQTTSUBTOPIC=%d,%d,%d", _A_IDX, _A_LEN, _A_QOS), b"+CMQTTSUBTOPIC:",
                    0, _T_CMD, _MUST, "002 s.2.1.13", (), _A_DATA),))
_SUB_TWO = const((((b"AT+CMQTTSUB=%d", _A_IDX), b"+CMQTTSUB:", _K_SUB, _T_CMD, _MUST,
                   "002 s.2.1.14"),))

# what a CONNECT run leaves for its confirm (one list per connect, not driver attributes):
_C_GEN = const(0)  # the driver's _lost_gen when the CONNECT was sent
_C_HELD = const(1)  # CONNECT answered 19 and the read form showed us connected
_C_ADDR = const(2)  # the <server_addr> asked for
_C_MOVED = const(3)  # 19 while connected to another server: DISC sent, redo
_C_WANT = const(4)  # (client id, server type) the ACCQ running asks for

_OPENING = const(("start", "configure", "configure_tls"))
_NAMES = const(("set_model", "start", "connect", "configure", "configure_tls", "subscribe",
                "subscribe_many", "unsubscribe", "disconnect", "release", "stop"))


def attr(d, name):
    """``getattr(d, name)`` for the names kept here; AttributeError for any other.

    The steps that open a session (set_model, start, configure, configure_tls) leave this
    module imported for the ones that follow; connect, subscribe and the teardown drop it
    when they end.  Dropped after every call, a bring-up needed the module's globals table
    (a 376-byte block) again between steps, when other tasks had taken the hole: at a
    92K heap that failed where one import per bring-up passes."""
    if name not in _NAMES:
        _drop(__name__)  # a probe (``getattr(x, name, None)``) leaves nothing imported
        raise AttributeError(name)
    f = globals()[name]
    if name == "set_model":  # not a coroutine
        return lambda *args, **kw: f(d, *args, **kw)
    if name in _OPENING:
        return lambda *args, **kw: f(d, *args, **kw)

    async def call(*args, **kw):
        try:
            return await f(d, *args, **kw)
        finally:
            _drop(__name__)
    return call


def _drop(name):
    # the module object goes when nothing refers to it any more (frozen code stays in flash)
    if name == __name__ and not _SCRIPT_HAD:
        _drop("atmq.script")
    sys.modules.pop(name, None)
    pkg = sys.modules.get("atmq")
    if pkg is not None:
        pkg.__dict__.pop(name[5:], None)


def _quotable(b, what, lo, hi):
    # Quoted AT string arguments cannot carry a quote or a line end: there is no escape.
    _len_ok(b, what, lo, hi)
    for c in (34, 13, 10, 0, 92):  # 92: a backslash could start an escape (issue 10 #11)
        if bytes(b).find(bytes((c,))) >= 0:
            raise ValueError("%s must not contain %r (quoted AT argument)" % (what, chr(c)))
    return bytes(b)


# ---- the flows' runner hooks (atmq.script) ------------------------------------------------------

def _args(d):
    """A fresh argument list of the flow tables (slots _A_*), the client index set."""
    a = [None] * _A_SIZE  # type: list
    a[_A_IDX] = d.index
    return a


def _run(d, steps, args, timeout_ms=None, ctx=None):
    if ctx is None:
        ctx = [0, False, b"", False, None]

    async def send(cmd, step, data, t):
        kind = step[2]
        grace = 0
        if kind == _K_CONNECT:
            ctx[_C_GEN] = d._lost_gen  # a CONNLOST read with the result shows as a bump
            grace = _T_ERR_GRACE  # 16.2.8 case 3: ERROR first, its code in a later read
        await d._exec(cmd, step[1], payload=data, kind=kind, timeout_ms=t, done_timeout_ms=t,
                      err_grace_ms=grace)

    async def confirm(step, code, cmd):
        return await _confirm(d, ctx, step, code, cmd)

    return _script.run(d.at, steps, "mqtt", args, send, confirm, d._code, timeout_ms)


async def _flow(d, steps, args, timeout_ms=None, ctx=None):
    """Run a table with busy retried; a failure raised after ``_fail``'s bookkeeping."""
    try:
        return await d._retrying(lambda: _run(d, steps, args, timeout_ms, ctx))
    except ModemError as e:
        raise d._fail(e) from None


async def _confirm(d, ctx, step, code, cmd):
    """Whether a code of a row's "already" list means the state is there (the read forms)."""
    prefix = step[1]
    if prefix == b"+CMQTTACCQ:":
        return await _acq_held(d, ctx, cmd)
    if prefix == b"+CMQTTSTART:":
        # a plain ERROR: 16.2.1 case 3 when AT+CMQTTACCQ? works (the service runs)
        ok = code == _E_NETOPENED or await _probe_acq(d)
    else:  # CONNECT 19: connected already when the read form lists our server
        ok = await d._is_connected(ctx[_C_ADDR])
        if ok == 2:
            # connected, but to another server (the host restarted with a new broker
            # while the module kept its session): leave it, the setup again (DISC
            # clears SSLCFG, 16.2.5), then CONNECT to ours (``connect``)
            await _disc(d, 60, tolerant=True)
            ctx[_C_MOVED] = True
            return False
        if ok:
            d._sslcfg_set = False
            ctx[_C_HELD] = True
    if ok:
        d.stats["state_ok"] += 1
    return ok


# ---- service and client slot ---------------------------------------------------------------

async def start(d, client_id=None, tls=None):
    """AT+CMQTTSTART, then AT+CMQTTACCQ when a client id is given; idempotent.

    Without ``client_id`` the slot is acquired by ``connect`` (which knows the id
    and whether the server is SSL/TLS: ACCQ's <server_type>).
    """
    cid = None
    if client_id is not None:
        cid = _quotable(_bytes(client_id, "client_id"), "client_id", 1, CLIENT_ID_MAX)
    async with d._lock:
        if not d.started:
            await _start(d)
        if cid is not None:
            await _acquire(d, cid, 1 if tls else 0)


def set_model(d, model):
    """The module's model (``ATI``): the manual whose max response times apply.
    AT+CMQTTSTART: 120 s on the A76xx (002 s.2.1.1), 12 s on the SIM7600/SIM767x
    series (003 s.16.2.1); unknown: the longer."""
    m = (model or "").upper()
    if "SIM76" in m or "SIM75" in m:
        d.start_timeout_ms = _T_START_SIM76
    else:
        d.start_timeout_ms = _T_START


async def _start(d):
    # 003 s.16.2.1 / 002 s.2.1.1: the OK itself may be late and come after the result
    await _flow(d, _START, (), d.start_timeout_ms)
    d.started = True


async def _probe_acq(d):
    """AT+CMQTTACCQ? (ERROR while the service is stopped, 16.2.1 note); records our slot."""
    r = await d.at.cmd(b"AT+CMQTTACCQ?", resp=b"+CMQTTACCQ:", timeout_ms=_T_CMD, check=False)
    if not r.ok:
        return False
    d.acquired = None
    for i in range(r.count):
        a = r.line(i)
        if a.arg_int(0) == d.index and a.arg_len(1) > 0:
            d.acquired = (a.arg_bytes(1), a.arg_int(2, 0))
    return True


async def _acquire(d, cid, server_type):
    acq = d.acquired
    if acq is not None:
        if acq[0] == cid and acq[1] == server_type:
            return
        await _release_slot(d)
    a = _args(d)
    a[_A_CID] = cid
    a[_A_SSL] = b",1" if server_type else b""
    ctx = [0, False, b"", False, (cid, server_type)]
    await _flow(d, _ACCQ, a, None, ctx)
    d.acquired = (cid, server_type)
    d._cfg_done = False  # CFG is per acquisition (cleared by REL, 16.2.15)


async def _acq_held(d, ctx, cmd):
    # 19 "client is used" (or a bare ERROR) at ACCQ: held already; keep it if it is ours
    if not await _probe_acq(d):
        d.started = False  # the read form fails too: the service is not running
        raise ATError(cmd)
    acq = d.acquired
    if acq is None:
        return False
    if acq == ctx[_C_WANT]:
        d.stats["state_ok"] += 1
        return True
    # someone else's id or server type: release and take it
    await _release_slot(d)
    await d._exec(cmd, b"+CMQTTACCQ:")
    return True


async def _release_slot(d):
    await _disc(d, 60, tolerant=True)
    await _rel(d, tolerant=True)


async def _rel(d, tolerant):
    cmd = b"AT+CMQTTREL=%d" % d.index
    try:
        await d._exec(cmd, b"+CMQTTREL:")
    except ModemError as e:
        err = d._code(e)
        if err is None:
            raise
        d.acquired = None
        d._sslcfg_set = False
        if err == _E_NOTACQ or (tolerant and (err == _BARE or err == _E_NETNOTOPEN)):
            d.stats["state_ok"] += 1
            return
        raise d._fail(e) from None
    d.acquired = None
    d._sslcfg_set = False


async def configure(d, check_utf8=None, optimeout_s=None, version=None):
    """AT+CMQTTCFG settings, sent after every ACCQ (REL clears them, 16.2.15).

    ``check_utf8``: 0/1 (default 1 on the modem: non-UTF-8 topics/payloads fail
    with 2); ``optimeout_s``: 20..120 s send/receive limit (also the PUB wait);
    ``version``: 3 (MQTT 3.1, the SIM767XX default) or 4 (3.1.1), SIM767XX only.
    """
    if check_utf8 is not None:
        check_utf8 = _int_in(int(check_utf8), "check_utf8", 0, 1)
    if optimeout_s is not None:
        optimeout_s = _int_in(optimeout_s, "optimeout_s", 20, 120)
    if version is not None:
        version = _int_in(version, "version", 3, 4)
    async with d._lock:
        d._cfg = (check_utf8, optimeout_s, version)
        d._cfg_done = False
        if d.acquired is not None:
            await _apply_cfg(d)


async def _apply_cfg(d):
    if d._cfg_done:
        return
    a = _args(d)
    cfg = d._cfg
    a[_A_UTF8] = cfg[0]
    a[_A_OPTO] = cfg[1]
    a[_A_VER] = cfg[2]
    if _I_CFG_VERSION in await _flow(d, _CFG, a):
        d.version_refused = True  # a plain ERROR: the module keeps its MQTT version
    if cfg[1] is not None:
        d.optimeout_s = cfg[1]
    d._cfg_done = True


# ---- TLS -----------------------------------------------------------------------------------

async def configure_tls(d, tls):
    """None: plain.  A dict (see ``tls.normalize``): AT+CSSLCFG... for its context, then
    AT+CMQTTSSLCFG=<idx>,<ctx> (again before each connect that needs it: 16.2.5)."""
    if tls is None:
        d._tls = None
        return
    had = "atmq.tls" in sys.modules
    from . import tls as _tls

    try:
        p = _tls.normalize(tls)  # ConfigError naming a bad key, before anything is sent
        async with d._lock:
            try:
                p = await _tls.configure_ssl(d.at, p["ssl_ctx"], p, d.revision)
            except _tls.FirmwareError as e:
                if e.revision:
                    d.revision = e.revision
                raise
            d._tls = p
            d._sslcfg_set = False
            if d.acquired is not None:  # else connect sends it after ACCQ (seed order)
                await _sslcfg(d)
    finally:
        if not had:  # ours alone: dropped as this module is (an app's own import stays)
            _drop("atmq.tls")


async def _sslcfg(d):
    p = d._tls
    if p is None or d._sslcfg_set:
        return
    a = _args(d)
    a[_A_CTX] = p["ssl_ctx"]
    await _flow(d, _SSLCFG, a)
    d._sslcfg_set = True


# ---- connection ----------------------------------------------------------------------------

async def connect(d, host, port, client_id, keepalive_s=60, clean=True, user=None,
                  password=None, will=None, tls=False, timeout_ms=30000):
    """Start/acquire as needed, set TLS, CFG and the will, AT+CMQTTCONNECT; returns when
    ``+CMQTTCONNECT: <idx>,0`` came.  ``will`` = (topic, msg, qos, retain); CMQTT has no
    will retain flag (16.2.7), so retain must be False."""
    h = bytes(_bytes(host, "host"))
    if port is None:  # 16.2.8: no port in <server_addr> means 1883 (or host holds ":port")
        addr = b"tcp://%s" % h
    else:
        addr = b"tcp://%s:%d" % (h, _int_in(port, "port", 1, 65535))
    a = _args(d)
    a[_A_ADDR] = _quotable(addr, "server address", ADDR_MIN, ADDR_MAX)
    cid = _quotable(_bytes(client_id, "client_id"), "client_id", 1, CLIENT_ID_MAX)
    a[_A_KA] = _int_in(keepalive_s, "keepalive_s", 1, KEEPALIVE_MAX)
    a[_A_CLEAN] = 1 if clean else 0
    cred = b""
    if user is not None:
        cred = b',"%s"' % _quotable(_bytes(user, "user"), "user", 1, CRED_MAX)
        if password is not None:
            # errors name the command: ModemError masks the password (errors._MASKS)
            pw = _quotable(_bytes(password, "password"), "password", 1, CRED_MAX)
            cred += b',"%s"' % pw
    elif password is not None:
        raise ValueError("a password needs a user name (16.2.8 [,<user>[,<pass>]])")
    a[_A_CRED] = cred
    if will is not None:
        wt, wm, wq, wr = will
        wt = _bytes(wt, "will topic")
        a[_A_LEN] = _len_ok(wt, "will topic", 1, _TOPIC_MAX)
        if bytes(wt).find(b"+") >= 0 or bytes(wt).find(b"#") >= 0:
            raise ValueError("a will topic must not contain the wildcards + or #")
        wm = _bytes(wm, "will message")
        a[_A_LEN2] = _len_ok(wm, "will message", 1, WILL_MAX)
        a[_A_QOS] = _int_in(wq, "will qos", 0, 2)
        if wr:
            raise ValueError("CMQTT cannot set the will retain flag (16.2.7 has no such "
                             "parameter): use retain=False")
        a[_A_DATA] = wt
        a[_A_DATA2] = wm
    # 16.2.8 gives no limit: the caller's MQTT budget plus the TLS handshake limit
    # (CSSLCFG negotiatetime, 300 s by default, 17.2.1)
    nego = d._tls["negotiatetime"] if d._tls is not None else None
    nego = 300 if nego is None else nego
    t_done = timeout_ms + (nego * 1000 if tls else 0)
    st = 1 if tls else 0

    async with d._lock:
        fixed = False
        while True:
            if not d.started:
                await _start(d)
            try:
                await _acquire(d, cid, st)
            except ATError:
                if d.started or fixed:
                    raise
                fixed = True  # the service was gone (modem reset): start it once
                continue
            try:
                await _apply_cfg(d)
                if tls:
                    await _sslcfg(d)
                if will is not None:
                    await _flow(d, _WILL, a)
            except ModemError as e:
                err = d._code(e)
                if fixed or (err != _E_NOTACQ and err != _E_NETNOTOPEN and not (
                        err == _BARE and not d.started)):
                    raise
                # the slot or the service went under us (CMQTTNONET, a reboot): the
                # picture was stale, redo the setup once
                fixed = True
                d.acquired = None
                continue
            ctx = [0, False, a[_A_ADDR], False, None]
            try:
                # 16.2.8 case 4: the result, then ERROR, may take the whole wait
                await d._retrying(lambda c=ctx: _run(d, _CONNECT, a, t_done, c))
            except ModemError as e:
                # outcome unknown (timeout), or 16.2.5: SSLCFG is cleared after a failed
                # CONNECT: send it again next time
                d._sslcfg_set = False
                err = d._code(e)
                if err is None:
                    raise
                if not fixed and err == _E_USED and ctx[_C_MOVED]:
                    fixed = True  # 19 from a session to another server, now ended: again
                    continue
                if not fixed and (err == _E_NOTACQ or err == _E_NETNOTOPEN):
                    fixed = True  # our picture of the modem was stale: redo the setup
                    d.acquired = None
                    if err == _E_NETNOTOPEN:
                        d.started = False
                    continue
                raise d._fail(e) from None
            d._disc_done = False
            if ctx[_C_HELD]:  # 19: this client is connected already
                return
            # a CONNLOST read together with the result was handled before we resumed
            d.connected = ctx[_C_GEN] == d._lost_gen
            d.stats["connects"] += 1
            return


async def disconnect(d, timeout_s=60):
    """AT+CMQTTDISC=<idx>,<timeout> (0 or 60..180 s); "no connection" counts as done."""
    if timeout_s != 0:
        _int_in(timeout_s, "timeout_s", 60, 180)
    async with d._lock:
        await _disc(d, timeout_s, tolerant=False)


async def _disc(d, timeout_s, tolerant):
    cmd = b"AT+CMQTTDISC=%d,%d" % (d.index, timeout_s)
    # 16.2.9: "+CMQTTDISC: <idx>,0" may come before a late OK; the DISC takes up to its
    # <timeout> (60..180 s), so the OK gets that long too
    t_disc = timeout_s * 1000 + _T_MARGIN
    try:
        await d._retrying(lambda: d._exec(cmd, b"+CMQTTDISC:", kind=_K_DISC,
                                          timeout_ms=t_disc, done_timeout_ms=t_disc))
    except ModemError as e:
        err = d._code(e)
        if err is None:
            raise
        d.connected = False
        d._sslcfg_set = False
        if err == _E_NOCONN or err == _ABORTED or err == 35 or err == _BARE or (
                tolerant and (err == _E_NOTACQ or err == _E_NETNOTOPEN)):
            d.stats["state_ok"] += 1  # not connected (or no service): nothing to end
            return
        raise d._fail(e) from None
    d.connected = False
    d._sslcfg_set = False
    d._disc_done = True


async def release(d):
    """DISC -> REL of this client index only, the service left running for the other
    one (a second session no longer needed); "not connected / not acquired" pass."""
    async with d._lock:
        try:
            await _release_slot(d)
        finally:
            d.connected = False
            d.acquired = None
            d._sslcfg_set = False


async def stop(d):
    """DISC -> REL -> STOP; idempotent: "not connected / not acquired / not started" pass.
    A peer (the other client index) is disconnected and released first: STOP only
    after every client's DISC and REL (003 s.16.2.2, 16.2.4).
    Every step runs; the first unexpected error is raised at the end."""
    first = None
    p = d.peer
    if p is not None and (p.connected or p.acquired is not None):
        try:
            await release(p)
        except ModemError as e:
            first = e
    async with d._lock:
        for step in (0, 1, 2):
            try:
                if step == 0:
                    if not d._disc_done:  # after CONNLOST too: seed 001 shows DISC ok
                        await _disc(d, 60, tolerant=True)
                elif step == 1:
                    await _rel(d, tolerant=True)
                else:
                    await _stop(d)
            except ModemError as e:
                if first is None:
                    first = e
        d.connected = False
        d.acquired = None
        d._sslcfg_set = False
    if first is not None:
        raise first


async def _stop(d):
    cmd = b"AT+CMQTTSTOP"
    for _ in range(2):
        try:
            await d._exec(cmd, b"+CMQTTSTOP:", kind=_K_STOP, timeout_ms=_T_STOP,
                          done_timeout_ms=_T_STOP)  # 16.2.2: 12 s
        except ModemError as e:
            err = d._code(e)
            if err is None:
                raise
            d.started = False
            if err == _BARE:  # 16.2.2 case 3: already stopped
                d.stats["state_ok"] += 1
                return
            if err != _E_NOTREL:
                raise d._fail(e) from None
            d.stats["state_ok"] += 1
            await _rel(d, tolerant=True)  # 21 "client not released": release, again
            continue
        d.started = False
        return
    raise ModemError("CMQTT", _E_NOTREL, cmd)


# ---- subscribe -----------------------------------------------------------------------------

async def subscribe(d, topic, qos=1):
    """Subscribe one topic filter; returns on ``+CMQTTSUB: <idx>,0``.

    Inline form ``AT+CMQTTSUB=<idx>,<len>,<qos>`` + topic (16.2.13), or with
    ``sub_two_step`` AT+CMQTTSUBTOPIC then AT+CMQTTSUB=<idx> (A7600 note 2.1.13)."""
    await subscribe_many(d, ((topic, qos),), d.sub_two_step)


async def subscribe_many(d, pairs, two_step=True):
    """Subscribe several (topic, qos) filters in one SUBSCRIBE (two-step form)."""
    items = []
    for topic, qos in pairs:
        t = _bytes(topic, "topic")
        _len_ok(t, "topic", 1, _TOPIC_MAX)
        items.append((t, _int_in(qos, "qos", 0, 2)))
    if not items:
        raise ValueError("nothing to subscribe")
    if len(items) > 1 and not two_step:
        raise ValueError("several topics need the two-step form (AT+CMQTTSUBTOPIC)")

    async def attempt():
        a = _args(d)
        if two_step:
            for t, q in items:
                a[_A_LEN] = len(t)
                a[_A_QOS] = q
                a[_A_DATA] = t
                await _run(d, _SUBTOPIC, a)
            await _run(d, _SUB_TWO, a)
        else:
            t, q = items[0]
            a[_A_LEN] = len(t)
            a[_A_QOS] = q
            a[_A_DATA] = t
            await _run(d, _SUB, a)

    async with d._lock:
        try:
            await d._retrying(attempt)
        except ModemError as e:
            raise d._fail(e) from None
        d.stats["subscribed"] += len(items)


async def unsubscribe(d, topic, two_step=None):
    """Unsubscribe one topic filter; returns on ``+CMQTTUNSUB: <idx>,0``."""
    t = _bytes(topic, "topic")
    _len_ok(t, "topic", 1, _TOPIC_MAX)
    if two_step is None:
        two_step = d.sub_two_step
    i = d.index

    async def attempt():
        if two_step:
            await d._exec(b"AT+CMQTTUNSUBTOPIC=%d,%d" % (i, len(t)), b"+CMQTTUNSUBTOPIC:",
                          payload=t)
            await d._exec(b"AT+CMQTTUNSUB=%d,0" % i, b"+CMQTTUNSUB:", kind=_K_UNSUB)
        else:
            await d._exec(b"AT+CMQTTUNSUB=%d,%d,0" % (i, len(t)), b"+CMQTTUNSUB:",
                          payload=t, kind=_K_UNSUB)

    async with d._lock:
        try:
            await d._retrying(attempt)
        except ModemError as e:
            raise d._fail(e) from None
