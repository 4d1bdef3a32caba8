"""The AT command engine: commands, their timeouts, and the URC table's registration.

The reading itself (ring, tokenizer, dispatch of every line to the command in
flight or the URC table, raw frames) is ``atmq.reader``: the engine owns one
``Reader`` and puts commands in flight on it.  Lines go, in this order, to:
the echo of the command in flight (skipped); its declared response prefix, its
completion URC (two-phase commands) or a final result code (``OK``, ``ERROR``,
``+CME ERROR: <n>``, ``+CMS ERROR: <n>``, ``NO CARRIER``, ``BUSY``, ``NO
ANSWER``, ``NO DIALTONE``, ``CONNECT``; manual 003 s.25.1); the URC table
(``on(prefix, handler, nargs)`` or ``on_store(...)``); with ``bare=True`` any
other line is part of the answer (``AT+CGSN`` answers a bare IMEI); else it is
counted as unknown and handed to ``on_unknown``.  Handlers get the ``Args``
view and may only record state or enqueue events: they must never send
commands (they run inside the reader).  A handler that raises is counted
(``handler_errors``); the reader goes on.

Response lines are copied into a preallocated store (``Response``) that the
caller reads after ``await cmd(...)`` returns; it is valid until the next
command.  Commands are asyncio coroutines; the reader runs as its own task
(``run()``), so no call blocks the loop.
"""

import asyncio

from .compat import (
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
from .reader import (  # noqa: F401  (R_*, Args, Response: the engine's public names)
    FINAL_NAMES,
    R_ABORTED,
    R_BUSY,
    R_CME,
    R_CMS,
    R_CONNECT,
    R_ERROR,
    R_NO_ANSWER,
    R_NO_CARRIER,
    R_NO_DIALTONE,
    R_OK,
    R_PENDING,
    Args,
    Reader,
    Response,
    RingView,
    TokenizerView,
    commit_spec,
    event_spec,
    frame_spec,
    seen_spec,
    start_spec,
    state_spec,
    store_spec,
)

_K_SEEN = const(8)  # = atmq.reader.K_SEEN
_K_STORE_CHANGE = const(4)  # = atmq.reader.K_STORE_CHANGE
_K_STORE_COMMIT = const(7)  # = atmq.reader.K_STORE_COMMIT
_K_STORE_EVENT = const(6)  # = atmq.reader.K_STORE_EVENT
_K_STORE_START = const(5)  # = atmq.reader.K_STORE_START
_K_STORE_STATE = const(9)  # = atmq.reader.K_STORE_STATE
_PH_IDLE = const(0)  # = atmq.reader.PH_IDLE
_PH_FINAL = const(2)  # = atmq.reader.PH_FINAL
_PH_DONE = const(3)  # = atmq.reader.PH_DONE
_DEFAULT_TIMEOUT_MS = const(3000)
# While a raw frame is armed the reader task polls at this period instead of parking on the
# stream, so a frame the modem never finishes is abandoned at its deadline (issue 10 #3).
_RAW_POLL_MS = const(20)
# 003 s.4 "Combining AT commands": the command line buffer takes at most 3071 characters,
# else none of it executes and the modem answers ERROR.  tx_max may not exceed it.
CMD_LINE_MAX = const(3071)


def _check_stream(s):
    """Refuse, saying what is taken, a stream the reader cannot use (at construction, not
    at the first read inside a task).  None is fed through ``pump()`` only (tests)."""
    if s is not None and not (hasattr(s, "readinto") and hasattr(s, "write")):
        raise TypeError("Engine takes a stream with non-blocking readinto()/write() (a "
                        "machine.UART(..., timeout=0), a socket, a pty; on CPython "
                        "atmq.wiring.stream_of(sock) adapts a socket); got %s"
                        % type(s).__name__)


class CommandTooLong(ValueError):
    """A command longer than the engine's ``tx_max``: refused before a byte is written."""


class Engine:
    """See the module docstring.  ``ring``, ``tok`` and ``resp`` are the reader's views;
    ``reader`` the ``Reader`` itself (``pump``/``process`` are its methods)."""

    def __init__(self, stream, ring_size=2048, chunk_size=256, line_max=512, resp_size=1024,
                 resp_lines=16, max_args=24, tx_max=600, baud=115200):
        if tx_max < 2 or tx_max > CMD_LINE_MAX:
            raise ValueError("tx_max must be 2..%d (003 s.4 command line buffer)" % CMD_LINE_MAX)
        _check_stream(stream)
        self._flag = ThreadSafeFlag()
        self.reader = rd = Reader(stream, self._flag, ring_size, chunk_size, line_max,
                                  resp_size, resp_lines, max_args, baud)
        self.ring = RingView(rd)
        self.tok = TokenizerView(rd)
        self.resp = rd.resp
        self.pump = rd.pump  # the reader's own method: no extra call per read
        self._tx = bytearray(tx_max + 1)
        self._txmv = memoryview(self._tx)
        self.tx_max = tx_max
        self._lock = asyncio.Lock()
        self._paused = False  # pause() holds the lock until resume()
        self.tx_bytes = 0
        self.commands = 0
        self.timeouts = 0
        self.errors = 0

    # ---- what the reader counts and calls (read and set through the engine) ---------------

    @property
    def stream(self):
        return self.reader.stream

    @stream.setter
    def stream(self, s):
        self.reader.stream = s

    @property
    def on_raw(self):
        """handler(kind) for T_RAW / T_LOST tokens (the arming driver's)."""
        return self.reader.hooks[0]

    @on_raw.setter
    def on_raw(self, fn):
        self.reader.hooks[0] = fn

    @property
    def on_unknown(self):
        """handler(args) for lines nobody claimed (logging)."""
        return self.reader.hooks[1]

    @on_unknown.setter
    def on_unknown(self, fn):
        self.reader.hooks[1] = fn

    @property
    def tap(self):
        """Object with rx(buf, n) and tx(data): transcript capture."""
        return self.reader.hooks[2]

    @tap.setter
    def tap(self, t):
        self.reader.hooks[2] = t

    @property
    def rx_bytes(self):
        return self.reader.rx_bytes

    @property
    def eof(self):
        return self.reader.eof

    @property
    def urcs(self):
        return self.reader.urcs()

    @property
    def unknown(self):
        return self.reader.unknown()

    @property
    def echoes(self):
        return self.reader.echoes()

    @property
    def handler_errors(self):
        return self.reader.handler_errors

    @property
    def last_handler_error(self):
        return self.reader.last_handler_error

    # ---- URC table -------------------------------------------------------------------------

    def on(self, prefix, handler, nargs=-1):
        """Route lines starting with ``prefix`` (with ``nargs`` arguments, if >= 0) to ``handler``.

        The table key is the line head up to ``:`` so prefixes are given with it
        (``b"+CMQTTCONNLOST:"``) or as the whole line (``b"RDY"``).  Entries that
        share a head are tried in registration order.
        """
        if not prefix or handler is None:
            raise ValueError("on() needs a prefix and a handler")
        self.reader.add_urc(prefix, handler, nargs)

    def on_seen(self, prefix, handler, target, slot, bits, nargs=-1):
        """Route ``prefix`` lines to ``handler`` as ``on`` does, except when
        ``target[slot]`` (an ``array("i")``) holds every bit of ``bits``: then the line is
        counted and nothing runs (a boot report whose every effect the owner recorded
        already: ``SMS DONE`` again, ``+CPIN: READY`` while the SIM is known ready).  The
        owner keeps those bits true (it clears one when the effect must happen again)."""
        if not prefix or handler is None or slot < 0 or slot >= len(target) or bits <= 0:
            raise ValueError("on_seen(): a prefix, a handler, a slot in the target, bits")
        self.reader.add_urc(prefix, handler, nargs, seen_spec(slot, bits), target,
                            kind=_K_SEEN)

    def on_store(self, prefix, target, first, last, slot, seq=-1, nargs=-1, then=None,
                 on_change=-1):
        """Route ``prefix`` lines to a store: arguments ``first..last`` as integers (-1 when
        absent or not a number) into ``target[slot:]`` (an ``array("i")``), and
        ``target[seq] += 1`` when ``seq`` >= 0; done inside the reader, no Python call.
        ``then``: a handler called after the store with the ``Args`` view, as for ``on``
        (it reads the numbers from ``target``: no ``arg_int`` call per argument).
        ``on_change`` >= 0 (with ``then``): the line's argument count goes to
        ``target[on_change]`` and ``then`` runs only when it or a stored number differs
        from the previous line's (state reports that mostly repeat: CREG, CSQ...); an owner
        that changes the derived state by other means writes -1 there, so the next line
        is heard."""
        if not prefix or first < 0 or last < first or slot < 0 or \
                slot + last - first >= len(target) or seq >= len(target) or \
                on_change >= len(target) or (on_change >= 0 and then is None):
            raise ValueError("on_store(): slots out of the target (on_change needs then)")
        self.reader.add_urc(prefix, then, nargs,
                            store_spec(first, last, slot, seq, on_change), target,
                            kind=_K_STORE_CHANGE if on_change >= 0 else -1)

    def on_start(self, prefix, target, first, last, slot, then, match, gate, gate_value,
                 set_value, ready, limit, fill, total):
        """A store (as ``on_store``) that then starts the owner's message inside the
        reader, with no Python call: when ``target[slot] == match`` (the first stored
        number), ``target[gate] == gate_value``, ``target[ready] == 1`` and every announced
        length (stored arguments ``first + 1..last``, the k-th from 0) is within
        ``0..target[limit + k]``: ``target[total + k]`` = that length, ``target[fill + k]``
        = 0, ``target[gate]`` = ``set_value`` and ``target[ready]`` = 2 (the owner does its
        own bookkeeping later, from its next handler).  Otherwise ``then`` (required) gets
        the line, as for ``on_store``."""
        n = last - first
        if not prefix or then is None or first < 0 or n < 1 or \
                max(slot + n, gate, ready, limit + n - 1, fill + n - 1, total + n - 1) >= \
                len(target):
            raise ValueError("on_start(): a prefix, a handler, slots in the target")
        self.reader.add_urc(prefix, then, -1,
                            start_spec(first, last, slot, match, gate, gate_value, set_value,
                                       ready, limit, fill, total), target,
                            kind=_K_STORE_START)

    def on_event(self, prefix, target, first, last, slot, queue, code, then, match=-1,
                 gate=-1, gate_value=0, count=None, max_value=0x7FFFFFFF):
        """A store (as ``on_store``) that then posts an event into ``queue`` (an
        ``EventQueue``) inside the reader, with no Python call (aioble's "handlers only
        record"): when every stored number is within ``0..max_value``, the first equals
        ``match`` (if >= 0) and ``target[gate] == gate_value`` (if ``gate`` >= 0), the
        event ``(code, first stored number, second or 0)`` is posted and ``count`` (a
        ``(dict, key)`` pair: the owner's statistics) bumped; after that read (once per
        read, not per line) the queue wakes its waiting task.  Otherwise ``then``
        (required) gets the line, as for ``on_store``.  A queue that is not an
        ``EventQueue`` makes this ``on_store(..., then=then)``: the handler posts."""
        from .events import EventQueue

        for v in (slot + last - first, gate):
            if v >= len(target):
                raise ValueError("on_event(): slots out of the target")
        if count is not None and (len(count) != 2 or count[1] not in count[0]):
            raise ValueError("on_event(): count is a (dict, key) pair")
        if not prefix or then is None or first < 0 or last < first or slot < 0:
            raise ValueError("on_event(): a prefix, a handler and slots in the target")
        if not isinstance(queue, EventQueue):
            self.on_store(prefix, target, first, last, slot, then=then)
            return
        rd = self.reader
        spec = event_spec(first, last, slot, code, match, gate, gate_value, count is not None,
                          rd.after_bit(queue), max_value)
        c = count or (None, None)
        rd.add_urc(prefix, then, -1, spec, target, [queue._q, queue._st, c[0], c[1]],
                   kind=_K_STORE_EVENT)

    def on_state(self, prefix, target, first, last, slot, then, count, queue, code, state,
                 index, alt_count=-1, max_value=0x7FFFFFFF, seq=-1):
        """A change entry (``on_store(..., on_change=count)``) whose handler's work the
        reader does itself: on a change, the value (the first stored number, or the
        second when the line has ``alt_count`` arguments), when within ``0..max_value``,
        goes to ``state[index]`` (a list item: the owner's public value) and, when that
        differs, the event ``(code, value, index)`` is posted into ``queue`` (an
        ``EventQueue``; its waiting task woken after the read), with no Python call.
        A value out of range goes to ``then`` (required), as for ``on_store``.  A queue
        that is not an ``EventQueue`` makes this ``on_store(..., on_change=count)``."""
        from .events import EventQueue

        if not isinstance(queue, EventQueue):
            self.on_store(prefix, target, first, last, slot, seq, then=then,
                          on_change=count)
            return
        if not prefix or then is None or first < 0 or last < first or slot < 0 or \
                slot + last - first >= len(target) or count < 0 or count >= len(target) or \
                seq >= len(target) or not isinstance(state, list) or \
                not 0 <= index < len(state):
            raise ValueError("on_state(): a prefix, a handler, slots in the target, a list")
        rd = self.reader
        spec = state_spec(first, last, slot, count, index, code, alt_count, max_value, seq,
                          rd.after_bit(queue))
        rd.add_urc(prefix, then, -1, spec, target, [queue._q, queue._st, state],
                   kind=_K_STORE_STATE)

    def on_commit(self, prefix, target, first, last, slot, then, inbox, queue, code, frames,
                  match, gate, gate_value, set_value, ready, fill, total, at, count=None):
        """A store (as ``on_store``) that then ends the owner's message inside the reader,
        with no Python call, when it went as announced: ``target[slot] == match``,
        ``target[gate] == gate_value``, ``target[ready] == 2`` (the reader started it, see
        ``on_start``), both fills (``target[fill]``, ``target[fill + 1]``) equal both totals
        (``target[total]``, ``+ 1``), and ``inbox`` (an ``Inbox``) would give the slot
        ``target[at]`` to its ``start``: the message is committed there (as ``start`` then
        ``commit``), ``target[gate]`` becomes ``set_value``, the event ``(code, slot,
        match)`` is posted into ``queue`` (an ``EventQueue``), ``count`` (a ``(dict,
        key)`` pair) bumped, and the next free slot prepared: its buffers into
        ``frames[0]`` (topic) and ``frames[1]`` (payload) lists (the frame entries'
        ``frame``), its index into ``target[at]``, ``target[ready]`` 1 (0 and -1 when the
        inbox is full).  After that read the queue wakes its waiting task (as
        ``on_event``).  Otherwise ``then`` (required) gets the line, as for
        ``on_store``."""
        from .events import EventQueue
        from .inbox import Inbox

        for v in (slot + last - first, gate, ready, fill + 1, total + 1, at):
            if v >= len(target):
                raise ValueError("on_commit(): slots out of the target")
        if count is not None and (len(count) != 2 or count[1] not in count[0]):
            raise ValueError("on_commit(): count is a (dict, key) pair")
        if not prefix or then is None or first < 0 or last < first or slot < 0:
            raise ValueError("on_commit(): a prefix, a handler and slots in the target")
        if not isinstance(queue, EventQueue) or not isinstance(inbox, Inbox):
            self.on_store(prefix, target, first, last, slot, then=then)
            return
        rd = self.reader
        spec = commit_spec(first, last, slot, match, gate, gate_value, set_value, ready, fill,
                           total, at, code, count is not None, rd.after_bit(queue))
        c = count or (None, None)
        rd.add_urc(prefix, then, -1, spec, target,
                   [queue._q, queue._st, inbox.st, inbox._tlen, inbox._plen, inbox._topics,
                    inbox._payloads, frames[0], frames[1], c[0], c[1]], kind=_K_STORE_COMMIT)

    def on_frame(self, prefix, target, first, last, slot, frame, then, length, match, gate,
                 gate_value, fill, total, mark):
        """A store (as ``on_store``) that then arms the raw frame the line announces,
        inside the reader: when ``target[slot] == match``, ``target[gate] == gate_value``
        and ``0 < target[length] <= target[total] - target[fill]`` (and within
        ``RAW_MAX`` and the buffer) the next ``target[length]`` bytes are copied into
        ``frame[0]`` (a buffer, or None: no frame) at ``target[fill]``, and at their end
        ``target[fill]`` is advanced and ``target[mark]`` (1 while in flight) cleared,
        with no Python call.  Otherwise ``then`` (required) gets the line, as for
        ``on_store``.  A frame of the reader's own that is lost (ring overflow, deadline)
        reaches the ``on_raw`` hook as ``T_LOST`` with ``target[mark]`` still 1."""
        for v in (slot + last - first, length, gate, fill, total, mark):
            if v < 0 or v >= len(target):
                raise ValueError("on_frame(): slots out of the target")
        if not prefix or then is None or first < 0 or last < first or \
                not isinstance(frame, list) or len(frame) != 1:
            raise ValueError("on_frame(): a prefix, a handler and a one-item frame list")
        self.reader.add_urc(prefix, then, -1,
                            frame_spec(first, last, slot, length, match, gate, gate_value,
                                       fill, total, mark), target, frame)

    # ---- reader ----------------------------------------------------------------------------

    def feed(self, data, n=-1):
        """Push bytes in directly (tests, or a transport that is not a stream).

        Any amount: the bytes go in as the ring has room and every part is
        dispatched before the next goes in, so nothing is lost; no allocation.
        """
        rd = self.reader
        if n < 0:
            n = len(data)
        off = 0
        while off < n:
            k = rd.room()
            if k > n - off:
                k = n - off
            rd.put(data, k, off)
            off += k
            rd.pump(False)

    def process(self):
        """Take every token the ring holds and dispatch it."""
        self.reader.pump(False)

    async def run(self):
        """The reader task: the only code that reads the stream."""
        pump = self.reader.pump
        while True:
            n = pump()
            if n > 0:
                await sleep_ms(0)  # a modem that never pauses must not starve the other tasks
            elif n == 0:
                if self.reader.raw_pending():
                    await sleep_ms(_RAW_POLL_MS)  # a quiet stream must not keep a frame armed
                else:
                    await wait_readable(self.reader.stream)
            else:
                await sleep_ms(200)  # far end gone: poll slowly, the driver's probe notices

    def _wake(self):
        if self.reader.waiting():
            self._flag.set()

    def abort(self):
        """Fail the command in flight now (from a URC handler: link lost, modem rebooted)."""
        if self.reader.phase() != _PH_IDLE:
            self.resp.finish(R_ABORTED)
            self._wake()

    def begin(self, cmd, resp, bare, done, done_arg, prompt):
        """Put a command in flight (the bytes are written by the caller); no allocation.

        Arguments as for ``cmd()``, all six given; ``prompt`` is true for a command
        that waits for ``>``.
        """
        self.commands += 1
        self.reader.begin(cmd, resp, bare, done, done_arg, prompt)

    def end(self):
        """The command in flight is over (answered, failed or abandoned)."""
        self.reader.end()

    # ---- commands --------------------------------------------------------------------------

    async def cmd(self, cmd, resp=None, timeout_ms=_DEFAULT_TIMEOUT_MS, bare=False, done=None,
                  done_arg=-1, done_timeout_ms=_DEFAULT_TIMEOUT_MS, payload=None,
                  prompt_timeout_ms=_DEFAULT_TIMEOUT_MS, check=True, payload_chunk=0,
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
            raise CommandTooLong("AT command of %d bytes exceeds tx_max %d (the engine's limit; "
                                 "003 s.4: the modem takes at most %d)"
                                 % (n, self.tx_max, CMD_LINE_MAX))
        if cmd.find(b"\r") >= 0 or cmd.find(b"\n") >= 0:
            raise ValueError("AT command must not contain CR or LF")
        async with self._lock:
            r = self.resp
            rd = self.reader
            tx = self._tx
            tx[0:n] = cmd
            tx[n] = 13
            self.begin(cmd, resp, bare, done, done_arg, payload is not None)
            try:
                await self._write(self._txmv, n + 1)
                if payload is not None:
                    await self._wait(self._prompt_or_final, prompt_timeout_ms, cmd)
                    if rd.prompted():
                        rd.set_phase(_PH_FINAL)
                        await self._write_payload(payload, payload_chunk, payload_gap_ms)
                await self._wait(self._has_final, timeout_ms, cmd)
                if done is not None and r.final == R_OK and not rd.done_seen():
                    rd.set_phase(_PH_DONE)
                    await self._wait(self._has_done, done_timeout_ms, cmd)
            finally:
                self.end()
            if check and r.final != R_OK:
                self.errors += 1
                e = self.error(cmd)
                alog.info("at", "%s", alog.exc(e))  # callers decide; often expected
                raise e
            return r

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
        return self.reader.prompted() or self.resp.final != R_PENDING

    def _has_final(self):
        return self.resp.final != R_PENDING

    def _has_done(self):
        return self.reader.done_seen() or self.resp.final == R_ABORTED

    async def _wait(self, cond, timeout_ms, cmd):
        deadline = ticks_add(ticks_ms(), timeout_ms)
        rd = self.reader
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
            rd.set_waiting(True)
            try:
                await wait_for_ms(self._flag.wait(), left)
            except asyncio.TimeoutError:
                pass
            finally:
                rd.set_waiting(False)

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

    async def pause(self, timeout_ms):
        """Wait until the command in flight (if any) has ended and start no other until
        ``resume()``: tasks can then be cancelled between two commands, never inside one
        (which would leave the modem at a ``>`` prompt, or its late OK ending the next
        command).  False, and nothing held, when it did not end within ``timeout_ms``."""
        took = [False]

        async def take():
            await self._lock.acquire()
            took[0] = True

        try:
            await wait_for_ms(take(), timeout_ms)
        except asyncio.TimeoutError:
            if not took[0]:
                return False
            # the lock came in the same pass as the deadline: MicroPython's wait_for cannot
            # cancel a task that already ended, so the lock is ours (else held for ever)
        self._paused = True
        return True

    def resume(self):
        """Let commands run again after a ``pause()`` that returned True (else no-op)."""
        if self._paused:
            self._paused = False
            self._lock.release()
