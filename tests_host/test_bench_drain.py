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
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench_drain.py"),
                        "--records", "80", "--baseline-records", "6"],
                       cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    recs = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    by = {x["impl"]: x for x in recs if x["name"] == "drain"}
    assert set(by) == {"batched", "one_per_publish"}
    b, o = by["batched"], by["one_per_publish"]
    assert b["records"] == 80 and o["records"] == 6
    assert b["records_per_publish"] > 5 and o["records_per_publish"] == 1.0
    for x in (b, o):
        assert x["payload_bytes"] > 0 and x["seconds"] > 0
        assert x["line_rate_bytes_per_s"] == x["baud"] / 10
        assert abs(x["payload_share_of_line_rate"]
                   - x["payload_bytes"] / x["seconds"] / x["line_rate_bytes_per_s"]) < 0.01
    speed = [x for x in recs if x["name"] == "drain_speedup"]
    assert len(speed) == 1 and speed[0]["target_share"] == 0.7
