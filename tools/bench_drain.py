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

One run makes a row per board ``uart.baud`` (115200, 921600: the simulated
modem powers on at 115200 and the firmware switches with AT+IPR after
bring-up, atmq.baud; a row whose line did not end at that speed fails the run),
per round trip (0, 100, 300 ms), per ``batch_max_bytes`` (4096; 10240, the
A76xx limit of 002 s.2.1.11) and per publishes in flight (``uplink_inflight`` 1;
2: a second CMQTT session on client index 1, tlog.lane), on the A7600 persona.
Each row also carries the reader's gaps measured under the engine
(firmware/tlog/readgap.py: after a read that returned data, the time until the
next read, p99 and max) against the time ``uart.rxbuf`` (1024 bytes) takes to
fill at that baud, and the receive ring's overflow counter.  One JSON object
per line:

    {"name": "drain", "impl": "batched", "baud": 115200, "net_rtt_ms": 0,
     "batch_max_bytes": 10240, "records": 600, "payload_bytes": ..., "seconds": ...,
     "line_rate_bytes_per_s": 11520, "payload_share_of_line_rate": 0.8,
     "read_gap_p99_ms": ..., "read_gap_max_ms": ..., "rxbuf_fill_ms": 88.9,
     "ring_overflows": 0, ...}
    {"name": "drain_speedup", "batched_over_one_per_publish": ..., ...}

``BENCH_DRAIN_TRACE=FILE`` also writes each batched row's simulator timeline (the
commands and URCs with their times, JSON) to ``FILE.batched.<baud>.<in flight>``: where
a publish's time goes (TOPIC, PAYLOAD, PUB, the wait for +CMQTTPUB, the firmware's
turnaround).

Run: python3 tools/dev.py bench-drain [--bauds 115200,921600] [--net-rtts-ms 0,100,300]
     [--batch-bytes 4096,10240] [--inflight 1,2] [--records 600] [--persona A7600]
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

import e2erig  # noqa: E402
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


RXBUF = 1024  # boards/*.json uart.rxbuf: what the UART holds while the reader is away


class _BoardFirmware(e2erig.Firmware):
    """The rig's firmware with a board file of this run (uart.baud)."""

    board_path: "str | None" = None

    def command(self):
        cmd = super().command()
        if self.board_path and "--board" not in cmd:
            cmd += ["--board", self.board_path]
        return cmd


def write_board(work, baud):
    """boards/unix.json with ``uart.baud``: the firmware opens the link at 115200 and
    switches with AT+IPR after bring-up (atmq.baud) when it asks for more."""
    with open(os.path.join(ROOT, "boards", "unix.json")) as f:
        b = json.load(f)
    b["uart"]["baud"] = baud
    path = os.path.join(work, "board.json")
    with open(path, "w") as f:
        json.dump(b, f)
    return path


def read_gaps(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def run_one(broker, impl, n, baud, batch_records, timeout_s, rtt_ms=0, batch_bytes=4096,
            persona="A7600", inflight=1):
    work = tempfile.mkdtemp(prefix="drain-")
    extra = {"batch_max_records": batch_records, "batch_max_bytes": batch_bytes,
             "uplink_inflight": inflight,
             "health_interval_s": 3600, "interval_moving_s": 5, "interval_stationary_s": 5}
    gap_path = os.path.join(work, "read_gaps.json")
    try:
        cfg_path = os.path.join(work, "config.json")
        make_config(cfg_path, DEVICE, broker.port, **extra)
        depth = prefill(os.path.join(work, "flash"), cfg_path, n)
        if depth != n:
            raise SystemExit("prefill: spool holds %d records, expected %d" % (depth, n))
        os.environ["TLOG_READ_GAPS"] = gap_path  # firmware/tlog/readgap.py, via run_unix
        _BoardFirmware.board_path = write_board(work, baud)
        e2erig.Firmware = _BoardFirmware
        # the simulated modem powers on at 115200 (its AT+IPREX), like a real one
        rig = Rig(broker, device_id=DEVICE, fast=False, workdir=work, config_extra=extra,
                  persona=persona,
                  sim_kw={"baud": 115200, "pace_input": True, "net_rtt": rtt_ms / 1000.0})
        try:
            rig.start()
            ok = _wait_with_progress(rig, impl, n, timeout_s)
            w = drain_window(rig.sub.snapshot(), n)
            if not ok or w is None:
                tail = rig.fw.log_text()[-2000:]
                raise SystemExit("%s: backlog of %d not delivered within %d s\n%s"
                                 % (impl, n, timeout_s, tail))
            line_baud = rig.sim.call(lambda: rig.sim.sim.opts.baud)
            if line_baud != baud:
                raise SystemExit("%s: the line ran at %d baud, not %d (AT+IPR refused?)\n%s"
                                 % (impl, line_baud, baud, rig.fw.log_text()[-2000:]))
            time.sleep(0.5)  # the meter writes its file at the end of each burst
            # publishes that went on the second session (client index 1, tlog.lane)
            second = sum(1 for c in rig.sim_commands() if c.startswith("AT+CMQTTPUB=1,"))
            trace = os.environ.get("BENCH_DRAIN_TRACE")  # the modem side's timeline (phases)
            if trace:
                log = rig.sim.call(lambda: list(rig.sim.sim.modem.log))
                with open("%s.%s.%d.%d" % (trace, impl, baud, inflight), "w") as f:
                    json.dump(log, f)
        finally:
            rig.close()
        gaps = read_gaps(gap_path)
    finally:
        os.environ.pop("TLOG_READ_GAPS", None)
        shutil.rmtree(work, ignore_errors=True)
    nbytes, nrec, pubs, secs = w
    line = baud / 10.0
    fill_ms = round(RXBUF * 10.0 / baud * 1000, 1)
    return {"name": "drain", "impl": impl, "persona": persona, "baud": baud,
            "net_rtt_ms": rtt_ms, "records": n, "in_flight": inflight,
            "batch_max_records": batch_records, "batch_max_bytes": batch_bytes,
            "publishes": pubs, "publishes_second_session": second,
            "records_per_publish": round(nrec / pubs, 1), "payload_bytes": nbytes,
            "seconds": round(secs, 3), "payload_bytes_per_s": round(nbytes / secs, 1),
            "line_rate_bytes_per_s": line,
            "payload_share_of_line_rate": round(nbytes / secs / line, 3),
            "read_gap_p99_ms": gaps.get("gap_p99_ms"), "read_gap_max_ms": gaps.get("gap_max_ms"),
            "read_gaps": gaps.get("gaps"), "read_gaps_with_data": gaps.get("data_gaps"),
            "read_gap_with_data_max_ms": gaps.get("data_gap_max_ms"),
            "read_max_bytes": gaps.get("max_read"),
            "rxbuf_fill_ms": fill_ms,
            "read_gap_max_below_rxbuf_fill": (gaps.get("gap_max_ms") or 1e9) < fill_ms,
            "ring_overflows": gaps.get("ring_overflows")}


def _limit_s(records, baud, rtt_ms, batch_bytes):
    # bound: the payload at a tenth of the line rate, each publish's round trip, boot
    return int(records * 400 / (baud / 10.0) * 10) + 90 + (
        records * 270 // batch_bytes + 1) * rtt_ms * 3 // 1000


def _ints(text):
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv=None):
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--bauds", default="115200,921600",
                    help="board uart.baud of each row (the link starts at 115200, AT+IPR)")
    ap.add_argument("--net-rtts-ms", default="0,100,300",
                    help="cellular round trips the simulator adds to each publish's PUBACK")
    ap.add_argument("--batch-bytes", default="4096,10240",
                    help="batch_max_bytes of the rows (10240: the A76xx limit, 002 s.2.1.11)")
    ap.add_argument("--persona", default="A7600",
                    help="simulated modem (A7600: 921600 in its AT+IPR list, 10240-byte "
                         "payloads; SIM7600E: 460800 and 4096, manual 003)")
    ap.add_argument("--inflight", default="1,2",
                    help="uplink_inflight of the rows (2: a second CMQTT session, tlog.lane)")
    ap.add_argument("--records", type=int, default=600, help="backlog for the batched rows")
    ap.add_argument("--baseline-records", type=int, default=60,
                    help="backlog for the one-record-per-publish row (115200, no round trip)")
    ap.add_argument("--baud", type=int, help="one baud rate (same as --bauds B)")
    ap.add_argument("--net-rtt-ms", type=int, help="one round trip (same as --net-rtts-ms MS)")
    a = ap.parse_args(argv)
    bauds = [a.baud] if a.baud else _ints(a.bauds)
    rtts = [a.net_rtt_ms] if a.net_rtt_ms is not None else _ints(a.net_rtts_ms)
    sizes = _ints(a.batch_bytes)
    windows = _ints(a.inflight)
    from broker import Broker

    broker = Broker().start()
    try:
        t0 = time.monotonic()
        rows = []
        for baud in bauds:
            for rtt in rtts:
                for size in sizes:
                    for win in windows:
                        # records per publish: enough to fill the bytes (~270 B per record)
                        per = min(256, max(32, size // 128))
                        row = run_one(broker, "batched", a.records, baud, per,
                                      _limit_s(a.records, baud, rtt, size), rtt, size,
                                      a.persona, win)
                        rows.append(row)
                        print(json.dumps(row), flush=True)
        base_baud = min(bauds)
        base = run_one(broker, "one_per_publish", a.baseline_records, base_baud, 1,
                       _limit_s(a.baseline_records, base_baud, 0, 256) * 3, 0, 4096, a.persona)
        print(json.dumps(base), flush=True)
        ref = [r for r in rows if r["baud"] == base_baud and r["net_rtt_ms"] == 0] or rows
        best = max(ref, key=lambda r: r["payload_bytes_per_s"])
        goal = [r for r in rows if r["baud"] == 115200 and r["net_rtt_ms"] == 300]
        print(json.dumps({
            "name": "drain_speedup",
            "batched_over_one_per_publish": round(
                best["payload_bytes_per_s"] / base["payload_bytes_per_s"], 2),
            "target_share": 0.7,
            "batched_meets_target": best["payload_share_of_line_rate"] >= 0.7,
            "goal_115200_rtt300_share": max((r["payload_share_of_line_rate"] for r in goal),
                                            default=None),
            "read_gap_max_below_rxbuf_fill_all": all(
                r["read_gap_max_below_rxbuf_fill"] for r in rows + [base]),
            "ring_overflows_total": sum(r["ring_overflows"] or 0 for r in rows + [base]),
            "wall_s": round(time.monotonic() - t0, 1)}), flush=True)
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
