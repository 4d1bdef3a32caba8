"""tools/demo.py end to end (broker, simulator, firmware on the unix port, subscriber), short
and with the simulator's --fast timing: the summary, the command acks, the saved JSON lines
(tripview's input) and no process left behind; and the clear message when parts are missing."""

import json
import os
import subprocess
import sys

import demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ours(workdir):
    """Processes still running that were started for this workdir (by their command line)."""
    left = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(workdir) in cmd:
            left.append((int(pid), cmd))
    return left


def test_demo_runs_end_to_end_and_cleans_up(tmp_path):
    save = tmp_path / "received.jsonl"
    work = tmp_path / "run"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "demo.py"), "--seconds", "10",
                        "--fast", "--save", str(save), "--workdir", str(work)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "broker: " in out and "modem simulator: SIM7600E" in out, out
    assert '"pong": true' in out, out  # the ping command's ack arrived
    assert "gaps in seq        0" in out, out
    assert "duplicates         0" in out, out
    recs = []
    with open(save) as f:
        for line in f:
            m = json.loads(line)
            if m["topic"] == "tlog/%s/telemetry" % demo.DEVICE:
                recs.extend(m["payload"])
    seqs = [x["seq"] for x in recs]
    assert seqs and seqs == list(range(len(seqs))), seqs
    assert any("fix" in x for x in recs), recs[-1]
    assert "records received   %d" % len(seqs) in out, out
    assert _ours(work) == []


def test_demo_names_what_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "ROOT", str(tmp_path))
    assert demo.main(["--seconds", "1"]) == 2
    out = capsys.readouterr().out
    assert "cannot run the end-to-end demo yet" in out
    assert "firmware/tlog/app.py" in out and "tools/run_unix.py" in out
    assert "python3 tools/dev.py bootstrap" in out  # no micropython under tmp_path/.venv
