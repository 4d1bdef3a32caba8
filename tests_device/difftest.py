"""Differential test of the AT reader: ``atmq`` (Engine + Reader) against ``refreader``.

``run(seed, total_bytes)`` builds cases of AT-like and random traffic (boot
banners, URCs with quoted commas, commands with echo, response lines, every
final code and two-phase completions before and after OK, prompts, raw frames
of every length with CR LF ``OK`` ``>`` inside, overlong lines, NUL and 0xFF
bytes, lone CR, pure random bytes, store entries and change entries whose
handler runs only when the numbers change, event, state and seen entries that post
events or skip lines with no Python call), reads each through both readers in random
chunks of 1..N bytes (N cycling through 1..512), and asserts the same handler
calls, raw frames and unknown lines in the same order, the same outcome of each
command (echoes, prompts, stored lines, completion, final code), and that a
normal ``AT`` / ``OK`` exchange parses in both after every case.

Runs on CPython (tests_host) and MicroPython (tests_device); allocates freely.
"""

from array import array

from atmq.engine import R_OK, Engine
from atmq.events import EventQueue
from refreader import RefReader

LINE_MAX = 128
MAX_ARGS = 8
RESP_SIZE = 256
RESP_LINES = 6
CHUNK_MAX = (1, 2, 3, 5, 7, 13, 31, 64, 97, 128, 255, 256, 257, 400, 511, 512)
FRAME_BUF = 4096


class Rand:
    """31-bit LCG: the same numbers on both interpreters."""

    def __init__(self, seed):
        self.x = (seed * 2654435761 + 1) & 0x7FFFFFFF

    def next(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n

    def pick(self, seq):
        return seq[self.next(len(seq))]

    def bytes_from(self, alphabet, n):
        out = bytearray(n)
        for i in range(n):
            out[i] = alphabet[self.next(len(alphabet))]
        return bytes(out)


# bytes that make a frame or a line look like AT traffic
_RAWY = b"\r\n>OK+:,\" \x00\xffaz09"
_LINEY = b"\r\x00\xff\",: +>aZ9-"
_ANY = bytes(range(256))

BOOT = (b"\r\nRDY\r\n", b"\r\n+CPIN: READY\r\n", b"\r\nSMS DONE\r\n", b"\r\nPB DONE\r\n",
        b"\r\nSTART\r\n", b"\r\nAPP RDY\r\n", b"\r\n*ATREADY: 1\r\n")
URCS = (b'\r\n+COPS: 0,0,"Tele,kom",7\r\n', b'\r\n+CREG: 1,"1A2B","0C3D",7\r\n',
        b"\r\n+CGEV: NW DEACT\r\n", b"\r\n+CGEV: ME PDN DEACT 1\r\n",
        b"\r\n+CMQTTCONNLOST: 0,3\r\n", b"\r\n+CMQTTNONET\r\n", b"\r\n+CSQ: 21,99\r\n",
        b"\r\n+CEREG: 5\r\n", b'\r\n+XYZ: "a,b",,3, -7 ,"q"\r\n', b"\r\nNOISE:\r\n",
        b'\r\n+CGNSSINFO: 2,09,05,00,3113.343286,N,12121.234064,E,220620,085533.0,32.1\r\n',
        b"\r\n+CMQTTPUB: 0,0\r\n", b"\r\n+CMQTTPUB: 1,11\r\n", b"\r\n+CME ERROR: 3\r\n",
        b"\r\nOK\r\n", b"\r\n> \r\n", b"\r\n+RAWX\r\n", b"\r\n+STORE: 1,-2,x,99999999999\r\n")
FINALS = (b"OK", b"ERROR", b"+CME ERROR: 10", b"+CMS ERROR: 321", b"+CME ERROR: SIM busy",
          b"NO CARRIER", b"BUSY", b"NO ANSWER", b"NO DIALTONE", b"CONNECT", b"+CME ERROR")
CMDS = ((b"AT+CSQ", b"+CSQ:", False, None), (b"AT+CGSN", None, True, None),
        (b"AT+CMQTTPUB=0,1,60", None, False, b"+CMQTTPUB:"),
        (b"AT+COPS?", b"+COPS:", False, None), (b"AT+CCERTLIST", b"+CCERTLIST:", False, None))


def _arm_rawx(args):
    # "+RAWX: <id>,<n>": a frame of n bytes follows (as +CMQTTRXPAYLOAD: 0,<n>)
    if len(args) < 2:
        return None
    neg = args[1].startswith(b"-")
    d = args[1][1:] if neg else args[1]
    if not d or len(d) > 9 or any(c < 48 or c > 57 for c in d):
        return None
    n = int(d)
    return None if neg or n > FRAME_BUF else n


def _frame(rnd, n):
    return b"\r\n+RAWX: 0,%d\r\n" % n + rnd.bytes_from(_RAWY, n)


_STOREY = (b"", b"-", b"0", b"-0", b"7", b"-42", b"123456789", b"1234567890", b"-999999999",
           b'"5"', b" 12 ", b"x", b"1x", b"+3", b"\x00", b'"a,b"')


def _store_line(rnd):
    # "+STORE: ..." with 0..6 arguments: numbers, signs, 9 and 10 digits, quotes, junk
    args = [rnd.pick(_STOREY) for _ in range(rnd.next(7))]
    return b"\r\n+STORE:" + (b" " if rnd.next(2) else b"") + b",".join(args) + b"\r\n"


def _change_line(rnd):
    # "+CHG: ..." with 0..3 arguments from a small set: repeats are common, as CREG's are
    args = [rnd.pick((b"1", b"5", b"x", b"")) for _ in range(rnd.next(4))]
    return b"\r\n+CHG: " + b",".join(args) + b"\r\n"


_EVENTY = (b"0", b"1", b"", b"-1", b"7", b"x", b"123456789", b"1234567890", b'"0"')


def _event_line(rnd):
    # "+EVT: ..." (an event entry, as +CMQTTPUB: <idx>,<err>): 0..3 arguments
    args = [rnd.pick(_EVENTY) for _ in range(rnd.next(4))]
    return b"\r\n+EVT: " + b",".join(args) + b"\r\n"


def _state_line(rnd):
    # "+STA: ..." (a state entry, as +CREG: <stat> or the read form <n>,<stat>)
    args = [rnd.pick((b"1", b"5", b"2", b"x", b"", b"9", b"-3")) for _ in range(rnd.next(4))]
    return b"\r\n+STA: " + b",".join(args) + b"\r\n"


def _idle(rnd, parts, frame_len):
    k = rnd.next(10)
    if k == 0:
        for b in BOOT:
            parts.append(b)
    elif k <= 3:
        k = rnd.next(11)
        parts.append(rnd.pick(URCS) if k > 5 else _store_line(rnd) if k > 2 else
                     _change_line(rnd) if k == 0 else _event_line(rnd) if k == 1 else
                     _state_line(rnd) if k == 2 else b"\r\n+SEEN: %d\r\n" % rnd.next(3))
    elif k == 4:
        parts.append(_frame(rnd, frame_len))
    elif k == 5:
        parts.append(b"\r\n+LONG: " + b"y" * (LINE_MAX - 8 + rnd.next(300)) + b"\r\n")
    elif k == 6:  # a garbage line: NUL, 0xFF, lone CR, quotes, commas
        parts.append(b"\r\n+G" + rnd.bytes_from(_LINEY, rnd.next(60)) + b"\r\n")
    elif k == 7:
        parts.append(rnd.bytes_from(_ANY, rnd.next(200)) + b"\r\n")
    elif k == 8:
        parts.append(b"\r\n+RAWX: 1,%d\r\n" % rnd.next(40) + b"\r\n")  # announced: 0..39 bytes
    else:
        parts.append(b"\r" * rnd.next(3) + b"\n" * rnd.next(3) + b"\r\n")


def case(rnd, frame_len):
    """One case: a list of segments (command or None, bytes)."""
    segs = []
    for _ in range(1 + rnd.next(6)):
        parts = []
        if rnd.next(3) == 0:
            segs.append((None, None))  # idle: no command in flight
            for _ in range(1 + rnd.next(4)):
                _idle(rnd, parts, frame_len)
            segs[-1] = (None, b"".join(parts))
            continue
        if rnd.next(4) == 0:  # a prompt command
            c = (b"AT+CMQTTPAYLOAD=0,5", None, False, None, -1, True)
            if rnd.next(2):
                parts.append(b"AT+CMQTTPAYLOAD=0,5\r")
            parts.append(b"\r\n>" + (b" " if rnd.next(2) else b""))
            if rnd.next(3) == 0:
                _idle(rnd, parts, frame_len)
            parts.append(b"\r\n" + rnd.pick(FINALS) + b"\r\n")
            segs.append((c, b"".join(parts)))
            continue
        name, resp, bare, done = rnd.pick(CMDS)
        c = (name, resp, bare, done, rnd.next(2) if done else -1, False)
        if rnd.next(2):
            parts.append(name + b"\r")  # echo
        for _ in range(rnd.next(4)):
            r = rnd.next(5)
            if r == 0 and resp:
                parts.append(b"\r\n" + resp + b" 21,99\r\n")
            elif r == 1:
                parts.append(b"\r\n861234567890123\r\n")
            elif r == 2 and done:
                parts.append(b"\r\n" + done + b" %d,0\r\n" % rnd.next(2))
            else:
                _idle(rnd, parts, frame_len)
        parts.append(b"\r\n" + rnd.pick(FINALS) + b"\r\n")
        if done and rnd.next(2):
            parts.append(b"\r\n" + done + b" %d,%d\r\n" % (rnd.next(2), rnd.next(3)))
        if rnd.next(3) == 0:
            _idle(rnd, parts, frame_len)
        segs.append((c, b"".join(parts)))
    return segs


class _Stream:
    """readinto in random pieces of 1..max_chunk bytes."""

    def __init__(self, rnd):
        self.rnd = rnd
        self.data = b""
        self.pos = 0
        self.max_chunk = 1

    def readinto(self, buf):
        left = len(self.data) - self.pos
        if left <= 0:
            return None
        n = min(1 + self.rnd.next(self.max_chunk), left, len(buf))
        buf[0:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n

    def write(self, buf):
        return len(buf)


class Pair:
    """The engine and the reference, with the same URC entries recording the same events."""

    def __init__(self, rnd):
        self.stream = _Stream(rnd)
        self.at = at = Engine(self.stream, ring_size=2048, chunk_size=512, line_max=LINE_MAX,
                              resp_size=RESP_SIZE, resp_lines=RESP_LINES, max_args=MAX_ARGS)
        self.ref = ref = RefReader(LINE_MAX, MAX_ARGS, RESP_SIZE, RESP_LINES)
        self.events = []
        self.frame = bytearray(FRAME_BUF)
        entries = ((b"+CMQTTCONNLOST:", "connlost", -1, None),
                   (b"+CMQTTNONET", "nonet", -1, None),
                   (b"RDY", "rdy", -1, None), (b"+CPIN:", "cpin", 1, None),
                   (b"+CREG:", "creg", -1, None), (b"+CGEV: NW DEACT", "cgev", -1, None),
                   (b"+CGEV: ME", "cgev_me", -1, None), (b"+CMQTTPUB:", "pub", 2, None),
                   (b"+RAWX:", "rawx", -1, _arm_rawx), (b"+XYZ:", "xyz", 5, None),
                   (b"+XYZ:", "xyz_any", -1, None), (b"+LONG:", "long", -1, None),
                   (b"+CGNSSINFO:", "gnss", -1, None),
                   (b"+CSQ:", "csq", 2, None), (b"+COPS:", "cops", -1, None))
        for prefix, name, nargs, arm in entries:
            ref.on(prefix, name, nargs, arm)
            at.on(prefix, self._handler(name, arm), nargs)
        # a store entry (the reader parses arguments 0..3 itself, then calls the handler)
        ref.on(b"+STORE:", "store", -1, None, (0, 3))
        self.num = num = array("i", [0] * 5)
        at.on_store(b"+STORE:", num, 0, 3, 0, 4, then=self._stored)
        # a change entry: arguments 0..1 and the count stored, the handler only on a change
        ref.on(b"+CHG:", "chg", -1, None, (0, 1), change=True)
        self.chg = chg = array("i", [0] * 3)
        at.on_store(b"+CHG:", chg, 0, 1, 0, then=self._changed, on_change=2)
        # event, state and seen entries: what they post is compared in ``posted``
        self.queue = EventQueue(4096)
        self.posted = []
        self.count = {"evt": 0}
        self.evn = evn = array("i", [0] * 3)  # evn[2]: the event entry's gate
        ref.on(b"+EVT:", "evt", -1, None, (0, 1), event=(11, 0, 0x7FFFFFFF))
        at.on_event(b"+EVT:", evn, 0, 1, 0, self.queue, 11, self._evt, match=0, gate=2,
                    gate_value=0, count=(self.count, "evt"))
        self.values = [-1]  # the engine's state list and the reference's
        self.ref_values = [-1]
        ref.on(b"+STA:", "sta", -1, None, (0, 1), change=True,
               state=(12, 2, 5, self.ref_values, 0))
        self.sta = sta = array("i", [0] * 3)
        at.on_state(b"+STA:", sta, 0, 1, 0, self._sta, 2, self.queue, 12, self.values, 0,
                    alt_count=2, max_value=5)
        self.seen = array("i", [0])
        ref.on(b"+SEEN:", "seen", -1, None, seen=6)
        at.on_seen(b"+SEEN:", self._handler("seen", None), self.seen, 0, 6)
        at.on_unknown = self._unknown
        at.on_raw = self._raw

    def _handler(self, name, arm):
        at = self.at

        def h(a):
            args = tuple(a.arg_bytes(i) for i in range(a.count()))
            self.events.append(("urc", name, a.bytes(), at.tok.truncated, args))
            if arm is not None:
                n = arm(args)
                if n is not None and n >= 0:
                    at.tok.arm_raw(self.frame, 0, n)
        return h

    def _stored(self, a):
        n = self.num
        self.events.append(("store", "store", a.bytes(), self.at.tok.truncated,
                            (n[0], n[1], n[2], n[3])))

    def _changed(self, a):
        n = self.chg
        self.events.append(("store", "chg", a.bytes(), self.at.tok.truncated, (n[0], n[1])))

    def _evt(self, a):
        n = self.evn
        self.events.append(("store", "evt", a.bytes(), self.at.tok.truncated, (n[0], n[1])))

    def _sta(self, a):
        n = self.sta
        self.events.append(("store", "sta", a.bytes(), self.at.tok.truncated, (n[0], n[1])))

    def set_world(self, k):
        """What the entries test, per case: the event gate and the seen word (both readers)."""
        self.evn[2] = 1 if k == 3 else 0
        self.ref.gate_open = k != 3
        self.seen[0] = self.ref.seen_word = (0, 6, 2, 7)[k]

    def _unknown(self, a):
        self.events.append(("unknown", a.bytes(), self.at.tok.truncated))

    def _raw(self, kind):
        self.events.append(("raw", bytes(self.frame[:self.at.tok.raw_off])))

    def segment(self, c, data, max_chunk):
        at = self.at
        ref = self.ref
        if c is not None:
            at.begin(*c)
            ref.begin(*c)
        e0 = at.echoes
        p0 = at.tok.prompts
        st = self.stream
        st.data = data
        st.pos = 0
        st.max_chunk = max_chunk
        while st.pos < len(data):
            at.pump()
        q = self.queue
        while True:
            k = q.get()
            if k < 0:
                break
            self.posted.append((k, q.a, q.b))
        ref.feed(data)
        got = None
        want = None
        if c is not None:
            r = at.resp
            got = (at.echoes - e0, at.tok.prompts - p0,
                   [r.line(i).bytes() for i in range(r.count)], r.done, r.final, r.code)
            rc = ref.cmd
            want = (rc["echoes"], rc["prompts"], rc["lines"], rc["done_at"], rc["final"],
                    rc["code"])
            at.end()
            ref.end()
        return got, want


def run(seed, total_bytes, log=None):
    """Cases until ``total_bytes`` were read by each reader; returns (cases, bytes)."""
    rnd = Rand(seed)
    p = Pair(Rand(seed + 1))
    done = 0
    cases = 0
    evts = 0
    frame_len = 0
    while done < total_bytes:
        p.set_world(cases % 4)
        max_chunk = CHUNK_MAX[cases % len(CHUNK_MAX)]
        if cases % 97 == 96:
            max_chunk = 1 + rnd.next(512)
        for c, data in case(rnd, frame_len):
            frame_len = (frame_len + 1) % 700  # every frame length from 0 up, in turn
            got, want = p.segment(c, data, max_chunk)
            done += len(data)
            if got != want:
                raise AssertionError("seed %d case %d command %r: engine %r reference %r"
                                     % (seed, cases, c, got, want))
        # a frame still armed (announced longer than what followed) takes filler bytes
        pad = p.ref.raw_left
        p.segment(None, b"." * pad + b"\r\n", max_chunk)
        done += pad + 2
        if p.events != p.ref.events:
            i = 0
            while i < min(len(p.events), len(p.ref.events)) and p.events[i] == p.ref.events[i]:
                i += 1
            raise AssertionError("seed %d case %d chunk %d: event %d differs: engine %r "
                                 "reference %r" % (seed, cases, max_chunk, i,
                                                   p.events[i:i + 2], p.ref.events[i:i + 2]))
        if p.posted != p.ref.posted or p.values != p.ref_values:
            raise AssertionError("seed %d case %d: posted events differ: engine %r %r "
                                 "reference %r %r" % (seed, cases, p.posted, p.values,
                                                      p.ref.posted, p.ref_values))
        evts += sum(1 for e in p.posted if e[0] == 11)
        if p.count["evt"] != evts:
            raise AssertionError("seed %d case %d: event count %d, %d posted"
                                 % (seed, cases, p.count["evt"], evts))
        p.posted = []
        p.ref.posted = []
        # every case ends on a line boundary with no frame armed: a plain OK parses in both
        got, want = p.segment((b"AT", None, False, None, -1, False), b"AT\r\r\nOK\r\n", max_chunk)
        if got != want or got[4] != R_OK:
            raise AssertionError("seed %d case %d: OK after the case: engine %r reference %r"
                                 % (seed, cases, got, want))
        p.events = []
        p.ref.events = []
        cases += 1
        if log is not None and cases % 200 == 0:
            log(cases, done)
    return cases, done
