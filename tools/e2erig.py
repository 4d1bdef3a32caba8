"""End-to-end rig: broker + modem simulator + the firmware on the unix port + a subscriber.

Owns what the demo (tools/demo.py) and the end-to-end fault tests
(tests_host/test_e2e_faults.py) share: starting the simulator in-process on its
own asyncio thread (so the time each fault fired is known), the firmware as a
child of tools/run_unix.py in its own process group (stopped by pid: SIGINT,
bounded wait, then SIGKILL of that group), a paho subscriber on the device's
topics that timestamps every message, the generated config, and the delivery
analysis (records, seq gaps, duplicates, reconnects, recovery time).

    with Rig(broker, scenario=..., persona="SIM7600E") as rig:
        rig.start()                      # sim, subscriber, firmware
        rig.wait_until(lambda: rig.records_after(t) >= 3, 30)
        rig.stop_firmware()
        print(rig.summary())
"""

import asyncio
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

RUN_UNIX = os.path.join(HERE, "run_unix.py")
DEMO_TRACK = os.path.join(HERE, "modemsim", "tracks", "demo.json")
# Faults whose effect lasts ``duration_s``: recovery is measured from their end.
_LASTING = ("nonet", "stall", "slow", "byte_per_write", "echo_on")


def make_config(path, device_id, broker_port, tls=False, **extra):
    """The firmware's config.json for a run against the loopback broker (fast sampling)."""
    cfg = {
        "device_id": device_id,
        "mqtt_host": "127.0.0.1",
        "mqtt_port": broker_port,
        "mqtt_tls": bool(tls),
        "mqtt_keepalive_s": 30,
        "interval_moving_s": 1,
        "interval_stationary_s": 1,
        "stationary_after_s": 60,
        "standby_after_s": 0,
        "health_interval_s": 10,
        "batch_max_records": 16,
        "obd_enable": False,
        "watchdog_timeout_s": 120,
    }
    if not tls:
        cfg["tls_ca"] = ""
    cfg.update(extra)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return cfg


class SimThread:
    """tools/modemsim's ModemSim on a private event loop in a daemon thread.

    ``faults`` collects ``(monotonic, kind, why)`` as the scenario fires them
    (polled every 20 ms inside the simulator's loop).
    """

    def __init__(self, **kw):
        self.kw = kw
        self.sim: Any = None
        self.port = 0
        self.faults = []
        self._loop = None
        self._thread = None
        self._poller = None

    def start(self, timeout=10.0):
        from modemsim import ModemSim

        ready = threading.Event()
        err = []

        def run():
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self.sim = ModemSim(**self.kw)
                self.port = loop.run_until_complete(self.sim.start())
                self._poller = loop.create_task(self._poll())
            except Exception as e:  # reported to the starting thread
                err.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="modemsim", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("modem simulator did not start in %.0f s" % timeout)
        if err:
            raise err[0]
        return self.port

    async def _poll(self):
        seen = 0
        while True:
            sc = self.sim.scenario if self.sim is not None else None
            if sc is not None and len(sc.log) > seen:
                now = time.monotonic()
                for kind, why in sc.log[seen:]:
                    self.faults.append((now, kind, why))
                seen = len(sc.log)
            await asyncio.sleep(0.02)

    def call(self, fn, timeout=5.0):
        """Run ``fn()`` inside the simulator's loop (its state is not thread-safe)."""
        if self._loop is None:
            raise RuntimeError("simulator not running")
        box = queue.Queue()

        def wrapped():
            try:
                box.put((True, fn()))
            except Exception as e:  # returned to the caller
                box.put((False, e))
        self._loop.call_soon_threadsafe(wrapped)
        ok, v = box.get(timeout=timeout)
        if not ok:
            raise v
        return v

    def stop(self, timeout=10.0):
        loop, self._loop = self._loop, None
        if loop is None:
            return
        sim = self.sim

        async def down():
            if self._poller is not None:
                self._poller.cancel()
            if sim is not None:
                await sim.stop()
        try:
            asyncio.run_coroutine_threadsafe(down(), loop).result(timeout)
        except Exception as e:  # a stuck stop must not hide the run's result
            print("e2erig: simulator stop: %r" % e, file=sys.stderr)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)


class Firmware:
    """``python3 tools/run_unix.py ...`` in its own session; output to a log file."""

    def __init__(self, workdir, modem, config, heapsize=None, seconds=0, grace=15.0, mpy=False,
                 board=None, config_as_is=False, frozen=False, extra_args=()):
        self.workdir = workdir
        self.config_as_is = config_as_is  # run_unix --config-as-is: the firmware's own fallback
        self.board = board  # a board file (default: run_unix's boards/unix.json)
        self.extra_args = list(extra_args)
        self.mpy = mpy
        self.frozen = frozen
        self.modem = modem
        self.config = config
        self.heapsize = heapsize
        self.seconds = seconds
        self.grace = grace
        self.flash = os.path.join(workdir, "flash")
        self.log_path = os.path.join(workdir, "firmware.log")
        self.proc = None
        self.rc = None

    def command(self):
        cmd = [sys.executable, RUN_UNIX, "--modem", self.modem, "--config", self.config,
               "--flash", self.flash, "--seconds", str(int(self.seconds)),
               "--grace", str(self.grace)]
        if self.heapsize:
            cmd += ["--heapsize", self.heapsize]
        if self.mpy:
            cmd.append("--mpy")
        if self.board:
            cmd += ["--board", self.board]
        if self.config_as_is:
            cmd.append("--config-as-is")
        if self.frozen:
            cmd.append("--frozen")
        return cmd + self.extra_args

    def start(self):
        log = open(self.log_path, "wb")
        try:
            # own session: the micropython grandchild can be found (and killed) by this pgid
            self.proc = subprocess.Popen(self.command(), cwd=ROOT, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        finally:
            log.close()
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=None):
        """SIGINT (run_unix passes it on: the app flushes and says "offline"), bounded wait,
        then SIGKILL to the process group this object started.  Returns the exit status."""
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout if timeout is not None else self.grace + 5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # stragglers of that group only (it is ours)
        except (ProcessLookupError, PermissionError):
            pass
        if p.poll() is None:
            p.wait(5)
        self.rc = p.returncode
        return self.rc

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def final_counts(self):
        """(made, sent, depth) from the app's last "stopped:" line, or None."""
        made = None
        for line in self.log_text().splitlines():
            if "stopped:" in line and "records made" in line:
                try:
                    t = line.split("stopped:", 1)[1].replace(",", " ").split()
                    made = (int(t[0]), int(t[3]), int(t[-1]))
                except (IndexError, ValueError):
                    pass
        return made


class Collector:
    """paho subscriber on ``<prefix>/<dev>/#``: every message with its arrival time."""

    def __init__(self, host, port, topic, on_message=None, client_id="e2e-collector"):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.topic = topic
        self.msgs = []  # dicts: t (monotonic), wall, topic, payload (parsed), retain, size
        self.lock = threading.RLock()  # predicates of wait() take snapshots
        self.changed = threading.Condition(self.lock)
        self.on_message = on_message
        self._subacked = threading.Event()
        self._connected = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        c.on_connect = lambda cl, u, f, rc, p: self._connected.set()
        c.on_subscribe = lambda cl, u, mid, rcs, p: self._subacked.set()
        c.on_message = self._on_message
        self.client = c
        c.connect(host, port, keepalive=30)
        c.loop_start()
        if not self._connected.wait(10):
            self.close()
            raise TimeoutError("subscriber could not connect to %s:%d" % (host, port))
        c.subscribe(topic, 1)
        if not self._subacked.wait(10):
            self.close()
            raise TimeoutError("no SUBACK for " + topic)

    def _on_message(self, client, userdata, m):
        raw = bytes(m.payload)
        try:
            payload = json.loads(raw.decode())
        except (UnicodeDecodeError, ValueError):
            payload = raw.decode("utf-8", "replace")
        rec = {"t": time.monotonic(), "wall": time.time(), "topic": m.topic,
               "payload": payload, "retain": bool(m.retain), "size": len(raw)}
        with self.changed:
            self.msgs.append(rec)
            self.changed.notify_all()
        if self.on_message is not None:
            try:
                self.on_message(rec)
            except Exception as e:  # a display error must not kill paho's thread
                print("e2erig: on_message: %r" % e, file=sys.stderr)

    def publish(self, topic, payload, qos=1, timeout=10):
        self.client.publish(topic, payload, qos=qos).wait_for_publish(timeout)

    def wait(self, pred, timeout):
        """Bounded wait until ``pred()`` holds (re-checked on every message); returns it."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                v = pred()
                left = deadline - time.monotonic()
                if v or left <= 0:
                    return v
                self.changed.wait(min(left, 0.25))

    def snapshot(self):
        with self.lock:
            return list(self.msgs)

    def save_jsonl(self, path):
        """What arrived, one ``{"topic", "payload", "t", "retain"}`` per line (tripview input)."""
        with open(path, "w") as f:
            for m in self.snapshot():
                f.write(json.dumps({"topic": m["topic"], "payload": m["payload"],
                                    "t": round(m["wall"], 3), "retain": m["retain"]}) + "\n")

    def close(self):
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


def freematics_records(text):
    """The records of one Freematics text payload (RECORDS.md: ``DEV#0:seq,A:lat,B:lon,
    D:kmh,...*CS``, PID 0 starts each record; what the SIM800 sends) as dicts with ``seq``
    and, with a fix, ``fix`` in the JSON format's units; [] when it is not that format."""
    _dev, sep, body = text.partition("#")
    if not sep:
        return []
    out = []
    for item in body.rsplit("*", 1)[0].split(","):
        pid, _, val = item.partition(":")
        try:
            if pid == "0":
                out.append({"seq": int(val)})
            elif out and pid in ("A", "B", "D"):
                key, scale = {"A": ("lat_e7", 1e7), "B": ("lon_e7", 1e7),
                              "D": ("speed_ckmh", 100)}[pid]
                out[-1].setdefault("fix", {})[key] = int(round(float(val) * scale))
        except ValueError:
            continue
    return out


def telemetry(msgs):
    """[(arrival t, seq, record)] of every record in every telemetry message, in order."""
    out = []
    for m in msgs:
        if not m["topic"].endswith("/telemetry"):
            continue
        p = m["payload"]
        if isinstance(p, str):
            p = freematics_records(p)
        for r in (p if isinstance(p, list) else [p]):
            if isinstance(r, dict) and isinstance(r.get("seq"), int):
                out.append((m["t"], r["seq"], r))
    return out


def analyze(msgs, first_seq=0):
    """Delivery figures: records (arrived, incl. duplicates), unique, gaps (missing seqs in
    first_seq..max), dups, reconnects ("online" announcements after the first)."""
    recs = telemetry(msgs)
    seqs = [s for _, s, _ in recs]
    uniq = set(seqs)
    top = max(uniq) if uniq else first_seq - 1
    gaps = sorted(set(range(first_seq, top + 1)) - uniq)
    online = sum(1 for m in msgs if m["topic"].endswith("/status") and m["payload"] == "online"
                 and not m["retain"])
    return {"records": len(seqs), "unique": len(uniq), "gaps": len(gaps),
            "missing": gaps[:20], "dups": len(seqs) - len(uniq), "max_seq": top,
            "reconnects": max(0, online - 1)}


def recovery_ms(msgs, faults):
    """From the first fault's effect ending (firing + ``duration_s`` for lasting faults) to
    the first telemetry message that arrived after it, and after the reconnect's "online"
    when the link was re-established (a publish already in flight does not count as
    recovered); None when nothing came after."""
    if not faults:
        return None
    t0 = faults[0]
    online = [m["t"] for m in msgs if m["topic"].endswith("/status")
              and m["payload"] == "online" and not m["retain"]]
    back = [t for t in online if t > t0] if any(t <= t0 for t in online) else []
    since = back[0] if back else t0
    after = [m["t"] for m in msgs if m["topic"].endswith("/telemetry") and m["t"] > since]
    return int((after[0] - t0) * 1000) if after else None


def max_silence_ms(msgs, since=None):
    """Longest pause between consecutive telemetry messages (from ``since`` on)."""
    ts = [m["t"] for m in msgs if m["topic"].endswith("/telemetry")]
    if since is not None:
        ts = [t for t in ts if t >= since - 5]
    return int(max((b - a for a, b in zip(ts, ts[1:], strict=False)), default=0) * 1000)


class Rig:
    """One run: simulator + firmware + subscriber against a broker started by the caller."""

    def __init__(self, broker, scenario=None, persona="SIM7600E", device_id="e2e-dev",
                 heapsize=None, tls=False, track=None, fast=True, seconds=0, workdir=None,
                 on_message=None, config_extra=None, sim_kw=None, mpy=False, board=None,
                 frozen=False, fw_args=()):
        self.broker = broker
        self.board = board
        self.fw_args = fw_args
        self.mpy = mpy
        self.frozen = frozen
        self.scenario = scenario
        self.persona = persona
        self.device_id = device_id
        self.heapsize = heapsize
        self.tls = tls
        self.track = track
        self.fast = fast
        self.seconds = seconds
        self.on_message = on_message
        self.config_extra = config_extra or {}
        self.sim_kw = sim_kw or {}
        self.own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="e2e-")
        self.prefix = "tlog/%s/" % device_id
        self.sim: Any = None  # SimThread, Firmware, Collector once started
        self.fw: Any = None
        self.sub: Any = None
        self.t_start = None

    def start(self):
        b = self.broker
        tls_addr = (b.host, b.tls_port) if b.tls_port else None
        self.sim = SimThread(persona=self.persona, broker=(b.host, b.port), broker_tls=tls_addr,
                             scenario=self.scenario, fast=self.fast, track=self.track,
                             **self.sim_kw)
        port = self.sim.start()
        if self.tls:
            with open(b.ca_path, "rb") as f:
                ca = f.read()
            # stored on the module beforehand (AT+CCERTDOWN files survive reboots)
            self.sim.call(lambda: self.sim.sim.modem.certs.__setitem__("ca.pem", ca))
        self.sub = Collector(b.host, b.port, self.prefix + "#", on_message=self.on_message,
                             client_id="e2e-sub-%d" % os.getpid())
        cfg_path = os.path.join(self.workdir, "config.json")
        port_b = b.tls_port if self.tls else b.port
        make_config(cfg_path, self.device_id, port_b, tls=self.tls, **self.config_extra)
        self.fw = Firmware(self.workdir, "tcp:127.0.0.1:%d" % port, cfg_path,
                           heapsize=self.heapsize, seconds=self.seconds, mpy=self.mpy,
                           board=self.board, frozen=self.frozen, extra_args=self.fw_args)
        self.t_start = time.monotonic()
        self.fw.start()
        return self

    # -- observations --------------------------------------------------------------------
    def sim_commands(self):
        """Command lines the simulator received so far, in order."""
        return self.sim.call(lambda: list(self.sim.sim.commands))

    def fault_times(self):
        return list(self.sim.faults) if self.sim is not None else []

    def fault_end(self, kinds=None):
        """Monotonic time the first fault (of ``kinds``) stopped acting, or None."""
        scen = self.scenario if isinstance(self.scenario, dict) else {}
        specs = {f["kind"]: f for f in scen.get("faults", [])}
        for t, kind, _ in self.fault_times():
            if kinds is None or kind in kinds:
                d = specs.get(kind, {}).get("duration_s")
                return t + (float(d) if kind in _LASTING and d is not None else 0.0)
        return None

    def records_after(self, t):
        return sum(1 for m in self.sub.snapshot()
                   if m["topic"].endswith("/telemetry") and m["t"] > t)

    def wait_until(self, pred, timeout):
        return self.sub.wait(lambda: pred() or not self.fw.running(), timeout) and pred()

    def stop_firmware(self):
        return self.fw.stop() if self.fw is not None else None

    def summary(self):
        msgs = self.sub.snapshot() if self.sub is not None else []
        a = analyze(msgs)
        end = self.fault_end()
        a["recovery_ms"] = recovery_ms(msgs, [end] if end is not None else [])
        a["max_silence_ms"] = max_silence_ms(msgs)
        a["faults"] = len(self.fault_times())
        return a

    def close(self):
        """Stop everything this rig started (firmware by pid first, then sim, subscriber)."""
        try:
            if self.fw is not None:
                self.fw.stop()
        finally:
            try:
                if self.sim is not None:
                    self.sim.stop()
            finally:
                if self.sub is not None:
                    self.sub.close()
                if self.own_dir and os.environ.get("E2E_KEEP") != "1":
                    shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
