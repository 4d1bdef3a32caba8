"""Strict JSON (RFC 8259) syntax check, so the board and the host agree on what is JSON.

MicroPython's ``json.loads`` is lenient: it accepts ``{"a": 1,}``, ``[1 2]`` and
``01``, which CPython's ``json`` (what tools/deploy.py checks with) refuses.  Config
and board files go through ``check(data)`` before ``json.loads`` on the device, so a
file is valid on both sides or on neither.  Boot-time only: a small recursive
descent over the bytes, no values built.  ``check`` raises ``ValueError`` whose
message names the line and column, as CPython's does.
"""

from .compat import const

_WS = const(b" \t\r\n")
_MAX_DEPTH = const(32)


def _fail(data, i, what):
    line = data.count(b"\n", 0, i) + 1
    col = i - (data.rfind(b"\n", 0, i) + 1) + 1
    return ValueError("%s: line %d column %d" % (what, line, col))


def _ws(data, i):
    n = len(data)
    while i < n and data[i] in _WS:
        i += 1
    return i


def _string(data, i):
    n = len(data)
    i += 1  # opening quote
    while i < n:
        c = data[i]
        if c == 0x22:
            return i + 1
        if c == 0x5C:
            if i + 1 >= n:
                break
            e = data[i + 1]
            if e == 0x75:  # \uXXXX
                for k in range(i + 2, i + 6):
                    if k >= n or data[k] not in b"0123456789abcdefABCDEF":
                        raise _fail(data, i, "bad \\u escape")
                i += 6
                continue
            if e not in b'"\\/bfnrt':
                raise _fail(data, i, "bad escape")
            i += 2
            continue
        if c < 0x20:
            raise _fail(data, i, "control character in a string")
        i += 1
    raise _fail(data, i, "unterminated string")


def _number(data, i):
    n = len(data)
    s = i
    if i < n and data[i] == 0x2D:
        i += 1
    if i < n and data[i] == 0x30:
        i += 1
    elif i < n and 0x31 <= data[i] <= 0x39:
        while i < n and 0x30 <= data[i] <= 0x39:
            i += 1
    else:
        raise _fail(data, s, "expecting a value")
    if i < n and data[i] == 0x2E:
        i += 1
        if not (i < n and 0x30 <= data[i] <= 0x39):
            raise _fail(data, i, "expecting a digit")
        while i < n and 0x30 <= data[i] <= 0x39:
            i += 1
    if i < n and data[i] in b"eE":
        i += 1
        if i < n and data[i] in b"+-":
            i += 1
        if not (i < n and 0x30 <= data[i] <= 0x39):
            raise _fail(data, i, "expecting a digit")
        while i < n and 0x30 <= data[i] <= 0x39:
            i += 1
    if i < n and 0x30 <= data[i] <= 0x39:
        raise _fail(data, i, "leading zero")
    return i


def _value(data, i, depth):
    i = _ws(data, i)
    if i >= len(data):
        raise _fail(data, i, "expecting a value")
    c = data[i]
    if c == 0x22:
        return _string(data, i)
    if c == 0x7B or c == 0x5B:  # { or [
        if depth >= _MAX_DEPTH:
            raise _fail(data, i, "nested too deep")
        close = 0x7D if c == 0x7B else 0x5D
        i = _ws(data, i + 1)
        if i < len(data) and data[i] == close:
            return i + 1
        while True:
            if c == 0x7B:
                i = _ws(data, i)
                if i >= len(data) or data[i] != 0x22:
                    raise _fail(data, i, "expecting a property name in double quotes")
                i = _ws(data, _string(data, i))
                if i >= len(data) or data[i] != 0x3A:
                    raise _fail(data, i, "expecting ':'")
                i += 1
            i = _ws(data, _value(data, i, depth + 1))
            if i < len(data) and data[i] == 0x2C:
                i += 1
                continue
            if i < len(data) and data[i] == close:
                return i + 1
            raise _fail(data, i, "expecting ',' or '%s'" % chr(close))
    for word in (b"true", b"false", b"null"):
        if data[i:i + len(word)] == word:
            return i + len(word)
    return _number(data, i)


def check(data):
    """Return if ``data`` (bytes or str) is one strict JSON value; else ValueError."""
    if isinstance(data, str):
        data = data.encode()
    i = _ws(data, _value(data, 0, 0))
    if i != len(data):
        raise _fail(data, i, "extra data")
