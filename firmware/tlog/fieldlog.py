"""The field log on flash: atmq.log's warning and error lines kept across reboots.

Owns ``<root>/log/``: ``log.txt`` (current) and ``log.1.txt`` (previous), each at
most ``max_bytes // 2``; when the current file would grow past that it becomes
``log.1.txt`` (the older one is dropped), so the pair never takes more than
``max_bytes`` of flash.  ``atmq.log`` hands every line at or above the sink level
to ``sink``: error lines are written at once (the next thing may be a watchdog
reset), warnings are kept in a short list and written by ``flush`` (the app's task
every ``FLUSH_MS``, on a clean stop, or when 16 wait), so a burst of warnings
costs one flash write per 16 lines, not one per line.  Lines are redacted by
atmq.log before they get here.  A flash error never reaches the caller: it is
counted (``write_errors``, ``dropped``).

``context(app)`` is the string atmq.log adds to warning/error lines: the link
state (``link=up|down``), the registration (``reg=home``), the last link error's
table and code.
``tail(n)`` reads the last ``n`` lines back (the ``log`` command, the health
report), newest last, across both files.
"""

import os

from atmq import log as alog
from atmq.compat import const, sleep_ms
from atmq.recovery import RUNG_NAMES, STEP_NAMES

from . import fsutil

FLUSH_MS = const(10000)
# mirrored (folded at compile time: no global each, issue 11)
_STEP_OK = const(2)  # = atmq.recovery.STEP_OK
_STEP_FAIL = const(3)  # = atmq.recovery.STEP_FAIL
_PENDING_MAX = const(16)  # warnings waiting for the next flush; one more writes them all
# 3GPP 27.007 +CREG/+CGREG/+CEREG <stat> (003 s.4.2.1)
_REG = const(("none", "home", "searching", "denied", "unknown", "roaming", "sms-only"))
_NAME = const("log.txt")
_OLD = const("log.1.txt")


class FieldLog:
    def __init__(self, root, max_bytes=16384):
        self.dir = root + "/log"
        self.max_file = max(1024, max_bytes // 2)
        self.pending = []
        self.dropped = 0  # lines lost because flash refused them
        self.write_errors = 0
        self.written = 0  # lines on flash since boot
        fsutil.makedirs(self.dir)

    def _path(self, name):
        return self.dir + "/" + name

    def sink(self, line):
        """atmq.log's sink: errors to flash now, warnings at the next flush (or when
        ``_PENDING_MAX`` of them wait: a burst costs one write per that many lines)."""
        self.pending.append(line)
        if " E " in line[:24] or len(self.pending) >= _PENDING_MAX:  # "<ticks> E tag: ..."
            self.flush()

    def flush(self):
        """Append the pending lines to ``log.txt``, rotating first if it would overflow."""
        if not self.pending:
            return 0
        data = ("\n".join(self.pending) + "\n").encode()
        n = len(self.pending)
        self.pending = []
        cur = self._path(_NAME)
        try:
            if fsutil.size(cur) + len(data) > self.max_file:
                fsutil.remove_quiet(self._path(_OLD))
                os.rename(cur, self._path(_OLD))
            with open(cur, "ab") as f:
                f.write(data[-self.max_file:])  # one line longer than a file: its tail
        except OSError:
            self.write_errors += 1
            self.dropped += n
            return 0
        self.written += n
        return n

    def tail(self, count=20):
        """The last ``count`` lines on flash (oldest first), then those not yet written."""
        out = []
        for name in (_OLD, _NAME):
            data = fsutil.read_bytes(self._path(name), self.max_file + 1)
            if data:
                out.extend(bytes(data).decode("utf-8", "replace").split("\n"))
        out = [x for x in out if x] + self.pending
        return out[-count:] if count > 0 else []

    def stats(self):
        return {"written": self.written, "pending": len(self.pending),
                "dropped": self.dropped, "write_errors": self.write_errors}

    async def run(self):
        while True:
            await sleep_ms(FLUSH_MS)
            self.flush()


def context(app):
    """``link=up|down reg=<stat> last=<table> <code>``: what a warning line needs to be read
    later.  Reads the app's objects defensively: it runs inside any log call."""
    c = getattr(app, "client", None)
    parts = ["link=" + ("up" if c is not None and c.isconnected() else "down")]
    m = getattr(app, "modem", None)
    best = getattr(m, "best_stat", None)
    stat = best() if best is not None else -1
    if 0 <= stat < len(_REG):
        parts.append("reg=" + _REG[stat])
    e = getattr(app, "last_link_error", None)
    if e is not None and hasattr(e, "kind"):
        parts.append("last=%s %s" % (e.kind, e.code))
    return " ".join(parts)


def install(app, root, cfg=None):
    """The app's field log: the flash sink for warnings and errors, the link context,
    and the config's secrets registered for redaction.  Returns the ``FieldLog``."""
    fl = FieldLog(root)
    alog.set_sink(fl.sink)
    alog.set_level(sink=alog.WARN)
    alog.set_context(lambda: context(app))
    if cfg is not None:
        from . import config as _config

        alog.set_keep(cfg.get("log_ram_lines") or alog.KEEP)  # RAM: ~100 bytes a line
        for key in _config.SCHEMA:
            # the SIM PIN is 4-8 digits: blanked inside AT+CPIN=... by atmq.log instead of
            # replaced wherever those digits occur
            if _config.is_secret(key) and key != "sim_pin":
                v = cfg.get(key)
                if v:
                    alog.add_secret(v)
    return fl


def on_recovery(step, rung, detail):
    """``MQTTClient(on_recovery=...)``: the recovery steps worth reading later: a failed
    attempt (a warning with the modem error) and the one that restored service (info)."""
    name = RUNG_NAMES[rung] if 0 <= rung < len(RUNG_NAMES) else str(rung)
    if step == _STEP_FAIL:
        alog.warn("recovery", "%s failed: %s", name,
                  alog.exc(detail) if isinstance(detail, Exception) else detail)
    elif step == _STEP_OK:
        alog.info("recovery", "%s restored the link (attempt %s)", name, detail)
    elif 0 <= step < len(STEP_NAMES):
        alog.debug("recovery", "%s %s %s", STEP_NAMES[step], name, detail)
