"""A fixed-size queue of integer events from URC handlers to the tasks that act on them.

URC handlers run inside the reader and must not send commands or allocate, so
they ``put(kind, a, b)`` three integers here; a driver task ``await wait()``s
and ``get()``s them.  When full, the oldest event is overwritten and counted
in ``discards`` (the mqtt_as policy: fresh state beats stale state).
"""

from array import array

from .compat import ThreadSafeFlag


class EventQueue:
    def __init__(self, size=32):
        self._q = array("i", bytes(12 * size))
        self._size = size
        self._r = 0
        self._n = 0
        self._flag = ThreadSafeFlag()
        self.discards = 0
        self.a = 0  # arguments of the event returned by the last get()
        self.b = 0

    def put(self, kind, a=0, b=0):
        q = self._q
        if self._n == self._size:
            self._r = (self._r + 1) % self._size
            self._n -= 1
            self.discards += 1
        i = 3 * ((self._r + self._n) % self._size)
        q[i] = kind
        q[i + 1] = a
        q[i + 2] = b
        self._n += 1
        self._flag.set()

    def get(self):
        """Oldest event kind (its arguments in ``.a``/``.b``), or -1 when empty."""
        if self._n == 0:
            return -1
        q = self._q
        i = 3 * self._r
        self.a = q[i + 1]
        self.b = q[i + 2]
        self._r = (self._r + 1) % self._size
        self._n -= 1
        return q[i]

    def __len__(self):
        return self._n

    def clear(self):
        self._r = 0
        self._n = 0

    async def wait(self):
        """Return once at least one event is queued."""
        while self._n == 0:
            await self._flag.wait()
