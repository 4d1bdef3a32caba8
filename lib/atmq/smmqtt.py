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

The connected path (publish, URCs) is here; the session's setup and teardown (TLS,
SMCONF, SMCONN, SMSUB/SMUNSUB, SMDISC) are in ``atmq.smmqttup``, imported for each call
and dropped after it (issue 11: heap), still called as methods of the driver.
"""

import asyncio

from .compat import const
from .errors import ATTimeout, ModemError
from .events import (
    EV_CONNLOST,
    EV_MSG,
    EV_MSG_DROPPED,
    EV_PUBACK,
    EV_URC,
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

# EV_URC a-codes for result URCs that come outside a command
LATE_SUB = const(1)
LATE_UNSUB = const(2)

# EV_MSG_DROPPED a-codes (events.py)
DROP_OVERSIZE = const(1)
DROP_OVERWRITTEN = const(2)
DROP_TORN = const(3)

_R_OK = const(1)  # = atmq.engine.R_OK
# link lost while the result URC was awaited
_ABORTED = const(-2)  # = atmq.events.RESULT_ABORTED

_K_PUB = const(1)
_K_SUB = const(2)
_K_UNSUB = const(3)

# SMCONF power-on defaults per variant: [004] 3.1 / [7080]
_DEFAULTS_SIM800 = const((("KEEPALIVE", b"60"), ("CLEANSS", b"0")))
_DEFAULTS_SIM70X0 = const((("KEEPTIME", b"60"), ("CLEANSS", b"0"), ("QOS", b"0"),
                           ("RETAIN", b"0")))
_EMPTY = const(b'""')

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

    def __getattr__(self, name):
        # Only for names not found: the session's setup and teardown (start, configure_tls,
        # connect, connect_azure, disconnect, stop, subscribe, unsubscribe) live in
        # atmq.smmqttup, imported for each call and dropped after it (issue 11: heap
        # between bring-ups); AttributeError for the rest.
        from . import smmqttup

        return smmqttup.attr(self, name)

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
        if r.final != _R_OK:
            raise self.at.error(shown if shown is not None else cmd)

    async def _two_phase(self, cmd, kind, done_ms):
        """[004] SMSUB/SMPUB/SMUNSUB: OK, then the result URC (caught by our handlers so
        the engine is free meanwhile).  Returns the status (0 ok), or _ABORTED."""
        at = self.at
        res = self._res
        res.expect(kind)
        try:
            r = await at.cmd(cmd, timeout_ms=T_CMD, check=False)
            if r.final != _R_OK:
                raise at.error(cmd)
            return await res.wait(cmd, done_ms)
        finally:
            res.done()

    async def _state(self):
        """AT+SMSTATE? -> 0 disconnected, 1 connected, 2 connected with a session ([7080])."""
        r = await self.at.cmd(b"AT+SMSTATE?", resp=b"+SMSTATE:", timeout_ms=T_CMD)
        # the answer is the last +SMSTATE line: an unsolicited one before it is older
        return r.line(r.count - 1).arg_int(0, 0) if r.count else 0

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
