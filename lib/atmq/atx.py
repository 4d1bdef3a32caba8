"""The ``.atx`` modem transcript format, version 1 (docs/transcript-format.md).

Owns the byte escaping, the line grammar, a strict reader and a light writer.
The writer is what a device uses to capture a UART session: it builds each
record in one reused bytearray (nothing allocated per record once that buffer
has grown) and keeps no state beyond "has a record been written yet".

A line is a comment (``#``), metadata (``@key value``, only before the first
record), or a record ``DIR [+MS] DATA`` with DIR ``>`` (host to modem) or
``<`` (modem to host).  DATA keeps printable ASCII other than ``\\`` as is and
escapes everything else as ``\\r \\n \\t \\\\ \\xHH`` (lowercase hex); a space
that ends the line is written ``\\x20``.
"""

from .compat import const

TX = ">"
RX = "<"

# private tables as const (folded into the bytecode: no module-global entry, no dict on the
# heap; issue 11).  The named escapes: "\\" + _NAMED[k] stands for the byte _NAMED_BYTES[k].
_HEX = const("0123456789abcdef")
_HEXB = const(b"0123456789abcdef")
_NAMED = const("rnt\\")
_NAMED_BYTES = const(b"\r\n\t\\")


def escape_into(data, out, start=0, end=-1):
    """Append the escaped form of ``data[start:end]`` to the bytearray ``out``.

    Allocates nothing but ``out``'s growth, so a capturing device can reuse one
    line buffer."""
    if end < 0:
        end = len(data)
    for i in range(start, end):
        b = data[i]
        if 32 <= b <= 126 and b != 92:
            out.append(b)
            continue
        e = 114 if b == 13 else (110 if b == 10 else (116 if b == 9 else (92 if b == 92 else 0)))
        if e:  # \r \n \t \\ (r n t \ after the backslash)
            out.append(92)
            out.append(e)
        else:
            out.append(92)
            out.append(120)
            out.append(_HEXB[b >> 4])
            out.append(_HEXB[b & 15])
    if end > start and data[end - 1] == 32:
        # editors strip trailing blanks; the format forbids a bare one
        out[len(out) - 1] = 92
        out.extend(b"x20")


def escape(data):
    """Bytes (bytes, bytearray or memoryview) -> the DATA text of a record."""
    out = bytearray()
    escape_into(data, out)
    return out.decode()


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
        k = _NAMED.find(c)
        if k >= 0:
            out.append(_NAMED_BYTES[k])
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


class Writer:
    """Writes a transcript to a stream or a path.

    The stream may take bytes (a binary file, or any MicroPython file) or only
    str (a CPython text file or StringIO); the first write finds out.  Each
    record is built in one reused bytearray."""

    def __init__(self, stream_or_path):
        self._own = isinstance(stream_or_path, str)
        self._f = open(stream_or_path, "wb") if self._own else stream_or_path
        self._bytes = True  # until the stream refuses them
        self._buf = bytearray(128)
        self.records = 0

    def _emit(self, buf):
        if self._bytes:
            try:
                self._f.write(buf)
                return
            except TypeError:
                self._bytes = False
        self._f.write(bytes(buf).decode())

    def comment(self, text):
        for line in str(text).split("\n"):
            self._emit(("# " + line + "\n" if line else "#\n").encode())

    def meta(self, key, value):
        if self.records:
            raise ValueError("metadata @%s after the first record" % key)
        if not key or " " in key or "\n" in key:
            raise ValueError("bad metadata key %r" % key)
        for line in str(value).split("\n"):
            self._emit(("@" + key + " " + line + "\n" if line else "@" + key + "\n").encode())

    def _record(self, d, data, delay_ms, start, end):
        if delay_ms < 0:
            raise ValueError("negative delay %d ms" % delay_ms)
        if start >= end and not delay_ms:
            return  # nothing crossed the wire and no time passed
        buf = self._buf
        buf[:] = b""
        buf.append(62 if d == TX else 60)
        buf.append(32)
        # data such as "+1 x" would read back as a delay: give it an explicit +0
        plus = end - start > 1 and data[start] == 43 and 48 <= data[start + 1] <= 57
        if delay_ms or plus:
            buf.append(43)
            _decimal_into(delay_ms, buf)
            if start < end:
                buf.append(32)
        escape_into(data, buf, start, end)
        buf.append(10)
        self._emit(buf)
        self.records += 1

    def tx(self, data, delay_ms=0):
        """Bytes the host wrote, ``delay_ms`` after the previous record."""
        self._record(TX, data, delay_ms, 0, len(data))

    def rx(self, data, delay_ms=0, split=True):
        """Bytes the modem sent, ``delay_ms`` after the previous record.

        Split for readability after each LF and after a CR that is followed by
        CR (the end of a command echo: "AT\\r" then "\\r\\nOK\\r\\n"); a
        piece that is only CR/LF joins the next one, so a response reads
        "\\r\\nOK\\r\\n".  The delay goes on the first piece."""
        n = len(data)
        if not split:
            self._record(RX, data, delay_ms, 0, n)
            return
        lead = 0
        bare = True  # data[lead:i] holds only CR/LF so far
        for i in range(n):
            c = data[i]
            if c != 10 and c != 13:
                bare = False
            elif not bare and (c == 10 or (i + 1 < n and data[i + 1] == 13)):
                self._record(RX, data, delay_ms, lead, i + 1)
                delay_ms = 0
                lead = i + 1
                bare = True
        if lead < n or delay_ms:
            self._record(RX, data, delay_ms, lead, n)

    def flush(self):
        f = getattr(self._f, "flush", None)
        if f is not None:
            f()

    def close(self):
        if self._own:
            self._f.close()
        else:
            self.flush()


def _decimal_into(n, buf):
    """Append the decimal digits of ``n`` >= 0 without making a str."""
    if n == 0:
        buf.append(48)
        return
    i = len(buf)
    while n:
        buf.append(48 + n % 10)
        n //= 10
    j = len(buf) - 1
    while i < j:
        buf[i], buf[j] = buf[j], buf[i]
        i += 1
        j -= 1
