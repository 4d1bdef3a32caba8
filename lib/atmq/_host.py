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
    w = getattr(s, "wait_readable", None)
    if w is None:
        raise TypeError("on CPython the engine's stream needs async wait_readable(): "
                        "atmq.wiring.stream_of(%s) adapts sockets and file descriptors"
                        % type(s).__name__)
    await w()


async def wait_writable(s):
    w = getattr(s, "wait_writable", None)
    if w is not None:
        await w()
    else:
        await asyncio.sleep(0)


class _LoopStream:
    """The project's stream protocol for CPython asyncio (what ``atmq.connect`` adapts a
    plain socket or file descriptor to): non-blocking reads and writes that return None
    when they would block, and waits parked on the event loop's reader/writer callbacks."""

    fd = -1

    async def _wait(self, add, remove):
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def ready():
            if not fut.done():
                fut.set_result(None)

        add(self.fd, ready)
        try:
            await fut
        finally:
            remove(self.fd)

    async def wait_readable(self):
        loop = asyncio.get_running_loop()
        await self._wait(loop.add_reader, loop.remove_reader)

    async def wait_writable(self):
        loop = asyncio.get_running_loop()
        await self._wait(loop.add_writer, loop.remove_writer)


class SocketStream(_LoopStream):
    """A ``socket.socket`` (set non-blocking) as an engine stream on CPython."""

    def __init__(self, sock):
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()

    def readinto(self, buf):
        try:
            return self.sock.recv_into(buf)
        except BlockingIOError:
            return None

    def write(self, buf):
        try:
            return self.sock.send(buf)
        except BlockingIOError:
            return None

    def close(self):
        self.sock.close()


class FdStream(_LoopStream):
    """A file descriptor or file object (a pty, a serial port opened raw) as an engine
    stream on CPython; the descriptor is set non-blocking."""

    def __init__(self, f):
        import os

        self.file = f
        self.fd = f if isinstance(f, int) else f.fileno()
        os.set_blocking(self.fd, False)

    def readinto(self, buf):
        import os

        try:
            return os.readv(self.fd, [buf])
        except BlockingIOError:
            return None

    def write(self, buf):
        import os

        try:
            return os.write(self.fd, buf)
        except BlockingIOError:
            return None

    def close(self):
        import os

        os.close(self.fd)
