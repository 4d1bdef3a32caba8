"""A modem that replays an ``.atx`` transcript, for driver tests on CPython and MicroPython.

It is a UART-like stream (the project's stream protocol): ``readinto(buf)`` and
``write(buf)`` never block; on CPython ``await wait_readable()`` /
``wait_writable()`` suspend the caller; on MicroPython it is an ``io.IOBase``
whose ``ioctl(MP_STREAM_POLL)`` reports readiness, so asyncio's poller can wait
on it (the unix port re-polls such objects every 1 ms: slower, still correct).

Semantics (docs/transcript-format.md, "Replay semantics"): a cursor over
the records.  At a ``>`` run the host's bytes, written in any number of calls,
are compared one by one; the first wrong byte raises ``ReplayMismatch`` at once
and is kept in ``failure`` so a test can report it even if the driver swallowed
it.  When a ``>`` run is complete the following ``<`` run is released to the
reader, in chunks whose sizes come from a chunker, so one transcript is replayed
at every chunking down to one byte per read.  ``+MS`` delays are simulated (no
real waiting; their sum is in ``sim_ms``) unless ``realtime=True``.  ``<``
records at the top of the file (boot URCs) are released at construction, or by
``boot()`` when ``start=False``; ``feed()`` injects bytes that are not in the
transcript.
"""

import sys

import asyncio
from atmq import atx
from atmq.compat import ticks_add, ticks_diff, ticks_ms, wait_for_ms

_MICROPYTHON = sys.implementation.name == "micropython"
if _MICROPYTHON:
    import io

    _Stream = io.IOBase
else:
    _Stream = object

_MP_STREAM_POLL = 3
_POLLIN = 1
_POLLOUT = 4
_EINVAL = 22
_SHOW = 80  # escaped characters of context shown in a report


class ReplayError(Exception):
    """A replay failed; ``lineno`` is the transcript line (None: past the end)."""

    def __init__(self, lineno, message, expected=b"", actual=b""):
        self.lineno = lineno
        self.expected = bytes(expected)
        self.actual = bytes(actual)
        where = "line %d" % lineno if lineno is not None else "end of transcript"
        super().__init__("%s: %s" % (where, message))


class ReplayMismatch(ReplayError):
    """The host wrote a byte the transcript does not hold at that point."""


class ReplayIncomplete(ReplayError):
    """``assert_done`` found records not replayed or modem bytes not read."""


class ReplayTimeout(ReplayError):
    """``drive`` ran out of time; the message says where the cursor waits."""


def _esc(data, limit=_SHOW):
    text = atx.escape(data)
    if len(text) > limit:
        return "'" + text[:limit] + "'..."
    return "'" + text + "'"


class Fixed:
    """Chunker: every read gets at most ``n`` bytes (0: all that is available)."""

    def __init__(self, n):
        if n < 0:
            raise ValueError("chunk size %d" % n)
        self.n = n

    def next(self):
        return self.n


class Seeded:
    """Chunker: each read gets 1..n bytes from a seeded xorshift32 (same on both Pythons)."""

    def __init__(self, n, seed=1):
        if n < 1:
            raise ValueError("chunk size %d" % n)
        self.n = n
        self._x = (seed & 0xFFFFFFFF) or 0x9E3779B9

    def next(self):
        x = self._x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._x = x
        return 1 + x % self.n


def _chunker(c):
    if c is None:
        return Fixed(0)
    if isinstance(c, int):
        return Fixed(c)
    return c


class ReplayModem(_Stream):
    """Plays the modem side of a transcript.

    ``source``: a path, a list of lines, or ``(meta, records)`` from ``atx.read``.
    ``chunk``: None (all available), an int N (at most N per read) or a chunker
    (``Fixed(n)``, ``Seeded(n, seed)``, anything with ``next() -> int``).
    ``write_chunk``: the same for how many bytes one ``write`` accepts.
    ``realtime``: honour ``+MS`` delays on ``clock`` (default ``ticks_ms``).
    ``start``: release the ``<`` records that precede the first ``>`` now.
    """

    def __init__(
        self, source, chunk=None, write_chunk=None, realtime=False, clock=None, start=True
    ):
        if isinstance(source, tuple):
            self.meta, recs = source
        else:
            self.meta, recs = atx.read(source)
        self._recs = recs
        self._chunk = _chunker(chunk)
        self._wchunk = _chunker(write_chunk)
        self._realtime = realtime or clock is not None
        self._clock = clock or ticks_ms
        self._i = 0  # next record not yet replayed
        self._off = 0  # bytes of record _i already written by the host
        self._run = -1  # index of the first record of the current ">" run
        self._run_got = bytearray()  # what the host wrote in that run
        self._out = bytearray()  # released modem bytes
        self._rpos = 0  # how many of them the host has read
        self._sched = []  # realtime: [due_tick, data] not yet due
        self._base = self._clock()  # tick of the last replayed event
        self._booted = False
        self._wake = None  # CPython: asyncio.Event set when something changes
        self.written = bytearray()  # every byte the host wrote
        self.failure = None  # the first ReplayError, kept
        self.sim_ms = 0  # sum of the +MS delays replayed
        self.reads = 0  # readinto calls that returned data
        if start:
            self.boot()

    # -- the cursor ---------------------------------------------------------
    def boot(self):
        """Release the ``<`` records at the top of the transcript (boot URCs)."""
        if not self._booted:
            self._booted = True
            self._advance()

    def _release(self, ms, data):
        self.sim_ms += ms
        if self._realtime:
            self._base = ticks_add(self._base, ms)
            if data:
                self._sched.append([self._base, data])
            self._pump()
        elif data:
            self._out.extend(data)

    def _advance(self):
        """Replay ``<`` records and pauses up to the next ``>`` data or the end."""
        recs = self._recs
        released = False
        while self._i < len(recs):
            _, d, ms, data = recs[self._i]
            if d == atx.RX:
                self._release(ms, data)
                released = True
            elif data:
                break
            else:  # a pause in the host's stream
                self.sim_ms += ms
            self._i += 1
        if released or self._run < 0:
            self._run = self._i
            self._run_got = bytearray()
        self._kick()

    def _pump(self):
        s = self._sched
        if s:
            now = self._clock()
            while s and ticks_diff(now, s[0][0]) >= 0:
                self._out.extend(s.pop(0)[1])

    def _expected_run(self):
        out = bytearray()
        k = self._run
        while k < len(self._recs) and self._recs[k][1] == atx.TX:
            out.extend(self._recs[k][3])
            k += 1
        return bytes(out)

    def _fail(self, err):
        if self.failure is None:
            self.failure = err
        self._kick()
        raise err

    def _kick(self):
        if self._wake is not None:
            self._wake.set()

    # -- the stream protocol ------------------------------------------------
    def write(self, buf):
        """Take what the host writes; raise ReplayMismatch at the first wrong byte."""
        if self.failure is not None:
            raise self.failure
        n = len(buf)
        w = self._wchunk.next()
        if w and w < n:
            n = w
        recs = self._recs
        for k in range(n):
            b = buf[k]
            self.written.append(b)
            if self._i >= len(recs):
                self._fail(
                    ReplayMismatch(
                        None,
                        "host wrote %s after the end of the transcript" % _esc(bytes(buf[k:n])),
                        b"",
                        bytes(buf[k:n]),
                    )
                )
            lineno, _, ms, data = recs[self._i]
            self._run_got.append(b)
            if data[self._off] != b:
                expected = self._expected_run()
                actual = bytes(self._run_got) + bytes(buf[k + 1 :])
                self._fail(
                    ReplayMismatch(
                        lineno,
                        "host wrote %s where the transcript expects %s (byte %d of the run)"
                        % (_esc(actual), _esc(expected), len(self._run_got) - 1),
                        expected,
                        actual,
                    )
                )
            self._off += 1
            if self._off == len(data):
                self.sim_ms += ms
                self._i += 1
                self._off = 0
                if self._realtime:
                    now = self._clock()
                    if ticks_diff(now, self._base) > 0:
                        self._base = now
                self._advance()
        return n

    def readinto(self, buf, nbytes=-1):
        """Copy released modem bytes into ``buf``; None when there are none (yet)."""
        if self.failure is not None:
            return None
        self._pump()
        avail = len(self._out) - self._rpos
        if avail <= 0:
            return None
        n = len(buf) if nbytes < 0 else min(nbytes, len(buf))
        if avail < n:
            n = avail
        c = self._chunk.next()
        if c and c < n:
            n = c
        if n <= 0:
            return 0
        p = self._rpos
        buf[:n] = self._out[p : p + n]
        p += n
        if p == len(self._out):
            self._out = bytearray()
            p = 0
        self._rpos = p
        self.reads += 1
        return n

    def readable_now(self):
        """How many released modem bytes are waiting to be read."""
        self._pump()
        return len(self._out) - self._rpos

    def ioctl(self, req, arg):
        if req == _MP_STREAM_POLL:
            flags = 0
            if arg & _POLLIN and self.failure is None and self.readable_now():
                flags |= _POLLIN
            if arg & _POLLOUT:
                flags |= _POLLOUT
            return flags
        # Anything else, notably MP_STREAM_GET_FILENO (10): "not supported".
        # Returning 0 there would make select.poll watch fd 0 (stdin) instead.
        return -_EINVAL

    async def wait_readable(self):
        """CPython: return when ``readinto`` has data (never after a failure)."""
        while True:
            if self.failure is None and self.readable_now():
                return
            if self._wake is None:
                self._wake = asyncio.Event()
            self._wake.clear()
            if self._sched and self.failure is None:
                due = ticks_diff(self._sched[0][0], self._clock())
                try:
                    await asyncio.wait_for(self._wake.wait(), max(due, 1) / 1000)
                except asyncio.TimeoutError:
                    pass
            else:
                await self._wake.wait()

    async def wait_writable(self):
        return

    # -- helpers for tests --------------------------------------------------
    def feed(self, data):
        """Make ``data`` readable now, outside the transcript (e.g. an extra URC)."""
        self._out.extend(data)
        self._kick()

    def done(self):
        """True when the cursor has replayed every record."""
        return self._i >= len(self._recs)

    def pending_rx(self):
        """Modem bytes released or scheduled that the host has not read."""
        n = len(self._out) - self._rpos
        for _, data in self._sched:
            n += len(data)
        return n

    def where(self):
        """One line saying where the replay stands (for timeouts)."""
        if self.failure is not None:
            return "failed: %s" % self.failure
        if self.done():
            return "at the end of the transcript; %d modem bytes unread" % self.pending_rx()
        lineno = self._recs[self._i][0]
        return "line %d: waiting for the host to write %s; it wrote %s of the run" % (
            lineno,
            _esc(self._expected_run()),
            _esc(bytes(self._run_got)),
        )

    def assert_done(self, rx=True):
        """Raise the kept failure, or ReplayIncomplete if records are left or
        (with ``rx``) modem bytes were never read."""
        if self.failure is not None:
            raise self.failure
        if not self.done():
            raise ReplayIncomplete(
                self._recs[self._i][0],
                "transcript not finished: "
                + (
                    "waiting for the host to write %s; it wrote %s of the run"
                    % (_esc(self._expected_run()), _esc(bytes(self._run_got)))
                ),
            )
        if rx:
            n = self.pending_rx()
            if n:
                rest = bytes(self._out[self._rpos :])
                for _, data in self._sched:
                    rest += data
                raise ReplayIncomplete(
                    None,
                    "the host did not read %d modem bytes: %s" % (n, _esc(rest)),
                    b"",
                    rest,
                )


async def drive(modem, awaitable, timeout_ms=5000):
    """Await the driver under a deadline; surface the replay's own failure.

    Returns the awaitable's result.  If the modem recorded a failure it is raised
    (even when the driver swallowed it or failed in another way because of it);
    a deadline raises ReplayTimeout that says where the cursor waits."""
    try:
        result = await wait_for_ms(awaitable, timeout_ms)
    except asyncio.TimeoutError:
        if modem.failure is not None:
            raise modem.failure from None
        raise ReplayTimeout(
            None, "no progress within %d ms; %s" % (timeout_ms, modem.where())
        ) from None
    except Exception:
        if modem.failure is not None:
            raise modem.failure from None
        raise
    if modem.failure is not None:
        raise modem.failure
    return result
