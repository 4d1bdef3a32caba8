"""Per-device record sequence numbers that survive reboots and are never reused.

Owns the lease file.  Numbers are handed out from RAM inside a leased block:
before the first number of a block is used, the block's end ("every number
below this may have been used") is written to flash atomically (tmp + rename,
with a CRC line).  After a power cut the counter restarts at the persisted
lease end, so the numbers of the interrupted block that were never used are
skipped, never repeated.  One flash write per ``block`` numbers.

A lease file that is missing or corrupt is recovered from ``path.tmp`` (a cut
between write and rename) and, as a last resort, from ``floor``: the caller
passes the highest sequence number it can still see (e.g. in the spool), and
counting resumes above it; ``recovered`` then says so (also when the file is
simply gone and ``floor`` is at or past its lease: lost, not a first boot).

A lease write that fails (a full flash: ENOSPC) does not stop the numbering:
numbers go on from RAM (a record is never lost for want of a number),
``lease_errors`` counts it and every next number retries the write until one
succeeds; the lease then covers every number handed out.  Numbers used while
no lease was on flash are not reused after a reboot as long as their records
reached the spool (its highest seq is the caller's ``floor``); records that
reached neither were counted as dropped.
"""

from atmq.compat import const

from . import fsutil

_DEFAULT_BLOCK = const(64)


class SeqNo:
    """Monotonic counter: ``next()`` returns 0, 1, 2 ... across reboots without reuse."""

    def __init__(self, path, block=_DEFAULT_BLOCK, floor=-1):
        if block < 1:
            raise ValueError("seqno block must be >= 1")
        self.path = path
        self.block = block
        self.recovered = False  # True when the lease was rebuilt from ``floor``
        main, tmp = fsutil.read_sealed(path)
        lease = -1
        for body in (main, tmp):
            if body is not None:
                try:
                    lease = max(lease, int(body))
                except ValueError:
                    pass
        if lease < 0:
            if fsutil.exists(path) or fsutil.exists(path + fsutil.TMP_SUFFIX):
                self.recovered = True  # both copies torn: trust only what the caller saw
            lease = 0
        if floor + 1 > lease:
            self.recovered = True  # the lease is behind what the caller holds: it was lost
        self._next = max(lease, floor + 1)
        self._lease = self._next  # nothing of the new block is leased yet
        self.lease_errors = 0  # lease writes that failed (retried with the next number)
        self.unleased = False  # numbers are being handed out beyond the lease on flash

    def next(self):
        """The next sequence number; writes a new lease first when the block is used up."""
        n = self._next
        if n >= self._lease or self.unleased:
            end = n + self.block
            try:
                fsutil.atomic_write(self.path, fsutil.seal(b"%d" % end))
                self._lease = end
                self.unleased = False
            except OSError:  # full or failing flash: number from RAM, retry next time
                self.lease_errors += 1
                self.unleased = True
        self._next = n + 1
        return n

    def close(self):
        """Clean stop: the lease ends exactly at the next number, so a clean restart goes on
        without a gap (only a power cut skips the rest of a block)."""
        if self._lease != self._next:
            fsutil.atomic_write(self.path, fsutil.seal(b"%d" % self._next))
            self._lease = self._next

    def peek(self):
        """The number ``next()`` will return (no flash write)."""
        return self._next

    @property
    def lease_end(self):
        return self._lease
