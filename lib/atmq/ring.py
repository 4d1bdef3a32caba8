"""The receive ring: fixed, preallocated storage between the UART and the tokenizer.

The reader drains the UART with ``readinto`` into a small staging chunk (a
fixed buffer, so no memoryview slice is made per read) and ``put`` copies it
into the ring.  When the ring cannot take a whole chunk, the bytes that do not
fit are dropped, counted in ``overflows``/``dropped`` and flagged with
``lost`` so the tokenizer resynchronises at the next line end instead of
gluing two half lines together.  Nothing here allocates after construction.
"""

from array import array

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
    """A byte ring of ``size`` bytes (a power of two); single producer, single consumer.

    ``idx`` holds [read index, bytes held, mask, lost] in an int array so the
    viper tokenizer updates it in place, without a method call per line, and the
    reader tests one array slot per token instead of an attribute.
    """

    def __init__(self, size=2048):
        if size < 16 or size & (size - 1):
            raise ValueError("ring size must be a power of two >= 16")
        self.buf = bytearray(size)
        self.size = size
        self.mask = size - 1
        # idx[3] ("lost") is set on overflow; the tokenizer clears it when it resyncs
        self.idx = array("i", (0, 0, size - 1, 0))
        self.overflows = 0  # put() calls that could not store everything
        self.dropped = 0  # bytes thrown away by those calls

    @property
    def lost(self):
        return self.idx[3] != 0

    @micropython.native
    def count(self):
        return self.idx[1]

    @micropython.native
    def put(self, src, n):
        """Copy ``n`` bytes of ``src`` in; returns how many were stored."""
        idx = self.idx
        held = idx[1]
        room = self.size - held
        if n > room:
            self.overflows += 1
            self.dropped += n - room
            idx[3] = 1
            n = room
        if n > 0:
            _copy_in(self.buf, (idx[0] + held) & self.mask, self.mask, src, n)
            idx[1] = held + n
        return n

    @micropython.native
    def skip(self, n):
        """Mark ``n`` bytes as consumed."""
        idx = self.idx
        idx[0] = (idx[0] + n) & self.mask
        idx[1] -= n

    def clear(self):
        self.idx[0] = 0
        self.idx[1] = 0
        self.idx[3] = 0
