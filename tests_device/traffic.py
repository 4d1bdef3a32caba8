"""Deterministic, realistic SIMCom receive traffic for the no-allocation test and the benchmark.

``build(seed)`` returns one cycle: a bytes block of modem output and a list of
exchanges ``(kind, end_offset)``.  Each exchange is what the modem sends for
one command (with echo on or off, URCs inside the answer) or an idle stretch
(URCs, boot banner, noise, inbound MQTT messages with raw payloads containing
CR LF, ``OK`` and ``>``).  ``Driver`` replays cycles through a real ``Engine``
synchronously: it puts the matching command in flight with ``begin`` before
the exchange's bytes are pumped, and checks the outcome without allocating,
so the whole run can sit inside ``micropython.heap_lock()``.

Runs on MicroPython and CPython; the pseudo-random generator keeps its
products below 2**30 so it stays allocation-free on a 32-bit ESP32 too.
"""

import io
from array import array

from atmq import engine, events, tokenizer
from atmq.compat import const, micropython, ptr8
from atmq.engine import Engine
from atmq.events import EventQueue
from atmq.inbox import Inbox

# exchange kinds (const: inlined, no dictionary lookup per use)
K_CSQ = const(0)
K_CME = const(1)
K_PUB = const(2)  # two-phase: OK then +CMQTTPUB: 0,0
K_PROMPT = const(3)
K_LIST = const(4)  # multi-line answer with a URC in the middle
K_BARE = const(5)
K_IDLE = const(6)  # URCs, boot banner, noise, inbound messages
K_COPS = const(7)  # quoted comma in a response

# Imported names cost a dictionary lookup at every use on MicroPython: a driver's hot
# handlers keep local constants (checked against the library's in _check_constants).
_T_RAW = const(3)
_T_LOST = const(4)
_EV_MSG = const(1)
_EV_MSG_DROPPED = const(2)
_EV_CONNLOST = const(3)
_R_OK = const(1)
_R_CME = const(3)


def _check_constants():
    assert (tokenizer.T_RAW, tokenizer.T_LOST) == (_T_RAW, _T_LOST)
    assert (events.EV_MSG, events.EV_MSG_DROPPED, events.EV_CONNLOST) == (
        _EV_MSG, _EV_MSG_DROPPED, _EV_CONNLOST)
    assert (engine.R_OK, engine.R_CME) == (_R_OK, _R_CME)


_check_constants()

CMD = (
    b"AT+CSQ",
    b"AT+CPIN?",
    b"AT+CMQTTPUB=0,1,60",
    b"AT+CMQTTTOPIC=0,9",
    b"AT+CCERTLIST",
    b"AT+CGSN",
    None,
    b"AT+COPS?",
)
RESP = (b"+CSQ:", b"+CPIN:", None, None, b"+CCERTLIST:", None, None, b"+COPS:")
PAYLOAD = b'{"seq":1,"v":"a\r\nOK\r\n>b","x":[1,2]}'  # 37 bytes that look like AT traffic
TOPIC = b"fleet/dev1/cmd"
LINE_MAX = 256


class Rand:
    def __init__(self, seed):
        self.x = seed % 65537

    @micropython.native
    def next(self, n):
        self.x = (self.x * 75 + 74) % 65537
        return self.x % n


def _msg(parts):
    parts.append(b"\r\n+CMQTTRXSTART: 0,%d,%d\r\n" % (len(TOPIC), len(PAYLOAD)))
    parts.append(b"+CMQTTRXTOPIC: 0,%d\r\n" % len(TOPIC) + TOPIC)
    # the payload in two chunks, as the modem splits long ones
    parts.append(b"\r\n+CMQTTRXPAYLOAD: 0,20\r\n" + PAYLOAD[:20])
    parts.append(b"\r\n+CMQTTRXPAYLOAD: 0,%d\r\n" % (len(PAYLOAD) - 20) + PAYLOAD[20:])
    parts.append(b"\r\n+CMQTTRXEND: 0\r\n")


def build(seed=1, exchanges=400):
    """One cycle of traffic: (block bytes, kinds array, ends array, expected dict)."""
    rnd = Rand(seed)
    parts = []
    kinds = array("b")
    ends = array("i")
    exp = {"ok": 0, "cme": 0, "msgs": 0, "dropped": 0, "connlost": 0, "csq": 0, "trunc": 0}
    size = 0
    for _ in range(exchanges):
        k = rnd.next(8)
        p = []
        echo = rnd.next(3) == 0
        if k != K_IDLE and echo:
            p.append(CMD[k] + b"\r")
        if k == K_CSQ:
            p.append(b"\r\n+CSQ: 21,99\r\n\r\nOK\r\n")
            exp["ok"] += 1
            exp["csq"] += 1
        elif k == K_CME:
            p.append(b"\r\n+CME ERROR: 10\r\n")
            exp["cme"] += 1
        elif k == K_PUB:
            if rnd.next(2):
                p.append(b"\r\n+CMQTTPUB: 0,0\r\n\r\nOK\r\n")  # completion before OK
            else:
                p.append(b"\r\nOK\r\n\r\n+CMQTTPUB: 0,0\r\n")
            exp["ok"] += 1
        elif k == K_PROMPT:
            p.append(b"\r\n>")
            p.append(b"\r\nOK\r\n")
            exp["ok"] += 1
        elif k == K_LIST:
            p.append(b'\r\n+CCERTLIST: "ca.pem"\r\n+CMQTTCONNLOST: 0,1\r\n')
            p.append(b'+CCERTLIST: "client,cert.pem"\r\n\r\nOK\r\n')
            exp["ok"] += 1
            exp["connlost"] += 1
        elif k == K_BARE:
            p.append(b"\r\n861234567890123\r\n\r\nOK\r\n")
            exp["ok"] += 1
        elif k == K_COPS:
            p.append(b'\r\n+COPS: 0,0,"Telekom.de, Roaming",7\r\n')
            _msg(p)  # an inbound message in the middle of the answer
            exp["msgs"] += 1
            p.append(b"\r\nOK\r\n")
            exp["ok"] += 1
        else:
            j = rnd.next(5)
            if j == 0:
                p.append(b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n\r\nPB DONE\r\n")
            elif j == 1:
                _msg(p)
                exp["msgs"] += 1
            elif j == 2:
                p.append(b"\r\n+CMQTTCONNLOST: 0,3\r\n\r\n+CMQTTNONET\r\n")
                exp["connlost"] += 1
            elif j == 3:
                # noise: garbage, an unknown URC with quotes, and an overlong line
                p.append(b'\x00\xff\r\n+XYZ: "a,b",,3\r\nNOISE:\r\n')
                p.append(b"+LONG: " + b"x" * (LINE_MAX + 40) + b"\r\n")
                exp["trunc"] += 1
            else:
                # an oversize inbound message: announced, skipped byte-exactly
                big = 3000
                p.append(b"\r\n+CMQTTRXSTART: 0,5,%d\r\n+CMQTTRXTOPIC: 0,5\r\nbig/t" % big)
                p.append(b"\r\n+CMQTTRXPAYLOAD: 0,%d\r\n" % big + b"\r\nOK\r\n>" * (big // 7))
                p.append(b"\r\n" * ((big % 7) // 2) + b"." * (big % 7 % 2))
                p.append(b"\r\n+CMQTTRXEND: 0\r\n")
                exp["dropped"] += 1
        for b in p:
            size += len(b)
            parts.append(b)
        kinds.append(k)
        ends.append(size)
    return b"".join(parts), kinds, ends, exp


@micropython.viper
def _copy(src, s: int, dst, n: int):
    a = ptr8(src)
    b = ptr8(dst)
    i = 0
    while i < n:
        b[i] = a[s + i]
        i += 1


class BlockStream:
    """Serves a bytes block through ``readinto`` with varying chunk sizes, up to a limit."""

    def __init__(self, block, seed=7, max_chunk=256):
        self.block = block
        self.pos = 0
        self.limit = 0
        self.rnd = Rand(seed)
        self.max_chunk = max_chunk

    @micropython.native
    def readinto(self, buf):
        left = self.limit - self.pos
        if left <= 0:
            return None
        n = 1 + self.rnd.next(self.max_chunk)
        if n > left:
            n = left
        if n > len(buf):
            n = len(buf)
        _copy(self.block, self.pos, buf, n)
        self.pos += n
        return n

    def write(self, buf):
        return len(buf)


class Driver:
    """Plays traffic cycles through an Engine with CMQTT-style receive handlers."""

    def __init__(self, block, kinds, ends, seed=7, max_chunk=256):
        self.stream = BlockStream(block, seed, max_chunk)
        self.at = at = Engine(self.stream, ring_size=1024, chunk_size=256, line_max=LINE_MAX)
        self.kinds = kinds
        self.ends = ends
        self.events = EventQueue(16)
        self.inbox = Inbox(2, 64, 256)
        self.got = array("i", bytes(4 * 8))  # ok, cme, msgs, dropped, connlost, csq, bad, pubdone
        self._slot = -1
        self._rx_topic = False
        at.on(b"+CMQTTRXSTART:", self._rxstart)
        at.on(b"+CMQTTRXTOPIC:", self._rxtopic)
        at.on(b"+CMQTTRXPAYLOAD:", self._rxpayload)
        at.on(b"+CMQTTRXEND:", self._rxend)
        at.on(b"+CMQTTCONNLOST:", self._connlost)
        at.on(b"+CMQTTNONET", self._ignore)
        for p in (b"RDY", b"+CPIN:", b"SMS DONE", b"PB DONE"):
            at.on(p, self._ignore)
        at.on_raw = self._raw

    @micropython.native
    def _ignore(self, a):
        pass

    @micropython.native
    def _rxstart(self, a):
        self._slot = self.inbox.start(a.arg_int(1), a.arg_int(2))

    @micropython.native
    def _arm(self, a, topic):
        n = a.arg_int(1)
        ib = self.inbox
        s = self._slot
        self._rx_topic = topic
        if s < 0 or n < 0:
            self.at.tok.arm_raw(None, 0, n if n > 0 else 0)
        elif topic:
            self.at.tok.arm_raw(ib.topic_buf(s), ib.topic_fill, n)
        else:
            self.at.tok.arm_raw(ib.payload_buf(s), ib.payload_fill, n)

    @micropython.native
    def _rxtopic(self, a):
        self._arm(a, True)

    @micropython.native
    def _rxpayload(self, a):
        self._arm(a, False)

    @micropython.native
    def _raw(self, kind):
        if kind == _T_RAW and self._slot >= 0:
            n = self.at.tok.raw_off  # end offset of the frame in the armed buffer
            if self._rx_topic:
                self.inbox.topic_fill = n
            else:
                self.inbox.payload_fill = n
        elif kind == _T_LOST:
            self.inbox.abandon()

    @micropython.native
    def _rxend(self, a):
        if self._slot < 0:
            self.events.put(_EV_MSG_DROPPED, 1)
            self.got[3] += 1
            return
        s = self.inbox.commit()
        self._slot = -1
        if s >= 0:
            self.got[2] += 1
            ib = self.inbox
            if ib.payload_len(s) != len(PAYLOAD) or ib.payload_buf(s)[24] != PAYLOAD[24]:
                self.got[6] += 1
            self.events.put(_EV_MSG, s)
            ib.release()

    @micropython.native
    def _connlost(self, a):
        self.got[4] += 1
        self.events.put(_EV_CONNLOST, a.arg_int(0), a.arg_int(1))

    def exchange_streams(self, block):
        """One ``io.BytesIO`` per exchange, for ``cycle(streams=...)``: C-level reads,
        as a UART driver's ``readinto`` is, instead of the Python ``BlockStream``."""
        out = []
        s = 0
        for e in self.ends:
            out.append(io.BytesIO(block[s:e]))
            s = e
        return out

    @micropython.native
    def cycle(self, check=True, streams=None):
        """Play one cycle; no allocation.  ``check=False`` skips verifying the outcomes.

        ``streams`` (from ``exchange_streams``): each exchange's bytes are read from
        its own C-level stream in reads of up to the engine's chunk, instead of the
        random 1..max_chunk reads of the Python ``BlockStream``.
        """
        at = self.at
        st = self.stream
        st.pos = 0
        got = self.got
        kinds = self.kinds
        ends = self.ends
        for i in range(len(kinds)):
            k = kinds[i]
            if k == K_IDLE:
                at.end()
            elif k == K_PUB:
                at.begin(CMD[k], None, False, b"+CMQTTPUB:", 0, False)
            else:
                at.begin(CMD[k], RESP[k], k == K_BARE, None, -1, k == K_PROMPT)
            if streams is None:
                st.limit = ends[i]
                while st.pos < st.limit:
                    at.pump()
            else:
                cs = streams[i]
                cs.seek(0)
                at.stream = cs
                while at.pump() > 0:
                    pass
            if check and k != K_IDLE:
                r = at.resp
                if r.final == _R_OK:
                    got[0] += 1
                elif r.final == _R_CME and r.code == 10:
                    got[1] += 1
                else:
                    got[6] += 1
                if k == K_CSQ:
                    if r.count == 1 and r.line(0).arg_int(0) == 21:
                        got[5] += 1
                    else:
                        got[6] += 1
                elif k == K_PUB:
                    if r.done >= 0 and r.line(r.done).arg_int(1) == 0:
                        got[7] += 1
                elif k == K_LIST:
                    if r.count != 2 or not r.line(1).arg_eq(0, b"client,cert.pem"):
                        got[6] += 1
                elif k == K_BARE:
                    if r.count != 1 or r.line(0).arg_len(0) != 15:
                        got[6] += 1
                elif k == K_COPS:
                    if r.count != 1 or not r.line(0).arg_eq(2, b"Telekom.de, Roaming"):
                        got[6] += 1
            if k != K_IDLE:
                at.end()
            while self.events.get() >= 0:
                pass


# ---- the URC-heavy mix (issue 12): no command in flight, every line unsolicited ------------

_JSON = (b'{"cmd":"ping","id":%d}', b'{"cmd":"set","values":{"period_s":%d,"gnss":true}}',
         b'{"seq":%d,"ack":[1,2,3],"note":"a,b\\r\\nOK"}')
_URC_TOPIC = b"fleet/dev1/cmd"


def _urc_msg(parts, i):
    payload = _JSON[i % len(_JSON)] % i
    parts.append(b"\r\n+CMQTTRXSTART: 0,%d,%d\r\n" % (len(_URC_TOPIC), len(payload)))
    parts.append(b"+CMQTTRXTOPIC: 0,%d\r\n" % len(_URC_TOPIC) + _URC_TOPIC)
    parts.append(b"\r\n+CMQTTRXPAYLOAD: 0,%d\r\n" % len(payload) + payload)
    parts.append(b"\r\n+CMQTTRXEND: 0\r\n")


def build_urc(seed=1, size=27000):
    """The URC-heavy mix: what a SIM7600 sends unasked while the logger runs (signal and
    registration reports, serving cell, GNSS fixes, inbound messages with JSON payloads,
    publish results, a boot banner, stray prompts), about ``size`` bytes; valid UTF-8 so
    the naive reader can decode it.  Returns (block, lines); ``lines`` counts non-empty
    lines as the naive reader sees them (frame bytes excluded)."""
    rnd = Rand(seed)
    parts = []
    n = 0
    i = 0
    while n < size:
        k = rnd.next(16)
        p = []
        if k < 3:
            p.append(b"\r\n+CSQ: %d,99\r\n" % (10 + rnd.next(20)))
        elif k < 5:
            stat = 1 if rnd.next(8) else 5
            p.append(b"\r\n+CREG: %d\r\n\r\n+CGREG: %d\r\n\r\n+CEREG: %d\r\n" % (stat, stat, stat))
        elif k < 7:
            p.append(b"\r\n+CPSI: LTE,Online,262-01,0x1A2B,%d,256,EUTRAN-BAND3,1300,5,5,"
                     b"-94,-1050,-750,15\r\n" % (27000000 + rnd.next(999)))
        elif k < 10:
            p.append(b"\r\n+CGNSSINFO: 2,09,05,00,3113.%06d,N,12121.234064,E,031226,"
                     b"1415%02d.0,32.1,0.0,0.0\r\n" % (rnd.next(999999), rnd.next(60)))
        elif k < 13:
            _urc_msg(p, i)
        elif k < 15:
            p.append(b"\r\n+CMQTTPUB: 0,0\r\n")
        elif rnd.next(4) == 0:
            p.append(b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n\r\nPB DONE\r\n")
        else:
            p.append(b"\r\n> \r\n")  # a prompt nobody asked for: a line of its own
        i += 1
        for b in p:
            n += len(b)
            parts.append(b)
    block = b"".join(parts)
    return block, block.count(b"\n")
