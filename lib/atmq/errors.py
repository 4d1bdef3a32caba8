"""The package's exceptions: modem errors that carry the manual's code, and bad config.

``ModemError`` holds the table kind and code (see ``errtab``), the AT command
that failed and the code's class, so a caller decides retry / fix state /
give up from ``e.cls`` without parsing text.  ``str(e)`` is the manual's
wording plus the command.  Plain positional ``__init__`` arguments only:
MicroPython exceptions take no keyword tricks.
"""

from . import errtab
from . import log

# Commands whose quoted arguments from the n-th on carry a secret (issue 10 #5): the
# MQTT password (003 s.16.2.8 <server_addr>,..,<user>,<pass>), APN user and password
# (5.2.11 <passwd>,<user>), SM family PASSWORD (seed 004 3.1), SAPBR PWD/USER (004 4.1),
# CSOCKAUTH (003 s.13); AT+CPIN= (6.2.2) masks everything after "=" (quoted or not).
_MASKS = (
    ("AT+CMQTTCONNECT=", 2),
    ("AT+CGAUTH=", 0),
    ("AT+CSOCKAUTH=", 0),
    ('AT+SMCONF="PASSWORD"', 1),
    ('AT+SMCONF="USERNAME"', 1),
    ('AT+SAPBR=3,1,"PWD"', 1),
    ('AT+SAPBR=3,1,"USER"', 1),
    ("AT+CPIN=", -1),
)


def redact_command(text):
    """``text`` (one AT command, str) with its secret arguments as ``***`` and every
    secret registered with ``log.add_secret`` as ``<redacted>``: the one redaction every
    error and log line that names a command goes through."""
    up = text.upper()
    for prefix, first in _MASKS:
        k = up.find(prefix)
        if k < 0:
            continue
        if first < 0:
            text = text[:k + len(prefix)] + "***"
            break
        out = []
        n = -1  # index of the quoted string we are in or last left
        inq = False
        out.append(text[:k])
        for c in text[k:]:
            if c == '"':
                if not inq:
                    n += 1
                inq = not inq
                out.append(c)
                if inq and n >= first:
                    out.append("***")
                continue
            if inq and n >= first:
                continue
            out.append(c)
        text = "".join(out)
        break
    return log.redact(text)


def _redacted(command):
    # The command as kept in an exception: same type, secrets masked (repr(e) and e.args
    # show it too, not only str(e)).
    if isinstance(command, (bytes, bytearray, memoryview)):
        try:
            t = bytes(command).decode()
        except Exception:  # a binary payload: nothing to mask in a form we can read
            return bytes(command)
        r = redact_command(t)
        return command if r == t else r.encode()
    if isinstance(command, str):
        return redact_command(command)
    return command


def _cmd_text(command):
    if command is None:
        return ""
    if isinstance(command, (bytes, bytearray, memoryview)):
        try:
            command = bytes(command).decode()
        except Exception:  # a binary payload: show it escaped, lose nothing
            command = repr(bytes(command))
    return " [" + redact_command(command).strip() + "]"


class ModemError(Exception):
    """The modem answered a command with an error code from one of errtab's tables.

    ``kind``: errtab kind ("CME", "CMQTT", ...) or "TIMEOUT" / "AT";
    ``code``: int (-1 when the modem gave none); ``command``: bytes or str of
    the AT command, or None; ``cls``: errtab.TRANSIENT/STATE/FATAL/UNKNOWN.
    """

    def __init__(self, kind, code, command=None):
        command = _redacted(command)
        super().__init__(kind, code, command)
        self.kind = kind
        self.code = code
        self.command = command
        try:
            self.cls = errtab.cls_of(kind, code)
        except (ValueError, TypeError):
            self.cls = errtab.UNKNOWN

    def __str__(self):
        return errtab.describe(self.kind, self.code) + _cmd_text(self.command)


class ATTimeout(ModemError):
    """No final result code within ``timeout_ms``; worth a retry (TRANSIENT)."""

    def __init__(self, command, timeout_ms):
        super().__init__("TIMEOUT", -1, command)
        self.timeout_ms = timeout_ms
        self.cls = errtab.TRANSIENT

    def __str__(self):
        return "TIMEOUT: no final result within %d ms%s" % (
            self.timeout_ms,
            _cmd_text(self.command),
        )


class ATError(ModemError):
    """A bare ``ERROR`` (or other non-OK final, named by ``final``): no code, class UNKNOWN."""

    def __init__(self, command=None, final="ERROR"):
        super().__init__("AT", -1, command)
        self.final = final

    def __str__(self):
        return "AT %s (no code given)%s" % (self.final, _cmd_text(self.command))


class ConfigError(ValueError):
    """A configuration or board file value is wrong; ``key`` names it (dotted path)."""

    def __init__(self, key, problem):
        # one string argument: MicroPython prints an uncaught exception from its args (a
        # tuple repr otherwise), not from __str__
        super().__init__("config key %r: %s" % (key, problem))
        self.key = key
        self.problem = problem

    def __str__(self):
        return "config key %r: %s" % (self.key, self.problem)
