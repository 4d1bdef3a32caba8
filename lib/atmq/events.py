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
from .reader import post, queue_get

_Q_READ = const(0)  # = atmq.reader.Q_READ
_Q_N = const(1)  # = atmq.reader.Q_N
_Q_SIZE = const(2)  # = atmq.reader.Q_SIZE
_Q_DISCARDS = const(3)  # = atmq.reader.Q_DISCARDS
_Q_WAITING = const(4)  # = atmq.reader.Q_WAITING
_Q_A = const(5)  # = atmq.reader.Q_A
_Q_B = const(6)  # = atmq.reader.Q_B
_Q_SIZE_OF = const(7)  # = atmq.reader.Q_SIZE_OF


class EventQueue:
    """The queue's state is one int array (``Q_*`` slots of ``atmq.reader``, mirrored
    above) so the reader's *event entries* (``Engine.on_event``) post into it in viper,
    with no Python call, in
    arrival order with the handlers' ``put``s; a waiter is woken once per read."""

    def __init__(self, size=32):
        if size < 1:
            raise ValueError("EventQueue size must be >= 1")
        self._q = array("i", bytes(12 * size))
        st = self._st = array("i", bytes(4 * _Q_SIZE_OF))
        st[_Q_SIZE] = size
        self._flag = ThreadSafeFlag()

    # arguments of the event returned by the last get(); events overwritten when full
    @property
    def a(self):
        return self._st[_Q_A]

    @property
    def b(self):
        return self._st[_Q_B]

    @property
    def discards(self):
        return self._st[_Q_DISCARDS]

    @micropython.native
    def put(self, kind, a=0, b=0):
        if post(self._q, self._st, kind, a, b):
            self._flag.set()  # a task waits (ThreadSafeFlag.set is interpreted Python)

    def after_read(self):
        """Wake the waiting task, if any (the reader calls it once per read after its event
        entries posted here; see ``Engine.on_event``)."""
        if self._st[_Q_WAITING]:
            self._flag.set()

    get = queue_get  # (viper, in atmq.reader) oldest event kind (.a/.b its arguments), or -1

    def __len__(self):
        return self._st[_Q_N]

    def clear(self):
        st = self._st
        st[_Q_READ] = 0
        st[_Q_N] = 0

    async def wait(self):
        """Return once at least one event is queued."""
        st = self._st
        while st[_Q_N] == 0:
            self._flag.clear()
            st[_Q_WAITING] = 1
            try:
                await self._flag.wait()
            finally:
                st[_Q_WAITING] = 0


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
        self._mirror = None  # an int array whose slot _mirror_at holds ``kind`` (mirror())
        self._mirror_at = 0

    def mirror(self, target, slot):
        """Keep ``kind`` in ``target[slot]`` too, for the reader's event entries to gate on
        (``Engine.on_event(gate=...)``: a result nobody awaits is posted in viper)."""
        self._mirror = target
        self._mirror_at = slot
        target[slot] = self.kind

    def expect(self, kind):
        self.got = RESULT_NONE
        self._flag.clear()
        self.kind = kind
        if self._mirror is not None:
            self._mirror[self._mirror_at] = kind

    def done(self):
        self.kind = 0
        if self._mirror is not None:
            self._mirror[self._mirror_at] = 0

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
