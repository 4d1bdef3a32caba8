"""Read-gap meter: how long the reader task leaves the modem UART unread while data flows.

Owns one measurement, taken at the stream adapter (under the engine, which it does
not touch): after a ``readinto`` that returned data the reader yields to every other
task (``Engine.run``) and reads again; the time until that next read is how long the
UART's receive buffer must hold what arrives meanwhile.  It must stay below the
buffer's fill time at the baud rate (1024 bytes: 89 ms at 115200, 11 ms at 921600)
or bytes are lost.  Counted: every such gap (p99 and max), and apart those after
which data was indeed waiting.  Not counted: the wait after a read that found
nothing (the poller wakes the reader when data comes; that wake-up latency is not
visible from here).

Unix port only (``TLOG_READ_GAPS=<file>``, set by tools/bench_drain.py): the meter
wraps the board's stream; every second of reading it rewrites ``<file>`` with one
JSON object (reads, gaps counted, p99 and max in ms, the largest read, the receive
ring's overflow counter).  Recording allocates nothing: a fixed histogram of
0.25 ms bins up to 100 ms, and the exact maximum.
"""

import sys
from array import array
from io import IOBase

if sys.implementation.name == "micropython":
    from time import ticks_diff, ticks_us  # type: ignore
else:  # CPython (host tests)
    import time

    def ticks_us():  # type: ignore
        return time.perf_counter_ns() // 1000  # type: ignore

    def ticks_diff(a, b):  # type: ignore
        return a - b

_BIN_US = 250
_BINS = 400  # 0..100 ms; longer gaps land in the last bin (the max is exact)
_DUMP_US = 1000000
_GET_FILENO = 10  # MP_STREAM_GET_FILENO: asyncio's poller watches the fd itself
_EINVAL = 22


class ReadGapMeter(IOBase):
    """A stream that times the reads of the stream it wraps (``readinto``, ``write``,
    ``ioctl`` pass through)."""

    def __init__(self, stream, path=None):
        self.s = stream
        self.path = path
        self._rings = []  # the engine's RingBuffer (``watch``), for its overflow counter
        self.hist = array("I", bytes(4 * _BINS))
        self.reads = 0
        self.gaps = 0
        self.max_us = 0
        self.data_gaps = 0
        self.data_max_us = 0
        self.max_read = 0
        self.bytes = 0
        self._last = 0  # ticks_us of the last read that returned data; 0: none
        self._dumped = ticks_us()

    def watch(self, ring):
        """Report ``ring.overflows`` (the engine's receive ring) with the gaps."""
        self._rings = [ring]

    def readinto(self, buf):
        now = ticks_us()
        n = self.s.readinto(buf)
        last = self._last
        if last:  # the reader yielded after taking data: how long the others kept it away
            g = ticks_diff(now, last)
            self.gaps += 1
            if g > self.max_us:
                self.max_us = g
            i = g // _BIN_US
            self.hist[i if i < _BINS else _BINS - 1] += 1
            if n:  # ... while more data came in (it waited in the buffer)
                self.data_gaps += 1
                if g > self.data_max_us:
                    self.data_max_us = g
        self.reads += 1
        if self.path:
            since = ticks_diff(now, self._dumped)
            # once a second, and at the end of a burst (so the last gaps are written too)
            if since > _DUMP_US or (not n and since > _DUMP_US // 4):
                self._dumped = now
                self.dump()
        if n:
            self._last = ticks_us()  # after the dump: its time is not the reader's gap
            self.bytes += n
            if n > self.max_read:
                self.max_read = n
        else:
            self._last = 0
        return n

    def write(self, buf):
        return self.s.write(buf)

    def ioctl(self, req, arg):
        if req == _GET_FILENO:
            return self.s.fileno()
        f = getattr(self.s, "ioctl", None)
        return f(req, arg) if f is not None else -_EINVAL

    def fileno(self):
        return self.s.fileno()

    def close(self):
        self.dump()
        self.s.close()

    def percentile_ms(self, q):
        """The gap below which a share ``q`` of the counted gaps fall (bin upper edge)."""
        if not self.gaps:
            return 0.0
        want = q * self.gaps
        seen = 0
        for i in range(_BINS):
            seen += self.hist[i]
            if seen >= want:
                if i == _BINS - 1:  # the overflow bin: only the max is known
                    break
                return min((i + 1) * _BIN_US, self.max_us) / 1000.0
        return self.max_us / 1000.0

    def stats(self):
        ovf = -1
        for ring in self._rings:
            ovf = ring.overflows
        return {"reads": self.reads, "gaps": self.gaps, "bytes": self.bytes,
                "gap_p99_ms": self.percentile_ms(0.99),
                "gap_max_ms": self.max_us / 1000.0, "max_read": self.max_read,
                "data_gaps": self.data_gaps, "data_gap_max_ms": self.data_max_us / 1000.0,
                "ring_overflows": ovf}

    def dump(self):
        if not self.path:
            return
        import json

        with open(self.path, "w") as f:
            f.write(json.dumps(self.stats()))


def from_env(stream):
    """A meter around ``stream`` when ``TLOG_READ_GAPS`` names a file (unix port), else None."""
    import os

    path = os.getenv("TLOG_READ_GAPS")
    return ReadGapMeter(stream, path) if path else None
