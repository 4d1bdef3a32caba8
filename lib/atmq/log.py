"""The field log: one small leveled log shared by atmq and the telelogger.

Owns the levels, the last lines kept in RAM (a fixed ring of ``_KEEP`` lines),
the console echo, the one redaction every logged line goes through (secrets
registered with ``add_secret`` become ``<redacted>``), and the optional sink
that persists warning and error lines (the telelogger points it at a rotating
file on flash).  Library code logs through ``error``/``warn``/``info``/``debug``
with a short tag (``link``, ``mqtt``, ``uplink``...); nothing here allocates
more than the formatted line.
"""

from .compat import const, ticks_ms

ERROR = const(40)
WARN = const(30)
INFO = const(20)
DEBUG = const(10)
_NAMES = {ERROR: "E", WARN: "W", INFO: "I", DEBUG: "D"}
_KEEP = const(32)

_ring = [""] * _KEEP  # "" = empty slot (str-typed for pyright)
_state = [0, INFO, WARN]  # next ring slot, console level, sink level
_secrets = []
_sink = [None]
_counts = {ERROR: 0, WARN: 0}


def set_level(console=None, sink=None):
    """Lowest level echoed to the console / handed to the sink."""
    if console is not None:
        _state[1] = console
    if sink is not None:
        _state[2] = sink


def set_sink(fn):
    """``fn(line)`` receives every line at or above the sink level (None: no sink)."""
    _sink[0] = fn


def add_secret(value):
    """Register a secret (str or bytes); it never appears in a logged line."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if value and len(value) >= 3 and value not in _secrets:
        _secrets.append(value)


def clear_secrets():
    del _secrets[:]


def redact(text):
    """``text`` (str or bytes) as str with every registered secret replaced."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "<redacted>")
    return text


def _emit(level, tag, fmt, args):
    try:
        msg = fmt % args if args else fmt
    except (TypeError, ValueError):
        msg = "%s %r" % (fmt, args)
    line = redact("%d %s %s: %s" % (ticks_ms(), _NAMES.get(level, "?"), tag, msg))
    slot = _state[0]
    _ring[slot] = line
    _state[0] = (slot + 1) % _KEEP
    if level in _counts:
        _counts[level] += 1
    if level >= _state[1]:
        print(line)
    sink = _sink[0]
    if sink is not None and level >= _state[2]:
        try:
            sink(line)
        except Exception:  # a full or broken flash must not stop the caller
            pass
    return line


def error(tag, fmt, *args):
    return _emit(ERROR, tag, fmt, args)


def warn(tag, fmt, *args):
    return _emit(WARN, tag, fmt, args)


def info(tag, fmt, *args):
    return _emit(INFO, tag, fmt, args)


def debug(tag, fmt, *args):
    if _state[1] <= DEBUG or (_sink[0] is not None and _state[2] <= DEBUG):
        return _emit(DEBUG, tag, fmt, args)
    return None


def tail(count=_KEEP):
    """The last ``count`` lines, oldest first."""
    count = min(count, _KEEP)
    out = []
    start = _state[0] - count
    for i in range(count):
        line = _ring[(start + i) % _KEEP]
        if line:
            out.append(line)
    return out


def counts():
    """(errors, warnings) logged since start."""
    return _counts[ERROR], _counts[WARN]
