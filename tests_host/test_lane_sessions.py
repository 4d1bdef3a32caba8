"""Two MQTT sessions on one CMQTT modem (tlog.lane, issue 14) against the simulator and
Mosquitto, plain and TLS: the second session (client index 1, id ``<id>-2``) connects
beside the main one, both have a publish in flight at once and both reach the broker;
the main driver's stop() ends client 1 first (DISC/REL 1, then DISC/REL 0, then STOP:
003 s.16.2.2 and 16.2.4, STOP after every client's DISC and REL)."""

import asyncio
import os
import sys

import pytest
from brokerfix import broker, mqtt_sub  # noqa: F401

from atmq import tls as T
from atmq.cmqtt import CMQTTDriver
from atmq.engine import Engine
from atmq.events import EventQueue
from atmq.inbox import Inbox
from tlog.lane import PublishLane

sys.path.insert(0, os.path.dirname(__file__))
from modemsim_at import cert_bytes, run, sim_session  # noqa: E402
from test_cmqtt import TcpStream  # noqa: E402


class Main:
    """What PublishLane reads of the MQTTClient: its driver, config and up state."""

    def __init__(self, driver, cfg):
        self.driver = driver
        self.cfg = cfg
        self.up = asyncio.Event()
        self.up.set()

    def isconnected(self):
        return self.driver.connected


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_two_sessions_publish_together_and_stop_releases_client_1_first(
        broker, mqtt_sub, tls):  # noqa: F811
    if tls and not broker.tls_port:
        pytest.skip("broker without a TLS listener (amqtt fallback)")
    mqtt_sub.subscribe("two/#", qos=1)
    prof = T.aws_iot() if tls else None
    cfg = {"host": "localhost" if tls else "broker.example.net", "port": 8883 if tls else 1883,
           "client_id": "lane-" + ("tls" if tls else "plain"), "keepalive_s": 30,
           "user": None, "password": None, "tls": prof, "connect_timeout_ms": 30000}

    async def t():
        async with sim_session("A7600", broker=broker) as (sim, at_raw):
            s = TcpStream(at_raw.r, at_raw.w)
            at = Engine(s)
            ib = Inbox(2, 32, 64)
            d0 = CMQTTDriver(at, EventQueue(8), ib, 0, sim.modem.revision())
            reader = asyncio.ensure_future(at.run())
            try:
                if tls:
                    for name, path in (("cacert.pem", broker.ca_path),
                                       ("clientcert.pem", broker.client_cert),
                                       ("clientkey.pem", broker.client_key)):
                        await T.download_cert(at, name, cert_bytes(path))
                    await d0.configure_tls(prof)
                await d0.start()
                await d0.connect(cfg["host"], cfg["port"], cfg["client_id"], tls=tls)
                lane = PublishLane(Main(d0, cfg), at, ib)
                await lane._connect()
                assert lane.isconnected() and lane.connects == 1
                n0 = len(sim.modem.commands)
                await asyncio.wait_for(asyncio.gather(
                    d0.publish("two/a", b"from 0", qos=1),
                    lane.publish("two/b", b"from 1", qos=1)), 20)
                # each publish crosses the UART whole (the drivers' shared ``_xfer``): the
                # first one's round trip starts before the second one's bytes go, never
                # TOPIC 0, TOPIC 1, PAYLOAD 0... with both round trips at the end
                steps = [c.split("=")[0][8:] + c.split("=")[1][:1]
                         for c in sim.modem.commands[n0:] if c.startswith("AT+CMQTT")]
                assert steps == ["TOPIC0", "PAYLOAD0", "PUB0", "TOPIC1", "PAYLOAD1", "PUB1"], \
                    steps
                assert not d0._xfer.locked()
                got = {}
                for topic in ("two/a", "two/b"):
                    got[topic] = (await asyncio.to_thread(mqtt_sub.wait_for, topic))[1]
                assert got == {"two/a": b"from 0", "two/b": b"from 1"}
                assert lane.published == 1 and d0.stats["published"] == 1
                # closed when the backlog is gone: DISC/REL of index 1 only, the main
                # session goes on; made again later, it connects by its own task
                n0 = len(sim.modem.commands)
                await lane.close()
                assert [c.split(",")[0] for c in sim.modem.commands[n0:]] == [
                    "AT+CMQTTDISC=1", "AT+CMQTTREL=1"]
                assert d0.peer is None and d0.connected
                await d0.publish("two/a", b"still", qos=1)
                lane = PublishLane(Main(d0, cfg), at, ib)
                task = asyncio.ensure_future(lane.run())
                for _ in range(200):
                    if lane.isconnected():
                        break
                    await asyncio.sleep(0.05)
                assert lane.isconnected(), lane.last_error
                await lane.publish("two/b", b"again", qos=1)
                assert (await asyncio.to_thread(mqtt_sub.wait_for, "two/b"))[1] in (
                    b"from 1", b"again")
                await asyncio.wait_for(lane.close(task), 10)
                assert task.done() and d0.peer is None
                lane = PublishLane(Main(d0, cfg), at, ib)
                await lane._connect()
                n0 = len(sim.modem.commands)
                await d0.stop()
                tail = [c for c in sim.modem.commands[n0:]
                        if c.startswith(("AT+CMQTTDISC", "AT+CMQTTREL", "AT+CMQTTSTOP"))]
                assert [c.split(",")[0] for c in tail] == [
                    "AT+CMQTTDISC=1", "AT+CMQTTREL=1", "AT+CMQTTDISC=0", "AT+CMQTTREL=0",
                    "AT+CMQTTSTOP"], tail
                cmds = sim.modem.commands
                assert any(c.startswith('AT+CMQTTACCQ=1,"%s-2"' % cfg["client_id"])
                           for c in cmds), cmds
            finally:
                reader.cancel()
                s.task.cancel()

    run(t())
