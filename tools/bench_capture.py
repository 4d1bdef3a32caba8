"""Capture RX redaction benchmark, run on the MicroPython unix port (or CPython).

Feeds realistic SIMCom traffic (tests_device/traffic.py) plus inbound MQTT
``set`` commands (one in three for a secret key) in 64-byte reads through
``tlog.rxredact.RxRedactor`` with a sink that only counts, and prints one
JSON object per line: ``kb_per_s`` (best of 5), ``window_bytes`` (the one
buffer it allocates) and ``redactions``.  ``baseline`` is the same loop with
the sink called directly (what capture did before RX redaction).

    MICROPYPATH=.frozen:lib:firmware .venv/bin/micropython $PWD/tools/bench_capture.py
"""

import json
import sys
import time

sys.path.append(__file__.rsplit("/", 2)[0] + "/tests_device")

from traffic import build  # noqa: E402

from tlog.rxredact import RxRedactor  # noqa: E402

CHUNK = 64
RUNS = 5


def _now_us():
    t = getattr(time, "ticks_us", None)
    return t() if t is not None else int(time.perf_counter() * 1000000)


def _traffic():
    block = build(1, 200)[0]
    cmds = []
    for i in range(30):
        key = "mqtt_password" if i % 3 == 0 else "interval_moving_s"
        val = '"pw-%d-secret"' % i if i % 3 == 0 else "%d" % (i + 1)
        body = '{"id":%d,"cmd":"set","key":"%s","value":%s}' % (i, key, val)
        cmds.append(b"\r\n+CMQTTRXPAYLOAD: 0,%d\r\n%s\r\n+CMQTTRXEND: 0\r\n"
                    % (len(body), body.encode()))
    return bytes(block) + b"".join(cmds)


def _run(data, red, sink):
    chunk = bytearray(CHUNK)
    n = len(data)
    best = 0
    for _ in range(RUNS):
        t0 = _now_us()
        for off in range(0, n, CHUNK):
            k = min(CHUNK, n - off)
            chunk[:k] = data[off : off + k]
            if red is None:
                sink(memoryview(chunk)[:k])
            else:
                red.feed(chunk, k)
        if red is not None:
            red.flush()
        dt = max(1, _now_us() - t0)
        best = max(best, n * 1000 // dt)  # bytes/ms == kB/s
    return best


def main():
    data = _traffic()
    out = [0]

    def sink(d):
        out[0] += len(d)

    base = _run(data, None, sink)
    red = RxRedactor(sink)
    rate = _run(data, red, sink)
    impl = sys.implementation.name
    print(json.dumps({"bench": "capture_rx", "impl": impl, "mode": "baseline",
                      "bytes": len(data), "kb_per_s": base}))
    print(json.dumps({"bench": "capture_rx", "impl": impl, "mode": "redactor",
                      "bytes": len(data), "kb_per_s": rate, "window_bytes": len(red.win),
                      "redactions": red.redactions // RUNS}))


main()
