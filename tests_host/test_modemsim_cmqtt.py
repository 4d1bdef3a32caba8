"""Modem simulator CMQTT family against a real Mosquitto: exact bytes per manual 003 ch.16."""

from brokerfix import broker, mqtt_sub  # noqa: F401
from modemsim_at import cert_bytes, run, sim_session

import asyncio


async def _prompt_send(at, line, data):
    await at.cmd(line, b"\r\n>")
    await at.send(data)
    await at.expect(b"\r\nOK\r\n")


async def _start_connect(at, client_id=b"SIMCom_client01", server=b"tcp://127.0.0.1:1883"):
    await at.cmd(b"AT+CMQTTSTART", b"\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n")
    await at.cmd(b'AT+CMQTTACCQ=0,"' + client_id + b'"', b"\r\nOK\r\n")
    await at.cmd(b'AT+CMQTTCONNECT=0,"' + server + b'",60,1',
                 b"\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n")


async def _subscribe(at, topic, qos=1):
    await at.cmd(b"AT+CMQTTSUB=0,%d,%d" % (len(topic), qos), b"\r\n>")
    await at.send(topic)
    await at.expect(b"\r\nOK\r\n\r\n+CMQTTSUB: 0,0\r\n")


async def _publish(at, topic, payload, qos, retain=0):
    await _prompt_send(at, b"AT+CMQTTTOPIC=0,%d" % len(topic), topic)
    await _prompt_send(at, b"AT+CMQTTPAYLOAD=0,%d" % len(payload), payload)
    await at.cmd(b"AT+CMQTTPUB=0,%d,60,%d" % (qos, retain), b"\r\nOK\r\n\r\n+CMQTTPUB: 0,0\r\n")


def test_full_flow_sub_pub_receive_disconnect(broker, mqtt_sub):  # noqa: F811
    mqtt_sub.subscribe("dev/#", qos=1)

    async def t():
        async with sim_session("SIM7600E", broker=broker) as (sim, at):
            await at.cmd(b"AT+CMQTTSTART", b"\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n")
            await at.cmd(b'AT+CMQTTACCQ=0,"SIMCom_client01"', b"\r\nOK\r\n")
            await at.cmd(b"AT+CMQTTACCQ?", b'\r\n+CMQTTACCQ: 0,"SIMCom_client01",0\r\n'
                         b'+CMQTTACCQ: 1,"",0\r\n\r\nOK\r\n')
            await _prompt_send(at, b"AT+CMQTTWILLTOPIC=0,10", b"esp32/will")
            await _prompt_send(at, b"AT+CMQTTWILLMSG=0,4,1", b"test")
            await at.cmd(b'AT+CMQTTCONNECT=0,"tcp://test.mosquitto.org:1883",60,1',
                         b"\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n")
            await at.cmd(b"AT+CMQTTCONNECT?", b'\r\n+CMQTTCONNECT: 0,'
                         b'"tcp://test.mosquitto.org:1883",60,1\r\n+CMQTTCONNECT: 1\r\n'
                         b"\r\nOK\r\n")
            await at.cmd(b"AT+CMQTTDISC?", b"\r\n+CMQTTDISC: 0,0\r\n+CMQTTDISC: 1,1\r\n"
                         b"\r\nOK\r\n")
            # two-step subscribe (seed 002 2.1.13/2.1.14) and inline subscribe
            await _prompt_send(at, b"AT+CMQTTSUBTOPIC=0,9,1", b"cmd/dev/1")
            await _prompt_send(at, b"AT+CMQTTSUBTOPIC=0,9,0", b"cmd/dev/2")
            await at.cmd(b"AT+CMQTTSUB=0", b"\r\nOK\r\n\r\n+CMQTTSUB: 0,0\r\n")
            await _subscribe(at, b"cmd/all")
            # publish qos0 and qos1 (+retain): reach the broker with those flags
            await _publish(at, b"dev/t0", b'{"v":0}', 0)
            assert mqtt_sub.wait_for("dev/t0") == ("dev/t0", b'{"v":0}', 0, False)
            await _publish(at, b"dev/t1", b'{"v":1}', 1, retain=1)
            assert mqtt_sub.wait_for("dev/t1") == ("dev/t1", b'{"v":1}', 1, False)
            await at.cmd(b"AT+CMQTTPUB=0,1,60", b"\r\n+CMQTTPUB: 0,18\r\n\r\nERROR\r\n")
            # inbound: payload with CR LF and "OK" inside arrives length-framed
            body = b'line1\r\nOK\r\n"x",1'
            await asyncio.to_thread(mqtt_sub.publish, "cmd/dev/1", body, 1)
            await at.expect(b"\r\n+CMQTTRXSTART: 0,9,%d\r\n+CMQTTRXTOPIC: 0,9\r\ncmd/dev/1\r\n"
                            b"+CMQTTRXPAYLOAD: 0,%d\r\n%s\r\n+CMQTTRXEND: 0\r\n"
                            % (len(body), len(body), body))
            await asyncio.to_thread(mqtt_sub.publish, "cmd/all", b"", 0)
            await at.expect(b"\r\n+CMQTTRXSTART: 0,7,0\r\n+CMQTTRXTOPIC: 0,7\r\ncmd/all\r\n"
                            b"+CMQTTRXEND: 0\r\n")
            # unsubscribe inline and two-step, disconnect, release, stop
            await at.cmd(b"AT+CMQTTUNSUB=0,7,0", b"\r\n>")
            await at.send(b"cmd/all")
            await at.expect(b"\r\nOK\r\n\r\n+CMQTTUNSUB: 0,0\r\n")
            await _prompt_send(at, b"AT+CMQTTUNSUBTOPIC=0,9", b"cmd/dev/1")
            await at.cmd(b"AT+CMQTTUNSUB=0,0", b"\r\nOK\r\n\r\n+CMQTTUNSUB: 0,0\r\n")
            await at.cmd(b"AT+CMQTTSTOP", b"\r\n+CMQTTSTOP: 21\r\n\r\nERROR\r\n")
            await at.cmd(b"AT+CMQTTDISC=0,120", b"\r\nOK\r\n\r\n+CMQTTDISC: 0,0\r\n")
            await at.cmd(b"AT+CMQTTDISC=0,120", b"\r\n+CMQTTDISC: 0,11\r\n\r\nERROR\r\n")
            assert sim.mqtt_state()["published"] == [("dev/t0", b'{"v":0}', 0, 0),
                                                     ("dev/t1", b'{"v":1}', 1, 1)]
            await at.cmd(b"AT+CMQTTREL=0", b"\r\nOK\r\n")
            await at.cmd(b"AT+CMQTTSTOP", b"\r\nOK\r\n\r\n+CMQTTSTOP: 0\r\n")
            await at.cmd(b"AT+CMQTTSTOP", b"\r\nERROR\r\n")
    run(t())


def test_long_payload_comes_in_chunks(broker, mqtt_sub):  # noqa: F811
    async def t():
        async with sim_session("A7600", broker=broker, rx_chunk=16) as (sim, at):
            await _start_connect(at, b"chunky")
            await _subscribe(at, b"big/topic/name/x")
            body = bytes(range(48, 48 + 40))
            await asyncio.to_thread(mqtt_sub.publish, "big/topic/name/x", body, 1)
            await at.expect(b"\r\n+CMQTTRXSTART: 0,16,40\r\n+CMQTTRXTOPIC: 0,16\r\n"
                            b"big/topic/name/x\r\n"
                            b"+CMQTTRXPAYLOAD: 0,16\r\n" + body[:16] + b"\r\n"
                            b"+CMQTTRXPAYLOAD: 0,16\r\n" + body[16:32] + b"\r\n"
                            b"+CMQTTRXPAYLOAD: 0,8\r\n" + body[32:] + b"\r\n"
                            b"+CMQTTRXEND: 0\r\n")
    run(t())


def test_manual_error_codes(broker):  # noqa: F811
    from broker import free_port
    closed_port = free_port()                 # nothing listens there

    async def t():
        async with sim_session("SIM7670") as (sim, at):           # no broker mapping
            await at.cmd(b'AT+CMQTTACCQ=0,"x"', b"\r\nERROR\r\n")   # service not started
            await at.cmd(b"AT+CMQTTSTART", b"\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n")
            await at.cmd(b"AT+CMQTTSTART", b"\r\n+CMQTTSTART: 23\r\n\r\nERROR\r\n")
            await at.cmd(b"AT+CMQTTTOPIC=0,5", b"\r\n+CMQTTTOPIC: 0,20\r\n\r\nERROR\r\n")
            await at.cmd(b'AT+CMQTTACCQ=0,"x"', b"\r\nOK\r\n")
            await at.cmd(b'AT+CMQTTACCQ=0,"y"', b"\r\n+CMQTTACCQ: 0,19\r\n\r\nERROR\r\n")
            await at.cmd(b"AT+CMQTTTOPIC=0,5", b"\r\n+CMQTTTOPIC: 0,11\r\n\r\nERROR\r\n")
            await at.cmd(b"AT+CMQTTPAYLOAD=0,4097", b"\r\nERROR\r\n")   # SIM76XX: 1-4096
            await at.cmd(b'AT+CMQTTCONNECT=0,"mqtt://127.0.0.1",60,1', b"\r\nERROR\r\n")
            await at.cmd(b'AT+CMQTTCONNECT=0,"tcp://127.0.0.1:%d",60,1' % closed_port,
                         b"\r\nOK\r\n\r\n+CMQTTCONNECT: 0,3\r\n")           # sock connect fail
            await at.cmd(b"AT+CMQTTCFG?", b"\r\n+CMQTTCFG: 0,1,120\r\n+CMQTTCFG: 1,1,120\r\n"
                         b"\r\nOK\r\n")
            await at.cmd(b'AT+CMQTTCFG="optimeout",0,24', b"\r\nOK\r\n")
            await at.cmd(b'AT+CMQTTCFG="checkUTF8",0,0', b"\r\nOK\r\n")
            await at.cmd(b"AT+CMQTTCFG?", b"\r\n+CMQTTCFG: 0,0,24\r\n+CMQTTCFG: 1,1,120\r\n"
                         b"\r\nOK\r\n")
            await at.cmd(b"AT+CMQTTREL=0", b"\r\nOK\r\n")
            await at.cmd(b"AT+CMQTTREL=0", b"\r\n+CMQTTREL: 0,20\r\n\r\nERROR\r\n")
            await at.cmd(b"AT+CMQTTSTOP", b"\r\nOK\r\n\r\n+CMQTTSTOP: 0\r\n")
    run(t())


def test_connect_busy_while_connect_in_flight(broker):  # noqa: F811
    async def t():
        async with sim_session("SIM7600E", broker=broker) as (sim, at):
            await at.cmd(b"AT+CMQTTSTART", b"\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n")
            await at.cmd(b'AT+CMQTTACCQ=0,"busy1"', b"\r\nOK\r\n")
            # CONNECT and SUBTOPIC on one line: SUBTOPIC runs before the CONNECT URC
            await at.cmd(b'AT+CMQTTCONNECT=0,"tcp://h:1883",60,1;+CMQTTSUBTOPIC=0,3,1',
                         b"\r\n+CMQTTSUBTOPIC: 0,14\r\n\r\nERROR\r\n")
    run(t())


def test_will_published_on_connection_loss(broker, mqtt_sub):  # noqa: F811
    mqtt_sub.subscribe("will/#", qos=1)
    scenario = {"faults": [{"kind": "connlost", "match": "AT+CSQ", "cause": 2}]}

    async def t():
        async with sim_session("SIM7600E", broker=broker, scenario=scenario) as (sim, at):
            await at.cmd(b"AT+CMQTTSTART", b"\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n")
            await at.cmd(b'AT+CMQTTACCQ=0,"willy"', b"\r\nOK\r\n")
            await _prompt_send(at, b"AT+CMQTTWILLTOPIC=0,11", b"will/device")
            await _prompt_send(at, b"AT+CMQTTWILLMSG=0,7,1", b"offline")
            await at.cmd(b'AT+CMQTTCONNECT=0,"tcp://x:1883",60,1',
                         b"\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n")
            await _publish(at, b"will/alive", b"1", 1)
            await at.cmd(b"AT+CSQ", b"\r\n+CSQ: 23,99\r\n\r\nOK\r\n")
            await at.expect(b"\r\n+CMQTTCONNLOST: 0,2\r\n")
            assert mqtt_sub.wait_for("will/device")[1:3] == (b"offline", 1)
            await at.cmd(b"AT+CMQTTTOPIC=0,3", b"\r\n+CMQTTTOPIC: 0,11\r\n\r\nERROR\r\n")
            await at.cmd(b'AT+CMQTTCONNECT=0,"tcp://x:1883",60,1',
                         b"\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n")
    run(t())


def _tls_setup_lines(broker, authmode):  # noqa: F811
    return [(b'AT+CSSLCFG="sslversion",0,4', None), (b'AT+CSSLCFG="authmode",0,%d' % authmode,
                                                      None),
            (b'AT+CSSLCFG="cacert",0,"cacert.pem"', None),
            (b'AT+CSSLCFG="clientcert",0,"clientcert.pem"', None),
            (b'AT+CSSLCFG="clientkey",0,"clientkey.pem"', None)]


async def _download(at, name, data):
    await at.cmd(b'AT+CCERTDOWN="%s",%d' % (name, len(data)), b"\r\n>")
    await at.send(data)
    await at.expect(b"\r\nOK\r\n")


def test_tls_mutual_auth_against_mosquitto(broker, mqtt_sub):  # noqa: F811
    mqtt_sub.subscribe("tls/#", qos=1)

    async def t():
        async with sim_session("SIM7600E", broker=broker) as (sim, at):
            await _download(at, b"cacert.pem", cert_bytes(broker.ca_path))
            await _download(at, b"clientcert.pem", cert_bytes(broker.client_cert))
            await _download(at, b"clientkey.pem", cert_bytes(broker.client_key))
            for line, _ in _tls_setup_lines(broker, 2):
                await at.cmd(line, b"\r\nOK\r\n")
            await at.cmd(b"AT+CMQTTSTART", b"\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n")
            await at.cmd(b'AT+CMQTTACCQ=0,"tlsdev",1', b"\r\nOK\r\n")
            await at.cmd(b"AT+CMQTTSSLCFG=0,0", b"\r\nOK\r\n")
            await at.cmd(b"AT+CMQTTSSLCFG?", b"\r\n+CMQTTSSLCFG: 0,0\r\n+CMQTTSSLCFG: 1,\r\n"
                         b"\r\nOK\r\n")
            await at.cmd(b'AT+CMQTTCONNECT=0,"tcp://localhost:8883",60,1',
                         b"\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n")
            await _publish(at, b"tls/up", b"secure", 1)
            assert mqtt_sub.wait_for("tls/up")[1] == b"secure"
            await at.cmd(b"AT+CMQTTDISC=0,120", b"\r\nOK\r\n\r\n+CMQTTDISC: 0,0\r\n")
            # server-only verification (authmode 1) with an SSL context set after DISC cleared it
            await at.cmd(b"AT+CMQTTSSLCFG?", b"\r\n+CMQTTSSLCFG: 0,\r\n+CMQTTSSLCFG: 1,\r\n"
                         b"\r\nOK\r\n")
            await at.cmd(b'AT+CSSLCFG="authmode",1,1', b"\r\nOK\r\n")
            await at.cmd(b'AT+CSSLCFG="cacert",1,"cacert.pem"', b"\r\nOK\r\n")
            await at.cmd(b"AT+CMQTTSSLCFG=0,1", b"\r\nOK\r\n")
            await at.cmd(b'AT+CMQTTCONNECT=0,"tcp://localhost:8883",60,1',
                         b"\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n")
            await at.cmd(b"AT+CMQTTDISC=0,120", b"\r\nOK\r\n\r\n+CMQTTDISC: 0,0\r\n")
            # a wrong CA fails the handshake (32); a missing file is 33
            await _download(at, b"cacert.pem", cert_bytes(broker.client_cert))
            await at.cmd(b'AT+CMQTTCONNECT=0,"tcp://localhost:8883",60,1',
                         b"\r\nOK\r\n\r\n+CMQTTCONNECT: 0,32\r\n")
            await at.cmd(b'AT+CCERTDELE="cacert.pem"', b"\r\nOK\r\n")
            await at.cmd(b'AT+CMQTTCONNECT=0,"tcp://localhost:8883",60,1',
                         b"\r\nOK\r\n\r\n+CMQTTCONNECT: 0,33\r\n")
    run(t())


def test_net_rtt_delays_the_qos1_publish_result_only(broker, mqtt_sub):  # noqa: F811
    mqtt_sub.subscribe("dev/#", qos=1)

    async def t():
        async with sim_session("SIM7600E", broker=broker, net_rtt=0.3) as (sim, at):
            await at.cmd(b"AT+CMQTTSTART", b"\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n")
            await at.cmd(b'AT+CMQTTACCQ=0,"rtt"', b"\r\nOK\r\n")
            await at.cmd(b'AT+CMQTTCONNECT=0,"tcp://broker:1883",60,1',
                         b"\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n")
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await _publish(at, b"dev/r1", b"one", 1)
            assert loop.time() - t0 >= 0.3  # the PUBACK crossed the simulated network
            assert mqtt_sub.wait_for("dev/r1") == ("dev/r1", b"one", 1, False)
            await _publish(at, b"dev/r0", b"zero", 0)  # qos 0: nothing to wait for
            assert mqtt_sub.wait_for("dev/r0") == ("dev/r0", b"zero", 0, False)
    run(t())


def test_pub_pending_busy_on_its_client_other_client_overlaps(broker, mqtt_sub):  # noqa: F811
    """While client 0's PUB waits for the PUBACK (300 ms round trip) its next TOPIC is
    refused with 14 "client is busy"; client 1 (its own ACCQ session) takes a whole
    TOPIC/PAYLOAD/PUB meanwhile: two publishes in flight, one per client (issue 14)."""
    mqtt_sub.subscribe("dev/#", qos=1)

    async def t():
        async with sim_session("SIM7600E", broker=broker, net_rtt=0.3) as (sim, at):
            await at.cmd(b"AT+CMQTTSTART", b"\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n")
            for i in (0, 1):
                await at.cmd(b'AT+CMQTTACCQ=%d,"two%d"' % (i, i), b"\r\nOK\r\n")
                await at.cmd(b'AT+CMQTTCONNECT=%d,"tcp://broker:1883",60,1' % i,
                             b"\r\nOK\r\n\r\n+CMQTTCONNECT: %d,0\r\n" % i)
            await _prompt_send(at, b"AT+CMQTTTOPIC=0,6", b"dev/p0")
            await _prompt_send(at, b"AT+CMQTTPAYLOAD=0,1", b"0")
            await at.cmd(b"AT+CMQTTPUB=0,1,60", b"\r\nOK\r\n")
            await at.cmd(b"AT+CMQTTTOPIC=0,6", b"\r\n+CMQTTTOPIC: 0,14\r\n\r\nERROR\r\n")
            await _prompt_send(at, b"AT+CMQTTTOPIC=1,6", b"dev/p1")
            await _prompt_send(at, b"AT+CMQTTPAYLOAD=1,1", b"1")
            await at.cmd(b"AT+CMQTTPUB=1,1,60", b"\r\nOK\r\n")
            await at.expect(b"\r\n+CMQTTPUB: 0,0\r\n")  # in the order they went out
            await at.expect(b"\r\n+CMQTTPUB: 1,0\r\n")
            await _publish(at, b"dev/p2", b"2", 1)  # client 0 free again
            assert sorted(mqtt_sub.wait_for("dev/p%d" % k)[1] for k in range(3)) == \
                [b"0", b"1", b"2"]
    run(t())
