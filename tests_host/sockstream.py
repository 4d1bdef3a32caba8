"""The project's stream protocol over a non-blocking CPython socket (host tests).

``atmq._host.SocketStream`` (what ``atmq.connect`` adapts a socket to) that also
keeps everything written, for assertions on the bytes sent to the modem.
"""

from atmq._host import SocketStream


class SockStream(SocketStream):
    """``SocketStream`` recording every byte written in ``tx``."""

    def __init__(self, sock):
        super().__init__(sock)
        self.tx = bytearray()  # everything written, for assertions

    def write(self, buf):
        n = super().write(buf)
        if n:
            self.tx += bytes(buf[:n])
        return n
