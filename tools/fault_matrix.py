#!/usr/bin/env python3
"""A fault at every step of the link (issue 9's proof): steps x faults, recovery or FAIL.

    python3 tools/dev.py fault-matrix [--faults reboot,error] [--steps 1-20,AT+CMQTTPUB=#2]
                                      [--jobs N] [--persona SIM7600E] [--jsonl FILE] [--list]
                                      [--firmware-root OTHER_CHECKOUT] [--report JSONL]

1. Records a clean session: the firmware (MicroPython unix port, tools/run_unix.py)
   against the simulator (tools/modemsim at its default pace: 0.5 s boot, 20 ms answers,
   115200 baud; its "fast" mode hides the boot gap) and one Mosquitto, from boot to steady
   publishing, with a downlink command (``ping``) sent after the second telemetry
   message and answered; every AT command the modem received is a step.
2. For each step k and each fault (tools/modemsim/stepfaults.py: reboot, reboot_wait,
   connlost, nonet, noanswer, error, the command's own error codes, a stray URC), runs
   the firmware again with that fault injected by the simulator on that command (its
   head and occurrence: the k-th command of the clean session) and checks:
     - telemetry reaches the broker within 15 s of the fault's end (after the reconnect's
       "online" when the link was rebuilt): the recovery time;
     - no record lost: every seq 0..max at the broker, and no more records made than
       unique records at the broker + records still in the spool at the clean stop
       (a cell that did not recover is stopped at once: the broker's figures only);
     - duplicates only from the batch in flight (at most one batch);
     - no traceback, no MemoryError, the firmware still running.
3. Prints the matrix (steps x faults: recovery ms, "-" not applicable, FAIL), a phase
   table, and writes one JSON line per cell (``--jsonl``, default
   build/fault-matrix.jsonl); failed cells' logs (modem side and firmware) go to
   build/fault-matrix-logs/.  ``--report JSONL`` re-prints a finished run.

Exit status 0 when every cell passed, 1 when one failed, 2 on a usage error.
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from e2erig import Collector, Firmware, SimThread, analyze, make_config, recovery_ms  # noqa: E402
from modemsim import stepfaults  # noqa: E402

RECOVER_S = 15.0  # issue 9: telemetry back within 15 s of the fault's end
FIRE_SLACK_S = 20.0  # the faulted step may come this much later than in the recording
BATCH = 16  # batch_max_records in e2erig.make_config: duplicates allowed per fault
DOWNLINK_AFTER = 2  # telemetry messages before the downlink command is sent
STEADY_AFTER_ACK = 2  # telemetry messages after the downlink's answer end the recording
RECORD_S = 40.0
SETTLE_MSGS = 2  # telemetry after the recovery before the clean stop
SETTLE_S = 6.0
# The clean stop may wait 10 s for "offline" and 10 s for the DISCONNECT (tlog/app.py
# shutdown) when it cancels the uplink inside a command; then run_unix's SIGINT.
GRACE_S = 25.0
QUICK_STOP_S = 3.0
KEEPALIVE_S = 20
DEFAULT_JSONL = os.path.join(ROOT, "build", "fault-matrix.jsonl")
FIRMWARE_ROOT: list = [os.environ.get("FM_FIRMWARE_ROOT") or None]  # another checkout
LOG_DIR: list = [None]  # where failed cells' logs go (set by main)
BY_INDEX = [False]  # inject on the k-th command whatever it is (default: its head, nth)
SIM_FAST = [False]  # the simulator at its default pace (boot 0.5 s, 20 ms answers)
_DEV_SEQ = [0]
_DEV_LOCK = threading.Lock()


def device_id():
    """A fresh id of constant length (topic lengths, hence command texts, stay the same)."""
    with _DEV_LOCK:
        _DEV_SEQ[0] += 1
        return "fm%05d" % (_DEV_SEQ[0] % 100000)


PHASES = (
    ("data", ("AT+NETOPEN", "AT+NETCLOSE", "AT+IPADDR", "AT+CGDCONT=", "AT+CGAUTH=", "AT+CGACT=")),
    ("mqtt-start", ("AT+CMQTTSTART", "AT+CMQTTSTOP")),
    ("acquire", ("AT+CMQTTACCQ=", "AT+CMQTTREL=", "AT+CMQTTWILLTOPIC=", "AT+CMQTTWILLMSG=",
                 "AT+CMQTTSSLCFG=", "AT+CMQTTCFG=")),
    ("connect", ("AT+CMQTTCONNECT=",)),
    ("subscribe", ("AT+CMQTTSUBTOPIC=", "AT+CMQTTSUB=")),
    ("publish", ("AT+CMQTTTOPIC=", "AT+CMQTTPAYLOAD=", "AT+CMQTTPUB=")),
)


def step_key(text):
    """What identifies a step's command: its head, and for AT+CMQTTTOPIC its topic length
    (status/health, telemetry and the downlink's answer have topics of different lengths)."""
    h = stepfaults.head(text)
    return text if h == "AT+CMQTTTOPIC=" else h


def steps_from_log(log, t0):
    """[(k, text, key, nth, phase, connected, t)] from the simulator's command/URC log."""
    steps, seen = [], {}
    connected = data_up = False
    downlink = 0  # publish commands left that carry the downlink's answer
    for t, kind, text in log:
        if kind == "urc":
            if text.startswith("+CMQTTCONNECT: 0,0"):
                connected = True
            elif text.startswith(("+CMQTTCONNLOST", "+CMQTTNONET")):
                connected = False
            elif text.startswith("+CMQTTRXSTART"):
                downlink = 3
            continue
        key = step_key(text)
        seen[key] = seen.get(key, 0) + 1
        h = stepfaults.head(text)
        phase = "bring-up" if not data_up else "steady"
        for name, heads in PHASES:
            if h in heads:
                phase = name
        if h == "AT+NETOPEN":
            data_up = True
        if phase == "publish" and downlink:
            phase, downlink = "downlink", downlink - 1
        steps.append({"k": len(steps) + 1, "text": text, "head": key, "nth": seen[key],
                      "phase": phase, "connected": connected, "t": round(t - t0, 3)})
    return steps


class TreeFirmware(Firmware):
    """The firmware of another checkout (``--firmware-root``) against this simulator."""

    def command(self):
        cmd = super().command()
        if FIRMWARE_ROOT[0]:
            cmd[1] = os.path.join(FIRMWARE_ROOT[0], "tools", "run_unix.py")
        return cmd


class Run:
    """One firmware run against its own simulator, subscriber and flash folder."""

    def __init__(self, broker, persona, scenario=None):
        self.dev = device_id()
        self.workdir = tempfile.mkdtemp(prefix="fm-")
        self.sim = SimThread(persona=persona, broker=(broker.host, broker.port),
                             scenario=scenario, fast=SIM_FAST[0])
        self.broker = broker
        self.sub: Any = None  # Collector, TreeFirmware once started
        self.fw: Any = None
        self.t0 = 0.0
        self.downlink_sent = None

    def start(self):
        port = self.sim.start()
        self.sub = Collector(self.broker.host, self.broker.port, "tlog/%s/#" % self.dev,
                             client_id="fm-sub-%s-%d" % (self.dev, os.getpid()))
        cfg = os.path.join(self.workdir, "config.json")
        make_config(cfg, self.dev, self.broker.port, mqtt_keepalive_s=KEEPALIVE_S)
        self.fw = TreeFirmware(self.workdir, "tcp:127.0.0.1:%d" % port, cfg, grace=GRACE_S)
        self.t0 = time.monotonic()
        self.fw.start()

    def telemetry(self, since=0.0):
        return [m for m in self.sub.snapshot()
                if m["topic"].endswith("/telemetry") and m["t"] > since]

    def acked(self):
        return any(m["topic"].endswith("/cmd/ack") for m in self.sub.snapshot())

    def tick(self, timeout=0.25):
        """Wait for news (bounded); send the downlink once enough telemetry arrived."""
        self.sub.wait(lambda: False, timeout)
        if self.downlink_sent is None and len(self.telemetry()) >= DOWNLINK_AFTER:
            self.sub.publish("tlog/%s/cmd" % self.dev, json.dumps({"id": 1, "cmd": "ping"}))
            self.downlink_sent = time.monotonic()

    def close(self):
        import shutil
        try:
            if self.fw is not None:
                self.fw.stop()
        finally:
            try:
                self.sim.stop()
            finally:
                if self.sub is not None:
                    self.sub.close()
                if os.environ.get("FM_KEEP") != "1":
                    shutil.rmtree(self.workdir, ignore_errors=True)


def record(broker, persona="SIM7600E"):
    """The clean session's steps (boot to steady publishing, a downlink answered)."""
    run = Run(broker, persona)
    try:
        run.start()
        deadline = run.t0 + RECORD_S
        t_ack = None
        while time.monotonic() < deadline and run.fw.running():
            run.tick()
            if t_ack is None and run.acked():
                t_ack = max(m["t"] for m in run.sub.snapshot()
                            if m["topic"].endswith("/cmd/ack"))
            if t_ack is not None and len(run.telemetry(t_ack)) >= STEADY_AFTER_ACK:
                break
        else:
            raise RuntimeError("clean session did not reach steady state in %.0f s; "
                               "firmware log:\n%s" % (RECORD_S, run.fw.log_text()[-3000:]))
        end = time.monotonic()
        log = run.sim.call(lambda: list(run.sim.sim.modem.log))
        return steps_from_log([e for e in log if e[0] <= end], run.t0)
    finally:
        run.close()


def _settle(run, t_back):
    """Steady again before the clean stop: SETTLE_MSGS telemetry messages after the
    recovery and the downlink answered if it was sent (bounded by SETTLE_S)."""
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline and run.fw.running():
        if len(run.telemetry(t_back)) >= SETTLE_MSGS and (
                run.downlink_sent is None or run.acked()):
            return
        run.tick()


def _save_log(res, fw_log, sim_log, t0):
    """A failed cell's firmware log and the simulator's command/URC log, for the reader."""
    name = "k%02d-%s-%s.log" % (res["k"], res["fault"], res["variant"].replace(" ", ""))
    path = os.path.join(LOG_DIR[0], name)
    with open(path, "w") as f:
        f.write("# %s\n# modem side (s from the firmware's start):\n" % json.dumps(
            {k: res.get(k) for k in ("k", "command", "variant", "reason")}))
        for t, kind, text in sim_log:
            f.write("%8.3f %s %s\n" % (t - t0, kind, text))
        f.write("\n# firmware log:\n" + fw_log)
    return path


def _problems(log):
    return [w for w in ("MemoryError", "Traceback") if w in log]


def run_cell(broker, step, fault, label, fault_dict, persona="SIM7600E"):
    """Run the firmware with one fault at one step; the cell's result as a dict."""
    t_wall = time.monotonic()
    run = Run(broker, persona, scenario=stepfaults.scenario(step, fault_dict, BY_INDEX[0]))
    dur = stepfaults.duration(fault_dict)
    res = {"k": step["k"], "command": step["text"], "phase": step["phase"], "fault": fault,
           "variant": label, "ok": False, "recovery_ms": None, "reason": None}
    try:
        run.start()
        fire_by = run.t0 + step["t"] + FIRE_SLACK_S
        t_end = None
        while True:
            run.tick()
            now = time.monotonic()
            fired = run.sim.faults
            if not run.fw.running():
                res["reason"] = "firmware exited (status %r)" % run.fw.proc.poll()
                break
            if not fired:
                if now > fire_by:
                    res["reason"] = "fault never fired (step not reached)"
                    break
                continue
            t_end = fired[0][0] + dur
            rec = recovery_ms(run.sub.snapshot(), [t_end])
            if rec is not None:
                res["recovery_ms"] = rec
                _settle(run, t_end + rec / 1000.0)
                break
            if now > t_end + RECOVER_S + 0.5:
                break
        fired_on = run.sim.call(lambda: run.sim.sim.scenario.faults[0].fired_on)
        res["fired_k"], res["fired_command"] = fired_on if fired_on else (None, None)
        t_stop = time.monotonic()
        # not recovered: the cell has failed; a wedged app's clean stop would only add
        # its 20 s of timeouts (the loss figures are then those at the broker only)
        rc = run.fw.stop(None if res["recovery_ms"] is not None else QUICK_STOP_S)
        res["stop_s"] = round(time.monotonic() - t_stop, 1)
        msgs = run.sub.snapshot()
        a = analyze(msgs)
        counts = run.fw.final_counts()
        log = run.fw.log_text()
        res.update(records=a["records"], unique=a["unique"], gaps=a["gaps"],
                   missing=a["missing"], dups=a["dups"], reconnects=a["reconnects"],
                   acked=run.acked(), exit=rc)
        if counts is not None:
            res["made"], res["depth"] = counts[0], counts[2]
        reasons = [res["reason"]] if res["reason"] else []
        if not reasons and t_end is not None and res["recovery_ms"] is None:
            reasons.append("no telemetry within %d s of the fault's end" % RECOVER_S)
        elif res["recovery_ms"] is not None and res["recovery_ms"] > RECOVER_S * 1000:
            reasons.append("recovery %d ms > %d s" % (res["recovery_ms"], RECOVER_S))
        if a["gaps"]:
            reasons.append("seq missing at the broker: %r" % a["missing"][:5])
        if counts is None and res["recovery_ms"] is not None:
            reasons.append("no clean stop (no 'stopped:' line)")
        elif counts is not None and a["unique"] + counts[2] < counts[0]:
            # the spool may still hold the batch in flight (delivered, not yet acknowledged):
            # more than made is a duplicate to come, fewer is a loss
            reasons.append("%d records lost: made %d, %d at the broker, %d in the spool"
                           % (counts[0] - a["unique"] - counts[2], counts[0], a["unique"],
                              counts[2]))
        if a["dups"] > BATCH:
            reasons.append("%d duplicates (> one batch of %d)" % (a["dups"], BATCH))
        bad = _problems(log)
        if bad:
            reasons.append("firmware log has " + "/".join(bad))
        if rc not in (0, 130) and res["recovery_ms"] is not None:
            reasons.append("exit status %r" % rc)
        res["ok"] = not reasons
        res["reason"] = "; ".join(reasons) or None
        if reasons and LOG_DIR[0]:
            res["log"] = _save_log(res, log, run.sim.call(lambda: list(run.sim.sim.modem.log)),
                                   run.t0)
    except Exception as e:  # one broken cell must not stop the matrix
        res["reason"] = "runner error: %r" % (e,)
    finally:
        run.close()
    res["wall_s"] = round(time.monotonic() - t_wall, 1)
    return res


# -- selection ------------------------------------------------------------------------------
def select_steps(steps, spec):
    """'1-10,14,AT+CMQTTPUB=#2,phase:connect' -> steps (in order, once each)."""
    if not spec:
        return list(steps)
    out = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        if part.startswith("phase:"):
            name, _, nth = part[6:].partition("#")
            got = [s for s in steps if s["phase"] == name]
            if nth:
                got = got[int(nth) - 1:int(nth)]
        elif part.replace("-", "").isdigit():
            lo, _, hi = part.partition("-")
            lo, hi = int(lo), int(hi or lo)
            got = [s for s in steps if lo <= s["k"] <= hi]
        else:
            key, _, nth = part.partition("#")
            got = [s for s in steps if s["head"].upper() == key.upper()
                   or stepfaults.head(s["text"]).upper() == key.upper()]
            if nth:
                got = got[int(nth) - 1:int(nth)]
            else:
                got = got[:1]
        if not got:
            raise ValueError("no step matches %r (see --list)" % part)
        out.extend(s for s in got if s not in out)
    return sorted(out, key=lambda s: s["k"])


def select_faults(spec):
    names = [f.strip() for f in (spec or ",".join(stepfaults.FAULTS)).split(",") if f.strip()]
    bad = [f for f in names if f not in stepfaults.FAULTS]
    if bad:
        raise ValueError("unknown fault %s (have %s)" % (", ".join(bad),
                                                         ", ".join(stepfaults.FAULTS)))
    return names


def cells(steps, faults):
    """[(step, fault, variant label, fault dict)] for every applicable combination."""
    out = []
    for s in steps:
        for f in faults:
            if stepfaults.applies(f, s):
                out.extend((s, f, label, d) for label, d in stepfaults.variants(f, s))
    return out


# -- output ---------------------------------------------------------------------------------
def cell_text(results):
    """One table cell from the results of one step x fault (several codes: the worst)."""
    if not results:
        return "-"
    if all(r["ok"] for r in results):
        worst = max(r["recovery_ms"] for r in results)
        return "%d" % worst
    n = sum(1 for r in results if not r["ok"])
    return "FAIL" if len(results) == 1 else "FAIL %d/%d" % (n, len(results))


def matrix_text(steps, faults, results):
    by = {}
    for r in results:
        by.setdefault((r["k"], r["fault"]), []).append(r)
    w = max([len(s["text"][:34]) for s in steps] + [7])
    head = "%4s %-10s %-*s " % ("k", "phase", w, "command") + " ".join(
        "%11s" % f for f in faults)
    lines = [head, "-" * len(head)]
    for s in steps:
        lines.append("%4d %-10s %-*s " % (s["k"], s["phase"], w, s["text"][:34]) + " ".join(
            "%11s" % cell_text(by.get((s["k"], f), [])) for f in faults))
    fails = [r for r in results if not r["ok"]]
    lines.append("")
    lines.append("cells %d, passed %d, failed %d; recovery ms = fault's end to telemetry at "
                 "the broker; '-' = not applicable" % (len(results), len(results) - len(fails),
                                                       len(fails)))
    drift = [r for r in results if r.get("fired_k") not in (None, r["k"])]
    if drift:
        most = max(abs(r["fired_k"] - r["k"]) for r in drift)
        lines.append("%d cells fired on their command at another index than recorded (up to "
                     "%d away: the GNSS and signal polls interleave by timing)" % (len(drift),
                                                                                 most))
    for r in fails:
        lines.append("FAIL k=%d %s %s [%s]: %s" % (r["k"], r["command"], r["fault"],
                                                    r["variant"], r["reason"]))
    return "\n".join(lines)


PHASE_ORDER = ("bring-up", "data", "mqtt-start", "acquire", "connect", "subscribe",
               "publish", "downlink", "steady")


def phase_text(faults, results):
    """Phases x faults: cells passed/run and the worst recovery among the passed (ms)."""
    by = {}
    for r in results:
        by.setdefault((r["phase"], r["fault"]), []).append(r)
    head = "| phase | " + " | ".join(faults) + " |"
    lines = [head, "|---|" + "---:|" * len(faults)]
    for ph in PHASE_ORDER:
        if not any(k[0] == ph for k in by):
            continue
        row = []
        for f in faults:
            rs = by.get((ph, f), [])
            ok = [r["recovery_ms"] for r in rs if r["ok"]]
            if not rs:
                row.append("-")
            elif len(ok) == len(rs):
                row.append("%d/%d, %d" % (len(ok), len(rs), max(ok)))
            else:
                row.append("**%d/%d**%s" % (len(ok), len(rs), ", %d" % max(ok) if ok else ""))
        lines.append("| %s | %s |" % (ph, " | ".join(row)))
    return "\n".join(lines)


def report(path, faults):
    """Re-print a finished run's matrix and phase table from its JSON lines."""
    with open(path) as f:
        results = [json.loads(line) for line in f if line.strip()]
    if not results:
        raise ValueError("%s: no results" % path)
    seen = {}
    for r in results:
        seen.setdefault(r["k"], {"k": r["k"], "text": r["command"], "phase": r["phase"]})
    steps = [seen[k] for k in sorted(seen)]
    faults = [f for f in faults if any(r["fault"] == f for r in results)]
    results.sort(key=lambda r: (r["k"], faults.index(r["fault"]), r["variant"]))
    print(matrix_text(steps, faults, results))
    print()
    print(phase_text(faults, results))
    return 0 if all(r["ok"] for r in results) else 1


def main(argv=None):
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="faults: %s\nsteps: k, k-k, COMMAND-HEAD[#n] (e.g. "
                                "AT+CMQTTPUB=#2), phase:NAME[#n]; see --list" % (
                                    ", ".join(stepfaults.FAULTS)))
    p.add_argument("--faults", help="comma-separated (default: all)")
    p.add_argument("--steps", help="comma-separated selection (default: every step)")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (default 1)")
    p.add_argument("--persona", default="SIM7600E", choices=("SIM7600E", "A7600", "SIM7670"),
                   help="simulated modem (the CMQTT family; default SIM7600E)")
    p.add_argument("--jsonl", default=DEFAULT_JSONL, help="one JSON line per cell")
    p.add_argument("--list", action="store_true", help="record, print the steps, stop")
    p.add_argument("--firmware-root", help="run the firmware of this checkout (e.g. another "
                   "worktree) against this simulator")
    p.add_argument("--by-index", action="store_true", help="inject on the k-th command "
                   "whatever it is (default: the recorded command at its occurrence)")
    p.add_argument("--report", metavar="JSONL", help="print the matrix of a finished run "
                   "(its --jsonl file) and stop")
    args = p.parse_args(argv)
    if args.report:
        try:
            return report(args.report, list(stepfaults.FAULTS))
        except (OSError, ValueError) as e:
            p.error(str(e))
    BY_INDEX[0] = args.by_index
    if args.firmware_root:
        if not os.path.isfile(os.path.join(args.firmware_root, "tools", "run_unix.py")):
            p.error("--firmware-root: no tools/run_unix.py under %s" % args.firmware_root)
        FIRMWARE_ROOT[0] = os.path.abspath(args.firmware_root)
    try:
        faults = select_faults(args.faults)
    except ValueError as e:
        p.error(str(e))
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    from broker import Broker

    def terminate(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, terminate)

    broker = Broker().start()
    try:
        print("recording a clean session ...", file=sys.stderr, flush=True)
        try:
            steps = record(broker, args.persona)
        except RuntimeError as e:
            print("fault-matrix: %s" % e, file=sys.stderr)
            return 1
        if args.list:
            for s in steps:
                print("%4d %-10s %-5s %s (%s#%d)" % (s["k"], s["phase"],
                                                     "conn" if s["connected"] else "",
                                                     s["text"], s["head"], s["nth"]))
            return 0
        try:
            chosen = select_steps(steps, args.steps)
        except ValueError as e:
            p.error(str(e))
        todo = cells(chosen, faults)
        print("%d steps x %d faults: %d runs, %d at a time" % (
            len(chosen), len(faults), len(todo), args.jobs), file=sys.stderr, flush=True)
        os.makedirs(os.path.dirname(os.path.abspath(args.jsonl)), exist_ok=True)
        LOG_DIR[0] = os.path.splitext(os.path.abspath(args.jsonl))[0] + "-logs"
        os.makedirs(LOG_DIR[0], exist_ok=True)
        results = []
        lock = threading.Lock()
        with open(args.jsonl, "w") as out:
            def one(c):
                r = run_cell(broker, c[0], c[1], c[2], c[3], args.persona)
                with lock:
                    results.append(r)
                    out.write(json.dumps(r) + "\n")
                    out.flush()
                    print("[%d/%d] k=%d %s %s: %s" % (
                        len(results), len(todo), r["k"], r["command"], r["variant"],
                        "%s ms" % r["recovery_ms"] if r["ok"] else "FAIL " + str(r["reason"])),
                        file=sys.stderr, flush=True)
                return r
            pool = ThreadPoolExecutor(max_workers=args.jobs)
            try:
                list(pool.map(one, todo))
            except KeyboardInterrupt:
                print("interrupted: finishing the runs in progress", file=sys.stderr)
                pool.shutdown(wait=True, cancel_futures=True)
                return 130
            pool.shutdown()
        results.sort(key=lambda r: (r["k"], faults.index(r["fault"]), r["variant"]))
        print(matrix_text(chosen, faults, results))
        print()
        print(phase_text(faults, results))
        print("JSON lines: %s" % args.jsonl)
        return 0 if all(r["ok"] for r in results) else 1
    finally:
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
