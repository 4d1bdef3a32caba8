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

import binascii
import json

from . import config as _config
from . import fsutil

# Where the running configuration came from (App.cfg_source, health "config.source").
FILE = "file"
LASTGOOD_SRC = "lastgood"
DEFAULTS = "defaults"

LASTGOOD = "lastgood.json"
PROBATION = "probation"


class LastGood:
    def __init__(self, root):
        self.root = root
        self.path = root + "/" + LASTGOOD
        self.prob_path = root + "/" + PROBATION
        self.saves = 0
        self.errors = 0
        self._kept = -1  # CRC of the JSON kept on flash (to skip identical writes), -1: unknown
        self.ok = False  # this boot reached the broker
        self.rolled_back = False

    def load(self):
        """The kept values (dict), or None when nothing good is kept (or it is torn)."""
        main, tmp = fsutil.read_sealed(self.path)
        for body in (main, tmp):
            if body is None:
                continue
            try:
                obj = json.loads(body)
                if isinstance(obj, list):
                    obj = {kv[0]: kv[1] for kv in obj}
            except (ValueError, TypeError, IndexError, KeyError):
                continue
            if isinstance(obj, dict):
                self._kept = binascii.crc32(body) & 0xFFFFFFFF
                return obj
        return None

    def save(self, values):
        """Keep ``values`` (a Config, or a dict of every key) as the last good; False on a
        flash error.  Nothing is written when the file already holds them (CRC), and the
        JSON is written piece by piece (no copy of the whole config in RAM)."""
        crc = 0
        for part in _parts(values):
            crc = binascii.crc32(part, crc)
        crc &= 0xFFFFFFFF
        if self._kept < 0:
            self._kept = fsutil.sealed_crc(self.path)
        if crc == self._kept:
            return True
        try:
            fsutil.atomic_write_parts(self.path, _parts(values))
        except OSError:
            self.errors += 1
            return False
        self._kept = crc
        self.saves += 1
        return True

    def reached(self, values):
        """The link reached the broker with ``values`` (the running Config): keep them, end
        any probation."""
        self.ok = True
        self.end_probation()
        return self.save(values)

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

    async def probation(self, app, period_ms=1000):
        """The probation task (tlog.probation, imported only when a change is pending)."""
        if self.probation_s():
            from .probation import watch

            await watch(self, app, period_ms)


def _parts(values):
    """The kept file's JSON in pieces: ``[["key", value], ...]`` in key order (the same
    bytes for the same values, whatever the dict order)."""
    yield b"["
    sep = b""
    for k in sorted(_config.SCHEMA):
        yield sep + json.dumps([k, values.get(k)]).encode()
        sep = b","
    yield b"]"


def known(values):
    """The values of keys this firmware knows (a kept file may predate a schema change)."""
    return {k: values[k] for k in values if k in _config.SCHEMA}


def boot_config(path, variant, lastgood, level=0, why=None):
    """The configuration to boot with: (Config, source, error text or None).

    ``level`` 0: config.json, falling back when it fails; 1: the setup crashed with
    config.json (``why``), start from the last good; 2: defaults.  A fallback keeps
    ``path``, so a ``set`` writes a whole, valid config.json again.
    """
    err = why
    if level == 0:
        try:
            return _config.load(path, variant), FILE, None
        except ValueError as e:  # ConfigError, and a value a modem family refuses
            err = str(e)
    if level <= 1:
        good = lastgood.load()
        if good is not None:
            try:
                return _config.Config(path, known(good), variant), LASTGOOD_SRC, err
            except ValueError as e:
                err = "%s; last good: %s" % (err, e)
    return _config.Config(path, None, variant), DEFAULTS, err
