"""The ``.atx`` modem transcript format, version 1 (shared/docs/transcript-format.md).

Owns the byte escaping, the line grammar, a strict reader and a light writer.
The writer is what a device uses to capture a UART session, so it allocates
only per record and keeps no state beyond "has a record been written yet".

A line is a comment (``#``), metadata (``@key value``, only before the first
record), or a record ``DIR [+MS] DATA`` with DIR ``>`` (host to modem) or
``<`` (modem to host).  DATA keeps printable ASCII other than ``\\`` as is and
escapes everything else as ``\\r \\n \\t \\\\ \\xHH`` (lowercase hex); a space
that ends the line is written ``\\x20``.
"""

TX = ">"
RX = "<"

_HEX = "0123456789abcdef"
_ESCAPES = {13: "\\r", 10: "\\n", 9: "\\t", 92: "\\\\"}
_UNESCAPES = {"r": 13, "n": 10, "t": 9, "\\": 92}


def escape(data):
    """Bytes (bytes, bytearray or memoryview) -> the DATA text of a record."""
    out = []
    n = len(data)
    start = 0
    for i in range(n):
        b = data[i]
        if b < 32 or b > 126 or b == 92:
            if start < i:
                out.append(bytes(data[start:i]).decode())
            e = _ESCAPES.get(b)
            if e is None:
                e = "\\x" + _HEX[b >> 4] + _HEX[b & 15]
            out.append(e)
            start = i + 1
    if start < n:
        out.append(bytes(data[start:n]).decode())
    text = "".join(out)
    if text.endswith(" "):  # editors strip trailing blanks; the format forbids a bare one
        text = text[:-1] + "\\x20"
    return text


def _check_plain(text, col):
    for k in range(len(text)):
        c = text[k]
        if c < " " or c > "~":
            raise ValueError(
                "column %d: character %r must be written as an escape" % (col + k + 1, c)
            )


def unescape(text):
    """The DATA text of a record -> bytes.  ValueError names the bad escape."""
    out = bytearray()
    i = 0
    n = len(text)
    while i < n:
        j = text.find("\\", i)
        if j < 0:
            j = n
        if j > i:
            chunk = text[i:j]
            _check_plain(chunk, i)
            out.extend(chunk.encode())
        if j == n:
            break
        if j + 1 >= n:
            raise ValueError("column %d: lone backslash at the end of the data" % (j + 1))
        c = text[j + 1]
        b = _UNESCAPES.get(c)
        if b is not None:
            out.append(b)
            i = j + 2
            continue
        if c != "x":
            raise ValueError("column %d: bad escape '\\%s'" % (j + 1, c))
        hh = text[j + 2 : j + 4]
        if len(hh) != 2 or hh[0] not in _HEX or hh[1] not in _HEX:
            raise ValueError(
                "column %d: bad escape '\\x%s' (needs two lowercase hex digits)" % (j + 1, hh)
            )
        out.append(_HEX.find(hh[0]) * 16 + _HEX.find(hh[1]))
        i = j + 4
    if n and text[n - 1] == " ":
        raise ValueError("a space that ends the data must be written \\x20")
    return bytes(out)


def parse_line(line):
    """One line (its terminator optional) -> None for a comment or blank line,
    ``("meta", key, value)``, or ``(dir, ms, data)`` with dir ``">"`` or ``"<"``."""
    if line.endswith("\n"):
        line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
    if not line or not line.strip():
        return None
    c = line[0]
    if c == "#":
        return None
    if c == "@":
        sp = line.find(" ")
        key = line[1:] if sp < 0 else line[1:sp]
        if not key:
            raise ValueError("metadata line without a key")
        return ("meta", key, "" if sp < 0 else line[sp + 1 :])
    if c != TX and c != RX:
        raise ValueError("a line starts with '#', '@', '> ' or '< ', not %r" % c)
    if len(line) < 2 or line[1] != " ":
        raise ValueError("'%s' must be followed by exactly one space" % c)
    rest = line[2:]
    ms = 0
    timed = False
    if rest.startswith("+"):
        k = 1
        while k < len(rest) and "0" <= rest[k] <= "9":
            k += 1
        if k > 1 and (k == len(rest) or rest[k] == " "):
            ms = int(rest[1:k])
            timed = True
            rest = rest[k + 1 :]
    if not rest and not timed:
        raise ValueError("empty record (only a +MS pause may have no data)")
    return (c, ms, unescape(rest))


def _read_lines(lines):
    meta = {}
    records = []
    lineno = 0
    for line in lines:
        lineno += 1
        if not isinstance(line, str):
            line = bytes(line).decode()
        try:
            r = parse_line(line)
        except ValueError as e:
            raise ValueError("line %d: %s" % (lineno, e.args[0] if e.args else e)) from None
        if r is None:
            continue
        if r[0] == "meta":
            if records:
                raise ValueError("line %d: metadata @%s after the first record" % (lineno, r[1]))
            key = r[1]
            # a repeated key continues the value on a new line (multi-line @note)
            meta[key] = meta[key] + "\n" + r[2] if key in meta else r[2]
        else:
            records.append((lineno, r[0], r[1], r[2]))
    return meta, records


def read(lines_or_path):
    """A path, or an iterable of lines (str or bytes) -> ``(meta, records)``.

    ``records`` is a list of ``(lineno, dir, ms, data)``.  Any malformed line
    raises ValueError that starts with ``line N:``."""
    if isinstance(lines_or_path, str):
        with open(lines_or_path, "rb") as f:
            return _read_lines(f)
    return _read_lines(lines_or_path)


def _split_rx(data):
    """Split points for readability: after each LF, and after a CR that is
    followed by CR (the end of a command echo, "AT\\r" + "\\r\\nOK").  A piece
    that is only CR/LF joins the next piece so responses read "\\r\\nOK\\r\\n"."""
    pieces = []
    n = len(data)
    start = 0
    for i in range(n):
        b = data[i]
        if b == 10 or (b == 13 and i + 1 < n and data[i + 1] == 13):
            pieces.append((start, i + 1))
            start = i + 1
    if start < n:
        pieces.append((start, n))
    merged = []
    lead = -1
    for a, b in pieces:
        if lead < 0:
            lead = a
        bare = True
        for k in range(a, b):
            if data[k] != 10 and data[k] != 13:
                bare = False
                break
        if bare and b < n:
            continue
        merged.append((lead, b))
        lead = -1
    return merged


class Writer:
    """Writes a transcript to a text stream (anything with ``write(str)``) or a path."""

    def __init__(self, stream_or_path):
        self._own = isinstance(stream_or_path, str)
        self._f = open(stream_or_path, "w") if self._own else stream_or_path
        self.records = 0

    def comment(self, text):
        for line in str(text).split("\n"):
            self._f.write("# " + line + "\n" if line else "#\n")

    def meta(self, key, value):
        if self.records:
            raise ValueError("metadata @%s after the first record" % key)
        if not key or " " in key or "\n" in key:
            raise ValueError("bad metadata key %r" % key)
        for line in str(value).split("\n"):
            self._f.write("@" + key + " " + line + "\n" if line else "@" + key + "\n")

    def _record(self, d, data, delay_ms):
        if delay_ms < 0:
            raise ValueError("negative delay %d ms" % delay_ms)
        text = escape(data)
        if not text and not delay_ms:
            return  # nothing crossed the wire and no time passed
        # data such as "+1 x" would read back as a delay: give it an explicit +0
        if delay_ms or (len(text) > 1 and text[0] == "+" and "0" <= text[1] <= "9"):
            line = "%s +%d %s" % (d, delay_ms, text) if text else "%s +%d" % (d, delay_ms)
        else:
            line = d + " " + text
        self._f.write(line + "\n")
        self.records += 1

    def tx(self, data, delay_ms=0):
        """Bytes the host wrote, ``delay_ms`` after the previous record."""
        self._record(TX, data, delay_ms)

    def rx(self, data, delay_ms=0, split=True):
        """Bytes the modem sent; split after each LF unless ``split`` is False."""
        if not split:
            self._record(RX, data, delay_ms)
            return
        pieces = _split_rx(data)
        if not pieces:
            self._record(RX, data, delay_ms)
        for a, b in pieces:
            self._record(RX, data[a:b], delay_ms)
            delay_ms = 0

    def flush(self):
        f = getattr(self._f, "flush", None)
        if f is not None:
            f()

    def close(self):
        if self._own:
            self._f.close()
        else:
            self.flush()
