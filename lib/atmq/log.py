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
KEEP = const(16)  # lines kept in RAM by default (~100 bytes each; the ``log`` command)

_ring = [""] * KEEP  # "" = never written
# next ring slot, console level, sink level, errors and warnings logged, sink, context:
# one list, not five globals (issue 11: each module global and each small dict or list
# costs heap for the whole boot)
_state = [0, INFO, WARN, 0, 0, None, None]
_S_SLOT = const(0)
_S_CONSOLE = const(1)
_S_SINK_LEVEL = const(2)
_S_ERRORS = const(3)
_S_WARNS = const(4)
_S_SINK = const(5)
_S_CONTEXT = const(6)
_secrets = []


def set_level(console=None, sink=None):
    """Lowest level echoed to the console / handed to the sink."""
    if console is not None:
        _state[_S_CONSOLE] = console
    if sink is not None:
        _state[_S_SINK_LEVEL] = sink


def set_keep(count):
    """Keep the last ``count`` (>= 1) lines in RAM from now on; the newest stay."""
    count = max(1, count)
    if count != len(_ring):
        lines = tail(count)
        del _ring[:]
        for i in range(count):
            _ring.append(lines[i] if i < len(lines) else "")
        _state[_S_SLOT] = len(lines) % count


def set_sink(fn):
    """``fn(line)`` receives every line at or above the sink level (None: no sink)."""
    _state[_S_SINK] = fn


def set_context(fn):
    """``fn()`` -> a short str added to every error and warning line (None: none)."""
    _state[_S_CONTEXT] = fn


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
    fn = _state[_S_CONTEXT]
    if fn is not None and level >= WARN:
        try:
            ctx = " [" + fn() + "]"
        except Exception:  # a broken context must not lose the line
            ctx = " [?]"
    # the level's letter: D I W E for 10 20 30 40
    name = "DIWE"[level // 10 - 1] if level in (DEBUG, INFO, WARN, ERROR) else "?"
    line = redact("%d %s %s%s: %s" % (ticks_ms(), name, tag, ctx, msg))
    slot = _state[_S_SLOT]
    _ring[slot] = line
    _state[_S_SLOT] = (slot + 1) % len(_ring)
    if level == ERROR:
        _state[_S_ERRORS] += 1
    elif level == WARN:
        _state[_S_WARNS] += 1
    if level >= _state[_S_CONSOLE]:
        print(line)
    sink = _state[_S_SINK]
    if sink is not None and level >= _state[_S_SINK_LEVEL]:
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
    if _state[_S_CONSOLE] <= DEBUG or (_state[_S_SINK] is not None
                                       and _state[_S_SINK_LEVEL] <= DEBUG):
        return _emit(DEBUG, tag, fmt, args)
    return None


def tail(count=64):
    """The last ``count`` lines, oldest first (at most the ring's)."""
    keep = len(_ring)
    count = min(count, keep)
    out = []
    start = _state[_S_SLOT] - count
    for i in range(count):
        line = _ring[(start + i) % keep]
        if line:
            out.append(line)
    return out


def counts():
    """(errors, warnings) logged since start."""
    return _state[_S_ERRORS], _state[_S_WARNS]


def reset():
    """Forget lines, counts, secrets, sink and context (tests; a fresh start)."""
    for i in range(len(_ring)):
        _ring[i] = ""
    set_keep(KEEP)
    _state[_S_SLOT] = 0
    _state[_S_ERRORS] = 0
    _state[_S_WARNS] = 0
    _state[_S_SINK] = None
    _state[_S_CONTEXT] = None
    clear_secrets()
