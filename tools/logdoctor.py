#!/usr/bin/env python3
"""Explain a modem session: annotated AT timeline plus a diagnosis of known failure modes.

Owns the command line: reading the input into sessions and printing the report
(text, or the same as data with ``--json``).  The AT stream parsing is
``logdoctor_timeline.py``, the failure-mode rules ``logdoctor_rules.py``;
error-code meanings come from ``atmq.errtab`` (the manuals' tables),
transcripts are read with ``atmq.atx``, and Freematics "=== SENT@ms ===" debug
logs are converted with ``tools/freematics2atx.py``, which also splits a log
holding several sessions (a reboot, or a forum thread quoting two runs) where
the millisecond stamps start again.  Times are the log's own stamps.

    logdoctor.py session.atx
    logdoctor.py --json debug.log
"""

import argparse
import json
import os
import re
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
for _p in (os.path.join(_ROOT, "lib"), _HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from atmq import atx  # noqa: E402

from logdoctor_rules import diagnose  # noqa: E402
from logdoctor_timeline import Timeline, annotate  # noqa: E402

# --- input -------------------------------------------------------------------

def is_freematics(text):
    return bool(re.search(r"=== (SENT|RECV)@\d+ ===", text))


FORMATS = ("the two accepted formats are an .atx transcript ('> AT...' sent, '< ...' "
           "received: docs/transcript-format.md) and a Freematics '=== SENT@ms ===' debug "
           "log; a plain serial-monitor log (no marks) is read as: a line starting with AT "
           "was sent, every other line was received")
_STAMP = re.compile(r"^\s*(\[[^\]]*\]|\d\d:\d\d:\d\d(\.\d+)?)\s*(->|<-|:)?\s*")


def is_plain_at(lines):
    """A serial-monitor capture: no .atx marks on any line, and at least one AT command."""
    seen_at = False
    for line in lines:
        if not line.strip():
            continue
        if line[:2] in ("> ", "< ") or line[:1] in ("@", "#"):
            return False
        if _STAMP.sub("", line).lstrip().upper().startswith("AT"):
            seen_at = True
    return seen_at


def plain_records(lines):
    """``[(lineno, dir, 0, data)]`` of a plain AT log: an ``AT`` line is sent (with CR),
    every other non-blank line received (with CRLF); a leading time stamp is dropped."""
    out = []
    for n, line in enumerate(lines, 1):
        text = _STAMP.sub("", line.rstrip("\r\n")).strip()
        if not text:
            continue
        if text.upper().startswith("AT"):
            out.append((n, ">", 0, text.encode() + b"\r"))
        else:
            out.append((n, "<", 0, b"\r\n" + text.encode() + b"\r\n"))
    return out


class Session:
    def __init__(self, label, meta, records, problems=(), t0=0):
        self.label = label
        self.meta = meta
        self.records = records  # [(lineno, dir, ms, data)]
        self.problems = list(problems)  # [(lineno, text)] the converter could not use
        self.t0 = t0  # ms of the first record (a Freematics log's own stamp)


def load(path):
    """Read a .atx or a Freematics log into a list of Sessions.

    A Freematics log may hold several sessions (the stamps start again after a
    reboot, or a forum thread quotes two runs); line numbers stay the log's own.
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    name = os.path.basename(path)
    if not is_freematics(text):
        lines = text.splitlines()
        if is_plain_at(lines):
            return [Session(name, {"source": "plain AT log (AT lines sent, others received)"},
                            plain_records(lines))]
        try:
            meta, records = atx.read(lines)  # read once: stdin or a pipe works
        except ValueError as e:
            raise ValueError("%s; %s" % (e, FORMATS)) from None
        return [Session(name, meta, records)]
    import freematics2atx  # only Freematics logs need the converter

    lines = text.splitlines(keepends=True)
    fsessions, problems = freematics2atx.convert(lines)
    out = []
    for n, fs in enumerate(fsessions, 1):
        records = [(r.lineno, r.dir, r.delay, r.data) for r in fs.records]
        # times as the log shows them: the first block's own "@ms" stamp
        m = re.search(r"=== (?:SENT|RECV)@(\d+) ===", lines[records[0][0] - 1]) \
            if records else None
        t0 = int(m.group(1)) if m else 0
        mine = [p for p in problems if fs.first_line <= p[0] <= fs.last_line]
        label = name if len(fsessions) == 1 else "%s session %d (lines %d-%d)" % (
            name, n, fs.first_line, fs.last_line)
        out.append(Session(label, {"source": "freematics log"}, records, mine, t0))
    if not out:
        raise ValueError("no SENT/RECV blocks found")
    return out


# --- output --------------------------------------------------------------------


def analyse(session):
    tl = Timeline()
    tl.t = session.t0
    entries = tl.feed(session.records)
    for e in entries:
        if e["kind"] == "cmd":
            e["annotation"] = annotate(e)
    info, findings = diagnose(entries, session.meta)
    return {
        "label": session.label,
        "conversion_problems": [{"line": ln, "text": t} for ln, t in session.problems],
        "meta": session.meta,
        "modem": info,
        "timeline": entries,
        "findings": findings,
        "verdict": findings[0]["title"] if findings else "no known failure mode found",
    }


def _clip(s, n=70):
    s = s.replace("\r", "\\r").replace("\n", "\\n")
    return s if len(s) <= n else s[: n - 3] + "..."


def render_text(report, out):
    w = out.write
    for s in report["sessions"]:
        w("=" * 78 + "\n")
        w("%s\n" % s["label"])
        if s["modem"]:
            w("modem: %s\n" % ", ".join("%s=%s" % kv for kv in sorted(s["modem"].items())))
        w("-" * 78 + "\n")
        for e in s["timeline"]:
            t = "%8d" % e["t"]
            if e["kind"] == "cmd":
                w("%s > %s" % (t, _clip(e["text"])))
                w("   [%s]\n" % e["meaning"] if e["meaning"] else "\n")
                for r in e["response"]:
                    w("%s     < %s\n" % (" " * 8, _clip(r)))
                if "payload" in e:
                    w("%s     > (data) %s\n" % (" " * 8, _clip(e["payload"].strip())))
                w("%s     = %s: %s\n" % (" " * 8, e["final"], e["annotation"]))
            elif e["kind"] == "result":
                w("%s < %s   [result of %s]\n" % (t, e["text"], _clip(e["of"], 40)))
                for err in e["errors"]:
                    w("%s     = %s %s: %s\n" % (" " * 8, err["kind"], err["code"],
                                                 err["meaning"]))
            elif e["kind"] == "urc":
                w("%s < %s   [URC: %s]\n" % (t, e["text"], e["meaning"]))
                for err in e["errors"]:
                    w("%s     = cause %s: %s\n" % (" " * 8, err["code"], err["meaning"]))
            else:
                w("%s ? %s   [%s]\n" % (t, _clip(e["text"]), e["meaning"]))
        for pr in s["conversion_problems"]:
            w("line %s: not converted: %s\n" % (pr["line"], pr["text"]))
        w("-" * 78 + "\n")
        w("DIAGNOSIS: %s\n" % s["verdict"])
        for f in s["findings"]:
            w("\n[%s] %s\n" % (f["severity"].upper(), f["title"]))
            w("  why:    %s\n" % f["detail"])
            w("  remedy: %s\n" % f["remedy"])
            ev = ", ".join("line %s t=%s %s" % (x["line"], x["t"], _clip(x["text"], 40))
                           for x in f["evidence"])
            w("  seen:   %s\n" % ev)
        w("\n")


def run(path):
    sessions = load(path)
    return {"source": path, "sessions": [analyse(s) for s in sessions]}


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Annotated timeline and diagnosis of a modem session (.atx transcript "
                    "or Freematics '=== SENT@ms ===' debug log).")
    p.add_argument("log", help=".atx transcript or Freematics debug log")
    p.add_argument("--json", action="store_true", help="print the same as JSON data")
    a = p.parse_args(argv)
    try:
        report = run(a.log)
    except (OSError, ValueError) as e:
        sys.stderr.write("logdoctor: %s: %s\n" % (a.log, e))
        return 2
    try:
        if a.json:
            json.dump(report, sys.stdout, indent=1, default=str)
            sys.stdout.write("\n")
        else:
            render_text(report, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:  # "logdoctor ... | head": the reader had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
