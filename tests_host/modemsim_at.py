"""Test helper: talk raw AT bytes to a ModemSim over TCP with bounded waits.

    async with sim_session(persona="SIM7600E", broker=b) as (sim, at):
        await at.cmd(b"AT", b"AT\\r\\r\\nOK\\r\\n")
"""

import asyncio
import contextlib
import itertools

from modemsim import ModemSim

WAIT_S = 10.0
BOOT_7600 = b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n\r\nPB DONE\r\n"


def run(coro, timeout=60.0):
    """Run a test coroutine with an overall deadline."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


class At:
    """The host side of the UART: exact-byte expectations, never sleeps."""

    def __init__(self, reader, writer):
        self.r, self.w = reader, writer
        self.buf = bytearray()

    async def send(self, data):
        self.w.write(data)
        await self.w.drain()

    async def _fill(self, n, timeout):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.buf) < n:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError("timed out waiting for %d bytes; have %r" % (n, bytes(
                    self.buf)))
            try:
                data = await asyncio.wait_for(self.r.read(4096), left)
            except asyncio.TimeoutError:
                continue
            if not data:
                raise AssertionError("connection closed; have %r" % bytes(self.buf))
            self.buf += data

    async def expect(self, want, timeout=WAIT_S):
        """The next bytes from the modem are exactly `want`."""
        await self._fill(len(want), timeout)
        got = bytes(self.buf[:len(want)])
        del self.buf[:len(want)]
        assert got == want, "expected %r\n     got %r (then %r)" % (want, got, bytes(self.buf))
        return got

    async def expect_unordered(self, *frames, timeout=WAIT_S):
        """The next bytes are exactly these frames, in any order (racing URCs)."""
        n = sum(len(f) for f in frames)
        await self._fill(n, timeout)
        got = bytes(self.buf[:n])
        del self.buf[:n]
        orders = [b"".join(p) for p in itertools.permutations(frames)]
        assert got in orders, "frames %r in any order\n got %r" % (frames, got)
        return got

    async def until(self, marker, timeout=WAIT_S):
        """Bytes up to and including marker."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while marker not in self.buf:
            await self._fill(len(self.buf) + 1, max(0.0, deadline - loop.time()))
        i = self.buf.index(marker) + len(marker)
        got = bytes(self.buf[:i])
        del self.buf[:i]
        return got

    async def cmd(self, line, want, timeout=WAIT_S):
        """Send line + CR and expect exactly `want` back."""
        await self.send(line + b"\r")
        return await self.expect(want, timeout)

    async def read_some(self, timeout):
        """Whatever arrives within timeout (b"" if nothing); for polling loops."""
        if not self.buf:
            try:
                data = await asyncio.wait_for(self.r.read(4096), timeout)
            except asyncio.TimeoutError:
                return b""
            self.buf += data
        got = bytes(self.buf)
        self.buf.clear()
        return got

    async def quiet(self):
        """Nothing unread is pending right now (checked against the local buffer)."""
        assert self.buf == b"", "unexpected bytes %r" % bytes(self.buf)


@contextlib.asynccontextmanager
async def sim_session(persona="SIM7600E", broker=None, echo_off=True, tls=False, **kw):
    """A fast ModemSim with one TCP peer; boot URCs consumed and ATE0 sent."""
    b = None if broker is None else (broker.host, broker.port)
    bt = None if broker is None or not broker.tls_port else (broker.host, broker.tls_port)
    sim = ModemSim(persona=persona, broker=b, broker_tls=bt, fast=True, **kw)
    port = await sim.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    at = At(reader, writer)
    try:
        boot = "".join("\r\n%s\r\n" % x for x in sim.modem.p["boot"]).encode()
        await at.expect(boot)
        if echo_off:
            await at.cmd(b"ATE0", b"ATE0\r\r\nOK\r\n")
        yield sim, at
    finally:
        writer.close()
        await sim.stop()


def cert_bytes(path):
    with open(path, "rb") as f:
        return f.read()
