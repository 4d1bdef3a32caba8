#!/usr/bin/env python3
"""Deploy lib/ and firmware/ to a board with mpremote, copying only what changed.

Owns the deployment layout and the on-device manifest of hashes:

    lib/atmq/**/*.py        -> :lib/atmq/**/*.mpy   (mpy-cross -march=ARCH)
    firmware/tlog/**/*.py   -> :lib/tlog/**/*.mpy
    firmware/<other>.py     -> :lib/<other>.mpy
    firmware/main.py, boot.py -> :main.py, :boot.py (kept as source: the board runs them)
    boards/<BOARD>.json     -> :board.json          (--board)
    <CONFIG>.json           -> :config.json         (--config)
    manifest of hashes      -> :.deploy.json        (written last)

Never deployed: lib/atmq/_host.py (host only) and the freeze manifests
(manifest.py).  A source X.py beside a copied X.mpy on the board (say from a
``mip install``) is removed, since MicroPython would import the .py first.
ESP32 /lib is on sys.path, so ``import atmq`` and ``import tlog`` work there, as
on the unix port started by replrelay.py.

The hashes are SHA-256 of the bytes that go to the board.  The board's
:.deploy.json is read back first; a file is copied when its hash differs or it
is missing from the manifest (``--verify`` hashes the files on the board instead,
for boards edited by hand).  ``--dry-run`` prints the plan and copies nothing.

    deploy.py --port /dev/ttyUSB0 --board freematics-one-plus --config my.json
    deploy.py --port socket://127.0.0.1:PORT --arch x64 --resume   # unix port
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
sys.path.insert(0, _HERE)
import boardarg  # noqa: E402
import fwcheck  # noqa: E402

MANIFEST = ".deploy.json"
NEVER = ("_host.py", "manifest.py")
AS_SOURCE = ("main.py", "boot.py")


def venv_tool(name):
    p = os.path.join(ROOT, ".venv", "bin", name)
    return p if os.path.exists(p) else (shutil.which(name) or name)


class DeployError(Exception):
    pass


def _py_files(top):
    out = []
    for base, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in sorted(files):
            if f.endswith(".py") and f not in NEVER:
                out.append(os.path.join(base, f))
    return out


def sources(root, board=None, config=None):
    """(local path, device path, how) for everything that goes to the board."""
    plan = []
    lib = os.path.join(root, "lib")
    if os.path.isdir(lib):
        for pkg in sorted(os.listdir(lib)):
            top = os.path.join(lib, pkg)
            if not os.path.isdir(top):
                continue
            for f in _py_files(top):
                rel = os.path.relpath(f, lib)
                plan.append((f, "lib/" + rel[:-3] + ".mpy", "mpy"))
    fw = os.path.join(root, "firmware")
    if os.path.isdir(fw):
        for name in sorted(os.listdir(fw)):
            p = os.path.join(fw, name)
            if os.path.isdir(p) and name != "__pycache__":
                for f in _py_files(p):
                    rel = os.path.relpath(f, fw)
                    plan.append((f, "lib/" + rel[:-3] + ".mpy", "mpy"))
            elif name in AS_SOURCE:
                plan.append((p, name, "copy"))
            elif name.endswith(".py") and name not in NEVER:
                plan.append((p, "lib/" + name[:-3] + ".mpy", "mpy"))
    # The board and config are checked by the firmware's own modules (atmq.board,
    # tlog.config): a file the board would refuse at boot is refused here, before a copy.
    if board:
        bp = board if os.path.exists(board) else os.path.join(root, "boards", board + ".json")
        if not os.path.exists(bp):
            try:
                bp = boardarg.resolve(board)
            except ValueError as e:
                raise DeployError(str(e)) from None
        try:
            fwcheck.check_board(bp)
        except ValueError as e:
            raise DeployError("the firmware would refuse this board file: %s" % e) from None
        plan.append((bp, "board.json", "copy"))
    if config:
        try:
            fwcheck.check_config(config)
        except ValueError as e:
            raise DeployError("the firmware would refuse this config: %s" % e) from None
        plan.append((config, "config.json", "copy"))
    for local, _dev, how in plan:
        if how == "copy" and local.endswith(".json"):
            try:
                with open(local) as f:
                    json.load(f)
            except ValueError as e:
                raise DeployError("%s is not valid JSON: %s" % (local, e)) from None
    return plan


def build(plan, arch, outdir, mpy_cross=None):
    """Compile/collect every file into outdir; returns [(built path, device path, sha256)]."""
    mpy_cross = mpy_cross or venv_tool("mpy-cross")
    out = []
    for local, dev, how in plan:
        dst = os.path.join(outdir, dev)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if how == "mpy":
            r = subprocess.run([mpy_cross, "-march=" + arch, "-s", dev[4:-4] + ".py", "-o", dst,
                                local],
                               capture_output=True, text=True)
            if r.returncode:
                raise DeployError("mpy-cross failed on %s:\n%s" % (local, r.stderr.strip()))
        else:
            shutil.copyfile(local, dst)
        with open(dst, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        out.append((dst, dev, digest))
    return out


class Board:
    """mpremote against one connect string."""

    def __init__(self, port, resume, mpremote=None, timeout=120.0):
        self.port = port
        self.resume = resume
        self.mpremote = mpremote or venv_tool("mpremote")
        self.timeout = timeout

    def run(self, *cmds):
        argv = [self.mpremote, "connect", self.port]
        if self.resume:
            argv.append("resume")
        argv += list(cmds)
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise DeployError("mpremote timed out after %.0f s: %s" % (
                self.timeout, " ".join(argv))) from None

    def read_manifest(self):
        r = self.run("exec", "try:\n print(open(%r).read())\nexcept OSError:\n print('{}')"
                     % MANIFEST)
        if r.returncode:
            raise DeployError("cannot read :%s via mpremote (rc %d): %s" % (
                MANIFEST, r.returncode, (r.stderr or r.stdout).strip()))
        text = r.stdout.strip()
        try:
            data = json.loads(text or "{}")
        except ValueError:
            # a corrupt manifest means: trust nothing, copy everything
            return {}
        files = data.get("files", {}) if isinstance(data, dict) else {}
        return files if isinstance(files, dict) else {}

    def hash_files(self, devpaths):
        """SHA-256 of each file as it is on the board (missing files left out)."""
        r = self.run("exec", _HASH_SCRIPT % (list(devpaths),))
        if r.returncode:
            raise DeployError("cannot hash files on the board (rc %d): %s" % (
                r.returncode, (r.stderr or r.stdout).strip()))
        try:
            return json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise DeployError("unexpected answer hashing files: %r" % r.stdout) from None


_HASH_SCRIPT = """import hashlib, binascii, json
r = {}
for p in %r:
    try:
        h = hashlib.sha256()
        with open(p, 'rb') as f:
            while True:
                b = f.read(512)
                if not b:
                    break
                h.update(b)
        r[p] = binascii.hexlify(h.digest()).decode()
    except OSError:
        pass
print(json.dumps(r))
"""


def _mkdirs_script(devpaths):
    dirs = set()
    for p in devpaths:
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    if not dirs:
        return None
    return ("import os\nfor d in %r:\n try:\n  os.mkdir(d)\n except OSError:\n  pass"
            % (sorted(dirs, key=lambda d: (d.count("/"), d)),))


def plan_changes(built, remote, prune):
    """Split into (to copy, unchanged, to remove) against the device's manifest."""
    copy, same = [], []
    for dst, dev, digest in built:
        if remote.get(dev) == digest:
            same.append((dst, dev, digest))
        else:
            copy.append((dst, dev, digest, "new" if dev not in remote else "changed"))
    wanted = {dev for _d, dev, _h in built}
    remove = sorted(d for d in remote if d not in wanted) if prune else []
    return copy, same, remove


def deploy(root, port, arch="xtensawin", board=None, config=None, dry_run=False, resume=None,
           prune=False, log=print, verify=False):
    """Deploy and return a summary dict (also what --json prints)."""
    plan = sources(root, board, config)
    if resume is None:
        resume = bool(port) and port.startswith(("socket://", "rfc2217://"))
    work = tempfile.mkdtemp(prefix="deploy-")
    try:
        built = build(plan, arch, work)
        dev = Board(port, resume) if port else None
        remote = dev.read_manifest() if dev else {}
        if dev is not None and verify:
            # trust the files, not the manifest: catches edits made on the board by hand
            listed = dict(remote)
            remote = dev.hash_files([b[1] for b in built])
            for devp in listed:
                remote.setdefault(devp, None)  # keep prune candidates
        copy, same, remove = plan_changes(built, remote, prune)
        summary = {
            "port": port, "arch": arch, "dry_run": dry_run,
            "copied": [c[1] for c in copy], "unchanged": [s[1] for s in same],
            "removed": remove,
        }
        for _dst, devp, _h, why in copy:
            log("%s %s -> :%s (%s)" % ("would copy" if dry_run else "copy",
                                       os.path.relpath(_src_of(plan, devp), root), devp, why))
        for devp in remove:
            log("%s :%s (no longer in the tree)" % ("would remove" if dry_run else "remove",
                                                    devp))
        for _dst, devp, _h in same:
            log("unchanged :%s" % devp)
        if not dry_run and dev is not None and (copy or remove):
            cmds = []
            script = _mkdirs_script([c[1] for c in copy])
            if script:
                cmds += ["exec", script, "+"]
            # X.py shadows X.mpy in the same folder (e.g. left by a mip install): remove it
            shadows = [c[1][:-4] + ".py" for c in copy if c[1].endswith(".mpy")]
            if shadows:
                cmds += ["exec", "import os\nfor p in %r:\n try:\n  os.remove(p)\n"
                         " except OSError:\n  pass" % (shadows,), "+"]
            for dst, devp, _h, _why in copy:
                cmds += ["fs", "cp", "-f", dst, ":" + devp, "+"]
            for devp in remove:
                cmds += ["fs", "rm", ":" + devp, "+"]
            man = os.path.join(work, MANIFEST)
            with open(man, "w") as f:
                json.dump({"tool": "tools/deploy.py", "arch": arch,
                           "files": {devp: h for _d, devp, h in built}}, f, indent=0,
                          sort_keys=True)
            cmds += ["fs", "cp", "-f", man, ":" + MANIFEST]
            r = dev.run(*cmds)
            if r.returncode:
                raise DeployError("mpremote copy failed (rc %d): %s" % (
                    r.returncode, (r.stderr or r.stdout).strip()))
        log("deploy: %d %s, %d unchanged, %d %s%s" % (
            len(copy), "to copy" if dry_run else "copied", len(same), len(remove),
            "to remove" if dry_run else "removed", " (dry run)" if dry_run else ""))
        return summary
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _src_of(plan, devp):
    for local, dev, _how in plan:
        if dev == devp:
            return local
    return devp


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Compile lib/ and firmware/ with mpy-cross and copy what changed to a "
                    "board with mpremote (hash manifest kept on the board as :%s)." % MANIFEST)
    p.add_argument("--port", help="mpremote connect string: /dev/ttyUSB0, "
                   "socket://127.0.0.1:PORT, rfc2217://... (omit with --dry-run to list all)")
    p.add_argument("--arch", default="xtensawin",
                   help="mpy-cross -march (xtensawin for ESP32; x64 for the unix port)")
    p.add_argument("--board", help="boards/NAME.json (or a path) copied to :board.json")
    p.add_argument("--config", help="device config JSON copied to :config.json")
    p.add_argument("--dry-run", action="store_true", help="list what would be done")
    p.add_argument("--resume", dest="resume", action="store_true", default=None,
                   help="no soft reset on connect (default for socket:// and rfc2217://)")
    p.add_argument("--no-resume", dest="resume", action="store_false")
    p.add_argument("--prune", action="store_true",
                   help="remove files listed in the board's manifest that left the tree")
    p.add_argument("--verify", action="store_true",
                   help="hash the files on the board instead of trusting its manifest")
    p.add_argument("--root", default=ROOT, help="repository root (default: this repo)")
    p.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    a = p.parse_args(argv)
    if not a.port and not a.dry_run:
        p.error("--port is required (or use --dry-run)")
    log = (lambda s: sys.stderr.write(s + "\n")) if a.json else print
    try:
        summary = deploy(a.root, a.port, a.arch, a.board, a.config, a.dry_run, a.resume,
                         a.prune, log, a.verify)
    except DeployError as e:
        sys.stderr.write("deploy: %s\n" % e)
        return 1
    if a.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
