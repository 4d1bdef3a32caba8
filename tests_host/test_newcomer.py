"""A newcomer's first commands: every documented tool refuses a mistake in one line that
names it (no traceback), and works as printed under plain python3 (issue 13)."""

import json
import os
import random
import shutil
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "tools")
sys.path.insert(0, TOOLS)
sys.path.insert(0, os.path.join(ROOT, "lib"))

import boardarg  # noqa: E402
import demo  # noqa: E402
from atmq import board as boardmod  # noqa: E402
from atmq import jsonstrict  # noqa: E402

RUN_UNIX = os.path.join(TOOLS, "run_unix.py")
# a python3 outside the venv (no paho, no matplotlib), as a user types it
SYSTEM_PY = shutil.which("python3", path="/usr/bin:/bin") or sys.executable


def run_unix(*args):
    return subprocess.run([sys.executable, RUN_UNIX] + list(args), capture_output=True,
                          text=True, timeout=60)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("args, says", [
    (["--config", "nosuch.json"], "config file not found: nosuch.json"),
    (["--modem", "tcp:127.0.0.1:%d" % closed_port()], "cannot connect"),
    (["--modem", "127.0.0.1:40347"], "needs the tcp: prefix: --modem tcp:127.0.0.1:40347"),
    (["--modem", "tcp:nohost"], "expected tcp:HOST:PORT"),
    (["--modem", "/dev/nosuch-pty"], "/dev/nosuch-pty: no such pty or device"),
    ([], "the board's uart.device (no --modem given) tcp:127.0.0.1:7600"),
    (["--board", "freematics-one-pluss"], "did you mean freematics-one-plus?"),
    (["--board", "freematics-one-plus"], "has no uart.device for the unix port"),
])
def test_run_unix_refuses_bad_arguments_naming_them(args, says, tmp_path):
    if not args:  # the board's default address must be free for this case
        try:
            socket.create_connection(("127.0.0.1", 7600), timeout=1).close()
            pytest.skip("something listens on 127.0.0.1:7600")
        except OSError:
            pass
    r = run_unix(*(args + ["--flash", str(tmp_path / "flash")]))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert says in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "flash").exists()  # nothing started, nothing made


def test_run_unix_refuses_a_config_the_firmware_would_refuse(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"mqtt_port": "1883"}')
    r = run_unix("--config", str(cfg), "--modem", "tcp:127.0.0.1:%d" % closed_port())
    assert r.returncode == 2
    assert "config key 'mqtt_port': must be an integer 1..65535, got '1883'" in r.stderr


def test_the_modem_probe_names_the_address_the_port_answers_on():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    try:
        import run_unix as ru
        ru.check_modem("tcp:127.0.0.1:%d" % srv.getsockname()[1], True)  # no raise
    finally:
        srv.close()


def test_board_names_and_paths_resolve_one_way():
    p = boardarg.resolve("unix")
    assert p.endswith(os.path.join("boards", "unix.json"))
    assert boardarg.resolve(p) == p
    assert boardarg.resolve("unix.json").endswith("unix.json")
    with pytest.raises(ValueError, match="did you mean lilygo-t-sim7600x"):
        boardarg.resolve("lilygo-t-sim7600")


@pytest.mark.parametrize("persona", list(demo.PERSONAS))
def test_demo_board_per_persona_loads_with_the_right_family(persona, tmp_path):
    b = boardmod.load(demo.persona_board(persona, str(tmp_path)))
    assert b["modem"]["family"] == ("sm" if persona == "SIM800" else "cmqtt")


def test_demo_status_line_fits_and_says_the_spool_estimate():
    live = demo.Live(0.0)
    live.health = {"spool_depth": 3, "uplink": {"sent": 40}, "reconnects": 0}
    live.health_t = live.t0 = __import__("time").monotonic() - 20  # report 20 s old
    live.fix = {"lat_e7": -338688000, "lon_e7": 1512093000, "speed_ckmh": 5430}
    for width in (40, 80, 132):
        line = live.line(width)
        assert len(line) < width and "\n" not in line
    assert "queued ~23" in live.line(80)  # 3 + 20 sampled since, nothing arrived since


@pytest.mark.parametrize("tool, args, says", [
    (["tools/tripview.py"], ["--help"], "usage: tripview.py"),
    (["tools/modemsim"], ["--help"], "usage: modemsim"),
    (["tools/demo.py"], ["--help"], "usage: demo.py"),
])
def test_documented_commands_work_under_plain_python3(tool, args, says):
    """The system python3 lacks paho/matplotlib: the tool continues under .venv."""
    r = subprocess.run([SYSTEM_PY] + tool + args, cwd=ROOT, capture_output=True, text=True,
                       timeout=60, env={k: v for k, v in os.environ.items()
                                        if k not in ("VIRTUAL_ENV", "ATMQ_VENV_REEXEC")})
    assert r.returncode == 0, r.stderr
    assert says in r.stdout


def test_jsonstrict_agrees_with_cpython():
    """Random short documents over JSON's alphabet: accepted by jsonstrict exactly when
    CPython's json accepts them (the board and deploy.py agree)."""
    rnd = random.Random(13)
    alphabet = '{}[],:"a01.-e tfnul\\'
    for _ in range(20000):
        s = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 8)))
        try:
            json.loads(s)
            ok = True
        except ValueError:
            ok = False
        try:
            jsonstrict.check(s)
            mine = True
        except ValueError:
            mine = False
        assert mine == ok, s


@pytest.mark.parametrize("cmd, says", [
    ("demo", "usage: demo.py"), ("run-unix", "usage: run_unix.py"),
    ("bench-drain", "usage: bench_drain.py"), ("bench", "AT reader benchmark"),
])
def test_dev_help_runs_nothing(cmd, says):
    r = subprocess.run([SYSTEM_PY, os.path.join(TOOLS, "dev.py"), cmd, "--help"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and says in r.stdout, r.stderr
    assert "[dev]" not in r.stdout  # no bootstrap step, no tool started


def test_dev_test_passes_pytest_options_through(monkeypatch):
    import dev

    got = []
    monkeypatch.setattr(dev, "cmd_test", lambda a: got.append(a.pytest_args) or 0)
    assert dev.main(["test", "-k", "engine", "-x"]) == 0
    assert dev.main(["test", "--", "-k", "engine"]) == 0
    assert got == [["-k", "engine", "-x"], ["-k", "engine"]]


def test_demo_faults_by_name():
    assert demo.scenario_path("flaky_network").endswith("flaky_network.json")
    with pytest.raises(Exception, match="flaky_network"):
        demo.scenario_path("flaky")


def _tool(*args, **kw):
    return subprocess.run([sys.executable] + list(args), cwd=ROOT, capture_output=True,
                          text=True, timeout=60, **kw)


def test_logdoctor_reads_a_plain_serial_monitor_log(tmp_path):
    log = tmp_path / "monitor.log"
    log.write_text("[12:00:01.100] AT+CPIN?\n[12:00:01.150] +CPIN: READY\n\nOK\n"
                   "AT+CMQTTSTART\nOK\n+CMQTTSTART: 23\n")
    r = _tool("tools/logdoctor.py", str(log))
    assert r.returncode == 0, r.stderr
    assert "> AT+CPIN?" in r.stdout and "CMQTT 23: network is opened" in r.stdout


def test_logdoctor_names_the_formats_it_reads(tmp_path):
    log = tmp_path / "odd.log"
    log.write_text("> AT\nhello there\n")
    r = _tool("tools/logdoctor.py", str(log))
    assert r.returncode == 2 and "two accepted formats" in r.stderr and "Traceback" not in \
        r.stderr


def test_logdoctor_into_a_closed_pipe_is_quiet():
    atx = sorted(f for f in os.listdir(os.path.join(ROOT, "tests_host", "transcripts"))
                 if f.endswith(".atx"))[0]
    p = subprocess.Popen([sys.executable, "tools/logdoctor.py", "--json",
                          os.path.join("tests_host", "transcripts", atx)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.read(10)
    p.stdout.close()  # what "| head -1" does
    err = p.stderr.read().decode()
    p.wait(30)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_freematics2atx_missing_file_is_one_line():
    r = _tool("tools/freematics2atx.py", "/nosuch")
    assert r.returncode == 2 and r.stderr.strip() == \
        "freematics2atx: /nosuch: No such file or directory"


def test_tripview_says_what_an_atx_is():
    atx = sorted(f for f in os.listdir(os.path.join(ROOT, "tests_host", "transcripts"))
                 if f.endswith(".atx"))[0]
    r = _tool("tools/tripview.py", os.path.join("tests_host", "transcripts", atx), "--png",
              "/tmp/never.png")
    assert r.returncode == 2 and "an .atx modem transcript" in r.stderr
    assert r.stderr.count("\n") == 1, r.stderr  # one line, not one per transcript line


def _demo(tmp_path, *args):
    return subprocess.run([sys.executable, os.path.join(TOOLS, "demo.py"), "--fast",
                           "--save", str(tmp_path / "received.jsonl"),
                           "--workdir", str(tmp_path / "run")] + list(args),
                          cwd=ROOT, capture_output=True, text=True, timeout=150)


def test_demo_on_the_sim800_delivers(tmp_path):
    """The SIM800 persona: the SM driver, the Freematics text format, keepalive 60."""
    r = _demo(tmp_path, "--persona", "SIM800", "--seconds", "12")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    made = [ln for ln in out.splitlines() if ln.startswith("firmware ")]
    got = [ln for ln in out.splitlines() if ln.startswith("records received")]
    assert got and int(got[0].split()[2]) > 0, out
    assert made and ", 0 left in its spool" in made[0], out  # the clean stop sent the rest
    assert "gaps in seq        0" in out, out


def test_demo_that_delivers_nothing_fails(tmp_path):
    """A firmware that cannot even boot (16 KB of heap): the demo says so and exits 1."""
    r = _demo(tmp_path, "--seconds", "4", "--heapsize", "16K")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "no record reached the broker" in out, out


def test_demo_shows_the_firmware_warnings_as_they_come(tmp_path):
    log = tmp_path / "firmware.log"
    log.write_text("[tlog] running\n123 I at: fine\n")
    tail = demo.LogTail(str(log))
    assert tail.new_lines() == []
    with open(log, "a") as f:
        f.write("4567 W at [link=up reg=home]: TIMEOUT: no final result within 9000 ms "
                "[AT+CSQ], transient\n4568 E link: x\n4569 W half a li")
    assert [x.split(" ")[1] for x in tail.new_lines()] == ["W", "E"]
    with open(log, "a") as f:
        f.write("ne\n")
    assert tail.new_lines() == ["4569 W half a line"]
