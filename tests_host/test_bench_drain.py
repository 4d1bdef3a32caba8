"""The drain benchmark delivers its whole backlog and prints what the README says it prints.

No speed is asserted (benchmarks compare within their own run): the contract is
that every prefilled record reached the broker (the tool exits non-zero
otherwise), batching put many records in each publish and the baseline one,
and the figures are self-consistent.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_drain_bench_small_backlog():
    # a CI-sized subset of the rows: both baud rates (the 921600 row switches the link
    # with AT+IPR after bring-up; the tool exits non-zero when the line did not), no
    # round trip, the A76xx payload limit
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench_drain.py"),
                        "--records", "80", "--baseline-records", "6",
                        "--bauds", "115200,921600", "--net-rtts-ms", "0",
                        "--batch-bytes", "10240"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    recs = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    rows = [x for x in recs if x["name"] == "drain"]
    batched = {x["baud"]: x for x in rows if x["impl"] == "batched"}
    base = [x for x in rows if x["impl"] == "one_per_publish"]
    assert sorted(batched) == [115200, 921600] and len(base) == 1
    b, o = batched[115200], base[0]
    assert b["records"] == 80 and o["records"] == 6
    assert b["records_per_publish"] > 5 and o["records_per_publish"] == 1.0
    assert b["batch_max_bytes"] == 10240 and b["payload_bytes"] / b["publishes"] > 4096
    for x in rows:
        # the reader's gaps were measured under the engine, the receive ring never overflowed
        assert x["read_gaps"] > 0 and x["read_gap_max_ms"] >= x["read_gap_p99_ms"] > 0
        assert x["rxbuf_fill_ms"] == round(1024 * 10.0 / x["baud"] * 1000, 1)
        assert x["ring_overflows"] == 0
        # the second session is made only on a backlog of two batches (80 < 2 x 80 here)
        assert x["publishes_second_session"] == 0 or x["in_flight"] == 2
    for x in (b, o, batched[921600]):
        assert x["payload_bytes"] > 0 and x["seconds"] > 0
        assert x["line_rate_bytes_per_s"] == x["baud"] / 10
        assert abs(x["payload_share_of_line_rate"]
                   - x["payload_bytes"] / x["seconds"] / x["line_rate_bytes_per_s"]) < 0.01
    speed = [x for x in recs if x["name"] == "drain_speedup"]
    assert len(speed) == 1 and speed[0]["target_share"] == 0.7
    assert speed[0]["ring_overflows_total"] == 0
