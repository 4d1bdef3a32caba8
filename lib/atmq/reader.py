"""The AT reader: UART bytes -> ring -> tokens -> dispatch, in one module with named state.

One ``Reader`` owns everything between the stream and the handlers:

- **stream and ring**: ``pump()`` drains the stream with ``readinto``
  straight into a power-of-two ring, which dispatch always leaves empty (a
  staging chunk and a copy only if bytes were left over); ``put`` copies bytes
  given directly (``Engine.feed``).  Bytes that do not fit are dropped, counted
  (``overflows``/``dropped``) and flagged, so the tokenizer resynchronises at
  the next line end instead of gluing two half lines together.
- **tokenizer** (the scanner in viper ``_dispatch``): lines into a fixed line buffer (CR dropped,
  LF ends a line, empty lines skipped; a line longer than the buffer is cut,
  flagged ``truncated`` and counted, its tail discarded up to the LF); the
  ``>`` prompt at a line start while one is armed, reported at once (the modem
  sends no line end after it; one following space is eaten); raw frames of
  exactly ``n`` announced bytes copied verbatim (``arm_raw``): CR, LF, ``OK``
  and ``>`` inside them mean nothing.  Line ends are LF only: SIMCom ends every
  line with CRLF and a frame's bytes start right after the LF that announced it.
- **raw-frame guard** (issue 10 #3): ``arm_raw`` refuses (returns False,
  counts) a length above ``RAW_MAX`` (drivers bound lengths by the manual's
  limits first); a frame that has not completed by its deadline (its length
  at the line rate, twice, plus ``RAW_MARGIN_MS``) when a read finds the
  stream idle is abandoned, counted (``raw_abandoned``), reported as
  ``T_LOST``, and the reader resynchronises at the next LF.
- **dispatch** (viper ``_dispatch``), each line in this order: the echo of the
  command in flight (skipped); its declared response prefix, its completion URC
  (two-phase commands, before or after the final code) or a final result code
  (``OK``, ``ERROR``, ``+CME ERROR: <n>``, ``+CMS ERROR: <n>``, ``NO CARRIER``,
  ``BUSY``, ``NO ANSWER``, ``NO DIALTONE``, ``CONNECT``; manual 003 s.25.1);
  the URC table (head hash, then prefix and argument count); a bare answer line
  when the command asked for them; else ``unknown`` and ``on_unknown``.
  A URC entry is either a handler (gets the ``Args`` view; may only record state
  or enqueue events) or a *store*: arguments ``first..last`` parsed as integers
  into slots of an int array, with an optional sequence slot bumped, done in
  viper without a Python call; or both: the store, then the handler, which
  reads the numbers from its array instead of parsing them (one call per line);
  or a *frame entry* (``Engine.on_frame``): the store, then the raw frame the
  line announces armed into the owner's buffer when it fits what the owner
  declared (index, gate, announced total), its fill advanced at its end, all in
  viper; anything else goes to the handler; or a *change entry* (``Engine.on_store``
  with ``on_change``): the store and the argument count, the handler only when one
  of them changed; or a *start entry* (``Engine.on_start``): the store, then the
  owner's message started in its array (gate, announced lengths within its limits,
  fills zeroed) when it prepared a destination, else the handler.

All shared state lives in one int array ``st`` read through the ``_R_*``
(ring), ``_T_*`` (tokenizer), ``_W_*`` (raw frame) and ``_D_*`` (dispatch)
slot constants below: the viper code takes it as one ``ptr32`` and the per-line
path stores no Python attribute.  Nothing here allocates after construction.
"""

from array import array

from .compat import const, micropython, ptr8, ptr16, ptr32, ticks_add, ticks_diff, ticks_ms

# ---- token kinds ----------------------------------------------------------------------------
T_NONE = const(0)
T_LINE = const(1)
T_PROMPT = const(2)
T_RAW = const(3)
T_LOST = const(4)  # a raw frame abandoned (ring overflow or deadline); resync at the next LF

# ---- final result kinds (Response.final) ----------------------------------------------------
R_PENDING = const(0)
R_OK = const(1)
R_ERROR = const(2)  # plain ERROR
R_CME = const(3)  # +CME ERROR: <code>
R_CMS = const(4)  # +CMS ERROR: <code>
R_NO_CARRIER = const(5)
R_BUSY = const(6)
R_NO_ANSWER = const(7)
R_NO_DIALTONE = const(8)
R_CONNECT = const(9)
R_ABORTED = const(10)  # abort() from a URC handler (connection lost, modem reboot)

FINAL_TEXT = (b"", b"OK", b"ERROR", b"+CME ERROR", b"+CMS ERROR", b"NO CARRIER", b"BUSY",
              b"NO ANSWER", b"NO DIALTONE", b"CONNECT")
FINAL_NAMES = ("PENDING", "OK", "ERROR", "CME", "CMS", "NO CARRIER", "BUSY", "NO ANSWER",
               "NO DIALTONE", "CONNECT", "ABORTED")

# ---- phases of the command in flight --------------------------------------------------------
PH_IDLE = const(0)
PH_PROMPT = const(1)  # waiting for '>' (or a final code refusing it)
PH_FINAL = const(2)
PH_DONE = const(3)  # OK seen, waiting for the completion URC

# ---- raw frames -----------------------------------------------------------------------------
# The reader's hard bound on an announced frame.  The largest frame a supported modem
# announces is a CMQTT payload chunk of at most 10240 bytes (002/003 s.16 AT+CMQTTPAYLOAD,
# <payload_total_len> 1..10240); drivers bound by their family's limits before this.
RAW_MAX = const(16384)
RAW_MARGIN_MS = const(250)  # added to twice the frame's time at the line rate
BITS_PER_BYTE = const(10)  # 8N1: start + 8 data + stop (003 s.1: 115200 8N1 by default)

# ---- the state array: one slot per fact, named once -----------------------------------------
# ring
_R_READ = const(0)  # read index
_R_HELD = const(1)  # bytes held
_R_MASK = const(2)  # size - 1
_R_LOST = const(3)  # 1: put() dropped bytes; the tokenizer resyncs and clears it
_R_OVERFLOWS = const(4)  # put() calls that could not store everything
_R_DROPPED = const(5)  # bytes thrown away by them
# tokenizer
_T_LLEN = const(6)  # bytes of the line being assembled
_T_FLAGS = const(7)  # _F_* below
_W_FILL = const(8)  # a frame entry's frame: the target slot its end offset goes to
_T_LMAX = const(9)  # line buffer size
_T_LEN = const(10)  # length of the last complete line
_T_HEAD = const(11)  # its head hash
_T_LINES = const(12)
_T_TRUNC = const(13)  # 1: the last line was cut at the line buffer's size
_T_TRUNCS = const(14)
_T_PROMPTS = const(15)
_T_RESYNCS = const(16)
# raw frame
_W_LEFT = const(17)  # bytes of the armed frame still to come
_W_OFF = const(18)  # where the next one goes in the armed buffer
_W_FRAMES = const(19)
_W_BYTES = const(20)
_W_EXPIRED = const(21)  # 1: the armed frame missed its deadline; T_LOST next
_W_ABANDONED = const(22)  # frames abandoned at their deadline
_W_REFUSED = const(23)  # arm_raw() calls refused (length above RAW_MAX or negative)
_W_SKIP = const(37)  # 1: the armed frame is skipped (no buffer)
_W_MARK = const(38)  # a frame entry's frame: the target slot cleared when it completes
_W_BAUD = const(39)  # the line rate, for the deadline of a frame armed in viper
# dispatch
_D_PHASE = const(24)  # PH_*
_D_WAITING = const(25)  # 1: a command coroutine is parked on the flag
# Viper reads these slots as ptr32, zero-extended on a 64-bit host: "none" is 0, never -1.
_D_ECHO = const(26)  # length of the echo still expected, 0: none
_D_RESP = const(27)  # length of the response prefix, 0: none
_D_DONE = const(28)  # length of the completion URC prefix, 0: none
_D_DONE_ARG = const(29)  # its first argument must equal this minus 1 (0: any)
_D_DONE_SEEN = const(30)
_D_PROMPTED = const(31)
_D_BARE = const(32)  # 1: keep lines nobody claims as the answer
_D_URCS = const(33)
_D_UNKNOWN = const(34)
_D_ECHOES = const(35)
_D_STORES = const(36)  # lines handled by store entries
_D_AFTER = const(40)  # bits of Reader.after_objs whose after_read() is due after this read
# (the EventQueues an event or commit entry posted to while a task waits on them)
_ST_SIZE = const(41)

# tokenizer flags (st[_T_FLAGS])
_F_PROMPT = const(1)  # a '>' at line start is a prompt
_F_TRUNC = const(2)  # the current line overflowed the buffer
_F_DISCARD = const(4)  # drop bytes up to the next LF (resync)
_F_SKIPSP = const(8)  # eat one space after a prompt
_H0 = const(0x811C9D)  # head hash seed
# The head hash covers the bytes before the first ':' but at most this many: a line with
# no colon is not hashed whole.  A URC prefix's head must be shorter (add_urc checks), so a
# line's capped head equals a prefix's head only when its whole head does.
HEAD_MAX = const(16)

# Args state, one int array per view: (start, end, argument count or -1 before the split,
# the maximum, then (start, end) per argument).
_A_S = const(0)
_A_E = const(1)
_A_ARGC = const(2)
_A_MAX = const(3)
_A_SPANS = const(4)

# Response state, one int array
_RS_COUNT = const(0)
_RS_USED = const(1)
_RS_FINAL = const(2)
_RS_CODE = const(3)
_RS_DONE = const(4)
_RS_OVERFLOW = const(5)

# URC entry kinds (Reader.e_kind)
_K_CALL = const(0)  # call the handler with the Args view
_K_STORE = const(1)  # store integer arguments, no Python call
_K_STORE_CALL = const(2)  # store them, then call the handler (it reads the stored numbers)
_K_STORE_FRAME = const(3)  # store them, then arm the announced raw frame; the handler only
# when the frame cannot be armed as declared (see frame_spec)
K_STORE_CHANGE = const(4)  # store them and the argument count; the handler only when one of
# them changed (see store_spec's ``count``)
K_STORE_START = const(5)  # store them, then start the owner's message in its array; the
# handler only when it cannot be started as declared (see start_spec)
K_STORE_EVENT = const(6)  # store them, then post an event into an EventQueue; the handler
# only when the line is not what the entry declares (see event_spec)
K_STORE_STATE = const(9)  # a change entry that, on a change, sets the owner's state (a list
# item) from a stored number and posts an event when it differs; the handler otherwise
K_SEEN = const(8)  # no store: the handler only when target[slot] lacks one of the entry's
# bits (see seen_spec): a report whose every effect is recorded already costs no call
K_STORE_COMMIT = const(7)  # store them, then commit the owner's message into its Inbox slot,
# post its event and prepare the next slot; the handler otherwise (see commit_spec)

# URC store entries: spec array per entry (first arg, last arg, first slot, sequence slot
# plus 1, 0: none)
_U_FIRST = const(0)
_U_LAST = const(1)
_U_SLOT = const(2)
_U_SEQ = const(3)
_U_ARGC = const(4)  # change entries: slot of the argument count
# frame entries (frame_spec), slots of the target array unless said otherwise
_U_MATCH = const(4)  # value target[_U_SLOT] (the first stored number) must equal
_U_GATE = const(5)  # slot that must hold _U_GATEV (the owner is keeping a message)
_U_GATEV = const(6)
_U_FILL = const(7)  # bytes of the destination filled so far: the frame goes there
_U_TOTAL = const(8)  # bytes announced for the destination
_U_MARK = const(9)  # set to 1 while the reader's own frame is in flight
_U_LEN = const(10)  # slot of the frame's length (a stored argument)
# start entries (start_spec): _U_MATCH, _U_GATE, _U_GATEV as above, then per announced length
# k (stored arguments 1.. after the matched first) _U_FILL + k set to 0, _U_TOTAL + k to it
_U_READY = const(9)  # slot that must hold 1 (the owner prepared a destination); 2 after
_U_LIMIT = const(10)  # first slot of the lengths' upper bounds (one per length)
_U_SETV = const(11)  # the value the gate slot gets
# event entries (event_spec): _U_FIRST.._U_SEQ as a store, then
_U_EMATCH = const(4)  # the first stored number must equal this minus 1 (0: any)
_U_EGATE = const(5)  # slot + 1 that must hold _U_EGATEV (0: none)
_U_EGATEV = const(6)
_U_ECODE = const(7)  # the event's kind; its a, b are the first two stored numbers
_U_ECOUNT = const(8)  # 1: a counter (a dict and its key) is bumped per event posted
_U_EQAFTER = const(10)  # the queue's Reader.after_objs bit (due while a task waits on it)
_U_EMAX = const(11)  # every stored number must be within 0..this
# commit entries (commit_spec): _U_MATCH, _U_GATE, _U_GATEV, _U_READY as start entries, the
# two fills at _U_FILL (+1) must equal the two totals at _U_TOTAL (+1), then
_U_CAT = const(10)  # slot of the inbox slot the owner prepared (-1: none)
_U_CSETV = const(11)  # the value the gate slot gets (the owner is idle again)
_U_CCODE = const(12)  # the event posted: (code, inbox slot, the matched first number)
_U_CCOUNT = const(13)  # 1: a counter (a dict and its key) is bumped per message committed
_U_CQAFTER = const(15)  # the queue's Reader.after_objs bit (due while a task waits on it)
_U_SIZE = const(16)
_U_SPAN = const(5)  # slots of a store, change or seen entry's spec (_U_FIRST.._U_ARGC/_U_BITS)
_K_BITS = const(4)  # Reader.e_kind: kind | spec offset << _K_BITS
_K_MASK = const(15)
# state entries (state_spec): _U_FIRST.._U_ARGC as a change entry, then
_U_SALT = const(5)  # argument count + 1 whose line gives the second stored number (0: none)
_U_SINDEX = const(6)  # the item of the owner's state list
_U_SCODE = const(7)  # the event posted on a change: (code, value, _U_SINDEX)
_U_SMAX = const(8)  # the value must be within 0..this, else the handler
_U_SQAFTER = const(10)  # the queue's Reader.after_objs bit
# seen entries (seen_spec): _U_SLOT, then
_U_BITS = const(4)  # the bits target[_U_SLOT] must all hold for the line to be skipped

# ---- EventQueue state (atmq.events), here so the reader's viper posts into it -----------------
Q_READ = const(0)  # oldest event
Q_N = const(1)  # events held
Q_SIZE = const(2)  # capacity (events)
Q_DISCARDS = const(3)  # events overwritten because the queue was full
Q_WAITING = const(4)  # 1 while a task waits (wait())
Q_A = const(5)  # the arguments of the event the last get() returned
Q_B = const(6)
Q_SIZE_OF = const(7)

# ---- Inbox state (atmq.inbox), here so the reader's viper commits into it ----------------------
I_READ = const(0)  # oldest committed slot
I_N = const(1)  # committed slots
I_WRITE = const(2)  # the slot being written + 1 (0: none)
I_HELD = const(3)  # 1: the oldest slot is being read (get() without release())
I_WANT_T = const(4)  # announced lengths of the slot being written
I_WANT_P = const(5)
I_TFILL = const(6)  # bytes received so far for it
I_PFILL = const(7)
I_RECEIVED = const(8)
I_OVERSIZE = const(9)
I_OVERWRITTEN = const(10)
I_TORN = const(11)
I_SLOTS = const(12)
I_SIZE_OF = const(13)


def store_spec(first, last, slot, seq=-1, count=-1):
    """The spec of a store URC entry (see ``Engine.on_store``); ``count`` >= 0: the slot
    the argument count goes to, and the handler runs only when it or a stored number
    changed (a change entry)."""
    spec = array("i", (0, 0, 0, 0, 0))
    spec[_U_FIRST] = first
    spec[_U_LAST] = last
    spec[_U_SLOT] = slot
    spec[_U_SEQ] = seq + 1 if seq >= 0 else 0
    spec[_U_ARGC] = count if count >= 0 else 0
    return spec


def start_spec(first, last, slot, match, gate, gate_value, set_value, ready, limit, fill,
               total):
    """The spec of a start entry (see ``Engine.on_start``): a store, then, when
    ``target[slot] == match``, ``target[gate] == gate_value``, ``target[ready] == 1`` and
    each announced length (stored arguments ``first + 1..last``, the k-th at
    ``target[slot + 1 + k]``) is within ``0..target[limit + k]``: ``target[total + k]``
    takes it, ``target[fill + k]`` is 0, ``target[gate]`` becomes ``set_value`` and
    ``target[ready]`` 2 (the owner's own bookkeeping is due), with no Python call."""
    spec = array("i", bytes(4 * _U_SIZE))
    spec[_U_FIRST] = first
    spec[_U_LAST] = last
    spec[_U_SLOT] = slot
    for k, v in ((_U_MATCH, match), (_U_GATE, gate), (_U_GATEV, gate_value),
                 (_U_SETV, set_value), (_U_READY, ready), (_U_LIMIT, limit), (_U_FILL, fill),
                 (_U_TOTAL, total)):
        if v < 0:
            raise ValueError("start_spec: slots and values are >= 0")
        spec[k] = v
    return spec


def frame_spec(first, last, slot, length, match, gate, gate_value, fill, total, mark):
    """The spec of a frame entry (see ``Engine.on_frame``): a store, then, when
    ``target[slot] == match``, ``target[gate] == gate_value`` and
    ``0 < target[length] <= target[total] - target[fill]`` (and <= RAW_MAX and the
    buffer), the next ``target[length]`` bytes are armed as a raw frame into the entry's
    buffer at ``target[fill]``; at its end ``target[fill]`` is the new fill and
    ``target[mark]`` (1 while it is in flight) is 0 again, with no Python call."""
    spec = array("i", bytes(4 * _U_SIZE))
    spec[_U_FIRST] = first
    spec[_U_LAST] = last
    spec[_U_SLOT] = slot
    for k, v in ((_U_MATCH, match), (_U_GATE, gate), (_U_GATEV, gate_value), (_U_FILL, fill),
                 (_U_TOTAL, total), (_U_MARK, mark), (_U_LEN, length)):
        if v < 0:
            raise ValueError("frame_spec: slots and values are >= 0")
        spec[k] = v
    return spec


def event_spec(first, last, slot, code, match=-1, gate=-1, gate_value=0, count=False,
               queue_after=0, max_value=0x7FFFFFFF):
    """The spec of an event entry (see ``Engine.on_event``): a store, then, when every
    stored number is within ``0..max_value``, the first equals ``match`` (if >= 0) and
    ``target[gate] == gate_value`` (if ``gate`` >= 0): the event ``(code, first stored
    number, second or 0)`` is posted and (``count``) the entry's counter bumped, with no
    Python call; ``queue_after`` is the queue's ``Reader.after_objs`` bit."""
    if code < 0 or max_value < 0 or slot < 0:
        raise ValueError("event_spec: code, slot and max_value are >= 0")
    spec = array("i", bytes(4 * _U_SIZE))
    spec[_U_FIRST] = first
    spec[_U_LAST] = last
    spec[_U_SLOT] = slot
    spec[_U_EMATCH] = match + 1 if match >= 0 else 0
    spec[_U_EGATE] = gate + 1 if gate >= 0 else 0
    spec[_U_EGATEV] = gate_value
    spec[_U_ECODE] = code
    spec[_U_ECOUNT] = 1 if count else 0
    spec[_U_EQAFTER] = queue_after
    spec[_U_EMAX] = max_value
    return spec


def state_spec(first, last, slot, count, index, code, alt_count=-1, max_value=0x7FFFFFFF,
               seq=-1, queue_after=0):
    """The spec of a state entry (see ``Engine.on_state``)."""
    if count < 0 or index < 0 or code < 0 or max_value < 0:
        raise ValueError("state_spec: count slot, index, code, max_value are >= 0")
    spec = store_spec(first, last, slot, seq, count)
    spec = array("i", list(spec) + [0] * (_U_SIZE - len(spec)))
    spec[_U_SALT] = alt_count + 1 if alt_count >= 0 else 0
    spec[_U_SINDEX] = index
    spec[_U_SCODE] = code
    spec[_U_SMAX] = max_value
    spec[_U_SQAFTER] = queue_after
    return spec


def seen_spec(slot, bits):
    """The spec of a seen entry (see ``Engine.on_seen``)."""
    if slot < 0 or bits <= 0:
        raise ValueError("seen_spec: a slot and bits")
    spec = array("i", bytes(4 * _U_SIZE))
    spec[_U_SLOT] = slot
    spec[_U_BITS] = bits
    return spec


def commit_spec(first, last, slot, match, gate, gate_value, set_value, ready, fill, total, at,
                code, count=False, queue_after=0):
    """The spec of a commit entry (see ``Engine.on_commit``)."""
    spec = array("i", bytes(4 * _U_SIZE))
    spec[_U_FIRST] = first
    spec[_U_LAST] = last
    spec[_U_SLOT] = slot
    for k, v in ((_U_MATCH, match), (_U_GATE, gate), (_U_GATEV, gate_value),
                 (_U_CSETV, set_value), (_U_READY, ready), (_U_FILL, fill), (_U_TOTAL, total),
                 (_U_CAT, at), (_U_CCODE, code)):
        if v < 0:
            raise ValueError("commit_spec: slots and values are >= 0")
        spec[k] = v
    spec[_U_CCOUNT] = 1 if count else 0
    spec[_U_CQAFTER] = queue_after
    return spec


# ---- viper kernels --------------------------------------------------------------------------


@micropython.viper
def post(q, qst, kind: int, a: int, b: int) -> int:
    """Append the event (kind, a, b) to an EventQueue's arrays (``q``: 3 ints per event,
    ``qst``: its ``Q_*`` state); full: the oldest is overwritten and counted.  Returns 1
    when a task waits on the queue (the caller wakes it)."""
    s = ptr32(qst)
    d = ptr32(q)
    size = int(s[Q_SIZE])
    n = int(s[Q_N])
    r = int(s[Q_READ])
    if n == size:
        r += 1
        if r == size:
            r = 0
        s[Q_READ] = r
        n -= 1
        s[Q_DISCARDS] = s[Q_DISCARDS] + 1
    j = r + n
    if j >= size:
        j -= size
    j = 3 * j
    d[j] = kind
    d[j + 1] = a
    d[j + 2] = b
    s[Q_N] = n + 1
    return int(s[Q_WAITING])


@micropython.viper
def queue_get(self) -> int:
    """``EventQueue.get``: the oldest event's kind (its arguments in ``.a``/``.b``), or -1
    when empty."""
    s = ptr32(self._st)
    n = int(s[Q_N])
    if n == 0:
        return -1
    d = ptr32(self._q)
    r = int(s[Q_READ])
    j = 3 * r
    s[Q_A] = d[j + 1]
    s[Q_B] = d[j + 2]
    r += 1
    if r == int(s[Q_SIZE]):
        r = 0
    s[Q_READ] = r
    s[Q_N] = n - 1
    return int(d[j])


@micropython.viper
def inbox_get(self) -> int:
    """``Inbox.get``: the slot of the oldest message, or -1; valid until ``release``."""
    st = ptr32(self.st)
    if st[I_N] == 0:
        return -1
    st[I_HELD] = 1
    return int(st[I_READ])


@micropython.viper
def inbox_release(self):
    """``Inbox.release``: the oldest message is read; its slot is free again."""
    st = ptr32(self.st)
    st[I_HELD] = 0
    n = int(st[I_N])
    if n:
        r = int(st[I_READ]) + 1
        if r == int(st[I_SLOTS]):
            r = 0
        st[I_READ] = r
        st[I_N] = n - 1


@micropython.viper
def _copy(src, s: int, dst, d: int, n: int):
    a = ptr8(src)
    b = ptr8(dst)
    i = 0
    while i < n:
        b[d + i] = a[s + i]
        i += 1


@micropython.viper
def _put(st, ring, src, off: int, n: int) -> int:
    # copy n bytes of src[off:] into the ring; what does not fit is dropped and flagged
    sp = ptr32(st)
    held = sp[_R_HELD]
    mask = sp[_R_MASK]
    room = mask + 1 - held
    if n > room:
        sp[_R_OVERFLOWS] = sp[_R_OVERFLOWS] + 1
        sp[_R_DROPPED] = sp[_R_DROPPED] + n - room
        sp[_R_LOST] = 1
        n = room
    rb = ptr8(ring)
    s8 = ptr8(src)
    w = (sp[_R_READ] + held) & mask
    i = 0
    while i < n:
        rb[w] = s8[off + i]
        w = (w + 1) & mask
        i += 1
    sp[_R_HELD] = held + n
    return n


@micropython.viper
def _resync(st) -> int:
    # Ring overflow or an expired frame: drop the partial line, discard up to the next LF.
    # T_LOST when a raw frame was in progress (its owner must abandon it), else T_NONE.
    sp = ptr32(st)
    sp[_R_LOST] = 0
    sp[_T_RESYNCS] = sp[_T_RESYNCS] + 1
    sp[_T_LLEN] = 0
    sp[_T_FLAGS] = (sp[_T_FLAGS] & _F_PROMPT) | _F_DISCARD
    if sp[_W_EXPIRED]:
        sp[_W_EXPIRED] = 0
        sp[_W_ABANDONED] = sp[_W_ABANDONED] + 1
        sp[_W_LEFT] = 0
        return T_LOST
    if sp[_W_LEFT]:
        sp[_W_LEFT] = 0
        return T_LOST
    return T_NONE


@micropython.viper
def _split(buf, v) -> int:
    # v: an Args state array (_A_*).  Arguments start after the colon of a "+NAME:"
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
    """24-bit FNV-1a of the line head: up to the first ':' (or the line's end), at most
    ``HEAD_MAX`` bytes."""
    b = ptr8(buf)
    h = _H0
    i = s
    if e - s > HEAD_MAX:
        e = s + HEAD_MAX
    while i < e:
        c = int(b[i])
        if c == 58:
            break
        h = ((h ^ c) * 0x01000193) & 0xFFFFFF
        i += 1
    return h


# ---- views ----------------------------------------------------------------------------------


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


class Response:
    """Lines stored for the last command, and its outcome (read-only views).

    ``final`` is one of the ``R_*`` kinds (``ok``: it is ``R_OK``) and ``code``
    the number of a ``+CME``/``+CMS ERROR`` (``-1`` when verbose or absent).
    ``line(i)`` positions and returns an ``Args`` view of stored line ``i``;
    ``done`` is the index of the completion URC of a two-phase command (``-1``:
    none); ``overflow`` counts lines that did not fit.
    """

    def __init__(self, size=1024, max_lines=16, max_args=24):
        self.buf = bytearray(size)
        self.spans = array("H", bytes(4 * max_lines))
        self.max_lines = max_lines
        self.args = Args(self.buf, max_args)
        self.st = array("i", (0, 0, R_PENDING, -1, -1, 0))

    @property
    def count(self):
        return self.st[_RS_COUNT]

    @property
    def final(self):
        return self.st[_RS_FINAL]

    @property
    def ok(self):
        return self.st[_RS_FINAL] == R_OK

    @property
    def code(self):
        return self.st[_RS_CODE]

    @property
    def done(self):
        return self.st[_RS_DONE]

    @property
    def overflow(self):
        return self.st[_RS_OVERFLOW]

    @micropython.native
    def add(self, src, s, e):
        st = self.st
        n = e - s
        i = st[_RS_COUNT]
        used = st[_RS_USED]
        if i >= self.max_lines or used + n > len(self.buf):
            st[_RS_OVERFLOW] += 1
            return -1
        _copy(src, s, self.buf, used, n)
        sp = self.spans
        sp[2 * i] = used
        sp[2 * i + 1] = used + n
        st[_RS_USED] = used + n
        st[_RS_COUNT] = i + 1
        return i

    def clear(self):
        st = self.st
        st[_RS_COUNT] = 0
        st[_RS_USED] = 0
        st[_RS_FINAL] = R_PENDING
        st[_RS_CODE] = -1
        st[_RS_DONE] = -1
        st[_RS_OVERFLOW] = 0

    def finish(self, kind):
        """Set the final result from outside the reader (``abort``)."""
        self.st[_RS_FINAL] = kind

    @micropython.native
    def line(self, i=0):
        a = self.args
        if i < 0 or i >= self.st[_RS_COUNT]:
            a.set(0, 0)
        else:
            a.set(self.spans[2 * i], self.spans[2 * i + 1])
        return a

    @micropython.native
    def find(self, prefix):
        """Args of the first stored line starting with ``prefix``, or None."""
        for i in range(self.st[_RS_COUNT]):
            a = self.line(i)
            if a.startswith(prefix):
                return a
        return None


# ---- the reader -----------------------------------------------------------------------------


class Reader:
    """See the module docstring.  No properties on this class: on MicroPython a class with
    a property makes every attribute store on its instances look the class up first, and
    ``pump`` stores per read.  ``RingView``/``TokenizerView`` give the read-only views."""

    def __init__(self, stream, flag, ring_size=2048, chunk_size=256, line_max=512,
                 resp_size=1024, resp_lines=16, max_args=24, baud=115200):
        if ring_size < 16 or ring_size & (ring_size - 1):
            raise ValueError("ring size must be a power of two >= 16")
        if chunk_size > ring_size:
            raise ValueError("chunk_size must not exceed ring_size")
        if baud <= 0:
            raise ValueError("baud must be > 0")
        self.stream = stream
        self.ring = bytearray(ring_size)
        self.line = bytearray(line_max)
        self.args = Args(self.line, max_args)
        self.resp = Response(resp_size, resp_lines, max_args)
        # pump() reads straight into the ring when it is empty (it always is after a
        # dispatch): one view made here, no copy per read; the staging chunk is for the
        # rare read that finds bytes left over (a reader error left them)
        self._direct = memoryview(self.ring)[:chunk_size]
        self._chunk = bytearray(chunk_size)
        self.chunk_size = chunk_size
        self.baud = baud
        st = array("i", bytes(4 * _ST_SIZE))
        st[_R_MASK] = ring_size - 1
        st[_T_LMAX] = line_max
        st[_W_BAUD] = baud
        self.st = st
        self.flag = flag  # set when a parked command coroutine has something to look at
        # Python objects the dispatcher reads per line, in lists (no attribute stores):
        # the command in flight's echo, response prefix and completion prefix ...
        self.cmd = [b"", b"", b""]
        # ... the armed raw frame's buffer (None: skip), its deadline (ticks_ms) and, for
        # a frame a frame entry armed, the target array its fill goes to ...
        self.raw = [None, 0, None]
        # ... and the hooks: on_raw(kind) for T_RAW/T_LOST, on_unknown(args), tap.
        self.hooks = [None, None, None]
        # URC table, probed in viper without a Python call: an open-addressing hash table
        # (head hash + 1 -> first entry + 1, 0: empty) and per entry its prefix's offset
        # and length in one blob, its argument count + 1 (0: any), the next entry with the
        # same head + 1, and its kind (with its spec's offset).  Handlers, store specs
        # and targets are in lists by entry.  Every slot is >= 0 (ptr32 zero-extends).
        # add_urc() grows them by concatenation, so each holds exactly its entries (an
        # append would leave up to 8 spare slots per array and half of each list: issue 11).
        self.blob = bytearray()
        self.e_off = array("i")
        self.e_len = array("i")
        self.e_nargs = array("i")
        self.e_next = array("i")
        self.e_kind = array("i")
        self.urc_fns = []
        self.e_spec = array("i")  # the entries' specs, _U_SIZE slots each (zeros: none)
        self.urc_targets = []
        self.urc_frames = []  # per frame entry: a list whose item 0 is the buffer (or None);
        # per event entry: the queue's (events array, state array)
        self.after_objs = []  # queues whose after_read() a read's event entries made due
        self._rehash(32)
        final_of = {}
        for kind in range(1, len(FINAL_TEXT)):
            p = FINAL_TEXT[kind]
            final_of[head_hash(p, 0, len(p))] = kind
        self._final_of = final_of
        self._final_len = array("i", [len(t) for t in FINAL_TEXT])
        self._set_hot()
        self.rx_bytes = 0
        self.eof = False
        self.handler_errors = 0  # URC handlers that raised (counted, the reader goes on)
        self.last_handler_error = None

    # ---- URC table ---------------------------------------------------------------------

    def add_urc(self, prefix, handler, nargs=-1, spec=None, target=None, frame=None,
                kind=-1):
        """Append a table entry (``Engine.on``/``Engine.on_store`` check the arguments):
        a handler, a store (``spec``/``target``), or both (the store, then the handler).

        The table key is the head of ``prefix`` (up to ``:``); entries that share a
        head are tried in registration order."""
        h = head_hash(prefix, 0, len(prefix))
        colon = bytes(prefix).find(b":")
        if (len(prefix) if colon < 0 else colon) >= HEAD_MAX:
            raise ValueError("a URC prefix's head (up to ':') must be under %d bytes" % HEAD_MAX)
        e = len(self.e_off)
        self.e_off = self.e_off + array("i", (len(self.blob),))
        self.e_len = self.e_len + array("i", (len(prefix),))
        self.blob.extend(prefix)
        self.e_nargs = self.e_nargs + array("i", (nargs + 1 if nargs >= 0 else 0,))
        self.e_next = self.e_next + array("i", (0,))
        if kind < 0:
            kind = (_K_CALL if spec is None else _K_STORE_FRAME if frame is not None
                    else _K_STORE if handler is None else _K_STORE_CALL)
        spec = spec if spec is not None else ()
        if len(spec) > _U_SIZE:
            raise ValueError("a URC entry's spec has at most %d slots" % _U_SIZE)
        # Each entry's spec takes only the slots its kind reads (none for a plain handler,
        # _U_SPAN for store/change/seen entries, _U_SIZE for the others): issue 11's heap.
        # Its offset in e_spec rides in e_kind above the kind's 4 bits (one read in viper).
        need = (0 if kind == _K_CALL else _U_SPAN if kind in (_K_STORE, _K_STORE_CALL,
                K_STORE_CHANGE, K_SEEN) else _U_SIZE)
        self.e_kind = self.e_kind + array("i", (kind | (len(self.e_spec) << _K_BITS),))
        self.urc_fns = self.urc_fns + [handler]
        self.e_spec.extend(array("i", (list(spec) + [0] * need)[:need]))
        self.urc_targets = self.urc_targets + [target]
        self.urc_frames = self.urc_frames + [frame]
        first = self._find(h)
        if first >= 0:
            while self.e_next[first]:
                first = self.e_next[first] - 1
            self.e_next[first] = e + 1
        else:
            self._heads += 1
            if 2 * self._heads > len(self._hk):
                self._rehash(2 * len(self._hk))
            else:
                self._insert(h, e)
        self._set_hot()

    def _find(self, h):
        hk = self._hk
        mask = len(hk) - 1
        j = h & mask
        while hk[j]:
            if hk[j] == h + 1:
                return self._hv[j] - 1
            j = (j + 1) & mask
        return -1

    def _insert(self, h, e):
        hk = self._hk
        mask = len(hk) - 1
        j = h & mask
        while hk[j]:
            j = (j + 1) & mask
        hk[j] = h + 1
        self._hv[j] = e + 1

    def _rehash(self, size):
        self._hk = array("i", bytes(4 * size))
        self._hv = array("i", bytes(4 * size))
        self._heads = 0
        seen = []
        for e in range(len(self.e_off)):
            o = self.e_off[e]
            h = head_hash(self.blob, o, o + self.e_len[e])
            if h not in seen:  # the first entry of each head
                seen.append(h)
                self._insert(h, e)
                self._heads += 1

    def _set_hot(self):
        # What _dispatch needs, in one tuple: one attribute load and an unpack per call
        # instead of a dozen attribute loads (rebuilt when the URC table changes).
        self._hot = (self.st, self.ring, self.line, self.args, self.args.v, self.resp,
                     self.resp.st, self._final_of, self._final_len, self.cmd, self.raw,
                     self.hooks, self.flag, self._hk, self._hv, len(self._hk) - 1, self.blob,
                     self.e_off, self.e_len, self.e_nargs, self.e_next, self.e_kind,
                     self.urc_fns, self.e_spec, self.urc_targets, self.urc_frames)

    # ---- command state (set by the engine's coroutines, read by the dispatcher) ----------

    @micropython.native
    def begin(self, cmd, resp, bare, done, done_arg, prompt):
        """Put a command in flight: empty the Response, arm the matchers; no allocation."""
        st = self.st
        self.resp.clear()
        c = self.cmd
        c[0] = cmd or b""
        c[1] = resp or b""
        c[2] = done or b""
        st[_D_ECHO] = len(cmd) if cmd else 0
        st[_D_RESP] = len(resp) if resp else 0
        st[_D_DONE] = len(done) if done else 0
        st[_D_DONE_ARG] = done_arg + 1 if done_arg >= 0 else 0
        st[_D_DONE_SEEN] = 0
        st[_D_PROMPTED] = 0
        st[_D_BARE] = 1 if bare else 0
        if prompt:
            st[_D_PHASE] = PH_PROMPT
            st[_T_FLAGS] = st[_T_FLAGS] | _F_PROMPT
        else:
            st[_D_PHASE] = PH_FINAL

    @micropython.native
    def end(self):
        """The command in flight is over (answered, failed or abandoned)."""
        st = self.st
        st[_T_FLAGS] = st[_T_FLAGS] & (0xFFFF ^ _F_PROMPT)
        st[_D_PHASE] = PH_IDLE
        st[_D_ECHO] = st[_D_RESP] = st[_D_DONE] = 0
        c = self.cmd
        c[0] = c[1] = c[2] = b""

    # read and set by the engine's coroutines (per command, not per line)
    def set_phase(self, phase):
        self.st[_D_PHASE] = phase

    def phase(self):
        return self.st[_D_PHASE]

    def set_waiting(self, on):
        self.st[_D_WAITING] = 1 if on else 0

    def waiting(self):
        return self.st[_D_WAITING] != 0

    def prompted(self):
        return self.st[_D_PROMPTED] != 0

    def done_seen(self):
        return self.st[_D_DONE_SEEN] != 0

    def urcs(self):
        return self.st[_D_URCS]

    def unknown(self):
        return self.st[_D_UNKNOWN]

    def echoes(self):
        return self.st[_D_ECHOES]

    # ---- raw frames --------------------------------------------------------------------

    @micropython.native
    def arm_raw(self, dst, off, n):
        """The next ``n`` bytes go verbatim to ``dst[off:off+n]`` (``dst`` None: skip them).

        Returns True when armed.  Refused (False, counted in ``raw_refused``, no
        exception: it runs inside the reader, on lengths a remote peer chose) when
        ``n`` is negative, above ``RAW_MAX`` or does not fit ``dst``: the reader
        then stays on lines.  The frame must complete within twice its time at
        the line rate plus ``RAW_MARGIN_MS``, else it is abandoned (see ``pump``).
        """
        st = self.st
        if n < 0 or n > RAW_MAX or (dst is not None and off + n > len(dst)):
            st[_W_REFUSED] += 1
            return False
        raw = self.raw
        raw[0] = dst
        raw[2] = None  # its owner's on_raw hook hears of its end
        st[_W_SKIP] = 1 if dst is None else 0
        raw[1] = ticks_add(ticks_ms(), 2 * n * BITS_PER_BYTE * 1000 // self.baud
                           + RAW_MARGIN_MS)
        st[_W_OFF] = off
        st[_W_LEFT] = n
        if n == 0:
            st[_W_FRAMES] += 1
        return True

    def raw_pending(self):
        """True while an armed frame waits for bytes (the reader task then polls)."""
        return self.st[_W_LEFT] != 0

    def frame_ms(self, n):
        """The deadline of an ``n``-byte frame: twice its time at the line rate + margin."""
        return 2 * n * BITS_PER_BYTE * 1000 // self.baud + RAW_MARGIN_MS

    # ---- reading -----------------------------------------------------------------------

    @micropython.native
    def put(self, src, n, off=0):
        """Copy ``n`` bytes of ``src[off:]`` into the ring; returns how many were stored
        (the rest is dropped, counted and flagged: the tokenizer resyncs)."""
        return _put(self.st, self.ring, src, off, n)

    @micropython.native
    def room(self):
        st = self.st
        return st[_R_MASK] + 1 - st[_R_HELD]

    @micropython.native
    def pump(self, read=True):
        """Read what the stream has, then tokenize and dispatch every token the ring holds.

        Returns the bytes read: 0 when nothing was waiting (or ``read`` is False),
        -1 at end of stream (a socket or pty whose far end closed).  A URC handler
        that raises is counted (``handler_errors``, ``last_handler_error``) and
        dispatch goes on with the next token.
        """
        ns = 0
        st = self.st
        if read:
            direct = st[_R_HELD] == 0
            if direct:
                st[_R_READ] = 0
                chunk = self._direct
            else:
                chunk = self._chunk
            ns = self.stream.readinto(chunk)
            if ns is None:
                ns = 0
                if st[_W_LEFT] and ticks_diff(ticks_ms(), self.raw[1]) > 0:
                    # The stream is idle, the armed frame short of bytes and past its
                    # deadline: the modem is not sending it.  Abandon it (issue 10 #3).
                    # Only an idle read decides: a reader that fell behind drains the
                    # UART first, so a frame whose bytes are waiting there completes.
                    st[_W_EXPIRED] = 1
            elif ns == 0:
                self.eof = True
                return -1
            else:
                self.rx_bytes += ns
                tap = self.hooks[2]
                if tap is not None:
                    tap.rx(chunk, ns)
                if direct:
                    st[_R_HELD] = ns
                else:
                    _put(st, self.ring, chunk, 0, ns)
        if st[_R_HELD] == 0 and not st[_W_EXPIRED] and not st[_R_LOST]:
            return ns
        left = -1
        while True:
            try:
                self._dispatch()
                break
            except Exception as e:  # a broken handler must not stop the reader
                held = st[_R_HELD]
                if held == left:
                    raise e  # nothing consumed since the last one: the reader's own fault
                left = held
                self.handler_errors += 1
                self.last_handler_error = e
        if st[_D_AFTER]:
            self._after()
        return ns

    def _after(self):
        # Once per read, not per line: the queues event entries posted to while a task
        # waits on them wake it (ThreadSafeFlag.set is interpreted Python).
        st = self.st
        bits = st[_D_AFTER]
        st[_D_AFTER] = 0
        objs = self.after_objs
        for i in range(len(objs)):
            if bits & (1 << i):
                try:
                    objs[i].after_read()
                except Exception as e:  # as a handler's: counted, the reader goes on
                    self.handler_errors += 1
                    self.last_handler_error = e

    def after_bit(self, obj):
        """The ``st[_D_AFTER]`` bit whose ``obj.after_read()`` runs after a read in which an
        event entry set it (one per object, at most 30)."""
        objs = self.after_objs
        for i in range(len(objs)):
            if objs[i] is obj:
                return 1 << i
        if len(objs) >= 30:
            raise ValueError("at most 30 after_read() owners")
        objs.append(obj)
        return 1 << (len(objs) - 1)

    @micropython.viper
    def _dispatch(self):
        """Dispatch every token the ring holds (the order is in the module docstring).

        Viper, with the state arrays as ``ptr32``: on MicroPython a call costs
        hundreds of instructions and an attribute lookup a couple of hundred, and
        this runs for every line.  Command state cannot change while it runs
        (commands start and end in their coroutines; handlers only record, and
        ``abort()`` only sets the final code).
        """
        (st_o, ring, buf, a, av_o, r, rst_o, final_of, final_len_o, cmd, raw, hooks, flag,
         hk_o, hv_o, hmask_o, blob, eoff_o, elen_o, enargs_o, enext_o, ekind_o, urc_fn,
         espec_o, urc_target, urc_frame) = self._hot
        st = ptr32(st_o)
        av = ptr32(av_o)
        rst = ptr32(rst_o)
        final_len = ptr32(final_len_o)
        hk = ptr32(hk_o)
        hv = ptr32(hv_o)
        hmask = int(hmask_o)
        bl = ptr8(blob)
        lb = ptr8(buf)
        rb = ptr8(ring)
        eoff = ptr32(eoff_o)
        elen = ptr32(elen_o)
        enargs = ptr32(enargs_o)
        enext = ptr32(enext_o)
        ekind = ptr32(ekind_o)
        u = ptr32(espec_o)  # every entry's spec, _U_SIZE slots each: entry i's at uo
        while True:
            if st[_W_LEFT] or st[_R_LOST] or st[_W_EXPIRED]:
                if st[_R_LOST] or st[_W_EXPIRED]:
                    t = int(_resync(st_o))
                    if t == T_NONE:
                        continue  # no frame was in progress: scan on
                    raw[0] = None
                elif st[_R_HELD]:
                    # the armed frame's bytes from the ring (dropped when skipped), in
                    # contiguous runs (no mask per byte); T_RAW when it is complete
                    wn = int(st[_R_HELD])
                    wl = int(st[_W_LEFT])
                    wk = wn
                    if wk > wl:
                        wk = wl
                    wr = int(st[_R_READ])
                    wm = int(st[_R_MASK])
                    if not st[_W_SKIP]:
                        wd = ptr8(raw[0])
                        wq = int(st[_W_OFF])
                        wp = wr
                        wleft = wk
                        while wleft > 0:
                            we = wm + 1 - wp  # up to the ring's end
                            if we > wleft:
                                we = wleft
                            wleft -= we
                            we += wp
                            while wp < we:
                                wd[wq] = rb[wp]  # pyright: ignore[reportOptionalSubscript]
                                wp += 1
                                wq += 1
                            wp = wp & wm
                    st[_R_READ] = (wr + wk) & wm
                    st[_R_HELD] = wn - wk
                    st[_W_BYTES] = st[_W_BYTES] + wk
                    st[_W_OFF] = st[_W_OFF] + wk
                    st[_W_LEFT] = wl - wk
                    if wl - wk:
                        t = T_NONE
                    else:
                        st[_W_FRAMES] = st[_W_FRAMES] + 1
                        t = T_RAW
                        raw[0] = None
                else:
                    t = T_NONE
            elif st[_R_HELD]:
                # The scanner, inlined (a viper call per line costs ~700 instructions):
                # ring bytes until a line or a prompt is complete (T_LINE/T_PROMPT) or
                # the ring is empty (T_NONE; the partial line stays in the line buffer).
                # The ring is walked in contiguous runs (no mask per byte); the common
                # case, an ordinary byte of a line that still fits, is one tight loop:
                # load, two compares, store.  The head hash is taken once per line.
                sr = int(st[_R_READ])
                sn = int(st[_R_HELD])
                ssize = int(st[_R_MASK]) + 1
                sllen = int(st[_T_LLEN])
                sflags = int(st[_T_FLAGS])
                slmax = int(st[_T_LMAX])
                sc = 0
                t = T_NONE
                while sn > 0:
                    send = sr + sn  # the contiguous run: up to the ring's end
                    if send > ssize:
                        send = ssize
                    si = sr
                    if sflags & (_F_SKIPSP | _F_DISCARD | _F_TRUNC) or \
                            (sllen == 0 and sflags & _F_PROMPT):
                        # the rare states, one byte at a time
                        sc = int(rb[si])
                        si += 1
                        if sflags & _F_SKIPSP:  # the byte after a prompt: a space is eaten
                            sflags = sflags & (0xFFFF ^ _F_SKIPSP)
                            if sc == 32:
                                sn -= 1
                                sr = si & (ssize - 1)
                                continue
                        if sc == 62 and sllen == 0 and \
                                (sflags & (_F_PROMPT | _F_DISCARD)) == _F_PROMPT:
                            sflags = (sflags & (0xFFFF ^ _F_PROMPT)) | _F_SKIPSP
                            st[_T_PROMPTS] = st[_T_PROMPTS] + 1
                            t = T_PROMPT
                            sn -= 1
                            sr = si & (ssize - 1)
                            break
                        if sc != 10 and sc != 13 and not (sflags & (_F_DISCARD | _F_TRUNC)):
                            lb[sllen] = sc  # an ordinary byte (_F_TRUNC clear: room)
                            sllen += 1
                            sn -= 1
                            sr = si & (ssize - 1)
                            continue
                        if sc != 10:
                            sn -= 1
                            sr = si & (ssize - 1)
                            continue  # CR, or a byte of a discarded or cut line
                    else:
                        # the fast path: ordinary bytes into the line buffer up to CR, LF or the
                        # buffer's send; the line index is si + sd
                        slim = send
                        if slim - si > slmax - sllen:
                            slim = si + slmax - sllen
                        sd = sllen - si
                        while si < slim:
                            sc = int(rb[si])
                            if sc == 10 or sc == 13:
                                break
                            lb[si + sd] = sc
                            si += 1
                        sllen = si + sd
                        if si == slim:
                            if si == send:  # the run's end: the next run (or read) goes on
                                sn -= si - sr
                                sr = si & (ssize - 1)
                                continue
                            sc = int(rb[si])  # the line buffer is full
                            if sc != 10 and sc != 13:
                                # the line is cut: its tail goes, up to the LF
                                sflags = sflags | _F_TRUNC
                                sn -= si - sr
                                sr = si & (ssize - 1)
                                continue
                        si += 1  # the CR or LF
                        if sc == 13:
                            sn -= si - sr
                            sr = si & (ssize - 1)
                            continue
                    # an LF: si is just past it
                    sn -= si - sr
                    sr = si & (ssize - 1)
                    if sflags & _F_DISCARD:
                        sflags = sflags & (0xFFFF ^ _F_DISCARD)
                        sllen = 0
                        continue
                    if sllen == 0 and not (sflags & _F_TRUNC):
                        continue  # an empty line
                    # head hash: FNV-1a of the bytes before the first ':' (see head_hash)
                    sh = _H0
                    sj = 0
                    slim = sllen if sllen < HEAD_MAX else HEAD_MAX
                    while sj < slim:
                        sc = int(lb[sj])
                        if sc == 58:
                            break
                        sh = ((sh ^ sc) * 0x01000193) & 0xFFFFFF
                        sj += 1
                    st[_T_LEN] = sllen
                    st[_T_HEAD] = sh
                    st[_T_LINES] = st[_T_LINES] + 1
                    if sflags & _F_TRUNC:
                        st[_T_TRUNC] = 1
                        st[_T_TRUNCS] = st[_T_TRUNCS] + 1
                    else:
                        st[_T_TRUNC] = 0
                    sflags = sflags & _F_PROMPT
                    sllen = 0
                    t = T_LINE
                    break
                st[_R_READ] = sr
                st[_R_HELD] = sn
                st[_T_LLEN] = sllen
                st[_T_FLAGS] = sflags
            else:
                t = T_NONE
            if t == T_LINE:
                n = st[_T_LEN]
                h = st[_T_HEAD]
                av[_A_E] = n
                av[_A_ARGC] = -1
                pending = False
                if st[_D_PHASE] != PH_IDLE:
                    pending = rst[_RS_FINAL] == R_PENDING
                    if pending:
                        if n == st[_D_ECHO] and buf.startswith(cmd[0]):
                            st[_D_ECHO] = 0  # one echo per command
                            st[_D_ECHOES] = st[_D_ECHOES] + 1
                            continue
                        m = st[_D_RESP]
                        if m and n >= m and buf.startswith(cmd[1]):
                            r.add(buf, 0, n)
                            continue
                    # A two-phase completion may come before or after the final code;
                    # once the command is answered nothing else belongs to it, whatever
                    # arrives before its coroutine resumes.
                    m = st[_D_DONE]
                    if m and n >= m and not st[_D_DONE_SEEN] and buf.startswith(cmd[2]):
                        da = st[_D_DONE_ARG]
                        if da == 0 or int(a.arg_int(0)) == da - 1:
                            rst[_RS_DONE] = int(r.add(buf, 0, n))
                            st[_D_DONE_SEEN] = 1
                            if st[_D_WAITING]:
                                flag.set()
                            continue
                    if pending:
                        kind = int(final_of.get(h, 0))
                        if kind:
                            m = final_len[kind]
                            if (n == m or (n > m and kind >= R_CME and kind <= R_CMS)) \
                                    and buf.startswith(FINAL_TEXT[kind]):
                                rst[_RS_FINAL] = kind
                                if kind == R_CME or kind == R_CMS:
                                    rst[_RS_CODE] = int(a.arg_int(0))
                                if st[_D_WAITING]:
                                    flag.set()
                                continue
                # the URC table: probe the head, then each entry of that head in order
                e = 0
                j = h & hmask
                while hk[j]:
                    if hk[j] == h + 1:
                        e = hv[j]
                        break
                    j = (j + 1) & hmask
                while e:
                    i = e - 1
                    m = elen[i]
                    if n >= m:
                        o = eoff[i]
                        k = 0
                        while k < m and lb[k] == bl[o + k]:
                            k += 1
                        if k == m:
                            k = enargs[i]
                            if k == 0 or int(_split(buf, av_o)) == k - 1:
                                break
                    e = enext[i]
                if e:  # entry e - 1 takes it
                    i = e - 1
                    st[_D_URCS] = st[_D_URCS] + 1
                    uo = int(ekind[i])  # the kind, its spec's offset above _K_BITS
                    k = uo & _K_MASK
                    uo = uo >> _K_BITS
                    if k == K_SEEN:  # the handler only when one of the bits is not recorded
                        d = ptr32(urc_target[i])
                        gs = int(u[uo + _U_BITS])
                        if (int(d[u[uo + _U_SLOT]]) & gs) != gs:
                            urc_fn[i](a)
                    elif k:  # a store entry: its integers parsed and stored in viper
                        # arguments spec[_U_FIRST.._U_LAST] as integers (-1 when absent
                        # or not a number: an optional '-' and 1..9 digits) into the
                        # target from spec[_U_SLOT]; target[spec[_U_SEQ] - 1] += 1 if set.
                        # Inline, not a viper call: ~1000 instructions less per line.
                        # The split first: _split's rules, inlined (a viper call costs
                        # ~600 instructions per store line; the differential test holds
                        # the stored numbers to the reference's split).
                        argc = 0
                        ps = int(av[_A_S])
                        pe = int(av[_A_E])
                        if ps < pe and lb[ps] == 43:  # "+NAME:": after the colon
                            pj = ps
                            while pj < pe and lb[pj] != 58:
                                pj += 1
                            if pj < pe:
                                ps = pj + 1
                            else:
                                ps = pe
                        while ps < pe and lb[ps] == 32:
                            ps += 1
                        if ps < pe:
                            pm = int(av[_A_MAX])
                            pst = ps  # the argument's start
                            pq = 0  # inside quotes
                            pend = 0
                            sc = 0
                            while True:
                                if ps >= pe:
                                    pend = 1
                                else:
                                    sc = int(lb[ps])
                                    if sc == 34:
                                        pq = pq ^ 1
                                if pend or (sc == 44 and pq == 0):
                                    pa = pst
                                    pz = ps
                                    while pa < pz and lb[pa] == 32:
                                        pa += 1
                                    while pz > pa and lb[pz - 1] == 32:
                                        pz -= 1
                                    if pz - pa >= 2 and lb[pa] == 34 and lb[pz - 1] == 34:
                                        pa += 1
                                        pz -= 1
                                    if argc < pm:
                                        av[_A_SPANS + 2 * argc] = pa
                                        av[_A_SPANS + 2 * argc + 1] = pz
                                        argc += 1
                                    pst = ps + 1
                                    if pend:
                                        break
                                ps += 1
                        av[_A_ARGC] = argc
                        d = ptr32(urc_target[i])
                        ga = int(u[uo + _U_FIRST])
                        gk = int(u[uo + _U_SLOT])
                        gchg = 0  # a stored number changed (read back: ptr32 zero-extends)
                        while ga <= int(u[uo + _U_LAST]):
                            gx = -1
                            if ga < argc:
                                gs = int(av[_A_SPANS + 2 * ga])
                                gz = int(av[_A_SPANS + 2 * ga + 1])
                                gneg = 0
                                if gs < gz and lb[gs] == 45:
                                    gneg = 1
                                    gs += 1
                                if gs < gz and gz - gs <= 9:
                                    gx = 0
                                    while gs < gz:
                                        sc = int(lb[gs]) - 48
                                        if sc < 0 or sc > 9:
                                            gx = -1
                                            break
                                        gx = gx * 10 + sc
                                        gs += 1
                                    if gneg and gx > 0:
                                        gx = 0 - gx
                            gs = int(d[gk])
                            d[gk] = gx
                            if int(d[gk]) != gs:
                                gchg = 1
                            gk += 1
                            ga += 1
                        if u[uo + _U_SEQ]:
                            d[u[uo + _U_SEQ] - 1] = d[u[uo + _U_SEQ] - 1] + 1
                        st[_D_STORES] = st[_D_STORES] + 1
                        if k == _K_STORE_CALL:  # then its handler, the numbers ready
                            urc_fn[i](a)
                        elif k == _K_STORE_FRAME:  # then its frame, or else its handler
                            # arm the announced frame into the entry's buffer when all is
                            # as declared (see frame_spec), else the handler decides (skip,
                            # drop, count)
                            gx = 0
                            gn = 0
                            gs = 0
                            gbuf = urc_frame[i][0]
                            if gbuf:  # (None: no buffer; viper cannot compare with None)
                                gn = int(d[u[uo + _U_LEN]])  # (-1 reads 0xFFFFFFFF: refused)
                                gs = int(d[u[uo + _U_FILL]])
                                if d[u[uo + _U_SLOT]] == u[uo + _U_MATCH] and \
                                        d[u[uo + _U_GATE]] == u[uo + _U_GATEV] and gn > 0 and \
                                        gn <= RAW_MAX and gs + gn <= int(d[u[uo + _U_TOTAL]]) \
                                        and gs + gn <= int(len(gbuf)):
                                    gx = 1
                            if gx:
                                raw[0] = gbuf
                                raw[1] = ticks_add(ticks_ms(), 2 * gn * BITS_PER_BYTE * 1000 //
                                                   int(st[_W_BAUD]) + RAW_MARGIN_MS)  # arm_raw's
                                raw[2] = urc_target[i]
                                st[_W_SKIP] = 0
                                st[_W_OFF] = gs
                                st[_W_LEFT] = gn
                                st[_W_FILL] = u[uo + _U_FILL]
                                st[_W_MARK] = u[uo + _U_MARK]
                                d[u[uo + _U_MARK]] = 1
                            else:
                                urc_fn[i](a)
                        elif k == K_STORE_CHANGE:  # its handler only on a change
                            gk = int(u[uo + _U_ARGC])
                            gs = int(d[gk])
                            d[gk] = argc
                            if gchg or int(d[gk]) != gs:
                                urc_fn[i](a)
                        elif k == K_STORE_STATE:  # on a change: the owner's state and event
                            gk = int(u[uo + _U_ARGC])
                            gs = int(d[gk])
                            d[gk] = argc
                            if gchg or int(d[gk]) != gs:
                                gk = int(u[uo + _U_SLOT])
                                if argc + 1 == int(u[uo + _U_SALT]):
                                    gk += 1  # (a query's answer form: its second number)
                                gx = int(d[gk])
                                if gx < 0 or gx > int(u[uo + _U_SMAX]):  # (-1 reads 0xFFFFFFFF)
                                    urc_fn[i](a)
                                else:
                                    gq = urc_frame[i]
                                    gl = gq[2]
                                    gk = int(u[uo + _U_SINDEX])
                                    if int(gl[gk]) != gx:
                                        gl[gk] = gx
                                        if post(gq[0], gq[1], u[uo + _U_SCODE], gx, gk):
                                            st[_D_AFTER] = int(st[_D_AFTER]) | \
                                                int(u[uo + _U_SQAFTER])
                        elif k == K_STORE_START:  # start the owner's message, or its handler
                            gk = int(u[uo + _U_SLOT])
                            gn = int(u[uo + _U_LAST]) - int(u[uo + _U_FIRST])  # lengths
                            gx = 0
                            if d[gk] == u[uo + _U_MATCH] and \
                                    d[u[uo + _U_GATE]] == u[uo + _U_GATEV] and \
                                    d[u[uo + _U_READY]] == 1:
                                gx = 1
                                ga = 1
                                while ga <= gn:  # (-1 reads 0xFFFFFFFF on 64 bits: refused)
                                    gs = int(d[gk + ga])
                                    if gs < 0 or gs > int(d[int(u[uo + _U_LIMIT]) + ga - 1]):
                                        gx = 0
                                        break
                                    ga += 1
                            if gx:
                                ga = 1
                                while ga <= gn:
                                    d[int(u[uo + _U_TOTAL]) + ga - 1] = d[gk + ga]
                                    d[int(u[uo + _U_FILL]) + ga - 1] = 0
                                    ga += 1
                                d[u[uo + _U_GATE]] = u[uo + _U_SETV]
                                d[u[uo + _U_READY]] = 2
                            else:
                                urc_fn[i](a)
                        elif k == K_STORE_EVENT:  # post its event, or else its handler
                            gx = 1
                            gn = int(u[uo + _U_EMAX])
                            ga = int(u[uo + _U_SLOT])
                            gk = ga + int(u[uo + _U_LAST]) - int(u[uo + _U_FIRST])
                            while ga <= gk:  # (-1 reads 0xFFFFFFFF on 64 bits: refused)
                                gs = int(d[ga])
                                if gs < 0 or gs > gn:
                                    gx = 0
                                    break
                                ga += 1
                            ga = int(u[uo + _U_SLOT])
                            if u[uo + _U_EMATCH] and int(d[ga]) + 1 != int(u[uo + _U_EMATCH]):
                                gx = 0
                            gs = int(u[uo + _U_EGATE])
                            if gs and d[gs - 1] != u[uo + _U_EGATEV]:
                                gx = 0
                            if gx:  # post (code, d[ga], d[ga + 1] or 0): post() inlined
                                gq = urc_frame[i]
                                qs = ptr32(gq[1])
                                qd = ptr32(gq[0])
                                gn = int(qs[Q_SIZE])
                                gs = int(qs[Q_N])
                                gz = int(qs[Q_READ])
                                if gs == gn:
                                    gz += 1
                                    if gz == gn:
                                        gz = 0
                                    qs[Q_READ] = gz
                                    gs -= 1
                                    qs[Q_DISCARDS] = qs[Q_DISCARDS] + 1
                                qs[Q_N] = gs + 1
                                gs += gz
                                if gs >= gn:
                                    gs -= gn
                                gs = 3 * gs
                                qd[gs] = u[uo + _U_ECODE]
                                qd[gs + 1] = d[ga]
                                if gk > ga:
                                    qd[gs + 2] = d[ga + 1]
                                else:
                                    qd[gs + 2] = 0
                                if u[uo + _U_ECOUNT]:  # the owner's counter: a dict's value
                                    gd = gq[2]
                                    gd[gq[3]] = int(gd[gq[3]]) + 1
                                if qs[Q_WAITING]:  # its task is woken after this read
                                    st[_D_AFTER] = int(st[_D_AFTER]) | int(u[uo + _U_EQAFTER])
                            else:
                                urc_fn[i](a)
                        elif k == K_STORE_COMMIT:  # commit the owner's message, or its handler
                            gx = 0
                            gk = int(u[uo + _U_SLOT])
                            gf = int(u[uo + _U_FILL])
                            gt = int(u[uo + _U_TOTAL])
                            gq = urc_frame[i]
                            ist = ptr32(gq[2])
                            gn = int(ist[I_SLOTS])
                            gs = int(ist[I_N])
                            ga = int(ist[I_READ]) + gs  # the slot the inbox's start gives
                            if ga >= gn:
                                ga -= gn
                            if d[gk] == u[uo + _U_MATCH] and \
                                    d[u[uo + _U_GATE]] == u[uo + _U_GATEV] and \
                                    d[u[uo + _U_READY]] == 2 and d[gf] == d[gt] and \
                                    d[gf + 1] == d[gt + 1] and ist[I_WRITE] == 0 and \
                                    gs < gn and ga == int(d[u[uo + _U_CAT]]):
                                gx = 1
                            if gx:  # as Inbox.start then commit, the fills as announced
                                tlen = ptr16(gq[3])
                                plen = ptr16(gq[4])
                                tlen[ga] = d[gf]
                                plen[ga] = d[gf + 1]
                                gs += 1
                                ist[I_N] = gs
                                ist[I_RECEIVED] = ist[I_RECEIVED] + 1
                                d[u[uo + _U_GATE]] = u[uo + _U_CSETV]
                                # post (code, slot, the matched number): post() inlined
                                qs = ptr32(gq[1])
                                qd = ptr32(gq[0])
                                gm = int(qs[Q_SIZE])
                                gz = int(qs[Q_N])
                                gr = int(qs[Q_READ])
                                if gz == gm:
                                    gr += 1
                                    if gr == gm:
                                        gr = 0
                                    qs[Q_READ] = gr
                                    gz -= 1
                                    qs[Q_DISCARDS] = qs[Q_DISCARDS] + 1
                                qs[Q_N] = gz + 1
                                gz += gr
                                if gz >= gm:
                                    gz -= gm
                                gz = 3 * gz
                                qd[gz] = u[uo + _U_CCODE]
                                qd[gz + 1] = ga
                                qd[gz + 2] = d[gk]
                                if u[uo + _U_CCOUNT]:  # the owner's counter: a dict's value
                                    gd = gq[9]
                                    gd[gq[10]] = int(gd[gq[10]]) + 1
                                if qs[Q_WAITING]:  # its task is woken after this read
                                    st[_D_AFTER] = int(st[_D_AFTER]) | int(u[uo + _U_CQAFTER])
                                # the next slot for the reader's next message (next_slot)
                                if gs == gn:
                                    d[u[uo + _U_READY]] = 0
                                    d[u[uo + _U_CAT]] = -1
                                else:
                                    ga += 1
                                    if ga >= gn:
                                        ga -= gn
                                    gq[7][0] = gq[5][ga]
                                    gq[8][0] = gq[6][ga]
                                    d[u[uo + _U_CAT]] = ga
                                    d[u[uo + _U_READY]] = 1
                            else:
                                urc_fn[i](a)
                    else:
                        urc_fn[i](a)  # if it raises, pump() counts it and goes on
                    continue
                if pending and st[_D_BARE]:
                    r.add(buf, 0, n)
                    continue
                st[_D_UNKNOWN] = st[_D_UNKNOWN] + 1
                unk = hooks[1]
                if unk:
                    unk(a)
            elif t == T_NONE:
                return
            elif t == T_PROMPT:
                if st[_D_PHASE] == PH_PROMPT:
                    st[_D_PROMPTED] = 1
                    if st[_D_WAITING]:
                        flag.set()
            else:  # T_RAW or T_LOST
                tgt = raw[2]
                if tgt:  # a frame a frame entry armed (a non-empty array): its fill
                    raw[2] = None
                    if t == T_RAW:
                        tp = ptr32(tgt)
                        tp[st[_W_FILL]] = st[_W_OFF]
                        tp[st[_W_MARK]] = 0
                        continue
                on_raw = hooks[0]
                if on_raw:
                    on_raw(t)


class RingView:
    """``Engine.ring``: the ring's counters and ``put`` (tests, transports without a stream)."""

    def __init__(self, reader):
        self._rd = reader
        self._st = reader.st
        self.size = len(reader.ring)

    def put(self, src, n, off=0):
        return self._rd.put(src, n, off)

    def count(self):
        return self._st[_R_HELD]

    @property
    def overflows(self):
        return self._st[_R_OVERFLOWS]

    @property
    def dropped(self):
        return self._st[_R_DROPPED]

    @property
    def lost(self):
        return self._st[_R_LOST] != 0


class TokenizerView:
    """``Engine.tok``: the tokenizer's counters and the last line's facts, ``arm_raw``."""

    def __init__(self, reader):
        self._rd = reader
        self._st = reader.st
        self.line = reader.line
        self.line_max = len(reader.line)
        self.args = reader.args
        self.arm_raw = reader.arm_raw

    def arm_prompt(self, on=True):
        st = self._st
        st[_T_FLAGS] = (st[_T_FLAGS] | _F_PROMPT) if on else (st[_T_FLAGS] & ~_F_PROMPT)

    @property
    def llen(self):
        return self._st[_T_LEN]

    @property
    def head(self):
        """Head hash of the last line (``head_hash`` of its bytes up to ':')."""
        return self._st[_T_HEAD]

    @property
    def truncated(self):
        return self._st[_T_TRUNC] != 0

    @property
    def lines(self):
        return self._st[_T_LINES]

    @property
    def truncations(self):
        return self._st[_T_TRUNCS]

    @property
    def prompts(self):
        return self._st[_T_PROMPTS]

    @property
    def resyncs(self):
        return self._st[_T_RESYNCS]

    @property
    def raw_off(self):
        """End offset, in the armed buffer, of the raw bytes copied so far."""
        return self._st[_W_OFF]

    @property
    def raw_left(self):
        return self._st[_W_LEFT]

    @property
    def raw_frames(self):
        return self._st[_W_FRAMES]

    @property
    def raw_bytes(self):
        return self._st[_W_BYTES]

    @property
    def raw_abandoned(self):
        """Frames abandoned at their deadline (the reader resynchronised after each)."""
        return self._st[_W_ABANDONED]

    @property
    def raw_refused(self):
        """``arm_raw`` calls refused: length negative, above ``RAW_MAX`` or over the buffer."""
        return self._st[_W_REFUSED]

    @property
    def stores(self):
        return self._st[_D_STORES]


def counters(reader):
    """The reader's counters as a dict, for health reports (allocates: not per line)."""
    st = reader.st
    return {"lines": st[_T_LINES], "truncations": st[_T_TRUNCS], "prompts": st[_T_PROMPTS],
            "resyncs": st[_T_RESYNCS], "overflows": st[_R_OVERFLOWS],
            "dropped": st[_R_DROPPED], "raw_frames": st[_W_FRAMES],
            "raw_abandoned": st[_W_ABANDONED], "raw_refused": st[_W_REFUSED],
            "urcs": st[_D_URCS], "unknown": st[_D_UNKNOWN], "echoes": st[_D_ECHOES],
            "handler_errors": reader.handler_errors}
