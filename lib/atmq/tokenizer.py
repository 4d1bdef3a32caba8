"""Bytes to AT tokens without allocating: lines, the ``>`` prompt, raw payload frames.

The tokenizer consumes the receive ring and returns one token kind at a time:

- ``T_LINE``: a complete line is in ``line[0:llen]`` (CR stripped, LF ends it,
  empty lines skipped).  ``args`` views it: prefix tests, quote-aware argument
  split into a preallocated offset array, integer and string access.  A line
  longer than the buffer is delivered cut at ``line_max`` with ``truncated``
  set and counted; the rest up to the LF is discarded.
- ``T_PROMPT``: a ``>`` at the start of a line while a prompt is armed, reported
  at once (the modem sends no line end after it); one following space is eaten.
- ``T_RAW``: the ``n`` bytes armed with ``arm_raw`` were copied verbatim into
  the caller's buffer (or skipped when it is None).  A payload may contain
  CR, LF, ``OK`` and ``>``: none of it is interpreted.
- ``T_LOST``: the ring overflowed; a raw frame in progress is abandoned and
  line scanning resynchronises at the next LF.

Line ends are LF only: SIMCom ends every line with CRLF, and the bytes of a
raw frame start right after the LF of the line that announced it.
"""

from array import array

from .compat import const, micropython, ptr8, ptr32

T_NONE = const(0)
T_LINE = const(1)
T_PROMPT = const(2)
T_RAW = const(3)
T_LOST = const(4)

# scan flags (st[2])
_F_PROMPT = const(1)  # a '>' at line start is a prompt
_F_TRUNC = const(2)  # the current line overflowed the buffer
_F_DISCARD = const(4)  # drop bytes up to the next LF (resync after overflow)
_F_SKIPSP = const(8)  # eat one space after a prompt
_F_COLON = const(16)  # the head of the current line (up to ':') is complete
_H0 = const(0x811C9D)

# Tokenizer state, one int array so the viper scanner updates it in place and the
# per-line path stores no Python attributes (each costs a map lookup on MicroPython).
_S_LLEN = const(0)  # bytes of the line being assembled
_S_FLAGS = const(1)
_S_HASH = const(2)  # head hash of the line being assembled
_S_LMAX = const(3)
_S_LEN = const(4)  # length of the last complete line
_S_HEAD = const(5)  # its head hash
_S_LINES = const(6)
_S_TRUNC = const(7)  # 1: the last line was cut at line_max
_S_TRUNCS = const(8)
_S_PROMPTS = const(9)
_S_RAW_LEFT = const(10)  # raw frame bytes still to come
_S_RAW_OFF = const(11)  # where the next raw byte goes in the armed buffer
_S_RAW_FRAMES = const(12)
_S_RAW_BYTES = const(13)
_S_RESYNCS = const(14)
_S_SIZE = const(15)
S_LEN = _S_LEN  # public copies for the engine, which reads the state array directly
S_HEAD = _S_HEAD
S_RAW_LEFT = _S_RAW_LEFT
S_FLAGS = _S_FLAGS
F_PROMPT = _F_PROMPT

# Args state, one int array (start, end, argument count or -1 before the split, the
# maximum, then (start, end) per argument): no attribute stores per line.
_A_S = const(0)
_A_E = const(1)
_A_ARGC = const(2)
_A_MAX = const(3)
_A_SPANS = const(4)
A_E = _A_E  # public copies for the engine, which sets lines up directly
A_ARGC = _A_ARGC


@micropython.viper
def _scan(ring, idx, line, st) -> int:
    # idx: ring [read index, bytes held, mask]; st: the tokenizer state (_S_* indices)
    rb = ptr8(ring)
    lb = ptr8(line)
    ix = ptr32(idx)
    sp = ptr32(st)
    r = int(ix[0])
    n = int(ix[1])
    mask = int(ix[2])
    llen = int(sp[_S_LLEN])
    flags = int(sp[_S_FLAGS])
    h = int(sp[_S_HASH])
    lmax = int(sp[_S_LMAX])
    t = T_NONE
    i = 0
    while i < n:
        c = int(rb[(r + i) & mask])
        i += 1
        if c == 10:
            if flags & _F_DISCARD:
                flags = flags & (0xFFFF ^ (_F_DISCARD | _F_COLON))
                llen = 0
                h = _H0
                continue
            if llen == 0 and not (flags & _F_TRUNC):
                continue  # empty line
            # Publish the line: length, head hash, counters; reset for the next line.
            sp[_S_LEN] = llen
            sp[_S_HEAD] = h
            sp[_S_LINES] = sp[_S_LINES] + 1
            if flags & _F_TRUNC:
                sp[_S_TRUNC] = 1
                sp[_S_TRUNCS] = sp[_S_TRUNCS] + 1
            else:
                sp[_S_TRUNC] = 0
            flags = flags & (_F_PROMPT | _F_SKIPSP)
            llen = 0
            h = _H0
            t = T_LINE
            break
        if c == 13 or (flags & _F_DISCARD):
            continue
        if flags & _F_SKIPSP:
            flags = flags & (0xFFFF ^ _F_SKIPSP)
            if c == 32:
                continue
        if c == 62 and llen == 0 and (flags & _F_PROMPT):
            flags = (flags & (0xFFFF ^ _F_PROMPT)) | _F_SKIPSP
            sp[_S_PROMPTS] = sp[_S_PROMPTS] + 1
            t = T_PROMPT
            break
        if llen < lmax:
            lb[llen] = c
            llen += 1
            # head hash: FNV-1a of the bytes before the first ':' (see head_hash)
            if not (flags & _F_COLON):
                if c == 58:
                    flags = flags | _F_COLON
                else:
                    h = ((h ^ c) * 0x01000193) & 0xFFFFFF
        else:
            flags = flags | _F_TRUNC
    ix[0] = (r + i) & mask
    ix[1] = n - i
    sp[_S_LLEN] = llen
    sp[_S_FLAGS] = flags
    sp[_S_HASH] = h
    return t


@micropython.viper
def _copy_out(ring, r: int, mask: int, dst, off: int, n: int):
    rb = ptr8(ring)
    d = ptr8(dst)
    i = 0
    while i < n:
        d[off + i] = rb[(r + i) & mask]
        i += 1


@micropython.viper
def _copy(src, s: int, dst, d: int, n: int):
    a = ptr8(src)
    b = ptr8(dst)
    i = 0
    while i < n:
        b[d + i] = a[s + i]
        i += 1


@micropython.viper
def _split(buf, v) -> int:
    # v: the Args state array (_A_*). Arguments start after the colon of a "+NAME:"
    # header, else at the line start; spans go to v[_A_SPANS:], the count to v[_A_ARGC].
    b = ptr8(buf)
    vp = ptr32(v)
    s = int(vp[_A_S])
    e = int(vp[_A_E])
    maxargs = int(vp[_A_MAX])
    if s < e and b[s] == 43:
        j = s
        while j < e and b[j] != 58:
            j += 1
        if j < e:
            s = j + 1
        else:
            s = e
    i = s
    while i < e and b[i] == 32:
        i += 1
    argc = 0
    if i >= e:
        vp[_A_ARGC] = 0
        return 0
    start = i
    q = 0
    c = 0
    while True:
        end = i >= e
        if not end:
            c = int(b[i])
            if c == 34:
                q = q ^ 1
        if end or (c == 44 and q == 0):
            a = start
            z = i
            while a < z and b[a] == 32:
                a += 1
            while z > a and b[z - 1] == 32:
                z -= 1
            if z - a >= 2 and b[a] == 34 and b[z - 1] == 34:
                a += 1
                z -= 1
            if argc < maxargs:
                vp[_A_SPANS + 2 * argc] = a
                vp[_A_SPANS + 2 * argc + 1] = z
                argc += 1
            start = i + 1
            if end:
                break
        i += 1
    vp[_A_ARGC] = argc
    return argc


@micropython.viper
def _atoi(buf, a: int, z: int, dflt: int) -> int:
    b = ptr8(buf)
    neg = 0
    if a < z and b[a] == 45:
        neg = 1
        a += 1
    if a >= z or z - a > 9:
        return dflt
    v = 0
    while a < z:
        d = int(b[a]) - 48
        if d < 0 or d > 9:
            return dflt
        v = v * 10 + d
        a += 1
    if neg:
        return 0 - v
    return v


@micropython.viper
def head_hash(buf, s: int, e: int) -> int:
    """24-bit FNV-1a of the line head: up to the first ':' (or the whole line)."""
    b = ptr8(buf)
    h = _H0
    i = s
    while i < e:
        c = int(b[i])
        if c == 58:
            break
        h = ((h ^ c) * 0x01000193) & 0xFFFFFF
        i += 1
    return h


class Args:
    """A view of one line in a buffer: prefix tests and arguments, no allocation.

    The split runs on first argument access.  For ``+NAME: a,"b,c",d`` the
    arguments are ``a``, ``b,c`` (quotes removed) and ``d``; a line without a
    ``+NAME:`` header is split from its start.  Indices out of range give the
    default (int) or an empty result.  ``s``/``e`` are the line's bounds in ``buf``.
    """

    def __init__(self, buf, max_args=24):
        self.buf = buf
        v = array("i", bytes(4 * (_A_SPANS + 2 * max_args)))
        v[_A_ARGC] = -1
        v[_A_MAX] = max_args
        self.v = v
        self.max_args = max_args

    @property
    def s(self):
        return self.v[_A_S]

    @property
    def e(self):
        return self.v[_A_E]

    @micropython.native
    def set(self, s, e):
        v = self.v
        v[_A_S] = s
        v[_A_E] = e
        v[_A_ARGC] = -1

    def __len__(self):
        v = self.v
        return v[_A_E] - v[_A_S]

    @micropython.native
    def startswith(self, prefix):
        v = self.v
        return v[_A_E] - v[_A_S] >= len(prefix) and self.buf.startswith(prefix, v[_A_S])

    @micropython.native
    def eq(self, data):
        v = self.v
        return v[_A_E] - v[_A_S] == len(data) and self.buf.startswith(data, v[_A_S])

    @micropython.native
    def split(self):
        return _split(self.buf, self.v)

    @micropython.native
    def count(self):
        n = self.v[_A_ARGC]
        return n if n >= 0 else _split(self.buf, self.v)

    @micropython.native
    def arg_int(self, i, default=-1):
        v = self.v
        n = v[_A_ARGC]
        if n < 0:
            n = _split(self.buf, v)
        if i >= n:
            return default
        j = _A_SPANS + 2 * i
        return _atoi(self.buf, v[j], v[j + 1], default)

    @micropython.native
    def arg_len(self, i):
        v = self.v
        n = v[_A_ARGC]
        if n < 0:
            n = _split(self.buf, v)
        if i >= n:
            return -1
        j = _A_SPANS + 2 * i
        return v[j + 1] - v[j]

    @micropython.native
    def arg_start(self, i):
        v = self.v
        n = v[_A_ARGC]
        if n < 0:
            n = _split(self.buf, v)
        return v[_A_SPANS + 2 * i] if i < n else v[_A_E]

    @micropython.native
    def arg_eq(self, i, data):
        v = self.v
        n = v[_A_ARGC]
        if n < 0:
            n = _split(self.buf, v)
        if i >= n:
            return False
        j = _A_SPANS + 2 * i
        a = v[j]
        return v[j + 1] - a == len(data) and self.buf.startswith(data, a)

    @micropython.native
    def arg_copy(self, i, dst, off=0):
        """Copy argument ``i`` into ``dst[off:]``; returns its length (-1: none, -2: too big)."""
        n = self.arg_len(i)
        if n < 0:
            return -1
        if off + n > len(dst):
            return -2
        _copy(self.buf, self.v[_A_SPANS + 2 * i], dst, off, n)
        return n

    # Allocating accessors, for code off the hot path.
    def arg_bytes(self, i):
        n = self.arg_len(i)
        if n < 0:
            return b""
        a = self.v[_A_SPANS + 2 * i]
        return bytes(self.buf[a : a + n])

    def arg_str(self, i):
        return self.arg_bytes(i).decode()

    def bytes(self):
        v = self.v
        return bytes(self.buf[v[_A_S] : v[_A_E]])

    def text(self):
        return self.bytes().decode()


class Tokenizer:
    """Turns the bytes of a ``RingBuffer`` into tokens; see the module docstring.

    Counters and the last line's facts live in the ``st`` int array (see
    ``_S_*``) and are read through properties: the per-line path writes no
    Python attribute.
    """

    def __init__(self, ring, line_max=512, max_args=24):
        self.ring = ring
        self.line = bytearray(line_max)
        self.line_max = line_max
        self.args = Args(self.line, max_args)
        st = array("i", bytes(4 * _S_SIZE))
        st[_S_HASH] = _H0
        st[_S_LMAX] = line_max
        self.st = st
        # the armed raw frame's buffer, in a list: this class has properties, and on
        # MicroPython that makes every attribute store on it a class lookup first
        self._raw_dst = [None]

    # read-only views of the state
    @property
    def llen(self):
        return self.st[_S_LEN]

    @property
    def head(self):
        """Head hash of the last line (``head_hash`` of its bytes up to ':')."""
        return self.st[_S_HEAD]

    @property
    def truncated(self):
        return self.st[_S_TRUNC] != 0

    @property
    def lines(self):
        return self.st[_S_LINES]

    @property
    def truncations(self):
        return self.st[_S_TRUNCS]

    @property
    def prompts(self):
        return self.st[_S_PROMPTS]

    @property
    def raw_off(self):
        """End offset, in the armed buffer, of the raw bytes copied so far."""
        return self.st[_S_RAW_OFF]

    @property
    def raw_frames(self):
        return self.st[_S_RAW_FRAMES]

    @property
    def raw_bytes(self):
        return self.st[_S_RAW_BYTES]

    @property
    def resyncs(self):
        return self.st[_S_RESYNCS]

    @micropython.native
    def arm_prompt(self, on=True):
        st = self.st
        st[_S_FLAGS] = (st[_S_FLAGS] | _F_PROMPT) if on else (st[_S_FLAGS] & ~_F_PROMPT)

    def arm_raw(self, dst, off, n):
        """The next ``n`` bytes go verbatim to ``dst[off:off+n]`` (``dst`` None: skip them)."""
        if dst is not None and off + n > len(dst):
            raise ValueError("raw frame does not fit the buffer")
        st = self.st
        self._raw_dst[0] = dst
        st[_S_RAW_OFF] = off
        st[_S_RAW_LEFT] = n
        if n == 0:
            st[_S_RAW_FRAMES] += 1

    @micropython.native
    def next(self):
        ring = self.ring
        st = self.st
        idx = ring.idx
        if idx[3]:
            idx[3] = 0
            st[_S_RESYNCS] += 1
            st[_S_LLEN] = 0
            st[_S_FLAGS] = (st[_S_FLAGS] & _F_PROMPT) | _F_DISCARD
            st[_S_HASH] = _H0
            if st[_S_RAW_LEFT]:
                st[_S_RAW_LEFT] = 0
                self._raw_dst[0] = None
                return T_LOST
        n = idx[1]
        if n == 0:
            return T_NONE
        left = st[_S_RAW_LEFT]
        if left:
            k = n if n < left else left
            dst = self._raw_dst[0]
            if dst is not None:
                _copy_out(ring.buf, idx[0], idx[2], dst, st[_S_RAW_OFF], k)
            ring.skip(k)
            st[_S_RAW_BYTES] += k
            st[_S_RAW_OFF] += k
            left -= k
            st[_S_RAW_LEFT] = left
            if left:
                return T_NONE
            self._raw_dst[0] = None
            st[_S_RAW_FRAMES] += 1
            return T_RAW
        t = _scan(ring.buf, idx, self.line, st)
        if t == T_LINE:
            v = self.args.v
            v[_A_E] = st[_S_LEN]
            v[_A_ARGC] = -1
        return t
