"""The field log: one small leveled log shared by atmq and the telelogger.

Owns the levels, the last lines kept in RAM (a ring of ``KEEP`` lines, ``set_keep``),
the console echo, the one redaction every logged line goes through (secrets
registered with ``add_secret`` become ``<redacted>``), and the optional sink
that persists warning and error lines (the telelogger points it at a rotating
file on flash).  Library code logs through ``error``/``warn``/``info``/``debug``
with a short tag (``link``, ``mqtt``, ``uplink``...); nothing here allocates
more than the formatted line.

Error and warning lines carry the state of the link when a context function is
set (``set_context``: the telelogger's says ``link=down reg=searching``), and
``exc(e)`` writes an exception the way a reader of the log needs it: for a
``ModemError`` the table, the code, its class, the manual's meaning and the AT
command (``CMQTT 14 (client is busy): client is busy [AT+CMQTTSUB=0,9,1], transient``).

Line format: ``<ticks_ms> <E|W|I|D> <tag>[ <context>]: <message>``.
"""

from .compat import const, ticks_ms

ERROR = const(40)
WARN = const(30)
INFO = const(20)
DEBUG = const(10)
_NAMES = {ERROR: "E", WARN: "W", INFO: "I", DEBUG: "D"}
KEEP = const(16)  # lines kept in RAM by default (~100 bytes each; the ``log`` command)

_ring = [""] * KEEP  # "" = never written
_state = [0, INFO, WARN]  # next ring slot, console level, sink level
_secrets = []
_sink = [None]
_context = [None]
_counts = {ERROR: 0, WARN: 0}


def set_level(console=None, sink=None):
    """Lowest level echoed to the console / handed to the sink."""
    if console is not None:
        _state[1] = console
    if sink is not None:
        _state[2] = sink


def set_keep(count):
    """Keep the last ``count`` (>= 1) lines in RAM from now on; the newest stay."""
    count = max(1, count)
    if count != len(_ring):
        lines = tail(count)
        del _ring[:]
        for i in range(count):
            _ring.append(lines[i] if i < len(lines) else "")
        _state[0] = len(lines) % count


def set_sink(fn):
    """``fn(line)`` receives every line at or above the sink level (None: no sink)."""
    _sink[0] = fn


def set_context(fn):
    """``fn()`` -> a short str added to every error and warning line (None: none)."""
    _context[0] = fn


def exc(e):
    """One line for an exception: a ``ModemError`` with its table, code, class, the
    manual's meaning and the AT command; anything else as ``Type: message``."""
    kind = getattr(e, "kind", None)
    if kind is not None and hasattr(e, "code"):
        from .errtab import CLASS_NAMES

        cls = getattr(e, "cls", 4)
        name = CLASS_NAMES[cls] if 0 <= cls < len(CLASS_NAMES) else "?"
        text = str(e)  # "CME 30 (no nw service): ... [AT+CEREG?]": table and code first
        if not text.startswith(kind):
            text = "%s %s %s" % (kind, e.code, text)
        return "%s, %s" % (text, name.lower())
    return "%s: %s" % (type(e).__name__, e)


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
    # a SIM PIN/PUK is too short to replace wherever its digits occur (time stamps, codes):
    # the quoted arguments of AT+CPIN="<pin>"[,"<new pin>"] (003 s.6.2.2) are blanked
    i = text.find("CPIN=")
    if i >= 0:
        j = i + 5
        while j < len(text) and text[j] == '"':
            k = text.find('"', j + 1)
            if k < 0:
                text = text[:j + 1] + "<redacted>"
                break
            text = text[:j + 1] + "<redacted>" + text[k:]
            j += 12  # past '"<redacted>"'
            if text[j:j + 1] != ",":
                break
            j += 1
    return text


def _emit(level, tag, fmt, args):
    try:
        msg = fmt % args if args else fmt
    except (TypeError, ValueError):
        msg = "%s %r" % (fmt, args)
    ctx = ""
    fn = _context[0]
    if fn is not None and level >= WARN:
        try:
            ctx = " [" + fn() + "]"
        except Exception:  # a broken context must not lose the line
            ctx = " [?]"
    line = redact("%d %s %s%s: %s" % (ticks_ms(), _NAMES.get(level, "?"), tag, ctx, msg))
    slot = _state[0]
    _ring[slot] = line
    _state[0] = (slot + 1) % len(_ring)
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


def tail(count=64):
    """The last ``count`` lines, oldest first (at most the ring's)."""
    keep = len(_ring)
    count = min(count, keep)
    out = []
    start = _state[0] - count
    for i in range(count):
        line = _ring[(start + i) % keep]
        if line:
            out.append(line)
    return out


def counts():
    """(errors, warnings) logged since start."""
    return _counts[ERROR], _counts[WARN]


def reset():
    """Forget lines, counts, secrets, sink and context (tests; a fresh start)."""
    for i in range(len(_ring)):
        _ring[i] = ""
    set_keep(KEEP)
    _state[0] = 0
    _counts[ERROR] = 0
    _counts[WARN] = 0
    _sink[0] = None
    _context[0] = None
    clear_secrets()
