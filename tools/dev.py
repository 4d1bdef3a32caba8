#!/usr/bin/env python3
"""Developer entry point: bootstrap the tool venv, test, demo, bench, run on the unix port.

    python3 tools/dev.py test      every check CI runs (the README's test command);
                                   pytest arguments pass through: test -k engine -x
    python3 tools/dev.py demo      the firmware on the unix port against the simulator
    python3 tools/dev.py bench     AT reader benchmark on the unix port, MB/s and callgrind
                                   instruction counts (JSON lines; --quick, --no-callgrind)
    python3 tools/dev.py bench-drain   backlog drain vs. the UART line rate (JSON lines)
    python3 tools/dev.py fault-matrix  a fault at every step of the link (steps x faults)
    python3 tools/dev.py run-unix  --modem tcp:HOST:PORT --config FILE [--frozen]
    python3 tools/dev.py build-port    the 32-bit unix port with the firmware frozen in
    python3 tools/dev.py mem       the firmware's RAM on that build (JSON; --readme)

The first run creates ``.venv`` from tools/requirements.txt and installs the
ESP32 stubs into ``typings/``; later runs skip that unless the requirements
changed.  Only the standard library is used here, so plain ``python3`` runs it.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv")
BIN = os.path.join(VENV, "bin")
REQS = os.path.join(ROOT, "tools", "requirements.txt")
TYPINGS = os.path.join(ROOT, "typings")
STUBS = "micropython-esp32-stubs==1.29.0.post1"
STAMP = os.path.join(VENV, ".atmq-stamp")


def tool(name):
    return os.path.join(BIN, name)


def log(msg):
    print("[dev] " + msg, flush=True)


def run(cmd, **kw):
    log(" ".join(cmd))
    return subprocess.call(cmd, cwd=kw.pop("cwd", ROOT), **kw)


def _wanted_stamp():
    with open(REQS, "rb") as f:
        return hashlib.sha256(f.read() + STUBS.encode()).hexdigest()


def bootstrap():
    """Create or refresh .venv and typings/; quick when nothing changed."""
    want = _wanted_stamp()
    try:
        with open(STAMP) as f:
            if f.read().strip() == want and os.path.isdir(TYPINGS):
                return
    except OSError:
        pass
    t0 = time.time()
    if not os.path.exists(tool("python")):
        log("creating .venv")
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([tool("pip"), "install", "-q", "--upgrade", "pip"])
    subprocess.check_call([tool("pip"), "install", "-q", "-r", REQS])
    shutil.rmtree(TYPINGS, ignore_errors=True)
    subprocess.check_call(
        [tool("pip"), "install", "-q", "--no-user", "--target", TYPINGS, STUBS]
    )
    with open(STAMP, "w") as f:
        f.write(want)
    log("bootstrap done in %.1f s" % (time.time() - t0))


def ensure_mosquitto():
    """Install Debian's mosquitto when missing (root only); the tests start their own."""
    if shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto"):
        return True
    if os.geteuid() != 0:
        log("mosquitto missing and not root: broker tests fall back or skip")
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.call(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
    rc = subprocess.call(
        ["apt-get", "install", "-y", "-q", "mosquitto", "mosquitto-clients"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return rc == 0


def micropython_env():
    env = dict(os.environ)
    # MICROPYPATH replaces the default path: keep .frozen or asyncio disappears.
    env["MICROPYPATH"] = ".frozen:" + ":".join(
        os.path.join(ROOT, p) for p in ("lib", "firmware", "tests_device")
    )
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    return env


def modules(*dirs):
    out = []
    for d in dirs:
        for base, _subdirs, files in os.walk(os.path.join(ROOT, d)):
            if "__pycache__" in base:
                continue
            out.extend(os.path.join(base, f) for f in sorted(files) if f.endswith(".py"))
    return sorted(out)


def step_mpy_cross():
    """Every module of lib/ and firmware/ must compile for the ESP32 (xtensawin)."""
    out = os.path.join(ROOT, "build", "mpy-check")
    fails = 0
    files = [m for m in modules("lib", "firmware") if not m.endswith("_host.py")]
    for m in files:
        rel = os.path.relpath(m, ROOT)
        dst = os.path.join(out, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        r = subprocess.run(
            [tool("mpy-cross"), "-march=xtensawin", "-o", dst, m],
            capture_output=True,
            text=True,
        )
        if r.returncode:
            fails += 1
            print(r.stderr.strip())
    log("mpy-cross -march=xtensawin: %d modules, %d failed" % (len(files), fails))
    return 1 if fails else 0


def step_device_tests(extra=()):
    return run(
        [tool("micropython"), os.path.join(ROOT, "tests_device", "run.py")] + list(extra),
        env=micropython_env(),
    )


TEST_STEPS = 7


def step_build_port(env):
    """The board-like build (tools/build_port.py) for tests_host/test_frozen.py, which runs
    the e2e cases on it at -X heapsize=88K; skipped, with the reason, where it cannot be
    built (no MicroPython source, no 32-bit libc): test_frozen.py then skips too."""
    rc = run([sys.executable, os.path.join(ROOT, "tools", "build_port.py"), "--quiet"], env=env)
    if rc == 3:  # build_port.SKIP_RC: the reason is printed above
        log("frozen 32-bit port: skipped")
        return 0
    return rc


def cmd_test(args):
    bootstrap()
    ensure_mosquitto()
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    results = []
    t_all = time.monotonic()
    t_step = [t_all]

    def step(name, rc):
        # each step says how long it took and how far the run is (the whole run takes minutes)
        now = time.monotonic()
        results.append((name, rc))
        log("[%d/%d] %s: %s in %.0f s (%.0f s so far)" % (
            len(results), TEST_STEPS, name, "ok" if rc == 0 else "FAILED (rc=%d)" % rc,
            now - t_step[0], now - t_all))
        t_step[0] = now

    step("ruff", run([tool("ruff"), "check", "."], env=env))
    step("mpy-cross", step_mpy_cross())
    step("pyright (ESP32 stubs)", run([tool("pyright"), "-p", "pyrightconfig.json"], env=env))
    step("pyright (host)", run([tool("pyright"), "-p", "pyrightconfig.host.json"], env=env))
    step("frozen 32-bit port build", step_build_port(env))
    rc = run([tool("pytest")] + list(args.pytest_args), env=env)
    step("pytest tests_host", 0 if rc in (0,) else rc)
    step("tests_device (unix port)", step_device_tests())
    failed = [n for n, rc in results if rc]
    log("summary: %d steps, %d failed%s" % (
        len(results), len(failed), (": " + ", ".join(failed)) if failed else ""))
    return 1 if failed else 0


def _exec(cmd, env=None):
    """Become the tool: Ctrl-C and SIGTERM then reach it directly, and it alone decides
    how to stop its children (dev.py must not exit while they are still shutting down)."""
    log(" ".join(cmd))
    sys.stdout.flush()
    os.chdir(ROOT)
    if env is None:
        os.execv(cmd[0], cmd)
    os.execve(cmd[0], cmd, env)


def cmd_bench(rest):
    # CPython runs the MicroPython benchmark, then callgrind's instruction counts
    bootstrap()
    _exec([tool("python"), os.path.join(ROOT, "tools", "bench_reader.py")] + rest,
          micropython_env())


def cmd_demo(rest):
    bootstrap()
    ensure_mosquitto()
    _exec([tool("python"), os.path.join(ROOT, "tools", "demo.py")] + rest)


def cmd_bench_drain(rest):
    bootstrap()
    ensure_mosquitto()
    _exec([tool("python"), os.path.join(ROOT, "tools", "bench_drain.py")] + rest)


def cmd_fault_matrix(rest):
    bootstrap()
    ensure_mosquitto()
    _exec([tool("python"), os.path.join(ROOT, "tools", "fault_matrix.py")] + rest)


def cmd_build_port(rest):
    _exec([sys.executable, os.path.join(ROOT, "tools", "build_port.py")] + rest)


def cmd_mem(rest):
    bootstrap()
    ensure_mosquitto()
    _exec([tool("python"), os.path.join(ROOT, "tools", "mem.py")] + rest)


def cmd_run_unix(rest):
    bootstrap()
    _exec([tool("python"), os.path.join(ROOT, "tools", "run_unix.py")] + rest)


PASS_THROUGH = {"bench": cmd_bench, "bench-drain": cmd_bench_drain, "demo": cmd_demo,
                "fault-matrix": cmd_fault_matrix, "run-unix": cmd_run_unix,
                "build-port": cmd_build_port, "mem": cmd_mem}
# the script behind each pass-through command, for its --help (no bootstrap, nothing run)
HELP_OF = {"bench": "bench_reader.py", "bench-drain": "bench_drain.py", "demo": "demo.py",
           "fault-matrix": "fault_matrix.py", "run-unix": "run_unix.py",
           "build-port": "build_port.py", "mem": "mem.py"}
_HELP = ("-h", "--help")


def _docstring(script):
    """The module docstring of ``script``, read without running it."""
    import ast

    with open(script, encoding="utf-8") as f:
        return ast.get_docstring(ast.parse(f.read())) or ""


def show_help(name):
    """``dev.py NAME --help``: the tool's own argparse help when the venv is there (its
    interpreter), else its docstring; never a bootstrap, never a run."""
    script = os.path.join(ROOT, "tools", HELP_OF[name])
    if name != "bench" and os.path.exists(tool("python")):
        return subprocess.call([tool("python"), script, "--help"], cwd=ROOT)
    print(_docstring(script))
    if not os.path.exists(tool("python")):
        print("\n(.venv is not made yet: the first 'python3 tools/dev.py %s' makes it)" % name)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in PASS_THROUGH:
        # Everything after the sub-command belongs to the tool (its own --help included).
        rest = argv[1:]
        if rest[:1] == ["--"]:
            rest = rest[1:]
        elif any(a in _HELP for a in rest) and argv[0] in HELP_OF:
            return show_help(argv[0])
        return PASS_THROUGH[argv[0]](rest)
    if argv[:1] == ["test"] and not any(a in _HELP for a in argv[1:2]):
        # pytest's own options pass through as typed: test -k engine -x (a leading -- too)
        rest = argv[1:]
        return cmd_test(argparse.Namespace(pytest_args=rest[1:] if rest[:1] == ["--"]
                                           else rest))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("test", help="run every check (what CI runs); arguments go to pytest")
    t.add_argument("pytest_args", nargs="*", help="pytest arguments, e.g. -k engine -x")
    t.set_defaults(fn=cmd_test)
    for name in PASS_THROUGH:
        sub.add_parser(name, help="see: python3 tools/dev.py %s --help" % name)
    sub.add_parser("bootstrap").set_defaults(fn=lambda a: bootstrap() or 0)
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
