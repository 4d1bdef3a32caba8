"""Certificates and SSL contexts on the modem: AT+CCERTDOWN/CCERTLIST/CCERTDELE, AT+CSSLCFG.

Owns what the SIM767XX manual ch. 17 (and the A7600 MQTT(S) note 1.1) says
about the SSL layer the CMQTT stack uses:

- ``download_cert(at, name, data)``: ``AT+CCERTDOWN="<name>",<len>`` then the
  exact bytes after the ``>`` prompt (17.2.2: 1..10240 bytes, a name of 5..55
  bytes ending in ``.pem`` or ``.der``).  A ``.pem`` must look like PEM (a
  ``-----BEGIN`` / ``-----END`` pair, ASCII only); a ``.der`` must start like
  DER (an ASN.1 SEQUENCE, 0x30).  Refused before anything is sent.
- ``list_certs(at)`` / ``delete_cert(at, name)`` (17.2.3, 17.2.4).
- ``configure_ssl(at, ctx, profile)``: the ``AT+CSSLCFG`` settings of one
  context (17.2.1), in the order of the A7600 note 1.1 (sslversion, authmode,
  ignorelocaltime, negotiatetime, cacert, clientcert, clientkey) then
  enableSNI.  ``profile`` is a dict (see ``normalize``) or one of the three
  ready profiles: ``aws_iot()`` (mutual TLS, port 8883, SNI on),
  ``mosquitto_tls()`` (server verification) and ``plain()`` (no TLS: None).

Old firmware: a SIM7600 with ``LE11B02SIM7500A`` answers a bare ``ERROR`` to
``AT+CSSLCFG="sslversion",0,4`` (seed 001); nothing but a firmware upgrade
helps (``LE11B03SIM7600A-H`` worked there), so that raises ``FirmwareError``
naming the revision (``AT+CGMR`` when the caller did not give it) and the
remedy, class FATAL: no retry loop.
"""

from .errors import ATError, ConfigError, ModemError
from . import errtab
from . import script as _script

# tls_version names -> <sslversion> per numbering (003 s.17.2.1): the classic table
# (0 SSL3.0, 1 TLS1.0, 2 TLS1.1, 3 TLS1.2, 4 All; default 4) and the one of TLS 1.3
# builds (0 TLS1.2, 1 TLS1.3, 2 ALL; default 2).  Told apart by AT+CSSLCFG=?'s range.
TLS_VERSIONS = ("all", "tls1.2", "tls1.3")
_CLASSIC = {"all": 4, "tls1.2": 3}
_TLS13 = {"all": 2, "tls1.2": 0, "tls1.3": 1}
_FROM_CLASSIC = {4: 2, 3: 0}  # a classic number on a TLS 1.3 build

CERT_MAX = 10240  # 17.2.2 <len>: 1..10240 bytes
NAME_MIN = 5  # 17.2.1/17.2.2: file names of 5..55 bytes, ".pem" or ".der"
NAME_MAX = 55
T_SSL_MS = 120000  # 17.2.1-17.2.4 "Max Response Time 120000ms"
T_PROMPT_MS = 5000

_KEYS = ("ssl_ctx", "cacert", "clientcert", "clientkey", "authmode", "sslversion",
         "ignorelocaltime", "negotiatetime", "sni", "ignorecertcn", "port")
_DEFAULTS = (0, "ca.pem", None, None, None, 4, 1, 300, None, None, 8883)


class FirmwareError(ModemError):
    """The modem firmware lacks a feature (it answered a valid command with ERROR); FATAL."""

    def __init__(self, command, revision, feature, remedy):
        super().__init__("AT", -1, command)
        self.cls = errtab.FATAL
        self.revision = revision
        self.feature = feature
        self.remedy = remedy

    def __str__(self):
        return "modem firmware %s refuses %s (plain ERROR): %s" % (
            self.revision or "(revision unknown)", self.feature, self.remedy)


def _b(x, what):
    if isinstance(x, str):
        return x.encode()
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    raise ConfigError(what, "must be str or bytes, got %s" % type(x).__name__)


def check_name(name, what="name"):
    """A certificate file name as the manual allows it -> bytes; ConfigError otherwise."""
    n = _b(name, what)
    if not NAME_MIN <= len(n) <= NAME_MAX:
        raise ConfigError(what, "file name %r must be %d..%d bytes (manual 17.2.2)"
                          % (name, NAME_MIN, NAME_MAX))
    if not (n.endswith(b".pem") or n.endswith(b".der")):
        raise ConfigError(what, "file name %r must end in .pem or .der (manual 17.2.2)" % (name,))
    for c in n:
        if c < 32 or c > 126 or c == 34:
            raise ConfigError(what, "file name %r: printable ASCII only, no quote" % (name,))
    return n


def check_cert(name, data):
    """Sanity of certificate bytes for file ``name``; returns the bytes to send."""
    d = _b(data, "data")
    n = len(d)
    if n < 1 or n > CERT_MAX:
        raise ValueError("certificate %s: %d bytes, the modem takes 1..%d (manual 17.2.2)"
                         % (name, n, CERT_MAX))
    if name.endswith(b".der"):
        if d[0] != 0x30:
            raise ValueError("certificate %s: not DER (does not start with an ASN.1 SEQUENCE)"
                             % name.decode())
        return d
    b = d.find(b"-----BEGIN ")
    e = d.find(b"-----END ")
    if b < 0 or e < b:
        raise ValueError("certificate %s: not PEM (no -----BEGIN ... -----END pair); "
                         "convert it or name it .der" % name.decode())
    for c in d:
        if c > 126 or (c < 32 and c != 10 and c != 13 and c != 9):
            raise ValueError("certificate %s: PEM must be ASCII text, found byte 0x%02x"
                             % (name.decode(), c))
    return d


async def download_cert(at, name, data):
    """Store ``data`` on the modem as certificate file ``name`` (AT+CCERTDOWN, exact bytes)."""
    nm = check_name(name)
    d = check_cert(nm, data)
    cmd = b'AT+CCERTDOWN="%s",%d' % (nm, len(d))
    # 17.2.2: "every packet data should be no larger than 3072 bytes"
    await at.cmd(cmd, payload=d, timeout_ms=T_SSL_MS, prompt_timeout_ms=T_PROMPT_MS,
                 payload_chunk=3072, payload_gap_ms=20)


async def list_certs(at):
    """Names of the certificate files on the modem (AT+CCERTLIST), in the modem's order."""
    r = await at.cmd(b"AT+CCERTLIST", resp=b"+CCERTLIST:", timeout_ms=T_SSL_MS)
    out = []
    for i in range(r.count):
        a = r.line(i)
        if a.count() >= 1 and a.arg_len(0) > 0:
            out.append(a.arg_str(0))
    return out


async def delete_cert(at, name, missing_ok=True):
    """Delete certificate file ``name`` (AT+CCERTDELE); True if it was there.

    The manual gives only ERROR for a failure; with ``missing_ok`` an ERROR for
    a name that ``AT+CCERTLIST`` does not show counts as already deleted.
    """
    nm = check_name(name)
    cmd = b'AT+CCERTDELE="%s"' % nm
    r = await at.cmd(cmd, timeout_ms=T_SSL_MS, check=False)
    if r.ok:
        return True
    err = at.error(cmd)
    if missing_ok and isinstance(err, ATError) and nm.decode() not in await list_certs(at):
        return False
    raise err


# ---- SSL context profiles -------------------------------------------------------------------

def aws_iot(cacert="cacert.pem", clientcert="clientcert.pem", clientkey="clientkey.pem",
            ssl_ctx=0, negotiatetime=300):
    """AWS IoT Core: mutual TLS on port 8883 with SNI (file names as in seed 001)."""
    return {"ssl_ctx": ssl_ctx, "cacert": cacert, "clientcert": clientcert,
            "clientkey": clientkey, "authmode": 2, "sslversion": 4, "ignorelocaltime": 1,
            "negotiatetime": negotiatetime, "sni": True, "port": 8883}


def mosquitto_tls(cacert="ca.pem", ssl_ctx=0, port=8883, negotiatetime=300):
    """A Mosquitto TLS listener (cafile/certfile/keyfile): verify the server, port 8883."""
    return {"ssl_ctx": ssl_ctx, "cacert": cacert, "clientcert": None, "clientkey": None,
            "authmode": 1, "sslversion": 4, "ignorelocaltime": 1,
            "negotiatetime": negotiatetime, "sni": None, "port": port}


def plain():
    """A plain MQTT broker (port 1883): no SSL context at all."""
    return None


def _int(p, key, lo, hi):
    v = p[key]
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ConfigError("tls." + key, "%r is not an integer in %d..%d (manual 17.2.1)"
                          % (v, lo, hi))
    return v


def normalize(tls):
    """A TLS dict with every key present and checked; ConfigError names a bad key.

    Keys: ssl_ctx (0..9), cacert/clientcert/clientkey (file names or None),
    authmode (None: derived, 0 none, 1 server, 2 mutual, 3 client only),
    sslversion (0..4, 4 = all), ignorelocaltime (0/1), negotiatetime (10..300 s)
    (these two: None leaves the modem's value, 1 and 300 by default, alone),
    sni (None: leave the modem default, False: off, True or a host name: on),
    ignorecertcn (None: not sent; 1: accept a server certificate whose CN is not the
    host, for self-signed test brokers; SIM767XX manual V1.02 and later),
    port (informational, not sent).
    """
    if not isinstance(tls, dict):
        raise ConfigError("tls", "must be a dict or None, got %s" % type(tls).__name__)
    for k in tls:
        if k not in _KEYS:
            raise ConfigError("tls." + str(k), "unknown key (known: %s)" % ", ".join(_KEYS))
    p = {}
    for i in range(len(_KEYS)):
        k = _KEYS[i]
        p[k] = tls.get(k, _DEFAULTS[i])
    _int(p, "ssl_ctx", 0, 9)
    v = p["sslversion"]
    if isinstance(v, str):
        if v not in TLS_VERSIONS:
            raise ConfigError("tls.sslversion", "%r is not one of %s or 0..4 (manual 17.2.1)"
                              % (v, ", ".join(TLS_VERSIONS)))
    elif v is not None:
        _int(p, "sslversion", 0, 4)
    if p["ignorelocaltime"] is not None:  # None: leave the modem's setting (note 3.3 does)
        _int(p, "ignorelocaltime", 0, 1)
    if p["negotiatetime"] is not None:
        _int(p, "negotiatetime", 10, 300)
    for k in ("cacert", "clientcert", "clientkey"):
        if p[k] is not None:
            check_name(p[k], "tls." + k)
    ca = p["cacert"] is not None
    mine = p["clientcert"] is not None and p["clientkey"] is not None
    if (p["clientcert"] is None) != (p["clientkey"] is None):
        raise ConfigError("tls.clientkey", "clientcert and clientkey go together")
    if p["authmode"] is None:  # 17.2.1 <authmode>
        p["authmode"] = (2 if mine else 1) if ca else (3 if mine else 0)
    m = _int(p, "authmode", 0, 3)
    if m in (1, 2) and not ca:
        raise ConfigError("tls.cacert", "authmode %d verifies the server: needs the root CA" % m)
    if m in (2, 3) and not mine:
        raise ConfigError("tls.clientcert", "authmode %d authenticates the client: needs "
                          "clientcert and clientkey" % m)
    if p["ignorecertcn"] is not None:
        _int(p, "ignorecertcn", 0, 1)
    s = p["sni"]
    if s is not None and not isinstance(s, (bool, str)):
        raise ConfigError("tls.sni", "None, a bool or a host name, got %r" % (s,))
    return p


def _number(name, top):
    if top == 2:
        return _TLS13[name]
    n = _CLASSIC.get(name)
    if n is None:
        raise ConfigError("tls.sslversion", "%r: this modem's firmware lists no TLS 1.3 "
                          "(AT+CSSLCFG=? offers 0..%d, manual 17.2.1)" % (name, top))
    return n


async def _version_top(at):
    """The highest <sslversion> of ``AT+CSSLCFG=?`` (4 classic, 2 on TLS 1.3 builds), or
    None when the command or its sslversion line is missing (no SSL contexts)."""
    r = await at.cmd(b"AT+CSSLCFG=?", resp=b"+CSSLCFG:", timeout_ms=T_SSL_MS, check=False)
    if not r.ok:
        return None
    for i in range(r.count):
        a = r.line(i)
        if a.arg_eq(0, b"sslversion"):
            t = a.arg_str(2)  # "(0-4)" / "(0-2)"
            k = t.rfind("-")
            try:
                return int(t[k + 1:].rstrip(")"))
            except ValueError:
                return None
    return None


async def _no_ssl(at, cmd, revision):
    rev = await _revision(at, revision)
    return FirmwareError(cmd, rev, 'AT+CSSLCFG="sslversion"',
                         "this firmware has no SSL context support for MQTT(S); "
                         "upgrade the modem firmware (seed 001: LE11B02SIM7500A failed, "
                         "LE11B03SIM7600A-H works)")


async def _revision(at, revision):
    if revision:
        return revision
    try:
        r = await at.cmd(b"AT+CGMR", resp=b"+CGMR:", bare=True, timeout_ms=3000)
    except ModemError:
        return None
    for i in range(r.count):
        a = r.line(i)
        if a.startswith(b"+CGMR:"):
            return a.arg_str(0)
        if len(a):
            return a.text()
    return None


async def _set(at, ctx, key, value):
    cmd = b'AT+CSSLCFG="%s",%d,%d' % (key, ctx, value)
    return cmd, await at.cmd(cmd, timeout_ms=T_SSL_MS, check=False)


def _name(v):
    return None if v is None else check_name(v)


# The settings of one SSL context after sslversion, as data (atmq.script), in the order of
# the A7600 note 1.1 then enableSNI; args (ctx, authmode, ignorelocaltime, negotiatetime,
# cacert, clientcert, clientkey, enableSNI, ignorecertCN), None: not sent (left as the
# module has it).  sslversion itself stays code: its refusal decides between the TLS 1.3
# numbering and a firmware without SSL contexts.
_T = T_SSL_MS  # 17.2.1 "Max Response Time 120000ms"
_CONTEXT = (
    ((b'AT+CSSLCFG="authmode",%d,%d', 0, 1), None, None, _T, _script.MUST, "003 s.17.2.1"),
    ((b'AT+CSSLCFG="ignorelocaltime",%d,%d', 0, 2), None, None, _T, _script.MUST,
     "003 s.17.2.1"),
    ((b'AT+CSSLCFG="negotiatetime",%d,%d', 0, 3), None, None, _T, _script.MUST,
     "003 s.17.2.1"),
    ((b'AT+CSSLCFG="cacert",%d,"%s"', 0, 4), None, None, _T, _script.MUST, "003 s.17.2.1"),
    ((b'AT+CSSLCFG="clientcert",%d,"%s"', 0, 5), None, None, _T, _script.MUST,
     "003 s.17.2.1"),
    ((b'AT+CSSLCFG="clientkey",%d,"%s"', 0, 6), None, None, _T, _script.MUST,
     "003 s.17.2.1"),
    # not fatal when refused: seed 001's working AWS IoT session never sent it; a broker
    # that needs SNI refuses the handshake, and that error names the cause
    ((b'AT+CSSLCFG="enableSNI",%d,%d', 0, 7), None, None, _T, _script.OPTIONAL,
     "003 s.17.2.1: enableSNI"),
    ((b'AT+CSSLCFG="ignorecertCN",%d,%d', 0, 8), None, None, _T, _script.MUST,
     "003 s.17.2.1 (manual V1.02 and later)"),
)
_I_SNI = 6


async def configure_ssl(at, ctx, profile, revision=None):
    """Send the AT+CSSLCFG settings of ``profile`` to SSL context ``ctx``; returns the
    normalized profile (None for a plain broker, nothing is sent then).

    ``revision``: the modem's firmware revision if known (named in FirmwareError).
    """
    if profile is None:
        return None
    p = normalize(profile)
    if not isinstance(ctx, int) or not 0 <= ctx <= 9:
        raise ConfigError("tls.ssl_ctx", "%r is not in 0..9 (manual 17.2.1)" % (ctx,))
    p["ssl_ctx"] = ctx
    want = p["sslversion"]
    top = None
    if isinstance(want, str):  # a name: the numbering of this build decides the number
        top = await _version_top(at)
        if top is None:
            raise await _no_ssl(at, b'AT+CSSLCFG=?', revision)
        want = _number(want, top)
    if want is not None:
        cmd, r = await _set(at, ctx, b"sslversion", want)
        if not r.ok:
            err = at.error(cmd)
            if not isinstance(err, ATError):
                raise err
            # A bare ERROR: a TLS 1.3 build refuses the classic 4/3 (003 s.17.2.1 lists
            # 0..2 there), or a firmware without SSL contexts (seed 001).  The test
            # command tells which; only the latter is a firmware problem.
            if top is None:
                top = await _version_top(at)
            if top is None:
                raise await _no_ssl(at, cmd, revision)
            alt = _FROM_CLASSIC.get(want) if top == 2 else None
            if alt is None:
                raise err
            cmd, r = await _set(at, ctx, b"sslversion", alt)
            if not r.ok:
                raise at.error(cmd)
            want = alt
        p["sslversion"] = want
    s = p["sni"]
    args = (ctx, p["authmode"], p["ignorelocaltime"], p["negotiatetime"],
            _name(p["cacert"]), _name(p["clientcert"]), _name(p["clientkey"]),
            None if s is None else (0 if s is False else 1), p["ignorecertcn"])
    if _I_SNI in await _script.run(at, _CONTEXT, "tls", args):
        p["sni"] = None
    return p
