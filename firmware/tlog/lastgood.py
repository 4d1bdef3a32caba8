"""The last configuration that booted and reached the broker, and link changes on probation.

Owns two small files in the flash root:

* ``lastgood.json``: every config value (secrets too: it is the device's own
  flash, like config.json) sealed with a CRC line, written atomically after a
  boot whose link reached the broker, when it differs from what is kept.  The
  boot falls back to it when config.json fails (tlog.app), and a link change on
  probation is rolled back to it.
* ``probation``: written by an authenticated remote change of link keys (the
  deadline in seconds of uptime after the next boot).  A boot that finds it
  must reach the broker within that time, else config.json is replaced by
  ``lastgood.json`` and the board reboots.  Reaching the broker clears it.
"""

import json

from . import fsutil

LASTGOOD = "lastgood.json"
PROBATION = "probation"


class LastGood:
    def __init__(self, root):
        self.root = root
        self.path = root + "/" + LASTGOOD
        self.prob_path = root + "/" + PROBATION
        self.saves = 0
        self.errors = 0
        self._kept = None  # the values last read or written (to skip identical writes)

    def load(self):
        """The kept values (dict), or None when nothing good is kept (or it is torn)."""
        main, tmp = fsutil.read_sealed(self.path)
        for body in (main, tmp):
            if body is None:
                continue
            try:
                obj = json.loads(body)
            except ValueError:
                continue
            if isinstance(obj, dict):
                self._kept = obj
                return obj
        return None

    def save(self, values):
        """Keep ``values`` (a config's ``values()``) as the last good; False on a flash error."""
        if self._kept is None:
            self.load()
        if self._kept == values:
            return True
        try:
            fsutil.atomic_write(self.path, fsutil.seal(json.dumps(values).encode()))
        except OSError:
            self.errors += 1
            return False
        self._kept = dict(values)
        self.saves += 1
        return True

    # ---- probation ------------------------------------------------------------------------

    def start_probation(self, seconds):
        """A remote link change was stored: the next boots have ``seconds`` to reach the
        broker with it."""
        fsutil.atomic_write(self.prob_path, fsutil.seal(b"%d" % seconds))

    def probation_s(self):
        """Seconds the running link has to reach the broker, or 0 (no probation)."""
        main, tmp = fsutil.read_sealed(self.prob_path)
        for body in (main, tmp):
            if body is not None:
                try:
                    return max(1, int(body))
                except ValueError:
                    pass
        if fsutil.exists(self.prob_path):
            return 1  # torn: the change was not proven, roll back at once
        return 0

    def end_probation(self):
        fsutil.remove_quiet(self.prob_path)
        fsutil.remove_quiet(self.prob_path + fsutil.TMP_SUFFIX)
