#!/usr/bin/env python3
"""The telelogger live on this machine: broker, simulated modem, firmware on the unix port.

    python3 tools/dev.py demo [--seconds N] [--persona SIM7600E|A7600|SIM7670|SIM800]
                              [--faults scenario.json] [--save FILE] [--heapsize 1M]
                              [--fast] [--workdir DIR]

Owns the demo's run and display.  It starts a loopback broker (Mosquitto, or amqtt
in-process when Mosquitto cannot be had: it says so), the SIMCom simulator replaying a
GNSS track (tools/modemsim/tracks/demo.json) with the optional fault scenario
(tools/modemsim/README.md), and the firmware through tools/run_unix.py with a generated
config; a paho subscriber on ``tlog/<device>/#`` shows what arrives: a status line with
records received, confirmed (PUBACKed, from the device's health report), queued (its
spool), the latest fix and speed, and lines for status changes, faults fired and the
acks of two remote commands the demo sends (ping, get), and the firmware's own
warning and error lines (its field log) as they happen.  Ctrl-C or ``--seconds`` ends it
with a summary (records, seq gaps, duplicates, reconnects, elapsed); every process it
started is stopped by pid.  What the subscriber received is saved as JSON lines for
tools/tripview.py.  When a part is missing the demo says which and stops.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import venvexec  # noqa: E402

if __name__ == "__main__":  # plain python3 tools/demo.py: continue under .venv (paho)
    venvexec.ensure(["paho"])

from e2erig import freematics_records  # noqa: E402

DEVICE = "demo-van"
# persona -> the board's modem model (atmq.board.MODELS), which picks the driver family:
# the SIM800 speaks AT+SM* (seed 004), the others AT+CMQTT* (003 ch.16).  The A7600
# persona is the A76xx of app note 002; A7670 is its listed sibling (same family, timings).
PERSONAS = {"SIM7600E": "SIM7600", "A7600": "A7670", "SIM7670": "SIM7670", "SIM800": "SIM800"}
SAMPLE_S = 1  # the demo's sampling interval (config below): one record per second
DEFAULT_SAVE = os.path.join(ROOT, "var", "demo", "received.jsonl")
RUN_DIR = os.path.join(ROOT, "var", "demo", "run")  # config, flash, firmware.log of the last run


def _fresh(path):
    """An empty folder (a fresh flash: seq starts at 0 and the summary can count gaps)."""
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


SCENARIOS = os.path.join(HERE, "modemsim", "scenarios")


def scenario_names():
    try:
        return sorted(f[:-5] for f in os.listdir(SCENARIOS) if f.endswith(".json"))
    except OSError:
        return []


def scenario_path(arg):
    """``--faults``: a file, or the name of a shipped scenario (flaky_network)."""
    if os.path.isfile(arg):
        return arg
    path = os.path.join(SCENARIOS, arg[:-5] if arg.endswith(".json") else arg) + ".json"
    if os.sep not in arg and os.path.isfile(path):
        return path
    raise argparse.ArgumentTypeError("%r is neither a file nor a shipped scenario (%s)"
                                     % (arg, ", ".join(scenario_names())))


def persona_board(persona, folder):
    """boards/unix.json with the persona's modem model, written into ``folder``."""
    with open(os.path.join(ROOT, "boards", "unix.json")) as f:
        board = json.load(f)
    model = PERSONAS[persona]
    board["name"] = "unix-" + persona.lower()
    board["modem"] = {"model": model, "family": None}  # family from the model's table
    path = os.path.join(folder, "board.json")
    with open(path, "w") as f:
        json.dump(board, f, indent=1)
    return path


def say(msg):
    sys.stdout.write("\r\x1b[K" if sys.stdout.isatty() else "")
    print("[demo] " + msg, flush=True)


def missing_parts():
    """What the demo needs and cannot find, one sentence each."""
    out = []
    mp = os.path.join(ROOT, ".venv", "bin", "micropython")
    if not os.path.exists(mp):
        out.append("the MicroPython unix port (%s): run 'python3 tools/dev.py bootstrap'" % mp)
    for rel, who in (("firmware/main.py", "the firmware entry point"),
                     ("firmware/tlog/app.py", "the telelogger app"),
                     ("tools/run_unix.py", "the unix-port launcher"),
                     ("boards/unix.json", "the unix board file"),
                     ("tools/modemsim/__init__.py", "the modem simulator")):
        if not os.path.exists(os.path.join(ROOT, rel)):
            out.append("%s (%s) is not in this checkout yet" % (who, rel))
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        out.append("paho-mqtt: run the demo with 'python3 tools/dev.py demo' (the .venv has it)")
    return out


class Live:
    """What the subscriber saw, folded into the status line."""

    def __init__(self, t0):
        self.t0 = t0
        self.received = 0
        self.last_seq = None
        self.fix = None
        self.health = {}
        self.health_t = None  # when the last health report arrived
        self.since_health = 0  # records received after it
        self.events = []  # lines to print from the main thread (paho calls from its own)

    def on_message(self, m):
        topic, p = m["topic"], m["payload"]
        if topic.endswith("/telemetry"):
            if isinstance(p, str):  # the SIM800's Freematics text (RECORDS.md)
                p = freematics_records(p)
            for r in (p if isinstance(p, list) else [p]):
                if not isinstance(r, dict):
                    continue
                self.received += 1
                self.since_health += 1
                self.last_seq = r.get("seq", self.last_seq)
                if isinstance(r.get("fix"), dict):
                    self.fix = r["fix"]
        elif topic.endswith("/health") and isinstance(p, dict):
            self.health = p
            self.health_t = time.monotonic()
            self.since_health = 0
        elif topic.endswith("/status"):
            self.events.append("status: %s%s" % (p, " (retained)" if m["retain"] else ""))
        elif topic.endswith("/cmd/ack"):
            self.events.append("command ack: %s" % json.dumps(p))

    def queued(self, now):
        """What waits in the device's spool: its last health report's ``spool_depth`` plus
        the records it sampled since (one per SAMPLE_S) minus those that arrived since.  The
        report is only sent while the link is up, so during an outage it would stay frozen;
        "~" marks the estimate."""
        depth = self.health.get("spool_depth")
        if not isinstance(depth, int) or self.health_t is None:
            return "?"
        age = now - self.health_t
        if age < 2 * SAMPLE_S:
            return str(depth)
        return "~%d" % max(0, depth + int(age / SAMPLE_S) - self.since_health)

    def line(self, width=80):
        """The status line, cut to ``width`` columns: the most useful fields first."""
        now = time.monotonic()
        h = self.health
        up = h.get("uplink") or {}
        parts = ["%ds" % (now - self.t0),
                 "recv %d" % self.received,
                 "queued %s" % self.queued(now),
                 "seq %s" % ("-" if self.last_seq is None else self.last_seq),
                 "acked %s" % up.get("sent", "?"),
                 "reconn %s" % h.get("reconnects", "?")]
        f = self.fix
        if f:
            parts.append("%.1f km/h" % (f.get("speed_ckmh", 0) / 100))
            parts.append("%.5f,%.5f" % (f.get("lat_e7", 0) / 1e7, f.get("lon_e7", 0) / 1e7))
        else:
            parts.append("no fix yet")
        out = parts[0]
        for p in parts[1:]:
            if len(out) + 2 + len(p) > width - 1:  # the last column would wrap on some ttys
                break
            out += "  " + p
        return out[:width - 1]


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=0, help="stop after N s (0: until Ctrl-C)")
    p.add_argument("--persona", default="SIM7600E", choices=list(PERSONAS))
    p.add_argument("--faults", default=None, type=scenario_path,
                   help="a fault scenario: a shipped name (%s) or a JSON file "
                   "(format: tools/modemsim/README.md)" % ", ".join(scenario_names()))
    p.add_argument("--save", default=DEFAULT_SAVE, help="JSON lines of what arrived")
    p.add_argument("--workdir", default=RUN_DIR,
                   help="config, flash and firmware.log of this run (emptied first)")
    p.add_argument("--heapsize", default=None, help="MicroPython heap (run_unix default)")
    p.add_argument("--fast", action="store_true", help="simulator without UART pacing/latency")
    return p.parse_args(argv)


def _on_term(signum, frame):
    raise KeyboardInterrupt


def run(args):
    miss = missing_parts()
    if miss:
        say("cannot run the end-to-end demo yet; missing:")
        for m in miss:
            print("  - " + m)
        return 2
    if args.faults and not os.path.exists(args.faults):
        say("fault scenario %s not found" % args.faults)
        return 2
    from broker import Broker
    from e2erig import DEMO_TRACK, Rig, analyze

    t0 = time.monotonic()
    live = Live(t0)
    broker = rig = None
    interrupted = False
    try:
        broker = Broker().start()
        if broker.kind == "mosquitto":
            say("broker: Mosquitto on 127.0.0.1:%d (TLS %d)" % (broker.port, broker.tls_port))
        else:
            say("broker: Mosquitto cannot be had here: amqtt in-process on 127.0.0.1:%d "
                "(plain MQTT only)" % broker.port)
        scen = None
        if args.faults:
            with open(args.faults) as f:
                scen = json.load(f)
        workdir = _fresh(args.workdir)
        rig = Rig(broker, scenario=scen, persona=args.persona, device_id=DEVICE,
                  heapsize=args.heapsize, track=DEMO_TRACK, fast=args.fast,
                  on_message=live.on_message, workdir=workdir,
                  board=persona_board(args.persona, workdir),
                  config_extra={"health_interval_s": 10,
                                "interval_moving_s": SAMPLE_S,
                                "interval_stationary_s": SAMPLE_S,
                                # seed 004 3.1: the SIM800 takes KEEPALIVE 60..3600 only
                                "mqtt_keepalive_s": 60})
        rig.start()
        say("modem simulator: %s on 127.0.0.1:%d%s; GNSS track %s" % (
            args.persona, rig.sim.port, ", faults " + args.faults if args.faults else "",
            os.path.relpath(DEMO_TRACK, ROOT)))
        say("firmware: %s (log %s)" % (" ".join(rig.fw.command()[1:3] + ["..."]),
                                       rig.fw.log_path))
        say("subscribed to %s#  (Ctrl-C to stop)" % rig.prefix)
        _loop(args, rig, live)
    except KeyboardInterrupt:
        interrupted = True
    except Exception as e:  # a part failed to start: say which, then clean up
        say("error: %r" % e)
        if rig is not None and rig.fw is not None:
            print(_tail(rig.fw.log_text()))
        _cleanup(rig, broker)
        return 1
    return _finish(args, rig, broker, live, t0, interrupted, analyze)


def _tail(text, n=15):
    return "\n".join("    " + x for x in text.strip().splitlines()[-n:])


class LogTail:
    """New warning and error lines of the firmware's console log (atmq.log's ``W``/``E``
    lines: link state, AT command, the manual's code), read where the last call stopped."""

    def __init__(self, path):
        self.path = path
        self.pos = 0

    def new_lines(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next call
        self.pos += end
        out = []
        for raw in data[:end].decode("utf-8", "replace").splitlines():
            parts = raw.split(" ", 2)
            if len(parts) == 3 and parts[0].isdigit() and parts[1] in ("W", "E"):
                out.append(raw)
        return out


def _loop(args, rig, live):
    tty = sys.stdout.isatty()
    logtail = LogTail(rig.fw.log_path)
    pinged = False
    last_print = 0.0
    nfaults = 0
    deadline = time.monotonic() + args.seconds if args.seconds else None
    warned = False
    while deadline is None or time.monotonic() < deadline:
        rig.sub.wait(lambda: live.events, 0.5)
        faults = rig.fault_times()  # before the messages: a fault comes before its effects
        for _, kind, why in faults[nfaults:]:
            say("fault fired: %s (%s)" % (kind, why))
        nfaults = len(faults)
        while live.events:
            say(live.events.pop(0))
        for line in logtail.new_lines():
            say("firmware: " + line)
        if not rig.fw.running():
            say("the firmware stopped (exit %s); its log ends:" % rig.fw.proc.returncode)
            print(_tail(rig.fw.log_text()))
            return
        if live.received and not pinged:
            pinged = True
            cmd = rig.prefix + "cmd"
            rig.sub.publish(cmd, json.dumps({"id": 1, "cmd": "ping"}))
            rig.sub.publish(cmd, json.dumps({"id": 2, "cmd": "get",
                                             "keys": ["interval_moving_s", "mqtt_qos"]}))
            say("sent commands ping and get on " + cmd)
        if not live.received and not warned and time.monotonic() - live.t0 > 45:
            warned = True
            say("no telemetry after 45 s; the firmware log so far:")
            print(_tail(rig.fw.log_text()))
        now = time.monotonic()
        if tty:
            width = shutil.get_terminal_size((80, 24)).columns
            sys.stdout.write("\r\x1b[K" + live.line(width))
            sys.stdout.flush()
        elif now - last_print >= 5:
            last_print = now
            print(live.line(100), flush=True)


def _cleanup(rig, broker):
    try:
        if rig is not None:
            rig.close()
    finally:
        if broker is not None:
            broker.stop()


def _finish(args, rig, broker, live, t0, interrupted, analyze):
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave orphans
    try:
        if sys.stdout.isatty():
            print()
        say("stopping (%s)" % ("Ctrl-C" if interrupted else "time is up"))
        rc = rig.stop_firmware() if rig is not None else None
        msgs = rig.sub.snapshot() if rig is not None and rig.sub is not None else []
        if rig is not None and rig.sub is not None:
            os.makedirs(os.path.dirname(os.path.abspath(args.save)), exist_ok=True)
            rig.sub.save_jsonl(args.save)
        a = analyze(msgs)
        counts = rig.fw.final_counts() if rig is not None and rig.fw is not None else None
        print("---- summary ----")
        print("elapsed            %.1f s" % (time.monotonic() - t0))
        print("records received   %d (%d unique, last seq %s)" % (a["records"], a["unique"],
                                                                  a["max_seq"]))
        print("gaps in seq        %d%s" % (a["gaps"], " %r" % a["missing"] if a["gaps"] else ""))
        print("duplicates         %d" % a["dups"])
        print("reconnects seen    %d" % a["reconnects"])
        if rig is not None:
            print("faults fired       %d" % len(rig.fault_times()))
        if counts:
            print("firmware           %d records made, %d sent, %d left in its spool (exit %s)"
                  % (counts[0], counts[1], counts[2], rc))
        elif rig is not None and rig.fw is not None:
            print("firmware           no clean stop line (exit %s); log %s"
                  % (rc, rig.fw.log_path))
        if msgs:
            shown = os.path.abspath(args.save)
            if shown.startswith(ROOT + os.sep):
                shown = os.path.relpath(shown, ROOT)
            print("saved              %s  (view: python3 tools/tripview.py %s --png trip.png)"
                  % (shown, shown))
        if not a["records"]:
            # a demo that delivered nothing failed, whatever else went right
            log = rig.fw.log_path if rig is not None and rig.fw is not None else "?"
            print("FAILED             no record reached the broker; the firmware log: %s"
                  % log)
            if rig is not None and rig.fw is not None:
                print(_tail(rig.fw.log_text()))
            return 1
    finally:
        _cleanup(rig, broker)
        signal.signal(signal.SIGINT, old)
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # "dev.py demo -- --seconds 5" passes the separator on
        argv = argv[1:]
    args = parse(argv)
    # SIGTERM, or the terminal closed: stop the children all the same
    old = [(s, signal.signal(s, _on_term)) for s in (signal.SIGTERM, signal.SIGHUP)]
    try:
        return run(args)
    finally:
        for s, h in old:
            signal.signal(s, h)


if __name__ == "__main__":
    sys.exit(main())
