"""What differs between the ESP32 and the MicroPython unix port, and nothing else.

Owns: how the app learns its options (ESP32: fixed paths on flash; unix port:
``TLOG_*`` environment variables set by tools/run_unix.py), opening a UART-like
byte stream (ESP32 ``machine.UART``; unix: a non-blocking TCP socket for
``tcp:HOST:PORT`` or a pty path with VMIN=0/VTIME=0), the pin factory (None on
unix), the hardware watchdog (a no-op stand-in on unix), free heap, device
temperature and reset.  Streams follow the project protocol: non-blocking
``readinto``/``write`` plus poll readiness (toolchain-facts.md s.2).
"""

import gc
import os
import sys
from io import IOBase  # a Python class asyncio's poller accepts as a stream (ioctl)

IS_ESP32 = sys.platform == "esp32"

_EINVAL = 22
_EAGAIN = 11
_GET_FILENO = 10  # MP_STREAM_GET_FILENO: lets asyncio's poller watch the fd itself


def options():
    """Paths and limits of this run: board, config, flash root, modem device, seconds.

    ESP32: ``/board.json`` and ``/config.json`` on flash, the board's UART.
    Unix port: ``TLOG_BOARD``, ``TLOG_CONFIG``, ``TLOG_FLASH``, ``TLOG_MODEM``
    (overrides ``uart.device``), ``TLOG_SECONDS`` (stop after N s, 0 = never),
    ``TLOG_STDIN_STOP=1`` (stop cleanly when stdin reaches end of file: how the
    launcher asks, since a SIGINT ends MicroPython's event loop with it),
    ``TLOG_READ_GAPS=<file>`` (the drain bench's read-gap meter, tlog/readgap.py).
    """
    if IS_ESP32:
        return {"board": "/board.json", "config": "/config.json", "flash": None,
                "modem": None, "seconds": 0, "stdin_stop": False}
    g = os.getenv
    return {
        "board": g("TLOG_BOARD") or "boards/unix.json",
        "config": g("TLOG_CONFIG") or None,
        "flash": g("TLOG_FLASH") or None,
        "modem": g("TLOG_MODEM") or None,
        "seconds": int(g("TLOG_SECONDS") or "0"),
        "stdin_stop": g("TLOG_STDIN_STOP") == "1",
        "read_gaps": g("TLOG_READ_GAPS") or None,  # tlog/readgap.py (tools/bench_drain.py)
    }


class PtyStream(IOBase):
    """A pty opened for raw non-blocking use: ``readinto`` returns None when idle, not 0."""

    def __init__(self, path):
        import termios  # unix port only

        self.f = open(path, "r+b")
        fd = self.f.fileno()
        a = termios.tcgetattr(fd)
        cc = a[6]
        cc[6] = 0  # VMIN: return at once with what is there (Linux index 6)
        cc[5] = 0  # VTIME (index 5)
        # raw: no echo, no line editing, no CR/LF mapping (cfmakeraw's flags)
        a[0] = 0
        a[1] = 0
        a[3] = 0
        termios.tcsetattr(fd, 0, a)

    def readinto(self, buf):
        n = self.f.readinto(buf)
        return n if n else None

    def write(self, buf):
        return self.f.write(buf)

    def ioctl(self, req, arg):
        if req == _GET_FILENO:
            return self.f.fileno()
        return -_EINVAL

    def fileno(self):
        return self.f.fileno()

    def close(self):
        self.f.close()


def open_stream(uart, device=None):
    """A byte stream for a board ``uart`` dict; ``device`` overrides ``uart["device"]``."""
    dev = device or uart.get("device")
    if IS_ESP32 or not dev:
        from machine import UART

        return UART(uart["id"], baudrate=uart["baud"], tx=uart["tx"], rx=uart["rx"],
                    rxbuf=max(uart.get("rxbuf") or 1024, 4096), timeout=0)
    if dev.startswith("tcp:"):
        import socket

        host, port = dev[4:].rsplit(":", 1)
        s = socket.socket()
        s.connect(socket.getaddrinfo(host, int(port))[0][-1])
        s.setblocking(False)  # readinto: None on EAGAIN, 0 at EOF; asyncio polls it
        return s
    return PtyStream(dev)


async def stdin_closed():
    """Return once stdin reaches end of file (unix port; the launcher closes the pipe)."""
    from atmq.compat import wait_readable

    f = open(0, "rb")
    one = bytearray(1)
    while True:
        await wait_readable(f)
        if not f.readinto(one):
            return


def pin_factory():
    """``machine.Pin`` on the ESP32; None on the unix port (no pins: power is a no-op)."""
    if not IS_ESP32:
        return None
    from machine import Pin

    return Pin


class NoWDT:
    """The unix port has no watchdog: same interface, counts feeds."""

    def __init__(self, timeout=0):
        self.timeout = timeout
        self.feeds = 0

    def feed(self):
        self.feeds += 1


def hw_watchdog(timeout_ms):
    if IS_ESP32:
        from machine import WDT

        return WDT(timeout=timeout_ms)
    return NoWDT(timeout_ms)


def flash_root(board, override=None):
    """The flash folder without a trailing "/" (so "/" is "": paths are root + "/name")."""
    r = override or board.get("fs_root") or "/"
    return r.rstrip("/")


def heap_free():
    return gc.mem_free()  # type: ignore


def heap_alloc():
    return gc.mem_alloc()  # type: ignore


def device_temp_dc():
    """ESP32 die temperature in 0.1 degC, or None (unix port, or not supported)."""
    if not IS_ESP32:
        return None
    try:
        import esp32
    except ImportError:
        return None
    f = getattr(esp32, "mcu_temperature", None)  # S2/S3/C3: degC
    if f is not None:
        return int(f() * 10)
    f = getattr(esp32, "raw_temperature", None)  # classic ESP32: degF, rough (as the anchor)
    if f is not None:
        return (f() - 32) * 50 // 9
    return None


def reset():
    """Reboot the board (ESP32); on the unix port the process ends (SystemExit)."""
    if IS_ESP32:
        import machine

        machine.reset()
    raise SystemExit(0)
