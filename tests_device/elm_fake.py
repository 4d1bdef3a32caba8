"""A scripted ELM327 for tests (MicroPython and CPython): answers per command, stream protocol.

``answers`` maps a command (bytes, no CR) to the answer text before the prompt
(bytes), a list of answers used in turn, or None to stay silent (a timeout).
Every exchange is recorded in ``sent``.  Answers are available as soon as the
command's CR is written, so on MicroPython ``readinto`` never has to wait.
"""


class ElmFake:
    def __init__(self, answers, echo=False):
        self.answers = answers
        self.echo = echo
        self.out = bytearray()
        self.pending = bytearray()
        self.sent = []
        self._ev = None

    def write(self, buf):
        for c in bytes(buf):
            if c == 13:
                self._command(bytes(self.pending))
                self.pending = bytearray()
            else:
                self.pending.append(c)
        return len(buf)

    def _command(self, cmd):
        self.sent.append(cmd)
        a = self.answers.get(cmd, b"?")
        if isinstance(a, list):
            a = a.pop(0) if len(a) > 1 else a[0]
        if a is None:
            return
        if self.echo:
            self.out += cmd + b"\r"
        self.out += a + b"\r\r>"
        if self._ev is not None:
            self._ev.set()

    def readinto(self, buf):
        n = min(len(buf), len(self.out))
        if n == 0:
            return None
        buf[0:n] = self.out[0:n]
        self.out = self.out[n:]
        return n

    async def wait_readable(self):  # CPython only; MicroPython never waits on the fake
        import asyncio

        if self._ev is None:
            self._ev = asyncio.Event()
        self._ev.clear()
        if not self.out:
            await self._ev.wait()

    async def wait_writable(self):
        pass
