"""What URC handlers hand to tasks: a fixed-size queue of integer events, and the
result URC of a two-phase command that a driver awaits.

URC handlers run inside the reader and must not send commands or allocate, so
they ``put(kind, a, b)`` three integers here; a driver task ``await wait()``s
and ``get()``s them.  When full, the oldest event is overwritten and counted
in ``discards`` (the mqtt_as policy: fresh state beats stale state).
``ResultWait`` carries one command's result URC (``+CMQTTPUB: 0,0``,
``+SMSUB: 0``...) from a handler to the coroutine that sent the command.
"""

import asyncio
from array import array

from .compat import (
    ThreadSafeFlag,
    const,
    micropython,
    ticks_add,
    ticks_diff,
    ticks_ms,
    wait_for_ms,
)
from .errors import ATTimeout


class EventQueue:
    def __init__(self, size=32):
        self._q = array("i", bytes(12 * size))
        self._size = size
        self._r = 0
        self._n = 0
        self._flag = ThreadSafeFlag()
        self._waiting = False
        self.discards = 0
        self.a = 0  # arguments of the event returned by the last get()
        self.b = 0

    @micropython.native
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
        if self._waiting:  # ThreadSafeFlag.set is interpreted Python: only when needed
            self._flag.set()

    @micropython.native
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
            self._flag.clear()
            self._waiting = True
            try:
                await self._flag.wait()
            finally:
                self._waiting = False


# Event kinds shared by the drivers and the client (a, b: meaning per kind).
EV_MSG = const(1)  # an inbound MQTT message was committed to the Inbox (a: slot)
EV_MSG_DROPPED = const(2)  # inbound message dropped (a: 1 oversize, 2 inbox full, 3 torn)
EV_CONNLOST = const(3)  # broker connection lost (a: client, b: cause code from the modem)
EV_NONET = const(4)  # network for MQTT is gone (CMQTTNONET, PDP deactivated)
EV_REBOOT = const(5)  # the modem rebooted by itself (boot URC mid-session)
EV_SIM = const(6)  # SIM state changed (a: 1 ready, 0 not ready)
EV_REG = const(7)  # registration changed (a: stat per 27.007, b: 0 CREG, 1 CGREG, 2 CEREG)
EV_PUBACK = const(8)  # publish result URC outside a command (a: client, b: err)
EV_NETOPEN = const(9)  # data network opened/closed asynchronously (a: err)
EV_URC = const(10)  # other URC a driver wants the app to see (a, b: driver-defined)


RESULT_ABORTED = const(-2)  # the link went down while the result was awaited
RESULT_NONE = const(-3)  # no result URC yet


class ResultWait:
    """The result URC of one two-phase command, awaited without holding the AT channel.

    The driver ``expect(kind)``s it before it sends the command and ``done()``s it
    in a ``finally``; its URC handlers ``take(kind, value)`` it (False: nobody waits
    for that kind, a late result) or ``abort()`` it on link loss; the command's
    coroutine ``await wait(cmd, ms)``s the value (``RESULT_ABORTED`` after a link
    loss; ``ATTimeout`` when nothing came).  ``got`` is the value so far.
    """

    def __init__(self):
        self.kind = 0  # the command kind awaited (0: none)
        self.got = RESULT_NONE
        self._flag = ThreadSafeFlag()

    def expect(self, kind):
        self.got = RESULT_NONE
        self._flag.clear()
        self.kind = kind

    def done(self):
        self.kind = 0

    def take(self, kind, value):
        if self.kind == kind and self.got == RESULT_NONE:
            self.got = value
            self._flag.set()
            return True
        return False

    def abort(self):
        if self.kind and self.got == RESULT_NONE:  # a result that will not come now
            self.got = RESULT_ABORTED
            self._flag.set()

    async def wait(self, cmd, timeout_ms):
        deadline = ticks_add(ticks_ms(), timeout_ms)
        while self.got == RESULT_NONE:
            left = ticks_diff(deadline, ticks_ms())
            if left <= 0:
                raise ATTimeout(cmd, timeout_ms)
            self._flag.clear()
            if self.got != RESULT_NONE:
                break
            try:
                await wait_for_ms(self._flag.wait(), left)
            except asyncio.TimeoutError:
                pass
        return self.got
