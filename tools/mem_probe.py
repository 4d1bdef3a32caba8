"""MicroPython side of ``dev.py mem`` (tools/mem.py): heap figures of the frozen firmware.

Runs on the 32-bit frozen port (tools/build_port.py) as the entry script, with the
firmware's own environment (TLOG_BOARD, TLOG_CONFIG, ...; tlog/platform.py).
TLOG_MEMPROBE selects what it does:

  deps     the modules ``import tlog.app`` loads (one line ``DEPS a,b,...``)
  static   heap after boot, each module's import (in dependency order; only those in
           TLOG_MEMPROBE_DEPS when set), the App built
           (buffers preallocated, nothing running), then every bytearray reachable from
           the App with its owner's path.  One line: ``MEM {json}``.
  run      the firmware as main.py runs it, plus a task that every 10 ms collects and
           reads the live heap; at the end one line ``MEMPEAK {json}``: the highest live
           heap before the first connect, while connected and while the link was down
           after it (recovery), and the lowest free heap seen.  With TLOG_MEMPROBE_TRACE
           (1 or "map"; ``mem.py --trace``) every new peak of a state is printed as it
           happens (``PEAKAT {json}``: ticks, state, link state, the App's containers of
           600+ items or bytes), with "map" also the heap's block map.

Figures are ``gc.mem_alloc()`` after ``gc.collect()``: live objects, 32-bit, code in
flash (frozen); the sampler sees the heap between tasks' steps, not inside one step.
"""

import gc
import json
import os
import sys

gc.collect()
BOOT = gc.mem_alloc()

# Dependency order: each figure is what that module adds over the ones above it.
MODULES = (
    "asyncio", "atmq.compat", "atmq.log", "atmq.errors", "atmq.errtab", "atmq.ring",
    "atmq.tokenizer", "atmq.reader", "atmq.engine", "atmq.events", "atmq.inbox", "atmq.limits",
    "atmq.script", "atmq.recovery", "atmq.link", "atmq.board", "atmq.power", "atmq.nmea",
    "atmq.gnssparse", "atmq.fix", "atmq.jsonstrict", "atmq.modem", "atmq.client",
    "tlog.platform",
    "tlog.fsutil", "tlog.config", "tlog.records", "tlog.spool", "tlog.seqno", "tlog.timesrc",
    "tlog.motion", "tlog.watchdog", "tlog.acquire", "tlog.uplink", "tlog.status",
    "tlog.commands", "tlog.health", "tlog.fieldlog", "tlog.lastgood", "atmq.atx",
    "tlog.rxredact", "tlog.capture", "atmq.stack", "tlog.app",
)
# Imported later, by what the board and config use (the family's driver, the client, OBD,
# capture's redaction) or not by the app at all (imu): measured after the App is built.
LATER = ("atmq.cmqtt", "atmq.smmqtt", "atmq.modemq", "atmq.client", "atmq.recovery", "atmq.tls",
         "tlog.obd", "tlog.rxredact", "tlog.imu", "tlog.cmdexec")


def alloc():
    gc.collect()
    return gc.mem_alloc()


def block(n):
    """Heap bytes of a bytearray of n bytes on a 32-bit port: 16-byte blocks, object + data."""
    return 16 + ((n + 15) // 16) * 16


def buffers(root):
    """[(path, len)] of every bytearray reachable from ``root``: attributes breadth first,
    then the contents of lists and tuples (so a buffer is named by its owner's attribute,
    not by a tuple of cached references to it)."""
    seen = {id(root)}
    out = []
    todo = [("app", root)]
    seqs = []
    while todo or seqs:
        if not todo:  # attributes exhausted: open the lists and tuples met so far
            for path, v in seqs:
                for i, e in enumerate(v):
                    if id(e) in seen:
                        continue
                    if isinstance(e, bytearray):
                        seen.add(id(e))
                        out.append(("%s[%d]" % (path, i), len(e)))
                    elif hasattr(e, "__dict__") and not isinstance(e, type):
                        seen.add(id(e))
                        todo.append(("%s[%d]" % (path, i), e))
            seqs = []
            continue
        nxt = []
        for path, obj in todo:
            try:
                items = obj.__dict__.items()
            except AttributeError:
                continue
            for k, v in items:
                p = path + "." + k
                if id(v) in seen:
                    continue
                if isinstance(v, bytearray):
                    seen.add(id(v))
                    out.append((p, len(v)))
                elif isinstance(v, (list, tuple)):
                    seen.add(id(v))
                    seqs.append((p, v))
                elif hasattr(v, "__dict__") and not isinstance(v, type):
                    seen.add(id(v))
                    nxt.append((p, v))
        todo = nxt
    return out


def bigobjs(root, least=600):
    """[(path, type, len)] of the containers reachable from ``root`` (attributes, list,
    tuple and dict items, breadth first) of at least ``least`` items or bytes."""
    seen = {id(root)}
    out = []
    todo = [("app", root)]
    while todo:
        nxt = []
        for path, obj in todo:
            items = ()
            if isinstance(obj, (list, tuple)):
                items = [("[%d]" % i, v) for i, v in enumerate(obj)]
            elif isinstance(obj, dict):
                items = [("[%r]" % (k,), v) for k, v in obj.items()]
            else:
                try:
                    items = [("." + k, v) for k, v in obj.__dict__.items()]
                except AttributeError:
                    pass
            for k, v in items:
                if id(v) in seen or isinstance(v, (int, type)) or v is None:
                    continue
                seen.add(id(v))
                try:
                    n = len(v)
                except TypeError:
                    n = -1
                if n >= least and not isinstance(v, memoryview):
                    out.append((path + k, type(v).__name__, n))
                if isinstance(v, (list, tuple, dict)) or (
                        hasattr(v, "__dict__") and not callable(v)):
                    nxt.append((path + k, v))
        todo = nxt
    return out


def static():
    import tlog.platform as platform

    mods = []
    base = alloc()
    deps = os.getenv("TLOG_MEMPROBE_DEPS")  # what ``import tlog.app`` loads (a deps run)
    deps = deps.split(",") if deps is not None else MODULES
    base = alloc()  # the list above is not an import's cost
    for name in MODULES:
        if name not in deps:
            continue
        before = alloc()
        __import__(name)
        mods.append((name, alloc() - before))
    after_imports = alloc()
    from tlog.app import App

    app = App(platform.options())
    if app.cfg.get("capture_enable"):
        app.capture.start()  # what main() does first: its buffers count
    built = alloc()
    later = []
    for name in LATER:
        if name in sys.modules:
            later.append((name, None))  # imported by the App: inside "app built"
            continue
        before = alloc()
        __import__(name)
        later.append((name, alloc() - before))
    bufs = buffers(app)
    print("MEM " + json.dumps({
        "boot": BOOT, "probe": base - BOOT, "modules": mods, "imports": after_imports - base,
        "app_built": built - after_imports, "total": built, "later": later,
        "buffers": [(p, n, block(n)) for p, n in bufs],
        "family": app.modem.family, "obd": app.elm is not None,
        "capture": bool(app.cfg.get("capture_enable")),
    }))
    app.stop_now()


def run():
    import asyncio
    import tlog.platform as platform
    from tlog.app import App

    peaks = {"boot": 0, "connected": 0, "recovery": 0}
    low = [1 << 30]
    app = App(platform.options())
    peaks["built"] = alloc()

    mods_built = set(sys.modules)

    def heapmap(k):
        """TLOG_MEMPROBE_MAP=1: the heap's block map (micropython.mem_info(1)) between two
        marker lines; tools/mem.py --map turns it into bytes per object type."""
        if os.getenv("TLOG_MEMPROBE_MAP"):
            import micropython

            gc.collect()
            print("MEMMAP-BEGIN " + k)
            micropython.mem_info(1)
            print("MEMMAP-END " + k)

    heapmap("built")

    def dump(k):
        """What the App holds once connected: modules imported since it was built, buffers."""
        heapmap(k)
        bufs = buffers(app)
        print("MEMAT " + json.dumps({
            "state": k, "alloc": alloc(),
            "imported": sorted(m for m in sys.modules if m not in mods_built),
            "buffers": sum(block(n) for _p, n in bufs),
            "big": [(p, n) for p, n in bufs if n >= 256]}))

    import time

    trace = os.getenv("TLOG_MEMPROBE_TRACE")
    last_big = [None]  # type: list

    def traced(k, used):
        """TLOG_MEMPROBE_TRACE (tools/mem.py --trace): a new peak of state ``k`` (256 bytes
        or more over the last one): when, the link's state, the big objects the App holds,
        and with "map" the heap's block map (tools/mem.py diffs consecutive ones)."""
        big = bigobjs(app)
        d = {"ms": time.ticks_ms(), "state": k, "alloc": used, "link": app.link_owner.name}
        if big != last_big[0]:  # only when it changed
            d["big"] = last_big[0] = big
        print("PEAKAT %s" % json.dumps(d))
        d = big = None
        if trace == "map":
            import micropython

            gc.collect()  # the lines above are not the firmware's
            print("MEMMAP-BEGIN peak-%s-%d" % (k, used))
            micropython.mem_info(1)
            print("MEMMAP-END")

    async def sample():
        was_up = False
        dumped = 0
        while True:
            used = alloc()
            free = gc.mem_free()
            c = app.client
            up = c is not None and c.isconnected()
            was_up = was_up or up
            k = "connected" if up else ("recovery" if was_up else "boot")
            if used > peaks[k]:
                if trace and used >= peaks[k] + 256:
                    traced(k, used)
                peaks[k] = used
            if up and not dumped:
                dumped = 1
                dump(k)
            if free < low[0]:
                low[0] = free
            await asyncio.sleep_ms(10)

    async def main():
        t = asyncio.create_task(sample())
        try:
            return await app.main()
        finally:
            t.cancel()

    try:
        code = asyncio.run(main())
    except KeyboardInterrupt:
        app.stop_now()
        code = 130
    peaks["min_free"] = low[0]
    peaks["heap"] = gc.mem_alloc() + gc.mem_free()
    print("MEMPEAK " + json.dumps(peaks))
    if code:
        raise SystemExit(code)


if os.getenv("TLOG_MEMPROBE") == "run":
    run()
elif os.getenv("TLOG_MEMPROBE") == "deps":
    import tlog.app  # noqa: F401

    print("DEPS " + ",".join(sorted(sys.modules)))
else:
    static()
