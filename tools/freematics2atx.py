#!/usr/bin/env python3
"""Convert Freematics debug logs ("=== SENT@<ms> ===" / "=== RECV@<ms> ===") to .atx.

The Freematics firmware (VERBOSE_XBEE) prints each UART write as
``=== SENT@ms ===``, the command via ``println`` and a line of 18 ``=``; each
UART read as ``=== RECV@ms ===``, the bytes via ``print`` (no newline added)
and the same marker via ``println``.  Logs reach us through a terminal and a
forum post, so the converter reverses what those did (seed 001):

* Text around the blocks (app messages, forum prose) is ignored, and a header
  may follow other text on its line ("Init MQTT stack...=== SENT@10328 ===").
* A RECV body that did not end in a newline runs into the marker
  ("+GCAP: ==================", ">==================").
* A RECV body that ended in a bare CR was overwritten on screen by the marker:
  "==================ntcert.pem\\",1222" is the 34-character echo of the previous
  command whose first 18 characters the marker covered, and a block that shows
  nothing at all is an echo of at most 18 characters.  Such hidden text is
  rebuilt only from the preceding SENT command; otherwise it is reported.
* Echo: when RECV text starts with what was just sent (echo on, ATE1), those
  bytes are the sent bytes themselves (``AT\\r``); the modem's own line breaks
  are CRLF.  So "AT" / "OK" after SENT "AT" becomes ``AT\\r\\r\\nOK\\r\\n``.
* SENT: a line that starts with ``AT`` gets ``\\r`` (the contract); other lines
  (data after a ``>`` prompt) are kept as shown, joined by ``\\n``.
* The millisecond stamps become ``+MS`` deltas; a stamp that goes backwards
  starts a new session (the device rebooted), and one .atx holds one session.

One block becomes one record.  Blocks that cannot be converted are reported
with their line number.

    freematics2atx.py LOG [--session N] [-o OUT] [--meta KEY=VALUE ...]
"""

import argparse
import os
import re
import sys

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib")
)
from atmq import atx  # noqa: E402

MARKER = "=" * 18
_HEADER = re.compile(r"=== (SENT|RECV)@(\d+) ===\s*$")


class Block:
    """One SENT or RECV block as it appears in the log."""

    def __init__(self, kind, ms, lineno, body, prefix, tail):
        self.kind = kind  # "SENT" or "RECV"
        self.ms = ms
        self.lineno = lineno  # line of the header (1-based)
        self.body = body  # full lines between header and marker
        self.prefix = prefix  # text before the marker on its line
        self.tail = tail  # text after the marker (what the marker did not cover)

    def visible(self):
        return "".join(line + "\n" for line in self.body) + self.prefix

    def hidden(self):
        """A bare-CR line the marker overwrote, or None: the shown remainder."""
        if self.tail:
            return self.tail
        if not self.body and not self.prefix:
            return ""
        return None


class Record:
    def __init__(self, d, delay, data, lineno):
        self.dir = d
        self.delay = delay
        self.data = data
        self.lineno = lineno

    def __repr__(self):
        return "Record(%r, %d, %r, line %d)" % (self.dir, self.delay, self.data, self.lineno)


class Session:
    def __init__(self):
        self.records = []
        self.first_line = 0
        self.last_line = 0


def scan(lines):
    """Lines of the log -> (blocks, problems).  ``problems`` is [(lineno, text)]."""
    blocks = []
    problems = []
    cur = None
    for i, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        m = _HEADER.search(line)
        if cur is not None:
            k = line.find(MARKER)
            if k >= 0:
                cur.prefix = line[:k]
                cur.tail = line[k + len(MARKER) :].rstrip("=")
                blocks.append(cur)
                cur = None
                continue
            if m:
                problems.append((cur.lineno, "%s block has no end marker" % cur.kind))
                cur = None
            else:
                cur.body.append(line)
                continue
        if m:
            cur = Block(m.group(1), int(m.group(2)), i, [], "", "")
    if cur is not None:
        problems.append((cur.lineno, "%s block has no end marker" % cur.kind))
    return blocks, problems


def _sent_bytes(text):
    parts = []
    for line in text.split("\n"):
        parts.append(line + "\r" if line[:2].upper() == "AT" else line)
    return "\n".join(parts).encode()


def _fits_hidden(shown, tail):
    # the marker covers the first 18 columns of the overwritten line
    if "\n" in shown:
        return False
    if tail == "":
        return 0 < len(shown) <= len(MARKER)
    return len(shown) == len(MARKER) + len(tail) and shown.endswith(tail)


def convert(lines):
    """Log lines -> (sessions, problems).  Each session holds Records with
    ``+MS`` deltas; problems are [(lineno, text)] for blocks left out."""
    blocks, problems = scan(lines)
    sessions = []
    sess = None
    prev_ms = None
    echo = None  # (shown text, bytes) of the last SENT, until its echo is seen
    for b in blocks:
        if sess is None or (prev_ms is not None and b.ms < prev_ms):
            sess = Session()
            sess.first_line = b.lineno
            sessions.append(sess)
            prev_ms = None
            echo = None
        delay = 0 if prev_ms is None else b.ms - prev_ms
        if b.kind == "SENT":
            shown = b.visible()
            if b.tail or not shown.endswith("\n"):
                problems.append((b.lineno, "SENT block is not a printed line (println)"))
                continue
            shown = shown[:-1]  # println's own line end
            if not shown:
                problems.append((b.lineno, "SENT block is empty"))
                continue
            data = _sent_bytes(shown)
            echo = (shown, data)
            sess.records.append(Record(atx.TX, delay, data, b.lineno))
        else:
            shown = b.visible()
            hidden = b.hidden()
            if hidden is not None and b.prefix:
                problems.append((b.lineno, "RECV block: text before and after the marker"))
                continue
            out = b""
            if echo is not None and echo[0] and shown.startswith(echo[0]):
                rest = shown[len(echo[0]) :]
                if rest == "" or rest[0] == "\n":
                    out += echo[1]
                    shown = rest
                    echo = None
            out += shown.replace("\n", "\r\n").encode()
            if hidden is not None:
                if echo is not None and _fits_hidden(echo[0], hidden):
                    out += echo[1]
                    echo = None
                else:
                    problems.append(
                        (
                            b.lineno,
                            "RECV block ends in a bare CR and the marker hid the line%s; "
                            "it is not the echo of the last command"
                            % (" (shown: %r)" % hidden if hidden else ""),
                        )
                    )
                    continue
            sess.records.append(Record(atx.RX, delay, out, b.lineno))
        prev_ms = b.ms
        sess.last_line = b.lineno
    return sessions, problems


def write_atx(session, stream, meta=(), comments=()):
    w = atx.Writer(stream)
    for c in comments:
        w.comment(c)
    for k, v in meta:
        w.meta(k, v)
    for r in session.records:
        if r.dir == atx.TX:
            w.tx(r.data, r.delay)
        else:
            w.rx(r.data, r.delay, split=False)  # one block, one record
    w.flush()


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Convert a Freematics '=== SENT@ms ===' debug log to an .atx transcript."
    )
    ap.add_argument("log", help="log file (forum text around the blocks is ignored)")
    ap.add_argument("-o", "--output", help="write here instead of stdout")
    ap.add_argument(
        "--session", type=int, help="1-based session to write when the log holds several"
    )
    ap.add_argument("--list", action="store_true", help="list the sessions and exit")
    ap.add_argument(
        "--meta", action="append", default=[], metavar="KEY=VALUE", help="add @KEY VALUE"
    )
    ap.add_argument(
        "--skip-bad",
        action="store_true",
        help="write the blocks that convert even if some do not (they are still reported)",
    )
    a = ap.parse_args(argv)
    try:
        with open(a.log, encoding="utf-8", errors="replace") as f:
            sessions, problems = convert(f.readlines())
    except OSError as e:
        print("freematics2atx: %s: %s" % (a.log, e.strerror or e), file=sys.stderr)
        return 2
    for lineno, text in problems:
        print("%s:%d: %s" % (a.log, lineno, text), file=sys.stderr)
    if a.list:
        for i, s in enumerate(sessions, 1):
            print(
                "session %d: lines %d-%d, %d records"
                % (i, s.first_line, s.last_line, len(s.records))
            )
        return 0
    if problems and not a.skip_bad:
        print(
            "%d block(s) could not be converted (--skip-bad to go on)" % len(problems),
            file=sys.stderr,
        )
        return 1
    if not sessions:
        print("%s: no SENT/RECV blocks found" % a.log, file=sys.stderr)
        return 1
    if a.session is None and len(sessions) > 1:
        print(
            "%s holds %d sessions; choose one with --session (see --list)"
            % (a.log, len(sessions)),
            file=sys.stderr,
        )
        return 2
    n = a.session or 1
    if not 1 <= n <= len(sessions):
        print("no session %d (there are %d)" % (n, len(sessions)), file=sys.stderr)
        return 2
    s = sessions[n - 1]
    meta = []
    for kv in a.meta:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            print("--meta wants KEY=VALUE, not %r" % kv, file=sys.stderr)
            return 2
        meta.append((k, v))
    comments = [
        "Converted by tools/freematics2atx.py from %s, session %d (log lines %d-%d)."
        % (os.path.basename(a.log), n, s.first_line, s.last_line)
    ]
    comments += [
        "skipped %s line %d: %s" % (os.path.basename(a.log), ln, t)
        for ln, t in problems
        if s.first_line <= ln <= s.last_line
    ]
    if a.output:
        with open(a.output, "w") as out:
            write_atx(s, out, meta, comments)
    else:
        write_atx(s, sys.stdout, meta, comments)
    return 0


if __name__ == "__main__":
    sys.exit(main())
