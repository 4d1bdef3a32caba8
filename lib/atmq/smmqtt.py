"""MQTT(S) through the modem's own client: the AT+SM* family (SIM800, SIM7000/SIM7070/SIM7080).

Owns the modem's single SM MQTT client on an ``Engine``: AT+SMCONF, AT+SMCONN,
AT+SMPUB, AT+SMSUB, AT+SMUNSUB, AT+SMSTATE?, AT+SMDISC, AT+SMSSL (and on
SIM800 AT+SSLSETROOT/AT+SSLOPT, on SIM70x0 AT+CSSLCFG), their result URCs and
inbound messages, assembled by the reader straight into the preallocated
``Inbox`` (no allocation in any URC handler).  Same interface as
``cmqtt.CMQTTDriver`` so ``client.MQTTClient`` drives either.

Sources, per fact (say which when changing anything):

- [004] SIM800 Series MQTT Application Note V1.03 (seed 004): SMCONF tags and
  ranges (3.1: "URL" as "server:tcpPort", KEEPALIVE 60..3600 default 60,
  CLEANSS 0..1 default 0, CLIENTID/USERNAME/PASSWORD default null, TIMEOUT),
  SMCONN answers OK or +CME ERROR (3.3), SMSUB/SMPUB/SMUNSUB answer OK then the
  URC ``+SMSUB/+SMPUB/+SMUNSUB: <packet_id>,<status>`` with status 0 success /
  1 time out / 2 other error (3.4-3.6; errtab kind "SM"), SMPUB/SMSUB qos 0..1,
  message 0..1024 bytes, inline in quotes (3.5), SMSTATE? 0/1 (3.7), SMSSL
  0/1 (3.9), ``+SMPUBLISH: <id>,"<topic>",<len>,"<message>"`` (3.10, 4.1), the
  TLS set-up order SSLSETROOT, SSLOPT=0,x, SSLOPT=1,x, SMSSL=1 and AT+SAZURECONF
  (3.2, 4.2).  The note has no will and no SMCONF qos/retain tags.
- [7080] SIM7070/SIM7080/SIM7090 (and SIM7000) AT command manuals, MQTT(S)
  chapter, from public knowledge (NOT in the seeds, not checked against the
  PDF here): SMCONF "URL","<server>",<port>; "KEEPTIME" (not KEEPALIVE)
  0..65535 default 60; will as SMCONF "TOPIC"/"MESSAGE"/"QOS"/"RETAIN";
  ``AT+SMPUB="<topic>",<len>,<qos>,<retain>`` then ``>`` and exactly <len>
  bytes, OK once sent; SMSUB/SMUNSUB answer OK/ERROR without a result URC;
  inbound ``+SMSUB: "<topic>","<message>"`` (no length); ``+SMSTATE: 0`` also
  comes unsolicited when the broker link drops; SMSTATE? 2 = online with a
  session present; ``AT+SMSSL=<ctx+1>,"<ca>","<cert>"`` (0: no SSL) after
  ``AT+CSSLCFG="SSLVERSION"|"SNI"|"CONVERT"`` on the SSL context.

Choices where the sources are silent:

- AT+SMCONF values are cached: a tag is sent when the modem may hold another
  value (unknown after construction; the manual's defaults after ``reset()``,
  which the Modem calls after a modem boot).  So the seed 004 4.1 sequence
  (URL, CLEANSS, SMCONN) is exactly what ``reset(); connect(...)`` writes.
- SIM800 publishes inline: the message cannot carry ``"``, CR, LF or NUL (no
  escape in a quoted AT string) and the command must fit the Engine's
  ``tx_max``: refused with ValueError before anything is sent.
- SIM800 result URCs carry a packet id the OK never told us; the driver holds
  its lock from the command to its result URC, so the one URC that comes is
  ours (before or after the OK).  [004] 3.5 gives the +SMPUB URC for every
  publish, so qos 0 waits for it too.
- Inbound on SIM800: the message is inside the URC line, cut out by its
  announced length (quotes and commas survive).  The tokenizer drops CR and
  ends lines at LF, so a message holding CR or LF cannot be rebuilt exactly:
  it is dropped and counted (EV_MSG_DROPPED 3), never delivered altered; a
  line longer than the Engine's ``line_max`` is dropped as oversize.
- A failed command while connected (+CME ERROR, a status 1/2 result) is
  followed by AT+SMSTATE?: 0 there means the link is down (EV_CONNLOST, b=-1).
  ``+SMSTATE: 0`` unsolicited posts EV_CONNLOST with b=0.
- SMCONF "TIMEOUT" ([004] 3.1, no unit or range given) and "CID" (bearer
  profile, default 1) are left at the modem's values.
- State errors on re-init: SMDISC refused while SMSTATE? says 0 is done; SMCONN
  refused while SMSTATE? says 1/2 is connected (counted in ``state_ok``).

Echo should be off (ATE0) for the SIM70x0 prompt publish: with echo on the
modem echoes the data and a payload holding ``\\r\\nOK\\r\\n`` would read as a
final result code.
"""

import asyncio

from . import script as _script
from .compat import const
from .engine import R_OK
from .errors import ATTimeout, ConfigError, ModemError
from .events import (
    EV_CONNLOST,
    EV_MSG,
    EV_MSG_DROPPED,
    EV_PUBACK,
    EV_URC,
    RESULT_ABORTED,
    ResultWait,
)
from .tokenizer import T_RAW, _copy

VARIANTS = ("sim800", "sim70x0")

MSG_MAX_SIM800 = const(1024)  # [004] 3.5 <message> 0..1024
PAYLOAD_MAX_SIM70X0 = const(1024)  # [7080] AT+SMPUB <content length> (unverified: override)
KEEPALIVE_MIN_SIM800 = const(60)  # [004] 3.1 KEEPALIVE 60..3600
KEEPALIVE_MAX_SIM800 = const(3600)
KEEPTIME_MAX_SIM70X0 = const(65535)  # [7080] KEEPTIME 0..65535
SSL_CTX_MAX = const(5)  # [7080] CSSLCFG <ctxindex> 0..5

# Timeouts (ms); [004] gives none
T_CMD = const(10000)
T_PROMPT = const(5000)
T_RESULT = const(65000)  # SMSUB/SMUNSUB result URC: the modem's own TIMEOUT default is 60 s
T_DISC = const(30000)

# EV_URC a-codes for result URCs that come outside a command
LATE_SUB = const(1)
LATE_UNSUB = const(2)

# EV_MSG_DROPPED a-codes (events.py)
DROP_OVERSIZE = const(1)
DROP_OVERWRITTEN = const(2)
DROP_TORN = const(3)

_ABORTED = RESULT_ABORTED  # link lost while the result URC was awaited

_K_PUB = const(1)
_K_SUB = const(2)
_K_UNSUB = const(3)

# SMCONF power-on defaults per variant: [004] 3.1 / [7080]
_DEFAULTS_SIM800 = (("KEEPALIVE", b"60"), ("CLEANSS", b"0"))
_DEFAULTS_SIM70X0 = (("KEEPTIME", b"60"), ("CLEANSS", b"0"), ("QOS", b"0"), ("RETAIN", b"0"))
_EMPTY = b'""'

# The connect's AT+SMCONF settings as data (atmq.script), in the order they are sent: seed 004
# 3.1 (SIM800: URL "server:port", KEEPALIVE, no will) and the SIM7080 manual's AT+SMCONF
# (URL "server",port, KEEPTIME, the will tags).  args: the value bytes per tag, None for a
# tag the modem holds already or that this variant has not (not sent).  Neither manual gives
# a max response time: T_CMD.
_SMCONF_TAGS = ("URL", "CLIENTID", "KEEPALIVE", "KEEPTIME", "CLEANSS", "USERNAME", "PASSWORD",
                "TOPIC", "MESSAGE", "QOS", "RETAIN")
_SMCONF = (
    ((b'AT+SMCONF="URL",%s', 0), None, None, T_CMD, _script.MUST, "004 s.3.1 / 7080 SMCONF"),
    ((b'AT+SMCONF="CLIENTID",%s', 1), None, None, T_CMD, _script.MUST, "004 s.3.1"),
    ((b'AT+SMCONF="KEEPALIVE",%s', 2), None, None, T_CMD, _script.MUST, "004 s.3.1: SIM800"),
    ((b'AT+SMCONF="KEEPTIME",%s', 3), None, None, T_CMD, _script.MUST, "7080 SMCONF: SIM70x0"),
    ((b'AT+SMCONF="CLEANSS",%s', 4), None, None, T_CMD, _script.MUST, "004 s.3.1"),
    # the engine's errors mask the user name and password (errors._MASKS)
    ((b'AT+SMCONF="USERNAME",%s', 5), None, None, T_CMD, _script.MUST, "004 s.3.1"),
    ((b'AT+SMCONF="PASSWORD",%s', 6), None, None, T_CMD, _script.MUST, "004 s.3.1"),
    ((b'AT+SMCONF="TOPIC",%s', 7), None, None, T_CMD, _script.MUST, "7080 SMCONF: will"),
    ((b'AT+SMCONF="MESSAGE",%s', 8), None, None, T_CMD, _script.MUST, "7080 SMCONF: will"),
    ((b'AT+SMCONF="QOS",%s', 9), None, None, T_CMD, _script.MUST, "7080 SMCONF: will"),
    ((b'AT+SMCONF="RETAIN",%s', 10), None, None, T_CMD, _script.MUST, "7080 SMCONF: will"),
)

_TLS_KEYS_SIM800 = ("root", "root_len", "verify", "client_auth", "port")
_TLS_KEYS_SIM70X0 = ("ssl_ctx", "cacert", "clientcert", "clientkey", "sslversion", "sni",
                     "port")


def variant_for(model):
    """The SM variant of a modem model name (board JSON ``modem.model``, ATI/AT+CGMM):
    "sim70x0" for SIM7000/SIM7070/SIM7080/SIM7090 (prompt publish, KEEPTIME, will,
    CSSLCFG), "sim800" for the SIM800 series (seed 004); ValueError otherwise."""
    m = str(model).upper()
    if m.startswith("SIM70") and len(m) >= 7 and m[5] in "0789" and m[6] == "0":
        return "sim70x0"
    if m.startswith("SIM800") or m.startswith("SIM808") or m.startswith("SIM868"):
        return "sim800"
    raise ValueError("no SM family variant known for modem model %r" % (model,))


def _bytes(x, what):
    if isinstance(x, str):
        return x.encode()
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    raise TypeError("%s must be str or bytes, got %s" % (what, type(x).__name__))


def _quotable(b, what, lo=1, hi=1024, path=False):
    n = len(b)
    if n < lo or n > hi:
        raise ValueError("%s is %d bytes; the modem takes %d..%d" % (what, n, lo, hi))
    # a backslash could start an escape (issue 10 #11); a file path on the module is the
    # one place the manual writes one (seed 004 4.2: C:\USER\HENRY_SSL.CRT)
    for c in ((34, 13, 10, 0) if path else (34, 13, 10, 0, 92)):
        if b.find(bytes((c,))) >= 0:
            raise ValueError("%s must not contain %r (quoted AT argument, no escape)"
                             % (what, chr(c)))
    return b


def _int_in(v, what, lo, hi, src):
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ValueError("%s=%r is not in %d..%d (%s)" % (what, v, lo, hi, src))
    return v


def _no_wildcards(t, what):
    if t.find(b"+") >= 0 or t.find(b"#") >= 0:
        raise ValueError("a %s must not contain the wildcards + or #" % what)


class SMDriver:
    def __init__(self, at, events, inbox, client_index=0, revision=None, variant="sim800",
                 payload_max=None):
        if variant not in VARIANTS:
            raise ValueError("variant must be one of %s, got %r" % (", ".join(VARIANTS), variant))
        if client_index != 0:
            raise ValueError("the SM family has one MQTT client: client_index must be 0")
        self.at = at
        self.events = events
        self.inbox = inbox
        self.index = 0
        self.revision = revision
        self.variant = variant
        self.sim800 = variant == "sim800"
        if payload_max is None:
            payload_max = MSG_MAX_SIM800 if self.sim800 else PAYLOAD_MAX_SIM70X0
        self.payload_max = payload_max
        self.connected = False
        self._conf = {}  # SMCONF tag -> value bytes the modem holds (absent: unknown)
        self._ssl_on = None  # SMSSL state on the modem (None: unknown)
        self._tls = None  # checked TLS profile from configure_tls
        self._tls_sent = None  # the profile whose settings are on the modem
        self._res = ResultWait()  # the result URC of SMSUB/SMPUB/SMUNSUB (_K_*)
        self._lost_gen = 0  # bumped by every link loss (one read may hold an answer and a loss)
        self._lock = asyncio.Lock()
        self.stats = {
            "published": 0, "pub_errors": 0, "received": 0, "rx_dropped": 0,
            "rx_oversize": 0, "rx_torn": 0, "rx_overwritten": 0, "connlost": 0,
            "nonet": 0, "busy_retries": 0, "late_results": 0, "state_ok": 0,
            "subscribed": 0, "connects": 0,
        }
        # a +SMPUBLISH message with a line break inside is read on as a raw frame of its
        # declared length (issue 10 #10): its bytes never reach the line parser
        self._raw_slot = -1  # Inbox slot the raw tail goes to (-2: skipping, -1: none)
        self._raw_ml = 0
        self._raw_tl = 0
        self._prev_raw = at.on_raw
        at.on_raw = self._on_raw
        at.on(b"+SMPUBLISH:", self._on_publish)  # [004] 3.10
        at.on(b"+SMSUB:", self._on_sub)  # [004] 3.4 result / [7080] inbound message
        at.on(b"+SMPUB:", self._on_pub)  # [004] 3.5
        at.on(b"+SMUNSUB:", self._on_unsub)  # [004] 3.6
        at.on(b"+SMSTATE:", self._on_state)  # [7080] unsolicited on link loss

    # ---- URC handlers (inside the reader: no await, no allocation) ---------------------------

    def _drop(self, why, n):
        st = self.stats
        st["rx_dropped"] += 1
        if why == DROP_OVERSIZE:
            st["rx_oversize"] += 1
        else:
            st["rx_torn"] += 1
        self.events.put(EV_MSG_DROPPED, why, n)

    def _keep(self, a, ts, tl, ms, ml):
        # topic a.buf[ts:ts+tl], message a.buf[ms:ms+ml] -> an Inbox slot, EV_MSG
        ib = self.inbox
        ow = ib.overwritten
        slot = ib.start(tl, ml)
        if slot < 0:
            self._drop(DROP_OVERSIZE, ml)
            return
        if ib.overwritten != ow:  # full inbox: the oldest unread message made room
            st = self.stats
            st["rx_overwritten"] += 1
            st["rx_dropped"] += 1
            self.events.put(EV_MSG_DROPPED, DROP_OVERWRITTEN, 0)
        _copy(a.buf, ts, ib.topic_buf(slot), 0, tl)
        _copy(a.buf, ms, ib.payload_buf(slot), 0, ml)
        ib.topic_fill = tl
        ib.payload_fill = ml
        s = ib.commit()
        if s < 0:
            self._drop(DROP_TORN, 0)
            return
        self.stats["received"] += 1
        self.events.put(EV_MSG, s, 0)

    def _on_publish(self, a):
        # [004] 3.10/4.1: +SMPUBLISH: <id>,"<topic>",<len>,"<message>" on one line
        if self.at.tok.truncated:  # longer than the Engine's line buffer: its tail is gone
            self._drop(DROP_OVERSIZE, a.arg_int(2, 0))
            return
        if a.count() < 4:
            self._drop(DROP_TORN, 0)
            return
        ml = a.arg_int(2)
        ts = a.arg_start(1)
        tl = a.arg_len(1)
        buf = a.buf
        p = a.arg_start(2) + a.arg_len(2)  # just after <len>: ',"' then the message
        e = a.e
        ms = p + 2
        if (ml < 0 or ts < 1 or ms > e or buf[ts - 1] != 34 or buf[p] != 44 or buf[p + 1] != 34
                or ml > MSG_MAX_SIM800):
            self._drop(DROP_TORN, 0)  # a garbled line, or a <len> over 004 3.5's 1024
            return
        got = e - ms
        if got == ml + 1 and buf[e - 1] == 34:
            self._keep(a, ts, tl, ms, ml)
            return
        if got < ml + 1:
            self._tail(a, ts, tl, ms, ml, got)  # a line break inside the message
            return
        self._drop(DROP_TORN, 0)

    def _tail(self, a, ts, tl, ms, ml, got):
        # The line ended at a LF inside the message: the rest of it (and its closing quote)
        # follows as bytes, never to be read as lines ("x\r\nRDY\r\n" must not look like
        # a reboot).  The break is taken as CRLF (the tokenizer strips CRs); the tail is
        # read raw into the slot after it, and the closing quote checks the count.
        rest = ml - got - 2 + 1
        if rest < 1:
            self._drop(DROP_TORN, 0)
            return
        tok = self.at.tok
        ib = self.inbox
        ow = ib.overwritten
        slot = ib.start(tl, ml)
        if slot >= 0 and ib.overwritten != ow:  # full inbox: the oldest unread made room
            st = self.stats
            st["rx_overwritten"] += 1
            st["rx_dropped"] += 1
            self.events.put(EV_MSG_DROPPED, DROP_OVERWRITTEN, 0)
        pb = ib.payload_buf(slot) if slot >= 0 else None
        if pb is None or ml + 1 > len(pb):
            if slot >= 0:
                ib.abandon()
            tok.arm_raw(None, 0, rest)  # skipped, in step
            self._raw_slot = -2
            self._drop(DROP_OVERSIZE, ml)
            return
        _copy(a.buf, ts, ib.topic_buf(slot), 0, tl)
        _copy(a.buf, ms, pb, 0, got)
        pb[got] = 13
        pb[got + 1] = 10
        self._raw_slot = slot
        self._raw_ml = ml
        self._raw_tl = tl
        tok.arm_raw(pb, got + 2, rest)

    def _on_raw(self, kind):
        slot = self._raw_slot
        if slot == -1:
            h = self._prev_raw
            if h is not None:
                h(kind)
            return
        self._raw_slot = -1
        if slot == -2:
            return
        ib = self.inbox
        ml = self._raw_ml
        if kind == T_RAW and ib.payload_buf(slot)[ml] == 34:
            ib.topic_fill = self._raw_tl
            ib.payload_fill = ml
            s = ib.commit()
            if s >= 0:
                self.stats["received"] += 1
                self.events.put(EV_MSG, s, 0)
                return
        else:
            ib.abandon()
        self._drop(DROP_TORN, 0)

    def _on_sub(self, a):
        ts = a.arg_start(0)
        if ts >= 1 and a.buf[ts - 1] == 34:  # a quoted topic: [7080] inbound message
            self._on_message70(a, ts)
            return
        if a.count() >= 2:  # [004] 3.4: +SMSUB: <packet_id>,<status>
            st = a.arg_int(1, 2)
            if not self._result(_K_SUB, st):
                self.events.put(EV_URC, LATE_SUB, st)

    def _on_message70(self, a, ts):
        # [7080] +SMSUB: "<topic>","<message>": no length; the message runs to the closing
        # quote at the end of the line, so quotes and commas inside it are kept.
        if self.at.tok.truncated:
            self._drop(DROP_OVERSIZE, 0)
            return
        buf = a.buf
        tl = a.arg_len(0)
        q = ts + tl  # closing quote of the topic
        e = a.e
        ms = q + 3
        if q + 2 >= e or buf[q] != 34 or buf[q + 1] != 44 or buf[q + 2] != 34 or \
                buf[e - 1] != 34 or e - 1 < ms:
            self._drop(DROP_TORN, 0)
            return
        self._keep(a, ts, tl, ms, e - 1 - ms)

    def _on_pub(self, a):
        if a.count() >= 2:  # [004] 3.5: +SMPUB: <packet_id>,<status>
            st = a.arg_int(1, 2)
            if not self._result(_K_PUB, st):
                self.events.put(EV_PUBACK, 0, st)

    def _on_unsub(self, a):
        if a.count() >= 2:
            st = a.arg_int(1, 2)
            if not self._result(_K_UNSUB, st):
                self.events.put(EV_URC, LATE_UNSUB, st)

    def _on_state(self, a):
        if a.arg_int(0) == 0:  # [7080] the broker link dropped
            self._link_down(0)

    def _result(self, kind, st):
        if self._res.take(kind, st):
            return True
        self.stats["late_results"] += 1
        return False

    def lost(self, reboot):
        """The link fell (called from the reader by ``link.Link.lost``: no allocation): a
        SUB/PUB/UNSUB waiting for its result URC fails now."""
        self.connected = False
        self._lost_gen += 1
        self._res.abort()

    def _link_down(self, why):
        was = self.connected
        self.connected = False
        self._lost_gen += 1
        self._res.abort()
        if was:
            self.stats["connlost"] += 1
            self.events.put(EV_CONNLOST, 0, why)

    # ---- command plumbing --------------------------------------------------------------------

    async def _cmd(self, cmd, shown=None, timeout_ms=T_CMD, payload=None):
        """One command answered by OK; raises the engine's error (CME code, ERROR)."""
        r = await self.at.cmd(cmd, timeout_ms=timeout_ms, payload=payload,
                              prompt_timeout_ms=T_PROMPT, check=False)
        if r.final != R_OK:
            raise self.at.error(shown if shown is not None else cmd)

    async def _two_phase(self, cmd, kind, done_ms):
        """[004] SMSUB/SMPUB/SMUNSUB: OK, then the result URC (caught by our handlers so
        the engine is free meanwhile).  Returns the status (0 ok), or _ABORTED."""
        at = self.at
        res = self._res
        res.expect(kind)
        try:
            r = await at.cmd(cmd, timeout_ms=T_CMD, check=False)
            if r.final != R_OK:
                raise at.error(cmd)
            return await res.wait(cmd, done_ms)
        finally:
            res.done()

    async def _state(self):
        """AT+SMSTATE? -> 0 disconnected, 1 connected, 2 connected with a session ([7080])."""
        r = await self.at.cmd(b"AT+SMSTATE?", resp=b"+SMSTATE:", timeout_ms=T_CMD)
        # the answer is the last +SMSTATE line: an unsolicited one before it is older
        return r.line(r.count - 1).arg_int(0, 0) if r.count else 0

    async def _state_or(self, err):
        # The state after a refused command; if even that fails, the first error stands.
        try:
            return await self._state()
        except ModemError:
            raise err from None

    async def _check_link(self):
        # After a failure while we believed we were connected: is the link still there?
        if not self.connected:
            return
        try:
            st = await self._state()
        except ModemError:
            return
        if st == 0:
            self._link_down(-1)

    def _status_error(self, st, cmd):
        if st == _ABORTED:
            return ModemError("SM", 2, cmd)  # the link dropped before the result came
        return ModemError("SM", st, cmd)

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self, client_id=None, tls=None):
        """Nothing to start on this family: the bearer (SAPBR/CNACT) is the Modem's
        ``data_up``; kept for interface parity with CMQTTDriver."""
        return

    def reset(self):
        """The modem booted: its SM settings are the manual's power-on defaults."""
        self.connected = False
        self._conf = {}
        for tag, v in (_DEFAULTS_SIM800 if self.sim800 else _DEFAULTS_SIM70X0):
            self._conf[tag] = v
        for tag in ("CLIENTID", "USERNAME", "PASSWORD", "TOPIC", "MESSAGE"):
            self._conf[tag] = _EMPTY  # [004] 3.1 "default null"
        self._ssl_on = False  # [004] 3.9 / [7080]: SSL off at power-on
        self._tls_sent = None

    # ---- TLS ---------------------------------------------------------------------------------

    def _check_tls(self, tls):
        if not isinstance(tls, dict):
            raise ConfigError("tls", "must be a dict or None, got %s" % type(tls).__name__)
        keys = _TLS_KEYS_SIM800 if self.sim800 else _TLS_KEYS_SIM70X0
        for k in tls:
            if k not in keys:
                raise ConfigError("tls." + str(k), "unknown key for the SM family on %s "
                                  "(known: %s)" % (self.variant, ", ".join(keys)))
        p = {}
        if self.sim800:
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
        if not isinstance(ctx, int) or isinstance(ctx, bool) or not 0 <= ctx <= SSL_CTX_MAX:
            raise ConfigError("tls.ssl_ctx", "%r is not in 0..%d (CSSLCFG <ctxindex>)"
                              % (ctx, SSL_CTX_MAX))
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

    async def configure_tls(self, tls):
        """None: plain (connect sends SMSSL=0 if SSL was on).  A dict:

        sim800 ([004] 4.2): ``root`` (file on the modem, e.g. ``C:\\USER\\CA.CRT``),
        ``root_len`` (its bytes), ``verify`` (True: AT+SSLOPT=0,0, do not ignore an
        invalid certificate), ``client_auth`` (AT+SSLOPT=1,1); then AT+SMSSL=1.
        sim70x0 ([7080]): ``ssl_ctx`` 0..5, ``cacert``, ``clientcert``/``clientkey``
        (files already on the modem), ``sslversion`` (3: TLS 1.2), ``sni`` (a name);
        AT+CSSLCFG SSLVERSION/SNI/CONVERT, then AT+SMSSL=<ctx+1>,"<ca>","<cert>".
        Settings the modem already holds (same profile) are not sent again."""
        if tls is None:
            self._tls = None
            return
        p = self._check_tls(tls)  # ConfigError naming the key, before anything is sent
        async with self._lock:
            self._tls = p
            if self._tls_sent == p and self._ssl_on:
                return
            await self._send_tls(p)

    async def _send_tls(self, p):
        self._tls_sent = None
        if self.sim800:
            if p["root"] is not None:
                await self._cmd(b'AT+SSLSETROOT="%s",%d' % (p["root"], p["root_len"]))
            await self._cmd(b"AT+SSLOPT=0,%d" % (0 if p["verify"] else 1))
            await self._cmd(b"AT+SSLOPT=1,%d" % (1 if p["client_auth"] else 0))
        else:
            c = p["ssl_ctx"]
            await self._cmd(b'AT+CSSLCFG="SSLVERSION",%d,%d' % (c, p["sslversion"]))
            if p["sni"] is not None:
                await self._cmd(b'AT+CSSLCFG="SNI",%d,"%s"' % (c, p["sni"]))
            if p["cacert"] is not None:
                await self._cmd(b'AT+CSSLCFG="CONVERT",2,"%s"' % p["cacert"])
            if p["clientcert"] is not None:
                await self._cmd(b'AT+CSSLCFG="CONVERT",1,"%s","%s"'
                                % (p["clientcert"], p["clientkey"]))
        self._ssl_on = None
        await self._cmd(self._smssl_on(p))
        self._ssl_on = True
        self._tls_sent = p

    def _smssl_on(self, p):
        if self.sim800:
            return b"AT+SMSSL=1"  # [004] 3.9
        cmd = b"AT+SMSSL=%d" % (p["ssl_ctx"] + 1)  # [7080] 1..6 = context 0..5
        if p["cacert"] is not None or p["clientcert"] is not None:
            cmd += b',"%s"' % (p["cacert"] or b"")
            if p["clientcert"] is not None:
                cmd += b',"%s"' % p["clientcert"]
        return cmd

    async def _ssl(self, tls):
        if tls:
            p = self._tls
            if p is None:
                raise ConfigError("tls", "connect(tls=True) needs configure_tls(<profile>) first")
            if not self._ssl_on or self._tls_sent != p:
                await self._send_tls(p)
        elif self._ssl_on is not False:
            self._ssl_on = None
            await self._cmd(b"AT+SMSSL=0")
            self._ssl_on = False

    # ---- connection ----------------------------------------------------------------------------

    def _conf_plan(self, host, port, client_id, keepalive_s, clean, user, password, will):
        """[(tag, value)] in the order they are sent; validates all."""
        h = _quotable(_bytes(host, "host"), "host", 1, 255)
        src = "seed 004 3.1" if self.sim800 else "SIM7080 manual AT+SMCONF"
        port = 1883 if port is None else _int_in(port, "port", 1, 65535, src)
        if self.sim800:
            url = _quotable(b"%s:%d" % (h, port), "URL", 1, 255)
            plan = [("URL", b'"%s"' % url)]  # [004] 3.1 "server:tcpPort"
        else:
            plan = [("URL", b'"%s",%d' % (h, port))]  # [7080] "server",<port>
        cid = b"" if client_id is None else _bytes(client_id, "client_id")
        if cid:
            _quotable(cid, "client_id", 1, 128)
        plan.append(("CLIENTID", b'"%s"' % cid))
        if self.sim800:
            ka = _int_in(keepalive_s, "keepalive_s", KEEPALIVE_MIN_SIM800, KEEPALIVE_MAX_SIM800,
                         "seed 004 3.1 KEEPALIVE")
            plan.append(("KEEPALIVE", b"%d" % ka))
        else:
            ka = _int_in(keepalive_s, "keepalive_s", 0, KEEPTIME_MAX_SIM70X0,
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
            if self.sim800:
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

    async def _apply_conf(self, plan):
        conf = self._conf
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
            await _script.run(self.at, _SMCONF, "mqtt", args)
        for tag, v in sent:
            conf[tag] = v

    async def connect(self, host, port, client_id, keepalive_s=60, clean=True, user=None,
                      password=None, will=None, tls=False, timeout_ms=30000):
        """AT+SMSSL as ``tls`` needs, AT+SMCONF for each value the modem may not hold,
        then AT+SMCONN (synchronous: OK once the broker accepted, [004] 3.3).

        ``will`` = (topic, msg, qos, retain): SIM70x0 only.  A refused SMCONN while
        AT+SMSTATE? says connected counts as connected (``state_ok``)."""
        plan = self._conf_plan(host, port, client_id, keepalive_s, clean, user, password, will)
        async with self._lock:
            await self._ssl(tls)
            await self._apply_conf(plan)
            await self._conn(timeout_ms)

    async def connect_azure(self, hub, device_id, device_key, expiry_s=86400, port=8883,
                            timeout_ms=30000):
        """SIM800 Azure IoT Hub ([004] 3.2, 4.2): AT+SAZURECONF then AT+SMCONN (TLS as
        set by configure_tls; the note sets it first)."""
        if not self.sim800:
            raise ValueError("AT+SAZURECONF is a SIM800 command (seed 004 3.2)")
        h = _quotable(_bytes(hub, "hub"), "hub", 1, 255)
        port = _int_in(port, "port", 1, 65535, "seed 004 3.2")
        d = _quotable(_bytes(device_id, "device_id"), "device_id", 1, 128)
        k = _quotable(_bytes(device_key, "device_key"), "device_key", 1, 256)
        ex = _int_in(expiry_s, "expiry_s", 0, 3600 * 24 * 365, "seed 004 3.2")
        cmd = b'AT+SAZURECONF="%s:%d","%s","%s",%d' % (h, port, d, k, ex)
        async with self._lock:
            await self._cmd(cmd, b'AT+SAZURECONF="%s:%d","%s","***",%d' % (h, port, d, ex))
            self._conf.pop("URL", None)  # SAZURECONF sets the server itself
            self._conf.pop("CLIENTID", None)
            await self._conn(timeout_ms)

    async def _conn(self, timeout_ms):
        gen = self._lost_gen
        r = await self.at.cmd(b"AT+SMCONN", timeout_ms=timeout_ms, check=False)
        if r.final == R_OK:
            # a loss read together with the OK was handled before we resumed
            self.connected = gen == self._lost_gen
            self.stats["connects"] += 1
            return
        err = self.at.error(b"AT+SMCONN")
        if await self._state_or(err) != 0:  # refused because already connected: that is success
            self.stats["state_ok"] += 1
            self.connected = True
            return
        self.connected = False
        raise err

    async def disconnect(self, timeout_s=None):
        """AT+SMDISC; refused while AT+SMSTATE? says 0 counts as done (idempotent)."""
        async with self._lock:
            await self._disc()

    async def _disc(self):
        r = await self.at.cmd(b"AT+SMDISC", timeout_ms=T_DISC, check=False)
        self.connected = False
        if r.final == R_OK:
            return
        err = self.at.error(b"AT+SMDISC")
        if await self._state_or(err) == 0:
            self.stats["state_ok"] += 1
            return
        raise err

    async def stop(self):
        """Disconnect (idempotent); the bearer stays up (it is the Modem's)."""
        async with self._lock:
            await self._disc()

    async def is_connected(self):
        """AT+SMSTATE?: 1 (or 2, [7080] session present) is connected."""
        async with self._lock:
            gen = self._lost_gen
            c = await self._state() != 0
        if gen != self._lost_gen:  # "+SMSTATE: 0" came after the answer: that is news
            return False
        if not c and self.connected:
            self._link_down(-1)
        self.connected = c
        return c

    # ---- publish / subscribe -------------------------------------------------------------------

    async def publish(self, topic, payload, qos=1, retain=False, timeout_ms=T_RESULT):
        """sim800: AT+SMPUB="<topic>",<qos>,<retain>,"<message>" then OK and
        ``+SMPUB: <id>,<status>`` ([004] 3.5).  sim70x0: AT+SMPUB="<topic>",<len>,<qos>,
        <retain>, ``>``, exactly the bytes, OK ([7080]).  Raises ModemError("SM", status)
        on a failed result, the engine's error (CME) on a refused command."""
        t = _quotable(_bytes(topic, "topic"), "topic", 1, 1024)
        _no_wildcards(t, "publish topic")
        p = _bytes(payload, "payload")
        n = len(p)
        if n > self.payload_max:
            raise ValueError("payload is %d bytes; the modem takes 0..%d"
                             % (n, self.payload_max))
        r = 1 if retain else 0
        if self.sim800:
            q = _int_in(qos, "qos", 0, 1, "seed 004 3.5")
            for c in (34, 13, 10, 0):
                if p.find(bytes((c,))) >= 0:
                    raise ValueError("SIM800 publishes the message inline in quotes: it must "
                                     "not contain %r (seed 004 3.5); use variant sim70x0's "
                                     "prompt form on a modem that has it" % chr(c))
            cmd = b'AT+SMPUB="%s",%d,%d,"%s"' % (t, q, r, p)
            if len(cmd) > self.at.tx_max:
                raise ValueError("AT+SMPUB with this topic and payload is %d bytes; the Engine "
                                 "takes %d (tx_max)" % (len(cmd), self.at.tx_max))
        else:
            q = _int_in(qos, "qos", 0, 2, "SIM7080 manual AT+SMPUB")
            cmd = b'AT+SMPUB="%s",%d,%d,%d' % (t, n, q, r)
        async with self._lock:
            try:
                if self.sim800 and q == 0:
                    # seed 004 3.5 shows "+SMPUB: <id>,<status>" for qos 1 only: a qos 0
                    # publish is done at its OK (a result that comes anyway is counted late)
                    await self._cmd(cmd)
                    st = 0
                elif self.sim800:
                    st = await self._two_phase(cmd, _K_PUB, timeout_ms)
                else:
                    await self._cmd(cmd, timeout_ms=timeout_ms, payload=p)
                    st = 0
            except ModemError as e:
                self.stats["pub_errors"] += 1
                if not isinstance(e, ATTimeout):
                    await self._check_link()
                raise
            if st != 0:
                self.stats["pub_errors"] += 1
                if st != _ABORTED:
                    await self._check_link()
                raise self._status_error(st, cmd)
            self.stats["published"] += 1

    async def subscribe(self, topic, qos=1):
        """AT+SMSUB="<topic>",<qos>: OK, then on sim800 ``+SMSUB: <id>,<status>``."""
        t = _quotable(_bytes(topic, "topic"), "topic", 1, 1024)
        q = _int_in(qos, "qos", 0, 1 if self.sim800 else 2,
                    "seed 004 3.4" if self.sim800 else "SIM7080 manual AT+SMSUB")
        await self._sub(b'AT+SMSUB="%s",%d' % (t, q), _K_SUB)
        self.stats["subscribed"] += 1

    async def unsubscribe(self, topic):
        """AT+SMUNSUB="<topic>": OK, then on sim800 ``+SMUNSUB: <id>,<status>``."""
        t = _quotable(_bytes(topic, "topic"), "topic", 1, 1024)
        await self._sub(b'AT+SMUNSUB="%s"' % t, _K_UNSUB)

    async def _sub(self, cmd, kind):
        async with self._lock:
            try:
                if self.sim800:
                    st = await self._two_phase(cmd, kind, T_RESULT)
                else:
                    await self._cmd(cmd)
                    st = 0
            except ModemError as e:
                if not isinstance(e, ATTimeout):
                    await self._check_link()
                raise
            if st != 0:
                if st != _ABORTED:
                    await self._check_link()
                raise self._status_error(st, cmd)

