"""AT command line parsing and result framing (V.250 with ATV1), shared by every handler.

Owns: splitting a command line into commands ("AT+CSQ;+CREG?", "ATE0V1"), the
parsed command (name, kind, arguments), the AtError raised by handlers, and the
+CME ERROR texts of manual 003 ch.25.3.
"""

CME_TEXT = {
    3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted",
    13: "SIM failure", 14: "SIM busy", 30: "no nw service", 31: "nw timeout",
    50: "Incorrect parameters", 58: "unknown",
}


class AtError(Exception):
    """A command failed: optional information lines, then ERROR or +CME ERROR.

    cme=None gives a plain ERROR whatever AT+CMEE says (manual 003 ch.25.1: invalid
    command); an int gives +CME ERROR in the current CMEE mode.
    """

    def __init__(self, cme=None, lines=()):
        super().__init__(cme, lines)
        self.cme = cme
        self.lines = tuple(lines)


class Cmd:
    """One command: name ('+CSQ', 'E', '&W', '' for bare AT), kind, raw arguments."""

    def __init__(self, text, name, kind, args):
        self.text = text          # "AT" + this command's own text, for logs and matching
        self.name = name
        self.kind = kind          # 'exec' | 'read' | 'test' | 'write'
        self.args = args          # list of (value, quoted)

    def __repr__(self):
        return "Cmd(%r)" % self.text

    def n(self):
        return len(self.args)

    def has(self, i):
        return i < len(self.args) and self.args[i][0] != ""

    def int(self, i, lo=None, hi=None, default=None):
        """Argument i as an int in [lo, hi]; missing -> default (or ERROR when None)."""
        if not self.has(i):
            if default is None:
                raise AtError(cme=50)
            return default
        val, quoted = self.args[i]
        try:
            v = int(val, 0) if val.lower().startswith("0x") else int(val)
        except ValueError:
            raise AtError(cme=50) from None
        if quoted or (lo is not None and v < lo) or (hi is not None and v > hi):
            raise AtError(cme=50)
        return v

    def str(self, i, default=None, lo=0, hi=1 << 20):
        """Argument i as a string (quotes removed); length checked in [lo, hi]."""
        if i >= len(self.args):
            if default is None:
                raise AtError(cme=50)
            return default
        val = self.args[i][0]
        if not lo <= len(val.encode()) <= hi:
            raise AtError(cme=50)
        return val

    def quoted(self, i):
        return i < len(self.args) and self.args[i][1]


def split_args(s):
    """Comma-separated arguments; double-quoted strings keep commas and lose quotes."""
    out = []
    if s == "":
        return out
    cur, quoted, inq = [], False, False
    for ch in s:
        if inq:
            if ch == '"':
                inq = False
            else:
                cur.append(ch)
        elif ch == '"':
            inq, quoted = True, True
        elif ch == ",":
            out.append(("".join(cur) if quoted else "".join(cur).strip(), quoted))
            cur, quoted = [], False
        else:
            cur.append(ch)
    out.append(("".join(cur) if quoted else "".join(cur).strip(), quoted))
    return out


def _split_top(body):
    """Split the part after 'AT' into single command texts."""
    parts, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == ";" or ch == " ":
            i += 1
        elif ch in "+*$^#":
            j, inq = i, False
            while j < len(body) and (inq or body[j] != ";"):
                if body[j] == '"':
                    inq = not inq
                j += 1
            parts.append(body[i:j])
            i = j + 1
        else:
            j = i + (2 if ch == "&" else 1)
            while j < len(body) and body[j].isdigit():
                j += 1
            parts.append(body[i:j])
            i = j
    return parts


def parse_line(line):
    """A command line (without the final CR) -> list of Cmd, or None if not an AT line."""
    if len(line) < 2 or line[:2].upper() != "AT":
        return None
    body = line[2:]
    if body.strip() == "":
        return [Cmd("AT", "", "exec", [])]
    cmds = []
    for part in _split_top(body):
        if part[0] in "+*$^#":
            k = 0
            while k < len(part) and part[k] not in "=?":
                k += 1
            name, rest = part[:k].upper(), part[k:]
            if rest == "":
                kind, args = "exec", []
            elif rest == "?":
                kind, args = "read", []
            elif rest == "=?":
                kind, args = "test", []
            elif rest.startswith("="):
                kind, args = "write", split_args(rest[1:])
            else:
                kind, args = "bad", []
        else:
            k = 2 if part[0] == "&" else 1
            name = part[:k].upper()
            kind = "exec"
            args = [(part[k:], False)] if part[k:] else []
        cmds.append(Cmd("AT" + part, name, kind, args))
    return cmds


def frame_lines(lines):
    """Information lines as a modem sends them before the final result code."""
    if not lines:
        return b""
    return b"\r\n" + b"\r\n".join(_b(x) for x in lines) + b"\r\n"


def _b(x):
    return x if isinstance(x, (bytes, bytearray)) else x.encode("latin-1")


def final_error(err, cmee):
    """The final result bytes for an AtError under AT+CMEE=<cmee>."""
    if err.cme is None or cmee == 0:
        return b"\r\nERROR\r\n"
    if cmee == 2:
        return ("\r\n+CME ERROR: %s\r\n" % CME_TEXT.get(err.cme, "unknown")).encode()
    return ("\r\n+CME ERROR: %d\r\n" % err.cme).encode()
