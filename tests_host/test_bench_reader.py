"""The AT reader benchmark runs on the unix port and prints what the README says it prints.

Speed is never asserted here (benchmarks compare within their own run); what is
asserted is the contract: one JSON object per reader, 0 allocated bytes per line
for every project reader, the naive baseline allocating, every line counted.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_prints_every_reader_and_the_speedup():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "dev.py"), "bench"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    recs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    by = {r["impl"]: r for r in recs if r["name"] == "at_reader"}
    assert set(by) == {"project", "project_chunked", "project_no_command", "naive"}
    for impl in ("project", "project_chunked", "project_no_command"):
        assert by[impl]["alloc_bytes_per_line"] == 0, by[impl]
        assert by[impl]["mb_per_s"] > 0 and by[impl]["impl_platform"] == "micropython"
    assert by["project"]["lines_per_pass"] == by["project_chunked"]["lines_per_pass"] > 1000
    assert by["naive"]["alloc_bytes_per_line"] > 100  # the baseline allocates per line
    assert len({r["bytes_per_pass"] for r in by.values()}) == 1  # the same bytes for all
    speed = [r for r in recs if r["name"] == "at_reader_speedup"]
    assert len(speed) == 1 and speed[0]["project_over_naive"] > 0
