"""The AT command engine: owns the modem stream, one command in flight, URC dispatch.

Data path (no allocation per byte or per line): ``pump()`` reads the stream
with ``readinto`` into a fixed chunk; ``_dispatch`` (viper) copies it into the
``RingBuffer`` and takes tokens from the ``Tokenizer`` until none is left.
Each line goes, in this order, to:

1. the echo of the command in flight (skipped: echo is tolerated, never needed);
2. the in-flight command: its declared response prefix, its completion URC
   (two-phase commands), or a final result code (``OK``, ``ERROR``,
   ``+CME ERROR: <n>``, ``+CMS ERROR: <n>``, ``NO CARRIER``, ``BUSY``,
   ``NO ANSWER``, ``NO DIALTONE``, ``CONNECT``; manual 003 s.25.1).  Once the
   final code is in, only the completion URC still belongs to the command;
3. the URC table: ``on(prefix, handler, nargs)``, looked up by a hash of the
   line head and confirmed by prefix (and argument count when given).
   Handlers get the tokenizer's ``Args`` view and may only record state or
   enqueue events: they must never send commands (they run inside the reader).
   A handler that raises is counted (``handler_errors``); the reader goes on;
4. with ``bare=True`` on the command in flight, any other line is part of its
   answer (``AT+CGSN`` answers a bare IMEI); otherwise it is counted as
   unknown and handed to ``on_unknown``.

Response lines are copied into a preallocated store (``Response``) that the
caller reads after ``await cmd(...)`` returns; it is valid until the next
command.  Commands are asyncio coroutines; the reader runs as its own task
(``run()``), so no call blocks the loop.
"""

import asyncio
from array import array

from .compat import (
    micropython,
    ptr8,
    ptr32,
    ThreadSafeFlag,
    const,
    sleep_ms,
    ticks_add,
    ticks_diff,
    ticks_ms,
    wait_for_ms,
    wait_readable,
    wait_writable,
)
from . import log as alog
from .errors import ATError, ATTimeout, ModemError
from .ring import RingBuffer
from .tokenizer import (
    Args,
    Tokenizer,
    _copy,
    _scan,
    head_hash,
)


# Final result kinds (Response.final)
R_PENDING = const(0)
R_OK = const(1)
R_ERROR = const(2)  # plain ERROR
R_CME = const(3)  # +CME ERROR: <code>
R_CMS = const(4)  # +CMS ERROR: <code>
R_NO_CARRIER = const(5)
R_BUSY = const(6)
R_NO_ANSWER = const(7)
R_NO_DIALTONE = const(8)
R_CONNECT = const(9)
R_ABORTED = const(10)  # abort() from a URC handler (connection lost, modem reboot)

_FINALS = (
    (b"OK", R_OK),
    (b"ERROR", R_ERROR),
    (b"+CME ERROR", R_CME),
    (b"+CMS ERROR", R_CMS),
    (b"NO CARRIER", R_NO_CARRIER),
    (b"BUSY", R_BUSY),
    (b"NO ANSWER", R_NO_ANSWER),
    (b"NO DIALTONE", R_NO_DIALTONE),
    (b"CONNECT", R_CONNECT),
)

_FINAL_TEXT = (b"", b"OK", b"ERROR", b"+CME ERROR", b"+CMS ERROR", b"NO CARRIER", b"BUSY",
               b"NO ANSWER", b"NO DIALTONE", b"CONNECT")

_FINAL_LEN = tuple(len(t) for t in _FINAL_TEXT)  # read per line: no len() there

FINAL_NAMES = ("PENDING", "OK", "ERROR", "CME", "CMS", "NO CARRIER", "BUSY", "NO ANSWER",
               "NO DIALTONE", "CONNECT", "ABORTED")

# Phases of the in-flight command
_IDLE = const(0)
_WAIT_PROMPT = const(1)
_WAIT_FINAL = const(2)
_WAIT_DONE = const(3)

DEFAULT_TIMEOUT_MS = const(3000)

# Token kinds and indices into the tokenizer's state array, as local constants: an
# imported name is a dictionary lookup at every use (tokenizer.T_*/S_*; a test keeps
# them equal).
_T_NONE = const(0)
_T_LINE = const(1)
_T_PROMPT = const(2)
_T_RAW = const(3)
_T_LOST = const(4)
_S_FLAGS = const(1)
_S_LEN = const(4)
_S_HEAD = const(5)
_S_RAW_LEFT = const(10)
_F_PROMPT = const(1)
_A_E = const(1)
_A_ARGC = const(2)


# Response state, one int array: the reader writes it without attribute stores.
_R_COUNT = const(0)
_R_USED = const(1)
_R_FINAL = const(2)
_R_CODE = const(3)
_R_DONE = const(4)
_R_OVERFLOW = const(5)


def _check_stream(s):
    """Refuse, saying what is taken, a stream the reader cannot use (at construction, not
    at the first read inside a task).  None is fed through ``pump()`` only (tests)."""
    if s is not None and not (hasattr(s, "readinto") and hasattr(s, "write")):
        raise TypeError("Engine takes a stream with non-blocking readinto()/write() (a "
                        "machine.UART(..., timeout=0), a socket, a pty; on CPython "
                        "atmq.wiring.stream_of(sock) adapts a socket); got %s"
                        % type(s).__name__)


class Response:
    """Lines stored for the last command, and its outcome (read-only views).

    ``final`` is one of the ``R_*`` kinds (``ok``: it is ``R_OK``) and ``code``
    the number of a ``+CME``/``+CMS ERROR`` (``-1`` when verbose or absent).
    ``line(i)`` positions and returns an ``Args`` view of stored line ``i``;
    ``done`` is the index of the completion URC of a two-phase command (``-1``:
    none); ``overflow`` counts lines that did not fit.
    """

    def __init__(self, size=1024, max_lines=16, max_args=24):
        self.buf = bytearray(size)
        self.spans = array("H", bytes(4 * max_lines))
        self.max_lines = max_lines
        self.args = Args(self.buf, max_args)
        self.st = array("i", (0, 0, R_PENDING, -1, -1, 0))

    @property
    def count(self):
        return self.st[_R_COUNT]

    @property
    def final(self):
        return self.st[_R_FINAL]

    @property
    def ok(self):
        return self.st[_R_FINAL] == R_OK

    @property
    def code(self):
        return self.st[_R_CODE]

    @property
    def done(self):
        return self.st[_R_DONE]

    @property
    def overflow(self):
        return self.st[_R_OVERFLOW]

    @micropython.native
    def add(self, src, s, e):
        st = self.st
        n = e - s
        i = st[_R_COUNT]
        used = st[_R_USED]
        if i >= self.max_lines or used + n > len(self.buf):
            st[_R_OVERFLOW] += 1
            return -1
        _copy(src, s, self.buf, used, n)
        sp = self.spans
        sp[2 * i] = used
        sp[2 * i + 1] = used + n
        st[_R_USED] = used + n
        st[_R_COUNT] = i + 1
        return i

    @micropython.native
    def line(self, i=0):
        a = self.args
        if i < 0 or i >= self.st[_R_COUNT]:
            a.set(0, 0)
        else:
            a.set(self.spans[2 * i], self.spans[2 * i + 1])
        return a

    @micropython.native
    def find(self, prefix):
        """Args of the first stored line starting with ``prefix``, or None."""
        for i in range(self.st[_R_COUNT]):
            a = self.line(i)
            if a.startswith(prefix):
                return a
        return None


class Engine:
    """See the module docstring.  No properties on this class: on MicroPython a class
    with a property makes every attribute store on its instances look the class up
    first (about a thousand instructions each), and the reader stores per line."""

    def __init__(self, stream, ring_size=2048, chunk_size=256, line_max=512, resp_size=1024,
                 resp_lines=16, max_args=24, tx_max=600):
        if chunk_size > ring_size:
            raise ValueError("chunk_size must not exceed ring_size")
        _check_stream(stream)
        self.stream = stream
        self.ring = RingBuffer(ring_size)
        self.tok = Tokenizer(self.ring, line_max, max_args)
        self.resp = Response(resp_size, resp_lines, max_args)
        self._chunk = bytearray(chunk_size)
        self._tx = bytearray(tx_max + 1)
        self._txmv = memoryview(self._tx)
        self.tx_max = tx_max
        self._flag = ThreadSafeFlag()
        self._waiting = False  # a command coroutine is parked on _flag
        self._lock = asyncio.Lock()
        # URC table: parallel lists (head hash -> first entry, prefix, its length, nargs,
        # handler, next entry with the same head).
        self._urc = urc = ({}, [], [], [], [], [])
        final_of = {}
        for p, kind in _FINALS:
            final_of[head_hash(p, 0, len(p))] = kind
        # What process() needs on every call, in one tuple: one attribute load and an
        # unpack instead of a dozen attribute loads per read (all fixed at construction).
        tok = self.tok
        self._hot = (tok, tok.args, tok.args.v, tok.line, tok.st, self.ring, self.ring.buf,
                     self.ring.idx, self.resp, self.resp.st, final_of) + urc
        self.on_unknown = None  # handler(args) for lines nobody claimed (logging)
        self.on_raw = None  # handler(kind) for T_RAW / T_LOST tokens (the arming driver's)
        self.tap = None  # object with rx(buf, n) and tx(data): transcript capture
        # in-flight command
        self._phase = _IDLE
        self._cmd = None  # bytes of the command (echo match)
        self._resp_prefix = None
        self._bare = False
        self._done_prefix = None
        self._done_arg = -1
        self._done_seen = False
        self._prompted = False
        # counters
        self.eof = False
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.urcs = 0
        self.unknown = 0
        self.echoes = 0
        self.commands = 0
        self.timeouts = 0
        self.errors = 0
        self.handler_errors = 0  # URC handlers that raised (counted, the reader goes on)
        self.last_handler_error = None

    # ---- URC table -------------------------------------------------------------------------

    def on(self, prefix, handler, nargs=-1):
        """Route lines starting with ``prefix`` (with ``nargs`` arguments, if >= 0) to ``handler``.

        The table key is the line head up to ``:`` so prefixes are given with it
        (``b"+CMQTTCONNLOST:"``) or as the whole line (``b"RDY"``).  Entries that
        share a head are tried in registration order.
        """
        h = head_hash(prefix, 0, len(prefix))
        head, prefixes, plen, nargs_, fns, nxt = self._urc
        i = len(prefixes)
        prefixes.append(prefix)
        plen.append(len(prefix))
        nargs_.append(nargs)
        fns.append(handler)
        nxt.append(-1)
        j = head.get(h, -1)
        if j < 0:
            head[h] = i
        else:
            while nxt[j] >= 0:
                j = nxt[j]
            nxt[j] = i

    # ---- reader ----------------------------------------------------------------------------

    def feed(self, data):
        """Push bytes in directly (tests, or a transport that is not a stream)."""
        n = len(data)
        off = 0
        while off < n:
            k = self.ring.put(memoryview(data)[off:], n - off) if off else self.ring.put(data, n)
            off += k
            self.process()
            if k == 0:
                break

    def process(self):
        """Take every token the ring holds and dispatch it (the order is in the module doc)."""
        self.pump(False)

    @micropython.native
    def pump(self, read=True):
        """Read what the stream has, then tokenize and dispatch every token the ring holds.

        Returns the bytes read: 0 when nothing was waiting (or ``read`` is False),
        -1 at end of stream (a socket or pty whose far end closed).  A URC handler
        that raises is counted (``handler_errors``, ``last_handler_error``) and
        dispatch goes on with the next token.
        """
        ns = 0
        chunk = self._chunk
        if read:
            ns = self.stream.readinto(chunk)
            if ns is None:
                return 0  # nothing new; the ring is always left empty
            if ns == 0:
                self.eof = True
                return -1
            self.rx_bytes += ns
            tap = self.tap
            if tap is not None:
                tap.rx(chunk, ns)
        n = ns
        left = -1
        while True:
            try:
                self._dispatch(chunk, n)
                return ns
            except Exception as e:  # a broken handler must not stop the reader
                held = self.ring.idx[1]
                if held == left:
                    raise e  # nothing consumed since the last one: the reader's own fault
                left = held
                self.handler_errors += 1
                self.last_handler_error = e
                n = 0  # its line is consumed; carry on with the bytes already in the ring

    @micropython.viper
    def _dispatch(self, src, ns: int):
        """Put ``ns`` bytes of ``src`` into the ring, then dispatch every token it holds.

        Viper, with the state arrays as ``ptr32``: on MicroPython a call costs
        hundreds of instructions and an array subscript or attribute lookup a couple
        of hundred, and this runs for every read and every line.  Command state
        cannot change while it runs (commands start and end in their coroutines;
        handlers only record, and ``abort()`` only sets the final code).  Empty
        prefixes count as none.
        """
        (tok, a, av_o, buf, st_o, ring, rbuf, idx_o, r, rst_o, final_of,
         urc_head, urc_prefix, urc_plen, urc_nargs, urc_fn, urc_next) = self._hot
        av = ptr32(av_o)
        st = ptr32(st_o)
        idx = ptr32(idx_o)
        rst = ptr32(rst_o)
        if ns > 0:
            held = idx[1]
            mask = idx[2]
            if ns > mask + 1 - held:
                ring.put(src, ns)  # overflow: the ring's own path drops and counts it
            else:
                rb = ptr8(rbuf)
                s8 = ptr8(src)
                w = (idx[0] + held) & mask
                i = 0
                while i < ns:
                    rb[w] = s8[i]
                    w = (w + 1) & mask
                    i += 1
                idx[1] = held + ns
        phase = int(self._phase)
        cmd = self._cmd or b""  # "or": bytes for the type checker, and no prefix is b""
        resp_p = self._resp_prefix or b""
        done_p = self._done_prefix or b""
        ncmd = -1
        nresp = -1
        ndone = -1
        if phase != _IDLE:
            if cmd:
                ncmd = int(len(cmd))
            if resp_p:
                nresp = int(len(resp_p))
            if done_p:
                ndone = int(len(done_p))
        final_text = _FINAL_TEXT
        final_len = _FINAL_LEN
        scan = _scan
        while True:
            if st[_S_RAW_LEFT] or idx[3]:
                t = int(tok.next())  # raw frames and resync: the tokenizer's slow path
            elif idx[1]:
                # the common path of Tokenizer.next, without its call
                t = int(scan(rbuf, idx_o, buf, st_o))
                if t == _T_LINE:
                    av[_A_E] = st[_S_LEN]
                    av[_A_ARGC] = -1
            else:
                t = _T_NONE
            if t == _T_LINE:
                n = st[_S_LEN]
                h = st[_S_HEAD]
                pending = False
                if phase != _IDLE:
                    pending = rst[_R_FINAL] == R_PENDING
                    if pending:
                        if n == ncmd and buf.startswith(cmd):
                            ncmd = -1  # one echo per command
                            self._cmd = None
                            self.echoes = int(self.echoes) + 1
                            continue
                        if n >= nresp and nresp >= 0 and buf.startswith(resp_p):
                            r.add(buf, 0, n)
                            continue
                    # A two-phase completion may come before or after the final code;
                    # once the command is answered nothing else belongs to it, whatever
                    # arrives before its coroutine resumes.
                    if n >= ndone and ndone >= 0 and buf.startswith(done_p) \
                            and not self._done_seen:
                        da = int(self._done_arg)
                        if da < 0 or int(a.arg_int(0)) == da:
                            rst[_R_DONE] = int(r.add(buf, 0, n))
                            self._done_seen = True
                            if self._waiting:
                                self._flag.set()
                            continue
                    if pending:
                        kind = int(final_of.get(h, 0))
                        if kind:
                            m = int(final_len[kind])
                            if (n == m or (n > m and kind >= R_CME and kind <= R_CMS)) \
                                    and buf.startswith(final_text[kind]):
                                rst[_R_FINAL] = kind
                                if kind == R_CME or kind == R_CMS:
                                    rst[_R_CODE] = int(a.arg_int(0))
                                if self._waiting:
                                    self._flag.set()
                                continue
                i = int(urc_head.get(h, -1))
                while i >= 0:
                    if n >= int(urc_plen[i]) and buf.startswith(urc_prefix[i]):
                        k = int(urc_nargs[i])
                        if k < 0 or int(a.count()) == k:
                            self.urcs = int(self.urcs) + 1
                            urc_fn[i](a)  # if it raises, pump() counts it and goes on
                            break
                    i = int(urc_next[i])
                if i >= 0:  # a handler took it
                    continue
                if pending and self._bare:
                    r.add(buf, 0, n)
                    continue
                self.unknown = int(self.unknown) + 1
                unk = self.on_unknown
                if unk:
                    unk(a)
            elif t == _T_NONE:
                return
            elif t == _T_PROMPT:
                if phase == _WAIT_PROMPT:
                    self._prompted = True
                    if self._waiting:
                        self._flag.set()
            elif t == _T_RAW or t == _T_LOST:
                on_raw = self.on_raw
                if on_raw:
                    on_raw(t)

    async def run(self):
        """The reader task: the only code that reads the stream."""
        s = self.stream
        while True:
            n = self.pump()
            if n > 0:
                await sleep_ms(0)  # a modem that never pauses must not starve the other tasks
            elif n == 0:
                await wait_readable(s)
            else:
                await sleep_ms(200)  # far end gone: poll slowly, the driver's probe notices

    @micropython.native
    def _wake(self):
        # ThreadSafeFlag.set is interpreted Python on MicroPython: only pay for it
        # when a command coroutine is actually parked.
        if self._waiting:
            self._flag.set()

    def abort(self):
        """Fail the command in flight now (from a URC handler: link lost, modem rebooted)."""
        if self._phase != _IDLE:
            self.resp.st[_R_FINAL] = R_ABORTED
            self._wake()

    # ---- commands --------------------------------------------------------------------------

    async def cmd(self, cmd, resp=None, timeout_ms=DEFAULT_TIMEOUT_MS, bare=False, done=None,
                  done_arg=-1, done_timeout_ms=DEFAULT_TIMEOUT_MS, payload=None,
                  prompt_timeout_ms=DEFAULT_TIMEOUT_MS, check=True, payload_chunk=0,
                  payload_gap_ms=0):
        """Send ``cmd`` (bytes, without CR) and wait for its outcome; returns ``self.resp``.

        ``resp``: prefix of the information lines to keep (e.g. ``b"+CSQ:"``).
        ``bare``: also keep lines that are neither final codes nor URCs.
        ``done``/``done_arg``: a two-phase command completes with this URC
        (``b"+CMQTTCONNECT:"``, first argument ``done_arg``) after ``OK``; it may
        also come before the ``OK``.  ``payload``: wait for the ``>`` prompt,
        write exactly these bytes, then wait for the final code; ``payload_chunk``
        > 0 writes it in pieces of at most that many bytes with ``payload_gap_ms``
        between them (AT+CCERTDOWN: "every packet ... no larger than 3072 bytes").
        With ``check`` a final other than OK raises ``ModemError`` (``ATError``
        for a plain ERROR); a deadline raises ``ATTimeout``.
        """
        n = len(cmd)
        if n > self.tx_max:
            raise ValueError("AT command of %d bytes exceeds tx_max %d" % (n, self.tx_max))
        if cmd.find(b"\r") >= 0 or cmd.find(b"\n") >= 0:
            raise ValueError("AT command must not contain CR or LF")
        async with self._lock:
            r = self.resp
            tx = self._tx
            tx[0:n] = cmd
            tx[n] = 13
            self.begin(cmd, resp, bare, done, done_arg, payload is not None)
            try:
                await self._write(self._txmv, n + 1)
                if payload is not None:
                    await self._wait(self._prompt_or_final, prompt_timeout_ms, cmd)
                    if self._prompted:
                        self._phase = _WAIT_FINAL
                        await self._write_payload(payload, payload_chunk, payload_gap_ms)
                await self._wait(self._has_final, timeout_ms, cmd)
                if done is not None and r.final == R_OK and not self._done_seen:
                    self._phase = _WAIT_DONE
                    await self._wait(self._has_done, done_timeout_ms, cmd)
            finally:
                self.end()
            if check and r.final != R_OK:
                self.errors += 1
                e = self.error(cmd)
                alog.info("at", "%s", alog.exc(e))  # callers decide; often expected
                raise e
            return r

    @micropython.viper
    def begin(self, cmd, resp, bare, done, done_arg, prompt):
        """Put a command in flight (the bytes are written by the caller); no allocation.

        Arguments as for ``cmd()``, all six given (viper has no defaults); ``prompt``
        is true for a command that waits for ``>``.
        """
        self.commands = int(self.commands) + 1
        hot = self._hot
        rst = ptr32(hot[9])  # empty the Response (its state array): every command
        rst[_R_COUNT] = 0
        rst[_R_USED] = 0
        rst[_R_FINAL] = R_PENDING
        rst[_R_CODE] = -1
        rst[_R_DONE] = -1
        rst[_R_OVERFLOW] = 0
        self._cmd = cmd
        self._resp_prefix = resp
        self._bare = bare
        self._done_prefix = done
        self._done_arg = done_arg
        self._done_seen = False
        self._prompted = False
        if prompt:
            self._phase = _WAIT_PROMPT
            st = ptr32(hot[4])
            st[_S_FLAGS] = st[_S_FLAGS] | _F_PROMPT
        else:
            self._phase = _WAIT_FINAL

    @micropython.viper
    def end(self):
        """The command in flight is over (answered, failed or abandoned)."""
        st = ptr32(self._hot[4])  # Tokenizer.arm_prompt(False), inline
        st[_S_FLAGS] = st[_S_FLAGS] & (0xFFFF ^ _F_PROMPT)
        self._phase = _IDLE
        self._cmd = None
        self._resp_prefix = None
        self._done_prefix = None

    def error(self, cmd):
        """The exception for the current failed response (used by drivers too)."""
        r = self.resp
        if r.final == R_CME:
            return ModemError("CME", r.code, cmd)
        if r.final == R_CMS:
            return ModemError("CMS", r.code, cmd)
        if r.final == R_ABORTED:
            return ModemError("AT", -2, cmd)
        e = ATError(cmd)
        e.final = FINAL_NAMES[r.final]
        return e

    def _prompt_or_final(self):
        return self._prompted or self.resp.final != R_PENDING

    def _has_final(self):
        return self.resp.final != R_PENDING

    def _has_done(self):
        return self._done_seen or self.resp.final == R_ABORTED

    async def _wait(self, cond, timeout_ms, cmd):
        deadline = ticks_add(ticks_ms(), timeout_ms)
        while not cond():
            left = ticks_diff(deadline, ticks_ms())
            if left <= 0:
                self.timeouts += 1
                e = ATTimeout(cmd, timeout_ms)
                # the field log: every timeout once; a bare "AT" is a liveness probe, where
                # no answer is itself the answer (a modem still booting)
                (alog.info if cmd == b"AT" else alog.warn)("at", "%s", alog.exc(e))
                raise e
            self._flag.clear()
            if cond():  # the reader may have run between the check and the clear
                break
            self._waiting = True
            try:
                await wait_for_ms(self._flag.wait(), left)
            except asyncio.TimeoutError:
                pass
            finally:
                self._waiting = False

    async def _write(self, buf, n):
        if self.tap is not None:
            self.tap.tx(buf, n)
        mv = memoryview(buf)
        off = 0
        s = self.stream
        while off < n:
            k = s.write(mv[off:n])
            if k:
                off += k
            else:
                await wait_writable(s)
        self.tx_bytes += n

    async def _write_payload(self, payload, chunk, gap_ms):
        n = len(payload)
        if chunk <= 0 or n <= chunk:
            await self._write(payload, n)
            return
        mv = memoryview(payload)
        off = 0
        while off < n:
            k = min(chunk, n - off)
            await self._write(mv[off:off + k], k)
            off += k
            if off < n and gap_ms > 0:
                await sleep_ms(gap_ms)

    async def write_raw(self, data):
        """Write bytes outside any command (wake-up sequences, escape ``+++``)."""
        async with self._lock:
            await self._write(data, len(data))
