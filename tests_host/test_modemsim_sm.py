"""Modem simulator SM family (SIM800 MQTT application note, seed 004) against Mosquitto."""

from brokerfix import broker, mqtt_sub  # noqa: F401
from modemsim_at import run, sim_session

import asyncio


def test_sim800_boot_and_sm_flow(broker, mqtt_sub):  # noqa: F811
    mqtt_sub.subscribe("Topic1", qos=1)
    mqtt_sub.subscribe("Topic2", qos=1)

    async def t():
        async with sim_session("SIM800", broker=broker) as (sim, at):
            await at.cmd(b"AT+SMCONN", b"\r\nERROR\r\n")              # no bearer yet
            await at.cmd(b'AT+SAPBR=3,1,"Contype","GPRS"', b"\r\nOK\r\n")
            await at.cmd(b'AT+SAPBR=3,1,"APN","CMNET"', b"\r\nOK\r\n")
            await at.cmd(b"AT+SAPBR=2,1", b'\r\n+SAPBR: 1,3,"0.0.0.0"\r\n\r\nOK\r\n')
            await at.cmd(b"AT+SAPBR=1,1", b"\r\nOK\r\n")
            await at.cmd(b"AT+SAPBR=2,1", b'\r\n+SAPBR: 1,1,"10.84.17.161"\r\n\r\nOK\r\n')
            await at.cmd(b'AT+SMCONF="URL","117.131.85.139:6000"', b"\r\nOK\r\n")
            await at.cmd(b'AT+SMCONF="CLIENTID","sim800dev"', b"\r\nOK\r\n")
            await at.cmd(b'AT+SMCONF="CLEANSS",1', b"\r\nOK\r\n")
            await at.cmd(b'AT+SMCONF="KEEPALIVE",30', b"\r\nERROR\r\n")  # range 60-3600
            await at.cmd(b"AT+SMSTATE?", b"\r\n+SMSTATE: 0\r\n\r\nOK\r\n")
            await at.cmd(b"AT+SMCONN", b"\r\nOK\r\n")
            await at.cmd(b"AT+SMSTATE?", b"\r\n+SMSTATE: 1\r\n\r\nOK\r\n")
            await at.cmd(b'AT+SMSUB="Topic1",1', b"\r\nOK\r\n\r\n+SMSUB: 1,0\r\n")
            await at.cmd(b'AT+SMPUB="Topic1",1,0,"hello world"', b"\r\nOK\r\n")
            # our own message comes back; it may overtake the PUBACK report
            await at.expect_unordered(b"\r\n+SMPUB: 2,0\r\n",
                                      b'\r\n+SMPUBLISH: 1,"Topic1",11,"hello world"\r\n')
            assert mqtt_sub.wait_for("Topic1")[1:3] == (b"hello world", 1)
            # SIM7000 form: length, prompt, exact bytes, OK once published
            await at.cmd(b'AT+SMPUB="Topic2",5,1,1', b"\r\n> ")
            await at.send(b"a,b\"c")
            await at.expect(b"\r\nOK\r\n")
            assert mqtt_sub.wait_for("Topic2")[1] == b'a,b"c'
            await at.cmd(b'AT+SMUNSUB="Topic1"', b"\r\nOK\r\n\r\n+SMUNSUB: 3,0\r\n")
            await asyncio.to_thread(mqtt_sub.publish, "Topic1", b"unheard", 1)
            await at.cmd(b"AT+SMDISC", b"\r\nOK\r\n")
            await at.cmd(b"AT+SMSTATE?", b"\r\n+SMSTATE: 0\r\n\r\nOK\r\n")
            await at.cmd(b"AT+SMDISC", b"\r\nERROR\r\n")
            await at.cmd(b"AT+SAPBR=0,1", b"\r\nOK\r\n")
            assert sim.sm_state()["published"] == [("Topic1", b"hello world", 1, 0),
                                                   ("Topic2", b'a,b"c', 1, 1)]
            await at.cmd(b"AT+CMQTTSTART", b"\r\nERROR\r\n")          # no CMQTT on SIM800
    run(t())


def test_sim800_identity_and_cnact():
    async def t():
        async with sim_session("SIM800") as (sim, at):
            await at.cmd(b"ATI", b"\r\nSIM800 R14.18\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CGMR", b"\r\nRevision:1418B05SIM800L24\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CCID", b"\r\n89860318760238610932\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CBC", b"\r\n+CBC: 0,85,4012\r\n\r\nOK\r\n")
            await at.cmd(b'AT+CNACT=1,"cmnet"', b"\r\nOK\r\n\r\n+APP PDP: ACTIVE\r\n")
            await at.cmd(b"AT+CNACT?", b'\r\n+CNACT: 1,"10.84.17.161"\r\n\r\nOK\r\n')
            await at.cmd(b"AT+CMEE=1", b"\r\nOK\r\n")
            await at.cmd(b"AT+SMDISC", b"\r\n+CME ERROR: 3\r\n")
    run(t())
