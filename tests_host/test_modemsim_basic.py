"""Modem simulator: bring-up, echo, errors, registration URCs, certificates, SSL config, reboot."""

from modemsim_at import At, run, sim_session

import asyncio

from modemsim import ModemSim


def test_boot_urcs_and_echo_on_by_default():
    async def t():
        sim = ModemSim(persona="SIM7600E", fast=True)
        port = await sim.start()
        r, w = await asyncio.open_connection("127.0.0.1", port)
        at = At(r, w)
        try:
            await at.expect(b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n\r\nPB DONE\r\n")
            await at.cmd(b"AT", b"AT\r\r\nOK\r\n")              # echo is on after boot
            await at.cmd(b"ATE0", b"ATE0\r\r\nOK\r\n")
            await at.cmd(b"AT", b"\r\nOK\r\n")
            await at.cmd(b"ATE1", b"\r\nOK\r\n")
            await at.cmd(b"AT+CSQ", b"AT+CSQ\r\r\n+CSQ: 23,99\r\n\r\nOK\r\n")
        finally:
            w.close()
            await sim.stop()
        assert sim.commands == ["AT", "ATE0", "AT", "ATE1", "AT+CSQ"]
    run(t())


def test_bringup_sim7600e_exact_bytes():
    async def t():
        async with sim_session("SIM7600E") as (sim, at):
            await at.cmd(b"ATI", b"\r\nManufacturer: SIMCOM INCORPORATED\r\n"
                         b"Model: SIMCOM_SIM7600E\r\nRevision: SIM7600M21-A_V1.1\r\n"
                         b"IMEI: 864764050000017\r\n+GCAP: +CGSM\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CGMR", b"\r\n+CGMR: LE11B02SIM7600M21-A\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CGSN", b"\r\n864764050000017\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CICCID", b"\r\n+ICCID: 89860318760238610932\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CPIN?", b"\r\n+CPIN: READY\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CREG?", b"\r\n+CREG: 0,1\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CGREG?", b"\r\n+CGREG: 0,1\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CEREG?", b"\r\n+CEREG: 0,1\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CPSI?", b"\r\n+CPSI: LTE,Online,505-01,0x309D,136092930,257,"
                         b"EUTRAN-BAND3,1275,4,4,-178,-1185,-789,7\r\n\r\nOK\r\n")
            await at.cmd(b"AT+COPS?", b'\r\n+COPS: 0,2,"46001",7\r\n\r\nOK\r\n')
            await at.cmd(b'AT+CGDCONT=1,"IP","connect.apn"', b"\r\nOK\r\n")
            await at.cmd(b"AT+CGDCONT?",
                         b'\r\n+CGDCONT: 1,"IP","connect.apn","0.0.0.0",0,0\r\n\r\nOK\r\n')
            await at.cmd(b"AT+IPADDR", b"\r\n+IP ERROR: Network not opened\r\n\r\nERROR\r\n")
            await at.cmd(b"AT+NETOPEN", b"\r\nOK\r\n\r\n+NETOPEN: 0\r\n")
            await at.cmd(b"AT+NETOPEN?", b"\r\n+NETOPEN: 1\r\n\r\nOK\r\n")
            await at.cmd(b"AT+NETOPEN",
                         b"\r\n+IP ERROR: Network is already opened\r\n\r\nERROR\r\n")
            await at.cmd(b"AT+IPADDR", b"\r\n+IPADDR: 10.84.17.161\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CBC", b"\r\n+CBC: 3.949V\r\n\r\nOK\r\n")
            await at.cmd(b'AT+CNTP="pool.ntp.org",0', b"\r\nOK\r\n")
            await at.cmd(b"AT+CNTP", b"\r\nOK\r\n\r\n+CNTP: 0\r\n")
            got = await at.cmd(b"AT+CCLK?", b'\r\n+CCLK: "')
            assert len(await at.until(b"\r\n\r\nOK\r\n")) == len(b'yy/MM/dd,hh:mm:ss+00"') + 8
            await at.cmd(b"AT+NETCLOSE", b"\r\nOK\r\n\r\n+NETCLOSE: 0\r\n")
            await at.cmd(b"AT+NETCLOSE", b"\r\n+NETCLOSE: 2\r\n\r\nERROR\r\n")
            assert got
    run(t())


def test_errors_follow_cmee_and_unknown_is_plain_error():
    async def t():
        async with sim_session("A7600") as (sim, at):
            await at.cmd(b"AT+NOSUCH", b"\r\nERROR\r\n")
            await at.cmd(b"AT+CFUN=9", b"\r\nERROR\r\n")          # CMEE=0: plain ERROR
            await at.cmd(b"AT+CMEE=1", b"\r\nOK\r\n")
            await at.cmd(b"AT+CFUN=9", b"\r\n+CME ERROR: 50\r\n")
            await at.cmd(b"AT+NOSUCH", b"\r\nERROR\r\n")          # unknown stays ERROR
            await at.cmd(b"AT+CMEE=2", b"\r\nOK\r\n")
            await at.cmd(b"AT+CFUN=9", b"\r\n+CME ERROR: Incorrect parameters\r\n")
            await at.cmd(b"AT+CMEE?", b"\r\n+CMEE: 2\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CGPS=1", b"\r\nERROR\r\n")          # A7600 has CGNSSPWR
            await at.cmd(b"AT+SMCONN", b"\r\nERROR\r\n")          # no SM family here
    run(t())


def test_registration_urc_modes_and_cfun():
    async def t():
        async with sim_session("SIM7670") as (sim, at):
            await at.cmd(b"AT+CREG=1", b"\r\nOK\r\n")
            await at.cmd(b"AT+CEREG=2", b"\r\nOK\r\n")
            await at.cmd(b"AT+CREG?", b"\r\n+CREG: 1,1\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CEREG?", b'\r\n+CEREG: 2,1,"309D","81C8A02"\r\n\r\nOK\r\n')
            await at.cmd(b"AT+CFUN=0", b"\r\nOK\r\n\r\n+CREG: 0\r\n\r\n+CEREG: 0\r\n")
            await at.cmd(b"AT+CSQ", b"\r\n+CSQ: 99,99\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CFUN?", b"\r\n+CFUN: 0\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CFUN=1",
                         b'\r\nOK\r\n\r\n+CREG: 1\r\n\r\n+CEREG: 1,"309D","81C8A02"\r\n')
    run(t())


def test_creset_reboots_with_boot_urcs_and_state_reset():
    async def t():
        async with sim_session("SIM7600E") as (sim, at):
            await at.cmd(b"AT+CMQTTSTART", b"\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n")
            await at.cmd(b"AT+CRESET", b"\r\nOK\r\n")
            await at.expect(b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n\r\nPB DONE\r\n")
            await at.cmd(b"AT", b"AT\r\r\nOK\r\n")              # echo back on after reboot
            await at.cmd(b"AT+CMQTTSTART", b"AT+CMQTTSTART\r\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n")
            assert sim.mqtt_state()["started"] is True
    run(t())


def test_ccertdown_exact_count_list_delete_with_echo():
    pem = b"-----BEGIN CERTIFICATE-----\r\nMIIBfake\r\n-----END CERTIFICATE-----\r\n"

    async def t():
        async with sim_session("SIM7600E", echo_off=False) as (sim, at):
            line = b'AT+CCERTDOWN="cacert.pem",%d' % len(pem)
            await at.cmd(line, line + b"\r\r\n>")
            await at.send(pem[:10])
            await at.send(pem[10:])
            await at.expect(pem + b"\r\nOK\r\n")                  # seed 001: data echoed
            await at.cmd(b"ATE0", b"ATE0\r\r\nOK\r\n")
            await at.cmd(b'AT+CCERTDOWN="clientkey.pem",4', b"\r\n>")
            await at.send(b"KEY!")
            await at.expect(b"\r\nOK\r\n")
            await at.cmd(b'AT+CCERTDOWN="bad.txt",4', b"\r\nERROR\r\n")
            await at.cmd(b'AT+CCERTDOWN="big.pem",10241', b"\r\nERROR\r\n")
            await at.cmd(b"AT+CCERTDOWN=?", b"\r\n+CCERTDOWN: (5-55),(1-10240)\r\n\r\nOK\r\n")
            await at.cmd(b"AT+CCERTLIST", b'\r\n+CCERTLIST: "cacert.pem"\r\n'
                         b'+CCERTLIST: "clientkey.pem"\r\n\r\nOK\r\n')
            await at.cmd(b'AT+CCERTDELE="clientkey.pem"', b"\r\nOK\r\n")
            await at.cmd(b'AT+CCERTDELE="clientkey.pem"', b"\r\nERROR\r\n")
            await at.cmd(b"AT+CCERTLIST", b'\r\n+CCERTLIST: "cacert.pem"\r\n\r\nOK\r\n')
            assert sim.certs == {"cacert.pem": pem}
    run(t())


def test_csslcfg_every_parameter():
    async def t():
        async with sim_session("SIM7600E") as (sim, at):
            for line in (b'AT+CSSLCFG="sslversion",3,3', b'AT+CSSLCFG="authmode",3,2',
                         b'AT+CSSLCFG="ignorelocaltime",3,0',
                         b'AT+CSSLCFG="negotiatetime",3,120',
                         b'AT+CSSLCFG="cacert",3,"ca.pem"',
                         b'AT+CSSLCFG="clientcert",3,"cert.pem"',
                         b'AT+CSSLCFG="clientkey",3,"key.pem"',
                         b'AT+CSSLCFG="password",3,"pw.pem"', b'AT+CSSLCFG="enableSNI",3,1',
                         b'AT+CSSLCFG="ignorecertCN",3,1', b'AT+CSSLCFG="use_tickets",3,1',
                         b'AT+CSSLCFG="ciphersuites",3,0x002F'):
                await at.cmd(line, b"\r\nOK\r\n")
            await at.cmd(b"AT+CSSLCFG=3", b'\r\n+CSSLCFG: 3,3,2,0,120,"ca.pem","cert.pem",'
                         b'"key.pem","pw.pem",1,1,1,0x002F\r\n\r\nOK\r\n')
            await at.cmd(b"AT+CSSLCFG=0",
                         b'\r\n+CSSLCFG: 0,4,0,1,300,"","","","",0,0,0,0\r\n\r\nOK\r\n')
            await at.cmd(b'AT+CSSLCFG="authmode",0,4', b"\r\nERROR\r\n")
            await at.cmd(b'AT+CSSLCFG="negotiatetime",0,5', b"\r\nERROR\r\n")
            await at.cmd(b'AT+CSSLCFG="cacert",0,"ca.txt"', b"\r\nERROR\r\n")
            await at.cmd(b'AT+CSSLCFG="sslversion",10,4', b"\r\nERROR\r\n")
            got = await at.cmd(b"AT+CSSLCFG=?", b'\r\n+CSSLCFG: "sslversion",(0-9),(0-4)\r\n')
            rest = await at.until(b"\r\nOK\r\n")
            assert rest.count(b"+CSSLCFG:") == 11 and got
    run(t())
