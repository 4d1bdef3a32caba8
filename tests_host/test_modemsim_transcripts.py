"""The simulator reproduces the manuals' complete examples byte for byte.

Replays the host side of the seed transcripts in tests_host/transcripts (the team's
contract, .atx v1) against a fresh simulator bridged to Mosquitto, and checks every
modem run.  Only URCs that race each other in real life (a PUBACK result and our own
message coming back) may swap places.
"""

from brokerfix import broker  # noqa: F401
from modemsim_at import run

import asyncio
import os

import pytest
from atmq import atx

from modemsim import ModemSim

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "transcripts")
COMPLETE = {   # examples that start from a freshly booted module
    "seed002_3_1_mqtt_tcp.atx": "A7600",
    "seed002_3_2_mqtts_no_verify.atx": "A7600",
    "seed002_3_5_no_utf8_check.atx": "A7600",
    "seed003_16_2_01_cmqttstart.atx": "SIM7670",
}


def _frames(data):
    """Split after the leading result at each CR LF '+' (one URC per frame)."""
    parts = data.split(b"\r\n+")
    return [parts[0]] + [b"\r\n+" + p for p in parts[1:]]


def _same(want, got):
    if want == got:
        return True
    fw, fg = _frames(want), _frames(got)
    return fw[0] == fg[0] and sorted(fw[1:]) == sorted(fg[1:])


async def _replay(path, persona, b):
    meta, records = atx.read(path)
    runs = []
    for lineno, d, _ms, data in records:
        if runs and runs[-1][0] == d:
            runs[-1][2].append(data)
        else:
            runs.append((d, lineno, [data]))
    sim = ModemSim(persona=persona, fast=True, broker=(b.host, b.port),
                   broker_tls=(b.host, b.tls_port))
    port = await sim.start()
    r, w = await asyncio.open_connection("127.0.0.1", port)
    buf = bytearray()
    loop = asyncio.get_running_loop()
    try:
        boot = "".join("\r\n%s\r\n" % x for x in sim.modem.p["boot"]).encode()
        runs.insert(0, ("<", 0, [boot]))
        for d, lineno, parts in runs:
            data = b"".join(parts)
            if d == ">":
                w.write(data)
                await w.drain()
                continue
            deadline = loop.time() + 10
            while len(buf) < len(data) and loop.time() < deadline:
                try:
                    buf += await asyncio.wait_for(r.read(4096), deadline - loop.time())
                except asyncio.TimeoutError:
                    break
            got = bytes(buf[:len(data)])
            del buf[:len(data)]
            assert _same(data, got), "%s line %d:\n want %r\n  got %r" % (
                os.path.basename(path), lineno, data, got)
        assert buf == b"", "extra bytes %r" % bytes(buf)
    finally:
        w.close()
        await sim.stop()


@pytest.mark.parametrize("name", sorted(COMPLETE))
def test_manual_example_replays_exactly(name, broker):  # noqa: F811
    path = os.path.join(HERE, name)
    if not os.path.exists(path):
        pytest.skip("transcript %s not in the tree" % name)
    run(_replay(path, COMPLETE[name], broker))
