"""The AT reader benchmark runs on the unix port and prints what the README says it prints.

Speed is never asserted here (benchmarks compare within their own run); what is
asserted is the contract: one JSON object per mix and reader, 0 allocated bytes per
line for every project reader, the baselines (floor, naive) in the same run, the
naive loop allocating, every line counted, and callgrind's instruction counts when
valgrind is installed (one cheap pair here; ``dev.py bench`` runs them all).
"""

import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench(*args):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "dev.py"), "bench",
                          "--quick"] + list(args),
                         capture_output=True, text=True, timeout=600, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_bench_prints_every_reader_per_mix_and_instruction_counts():
    recs = _bench("--cg=urc:floor")
    by = {(r["mix"], r["impl"]): r for r in recs if r["name"] == "at_reader"}
    assert set(by) == {("command", "project"), ("command", "project_chunked"),
                       ("command", "project_no_command"), ("command", "floor"),
                       ("command", "naive"), ("urc", "project"), ("urc", "project_inbox_full"),
                       ("urc", "reader_only"),
                       ("urc", "floor"), ("urc", "naive")}
    for key, r in by.items():
        assert r["mb_per_s"] > 0 and r["impl_platform"] == "micropython"
        if key[1] != "naive":
            assert r["alloc_bytes_per_line"] == 0, r
    assert by[("command", "naive")]["alloc_bytes_per_line"] > 100  # the baseline allocates
    assert by[("urc", "naive")]["alloc_bytes_per_line"] > 100
    assert by[("command", "project")]["lines_per_pass"] == \
        by[("command", "project_chunked")]["lines_per_pass"] > 1000
    assert by[("urc", "project")]["lines_per_pass"] > 700
    for mix in ("command", "urc"):
        assert len({r["bytes_per_pass"] for k, r in by.items() if k[0] == mix}) == 1
    cg = [r for r in recs if r["name"] == "at_reader_instructions"]
    if shutil.which("valgrind"):
        assert len(cg) == 1 and cg[0]["impl"] == "floor" and cg[0]["over_floor"] == 1.0
        assert 100_000 < cg[0]["instructions_per_pass"] < 10_000_000
    else:
        assert cg == [{"name": "at_reader_instructions", "skipped": "valgrind not installed"}]
