"""The receive ring: fixed, preallocated storage between the UART and the tokenizer.

The reader drains the UART with ``readinto`` into a small staging chunk (a
fixed buffer, so no memoryview slice is made per read) and ``put`` copies it
into the ring.  When the ring cannot take a whole chunk, the bytes that do not
fit are dropped, counted in ``overflows``/``dropped`` and flagged with
``lost`` so the tokenizer resynchronises at the next line end instead of
gluing two half lines together.  Nothing here allocates after construction.
"""

from .compat import micropython, ptr8


@micropython.viper
def _copy_in(ring, w: int, mask: int, src, n: int):
    r = ptr8(ring)
    s = ptr8(src)
    i = 0
    while i < n:
        r[w] = s[i]
        w = (w + 1) & mask
        i += 1


class RingBuffer:
    """A byte ring of ``size`` bytes (a power of two); single producer, single consumer."""

    def __init__(self, size=2048):
        if size < 16 or size & (size - 1):
            raise ValueError("ring size must be a power of two >= 16")
        self.buf = bytearray(size)
        self.size = size
        self.mask = size - 1
        self.r = 0  # index of the oldest unread byte
        self.n = 0  # bytes held
        self.overflows = 0  # put() calls that could not store everything
        self.dropped = 0  # bytes thrown away by those calls
        self.lost = False  # set on overflow; the tokenizer clears it when it resyncs

    def free(self):
        return self.size - self.n

    @micropython.native
    def put(self, src, n):
        """Copy ``n`` bytes of ``src`` in; returns how many were stored."""
        room = self.size - self.n
        if n > room:
            self.overflows += 1
            self.dropped += n - room
            self.lost = True
            n = room
        if n > 0:
            _copy_in(self.buf, (self.r + self.n) & self.mask, self.mask, src, n)
            self.n += n
        return n

    @micropython.native
    def skip(self, n):
        """Mark ``n`` bytes as consumed."""
        self.r = (self.r + n) & self.mask
        self.n -= n

    def clear(self):
        self.r = 0
        self.n = 0
