"""CLI: run the SIMCom modem simulator (python3 tools/modemsim --help)."""

import argparse
import asyncio
import os
import signal
import sys

if __package__ in (None, ""):
    # Run as `python3 tools/modemsim`: make the package importable by name.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "modemsim"

import venvexec  # noqa: E402  (tools/, on the path either way)

venvexec.ensure(["paho"])  # the MQTT bridge: under plain python3, continue in .venv

from modemsim.personas import PERSONAS  # noqa: E402
from modemsim.server import ModemSim  # noqa: E402


def hostport(s):
    host, _, port = s.rpartition(":")
    return (host or "127.0.0.1", int(port))


def parse(argv):
    ap = argparse.ArgumentParser(
        prog="modemsim", description="Simulated SIMCom modem on 127.0.0.1:PORT (AT commands), "
        "MQTT bridged to a real broker.  First stdout line: LISTENING <port>.")
    ap.add_argument("--persona", default="SIM7600E", choices=sorted(PERSONAS))
    ap.add_argument("--port", type=int, default=0, help="TCP port (0 = pick one)")
    ap.add_argument("--pty", action="store_true", help="also serve a pty (prints PTY <path>)")
    ap.add_argument("--baud", type=int, default=115200, help="output pacing (10 bits/byte)")
    ap.add_argument("--pace-input", action="store_true",
                    help="pace host->modem bytes at the baud rate too (TCP; not with --fast)")
    ap.add_argument("--net-rtt", type=float, default=0.0,
                    help="seconds of network round trip added to each qos>=1 publish (PUBACK)")
    ap.add_argument("--latency", type=float, default=None,
                    help="seconds before each answer (default 0.02, 0 with --fast)")
    ap.add_argument("--boot-delay", type=float, default=None,
                    help="seconds from power-on to boot URCs (default 0.5)")
    ap.add_argument("--fast", action="store_true",
                    help="no latency, no baud pacing, instant boot and GNSS fix (tests)")
    ap.add_argument("--broker", type=hostport, default=None,
                    help="HOST:PORT every plain MQTT connect goes to")
    ap.add_argument("--broker-tls", type=hostport, default=None,
                    help="HOST:PORT every TLS MQTT connect goes to")
    ap.add_argument("--scenario", default=None, help="fault scenario JSON (see README.md)")
    ap.add_argument("--track", default=None, help="GNSS track: JSON points or NMEA file")
    ap.add_argument("--rx-chunk", type=int, default=1024,
                    help="max bytes per +CMQTTRXTOPIC/+CMQTTRXPAYLOAD chunk")
    ap.add_argument("--record", default=None, help="write the session as an .atx transcript")
    ap.add_argument("--seconds", type=float, default=0, help="exit after N s (0 = run forever)")
    ap.add_argument("--log", action="store_true", help="print commands and URCs to stderr")
    return ap.parse_args(argv)


async def _print_log(sim):
    seen = 0
    while True:
        await asyncio.sleep(0.1)
        m = sim.modem
        for _, kind, text in m.log[max(0, seen - m.log_dropped):]:
            print("%s %s" % (kind, text), file=sys.stderr, flush=True)
        seen = m.log_dropped + len(m.log)


async def amain(a):
    sim = ModemSim(persona=a.persona, broker=a.broker, broker_tls=a.broker_tls,
                   scenario=a.scenario, fast=a.fast, baud=a.baud, latency=a.latency,
                   boot_delay=a.boot_delay, port=a.port, pty=a.pty, track=a.track,
                   rx_chunk=a.rx_chunk, record=a.record, pace_input=a.pace_input,
                   net_rtt=a.net_rtt)
    port = await sim.start()
    print("LISTENING %d" % port, flush=True)
    if sim.pty_path:
        print("PTY %s" % sim.pty_path, flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    logger = asyncio.ensure_future(_print_log(sim)) if a.log else None
    try:
        await asyncio.wait_for(done.wait(), a.seconds or None)
    except asyncio.TimeoutError:
        pass
    finally:
        if logger is not None:
            logger.cancel()
        await sim.stop()


def _reexec_in_venv():
    """paho-mqtt lives in the repo's .venv: rerun there when started by a bare python3."""
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        venv_py = os.path.join(root, ".venv", "bin", "python")
        if os.path.exists(venv_py) and os.path.realpath(sys.executable) != os.path.realpath(
                venv_py):
            os.execv(venv_py, [venv_py, os.path.dirname(os.path.abspath(__file__))]
                     + sys.argv[1:])


def main(argv=None):
    a = parse(argv)
    _reexec_in_venv()
    asyncio.run(amain(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
