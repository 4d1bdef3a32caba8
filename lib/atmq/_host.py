"""CPython stand-ins for the MicroPython names that ``compat`` exports.

Never deployed to a board.  The tick clock wraps at 2**30 like the ESP32's and
starts a few seconds before the wrap, so every host test that runs longer than
that crosses it; tests may also move it with ``set_ticks``.
"""

import asyncio
import time
import types

TICKS_PERIOD = 1 << 30
_HALF = TICKS_PERIOD >> 1
_MASK = TICKS_PERIOD - 1
_origin = time.monotonic_ns()
_offset = TICKS_PERIOD - 5000  # first wrap 5 s after import


def const(x):
    return x


def _identity(f):
    return f


# A stand-in for the ``micropython`` module: the decorators leave the function
# as plain Python, which is slower but behaves the same.
micropython = types.SimpleNamespace(
    viper=_identity,
    native=_identity,
    const=const,
    heap_lock=lambda: None,
    heap_unlock=lambda: 0,
)


def ptr8(buf):
    return buf


ptr16 = ptr32 = ptr8


def heap_lock():
    pass


def heap_unlock():
    return 0


def ticks_ms():
    return ((time.monotonic_ns() - _origin) // 1_000_000 + _offset) & _MASK


def set_ticks(value):
    """Make ``ticks_ms()`` return ``value`` now (tests: start next to a wrap)."""
    global _offset
    _offset = (value - (time.monotonic_ns() - _origin) // 1_000_000) & _MASK


def ticks_add(t, delta):
    return (t + delta) & _MASK


def ticks_diff(a, b):
    return ((a - b + _HALF) & _MASK) - _HALF


async def sleep_ms(ms):
    await asyncio.sleep(ms / 1000)


async def wait_for_ms(aw, ms):
    return await asyncio.wait_for(aw, ms / 1000)


class ThreadSafeFlag:
    """asyncio.ThreadSafeFlag as MicroPython has it: set() from anywhere, one waiter."""

    def __init__(self):
        self._ev = asyncio.Event()

    def set(self):
        self._ev.set()

    def clear(self):
        self._ev.clear()

    def is_set(self):
        return self._ev.is_set()

    async def wait(self):
        await self._ev.wait()
        self._ev.clear()


async def wait_readable(s):
    """Host fakes and adapters provide ``async wait_readable()`` themselves."""
    await s.wait_readable()


async def wait_writable(s):
    w = getattr(s, "wait_writable", None)
    if w is not None:
        await w()
    else:
        await asyncio.sleep(0)
