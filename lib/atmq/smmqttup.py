"""The SM driver's session setup and teardown, imported for one call and dropped after it.

``SMDriver.start/configure_tls/connect/connect_azure/disconnect/stop/subscribe/
unsubscribe`` live here, reached through ``SMDriver.__getattr__`` (same names,
arguments and results as methods).  They run at link bring-up, at a rebuild and at
the end; between them a connected board needs only the driver's publish path and URC
handlers.  A module's function objects, globals and tables cost heap for as long as
it is imported, even with the bytecode frozen in flash (issue 11), so each call
imports this module and removes it from ``sys.modules`` when it ends.  No class is
defined here, so nothing that outlives a call keeps the module alive.

Sources as in ``atmq.smmqtt``: [004] = SIM800 series MQTT(S) application note,
[7080] = the SIM7080 series AT manual's AT+SM* commands.
"""

import sys

from .compat import const
from .errors import ATTimeout, ConfigError, ModemError
from .smmqtt import _bytes, _int_in, _no_wildcards, _quotable

# atmq.script is dropped with this module unless something else had it
_SCRIPT_HAD = "atmq.script" in sys.modules
from . import script as _script  # noqa: E402

_R_OK = const(1)  # = atmq.engine.R_OK
_MUST = const(0)  # = atmq.script.MUST
_T_CMD = const(10000)  # = atmq.smmqtt.T_CMD
_T_RESULT = const(65000)  # = atmq.smmqtt.T_RESULT
_T_DISC = const(30000)  # AT+SMDISC: neither manual gives a max response time
_ABORTED = const(-2)  # = atmq.events.RESULT_ABORTED
_K_SUB = const(2)  # = atmq.smmqtt._K_SUB
_K_UNSUB = const(3)  # = atmq.smmqtt._K_UNSUB
_EMPTY = const(b'""')  # = atmq.smmqtt._EMPTY
_KEEPALIVE_MIN_SIM800 = const(60)  # = atmq.smmqtt.KEEPALIVE_MIN_SIM800
_KEEPALIVE_MAX_SIM800 = const(3600)  # = atmq.smmqtt.KEEPALIVE_MAX_SIM800
_KEEPTIME_MAX_SIM70X0 = const(65535)  # = atmq.smmqtt.KEEPTIME_MAX_SIM70X0
_SSL_CTX_MAX = const(5)  # = atmq.smmqtt.SSL_CTX_MAX

_NAMES = const(("start", "configure_tls", "connect", "connect_azure", "disconnect", "stop",
                "subscribe", "unsubscribe"))


def attr(d, name):
    """``getattr(d, name)`` for the names kept here (a coroutine function that runs the
    call, then drops this module); AttributeError for any other."""
    if name not in _NAMES:
        _drop()  # a probe (``getattr(x, name, None)``) leaves nothing imported
        raise AttributeError(name)
    f = globals()[name]

    async def call(*args, **kw):
        try:
            return await f(d, *args, **kw)
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


# The connect's AT+SMCONF settings as data (atmq.script), in the order they are sent: seed 004
# 3.1 (SIM800: URL "server:port", KEEPALIVE, no will) and the SIM7080 manual's AT+SMCONF
# (URL "server",port, KEEPTIME, the will tags).  args: the value bytes per tag, None for a
# tag the modem holds already or that this variant has not (not sent).  Neither manual gives
# a max response time: T_CMD.
_SMCONF_TAGS = const(("URL", "CLIENTID", "KEEPALIVE", "KEEPTIME", "CLEANSS", "USERNAME",
                      "PASSWORD", "TOPIC", "MESSAGE", "QOS", "RETAIN"))
_SMCONF = const((
    ((b'AT+SMCONF="URL",%s', 0), None, None, _T_CMD, _MUST, "004 s.3.1 / 7080 SMCONF"),
    ((b'AT+SMCONF="CLIENTID",%s', 1), None, None, _T_CMD, _MUST, "004 s.3.1"),
    ((b'AT+SMCONF="KEEPALIVE",%s', 2), None, None, _T_CMD, _MUST, "004 s.3.1: SIM800"),
    ((b'AT+SMCONF="KEEPTIME",%s', 3), None, None, _T_CMD, _MUST, "7080 SMCONF: SIM70x0"),
    ((b'AT+SMCONF="CLEANSS",%s', 4), None, None, _T_CMD, _MUST, "004 s.3.1"),
    # the engine's errors mask the user name and password (errors._MASKS)
    ((b'AT+SMCONF="USERNAME",%s', 5), None, None, _T_CMD, _MUST, "004 s.3.1"),
    ((b'AT+SMCONF="PASSWORD",%s', 6), None, None, _T_CMD, _MUST, "004 s.3.1"),
    ((b'AT+SMCONF="TOPIC",%s', 7), None, None, _T_CMD, _MUST, "7080 SMCONF: will"),
    ((b'AT+SMCONF="MESSAGE",%s', 8), None, None, _T_CMD, _MUST, "7080 SMCONF: will"),
    ((b'AT+SMCONF="QOS",%s', 9), None, None, _T_CMD, _MUST, "7080 SMCONF: will"),
    ((b'AT+SMCONF="RETAIN",%s', 10), None, None, _T_CMD, _MUST, "7080 SMCONF: will"),
))

_TLS_KEYS_SIM800 = const(("root", "root_len", "verify", "client_auth", "port"))
_TLS_KEYS_SIM70X0 = const(("ssl_ctx", "cacert", "clientcert", "clientkey", "sslversion",
                           "sni", "port"))


async def _state_or(d, err):
    # The state after a refused command; if even that fails, the first error stands.
    try:
        return await d._state()
    except ModemError:
        raise err from None


async def start(d, client_id=None, tls=None):
    """Nothing to start on this family: the bearer (SAPBR/CNACT) is the Modem's
    ``data_up``; kept for interface parity with CMQTTDriver."""
    return


# ---- TLS ---------------------------------------------------------------------------------


def _check_tls(d, tls):
    if not isinstance(tls, dict):
        raise ConfigError("tls", "must be a dict or None, got %s" % type(tls).__name__)
    keys = _TLS_KEYS_SIM800 if d.sim800 else _TLS_KEYS_SIM70X0
    for k in tls:
        if k not in keys:
            raise ConfigError("tls." + str(k), "unknown key for the SM family on %s "
                              "(known: %s)" % (d.variant, ", ".join(keys)))
    p = {}
    if d.sim800:
        root = tls.get("root")
        if root is not None:
            try:
                p["root"] = _quotable(_bytes(root, "tls.root"), "tls.root", 1, 255,
                                      path=True)
            except (ValueError, TypeError) as e:
                raise ConfigError("tls.root", str(e)) from None
            n = tls.get("root_len")
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ConfigError("tls.root_len", "the root certificate file's length in "
                                  "bytes is needed by AT+SSLSETROOT (seed 004 4.2)")
            p["root_len"] = n
        else:
            p["root"] = None
        p["verify"] = bool(tls.get("verify", True))
        p["client_auth"] = bool(tls.get("client_auth", False))
        return p
    ctx = tls.get("ssl_ctx", 0)
    if not isinstance(ctx, int) or isinstance(ctx, bool) or not 0 <= ctx <= _SSL_CTX_MAX:
        raise ConfigError("tls.ssl_ctx", "%r is not in 0..%d (CSSLCFG <ctxindex>)"
                          % (ctx, _SSL_CTX_MAX))
    p["ssl_ctx"] = ctx
    for k in ("cacert", "clientcert", "clientkey"):
        v = tls.get(k)
        if v is not None:
            try:
                v = _quotable(_bytes(v, "tls." + k), "tls." + k, 1, 64)
            except (ValueError, TypeError) as e:
                raise ConfigError("tls." + k, str(e)) from None
        p[k] = v
    if (p["clientcert"] is None) != (p["clientkey"] is None):
        raise ConfigError("tls.clientkey", "clientcert and clientkey go together")
    v = tls.get("sslversion", 3)
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 5:
        raise ConfigError("tls.sslversion", "%r is not in 0..5 (SIM7080 CSSLCFG: 1 TLS1.0, "
                          "2 TLS1.1, 3 TLS1.2)" % (v,))
    p["sslversion"] = v
    s = tls.get("sni")
    if s is not None:
        if not isinstance(s, (str, bytes)):
            raise ConfigError("tls.sni", "the server name to send, or None")
        try:
            s = _quotable(_bytes(s, "tls.sni"), "tls.sni", 1, 255)
        except ValueError as e:
            raise ConfigError("tls.sni", str(e)) from None
    p["sni"] = s
    return p


async def configure_tls(d, tls):
    """None: plain (connect sends SMSSL=0 if SSL was on).  A dict:

    sim800 ([004] 4.2): ``root`` (file on the modem, e.g. ``C:\\USER\\CA.CRT``),
    ``root_len`` (its bytes), ``verify`` (True: AT+SSLOPT=0,0, do not ignore an
    invalid certificate), ``client_auth`` (AT+SSLOPT=1,1); then AT+SMSSL=1.
    sim70x0 ([7080]): ``ssl_ctx`` 0..5, ``cacert``, ``clientcert``/``clientkey``
    (files already on the modem), ``sslversion`` (3: TLS 1.2), ``sni`` (a name);
    AT+CSSLCFG SSLVERSION/SNI/CONVERT, then AT+SMSSL=<ctx+1>,"<ca>","<cert>".
    Settings the modem already holds (same profile) are not sent again."""
    if tls is None:
        d._tls = None
        return
    p = _check_tls(d, tls)  # ConfigError naming the key, before anything is sent
    async with d._lock:
        d._tls = p
        if d._tls_sent == p and d._ssl_on:
            return
        await _send_tls(d, p)


async def _send_tls(d, p):
    d._tls_sent = None
    if d.sim800:
        if p["root"] is not None:
            await d._cmd(b'AT+SSLSETROOT="%s",%d' % (p["root"], p["root_len"]))
        await d._cmd(b"AT+SSLOPT=0,%d" % (0 if p["verify"] else 1))
        await d._cmd(b"AT+SSLOPT=1,%d" % (1 if p["client_auth"] else 0))
    else:
        c = p["ssl_ctx"]
        await d._cmd(b'AT+CSSLCFG="SSLVERSION",%d,%d' % (c, p["sslversion"]))
        if p["sni"] is not None:
            await d._cmd(b'AT+CSSLCFG="SNI",%d,"%s"' % (c, p["sni"]))
        if p["cacert"] is not None:
            await d._cmd(b'AT+CSSLCFG="CONVERT",2,"%s"' % p["cacert"])
        if p["clientcert"] is not None:
            await d._cmd(b'AT+CSSLCFG="CONVERT",1,"%s","%s"'
                            % (p["clientcert"], p["clientkey"]))
    d._ssl_on = None
    await d._cmd(_smssl_on(d, p))
    d._ssl_on = True
    d._tls_sent = p


def _smssl_on(d, p):
    if d.sim800:
        return b"AT+SMSSL=1"  # [004] 3.9
    cmd = b"AT+SMSSL=%d" % (p["ssl_ctx"] + 1)  # [7080] 1..6 = context 0..5
    if p["cacert"] is not None or p["clientcert"] is not None:
        cmd += b',"%s"' % (p["cacert"] or b"")
        if p["clientcert"] is not None:
            cmd += b',"%s"' % p["clientcert"]
    return cmd


async def _ssl(d, tls):
    if tls:
        p = d._tls
        if p is None:
            raise ConfigError("tls", "connect(tls=True) needs configure_tls(<profile>) first")
        if not d._ssl_on or d._tls_sent != p:
            await _send_tls(d, p)
    elif d._ssl_on is not False:
        d._ssl_on = None
        await d._cmd(b"AT+SMSSL=0")
        d._ssl_on = False


# ---- connection ----------------------------------------------------------------------------


def _conf_plan(d, host, port, client_id, keepalive_s, clean, user, password, will):
    """[(tag, value)] in the order they are sent; validates all."""
    h = _quotable(_bytes(host, "host"), "host", 1, 255)
    src = "seed 004 3.1" if d.sim800 else "SIM7080 manual AT+SMCONF"
    port = 1883 if port is None else _int_in(port, "port", 1, 65535, src)
    if d.sim800:
        url = _quotable(b"%s:%d" % (h, port), "URL", 1, 255)
        plan = [("URL", b'"%s"' % url)]  # [004] 3.1 "server:tcpPort"
    else:
        plan = [("URL", b'"%s",%d' % (h, port))]  # [7080] "server",<port>
    cid = b"" if client_id is None else _bytes(client_id, "client_id")
    if cid:
        _quotable(cid, "client_id", 1, 128)
    plan.append(("CLIENTID", b'"%s"' % cid))
    if d.sim800:
        ka = _int_in(keepalive_s, "keepalive_s", _KEEPALIVE_MIN_SIM800, _KEEPALIVE_MAX_SIM800,
                     "seed 004 3.1 KEEPALIVE")
        plan.append(("KEEPALIVE", b"%d" % ka))
    else:
        ka = _int_in(keepalive_s, "keepalive_s", 0, _KEEPTIME_MAX_SIM70X0,
                     "SIM7080 manual KEEPTIME")
        plan.append(("KEEPTIME", b"%d" % ka))
    plan.append(("CLEANSS", b"1" if clean else b"0"))
    u = b"" if user is None else _bytes(user, "user")
    pw = b"" if password is None else _bytes(password, "password")
    if pw and not u:
        raise ValueError("a password needs a user name")
    if u:
        _quotable(u, "user", 1, 256)
    if pw:
        _quotable(pw, "password", 1, 256)
    plan.append(("USERNAME", b'"%s"' % u))
    plan.append(("PASSWORD", b'"%s"' % pw))  # errors mask it (errors._MASKS)
    if will is not None:
        if d.sim800:
            raise ValueError("SIM800 AT+SMCONF has no will (seed 004 3.1): use will=None")
        wt, wm, wq, wr = will
        wt = _quotable(_bytes(wt, "will topic"), "will topic", 1, 1024)
        _no_wildcards(wt, "will topic")
        wm = _quotable(_bytes(wm, "will message"), "will message", 1, 1024)
        wq = _int_in(wq, "will qos", 0, 2, src)
        plan.append(("TOPIC", b'"%s"' % wt))
        plan.append(("MESSAGE", b'"%s"' % wm))
        plan.append(("QOS", b"%d" % wq))
        plan.append(("RETAIN", b"1" if wr else b"0"))
    return plan


async def _apply_conf(d, plan):
    conf = d._conf
    args = [None] * len(_SMCONF_TAGS)  # type: list
    sent = []
    for tag, v in plan:
        have = conf.get(tag)
        if have == v:
            continue
        if v == _EMPTY and have is None:
            continue  # clearing what we never set: the modem may not take "" (unknown)
        args[_SMCONF_TAGS.index(tag)] = v
        conf.pop(tag, None)  # unknown until it is answered (a failed run: sent again)
        sent.append((tag, v))
    if sent:
        await _script.run(d.at, _SMCONF, "mqtt", args)
    for tag, v in sent:
        conf[tag] = v


async def connect(d, host, port, client_id, keepalive_s=60, clean=True, user=None,
                  password=None, will=None, tls=False, timeout_ms=30000):
    """AT+SMSSL as ``tls`` needs, AT+SMCONF for each value the modem may not hold,
    then AT+SMCONN (synchronous: OK once the broker accepted, [004] 3.3).

    ``will`` = (topic, msg, qos, retain): SIM70x0 only.  A refused SMCONN while
    AT+SMSTATE? says connected counts as connected (``state_ok``)."""
    plan = _conf_plan(d, host, port, client_id, keepalive_s, clean, user, password, will)
    async with d._lock:
        await _ssl(d, tls)
        await _apply_conf(d, plan)
        await _conn(d, timeout_ms)


async def connect_azure(d, hub, device_id, device_key, expiry_s=86400, port=8883,
                        timeout_ms=30000):
    """SIM800 Azure IoT Hub ([004] 3.2, 4.2): AT+SAZURECONF then AT+SMCONN (TLS as
    set by configure_tls; the note sets it first)."""
    if not d.sim800:
        raise ValueError("AT+SAZURECONF is a SIM800 command (seed 004 3.2)")
    h = _quotable(_bytes(hub, "hub"), "hub", 1, 255)
    port = _int_in(port, "port", 1, 65535, "seed 004 3.2")
    dev = _quotable(_bytes(device_id, "device_id"), "device_id", 1, 128)
    k = _quotable(_bytes(device_key, "device_key"), "device_key", 1, 256)
    ex = _int_in(expiry_s, "expiry_s", 0, 3600 * 24 * 365, "seed 004 3.2")
    cmd = b'AT+SAZURECONF="%s:%d","%s","%s",%d' % (h, port, dev, k, ex)
    async with d._lock:
        await d._cmd(cmd, b'AT+SAZURECONF="%s:%d","%s","***",%d' % (h, port, dev, ex))
        d._conf.pop("URL", None)  # SAZURECONF sets the server itself
        d._conf.pop("CLIENTID", None)
        await _conn(d, timeout_ms)


async def _conn(d, timeout_ms):
    gen = d._lost_gen
    r = await d.at.cmd(b"AT+SMCONN", timeout_ms=timeout_ms, check=False)
    if r.final == _R_OK:
        # a loss read together with the OK was handled before we resumed
        d.connected = gen == d._lost_gen
        d.stats["connects"] += 1
        return
    err = d.at.error(b"AT+SMCONN")
    if await _state_or(d, err) != 0:  # refused because already connected: that is success
        d.stats["state_ok"] += 1
        d.connected = True
        return
    d.connected = False
    raise err


async def disconnect(d, timeout_s=None):
    """AT+SMDISC; refused while AT+SMSTATE? says 0 counts as done (idempotent)."""
    async with d._lock:
        await _disc(d)


async def _disc(d):
    r = await d.at.cmd(b"AT+SMDISC", timeout_ms=_T_DISC, check=False)
    d.connected = False
    if r.final == _R_OK:
        return
    err = d.at.error(b"AT+SMDISC")
    if await _state_or(d, err) == 0:
        d.stats["state_ok"] += 1
        return
    raise err


async def stop(d):
    """Disconnect (idempotent); the bearer stays up (it is the Modem's)."""
    async with d._lock:
        await _disc(d)


async def subscribe(d, topic, qos=1):
    """AT+SMSUB="<topic>",<qos>: OK, then on sim800 ``+SMSUB: <id>,<status>``."""
    t = _quotable(_bytes(topic, "topic"), "topic", 1, 1024)
    q = _int_in(qos, "qos", 0, 1 if d.sim800 else 2,
                "seed 004 3.4" if d.sim800 else "SIM7080 manual AT+SMSUB")
    await _sub(d, b'AT+SMSUB="%s",%d' % (t, q), _K_SUB)
    d.stats["subscribed"] += 1


async def unsubscribe(d, topic):
    """AT+SMUNSUB="<topic>": OK, then on sim800 ``+SMUNSUB: <id>,<status>``."""
    t = _quotable(_bytes(topic, "topic"), "topic", 1, 1024)
    await _sub(d, b'AT+SMUNSUB="%s"' % t, _K_UNSUB)


async def _sub(d, cmd, kind):
    async with d._lock:
        try:
            if d.sim800:
                st = await d._two_phase(cmd, kind, _T_RESULT)
            else:
                await d._cmd(cmd)
                st = 0
        except ModemError as e:
            if not isinstance(e, ATTimeout):
                await d._check_link()
            raise
        if st != 0:
            if st != _ABORTED:
                await d._check_link()
            raise d._status_error(st, cmd)
