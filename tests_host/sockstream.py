"""The project's stream protocol over a non-blocking CPython socket (host tests).

``readinto``/``write`` never block (None when the socket would); ``wait_readable``
/ ``wait_writable`` park the asyncio task on the event loop's reader/writer
callbacks, which is what ``atmq.compat`` calls on CPython.
"""

import asyncio


class SockStream:
    """The stream protocol over a non-blocking CPython socket, for asyncio on the host."""

    def __init__(self, sock):
        sock.setblocking(False)
        self.sock = sock
        self.tx = bytearray()  # everything written, for assertions

    def readinto(self, buf):
        try:
            return self.sock.recv_into(buf)
        except BlockingIOError:
            return None

    def write(self, buf):
        try:
            n = self.sock.send(buf)
        except BlockingIOError:
            return None
        self.tx += bytes(buf[:n])
        return n

    async def _wait(self, add, remove):
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        fd = self.sock.fileno()

        def ready():
            if not fut.done():
                fut.set_result(None)

        add(fd, ready)
        try:
            await fut
        finally:
            remove(fd)

    async def wait_readable(self):
        loop = asyncio.get_running_loop()
        await self._wait(loop.add_reader, loop.remove_reader)

    async def wait_writable(self):
        loop = asyncio.get_running_loop()
        await self._wait(loop.add_writer, loop.remove_writer)

    def close(self):
        self.sock.close()
