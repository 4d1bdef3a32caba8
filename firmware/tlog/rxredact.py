"""Secrets out of the modem's RX stream before it is captured: a bounded hold-back window.

Owns ``RxRedactor``.  RX arrives in chunks of whatever the UART read returned
(1..256 bytes), so a secret can straddle any number of chunks.  The redactor
keeps the bytes that might still turn out to be (the start of) a secret in one
preallocated window and hands everything else to ``sink`` at once.  Found:

* JSON members of secret config keys (``config.is_secret``), as an inbound
  MQTT command carries them (+CMQTTRXPAYLOAD, manual 16.3; +SMPUBLISH, seed
  004 3.10): ``{"mqtt_password":"..."}`` and ``{"key":"mqtt_password",
  "value":"..."}`` in either member order;
* the current value of a secret key as a quoted string (a read such as
  ``AT+CMQTTCONNECT?`` or ``AT+CGAUTH?`` answers with it);
* the body of a PEM ``-----BEGIN ... PRIVATE KEY-----`` block up to ``-----END``;
* everything from a JSON ``\\u`` escape to the end of its line: a key name can
  only be escaped that way (``"mqtt_passwo\\u0072d"``), so an escaped secret key
  is never written in clear (the firmware refuses such commands too).

A secret's bytes are replaced by ``REDACTED`` (the quotes and the PEM armour
lines stay, so the transcript still reads).  The window is bounded by the
schema: the longest secret value (twice, for JSON escapes) plus room for the
other members of a command object.  When it fills before a value-first
object shows its key, the value is redacted anyway (too long for any valid
command).  ``flush()`` (stop) resolves what is pending the same safe way;
``idle_flush()`` (a quiet line) shows the held bytes that reveal nothing but
keeps them for matching, so a secret that resumes after a pause is still found.
"""

from atmq.compat import const

from . import config as _config

REDACTED = b"<redacted>"

_NEED = const(-1)  # the window ends before this can be decided
_END = const(-2)  # the object closed without the member looked for

_T_NAME = const(0)  # "<secret key>"
_T_VALUE = const(1)  # "value"
_T_PEM = const(2)  # -----BEGIN
_T_LIT = const(3)  # "<current secret value>"
_T_ESC = const(4)  # \u: an escaped name may be a secret key

_S_NONE = const(0)
_S_STR = const(1)  # dropping a string value up to its closing quote (or a line end)
_S_SCALAR = const(2)  # dropping a bare value up to , } ] or blank
_S_PEM = const(3)  # dropping a key body up to -----END
_S_LINE = const(4)  # dropping up to the end of the line (after a \u escape)

_PEM_MAX = const(8192)  # a PEM body longer than any private key ends the drop anyway
_MEMBERS_ROOM = const(160)  # "id" (64 chars), "cmd", punctuation around the secret member
_LIT_MIN = const(4)  # shorter current values (none valid) would hide ordinary numbers

_VALUE = b'"value"'
_KEY = b'"key"'
_PEM_BEGIN = b"-----BEGIN "
_PEM_END = b"-----END"
_ESC = b"\\u"


def _secret_spec():
    """(quoted secret key names, the longest secret string value) from the schema."""
    names = []
    longest = 0
    for k in _config.SCHEMA:
        if _config.is_secret(k):
            names.append(b'"' + k.encode() + b'"')
            row = _config.spec(k)
            rule = row[1] if row is not None else None
            if rule is not None and not isinstance(rule[0], str):
                longest = max(longest, rule[1])
    return names, longest


def _blank(c):
    return c == 32 or c == 9 or c == 13 or c == 10


class RxRedactor:
    """Feed RX chunks in; redacted bytes come out through ``sink(data)`` in order."""

    def __init__(self, sink, values=None):
        self.sink = sink
        self.names, longest = _secret_spec()
        maxname = max(len(n) for n in self.names)
        self.hold = 2 * longest + maxname + _MEMBERS_ROOM  # 512 + 15 + 160 with the schema
        self.win = bytearray(self.hold + 256)  # + one UART chunk
        self.mv = memoryview(self.win)
        self.s = 0  # first byte not yet decided
        self.shown = 0  # bytes before this went to the sink (>= s after an idle flush)
        self.n = 0  # bytes in the window
        self.skip = _S_NONE
        self.esc = False  # _S_STR: the previous byte was a backslash
        self.dropped = 0  # bytes of the current _S_PEM drop
        self.want_value = False  # a secret key was seen whose "value" member is still ahead
        self.redactions = 0
        self.redacted_bytes = 0
        self.lits = []
        self.longest = 0
        self.set_values(values or ())

    def set_values(self, values):
        """The current secret values (str) to hide wherever they appear quoted."""
        lits = []
        for v in values:
            if v and len(v) >= _LIT_MIN and len(v) <= self.hold - 2:
                lits.append(b'"' + v.encode() + b'"')
        self.lits = lits
        longest = len(_PEM_BEGIN)
        for p in self.names:
            longest = max(longest, len(p))
        for p in lits:
            longest = max(longest, len(p))
        self.longest = longest  # of the triggers: what a chunk boundary can cut

    def reset(self):
        """Forget what is held (a new capture after a failed one)."""
        self.s = self.n = self.shown = 0
        self.skip = _S_NONE
        self.want_value = False

    @property
    def pending(self):
        """Bytes held that the sink has not seen."""
        return self.n - self.shown

    # ---- in and out -----------------------------------------------------------------------

    def feed(self, buf, n):
        """Take ``buf[:n]`` (one UART read)."""
        off = 0
        while off < n:
            if self.n == len(self.win):
                self._run(True, False)  # nothing could be released: decide the safe way
                self._compact()
                if self.n == len(self.win):  # a name followed by a window of blanks
                    self._emit(self.s, self.n)
                    self.want_value = True
                    self._compact()
            k = min(n - off, len(self.win) - self.n)
            self.win[self.n : self.n + k] = memoryview(buf)[off : off + k]
            self.n += k
            off += k
            self._run(False, False)
            self._compact()

    def flush(self):
        """Emit everything held (stop); pending decisions fall to the safe side."""
        self._run(True, True)
        self._compact()

    def idle_flush(self):
        """Show the held bytes while the line is quiet, but keep them for matching.

        What is held is at most the start of a key name, a member name with its colon
        or a PEM armour line: showing it reveals nothing, and keeping it lets the bytes
        that may still follow complete the pattern.  A value-first object still waiting
        for its key is decided the safe way now (its value may be a secret), and the
        start of a current secret value stays hidden.
        """
        if self.skip != _S_NONE:
            return  # inside a secret: its bytes are never shown
        t, kind, _plen = self._first_trigger()
        if t >= 0 and kind == _T_VALUE:
            j = self._ws(t + len(_VALUE))
            if j < self.n and self.win[j] == 58 and self._ws(j + 1) < self.n:
                self._run(True, False)  # the value has begun: it may be a secret
                if self.skip != _S_NONE:
                    return
        n = self.n
        tail = self._partial_tail()
        if tail:
            q = n - tail
            for p in self.lits:
                if self._is_prefix(q, p):
                    n = q  # a secret value's first characters: not shown
                    break
        if n > self.shown:
            self.sink(self.mv[self.shown : n])
            self.shown = n

    def _emit(self, a, b):
        if a < self.shown:
            a = self.shown  # shown by an idle flush already
        if b > a:
            self.sink(self.mv[a:b])
            self.shown = b
        self.s = b
        if self.shown < b:
            self.shown = b

    def _compact(self):
        s = self.s
        if s:
            k = self.n - s
            if k:
                self.win[0:k] = self.mv[s : self.n]  # forward overlapping copy
            self.s = 0
            self.n = k
            self.shown = self.shown - s if self.shown > s else 0

    def _redact(self, kind):
        self.redactions += 1
        self.sink(REDACTED)
        self.skip = kind
        self.esc = False
        self.dropped = 0

    # ---- the scan ---------------------------------------------------------------------------

    def _run(self, final, drain):
        """Emit what is decided.  ``final``: pending triggers whose secret part has begun
        are decided now (the safe way); ``drain``: the held rest goes out too."""
        while True:
            if self.skip != _S_NONE:
                done = self._skip(drain)
                if self.shown < self.s:
                    self.shown = self.s  # dropped, never shown
                if not done:
                    return
            t, kind, plen = self._first_trigger()
            if t < 0:
                end = self.n if drain else self.n - self._partial_tail()
                self._emit(self.s, end)
                return
            self._emit(self.s, t)
            if kind == _T_NAME:
                r = self._on_name(t, plen, final)
            elif kind == _T_VALUE:
                r = self._on_value(t, final)
            elif kind == _T_PEM:
                r = self._on_pem(t, final)
            elif kind == _T_ESC:
                self._redact(_S_LINE)
                r = True
            else:
                self._emit(t, t + 1)  # the opening quote
                self._redact(_S_STR)
                r = True
            if not r:
                if drain:  # stop: a name, a colon, blanks or an armour start: nothing secret
                    self._emit(self.s, self.n)
                return  # held until more bytes arrive

    def _first_trigger(self):
        win = self.win
        s = self.s
        n = self.n
        best = -1
        kind = 0
        plen = 0
        for p in self.names:
            i = win.find(p, s, n)
            if i >= 0 and (best < 0 or i < best):
                best, kind, plen = i, _T_NAME, len(p)
        i = win.find(_VALUE, s, n)
        if i >= 0 and (best < 0 or i < best):
            best, kind, plen = i, _T_VALUE, len(_VALUE)
        i = win.find(_PEM_BEGIN, s, n)
        if i >= 0 and (best < 0 or i < best):
            best, kind, plen = i, _T_PEM, len(_PEM_BEGIN)
        i = win.find(_ESC, s, n)
        if i >= 0 and (best < 0 or i < best):
            best, kind, plen = i, _T_ESC, len(_ESC)
        for p in self.lits:
            i = win.find(p, s, n)
            if i >= 0 and (best < 0 or i < best):
                best, kind, plen = i, _T_LIT, len(p)
        return best, kind, plen

    def _is_prefix(self, q, p):
        """win[q:n] is a proper prefix of the pattern ``p``."""
        k = self.n - q
        if k >= len(p):
            return False
        win = self.win
        for j in range(k):
            if win[q + j] != p[j]:
                return False
        return True

    def _partial_tail(self):
        """Bytes at the end that could be the start of a trigger (held for the next chunk)."""
        win = self.win
        n = self.n
        lo = self.s
        lo = max(lo, n - self.longest + 1)
        q = lo
        while q < n:
            c = win[q]
            if c == 34:  # '"'
                for p in self.names:
                    if self._is_prefix(q, p):
                        return n - q
                if self._is_prefix(q, _VALUE):
                    return n - q
                for p in self.lits:
                    if self._is_prefix(q, p):
                        return n - q
            elif c == 45 and self._is_prefix(q, _PEM_BEGIN):  # '-'
                return n - q
            elif c == 92 and q == n - 1:  # a backslash: "\u" may follow
                return 1
            q += 1
        return 0

    def _ws(self, i):
        win = self.win
        n = self.n
        while i < n and _blank(win[i]):
            i += 1
        return i

    def _string_end(self, i):
        """Index just past the JSON string starting at ``i`` (a quote), or _NEED."""
        win = self.win
        n = self.n
        i += 1
        while i < n:
            c = win[i]
            if c == 92:  # backslash: the next byte is escaped
                i += 2
                continue
            if c == 34:
                return i + 1
            i += 1
        return _NEED

    def _value_end(self, i):
        """Index just past the JSON value token at ``i``, or _NEED (objects: balanced)."""
        win = self.win
        n = self.n
        if i >= n:
            return _NEED
        c = win[i]
        if c == 34:
            return self._string_end(i)
        if c == 123 or c == 91:  # { [
            depth = 0
            while i < n:
                c = win[i]
                if c == 34:
                    e = self._string_end(i)
                    if e < 0:
                        return _NEED
                    i = e
                    continue
                if c == 123 or c == 91:
                    depth += 1
                elif c == 125 or c == 93:
                    depth -= 1
                    if depth == 0:
                        return i + 1
                i += 1
            return _NEED
        while i < n:
            c = win[i]
            if c == 44 or c == 125 or c == 93 or _blank(c):
                return i
            i += 1
        return _NEED

    def _member(self, i, name):
        """Start of the value of member ``name`` later in the object that ``i`` is inside
        (at its level), _END when the object closes first, or _NEED."""
        win = self.win
        n = self.n
        depth = 0
        while i < n:
            c = win[i]
            if c == 34:
                e = self._string_end(i)
                if e < 0:
                    return _NEED
                if depth == 0 and e - i == len(name) and win.find(name, i, e) == i:
                    j = self._ws(e)
                    if j >= n:
                        return _NEED
                    if win[j] == 58:  # ':'
                        j = self._ws(j + 1)
                        return j if j < n else _NEED
                i = e
                continue
            if c == 123 or c == 91:
                depth += 1
            elif c == 125 or c == 93:
                if depth == 0:
                    return _END
                depth -= 1
            i += 1
        return _NEED

    def _start_value(self, j):
        """Redact the value token at ``j`` (emitted up to it)."""
        self._emit(self.s, j)
        if self.win[j] == 34:
            self._emit(j, j + 1)
            self._redact(_S_STR)
        else:
            self._redact(_S_SCALAR)

    # ---- triggers: True = handled (scan on), False = hold for more bytes ----------------

    def _on_name(self, t, plen, final):
        j = self._ws(t + plen)
        if j >= self.n:
            return False  # held even when forced: what follows decides
        if self.win[j] == 58:  # {"mqtt_password": <value>}
            v = self._ws(j + 1)
            if v >= self.n:
                return False
            self._start_value(v)
            return True
        # {"key":"mqtt_password", ... "value": <value>}: the value is further on (or was
        # before: then the "value" trigger held it and found this key)
        v = self._member(j, _VALUE)
        if v == _NEED:
            if not final:
                return False
            self.want_value = True  # the window is full: the next "value" is hidden
            self._emit(t, t + plen)
            return True
        if v == _END:
            self._emit(t, t + plen)
            return True
        self._start_value(v)
        return True

    def _on_value(self, t, final):
        n = self.n
        j = self._ws(t + len(_VALUE))
        if j >= n:
            return False
        if self.win[j] != 58:  # not a member name
            self._emit(t, t + len(_VALUE))
            return True
        v = self._ws(j + 1)
        if v >= n:
            return False
        if self.want_value:
            self.want_value = False
            self._start_value(v)
            return True
        e = self._value_end(v)
        if e == _NEED:
            if final:
                self._start_value(v)  # longer than the window: no valid command has that
                return True
            return False
        k = self._member(e, _KEY)
        if k == _NEED:
            if final:
                self._start_value(v)
                return True
            return False
        if k != _END:
            if self._value_end(k) == _NEED:  # the key's name is still arriving
                if final:
                    self._start_value(v)
                    return True
                return False
            for p in self.names:
                if self.win.find(p, k, k + len(p)) == k:
                    self._start_value(v)
                    return True
        self._emit(t, e)
        return True

    def _on_pem(self, t, final):
        n = self.n
        e = self.win.find(b"-----", t + len(_PEM_BEGIN), min(n, t + 64))
        if e < 0:
            if n - t < 64:
                return False
            self._emit(t, t + len(_PEM_BEGIN))  # no armour line
            return True
        if self.win.find(b"PRIVATE KEY", t, e) < 0:
            self._emit(t, e + 5)  # a certificate: public
            return True
        self._emit(t, e + 5)
        self._redact(_S_PEM)
        return True

    def _skip(self, drain):
        """Drop the secret's bytes; True when it ended (scan on), False when all is used."""
        win = self.win
        s = self.s
        n = self.n
        kind = self.skip
        if kind == _S_PEM:
            i = win.find(_PEM_END, s, n)
            if i < 0 and self.dropped + (n - s) > _PEM_MAX:
                i = n  # no armour end within any key's length: stop dropping here
            if i < 0:
                keep = 0 if drain else min(n - s, len(_PEM_END) - 1)
                self.dropped += n - keep - s
                self.redacted_bytes += n - keep - s
                self.s = n - keep
                return False
            self.redacted_bytes += i - s
            self.s = i
            self.skip = _S_NONE
            return True
        i = s
        esc = self.esc
        while i < n:
            c = win[i]
            if kind == _S_LINE:
                if c == 13 or c == 10:
                    break
            elif kind == _S_STR:
                if esc:
                    esc = False
                elif c == 92:
                    esc = True
                elif c == 34 or c == 13 or c == 10:  # a raw line end: the string was cut
                    break
            elif c == 44 or c == 125 or c == 93 or _blank(c):
                break
            i += 1
        self.esc = esc
        self.redacted_bytes += i - s
        self.s = i
        if i < n:
            self.skip = _S_NONE
            return True
        return False
