"""MQTT(S) through the modem's own client: the AT+CMQTT* family (SIM7600, A7600, SIM767x).

Owns one CMQTT client slot (``client_index`` 0 or 1) on an ``Engine``: the
session commands of the SIM767XX manual ch. 16 and the A7600 MQTT(S) note
(START, STOP, ACCQ, REL, SSLCFG, WILLTOPIC, WILLMSG, CONNECT and its read form,
DISC, TOPIC, PAYLOAD, PUB, SUBTOPIC, SUB, UNSUBTOPIC, UNSUB, CFG), its URCs
(16.4) and inbound messages, which are assembled by the reader straight into
the preallocated ``Inbox`` (raw frames armed with ``tok.arm_raw``, no
allocation in any handler).

Why the driver looks the way it does (manual, seed 001, modem-stacks.md E):

- Two-phase commands (START, STOP, CONNECT, DISC, PUB, SUB, UNSUB) end with a
  result URC that may come before or after OK (or before ERROR, carrying the
  code).  The driver's own handlers catch it, so the engine is free for other
  modules once the final result code is in (a TLS CONNECT may take minutes);
  the driver's lock is held across a whole operation (TOPIC+PAYLOAD+PUB,
  SUBTOPIC+SUB) and until the result URC, so no new CMQTT operation is issued
  while one is pending: that is the likely cause
  of ``+CMQTTSUBTOPIC: 0,14`` "client is busy" in seed 001 (SUBTOPIC sent after
  CONNECT's OK but before ``+CMQTTCONNECT: 0,0``).  14 is still retried with
  a bounded exponential backoff (``busy_retries``, ``busy_backoff_ms``).  A second
  lock, shared with the other client index's driver, spans only a publish's UART
  part (TOPIC to PUB's OK): two sessions' publishes never interleave command by
  command, so one's round trip runs while the other's payload crosses.
- Errors carry the CMQTT code: ``+CMQTTSUBTOPIC: 0,14`` then ``ERROR`` raises
  ``ModemError("CMQTT", 14, cmd)``, never a bare ERROR.
- Re-initialisation is idempotent: START answered 23 (or a bare ERROR while
  ``AT+CMQTTACCQ?`` works: 16.2.1 case 3) means started; ACCQ answered 19 is
  checked against ``AT+CMQTTACCQ?`` and kept when it is ours; REL 20, STOP's
  bare ERROR (16.2.2 case 3), DISC 11 are "already there".
- 11 "no connection" marks the link down (``connected`` False, EV_CONNLOST with
  b = -11) so the client reconnects; ``+CMQTTCONNLOST: <idx>,<cause>`` posts
  EV_CONNLOST (b = cause 1..3) and fails a PUB/SUB/UNSUB waiting for its result.
- ``AT+CMQTTCONNECT?`` lists ``+CMQTTCONNECT: 0`` for a client that is NOT
  connected (seed 001 read that as connected); only a line with the server
  address means connected.  CONNECT's 19 "client is used" is "connected already"
  only when that address is ours; a session with another server is ended (DISC)
  and ours connected after the setup again.
- CMQTTSSLCFG is cleared by a failed CONNECT and by DISC (16.2.5): it is sent
  again before every TLS connect that needs it.  CFG is cleared by REL (16.2.15):
  it is sent after every ACCQ.

Manual 16.2.8 gives no maximum response time for CONNECT: the wait for its
result is the caller's ``timeout_ms`` plus, for TLS, the context's
``negotiatetime`` (the modem's handshake limit).  PUB's result wait is the
larger of its ``<pub_timeout>`` and CFG ``optimeout`` (default 120 s) plus a margin.

One CMQTTDriver per Engine: it claims the CMQTT URCs (lines for the other
client index are ignored) and ``at.on_raw`` (a previous ``on_raw`` is chained
for frames it did not arm).  A result URC that comes after its command gave up
(ATTimeout) is reported as late (EV_PUBACK / EV_URC); one arriving while the
next command of the same kind waits cannot be told apart (no packet id), so
after an ATTimeout the client should rebuild the session.  Echo must be off
(ATE0): with echo on the modem echoes prompt data, and a payload holding
``\\r\\nOK\\r\\n`` would read as a final result.

This module holds what a connected session needs (publish, the result and inbound
URCs, the command plumbing); the session's setup and teardown (START/ACCQ/CFG/SSLCFG/
will/CONNECT/SUB flows, DISC/REL/STOP) are in ``atmq.cmqttup``, imported for each call
and dropped after it (issue 11: heap), still called as methods of the driver.
"""

import asyncio
from array import array

from .compat import const, sleep_ms
from .errors import ATError, ATTimeout, ModemError
from .events import (
    EV_CONNLOST,
    EV_MSG,
    EV_MSG_DROPPED,
    EV_NONET,
    EV_PUBACK,
    EV_URC,
    ResultWait,
)
from .tokenizer import T_RAW

# Limits from manual 16.2 (bytes); the connect's own (client id, address, credentials,
# keepalive, will) are atmq.cmqttup's
TOPIC_MAX = const(1024)  # TOPIC/SUBTOPIC/SUB/UNSUB/WILLTOPIC <req_length> 1..1024
PAYLOAD_MAX_SIM76XX = const(4096)  # 16.2.11 "The SIM76XX is: (1-4096)"
PAYLOAD_MAX_A76XX = const(10240)  # A7600 note 2.1.11: 1..10240
RX_TOPIC_MAX = const(1024)  # 16.4 +CMQTTRXSTART <topic_total_len> 1..1024
RX_PAYLOAD_MAX = const(10240)  # 16.4 <payload_total_len> 1..10240 (both families)

# Timeouts (ms); private: folded into the bytecode, no module-global entry (issue 11)
_T_CMD = const(10000)  # first phase (OK/ERROR) of every CMQTT command; the manual gives "-"
_T_PROMPT = const(5000)
_T_START = const(120000)  # 002 s.2.1.1 (A76xx): also the bound while the model is unknown
_T_MARGIN = const(5000)  # over a result's own limit (PUB: <pub_timeout> or optimeout)

# EV_URC a-codes for result URCs that arrive outside a command
LATE_SUB = const(1)
LATE_UNSUB = const(2)
LATE_DISC = const(3)
LATE_CONNECT = const(4)

# EV_MSG_DROPPED a-codes (events.py)
DROP_OVERSIZE = const(1)
DROP_OVERWRITTEN = const(2)
DROP_TORN = const(3)

_E_BUSY = const(14)
_E_NOCONN = const(11)
_E_NETNOTOPEN = const(9)
_E_USED = const(19)
_E_NOTACQ = const(20)
_E_NOTREL = const(21)
_E_NETOPENED = const(23)
_BARE = const(-1)  # plain ERROR, no code
# other modules' constants, mirrored (tests_host/test_const_mirrors.py checks them)
_R_OK = const(1)  # = atmq.engine.R_OK
_R_CME = const(3)  # = atmq.engine.R_CME
_R_CMS = const(4)  # = atmq.engine.R_CMS
# CONNLOST/NONET while the result was awaited
_ABORTED = const(-2)  # = atmq.events.RESULT_ABORTED
_RESULT_NONE = const(-3)  # = atmq.events.RESULT_NONE

# two-phase commands whose result URC the handlers catch (ResultWait kinds)
_K_START = const(1)
_K_STOP = const(2)
_K_CONNECT = const(3)
_K_DISC = const(4)
_K_PUB = const(5)
_K_SUB = const(6)
_K_UNSUB = const(7)

# inbound assembly modes
_RX_IDLE = const(0)
_RX_KEEP = const(1)
_RX_OVERSIZE = const(2)
_RX_BAD = const(3)
# raw frame kinds
_RAW_NONE = const(0)
_RAW_TOPIC = const(1)
_RAW_PAYLOAD = const(2)
_RAW_SKIP = const(3)
# The integers of the receive and result URCs, parsed and stored by the reader before their
# handler runs (Engine.on_store(..., then=handler)): slots of CMQTTDriver._num; -1 when an
# argument is absent or not a number, as arg_int() gives.
_N_START = const(0)  # +CMQTTRXSTART: <client_index>,<topic_total_len>,<payload_total_len>
_N_TOPIC = const(3)  # +CMQTTRXTOPIC: <client_index>,<sub_topic_len>
_N_PAYLOAD = const(5)  # +CMQTTRXPAYLOAD: <client_index>,<sub_payload_len>
_N_END = const(7)  # +CMQTTRXEND: <client_index>
_N_RESULT = const(8)  # +CMQTTPUB/SUB/UNSUB/DISC/CONNECT: <client_index>,<err>
# The inbound message being assembled, in the same array: the reader arms a topic or payload
# chunk itself when it fits what RXSTART announced (Engine.on_frame), with no Python call.
_N_MODE = const(10)  # _RX_*
_N_TTOTAL = const(11)  # topic and payload lengths RXSTART announced
_N_PTOTAL = const(12)
_N_TFILL = const(13)  # their bytes received so far
_N_PFILL = const(14)
_N_ARMED = const(15)  # 1 while a chunk the reader armed is in flight
# RXSTART is taken by the reader too (Engine.on_start) when the message fits the next free
# inbox slot, prepared by _prepare after each message: 1 prepared, 2 the reader started the
# message there (the inbox's own start is due: _catch_up), 0 none (the handler decides)
_N_READY = const(16)
_N_TLIMIT = const(17)  # the largest topic and payload the reader may start on its own
_N_PLIMIT = const(18)
_N_WAIT = const(19)  # the _K_* kind whose result URC a command awaits (ResultWait.mirror), 0
_N_SLOT = const(20)  # the inbox slot prepared for the next message (-1: none)
_N_SIZE = const(21)


def _lists(a, addr):
    """Whether read-form line ``a`` (16.2.8 ``<idx>,<server_addr>,...``) has server ``addr``;
    without a port the server is at 1883, which the module may list either way."""
    if a.arg_eq(1, addr):
        return True
    if addr.find(b":", 6) < 0:  # "tcp://" and no port
        return a.arg_eq(1, addr + b":1883")
    return addr.endswith(b":1883") and a.arg_eq(1, addr[:-5])


class _Aborted(ModemError):
    """The link went (CONNLOST, NONET, a reboot) while the command's result was awaited:
    CMQTT 11 "no connection" to the caller."""

    def __init__(self, command):
        super().__init__("CMQTT", _E_NOCONN, command)


def _bytes(x, what):
    if isinstance(x, str):
        return x.encode()
    if isinstance(x, (bytes, bytearray, memoryview)):
        return x
    raise TypeError("%s must be str or bytes, got %s" % (what, type(x).__name__))


def _len_ok(b, what, lo, hi):
    n = len(b)
    if n < lo or n > hi:
        raise ValueError("%s is %d bytes; the modem takes %d..%d (manual 16.2)"
                         % (what, n, lo, hi))
    return n


def _int_in(v, what, lo, hi):
    if not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError("%s=%r is not in %d..%d (manual 16.2)" % (what, v, lo, hi))
    return int(v)


class CMQTTDriver:
    def __init__(self, at, events, inbox, client_index=0, revision=None, payload_max=None,
                 peer_of=None):
        if client_index not in (0, 1):
            raise ValueError("client_index must be 0 or 1 (manual 16.2.3)")
        self.at = at
        self.events = events
        self.inbox = inbox
        self.index = client_index
        self.revision = revision
        if payload_max is None:
            a76 = revision is not None and "A76" in revision
            payload_max = PAYLOAD_MAX_A76XX if a76 else PAYLOAD_MAX_SIM76XX
        self.payload_max = payload_max
        self.connected = False
        self.started = False
        # (client_id bytes, server_type) known to be held on the modem
        self.acquired = None  # type: tuple | None
        self.busy_retries = 5  # 14 "client is busy": retries, backoff doubling from:
        self.busy_backoff_ms = 200
        self.sub_two_step = False  # True: AT+CMQTTSUBTOPIC + AT+CMQTTSUB=<idx> (A7600 note)
        self.optimeout_s = 120  # 16.2.15 default
        self.start_timeout_ms = _T_START  # set_model() narrows it to the model's manual
        self._cfg = (None, None, None)  # configure()'s checkUTF8, optimeout, version
        self.version_refused = False  # AT+CMQTTCFG="version" answered a plain ERROR
        self._tls = None  # normalized TLS profile from configure_tls
        self._cfg_done = False
        self._sslcfg_set = False
        self._res = ResultWait()  # the _K_* command's result URC: 0, a CMQTT code or _ABORTED
        self._disc_done = False  # our own DISC succeeded since the last connect: stop skips it
        self._lost_gen = 0  # bumped by CONNLOST/NONET (a loss in the same read as CONNECT's 0)
        self._lock = asyncio.Lock()
        # The UART phase of a publish (TOPIC, PAYLOAD, PUB up to its OK), shared with the
        # other client index's driver (``peer_of``): one publish crosses the line whole, so
        # its round trip starts while the other session's payload goes; not held across
        # the +CMQTTPUB wait (the engine runs one command at a time, 003 s.4, either way).
        self._xfer = asyncio.Lock() if peer_of is None else peer_of._xfer
        self._xfer_held = False
        self.stats = {
            "published": 0, "pub_errors": 0, "received": 0, "rx_dropped": 0,
            "rx_oversize": 0, "rx_torn": 0, "rx_overwritten": 0, "connlost": 0,
            "nonet": 0, "busy_retries": 0, "late_results": 0, "state_ok": 0,
            "subscribed": 0, "connects": 0, "rx_bad_len": 0,
        }
        # inbound message assembly (reader side)
        self._rx_reported = False
        self._raw_kind = _RAW_NONE
        self._raw_n = 0
        self.peer = None  # type: CMQTTDriver | None  # the other client index's (``peer_of``)
        # The reader parses the numbers of the URCs below into _num itself (no arg_int call
        # per argument); the handler then reads them from there (a peer: copied in by
        # ``peer_of``'s handlers, see ``_to_peer``).
        num = self._num = array("i", bytes(4 * _N_SIZE))  # _rx mode _RX_IDLE (0)
        self._tframe = [None]  # the slot's topic and payload buffers, for the reader
        self._pframe = [None]
        if peer_of is not None:
            # The other client index on the same engine (a second session, issue 14): the
            # reader gives a URC to one handler, so ``peer_of``'s handlers forward the
            # result/loss URCs of this index here; no handlers of its own (no inbound).
            if peer_of.index == client_index or peer_of.peer is not None:
                raise ValueError("peer_of: a driver of the other client index, once")
            peer_of.peer = self
            self.started = peer_of.started
            return
        self._prev_raw = at.on_raw
        self._arm_raw = at.tok.arm_raw  # the reader's own method (one lookup, not three)
        at.on_raw = self._on_raw
        num[_N_TLIMIT] = min(RX_TOPIC_MAX, inbox.topic_max)
        num[_N_PLIMIT] = min(RX_PAYLOAD_MAX, inbox.payload_max)
        self._prepare()
        # a message that fits the prepared slot is started by the reader; the handler sees
        # the others: another client's, torn, oversize, unreadable, inbox full
        at.on_start(b"+CMQTTRXSTART:", num, 0, 2, _N_START, self._on_rxstart,
                    match=client_index, gate=_N_MODE, gate_value=_RX_IDLE,
                    set_value=_RX_KEEP, ready=_N_READY, limit=_N_TLIMIT, fill=_N_TFILL,
                    total=_N_TTOTAL)
        # a chunk that fits what RXSTART announced is armed by the reader; the handler
        # (_arm) sees the others: another client's, oversize, unannounced, unreadable
        at.on_frame(b"+CMQTTRXTOPIC:", num, 0, 1, _N_TOPIC, self._tframe, self._on_rxtopic,
                    length=_N_TOPIC + 1, match=client_index, gate=_N_MODE,
                    gate_value=_RX_KEEP, fill=_N_TFILL, total=_N_TTOTAL, mark=_N_ARMED)
        at.on_frame(b"+CMQTTRXPAYLOAD:", num, 0, 1, _N_PAYLOAD, self._pframe,
                    self._on_rxpayload, length=_N_PAYLOAD + 1, match=client_index,
                    gate=_N_MODE, gate_value=_RX_KEEP, fill=_N_PFILL, total=_N_PTOTAL,
                    mark=_N_ARMED)
        # a message the reader started and filled as announced is committed by it too (the
        # inbox slot, EV_MSG, the next slot prepared): no Python call per message
        at.on_commit(b"+CMQTTRXEND:", num, 0, 0, _N_END, self._on_rxend, inbox, self.events,
                     EV_MSG, (self._tframe, self._pframe), match=client_index, gate=_N_MODE,
                     gate_value=_RX_KEEP, set_value=_RX_IDLE, ready=_N_READY, fill=_N_TFILL,
                     total=_N_TTOTAL, at=_N_SLOT, count=(self.stats, "received"))
        at.on(b"+CMQTTCONNLOST:", self._on_connlost)
        at.on(b"+CMQTTNONET", self._on_nonet)
        # a publish result nobody awaits (QoS>0 results after their wait gave up, or of a
        # pipelined publish) is posted by the reader: EV_PUBACK (index, err), no Python call
        self._res.mirror(num, _N_WAIT)
        at.on_event(b"+CMQTTPUB:", num, 0, 1, _N_RESULT, self.events, EV_PUBACK,
                    self._on_pub, match=client_index, gate=_N_WAIT, gate_value=0,
                    count=(self.stats, "late_results"))
        at.on_store(b"+CMQTTSUB:", num, 0, 1, _N_RESULT, then=self._on_sub)
        at.on_store(b"+CMQTTUNSUB:", num, 0, 1, _N_RESULT, then=self._on_unsub)
        at.on_store(b"+CMQTTDISC:", num, 0, 1, _N_RESULT, then=self._on_disc)
        at.on_store(b"+CMQTTCONNECT:", num, 0, 1, _N_RESULT, then=self._on_connect)
        at.on(b"+CMQTTSTART:", self._on_start)
        at.on(b"+CMQTTSTOP:", self._on_stop)

    def __getattr__(self, name):
        # Only for names not found: the session's setup and teardown (start, connect,
        # configure, configure_tls, set_model, subscribe, subscribe_many, unsubscribe,
        # disconnect, release, stop) live in atmq.cmqttup, imported for each call and
        # dropped after it (issue 11: heap between bring-ups); AttributeError for the rest.
        from . import cmqttup

        return cmqttup.attr(self, name)

    # ---- URC handlers (run inside the reader: no await, no allocation) -------------------------

    def _prepare(self):
        # Between messages: the next free inbox slot's buffers go to the reader, which
        # starts the next message there itself (on_start); none free: the handler decides.
        ib = self.inbox
        s = ib.next_slot()
        self._rx_reported = False
        self._num[_N_SLOT] = s
        if s < 0:
            self._num[_N_READY] = 0
            return
        self._tframe[0] = ib.topic_buf(s)
        self._pframe[0] = ib.payload_buf(s)
        self._num[_N_READY] = 1

    def _catch_up(self):
        # The reader started a message in the prepared slot: the inbox's start, now (it
        # gives that slot: only start/commit move it, and both run here, after this).
        num = self._num
        if num[_N_READY] == 2:
            num[_N_READY] = 0
            self.inbox.start(num[_N_TTOTAL], num[_N_PTOTAL])

    def _bad_len(self):
        # An announced length or client index outside the manual's ranges (issue 10 #3):
        # counted, the message dropped, NO blind skip of N bytes (a bogus 999999999 would
        # make the reader deaf): the bytes that follow are read as lines and resync.
        self._catch_up()
        self.stats["rx_bad_len"] += 1
        if self._num[_N_MODE] == _RX_KEEP:
            self.inbox.abandon()
        if self._num[_N_MODE] != _RX_IDLE:
            self._num[_N_MODE] = _RX_BAD
        self._drop(DROP_TORN, 0)

    def _on_rxstart(self, a):
        # (the reader took this one itself unless something is off: see on_start above)
        num = self._num
        self._catch_up()
        i = num[_N_START]
        if i != self.index:
            if i != 0 and i != 1:
                self._bad_len()
            return
        if num[_N_MODE] != _RX_IDLE:  # the previous message never ended
            self._drop(DROP_TORN, 0)
        tl = num[_N_START + 1]
        pl = num[_N_START + 2]
        if tl > RX_TOPIC_MAX or pl > RX_PAYLOAD_MAX:
            num[_N_MODE] = _RX_BAD
            self._rx_reported = False
            self.stats["rx_bad_len"] += 1
            return
        num[_N_TTOTAL] = tl
        num[_N_PTOTAL] = pl
        self._rx_reported = False
        num[_N_SLOT] = -1
        if tl < 0 or pl < 0:
            num[_N_MODE] = _RX_BAD
            return
        ib = self.inbox
        ow = ib.overwritten
        num[_N_READY] = 0  # the prepared slot is the inbox's business again
        slot = ib.start(tl, pl)
        if slot < 0:
            num[_N_MODE] = _RX_OVERSIZE
            return
        num[_N_TFILL] = num[_N_PFILL] = 0
        self._tframe[0] = ib.topic_buf(slot)
        self._pframe[0] = ib.payload_buf(slot)
        num[_N_MODE] = _RX_KEEP
        num[_N_SLOT] = slot
        if ib.overwritten != ow:  # full inbox: the oldest unread message made room
            self.stats["rx_overwritten"] += 1
            self.stats["rx_dropped"] += 1
            self.events.put(EV_MSG_DROPPED, DROP_OVERWRITTEN, 0)

    def _arm(self, kind, i, n):
        # "+CMQTTRXTOPIC|RXPAYLOAD: <client_index>,<len>" (16.4): i and n as the reader stored them
        self._catch_up()
        if (i != 0 and i != 1) or n > (RX_TOPIC_MAX if kind == _RAW_TOPIC else RX_PAYLOAD_MAX):
            self._bad_len()  # unparseable index or a length over 16.4's: no skip
            return
        if i != self.index:  # client 1's message: skip its bytes, stay in step
            if n > 0:
                self._arm_raw(None, 0, n)
                self._raw_kind = _RAW_SKIP
                self._raw_n = n
            return
        if n <= 0:
            if n < 0 and self._num[_N_MODE] == _RX_KEEP:  # unreadable length: cannot stay in step
                self.inbox.abandon()
                self._num[_N_MODE] = _RX_BAD
            return
        arm_raw = self._arm_raw
        if self._num[_N_MODE] == _RX_KEEP:
            ib = self.inbox
            s = self._num[_N_SLOT]
            if kind == _RAW_TOPIC:
                fill = self._num[_N_TFILL]
                if fill + n <= self._num[_N_TTOTAL]:
                    arm_raw(ib.topic_buf(s), fill, n)
                    self._raw_kind = _RAW_TOPIC
                    self._raw_n = n
                    return
            else:
                fill = self._num[_N_PFILL]
                if fill + n <= self._num[_N_PTOTAL]:
                    arm_raw(ib.payload_buf(s), fill, n)
                    self._raw_kind = _RAW_PAYLOAD
                    self._raw_n = n
                    return
            ib.abandon()  # more bytes than announced: skip them, the message is torn
            self._num[_N_MODE] = _RX_BAD
        elif self._num[_N_MODE] == _RX_IDLE:
            self._num[_N_MODE] = _RX_BAD  # a chunk without +CMQTTRXSTART: skip it in step
            self._rx_reported = False
        arm_raw(None, 0, n)
        self._raw_kind = _RAW_SKIP
        self._raw_n = n

    def _on_rxtopic(self, a):
        num = self._num
        self._arm(_RAW_TOPIC, num[_N_TOPIC], num[_N_TOPIC + 1])

    def _on_rxpayload(self, a):
        num = self._num
        self._arm(_RAW_PAYLOAD, num[_N_PAYLOAD], num[_N_PAYLOAD + 1])

    def _on_raw(self, kind):
        k = self._raw_kind
        num = self._num
        if num[_N_ARMED]:  # a chunk the reader armed itself was lost (T_LOST)
            num[_N_ARMED] = 0
            k = _RAW_PAYLOAD
        if k == _RAW_NONE:
            h = self._prev_raw
            if h is not None:
                h(kind)
            return
        self._raw_kind = _RAW_NONE
        if kind == T_RAW:
            if k == _RAW_TOPIC:
                num[_N_TFILL] += self._raw_n
            elif k == _RAW_PAYLOAD:
                num[_N_PFILL] += self._raw_n
            return
        # T_LOST: the ring overflowed inside the frame; the tokenizer resyncs at the next LF
        self._catch_up()
        if num[_N_MODE] == _RX_KEEP:
            self.inbox.abandon()
        if num[_N_MODE] != _RX_IDLE:
            num[_N_MODE] = _RX_BAD
            self._drop(DROP_TORN, 0)

    def _drop(self, why, n):
        st = self.stats
        if not self._rx_reported:
            st["rx_dropped"] += 1
            if why == DROP_OVERSIZE:
                st["rx_oversize"] += 1
            else:
                st["rx_torn"] += 1
            self.events.put(EV_MSG_DROPPED, why, n)
        self._rx_reported = True

    def _on_rxend(self, a):
        # the one Python call of an inbound message that went as announced
        num = self._num
        if num[_N_END] != self.index:
            return
        m = num[_N_MODE]
        num[_N_MODE] = _RX_IDLE
        ib = self.inbox
        if m == _RX_KEEP:
            if num[_N_READY] == 2:  # the reader started it: the inbox's start (_catch_up)
                num[_N_READY] = 0
                ib.start(num[_N_TTOTAL], num[_N_PTOTAL])
            ib.topic_fill = num[_N_TFILL]  # what arrived, for commit's check
            ib.payload_fill = num[_N_PFILL]
            s = ib.commit()
            if s >= 0:
                self.stats["received"] += 1
                self.events.put(EV_MSG, s, self.index)
            else:
                self._drop(DROP_TORN, 0)
        elif m == _RX_OVERSIZE:
            self._drop(DROP_OVERSIZE, num[_N_PTOTAL])
        elif m == _RX_BAD:
            self._drop(DROP_TORN, 0)
        # _prepare inlined (one call less per message): the next free slot for the reader
        s = ib.next_slot()
        self._rx_reported = False
        num[_N_SLOT] = s
        if s < 0:
            num[_N_READY] = 0
            return
        self._tframe[0] = ib.topic_buf(s)
        self._pframe[0] = ib.payload_buf(s)
        num[_N_READY] = 1

    def _fail_pending(self):
        # A PUB/SUB/UNSUB/DISC/CONNECT waiting for its result URC fails now: the link is
        # gone and the modem would report it only after its own timeout.  The command's
        # final result is still awaited, so no late OK can end the next command.
        self._res.abort()

    def lost(self, reboot):
        """The link fell (called from the reader by ``link.Link.lost``: no allocation).  A
        command waiting for its result URC fails now; after a reboot the service, the client
        slot and its SSL/CFG settings are gone too (the task side calls ``reset``)."""
        if self.peer is not None:
            self.peer.lost(reboot)
        self.connected = False
        self._sslcfg_set = False
        if reboot:
            self.started = False
            self.acquired = None
            self._cfg_done = False
        self._lost_gen += 1
        self._fail_pending()

    def _to_peer(self, a):
        """The peer driver when the line is its client index's, with the numbers the reader
        stored for this line (``<idx>,<err>`` of a result URC) copied into its array."""
        p = self.peer
        if p is None or a.arg_int(0) != p.index:
            return None
        src, dst = self._num, p._num
        dst[_N_RESULT] = src[_N_RESULT]
        dst[_N_RESULT + 1] = src[_N_RESULT + 1]
        return p

    def _on_connlost(self, a):
        if a.arg_int(0) != self.index:
            p = self._to_peer(a)
            if p is not None:
                p._on_connlost(a)
            return
        self.connected = False
        self._sslcfg_set = False
        self._lost_gen += 1
        self.stats["connlost"] += 1
        self.events.put(EV_CONNLOST, self.index, a.arg_int(1))
        self._fail_pending()

    def _on_nonet(self, a):
        if self.peer is not None:
            self.peer._on_nonet(a)
        self.connected = False
        self.started = False  # 16.4: restart the service with AT+CMQTTSTART
        self.acquired = None
        self._sslcfg_set = False
        self._lost_gen += 1
        self.stats["nonet"] += 1
        self.events.put(EV_NONET, self.index, 0)
        self._fail_pending()

    def _result(self, kind, err):
        # The result URC of the command we wait for (before or after its OK), or a late one.
        if self._res.take(kind, err):
            return True
        self.stats["late_results"] += 1
        return False

    def _late(self, a, kind):
        """``+CMQTTxxx: <client_index>,<err>`` (16.2): None when it is another client's or
        the command waiting for it took it, else the error code of a late result."""
        num = self._num  # the reader stored <client_index>,<err> there (on_store)
        if num[_N_RESULT] != self.index or a.count() < 2:
            return None
        err = num[_N_RESULT + 1]
        if err == -1:
            err = a.arg_int(1, 1)  # not a number: 1 as before (the store gives -1)
        if self._res.take(kind, err):  # (_result inlined: one call less per result URC)
            return None
        self.stats["late_results"] += 1
        return err

    def _on_pub(self, a):
        # the most frequent result URC (one per QoS>0 publish): _to_peer and _late inlined
        # for our own index, one Python call per line in the common case
        num = self._num
        if num[_N_RESULT] != self.index:
            p = self._to_peer(a)
            if p is not None:
                p._on_pub(a)
            return
        err = num[_N_RESULT + 1]
        if err == -1:  # absent or not a number: as _late
            if a.count() < 2:
                return
            err = a.arg_int(1, 1)
        res = self._res
        if res.kind == _K_PUB and res.take(_K_PUB, err):  # (no call when nobody waits)
            return
        self.stats["late_results"] += 1
        self.events.put(EV_PUBACK, self.index, err)

    def _on_sub(self, a):
        err = self._late(a, _K_SUB)
        if err is not None:
            self.events.put(EV_URC, LATE_SUB, err)

    def _on_unsub(self, a):
        err = self._late(a, _K_UNSUB)
        if err is not None:
            self.events.put(EV_URC, LATE_UNSUB, err)

    def _on_disc(self, a):
        p = self._to_peer(a)
        if p is not None:
            p._on_disc(a)
            return
        err = self._late(a, _K_DISC)
        if err is not None:
            if err == 0:
                self.connected = False
            self.events.put(EV_URC, LATE_DISC, err)

    def _on_connect(self, a):
        p = self._to_peer(a)
        if p is not None:
            p._on_connect(a)
            return
        err = self._late(a, _K_CONNECT)
        if err is not None:
            self.events.put(EV_URC, LATE_CONNECT, err)

    def _on_start(self, a):  # "+CMQTTSTART: <err>[,<cid>]": the code comes first (16.2.1)
        self._result(_K_START, a.arg_int(0, 1))

    def _on_stop(self, a):
        self._result(_K_STOP, a.arg_int(0, 1))

    # ---- command plumbing --------------------------------------------------------------------

    async def _exec(self, cmd, prefix, payload=None, kind=0, timeout_ms=_T_CMD,
                    done_timeout_ms=_T_CMD, err_grace_ms=0, on_final=None):
        """Run one CMQTT command; returns when it succeeded, else raises ``ModemError``:
        ("CMQTT", <err>) from ``+<cmd>: <idx>,<err>``, ``ATError`` for a plain ERROR,
        ``_Aborted`` (CMQTT 11) when the link went while the result was awaited, or the
        engine's CME error / ``ATTimeout``.  ``_code(e)`` reads the code back for the
        steps where a code means a state ("already started", "client is used"...).

        ``kind``: a two-phase command whose result URC (before or after OK) the driver's
        handlers catch.  The engine is free again once the final result came, so other
        modules' commands (GNSS, CSQ) are not held up while the broker takes its time.
        ``on_final``: called once the final result code is in, before that wait.
        """
        at = self.at
        if not kind:
            r = await at.cmd(cmd, resp=prefix, payload=payload, timeout_ms=timeout_ms,
                             prompt_timeout_ms=_T_PROMPT, check=False)
            f = r.final
            if f == _R_CME or f == _R_CMS:
                raise at.error(cmd)
            err = -1  # the CMQTT code from "+<prefix> <idx>,<err>", if any
            for i in range(r.count):
                a = r.line(i)
                if a.startswith(prefix) and a.count() >= 2 and a.arg_int(0) == self.index:
                    err = a.arg_int(1)
                    break
            if err <= 0:
                err = 0 if f == _R_OK else _BARE
        else:
            res = self._res
            res.expect(kind)
            try:
                r = await at.cmd(cmd, payload=payload, timeout_ms=timeout_ms,
                                 prompt_timeout_ms=_T_PROMPT, check=False)
                f = r.final
                if on_final is not None:
                    on_final()
                if f == _R_CME or f == _R_CMS:
                    raise at.error(cmd)
                err = res.got
                if f != _R_OK and err == _RESULT_NONE and err_grace_ms:
                    # 16.2.8 case 3: "ERROR" then "+CMQTTCONNECT: <idx>,<err>" in a later
                    # read: wait a moment for the code (it says what failed: 19 = already
                    # connected)
                    try:
                        err = await res.wait(cmd, err_grace_ms)
                    except ATTimeout:
                        err = _RESULT_NONE
                if f != _R_OK:  # "+<cmd>: <idx>,<err>" came before the ERROR, or nothing did
                    if err <= 0 and err != _ABORTED:
                        err = _BARE
                else:
                    err = await res.wait(cmd, done_timeout_ms)
            finally:
                res.done()
        if err == 0:
            return
        if err == _BARE:
            raise ATError(cmd)
        if err == _ABORTED:
            raise _Aborted(cmd)
        raise ModemError("CMQTT", err, cmd)

    async def _retrying(self, step):
        """The one retry layer of the driver: ``await step()`` again after CMQTT 14 "client
        is busy" (16.3.1: TRANSIENT), ``busy_retries`` times with the backoff doubling from
        ``busy_backoff_ms``; every other error goes to the caller."""
        tries = 0
        while True:
            try:
                return await step()
            except ModemError as e:
                if e.kind != "CMQTT" or e.code != _E_BUSY or tries >= self.busy_retries:
                    raise
            self.stats["busy_retries"] += 1
            await sleep_ms(self.busy_backoff_ms << tries)
            tries += 1

    @staticmethod
    def _code(e):
        """The CMQTT code a raised step carries: _BARE for a plain ERROR, _ABORTED for a
        result the link loss cut off, None for a CME error or a timeout."""
        if isinstance(e, _Aborted):
            return _ABORTED
        if isinstance(e, ATError):
            return _BARE
        if e.kind == "CMQTT":
            return e.code
        return None

    def _fail(self, e):
        """``e`` to raise to the caller, after the state bookkeeping its code asks for."""
        err = self._code(e)
        if err == _E_NOCONN or err == _ABORTED or err == _E_NETNOTOPEN:
            # the link is down: CONNLOST with b = -11 or -9 when we thought it up
            why = -_E_NOCONN
            if err == _E_NETNOTOPEN:
                self.started = False
                why = -_E_NETNOTOPEN
            was = self.connected
            self.connected = False
            self._sslcfg_set = False
            if was:
                self.stats["connlost"] += 1
                self.events.put(EV_CONNLOST, self.index, why)
        elif err == _E_NOTACQ:
            self.acquired = None
        return e

    def reset(self):
        """Forget what the driver knows of the modem's MQTT state (after a modem reboot:
        the service, the client slot, the SSL/CFG settings are gone)."""
        self.connected = False
        self.started = False
        self.acquired = None
        self._sslcfg_set = False
        self._cfg_done = False
        self._disc_done = False
        self._catch_up()
        self._num[_N_MODE] = _RX_IDLE
        self.inbox.abandon()
        self._prepare()

    async def is_connected(self):
        """AT+CMQTTCONNECT? read form: connected only when our line has the server address."""
        async with self._lock:
            return await self._is_connected()

    async def _is_connected(self, server=None):
        # ``server``: 2 instead of True when our line lists another server (cmqttup's confirm)
        r = await self.at.cmd(b"AT+CMQTTCONNECT?", resp=b"+CMQTTCONNECT:", timeout_ms=_T_CMD,
                              check=False)
        if not r.ok:  # ERROR: the service is not started (16.2.1 note)
            self.connected = False
            return False
        c = False
        other = False
        for i in range(r.count):
            a = r.line(i)
            if a.arg_int(0) == self.index:
                c = a.count() >= 2 and a.arg_len(1) > 0
                other = c and server is not None and not _lists(a, server)
        self.connected = c
        return 2 if other else c

    # ---- publish / subscribe -----------------------------------------------------------------

    async def publish(self, topic, payload, qos=1, retain=False, timeout_ms=60000, dup=False):
        """TOPIC + PAYLOAD (exact bytes after each prompt) + PUB; returns on +CMQTTPUB: <idx>,0.

        ``timeout_ms`` becomes PUB's <pub_timeout> (60..180 s): how long the modem waits for
        the broker's PUBACK/PUBCOMP.  Raises ModemError("CMQTT", err) on failure."""
        t = _bytes(topic, "topic")
        tn = _len_ok(t, "topic", 1, TOPIC_MAX)
        if bytes(t).find(b"+") >= 0 or bytes(t).find(b"#") >= 0:
            raise ValueError("a publish topic must not contain the wildcards + or #")
        p = _bytes(payload, "payload")
        pn = _len_ok(p, "payload", 0, self.payload_max)
        q = _int_in(qos, "qos", 0, 2)
        pub_s = (timeout_ms + 999) // 1000
        pub_s = 60 if pub_s < 60 else (180 if pub_s > 180 else pub_s)
        i = self.index
        c_topic = b"AT+CMQTTTOPIC=%d,%d" % (i, tn)
        c_payload = b"AT+CMQTTPAYLOAD=%d,%d" % (i, pn)
        c_pub = b"AT+CMQTTPUB=%d,%d,%d" % (i, q, pub_s)
        if retain or dup:
            c_pub += b",%d" % (1 if retain else 0)
            if dup:
                c_pub += b",1"
        t_done = (pub_s if pub_s > self.optimeout_s else self.optimeout_s) * 1000 + _T_MARGIN
        async def attempt():  # a busy step starts the whole publish again from TOPIC
            # the three commands cross the UART as one unit (``_xfer``, shared with the
            # other client index), released at PUB's final code: the next publish's bytes
            # go while this one waits for its +CMQTTPUB
            await self._xfer.acquire()
            self._xfer_held = True
            try:
                await self._exec(c_topic, b"+CMQTTTOPIC:", payload=t)
                if pn:  # an empty payload: no PAYLOAD step (note 3.5)
                    await self._exec(c_payload, b"+CMQTTPAYLOAD:", payload=p)
                await self._exec(c_pub, b"+CMQTTPUB:", kind=_K_PUB, done_timeout_ms=t_done,
                                 on_final=self._xfer_release)
            finally:
                self._xfer_release()

        async with self._lock:
            try:
                await self._retrying(attempt)
            except ModemError as e:
                self.stats["pub_errors"] += 1
                raise self._fail(e) from None
            self.stats["published"] += 1

    def _xfer_release(self):
        if self._xfer_held:
            self._xfer_held = False
            self._xfer.release()
