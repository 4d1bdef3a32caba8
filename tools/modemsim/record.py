"""Record a simulator session as an .atx transcript (docs/transcript-format.md, v1).

Uses the project's own writer (lib/atmq/atx.py) so recordings read back with the
strict reader: `>` records are bytes the host wrote, `<` bytes the modem sent, each
with `+MS` since the previous record.
"""

import os
import sys
import time

_LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "lib")
if _LIB not in sys.path:
    sys.path.append(_LIB)

from atmq.atx import Writer  # noqa: E402


class Recorder:
    def __init__(self, path, model, revision, baud):
        self.w = Writer(path)
        self.w.comment("recorded by tools/modemsim")
        for k, v in (("model", model), ("revision", revision), ("baud", baud),
                     ("source", "modemsim")):
            self.w.meta(k, v)
        self.last = None

    def _delay(self):
        now = time.monotonic()
        ms = 0 if self.last is None else int(round((now - self.last) * 1000))
        self.last = now
        return ms

    def tx(self, data):
        self.w.tx(bytes(data), self._delay())
        self.w.flush()

    def rx(self, data):
        self.w.rx(bytes(data), self._delay())
        self.w.flush()

    def close(self):
        self.w.close()
