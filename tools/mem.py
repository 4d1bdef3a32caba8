#!/usr/bin/env python3
"""The firmware's RAM, measured on the board-like build: ``python3 tools/dev.py mem``.

    python3 tools/dev.py mem [--json FILE] [--readme] [--no-run] [--search [--search-range LO:HI]]
                             [--map]
    python3 tools/dev.py mem --trace {clean,downlink,drop,reboot,tls} [--trace-map]

Runs tools/mem_probe.py on the 32-bit unix port with the firmware frozen in
(tools/build_port.py: bytecode outside the heap, 32-bit objects, as on an ESP32
without PSRAM) and prints one JSON document:

  static   per configuration (every feature on; OBD off; capture off; the SM family
           instead of CMQTT): heap after boot, each module's import, the App built,
           every preallocated buffer (ring, response, inbox, batch, spool, capture, OBD),
           modules imported only when used.
  peaks    the live heap sampled every 10 ms during a clean run (publish), downlink
           commands, a network drop (recovery), a modem reboot and a clean run over TLS,
           against the SIMCom simulator and Mosquitto, every feature on.
  search   (--search) the lowest -X heapsize at which each e2e scenario delivers every
           record (bisection in 4 KiB steps; a few minutes).
  heapmap  (--map) the live heap by object kind once the App is built and once connected
           (one clean run; micropython.mem_info(1)'s block map: function objects, dicts,
           str/bytes, tuples, lists, bytearray/array headers, modules; "other" is instances,
           dict and list storage, buffers' data, closures, bound methods, types).

``--trace`` answers "what is that peak": one e2e run of the scenario, every new peak of a
state (256 bytes over the last) printed as it came, one JSON line each, between the link's
transitions: the state, the link's, the App's containers of 600+ items or bytes (a buffer
that grew, a list that kept growing) and, with ``--trace-map``, the objects of 128 bytes or
more that were not in the heap at the previous peak (kind, size, count).

``--readme`` prints the Markdown tables of README.md's memory section from the same run.
Figures: bytes, ``gc.mem_alloc()`` after ``gc.collect()``.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for p in (HERE, os.path.join(ROOT, "tests_host")):
    if p not in sys.path:
        sys.path.insert(0, p)

import build_port  # noqa: E402
from e2erig import Rig, make_config, telemetry  # noqa: E402

PROBE = os.path.join(HERE, "mem_probe.py")
HEAP = "256K"  # generous: the probe measures, the search finds the floor
CATEGORIES = (  # first match of the buffer's owner path wins
    ("ring", ("ring",)), ("OBD", ("elm",)), ("capture", ("capture", "redact")),
    ("inbox", ("inbox",)), ("batch", ("uplink",)), ("spool", ("spool",)),
    ("response", ("at.", "tok", "engine")),
)


def _board(tmp, family, obd_port):
    with open(os.path.join(ROOT, "boards", "unix.json")) as f:
        b = json.load(f)
    if family == "sm":
        b["modem"] = {"model": "SIM7000G", "family": "sm"}
    b["obd"]["uart"]["device"] = "tcp:127.0.0.1:%d" % obd_port
    path = os.path.join(tmp, "board-%s.json" % family)
    with open(path, "w") as f:
        json.dump(b, f)
    return path


def category(path):
    for name, keys in CATEGORIES:
        if any(k in path for k in keys):
            return name
    return "other"


def static(binary, name, family="cmqtt", obd=True, capture=True):
    """One static probe; the modem and OBD ends are plain listening sockets (no I/O)."""
    tmp = tempfile.mkdtemp(prefix="mem-")
    socks = []
    try:
        ports = []
        for _ in range(2):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(4)
            socks.append(s)
            ports.append(s.getsockname()[1])
        cfg = os.path.join(tmp, "config.json")
        make_config(cfg, "mem-probe", 1883, obd_enable=obd, capture_enable=capture)
        env = build_port.frozen_env()
        env.update({"TLOG_BOARD": _board(tmp, family, ports[1]), "TLOG_CONFIG": cfg,
                    "TLOG_FLASH": os.path.join(tmp, "flash"),
                    "TLOG_MODEM": "tcp:127.0.0.1:%d" % ports[0], "TLOG_MEMPROBE": "static"})
        os.makedirs(env["TLOG_FLASH"])
        d = subprocess.run([binary, PROBE], env=dict(env, TLOG_MEMPROBE="deps"), cwd=tmp,
                           capture_output=True, text=True, timeout=60)
        for line in d.stdout.splitlines():
            if line.startswith("DEPS "):
                env["TLOG_MEMPROBE_DEPS"] = line[5:]
        r = subprocess.run([binary, "-X", "heapsize=" + HEAP, PROBE], env=env, cwd=tmp,
                           capture_output=True, text=True, timeout=60)
        for line in r.stdout.splitlines():
            if line.startswith("MEM "):
                d = json.loads(line[4:])
                d["name"] = name
                cats = {}
                for path, _n, heap in d["buffers"]:
                    c = category(path)
                    cats[c] = cats.get(c, 0) + heap
                d["buffer_totals"] = cats
                return d
        raise RuntimeError("probe %s failed (rc %d):\n%s%s" % (name, r.returncode,
                                                               r.stdout[-2000:], r.stderr))
    finally:
        for s in socks:
            s.close()
        shutil.rmtree(tmp, ignore_errors=True)


class Features:
    """Every optional part on for the e2e runs: capture, and OBD against elm327-emulator
    (tests_host/elm_emu.py) through a board file naming its port; OBD stays off, and the
    report says so, where the emulator cannot start."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="mem-feat-")
        self.elm = None
        self.board = None
        try:
            import elm_emu

            self.elm, port = elm_emu.start()
            self.board = _board(self.tmp, "cmqtt", port)
        except Exception as e:  # no emulator: the runs go on without OBD
            print("[mem] OBD off in the e2e runs: %r" % e, file=sys.stderr)

    def config(self):
        return {"capture_enable": True, "obd_enable": self.elm is not None}

    def args(self):
        return ["--board", self.board] if self.board else []

    def close(self):
        if self.elm is not None:
            import elm_emu

            elm_emu.stop(self.elm)
        shutil.rmtree(self.tmp, ignore_errors=True)


FEATURES = None  # set by main() for the e2e runs
# The simulator's faults per e2e scenario (tests_host/test_frozen.py runs the same ones);
# "tls" is a clean run over MQTT(S), a name not here a clean run.
SCENARIOS = {
    "drop": {"faults": [{"kind": "nonet", "at_s": 5, "duration_s": 15}]},
    "reboot": {"faults": [{"kind": "reboot", "at_s": 5}]},
}


def _run(broker, scenario, heapsize, probe=True, commands=False, timeout=60):
    """One e2e run on the frozen port; (summary, final counts, MEMPEAK dict or None, ok)."""
    extra = FEATURES.config() if FEATURES else {"capture_enable": True}
    fw_args = (["--entry", PROBE] if probe else []) + (FEATURES.args() if FEATURES else [])
    os.environ["TLOG_MEMPROBE"] = "run"
    dev = "mem-%s-%d" % (scenario or "clean", int(time.monotonic() * 1000) % 100000)
    scen = SCENARIOS.get(scenario)
    tls = scenario == "tls"
    if tls and not broker.tls_port:
        raise RuntimeError("the broker has no TLS listener (amqtt fallback)")
    with Rig(broker, scenario=scen, device_id=dev, heapsize=heapsize, frozen=True,
             config_extra=extra, fw_args=fw_args, tls=tls) as rig:
        rig.start()
        t0 = time.monotonic()
        if scen:
            ok = rig.wait_until(lambda: rig.fault_end() is not None
                                and rig.records_after(rig.fault_end()) >= 3, timeout)
        else:
            ok = rig.wait_until(lambda: rig.records_after(t0) >= 6, timeout)
        if ok and commands:
            for i, c in enumerate(({"cmd": "ping"}, {"cmd": "get"}, {"cmd": "locate"},
                                   {"cmd": "set", "key": "health_interval_s", "value": 20},
                                   {"cmd": "capture", "action": "status"}, {"cmd": "flush"})):
                cid = "m%d" % i
                c["id"] = cid
                rig.sub.publish(rig.prefix + "cmd", json.dumps(c))
                def ack(cid=cid):
                    """The answer (a result in parts: its last part) once complete."""
                    last = None
                    for m in rig.sub.snapshot():
                        p = m["payload"]
                        if m["topic"].endswith("/cmd/ack") and isinstance(p, dict) \
                                and p.get("id") == cid:
                            last = p
                    return None if last is None or last.get("more") is True else last
                rig.wait_until(lambda: ack() is not None, 20)
                got = ack()
                if not (got and got.get("ok")):
                    print("[mem] %s at %s: %r -> %r" % (c["cmd"], heapsize, c, got),
                          file=sys.stderr, flush=True)
                    ok = False
        rc = rig.stop_firmware()
        log = rig.fw.log_text()
        a = rig.summary()
        counts = rig.fw.final_counts()
        peak = None
        for line in log.splitlines():
            if line.startswith("MEMPEAK "):
                peak = json.loads(line[8:])
        # lost: made (seq 0..made-1), not at the broker and not among the spool's newest
        at_broker = {seq for _t, seq, _r in telemetry(rig.sub.snapshot())}
        lost = counts is None or any(
            q not in at_broker and q < counts[0] - counts[2] for q in range(counts[0]))
        good = bool(ok) and rc in (0, 130) and not lost and "MemoryError" not in log \
            and "Traceback" not in log
        return a, counts, peak, good, log


def peaks(broker):
    out = {}
    for name, scen, cmds in (("publish", None, False), ("downlink", None, True),
                             ("recovery", "drop", False), ("reboot", "reboot", False),
                             ("tls", "tls", False)):
        if scen == "tls" and not broker.tls_port:
            continue  # amqtt fallback: no TLS listener
        a, counts, peak, good, log = _run(broker, scen, HEAP, commands=cmds)
        if not good:
            print(log[-3000:], file=sys.stderr)
        out[name] = {"ok": good, "records": a["unique"], "gaps": a["gaps"], "peak": peak}
        print("[mem] %s: %s" % (name, json.dumps(out[name])), file=sys.stderr, flush=True)
    return out


def _passes(broker, scen, heap_k, cmds):
    """One run at ``heap_k``; a failure without a MemoryError (a timeout on a loaded
    machine) is run once more before it counts."""
    for _ in range(2):
        _a, _c, _p, good, log = _run(broker, scen, "%dK" % heap_k, probe=False, commands=cmds)
        if good or "MemoryError" in log:
            return good
    return False


def search(broker, lo_k=40, hi_k=128):
    """Lowest heapsize (KiB, 4 KiB steps) at which each scenario passes, by bisection."""
    out = {}
    for name, scen, cmds in (("clean", None, False), ("downlink", None, True),
                             ("network_drop", "drop", False), ("reboot", "reboot", False),
                             ("tls", "tls", False)):
        if scen == "tls" and not broker.tls_port:
            out[name] = None
            continue
        lo, hi = lo_k, hi_k  # lo fails (assumed), hi passes (checked)
        if not _passes(broker, scen, hi, cmds):
            out[name] = None
            continue
        while hi - lo > 4:
            mid = (lo + hi) // 2 // 4 * 4
            good = _passes(broker, scen, mid, cmds)
            print("[mem] search %s %dK: %s" % (name, mid, "pass" if good else "fail"),
                  file=sys.stderr, flush=True)
            if good:
                hi = mid
            else:
                lo = mid
        out[name] = hi
    return out


MAP_KINDS = {"B": "function objects", "D": "dicts (object)", "S": "str/bytes", "T": "tuples",
             "L": "lists (object)", "A": "bytearray/array (object)", "M": "modules",
             "F": "floats", "h": "other"}


def parse_heapmap(log):
    """{state: {kind: [objects, bytes]}} from the MEMMAP-BEGIN/END blocks of a probe run
    (gc.c's gc_dump_alloc_table: one character per 16-byte block, '=' a tail, '.' free)."""
    out = {}
    cur = None
    kind = None
    for line in log.splitlines():
        if line.startswith("MEMMAP-BEGIN "):
            cur = out.setdefault(line.split()[1], {})
            kind = None
            continue
        if line.startswith("MEMMAP-END"):
            cur = None
            continue
        if cur is None or len(line) < 10 or line[8:10] != ": ":
            kind = None  # "(n lines all free)" and the header lines
            continue
        for ch in line[10:]:
            if ch == "=":
                if kind is not None:
                    cur[kind][1] += 16
            elif ch in ". ":
                kind = None
            else:
                kind = MAP_KINDS.get(ch, "other")
                cur.setdefault(kind, [0, 0])
                cur[kind][0] += 1
                cur[kind][1] += 16
    return out


def heap_objects(log):
    """{name: {first block: [kind char, blocks]}} for each MEMMAP-BEGIN/END block of a
    probe run: every object of the heap by where it starts (gc_dump_alloc_table's map)."""
    out = {}
    cur = None
    for line in log.splitlines():
        if line.startswith("MEMMAP-BEGIN "):
            cur = out.setdefault(line.split()[1], {})
            head = None
            continue
        if line.startswith("MEMMAP-END"):
            cur = None
            continue
        if cur is None or len(line) < 10 or line[8:10] != ": ":
            continue
        try:
            base = int(line[:8], 16) // 16
        except ValueError:
            continue
        for i, ch in enumerate(line[10:]):
            if ch == "=":
                if head is not None:
                    head[1] += 1
            elif ch in ". ":
                head = None
            else:
                head = cur[base + i] = [ch, 1]
    return out


def new_blocks(before, after, least=128):
    """What ``after`` holds that ``before`` did not (objects of ``least`` bytes or more):
    [(kind, bytes, count)], largest total first."""
    n = {}
    for at, v in after.items():
        if before.get(at) != v and v[1] * 16 >= least:
            key = (MAP_KINDS.get(v[0], "other"), v[1] * 16)
            n[key] = n.get(key, 0) + 1
    return sorted(((k, b, c) for (k, b), c in n.items()), key=lambda x: -x[1] * x[2])


def trace(broker, scenario, with_map):
    """One e2e run printing every new peak of a state as it came (see mem_probe.py)."""
    os.environ["TLOG_MEMPROBE_TRACE"] = "map" if with_map else "1"
    try:
        cmds = scenario == "downlink"
        _a, _c, peak, good, log = _run(broker, None if cmds else scenario, HEAP,
                                       commands=cmds)
    finally:
        del os.environ["TLOG_MEMPROBE_TRACE"]
    maps = heap_objects(log) if with_map else {}
    prev = None
    out = []
    for line in log.splitlines():
        if line.startswith("PEAKAT "):
            p = json.loads(line[7:])
            name = "peak-%s-%d" % (p["state"], p["alloc"])
            if name in maps:
                if prev is not None:
                    p["new"] = new_blocks(maps[prev], maps[name])
                prev = name
            out.append(p)
        elif line[:1].isdigit() and " link: " in line:
            out.append({"log": line})
    return {"ok": good, "scenario": scenario, "peak": peak, "timeline": out}


def heapmap(broker):
    os.environ["TLOG_MEMPROBE_MAP"] = "1"
    try:
        _a, _c, _p, good, log = _run(broker, None, HEAP)
    finally:
        del os.environ["TLOG_MEMPROBE_MAP"]
    return {"ok": good, "states": parse_heapmap(log)}


def firmware_total(doc, d):
    """The firmware's heap with its real main.py: the probe script's own compiled code
    (d["boot"] - boot_bare) left out."""
    return doc["boot_bare"] + d["imports"] + d["app_built"]


def readme(doc):
    """Markdown tables for README.md's memory section."""
    st = {d["name"]: d for d in doc["static"]}
    full = st["all"]
    code = full["boot"] + full["probe"] - doc["boot_bare"]  # the probe script in the heap
    k = lambda n: "%.1f" % (n / 1024.0)  # noqa: E731
    live = lambda n: k(n - code) if n > code else "-"  # noqa: E731
    lines = ["| heap, KiB (32-bit, frozen) | " + " | ".join(d["name"] for d in doc["static"])
             + " |", "|---|" + "---|" * len(doc["static"])]

    def row(label, fn):
        lines.append("| %s | %s |" % (label, " | ".join(fn(d) for d in doc["static"])))
    row("MicroPython started, nothing imported", lambda d: k(doc["boot_bare"]))
    row("modules imported at boot (module, class and function objects)",
        lambda d: k(d["imports"]))
    row("App built: its objects and preallocated buffers", lambda d: k(d["app_built"]))
    for c in ("ring", "response", "inbox", "batch", "spool", "capture", "OBD", "other"):
        row("&nbsp;&nbsp;of which buffers: " + c,
            lambda d, c=c: k(d["buffer_totals"].get(c, 0)))
    row("**total before the first AT command**", lambda d: "**%s**" % k(firmware_total(doc, d)))
    lines.append("")
    lines.append("| module: import cost (bytes) | | module | |")
    lines.append("|---|---|---|---|")
    mods = [m for m in full["modules"]] + [
        (m[0] + " (when used)", m[1]) for m in full["later"] if m[1] is not None]
    half = (len(mods) + 1) // 2
    for i in range(half):
        a = mods[i]
        b = mods[i + half] if i + half < len(mods) else ("", "")
        lines.append("| %s | %s | %s | %s |" % (a[0], a[1], b[0], b[1]))
    if doc.get("peaks"):
        lines.append("")
        on = ", ".join(k.split("_")[0] for k, v in doc.get("e2e_features", {}).items() if v)
        lines.append("| peak live heap, KiB (on: %s) | link bring-up | connected "
                     "| link down again (recovery) |" % on)
        lines.append("|---|---|---|---|")
        for name, v in doc["peaks"].items():
            p = v["peak"] or {}
            lines.append("| %s%s | %s | %s | %s |" % (
                name, "" if v["ok"] else " (FAILED)", live(p.get("boot", 0)),
                live(p.get("connected", 0)), live(p.get("recovery", 0))))
    hm = (doc.get("heapmap") or {}).get("states")
    if hm:
        states = [k for k in ("built", "connected") if k in hm]
        lines.append("")
        lines.append("| live heap by kind, KiB (objects) | " + " | ".join(states) + " |")
        lines.append("|---|" + "---|" * len(states))
        for kind in MAP_KINDS.values():
            if any(kind in hm[s] for s in states):
                lines.append("| %s | %s |" % (kind, " | ".join(
                    "%s (%d)" % (k(hm[s].get(kind, [0, 0])[1]), hm[s].get(kind, [0, 0])[0])
                    for s in states)))
    if doc.get("search"):
        lines.append("")
        lines.append("Lowest `-X heapsize` at which every record arrives (4 KiB steps): "
                     + ", ".join("%s %sK" % (n, v) for n, v in doc["search"].items()) + ".")
    return "\n".join(lines)


def main(argv=None):
    global FEATURES
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", help="also write the JSON document to this file")
    p.add_argument("--readme", action="store_true", help="print the README tables too")
    p.add_argument("--no-run", action="store_true", help="static figures only (no e2e runs)")
    p.add_argument("--search", action="store_true",
                   help="bisect the lowest heapsize per e2e scenario (minutes)")
    p.add_argument("--map", action="store_true",
                   help="the live heap by object kind, built and connected (one e2e run)")
    p.add_argument("--trace", metavar="SCENARIO",
                   choices=("clean", "downlink", "drop", "reboot", "tls"),
                   help="one e2e run (clean, downlink, drop, reboot, tls) printing each new "
                        "peak as it came: link state, the App's big objects")
    p.add_argument("--trace-map", action="store_true",
                   help="with --trace: also what each peak added to the heap (new objects "
                        "by kind and size, from the block map)")
    p.add_argument("--search-range", default="40:128", metavar="LO:HI",
                   help="KiB: LO assumed to fail, HI checked to pass (default 40:128)")
    args = p.parse_args(argv)
    try:
        binary = build_port.ensure()
    except build_port.Skip as e:
        print("dev.py mem: the 32-bit frozen port cannot be built here: %s" % e,
              file=sys.stderr)
        return build_port.SKIP_RC
    if args.trace:
        from broker import Broker

        FEATURES = Features()
        try:
            with Broker().start() as b:
                doc = trace(b, args.trace, args.trace_map)
        finally:
            FEATURES.close()
        for e in doc["timeline"]:
            print(json.dumps(e))
        print(json.dumps({"ok": doc["ok"], "peak": doc["peak"]}))
        return 0 if doc["ok"] else 1
    bare = subprocess.run([binary, "-c", "import gc; gc.collect(); print(gc.mem_alloc())"],
                          env=build_port.frozen_env(), capture_output=True, text=True,
                          timeout=30)
    doc = {"build": "unix port, 32-bit (-m32), firmware frozen (tools/build_port.py)",
           "boot_bare": int(bare.stdout.split()[-1]),
           "static": [static(binary, "all"), static(binary, "obd off", obd=False),
                      static(binary, "capture off", capture=False),
                      static(binary, "sm family", family="sm")]}
    if not args.no_run or args.search or args.map:
        from broker import Broker

        FEATURES = Features()
        doc["e2e_features"] = FEATURES.config()
        try:
            with Broker().start() as b:
                if not args.no_run:
                    doc["peaks"] = peaks(b)
                if args.map:
                    doc["heapmap"] = heapmap(b)
                if args.search:
                    lo, hi = (int(x) for x in args.search_range.split(":"))
                    doc["search"] = search(b, lo, hi)
        finally:
            FEATURES.close()
    text = json.dumps(doc, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    if args.readme:
        print()
        print(readme(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
