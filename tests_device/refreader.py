"""A plain reference AT reader: what ``atmq.reader`` must do, written for clarity.

No viper, no ring, no shared slots, no hashing: bytes in, one at a time, and
every decision spelled out from the manuals' syntax (003 s.1-4: a response is
``<CR><LF>text<CR><LF>``; ``>`` prompts a payload; 003/002 s.16: a raw frame of
exactly the announced number of bytes follows the LF of the line announcing it)
and the transcript format.  It allocates freely.  Runs on CPython and
MicroPython; the differential test (``difftest.py``) feeds both readers the
same bytes and compares every event.

The rules, in the order they apply to each byte:

- inside an armed raw frame the byte belongs to the frame, whatever it is;
- right after a prompt one space is eaten;
- LF ends the line: an empty line is nothing, a line that was being discarded
  (resync) is dropped, else the line is dispatched (see ``_dispatch``);
- CR is dropped wherever it is (the modem's line end is CRLF; a lone CR means nothing);
- while discarding, every byte up to the LF is dropped;
- ``>`` as the first byte of a line while a command waits for its prompt is the prompt;
- else the byte is kept if the line has room, and the line is marked truncated if not.
"""

FINALS = ((b"OK", 1), (b"ERROR", 2), (b"+CME ERROR", 3), (b"+CMS ERROR", 4),
          (b"NO CARRIER", 5), (b"BUSY", 6), (b"NO ANSWER", 7), (b"NO DIALTONE", 8),
          (b"CONNECT", 9))


def head(line):
    """The line's head: up to its first ':' (the whole line without one)."""
    i = line.find(b":")
    return line if i < 0 else line[:i]


def split_args(line, max_args):
    """Arguments of ``+NAME: a,"b,c",d``: after the header's colon (a line not starting with
    '+' from its start), split at commas outside quotes, spaces trimmed, one pair of
    enclosing quotes removed; at most ``max_args``."""
    body = line
    if line.startswith(b"+"):
        i = line.find(b":")
        body = line[i + 1:] if i >= 0 else b""
    body = body.lstrip(b" ")
    if not body:
        return []
    parts = []
    quoted = False
    cur = bytearray()
    for c in body:
        if c == 34:
            quoted = not quoted
        if c == 44 and not quoted:
            parts.append(bytes(cur))
            cur = bytearray()
        else:
            cur.append(c)
    parts.append(bytes(cur))
    out = []
    for p in parts[:max_args]:
        p = p.strip(b" ")
        if len(p) >= 2 and p[0] == 34 and p[-1] == 34:
            p = p[1:-1]
        out.append(p)
    return out


def to_int(arg, default=-1):
    """An optional '-' and 1..9 decimal digits, else ``default``."""
    neg = arg.startswith(b"-")
    digits = arg[1:] if neg else arg
    if not digits or len(digits) > 9:
        return default
    for c in digits:
        if c < 48 or c > 57:
            return default
    v = int(digits)
    return -v if neg else v


class RefReader:
    """Feed bytes with ``feed``; events go to ``self.events`` as tuples (see ``_dispatch``).

    URC entries: ``on(prefix, name, nargs, arm)``: a matching line records
    ``("urc", name, line, truncated, args)``; ``arm(args)`` returning n > 0 arms a
    raw frame of n bytes, recorded as ``("raw", bytes)`` when complete; with
    ``store=(first, last)`` the line records ``("store", name, line, truncated, numbers)``
    instead: arguments first..last as ``to_int`` gives them, -1 when absent; with
    ``change=True`` as well, only when those numbers or the argument count differ
    from the previous line of that entry (``Engine.on_store(on_change=)``).  With
    ``event=(code, match, max)`` (``Engine.on_event``): when every number is within
    0..max, the first equals match (if >= 0) and ``self.gate_open``, ``(code, first,
    second or 0)`` goes to ``self.posted`` instead (else the "store" record);
    ``state=(code, alt_count, max, state_list, index)`` with ``change=True``
    (``Engine.on_state``): on a change the value (the second number when the line has
    alt_count arguments, else the first) within 0..max goes to ``state_list[index]`` and,
    when it differs, ``(code, value, index)`` to ``self.posted`` (out of range: the
    "store" record); ``seen=bits`` (``Engine.on_seen``): the line is skipped when
    ``self.seen_word`` holds every bit, else a "urc" record.  A line nobody takes
    records ``("unknown", line, truncated)``.  What belongs to the
    command in flight (``begin``) is collected in ``self.cmd`` (see ``begin``).
    """

    def __init__(self, line_max=512, max_args=24, resp_size=1024, resp_lines=16):
        self.line_max = line_max
        self.max_args = max_args
        self.resp_size = resp_size
        self.resp_lines = resp_lines
        self.events = []
        self.posted = []  # events the reader posts itself (event and state entries)
        self.gate_open = True  # an event entry's gate
        self.seen_word = 0  # what seen entries test
        self.table = []
        self.line = bytearray()
        self.truncated = False
        self.discard = False
        self.prompt_armed = False
        self.eat_space = False
        self.raw_left = 0
        self.raw = bytearray()
        self.cmd = None

    def on(self, prefix, name, nargs=-1, arm=None, store=None, change=False, event=None,
           state=None, seen=0):
        self.table.append((prefix, name, nargs, arm, store, [change, None, event, state, seen]))

    def begin(self, echo, resp, bare, done, done_arg, prompt):
        # What a command collects: echoes seen, prompts, stored lines (response lines and
        # the completion URC, as far as the response store holds them), the index of the
        # completion line (-1: none or not stored), the final kind and its code.
        self.cmd = {"echo": echo, "resp": resp, "bare": bare, "done": done,
                    "done_arg": done_arg, "final": 0, "code": -1, "done_seen": False,
                    "echoes": 0, "prompts": 0, "lines": [], "used": 0, "done_at": -1}
        self.prompt_armed = bool(prompt)

    def end(self):
        self.cmd = None
        self.prompt_armed = False

    def feed(self, data):
        for c in data:
            self._byte(c)

    def _byte(self, c):
        if self.raw_left:
            self.raw.append(c)
            self.raw_left -= 1
            if not self.raw_left:
                self.events.append(("raw", bytes(self.raw)))
            return
        if self.eat_space:
            self.eat_space = False
            if c == 32:
                return
        if c == 10:
            if self.discard:
                self.discard = False
                self.line = bytearray()
                return
            if not self.line and not self.truncated:
                return
            line, trunc = bytes(self.line), self.truncated
            self.line = bytearray()
            self.truncated = False
            self._dispatch(line, trunc)
            return
        if c == 13 or self.discard:
            return
        if c == 62 and not self.line and self.prompt_armed:
            self.prompt_armed = False
            self.eat_space = True
            if self.cmd is not None:
                self.cmd["prompts"] += 1
            return
        if len(self.line) < self.line_max:
            self.line.append(c)
        else:
            self.truncated = True

    def _dispatch(self, line, trunc):
        cmd = self.cmd
        pending = cmd is not None and cmd["final"] == 0
        if pending:
            if cmd["echo"] and line == cmd["echo"]:
                cmd["echo"] = None  # one echo per command
                cmd["echoes"] += 1
                return
            if cmd["resp"] and line.startswith(cmd["resp"]):
                self._store(line)
                return
        if cmd is not None and cmd["done"] and not cmd["done_seen"] \
                and line.startswith(cmd["done"]):
            args = split_args(line, self.max_args)
            if cmd["done_arg"] < 0 or (args and to_int(args[0]) == cmd["done_arg"]):
                cmd["done_seen"] = True
                cmd["done_at"] = self._store(line)
                return
        if pending:
            for text, kind in FINALS:
                if line == text or (kind in (3, 4) and head(line) == text):
                    cmd["final"] = kind
                    if kind in (3, 4):
                        args = split_args(line, self.max_args)
                        cmd["code"] = to_int(args[0]) if args else -1
                    return
        for prefix, name, nargs, arm, store, last in self.table:
            if head(line) != head(prefix) or not line.startswith(prefix):
                continue
            args = split_args(line, self.max_args)
            if nargs >= 0 and len(args) != nargs:
                continue
            if last[4] and (self.seen_word & last[4]) == last[4]:
                return  # a seen entry whose bits are all recorded: nothing runs
            if store is not None:
                nums = tuple(to_int(args[i]) if i < len(args) else -1
                             for i in range(store[0], store[1] + 1))
                if last[0]:  # a change entry: heard only when something changed
                    if last[1] == (nums, len(args)):
                        return
                    last[1] = (nums, len(args))
                event, state = last[2], last[3]
                if event is not None:
                    code, match, top = event
                    if all(0 <= x <= top for x in nums) and self.gate_open and \
                            (match < 0 or nums[0] == match):
                        self.posted.append((code, nums[0], nums[1] if len(nums) > 1 else 0))
                        return
                if state is not None:
                    code, alt, top, values, index = state
                    v = nums[1] if len(args) == alt else nums[0]
                    if 0 <= v <= top:
                        if values[index] != v:
                            values[index] = v
                            self.posted.append((code, v, index))
                        return
                self.events.append(("store", name, line, trunc, nums))
                return
            self.events.append(("urc", name, line, trunc, tuple(args)))
            if arm is not None:
                n = arm(args)
                if n is not None and n > 0:  # a frame of 0 bytes is complete at once: no token
                    self.raw = bytearray()
                    self.raw_left = n
            return
        if pending and cmd["bare"]:
            self._store(line)
            return
        self.events.append(("unknown", line, trunc))

    def _store(self, line):
        # the response store: at most resp_lines lines and resp_size bytes, the rest counted
        cmd = self.cmd
        if len(cmd["lines"]) >= self.resp_lines or cmd["used"] + len(line) > self.resp_size:
            return -1
        cmd["lines"].append(line)
        cmd["used"] += len(line)
        return len(cmd["lines"]) - 1
