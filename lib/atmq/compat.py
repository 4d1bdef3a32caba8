"""The one place where lib/ learns which Python it runs on.

Every module of the package imports MicroPython-specific names from here:
``const``, ``micropython`` (for ``@micropython.viper``/``native``), ``ptr8``,
the wrapping tick clock, ``sleep_ms``, ``ThreadSafeFlag``, ``wait_for_ms`` and
the two non-allocating stream waits the reader needs.  On MicroPython they are
the real things; on CPython they come from ``_host`` (ticks wrap at 2**30 as on
the ESP32, so wrap bugs show up in host tests).

Streams (a ``machine.UART``, a socket, a host fake) are used through a small
protocol: ``readinto(buf) -> int | None`` and ``write(buf) -> int | None``,
both non-blocking; ``wait_readable(s)`` / ``wait_writable(s)`` suspend the
calling task until the stream is ready.
"""

import sys

IS_MICROPYTHON = sys.implementation.name == "micropython"
# A name deleted here frees its slot in this module's globals table for a later name: the
# table grows only when full (issue 11), so names used only while loading are deleted early.
del sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # never true at run time; names for type checkers only
    from typing import Awaitable  # noqa: F401

# The host branch comes first so that type checkers take its (coroutine) signatures.
if not IS_MICROPYTHON:  # CPython: host tests and host tools
    from ._host import (  # type: ignore  # noqa: F401
        TICKS_PERIOD,
        ThreadSafeFlag,
        const,
        heap_lock,
        heap_unlock,
        micropython,
        ptr8,
        ptr16,
        ptr32,
        sleep_ms,
        ticks_add,
        ticks_diff,
        ticks_ms,
        wait_for_ms,
        wait_readable,
        wait_writable,
    )

else:
    import asyncio
    import time

    import micropython
    from micropython import const

    ThreadSafeFlag = asyncio.ThreadSafeFlag
    sleep_ms = asyncio.sleep_ms
    wait_for_ms = asyncio.wait_for_ms
    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
    ticks_add = time.ticks_add
    TICKS_PERIOD = const(1 << 30)  # ESP32; the unix port uses 2**62 but never wraps in practice
    # Inside @viper code ptr8/16/32 are compile-time casts and these globals are never
    # called; they exist so the shared ``from .compat import ptr8`` works everywhere.
    def ptr8(buf):
        return buf

    ptr16 = ptr32 = ptr8
    _ioq = asyncio.core._io_queue  # type: ignore
    del asyncio, time

    def wait_readable(s) -> "Awaitable[None]":  # type: ignore  # noqa: F811
        # A generator, not ``async def``: MicroPython coroutines are generators,
        # so ``await wait_readable(s)`` parks the task on the poller directly.
        # It costs one IOQueue entry per real wait and nothing per byte.
        yield _ioq.queue_read(s)  # type: ignore

    def wait_writable(s) -> "Awaitable[None]":  # type: ignore  # noqa: F811
        yield _ioq.queue_write(s)  # type: ignore

    def heap_lock():
        micropython.heap_lock()

    def heap_unlock():
        return micropython.heap_unlock()
