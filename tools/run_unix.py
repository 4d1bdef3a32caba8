#!/usr/bin/env python3
"""Run the telelogger firmware on the MicroPython unix port (the product, unchanged).

    python3 tools/dev.py run-unix --modem tcp:127.0.0.1:PORT --config FILE \\
        [--flash DIR] [--seconds N] [--heapsize 512K] [--board boards/unix.json]

Starts ``.venv/bin/micropython -X heapsize=H firmware/main.py`` with
MICROPYPATH=.frozen:<repo>/lib:<repo>/firmware and passes the options as
environment variables (read by firmware/tlog/platform.py ``options()``):

  TLOG_MODEM    tcp:HOST:PORT or a pty path (overrides the board's uart.device)
  TLOG_CONFIG   the config JSON (the app reads it and persists ``set`` commands to it)
  TLOG_FLASH    folder standing in for the ESP32's flash (spool, seqno, captures)
  TLOG_SECONDS  stop cleanly after N seconds (0: run until SIGINT)
  TLOG_BOARD    board file (default boards/unix.json)

On SIGINT/SIGTERM, or when the child outlives ``--seconds`` by 30 s, the child
gets SIGINT (it flushes the spool, publishes "offline", disconnects), then
SIGKILL after ``--grace`` seconds.  Exits with the child's status.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")


def build_command(args):
    return [MICROPYTHON, "-X", "heapsize=" + args.heapsize,
            os.path.join(ROOT, "firmware", "main.py")]


def build_env(args, base=None):
    env = dict(os.environ if base is None else base)
    env["MICROPYPATH"] = ".frozen:%s:%s" % (os.path.join(ROOT, "lib"),
                                            os.path.join(ROOT, "firmware"))
    env["TLOG_BOARD"] = os.path.abspath(args.board)
    env["TLOG_FLASH"] = os.path.abspath(args.flash)
    env["TLOG_SECONDS"] = str(args.seconds)
    if args.modem:
        env["TLOG_MODEM"] = args.modem
    if args.config:
        env["TLOG_CONFIG"] = os.path.abspath(args.config)
    return env


def stop(proc, grace):
    """SIGINT, then SIGKILL after ``grace`` seconds; returns the exit status."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            return proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
    return proc.wait()


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modem", help="tcp:HOST:PORT or a pty path")
    p.add_argument("--config", help="config JSON file (see firmware/tlog/CONFIG.md)")
    p.add_argument("--flash", default=os.path.join(ROOT, "var", "flash"),
                   help="folder that stands in for flash (default var/flash)")
    p.add_argument("--seconds", type=int, default=0, help="stop after N s (0: until SIGINT)")
    p.add_argument("--heapsize", default="512K",
                   help="MicroPython heap (default 512K: on the unix port the code itself "
                   "lives in the heap, ~200 KB; frozen on the ESP32 it does not)")
    p.add_argument("--board", default=os.path.join(ROOT, "boards", "unix.json"))
    p.add_argument("--grace", type=float, default=15.0,
                   help="seconds between SIGINT and SIGKILL when stopping")
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    os.makedirs(args.flash, exist_ok=True)
    proc = subprocess.Popen(build_command(args), env=build_env(args), cwd=ROOT)
    stopping = []

    def on_signal(signum, frame):
        stopping.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    deadline = time.monotonic() + args.seconds + 30 if args.seconds else None
    while proc.poll() is None:
        if stopping or (deadline is not None and time.monotonic() > deadline):
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
