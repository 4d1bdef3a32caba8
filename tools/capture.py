#!/usr/bin/env python3
"""Fetch a board's AT capture transcripts (``.atx``, written by firmware/tlog/capture.py).

Owns getting capture files off a board with mpremote without losing any: list the
capture folder on the board (name, size, SHA-256 computed there), copy each file,
check size and hash on the host, and only then, with ``--clear``, delete the
verified files on the board.  A fetched file never overwrites a different local
one: a name already taken by other bytes gets the hash in its name
(``cap-0-1a2b3c4d.atx``); the same bytes fetched again are skipped.  Each fetched
file is summarised (records, bytes each way, span, model/revision metadata) and,
with ``--doctor``, explained by tools/logdoctor.py.

    capture.py --port /dev/ttyUSB0 --out captures/
    capture.py --port socket://127.0.0.1:PORT --board boards/unix.json --doctor --clear
    capture.py --port /dev/ttyUSB0 --list          # what is on the board, copy nothing

The board folder is ``<fs_root>/capture`` of ``--board`` (the app's layout,
tlog/app.py), ``/capture`` without it, or ``--dir``.

Exit status: 0 done (also when there was nothing to fetch), 1 the board or a
verification failed, 2 bad options.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

_HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(_HERE)
for _p in (os.path.join(ROOT, "lib"),):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from atmq import atx  # noqa: E402
from atmq import board as boardmod  # noqa: E402
from atmq.errors import ConfigError  # noqa: E402

LOGDOCTOR = os.path.join(_HERE, "logdoctor.py")
EXIT_OK, EXIT_BOARD, EXIT_INPUT = 0, 1, 2

# Runs on the board: one "CAP {json}" line with the folder's .atx files.
_LIST_SCRIPT = """import os, json, hashlib, binascii
d = %r
out = {"dir": d, "files": []}
try:
    names = [n for n in os.listdir(d) if n.endswith(".atx")]
except OSError:
    names = None
if names is None:
    out["missing"] = True
else:
    buf = bytearray(512)
    for n in names:
        p = d + "/" + n
        h = hashlib.sha256()
        size = 0
        with open(p, "rb") as f:
            while True:
                k = f.readinto(buf)
                if not k:
                    break
                h.update(memoryview(buf)[:k])
                size += k
        out["files"].append([n, size, binascii.hexlify(h.digest()).decode()])
print("CAP " + json.dumps(out))
"""

_REMOVE_SCRIPT = """import os
gone = []
for p in %r:
    try:
        os.remove(p)
        gone.append(p)
    except OSError:
        pass
print("CAPRM " + repr(len(gone)))
"""


class CaptureError(Exception):
    pass


def venv_tool(name):
    p = os.path.join(ROOT, ".venv", "bin", name)
    return p if os.path.exists(p) else (shutil.which(name) or name)


def board_dir(board_arg):
    """The capture folder of a board file: ``<fs_root>/capture`` (tlog/app.py)."""
    bp = board_arg if os.path.exists(board_arg) else os.path.join(ROOT, "boards",
                                                                  board_arg + ".json")
    root = boardmod.load(bp)["fs_root"].rstrip("/")
    return root + "/capture"  # "/" gives "/capture"


def _index(name):
    """Order cap-2.atx before cap-10.atx; other names after, by name."""
    stem = name[:-4]
    if stem.startswith("cap-") and stem[4:].isdigit():
        return (0, int(stem[4:]), name)
    return (1, 0, name)


class Board:
    """mpremote against one connect string."""

    def __init__(self, port, resume, timeout=300.0, mpremote=None):
        self.port = port
        self.resume = resume
        self.timeout = timeout
        self.mpremote = mpremote or venv_tool("mpremote")

    def run(self, *cmds):
        argv = [self.mpremote, "connect", self.port] + (["resume"] if self.resume else [])
        try:
            r = subprocess.run(argv + list(cmds), capture_output=True, text=True,
                               timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise CaptureError("mpremote gave no answer within %.0f s" % self.timeout) from None
        except OSError as e:
            raise CaptureError("cannot run mpremote: %s" % e) from None
        if r.returncode:
            tail = "\n".join((r.stderr.strip() or r.stdout.strip()).splitlines()[-4:])
            raise CaptureError("mpremote failed (rc %d): %s" % (r.returncode, tail))
        return r.stdout

    def listing(self, folder):
        out = self.run("exec", _LIST_SCRIPT % folder)
        for line in out.splitlines():
            if line.startswith("CAP "):
                d = json.loads(line[4:])
                files = [(n, s, h) for n, s, h in d["files"]]
                files.sort(key=lambda f: _index(f[0]))
                return files, bool(d.get("missing"))
        raise CaptureError("the board gave no listing: %s" % out.strip()[-300:])

    def copy(self, pairs):
        """Copy [(board path, local path)] in one session."""
        cmds = []
        for remote, local in pairs:
            cmds += ["fs", "cp", ":" + remote, local, "+"]
        if cmds:
            self.run(*cmds[:-1])

    def remove(self, paths):
        out = self.run("exec", _REMOVE_SCRIPT % (list(paths),))
        for line in out.splitlines():
            if line.startswith("CAPRM "):
                return int(line[6:])
        raise CaptureError("the board did not confirm the removal: %s" % out.strip()[-300:])


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(65536), b""):
            h.update(chunk)
    return h.hexdigest()


def local_name(out_dir, name, digest):
    """(path, already there): never overwrite different bytes under the same name."""
    p = os.path.join(out_dir, name)
    if not os.path.exists(p):
        return p, False
    if sha256_file(p) == digest:
        return p, True
    stem = name[:-4]
    p2 = os.path.join(out_dir, "%s-%s.atx" % (stem, digest[:8]))
    if os.path.exists(p2) and sha256_file(p2) == digest:
        return p2, True
    return p2, False


def summarize(path):
    """What a fetched transcript holds (atmq.atx reader); 'error' when it does not parse."""
    s = {"path": path, "bytes": os.path.getsize(path)}
    try:
        meta, recs = atx.read(path)
    except (ValueError, OSError) as e:  # a file cut short by a reset mid-write
        s["error"] = str(e)
        return s
    s["records"] = len(recs)
    s["tx_bytes"] = sum(len(r[3]) for r in recs if r[1] == atx.TX)
    s["rx_bytes"] = sum(len(r[3]) for r in recs if r[1] == atx.RX)
    s["span_ms"] = sum(r[2] or 0 for r in recs)
    for k in ("model", "revision", "source"):
        if meta.get(k):
            s[k] = meta[k]
    return s


def fetch(board, folder, out_dir, clear=False, log=print):
    """Copy every capture file to out_dir, verified; returns the summary dict."""
    files, missing = board.listing(folder)
    res = {"dir": folder, "on_board": [{"name": n, "bytes": s} for n, s, _h in files],
           "fetched": [], "skipped": [], "removed": 0, "errors": []}
    if missing:
        log("no folder %s on the board (capture never started?)" % folder)
        return res
    if not files:
        log("no capture files in %s on the board" % folder)
        return res
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".capture-", dir=out_dir)
    verified = []
    try:
        pairs, plan = [], []
        for n, size, digest in files:
            dst, same = local_name(out_dir, n, digest)
            if same:
                res["skipped"].append(dst)
                verified.append(n)
                log("%s: already fetched as %s" % (n, dst))
                continue
            tmp = os.path.join(work, n)
            pairs.append((folder + "/" + n, tmp))
            plan.append((n, size, digest, tmp, dst))
        board.copy(pairs)
        for n, size, digest, tmp, dst in plan:
            if not os.path.exists(tmp):
                res["errors"].append("%s: not copied" % n)
                continue
            got = os.path.getsize(tmp)
            if got != size or sha256_file(tmp) != digest:
                res["errors"].append("%s: copy differs from the board (%d of %d bytes or "
                                     "another hash): kept on the board" % (n, got, size))
                continue
            os.replace(tmp, dst)
            verified.append(n)
            res["fetched"].append(dst)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if clear and verified:
        res["removed"] = board.remove([folder + "/" + n for n in verified])
        log("removed %d verified file(s) from the board" % res["removed"])
    return res


def doctor(path):
    """tools/logdoctor.py on one file: (exit code, its output)."""
    r = subprocess.run([sys.executable, LOGDOCTOR, path], capture_output=True, text=True,
                       timeout=120)
    return r.returncode, (r.stdout + r.stderr).rstrip()


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Fetch the AT capture transcripts (.atx) from a board with mpremote, "
                    "verified by SHA-256, list them and optionally explain them with "
                    "tools/logdoctor.py.")
    p.add_argument("--port", required=True, help="mpremote connect string: /dev/ttyUSB0, "
                   "socket://127.0.0.1:PORT (the unix port via replrelay.py), rfc2217://...")
    p.add_argument("--board", help="boards/NAME.json or NAME: the folder is <fs_root>/capture")
    p.add_argument("--dir", help="capture folder on the board (default /capture, or the "
                   "board's)")
    p.add_argument("--out", default="captures", help="local folder (default ./captures)")
    p.add_argument("--list", action="store_true", help="only list the files on the board")
    p.add_argument("--clear", action="store_true",
                   help="delete the files from the board once fetched and verified")
    p.add_argument("--doctor", action="store_true", help="run tools/logdoctor.py on each")
    p.add_argument("--resume", dest="resume", action="store_true", default=None,
                   help="no soft reset on connect (default for socket:// and rfc2217://)")
    p.add_argument("--no-resume", dest="resume", action="store_false")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per mpremote call")
    p.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    a = p.parse_args(argv)
    if a.list and a.clear:
        p.error("--list copies nothing, so it cannot --clear")
    folder = a.dir
    if folder is None:
        try:
            folder = board_dir(a.board) if a.board else "/capture"
        except ConfigError as e:
            sys.stderr.write("capture: --board %s: %s\n" % (a.board, e))
            return EXIT_INPUT
    folder = folder.rstrip("/") or "/"
    resume = a.resume
    if resume is None:
        resume = a.port.startswith(("socket://", "rfc2217://"))
    log = (lambda s: sys.stderr.write(s + "\n")) if a.json else print
    board = Board(a.port, resume, a.timeout)
    try:
        if a.list:
            files, missing = board.listing(folder)
            if missing:
                log("no folder %s on the board" % folder)
            for n, size, digest in files:
                log("%-16s %8d bytes  sha256 %s" % (n, size, digest[:16]))
            if a.json:
                print(json.dumps({"dir": folder, "on_board": [
                    {"name": n, "bytes": s, "sha256": h} for n, s, h in files]}))
            return EXIT_OK
        res = fetch(board, folder, a.out, a.clear, log)
    except CaptureError as e:
        sys.stderr.write("capture: %s\n" % e)
        return EXIT_BOARD
    res["summaries"] = []
    for path in res["fetched"]:
        s = summarize(path)
        res["summaries"].append(s)
        if "error" in s:
            log("%s: %d bytes, does not parse as .atx: %s" % (path, s["bytes"], s["error"]))
        else:
            log("%s: %d bytes, %d records (> %d B, < %d B) over %.1f s%s" % (
                path, s["bytes"], s["records"], s["tx_bytes"], s["rx_bytes"],
                s["span_ms"] / 1000.0,
                "".join(", %s %s" % (k, s[k]) for k in ("model", "revision") if k in s)))
    if a.doctor:
        res["doctor"] = {}
        for path in res["fetched"] + res["skipped"]:
            rc, text = doctor(path)
            res["doctor"][path] = {"rc": rc, "report": text}
            log("==== logdoctor %s ====" % path)
            log(text)
    for e in res["errors"]:
        sys.stderr.write("capture: %s\n" % e)
    if a.json:
        print(json.dumps(res))
    return EXIT_BOARD if res["errors"] else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
