"""Drain benchmark: how much of the UART's line rate the uplink turns into payload.

After an outage the spool holds a backlog; the uplink should keep the UART
busy with payload, not with AT framing and waits (target: payload at 70 % or
more of the line rate).  This measures it end to end: the backlog is written
into the spool of a fresh flash folder (the firmware's own spool code, on
CPython), then the firmware runs on the unix port against the modem simulator
(pacing both directions at the baud rate, 20 ms per answer, MQTT bridged to a
real Mosquitto, optionally with a cellular round trip added to each PUBACK) and
a paho subscriber timestamps every telemetry message.

The drain rate is the telemetry payload that arrived after the first telemetry
message up to the one that completed the backlog, over that time.  The
baseline in the same run is the same firmware with one record per publish.
One JSON object per line:

    {"name": "drain", "impl": "batched", "baud": 115200, "records": 600,
     "payload_bytes": ..., "seconds": ..., "payload_bytes_per_s": ...,
     "line_rate_bytes_per_s": 11520, "payload_share_of_line_rate": 0.8, ...}
    {"name": "drain_speedup", "batched_over_one_per_publish": ...}

Run: python3 tools/dev.py bench-drain [--baud 115200] [--records 600] [--net-rtt-ms 0]
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (HERE, os.path.join(ROOT, "lib"), os.path.join(ROOT, "firmware")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from e2erig import Rig, make_config, telemetry  # noqa: E402

DEVICE = "drain-dev"


def prefill(flash, cfg_path, n, t0=1_780_000_000):
    """Write ``n`` realistic records (seq 0..n-1, GNSS fix, battery, signal, OBD) into
    the spool under ``flash``, as the firmware would have during an outage."""
    from tlog import config, records, spool

    cfg = config.load(cfg_path)
    os.makedirs(flash, exist_ok=True)
    sp = spool.from_config(flash + "/spool", cfg)
    buf = bytearray(records.PACKED_MAX)
    r = records.Record()
    for i in range(n):
        r.clear()
        r.seq = i
        r.set_time(t0 + i, records.TS_GNSS)
        r.set_fix(481234567 + 97 * i, 115678901 + 131 * i, alt_dm=5190 + i % 40,
                  speed_ckmh=4200 + (i * 37) % 3000, course_cdeg=(i * 113) % 36000,
                  sats=9, hdop_x10=8)
        r.batt_mv = 12600 - i % 300
        r.rssi_dbm = -71 - i % 9
        r.temp_dc = 412
        r.add_obd(0x0C, 1800 + (i * 53) % 1500)
        r.add_obd(0x0D, 42 + i % 30)
        r.add_obd(0x05, 88)
        k = records.pack_into(r, buf, 0)
        sp.append(memoryview(buf)[:k])
    sp.flush()
    depth = sp.depth()
    sp.close()
    return depth


def drain_window(msgs, n):
    """(payload bytes, records, publishes, seconds) from the first telemetry message to
    the one that completed seq 0..n-1; None while the backlog is incomplete."""
    tel = sorted((m for m in msgs if m["topic"].endswith("/telemetry")), key=lambda m: m["t"])
    seqs = [[seq for _t, seq, _r in telemetry([m])] for m in tel]
    seen = set()
    last = None
    for i, ms in enumerate(seqs):
        seen.update(q for q in ms if q < n)
        if len(seen) == n:
            last = i
            break
    if last is None or last < 1:
        return None
    # the first message's bytes left before the clock started
    nbytes = sum(m["size"] for m in tel[1:last + 1])
    nrec = sum(len(ms) for ms in seqs[1:last + 1])
    return nbytes, nrec, last, tel[last]["t"] - tel[0]["t"]


PROGRESS_S = 3.0  # a line on stderr this often while a run goes on (stdout stays JSON)


def progress(msg):
    sys.stderr.write("[bench-drain] %s\n" % msg)
    sys.stderr.flush()


def _wait_with_progress(rig, impl, n, timeout_s):
    """``rig.wait_until`` the backlog is delivered, in slices, saying how far it got."""
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    progress("%s: draining %d records (at most %d s)" % (impl, n, timeout_s))
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if rig.wait_until(lambda: drain_window(rig.sub.snapshot(), n) is not None,
                          min(PROGRESS_S, left)):
            return True
        if not rig.fw.running():
            return False
        got = len(telemetry(rig.sub.snapshot()))
        progress("%s: %d/%d records at the broker after %.0f s"
                 % (impl, got, n, time.monotonic() - t0))


def run_one(broker, impl, n, baud, batch_records, timeout_s, rtt_ms=0):
    work = tempfile.mkdtemp(prefix="drain-")
    extra = {"batch_max_records": batch_records, "batch_max_bytes": 4096,
             "health_interval_s": 3600, "interval_moving_s": 5, "interval_stationary_s": 5}
    try:
        cfg_path = os.path.join(work, "config.json")
        make_config(cfg_path, DEVICE, broker.port, **extra)
        depth = prefill(os.path.join(work, "flash"), cfg_path, n)
        if depth != n:
            raise SystemExit("prefill: spool holds %d records, expected %d" % (depth, n))
        rig = Rig(broker, device_id=DEVICE, fast=False, workdir=work, config_extra=extra,
                  sim_kw={"baud": baud, "pace_input": True, "net_rtt": rtt_ms / 1000.0})
        try:
            rig.start()
            ok = _wait_with_progress(rig, impl, n, timeout_s)
            w = drain_window(rig.sub.snapshot(), n)
            if not ok or w is None:
                tail = rig.fw.log_text()[-2000:]
                raise SystemExit("%s: backlog of %d not delivered within %d s\n%s"
                                 % (impl, n, timeout_s, tail))
        finally:
            rig.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    nbytes, nrec, pubs, secs = w
    line = baud / 10.0
    return {"name": "drain", "impl": impl, "baud": baud, "net_rtt_ms": rtt_ms, "records": n,
            "batch_max_records": batch_records, "publishes": pubs,
            "records_per_publish": round(nrec / pubs, 1), "payload_bytes": nbytes,
            "seconds": round(secs, 3), "payload_bytes_per_s": round(nbytes / secs, 1),
            "line_rate_bytes_per_s": line,
            "payload_share_of_line_rate": round(nbytes / secs / line, 3)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--records", type=int, default=600, help="backlog for the batched run")
    ap.add_argument("--baseline-records", type=int, default=60,
                    help="backlog for the one-record-per-publish run")
    ap.add_argument("--net-rtt-ms", type=int, default=0,
                    help="cellular round trip the simulator adds to each publish's PUBACK")
    a = ap.parse_args(argv)
    from broker import Broker

    broker = Broker().start()
    try:
        t0 = time.monotonic()
        # bound: the payload at a tenth of the line rate, plus boot and connect
        limit = int(a.records * 400 / (a.baud / 10.0) * 10) + 90 + a.records * a.net_rtt_ms // 1000
        batched = run_one(broker, "batched", a.records, a.baud, 32, limit, a.net_rtt_ms)
        print(json.dumps(batched), flush=True)
        base = run_one(broker, "one_per_publish", a.baseline_records, a.baud, 1, limit,
                       a.net_rtt_ms)
        print(json.dumps(base), flush=True)
        print(json.dumps({
            "name": "drain_speedup",
            "batched_over_one_per_publish": round(
                batched["payload_bytes_per_s"] / base["payload_bytes_per_s"], 2),
            "target_share": 0.7,
            "batched_meets_target": batched["payload_share_of_line_rate"] >= 0.7,
            "wall_s": round(time.monotonic() - t0, 1)}), flush=True)
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
