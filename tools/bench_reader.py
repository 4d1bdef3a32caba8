"""AT reader benchmark: ``python3 tools/dev.py bench`` (JSON lines on stdout).

Two mixes of SIMCom receive traffic (tests_device/traffic.py), each read by
the project's reader and by two baselines fed the same bytes:

- ``command`` mix: answers with a command in flight per exchange (echo,
  responses, two-phase completions, prompts), URCs with quoted commas, inbound
  MQTT messages with raw payloads, boot banners, noise; the project reader is
  ``traffic.Driver`` (Engine + CMQTT-style receive handlers);
- ``urc`` mix (issue 12): no command in flight; signal, registration, serving
  cell, GNSS, inbound messages with JSON payloads, publish results, boot URCs,
  stray prompts; the project reader is the real ``Engine`` with the URC
  handlers of ``Modem`` and ``CMQTTDriver`` registered and an inbox that holds a
  pass's messages; ``project_inbox_full`` the same with a 4-slot inbox (most
  messages then overwrite the oldest: the handler's slow path); ``reader_only`` the
  same with every handler replaced by a no-op (what the reader itself costs).

Readers: ``project`` (``Engine.pump`` from a C-level ``io.BytesIO`` in reads of
up to 256 bytes, as ``UART.readinto`` is C), ``floor`` (``readinto`` of the
same reads and a viper LF counter: the least any reader can cost) and
``naive`` (``readline().decode().strip().split(",")``, what typical MicroPython
modem code does).  For the command mix also ``project_chunked`` (random
1..256-byte reads through a Python stream, whose cost is included) and
``project_no_command``.

Records:

- ``at_reader``: MB/s (best and median of interleaved timed runs, GC on) and
  allocated bytes per line (GC off), per mix and reader; the machine's speed
  drifts, compare lines of one run only;
- ``at_reader_instructions`` (when ``valgrind`` is installed): instructions per
  pass under ``valgrind --tool=callgrind``, which do not drift: one run with 1
  pass and one with 3 after a warm-up pass, the difference halved (interpreter
  start-up and set-up cancel out); ``over_floor`` and ``naive_over_project``
  relate them to the baselines of the same run.

Run by CPython (dev.py), it starts the MicroPython part and then callgrind;
run by MicroPython it is the benchmark itself (``--one=IMPL:MIX:PASSES`` runs
one reader silently, for callgrind).  ``--quick``: fewer timed runs, for tests;
``--no-callgrind``; ``--cg=MIX:IMPL,...``: only those instruction counts.
"""

import sys

IS_MP = sys.implementation.name == "micropython"
if IS_MP:
    ROOT = __file__.rsplit("/", 2)[0] if __file__.count("/") >= 2 else "."
else:
    import os

    ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMPLS_CG = (("command", "floor"), ("command", "project"), ("command", "naive"),
            ("urc", "floor"), ("urc", "project"), ("urc", "project_inbox_full"),
            ("urc", "reader_only"), ("urc", "naive"))


# ---- the MicroPython side ---------------------------------------------------------------------

def _mp_main(argv):
    import gc
    import io
    import json
    import time

    sys.path.append(ROOT + "/tests_device")
    from array import array

    import micropython
    from traffic import K_IDLE, Driver, build, build_urc

    @micropython.viper
    def count_lf(buf, n: int) -> int:
        b = ptr8(buf)  # noqa: F821  (a viper built-in)
        c = 0
        i = 0
        while i < n:
            if b[i] == 10:
                c += 1
            i += 1
        return c

    def floor_pass(stream, chunk):
        stream.seek(0)
        n = 0
        while True:
            k = stream.readinto(chunk)
            if not k:
                return n
            n += count_lf(chunk, k)

    def naive_pass(block):
        f = io.BytesIO(block)
        n = 0
        while True:
            raw = f.readline()
            if not raw:
                break
            s = raw.decode().strip()
            if s:
                parts = s.split(",")
                n += len(parts) > 0
        return n

    def _noop(a):
        pass

    class UrcReader:
        """The real Engine with Modem's and CMQTTDriver's URC handlers, no command in flight."""

        def __init__(self, block, noop=False, slots=96):
            from atmq.cmqtt import CMQTTDriver
            from atmq.engine import Engine
            from atmq.events import EventQueue
            from atmq.inbox import Inbox
            from atmq.modem import Modem

            self.stream = io.BytesIO(block)
            self.at = Engine(self.stream, chunk_size=256)
            self.events = EventQueue(1024)
            # ``slots``: room for a pass's 82 messages (the application takes messages as
            # they come; a full inbox, the overwrite path with an event per message, is the
            # exception); ``project_inbox_full`` keeps round 3's 4 slots: 78 of 82 overwrite
            self.inbox = Inbox(slots, 64, 256)
            self.modem = Modem(self.at, self.events)
            self.mqtt = CMQTTDriver(self.at, self.events, self.inbox)
            if noop:  # the reader's own cost: every handler replaced by one that returns
                rd = self.at.reader
                fns = rd.urc_fns
                for i in range(len(fns)):
                    fns[i] = _noop
                    if rd.e_kind[i] & 15 >= 2:  # a store-then-call or frame entry (the kind is
                        rd.e_kind[i] &= ~15  # e_kind's low 4 bits): the store is the handler's job

        def run(self):
            s = self.stream
            s.seek(0)
            pump = self.at.pump
            while pump() > 0:
                pass
            ev = self.events  # what the application task does between passes
            while ev.get() >= 0:
                pass
            ib = self.inbox
            while ib.get() >= 0:
                ib.release()

    one = None
    quick = False
    for a in argv:
        if a.startswith("--one="):
            one = a[6:].split(":")
        elif a == "--quick":
            quick = True

    # Bytes that are not UTF-8 would make the naive decode() raise: drop the noise
    # exchange's binary bytes for a fair comparison (all readers see the same block).
    cblock, kinds, ends, _exp = build(seed=3)
    cblock = cblock.replace(b"\x00\xff", b"..")
    ublock, _ulines = build_urc(seed=1)
    chunk = bytearray(256)
    mixes = {}

    def add(mix, name, fn, lines_of, block):
        mixes.setdefault(mix, []).append((name, fn, lines_of, block))

    if one is None or one[1] == "command":
        cfs = io.BytesIO(cblock)
        d = Driver(cblock, kinds, ends, seed=5, max_chunk=256)
        streams = d.exchange_streams(cblock)

        def drv_lines(drv):
            def lines(f):
                l0 = drv.at.tok.lines
                f()
                return drv.at.tok.lines - l0
            return lines

        add("command", "project", lambda: d.cycle(False, streams), drv_lines(d), cblock)
        if one is None:
            c = Driver(cblock, kinds, ends, seed=5, max_chunk=256)
            r = Driver(cblock, array("b", [K_IDLE]), array("i", [len(cblock)]), seed=5,
                       max_chunk=256)
            add("command", "project_chunked", lambda: c.cycle(False), drv_lines(c), cblock)
            add("command", "project_no_command", lambda: r.cycle(False), drv_lines(r), cblock)
        add("command", "floor", lambda: floor_pass(cfs, chunk), lambda f: f(), cblock)
        add("command", "naive", lambda: naive_pass(cblock), lambda f: f(), cblock)
    if one is None or one[1] == "urc":
        ufs = io.BytesIO(ublock)
        if one is None or one[0] == "project":
            u = UrcReader(ublock)

            def u_lines(f):
                l0 = u.at.tok.lines
                f()
                return u.at.tok.lines - l0

            add("urc", "project", u.run, u_lines, ublock)
        if one is None or one[0] == "project_inbox_full":
            uf = UrcReader(ublock, False, 4)

            def uf_lines(f):
                l0 = uf.at.tok.lines
                f()
                return uf.at.tok.lines - l0

            add("urc", "project_inbox_full", uf.run, uf_lines, ublock)
        if one is None or one[0] == "reader_only":
            u0 = UrcReader(ublock, True)

            def u0_lines(f):
                l0 = u0.at.tok.lines
                f()
                return u0.at.tok.lines - l0

            add("urc", "reader_only", u0.run, u0_lines, ublock)
        add("urc", "floor", lambda: floor_pass(ufs, chunk), lambda f: f(), ublock)
        add("urc", "naive", lambda: naive_pass(ublock), lambda f: f(), ublock)

    if one is not None:  # callgrind: warm up, then the asked passes, silently
        fn = [e[1] for e in mixes[one[1]] if e[0] == one[0]][0]
        fn()
        # no collection inside the counted passes of a reader that allocates nothing per
        # line: one set off by set-up garbage would land in the 3-pass run or not and cost
        # hundreds of thousands of instructions either way (the naive loop allocates: its
        # collections are its cost)
        gc.collect()
        if one[0] != "naive":
            gc.disable()
        for _ in range(int(one[2])):
            fn()
        return 0

    runs = 3 if quick else 9
    cycles = 2 if quick else 10
    for mix in ("command", "urc"):
        impls = mixes[mix]
        for _n, fn, _l, _b in impls:
            fn()
        rates = [[] for _ in impls]
        for _ in range(runs):  # interleaved: load from other processes hits all alike
            for i, (_n, fn, _l, block) in enumerate(impls):
                t0 = time.ticks_us()
                for _ in range(cycles):
                    fn()
                rates[i].append(len(block) * cycles / time.ticks_diff(time.ticks_us(), t0))
        for i, (name, fn, lines_of, block) in enumerate(impls):
            gc.collect()
            gc.disable()
            a0 = gc.mem_alloc()
            lines = lines_of(fn)
            alloc = gc.mem_alloc() - a0
            gc.enable()
            rs = sorted(rates[i])
            print(json.dumps({"name": "at_reader", "mix": mix, "impl": name,
                              "bytes_per_pass": len(block), "lines_per_pass": lines,
                              "mb_per_s": round(rs[-1], 2),
                              "mb_per_s_median": round(rs[len(rs) // 2], 2),
                              "alloc_bytes_per_line": round(alloc / lines, 1),
                              "impl_platform": sys.implementation.name}))
    if one is None:
        # the project readers' outcomes, checked once (the timed passes skip the checks)
        d.cycle(True, streams)
        if d.got[6]:
            raise SystemExit("project reader decoded something wrong: %d" % d.got[6])
        if u.at.unknown == 0 or u.mqtt.stats["received"] == 0 or u.at.reader.handler_errors:
            raise SystemExit("urc mix: no message received or a handler failed")
    return 0


# ---- the CPython side: run the MicroPython part, then callgrind ---------------------------------

def _cg_instructions(env, impl, mix, passes):
    import re
    import subprocess

    mp = [sys.executable, ROOT + "/.venv/bin/micropython"]
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + mp + [
        ROOT + "/tools/bench_reader.py", "--one=%s:%s:%d" % (impl, mix, passes)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise SystemExit("callgrind run failed: %s\n%s" % (" ".join(cmd), p.stderr[-2000:]))
    m = re.search(r"Collected : (\d+)", p.stderr)
    if not m:
        raise SystemExit("no instruction count in callgrind's output")
    return int(m.group(1))


def _host_main(argv):
    import json
    import shutil
    import subprocess

    env = dict(os.environ)
    env["PYTHONHASHSEED"] = "0"  # the launcher's start-up is then the same in every run
    mp = [os.path.join(ROOT, ".venv", "bin", "micropython")]
    # the naive loop's allocation is measured with GC off (~1.5 MB for the command mix):
    # more heap than the port's default 2 MB leaves beside the readers and the mixes
    rc = subprocess.call(mp + ["-X", "heapsize=8M", os.path.join(ROOT, "tools",
                                                                 "bench_reader.py")] + argv,
                         env=env)
    if rc:
        return rc
    if "--no-callgrind" in argv:
        return 0
    todo = IMPLS_CG
    for a in argv:
        if a.startswith("--cg="):  # e.g. --cg=urc:floor,urc:project
            todo = tuple(tuple(x.split(":")) for x in a[5:].split(","))
    if not shutil.which("valgrind"):
        print(json.dumps({"name": "at_reader_instructions", "skipped": "valgrind not installed"}))
        return 0
    per = {}
    for mix, impl in todo:
        one = _cg_instructions(env, impl, mix, 1)
        three = _cg_instructions(env, impl, mix, 3)
        per[(mix, impl)] = (three - one) // 2
    for mix, impl in todo:
        n = per[(mix, impl)]
        rec = {"name": "at_reader_instructions", "mix": mix, "impl": impl,
               "instructions_per_pass": n, "tool": "valgrind --tool=callgrind",
               "passes": "3 minus 1, halved"}
        if (mix, "floor") in per:
            rec["over_floor"] = round(n / per[(mix, "floor")], 2)
        if (mix, "naive") in per:
            rec["naive_over_this"] = round(per[(mix, "naive")] / n, 2)
        print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_mp_main(sys.argv[1:]) if IS_MP else _host_main(sys.argv[1:]))
