"""AT traffic capture to flash: the engine's bytes teed into rotating ``.atx`` transcripts.

Owns the ``Engine.tap`` object.  ``start()`` opens ``<dir>/cap-<n>.atx``
(docs/transcript-format.md, written by ``atmq.atx.Writer``) and sets
``at.tap``; every TX and RX chunk becomes a record with its delay.  A file
that reaches ``capture_max_bytes`` is closed and the next one opened; only the
newest ``capture_max_files`` are kept, so capture is bounded on flash.

Secrets never reach the file (redaction happens before the writer sees the
bytes): the body after ``AT+CCERTDOWN`` (certificates and private keys),
the quoted user/password of ``AT+CMQTTCONNECT``, ``AT+CGAUTH``,
``AT+CSOCKAUTH``, ``AT+SMCONF="USERNAME"/"PASSWORD"``, ``AT+SAPBR=3,1,"USER"/"PWD"``,
the SIM PIN of ``AT+CPIN=`` and the key file of ``AT+CSSLCFG="clientkey"`` are
replaced by ``<redacted>``; each redaction is noted in a comment.

Flash budget: the spool has priority.  Capture may use at most half of the
flash that is free and not still promised to the spool (its ``max_bytes`` not
yet used) less a margin for the small state files; the file size is cut so
that ``capture_max_files`` files fit in that, a start with no room is refused
(``status()["error"]``), and capture stops first (``stopped``: "flash budget")
when the free flash shrinks under what it holds, checked every few KB.

RX goes through ``rxredact.RxRedactor`` (inbound MQTT commands that set a
secret key, secret values read back, PEM private keys), which holds back the
few bytes that may still be a secret split across UART reads.  Held bytes are
released by the next reads, by ``idle()`` once the line was quiet for
``IDLE_FLUSH_MS`` (the app calls it from a task: it shows what reveals nothing
and keeps matching it) and by ``stop()``; they carry over to the next file on
rotation and stay held across a TX (so a TX written meanwhile can come before
them: a secret's first half is never forced out).
"""

import os

from atmq.compat import const, ticks_diff, ticks_ms

from . import config as _config
from . import fsutil

# atmq.atx and tlog.rxredact are imported by the first start(): ~2 KB of heap (module and
# class objects) that a device with capture off never pays.  Same bytes as
# rxredact.REDACTED, which marks a hidden RX secret (compared by identity in _rx_out).
REDACTED = b"<redacted>"

IDLE_FLUSH_MS = const(1000)  # a quiet line: what is held is not the start of a secret
FLASH_MARGIN = const(16384)  # kept free for config, cursor, lease and littlefs metadata
MIN_FILE = const(2048)  # a capture file smaller than this tells nothing: refuse instead
_CHECK_EVERY = const(4096)  # bytes written between two free-flash checks
# command prefix -> index of the first quoted argument to hide (all later quoted ones too)
_SECRET_ARGS = const((
    (b"AT+CMQTTCONNECT=", 1),  # "tcp://host:port",ka,clean,"user","password"
    (b"AT+CGAUTH=", 0),
    (b"AT+CSOCKAUTH=", 0),
    (b'AT+SMCONF="USERNAME"', 1),
    (b'AT+SMCONF="PASSWORD"', 1),
    (b'AT+SAPBR=3,1,"USER"', 1),
    (b'AT+SAPBR=3,1,"PWD"', 1),
    (b"AT+CPIN=", 0),
    (b'AT+CSSLCFG="clientkey"', 1),
    (b'AT+CSSLCFG="psktable"', 1),
))


def redact_command(line):
    """``line`` (a TX chunk) with secret quoted arguments replaced; (bytes, hidden or None)."""
    b = bytes(line)
    up = b.upper()
    for prefix, first in _SECRET_ARGS:
        if up.startswith(prefix.upper()):
            out = bytearray()
            q = 0  # quoted arguments seen
            i = 0
            n = len(b)
            while i < n:
                c = b[i]
                if c == 34:  # '"'
                    j = b.find(b'"', i + 1)
                    if j < 0:
                        j = n - 1
                    if q >= first:
                        out += b'"' + REDACTED + b'"'
                    else:
                        out += b[i:j + 1]
                    q += 1
                    i = j + 1
                    continue
                out.append(c)
                i += 1
            if b.startswith(b"AT+CPIN=") and q == 0:  # unquoted PIN form
                out = bytearray(b"AT+CPIN=" + REDACTED + b[len(b.rstrip(b"\r")):])
            return bytes(out), prefix.decode()
    return b, None


class _FlashLow(Exception):
    """Capture has no room left in its share of the free flash (args[0]: its budget)."""


class _Counted:
    """A text file that counts what was written (the rotation size)."""

    def __init__(self, path):
        self.f = open(path, "w")
        self.n = 0

    def write(self, s):
        self.f.write(s)
        self.n += len(s)

    def flush(self):
        self.f.flush()

    def close(self):
        self.f.close()


class Capture:
    def __init__(self, at, cfg, folder, clock=ticks_ms, meta=None, spool=None, free=None):
        self.spool = spool  # the spool's unused max_bytes are not capture's to take
        self._free = free or fsutil.free_bytes  # (path) -> free bytes, -1 unknown
        self.file_max = 0  # the current file's size limit (config, cut by the budget)
        self.stopped = None  # why capture stopped by itself ("flash budget", an error)
        self._on_flash = 0  # bytes of the kept closed files
        self._check_at = 0
        self.at = at
        self.cfg = cfg
        self.folder = folder
        self.clock = clock
        self.meta = meta  # callable -> dict of @metadata for each new file
        self.active = False
        self._file = None
        self._w = None
        self.path = None
        self._last = 0
        self._body = False  # the next TX is a certificate/key body (after AT+CCERTDOWN)
        self.files = 0  # files opened since boot
        self.bytes = 0  # bytes written to closed files + the current one
        self.redactions = 0
        self.errors = 0
        self.last_error = None
        self._rx = None  # the RxRedactor, made by the first start() (~1 KB window)
        self._rx_marker = None  # rxredact.REDACTED once imported
        self._rx_delay = 0  # ms since the last record, for the next RX bytes written
        self._rx_last = 0  # ticks of the last RX chunk
        self._seq = self._next_index()
        if cfg.get("capture_enable"):
            # on at boot: its ~1 KB window now, while the heap is in one piece (made at
            # start(), after the tasks, it failed at 88K with 15 KB free in pieces)
            self._make_rx()

    def _make_rx(self):
        from . import rxredact

        self._rx_marker = rxredact.REDACTED
        rx = self._rx = rxredact.RxRedactor(self._rx_out)
        return rx

    def _names(self):
        try:
            names = [n for n in os.listdir(self.folder)
                     if n.startswith("cap-") and n.endswith(".atx")]
        except OSError:
            return []
        names.sort(key=lambda n: int(n[4:-4]) if n[4:-4].isdigit() else -1)
        return names

    def _next_index(self):
        names = self._names()
        if not names:
            return 0
        last = names[-1][4:-4]
        return int(last) + 1 if last.isdigit() else 0

    def _kept_bytes(self):
        n = 0
        for name in self._names():
            k = fsutil.size(self.folder + "/" + name)
            if k > 0:
                n += k
        return n

    def budget(self):
        """Bytes capture may hold on flash now (-1: the free space is unknown)."""
        free = self._free(self.folder)
        if free < 0:
            return -1
        need = 0
        sp = self.spool
        if sp is not None:
            need = max(0, sp.max_bytes - sp.flash_used())
        cur = self._file.n if self._file is not None else 0
        return max(0, (free + self._on_flash + cur - need - FLASH_MARGIN) // 2)

    def _open(self):
        fsutil.makedirs(self.folder)
        keep = self.cfg.get("capture_max_files")
        names = self._names()
        while len(names) >= keep:  # room for the new file first
            fsutil.remove_quiet(self.folder + "/" + names.pop(0))
        self._on_flash = self._kept_bytes()
        limit = self.cfg.get("capture_max_bytes")
        total = self.budget()
        if total >= 0:
            limit = min(limit, total // keep)
            if limit < MIN_FILE:
                raise _FlashLow(total)
        self.file_max = limit
        self._check_at = _CHECK_EVERY
        path = "%s/cap-%d.atx" % (self.folder, self._seq)
        self._seq += 1
        self._file = _Counted(path)
        self.path = path
        from atmq import atx

        self._w = atx.Writer(self._file)
        if self._rx is not None:  # values set meanwhile are hidden from this file on
            self._rx.set_values(self._secret_values())
        self._w.comment("tlog capture %s" % path)
        if self.meta is not None:
            m = self.meta()
            for k in m:
                if m[k] is not None:
                    self._w.meta(k, m[k])
        self._last = self.clock()
        self.files += 1
        return path

    def _close(self):
        if self._file is not None:
            self.bytes += self._file.n
            self._on_flash += self._file.n
            self._file.close()
        self._file = None
        self._w = None

    def _secret_values(self):
        cfg = self.cfg
        return [cfg.get(k) for k in _config.SCHEMA if _config.is_secret(k)]

    def start(self):
        if not self.active:
            rx = self._rx if self._rx is not None else self._make_rx()
            rx.reset()
            self._rx_delay = 0
            try:
                self._open()
            except _FlashLow as e:
                self.stopped = "flash budget: %d B for capture, %d B per file needed" % (
                    e.args[0], MIN_FILE)
                return self.status()
            self.stopped = None
            self.active = True
            self.at.tap = self
        return self.status()

    def stop(self):
        if self.active:
            self.at.tap = None
            self.flush()
            self.active = False
            self._close()
        return self.status()

    def status(self):
        cur = self._file.n if self._file is not None else 0
        st = {"active": self.active, "file": self.path if self.active else None,
              "files": self._names(), "bytes": self.bytes + cur,
              "redactions": self.redactions}
        if self.active:
            st["file_max"] = self.file_max
        if self.stopped is not None and not self.active:
            st["error"] = self.stopped
        return st

    # ---- the tap (called by the engine; must never raise into it) ---------------------------

    def _delay(self):
        now = self.clock()
        d = ticks_diff(now, self._last)
        self._last = now
        return d if d > 0 else 0

    def _after_write(self):
        f = self._file
        if f is None:
            return
        if f.n >= self.file_max:
            self._close()
            self._open()  # _FlashLow: the tap's caller stops capture (flash budget)
        elif f.n >= self._check_at:
            self._check_at = f.n + _CHECK_EVERY
            total = self.budget()
            if total >= 0 and self._on_flash + f.n > total:
                raise _FlashLow(total)

    def tx(self, buf, n):
        w = self._w
        if w is None:
            return
        try:
            data = memoryview(buf)[:n]
            if self._body:
                self._body = False
                self.redactions += 1
                w.comment("redacted %d bytes (certificate or key body)" % n)
                w.tx(REDACTED, self._delay())
            else:
                line, hidden = redact_command(data)
                if hidden is not None:
                    self.redactions += 1
                    w.comment("redacted secrets of " + hidden)
                elif bytes(data[:13]).upper() == b"AT+CCERTDOWN=":
                    self._body = True
                w.tx(line, self._delay())
            self._after_write()
        except Exception as e:  # a full flash must not break the modem link
            self._fail(e)

    def rx(self, buf, n):
        r = self._rx
        if self._w is None or r is None:
            return
        try:
            self._rx_delay += self._delay()
            self._rx_last = self._last
            r.feed(buf, n)
            self._after_write()
        except Exception as e:
            self._fail(e)

    def _rx_out(self, data):
        """The redactor's output: RX bytes as they may be written (or its marker)."""
        w = self._w
        if w is None:
            return
        if data is self._rx_marker:
            self.redactions += 1
            w.comment("redacted a secret in RX")
        w.rx(data, self._rx_delay)
        self._rx_delay = 0

    def flush(self, idle=False):
        """Write the RX bytes held back and flush the file.  ``idle``: only what reveals
        nothing (RxRedactor.idle_flush); else pending ones are decided the safe way."""
        r = self._rx
        if self._w is None or r is None:
            return
        try:
            if r.pending:
                self._rx_delay += self._delay()
                if idle:
                    r.idle_flush()
                else:
                    r.flush()
            f = self._file
            if f is not None:
                f.flush()
            self._after_write()
        except Exception as e:
            self._fail(e)

    def idle(self):
        """Flush held RX bytes once the line has been quiet for IDLE_FLUSH_MS."""
        r = self._rx
        if r is not None and r.pending and self._w is not None:
            if ticks_diff(self.clock(), self._rx_last) >= IDLE_FLUSH_MS:
                self.flush(True)

    def _fail(self, e):
        if isinstance(e, _FlashLow):
            self.stopped = "flash budget: the spool needs the free flash"
        else:
            self.errors += 1
            self.last_error = e
            self.stopped = "error: %r" % (e,)
        self.at.tap = None
        self.active = False
        try:
            self._close()
        except Exception:
            pass
