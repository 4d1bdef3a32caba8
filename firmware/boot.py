"""Runs before main.py: finishes an over-the-air switch or rollback, counts probation boots.

Owns the application tree on flash (``<root>/lib``, where ``atmq`` and ``tlog``
live) and the OTA journal in ``<root>/ota`` (issue 15).  The app (tlog/ota.py)
only *asks*: it stages a verified tree in ``lib.new`` and writes ``ota/switch``,
or writes ``ota/rollback``; every rename of the tree happens here, before any
application module is imported, so a new version that cannot even be imported
is still rolled back.  For the same reason this file imports nothing from
``lib/`` (not even tlog.fsutil) and stays deployed as source beside main.py.

Journal (each marker a small JSON file written as tmp + rename):

  switch     {"v", "from", "kind", "sid", "probation_s", "max_boots"[, "old_part"]}
             files: lib -> lib.old, lib.new -> lib, then probation; image: the
             app already called set_boot, only probation is written here
  probation  the switch marker + "boots": incremented at every boot; more than
             max_boots without the app's confirmation (crashes, watchdog resets,
             hangs) -> rollback.  The app removes it when the new version reached
             MQTT and delivered telemetry (confirmed).
  rollback   {"why"}: lib -> lib.bad, lib.old -> lib (image: set_boot of the old
             partition), then ``result`` = "rolled back: <why>" for the app to publish
  result     {"text", "v", "sid"}: the last outcome, published and removed by the app

Every step is idempotent and decided from what is on flash, so a power cut at any
point resumes at the next boot and ends fully old or fully new.  The trees are
renamed only within the root folder: a littlefs rename inside one folder is one
atomic commit, while a rename across folders, cut between its two commits, was
seen to lose the whole root folder (tests_device/test_ota_device.py cuts the
power at every block erase and write of the switch and of the rollback).
A failure here is printed and never stops the boot: the REPL must come up.
"""

import gc
import os
import sys

_DIR = 0x4000


def _isdir(p):
    try:
        return os.stat(p)[0] & _DIR != 0
    except OSError:
        return False


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def _rm(p):
    try:
        os.remove(p)
    except OSError:
        pass


def rmtree(p):
    """Remove a file or a folder and everything in it (missing: nothing to do)."""
    if not _isdir(p):
        _rm(p)
        return
    for name in os.listdir(p):
        rmtree(p + "/" + name)
    try:
        os.rmdir(p)
    except OSError:
        pass


def read_json(p):
    """A marker's dict, or None when absent or unreadable (written by tmp + rename)."""
    import json

    for q in (p, p + ".tmp"):  # .tmp: FAT cannot rename over a file (see fsutil)
        try:
            with open(q) as f:
                v = json.loads(f.read())
        except (OSError, ValueError):
            continue
        if isinstance(v, dict):
            return v
    return None


def write_json(p, obj):
    import json

    tmp = p + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(obj))
    try:
        os.rename(tmp, p)
    except OSError:
        _rm(p)
        os.rename(tmp, p)


def remove_marker(p):
    _rm(p)
    _rm(p + ".tmp")


def set_boot(root, label):
    """Boot the app partition ``label`` next (ESP32); the unix stand-in keeps the choice in
    ``ota/part/boot`` (tlog/otastore.py FilePartition)."""
    if sys.platform == "esp32":
        import esp32  # type: ignore

        parts = esp32.Partition.find(esp32.Partition.TYPE_APP, label=label)
        if parts:
            parts[0].set_boot()
        return
    d = root + "/ota/part"
    if _isdir(d):
        with open(d + "/boot", "w") as f:
            f.write(label)


def rollback(root, why):
    """Put the previous version back (idempotent: resumes after a cut at any step)."""
    d = root + "/ota"
    lib, old, bad = root + "/lib", root + "/lib.old", root + "/lib.bad"
    pr = read_json(d + "/probation") or {}
    if pr.get("kind") == "image":
        if pr.get("old_part"):
            set_boot(root, pr["old_part"])
    elif _isdir(old):
        if _isdir(lib):
            if _isdir(bad):
                rmtree(bad)  # a leftover from an earlier rollback: not this version
            os.rename(lib, bad)
        os.rename(old, lib)
    elif not _isdir(lib) and _isdir(bad):
        os.rename(bad, lib)  # nothing older is kept: the new version beats no version
        why += " (no previous version kept)"
    write_json(d + "/result", {"text": "rolled back: " + why, "v": pr.get("from"),
                               "sid": pr.get("sid")})
    remove_marker(d + "/probation")
    remove_marker(d + "/rollback")
    rmtree(bad)
    return pr.get("kind") == "image"  # the old partition runs only after a reset


def switch(root, sw):
    """Finish the switch to the staged tree and start its probation (idempotent)."""
    d = root + "/ota"
    lib, new, old = root + "/lib", root + "/lib.new", root + "/lib.old"
    if sw.get("kind") != "image":
        if _isdir(new):
            if _isdir(lib):
                if _isdir(old):
                    rmtree(old)  # stale (the app clears it before staging): not the current
                os.rename(lib, old)
            os.rename(new, lib)
        if not _isdir(lib):  # neither tree where it belongs: put the old one back
            if _isdir(old):
                os.rename(old, lib)
            write_json(d + "/result", {"text": "rolled back: switch found no new tree",
                                       "v": sw.get("from"), "sid": sw.get("sid")})
            remove_marker(d + "/switch")
            return
    pr = read_json(d + "/probation")
    if pr is None or pr.get("sid") != sw.get("sid"):
        pr = dict(sw)
        pr["boots"] = 0
        write_json(d + "/probation", pr)
    remove_marker(d + "/switch")


def recover(root):
    """The boot-time decision: what to finish, whether to roll back.  Returns what it did:
    "none", "switched", "probation", "rolled back" or "rolled back, reset"."""
    d = root + "/ota"
    if not _isdir(d):
        return "none"
    rb = read_json(d + "/rollback")
    if rb is not None:
        img = rollback(root, str(rb.get("why") or "asked by the application"))
        return "rolled back, reset" if img else "rolled back"
    did = "none"
    sw = read_json(d + "/switch")
    if sw is not None:
        switch(root, sw)
        did = "switched"
    pr = read_json(d + "/probation")
    if pr is not None:
        boots = int(pr.get("boots", 0)) + 1
        limit = int(pr.get("max_boots", 3))
        if boots > limit:
            why = "not confirmed after %d boots (crashes or resets)" % (boots - 1)
            write_json(d + "/rollback", {"why": why})
            img = rollback(root, why)
            return "rolled back, reset" if img else "rolled back"
        pr["boots"] = boots
        write_json(d + "/probation", pr)
        return "probation" if did == "none" else did
    # nothing pending: leftovers of a confirmed update or of a finished rollback
    rmtree(root + "/lib.old")
    rmtree(root + "/lib.bad")
    return did


def _root():
    if sys.platform == "esp32":
        return ""
    return (os.getenv("TLOG_FLASH") or ".").rstrip("/")  # type: ignore  # unix port


def main():
    try:
        did = recover(_root())
    except Exception as e:  # never stop the boot: main.py and the REPL must come up
        print("[boot] ota recovery failed:", repr(e))
        return
    if did != "none":
        print("[boot] ota:", did)
    if did == "rolled back, reset" and sys.platform == "esp32":
        import machine  # type: ignore

        machine.reset()


if __name__ == "__main__":
    main()
gc.collect()
