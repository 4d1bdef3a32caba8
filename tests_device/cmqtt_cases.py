"""Transcript replays of the CMQTT driver and the TLS layer, shared by CPython and MicroPython.

Each case is ``(name, transcript, body, options)``: ``run_case(name, chunk)``
builds an Engine on a ``ReplayModem`` of ``tests_host/transcripts/<transcript>``
(which checks every byte the driver writes), runs ``body(ctx)`` (driver calls
and assertions on results, exceptions, events, Inbox contents and counters),
lets the reader consume every modem byte, and asserts the transcript finished.
``tests_host/test_cmqtt.py`` runs every case at chunk sizes 1, 2, 3, 7 and
seeded random; ``tests_device/test_cmqtt_device.py`` runs them on the unix port.
"""

import asyncio
import sys

import drivercases as D  # pyright: ignore[reportMissingImports]
from atmq import errtab
from atmq import tls as T
from atmq.cmqtt import CMQTTDriver
from atmq.compat import sleep_ms
from atmq.cmqtt import LATE_CONNECT, LATE_DISC, LATE_SUB, LATE_UNSUB
from atmq.events import (
    EV_CONNLOST,
    EV_MSG,
    EV_MSG_DROPPED,
    EV_NONET,
    EV_PUBACK,
    EV_URC,
)
from drivercases import (  # pyright: ignore[reportMissingImports]
    TRANSCRIPTS,
    DriverCtx,
    expect,
    settle,
)


PEM1 = (b"-----BEGIN CERTIFICATE-----\n"
        b"MIIBszCCAVmgAwIBAgIUQ2VydGlmaWNhdGUgZm9yIHRlc3RzIG9ubHkwCgYIKoZI\n"
        b"zj0EAwIwFjEUMBIGA1UEAwwLdGxvZy10ZXN0LWNhMB4XDTI2MDEwMTAwMDAwMFoX\n"
        b"-----END CERTIFICATE-----\n")
KEY1 = (b"-----BEGIN EC PRIVATE KEY-----\r\n"
        b"MHcCAQEEIBbW9jay1rZXktZm9yLXRlc3RzLW9ubHktbm90LWEtcmVhbC1rZXmg\r\n"
        b"-----END EC PRIVATE KEY-----\r\n")
SIXTY = b"0123456789" * 6


class Ctx(DriverCtx):
    def __init__(self, transcript, chunk, revision=None, inbox=(4, 64, 256)):
        super().__init__(TRANSCRIPTS + transcript, chunk, inbox)
        self.drv = CMQTTDriver(self.at, self.ev, self.inbox, 0, revision)
        self.drv.busy_backoff_ms = 1

    def message(self):
        """(topic, payload) of the oldest Inbox message, released."""
        ib = self.inbox
        s = ib.get()
        assert s >= 0, "no message in the inbox"
        m = (bytes(ib.topic(s)), bytes(ib.payload(s)))
        ib.release()
        return m


async def session(d, cid="tlog-0001"):
    await d.start()
    await d.connect("broker.example.net", 1883, cid)
    assert d.connected


# ---- cases -----------------------------------------------------------------------------------

async def bringup_plain(c):
    d = c.drv
    await d.configure(check_utf8=0, optimeout_s=30)
    await d.start()
    assert d.started and not d.connected
    await d.connect("broker.example.net", 1883, "tlog-0001", keepalive_s=30, clean=False,
                    user="dev", password="s3cret", will=("tlog/0001/status", "offline", 1, False))
    assert d.connected and d.optimeout_s == 30
    assert d.acquired == (b"tlog-0001", 0)
    # the setup's module is dropped after each call (issue 11: heap between bring-ups)
    assert "atmq.cmqttup" not in sys.modules
    assert (await d.is_connected()) is True
    await d.disconnect(60)
    assert not d.connected
    await d.stop()
    assert not d.started and d.acquired is None
    await d.stop()  # idempotent: REL/STOP answer ERROR on a stopped service
    assert d.stats["state_ok"] == 2 and d.stats["connects"] == 1
    assert c.events() == []


async def bringup_tls_mutual(c):
    d = c.drv
    await d.start()
    await d.configure_tls(T.aws_iot())
    await d.connect("a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com", 8883, "tlog-0001", tls=True)
    assert d.connected and d.acquired == (b"tlog-0001", 1)
    await d.publish("dt/tlog/0001/telemetry", b'{"rpm":812,"kph":47}', qos=1)
    await d.disconnect()
    await d.stop()
    assert d.stats["published"] == 1 and d.stats["pub_errors"] == 0


async def tls_connect_fail(c):
    d = c.drv
    await d.configure_tls(T.mosquitto_tls(cacert="ca.pem"))
    await d.start()
    e = await expect(d.connect("mqtt.example.org", 8883, "tlog-0002", user="tlog",
                               password="hunter2", tls=True), "CMQTT", 30)
    assert e.cls == errtab.FATAL
    assert "hunter2" not in str(e) and '"***"' in str(e) and "bad user name" in str(e)
    e = await expect(d.connect("mqtt.example.org", 8883, "tlog-0002", tls=True), "CMQTT", 32)
    assert not d.connected
    await d.connect("mqtt.example.org", 8883, "tlog-0002", tls=True)
    assert d.connected


async def publish_qos(c):
    d = c.drv
    await session(d)
    await d.publish("t/q0", b"zero", qos=0)
    await d.publish("t/q1", "one", qos=1, retain=True)
    await d.publish("t/q2", b"line1\r\nOK\r\n> not a prompt\r\nERROR\r\n+CMQTTPUB: 0,9\r\n",
                    qos=2, timeout_ms=120000)
    await d.publish("t/empty", b"", qos=1)
    await d.publish("t/utf8", "h\u00e9llo \u20ac", qos=1)
    e = await expect(d.publish("t/late", "x"), "CMQTT", 17)
    assert e.cls == errtab.TRANSIENT
    assert d.stats["published"] == 5 and d.stats["pub_errors"] == 1
    assert d.connected  # 17 (timeout) does not mean the link is down


async def subscribe(c):
    d = c.drv
    await session(d)
    await d.subscribe("cmd/tlog/0001/#", 1)
    await d.subscribe_many([("a/b", 0), ("c/+/d", 2)])
    await d.unsubscribe("a/b", two_step=True)
    await d.unsubscribe("cmd/tlog/0001/#")
    await expect(d.subscribe("x/y", 1), "CMQTT", 12)
    assert d.stats["subscribed"] == 3


async def inbound(c):
    d = c.drv
    await session(d)
    await d.subscribe("cmd/tlog/0001/#", 1)
    await settle(c)
    ev = c.events()
    assert [k for k, a, b in ev] == [EV_MSG, EV_MSG, EV_MSG], ev
    assert c.message() == (b"cmd/tlog/0001/ping", b"{}")
    assert c.message() == (b"cmd/tlog/0001/cfg", b'{"a":1,\r\nOK\r\n>"b":"+CMQTTRXEND: 0"\r\n}')
    assert c.message() == (b"cmd/tlog/0001/clear", b"")
    await d.publish("dt/tlog/0001", "42")  # a message arrives between OK and +CMQTTPUB
    await settle(c)
    assert c.events()[3][0] == EV_MSG
    assert c.message() == (b"cmd/tlog/0001/ping", b"{}")
    assert d.stats["received"] == 4 and d.stats["rx_dropped"] == 0
    assert d.stats["published"] == 1


async def inbound_badlen(c):
    await settle(c)
    ev = c.events()
    kinds = [k for k, a, b in ev]
    assert kinds[-1] == EV_MSG and EV_MSG not in kinds[:-1], ev
    assert c.message() == (b"cmd/tlog/0001/ok", b"fine")
    st = c.drv.stats
    assert st["rx_bad_len"] == 3 and st["received"] == 1, st
    assert c.at.unknown >= 1  # "hello" was read as a line, not skipped blindly


async def inbound_oversize(c):
    await settle(c)
    ev = c.events()
    assert ev[0] == (EV_MSG_DROPPED, 1, 100), ev
    assert ev[1] == (EV_MSG_DROPPED, 1, 2), ev
    assert ev[2][0] == EV_MSG and len(ev) == 3, ev
    assert c.message() == (b"cmd/tlog/0001/ok", b"fine")
    st = c.drv.stats
    assert st["rx_oversize"] == 2 and st["rx_dropped"] == 2 and st["received"] == 1
    assert c.inbox.oversize == 2 and c.at.unknown == 0


async def inbound_torn(c):
    await settle(c)
    ev = c.events()
    kinds = [(k, a) for k, a, b in ev]
    assert kinds == [(EV_MSG_DROPPED, 3), (EV_MSG, 0), (EV_MSG_DROPPED, 3), (EV_MSG_DROPPED, 3),
                     (EV_MSG_DROPPED, 3), (EV_MSG, 1), (EV_MSG_DROPPED, 2), (EV_MSG, 0)], ev
    assert c.message() == (b"t/2", b"two")
    assert c.message() == (b"t/3", b"three")
    st = c.drv.stats
    assert st["received"] == 3 and st["rx_torn"] == 4 and st["rx_overwritten"] == 1
    assert st["rx_dropped"] == 5 and c.at.unknown == 0


async def urcs_idle(c):
    d = c.drv
    await settle(c)
    assert c.events() == [(EV_PUBACK, 0, 0), (EV_URC, LATE_SUB, 0), (EV_URC, LATE_UNSUB, 11),
                          (EV_URC, LATE_CONNECT, 26), (EV_CONNLOST, 0, 3), (EV_URC, LATE_DISC, 0),
                          (EV_NONET, 0, 0)]
    assert not d.connected and not d.started and d.acquired is None
    st = d.stats
    assert st["late_results"] == 5 and st["connlost"] == 1 and st["nonet"] == 1
    assert c.at.unknown == 0


async def engine_free(c):
    d = c.drv
    await session(d)
    pub = asyncio.create_task(d.publish("dt/x", "1"))
    m = c.modem
    for _ in range(3000):  # until PUB is written and its OK read
        if m.written.endswith(b"AT+CMQTTPUB=0,1,60\r") and m.pending_rx() == 0:
            break
        await sleep_ms(1)
    r = await c.at.cmd(b"AT+CSQ", resp=b"+CSQ:")
    assert r.line(0).arg_int(0) == 23
    await pub
    assert d.stats["published"] == 1


async def connlost_midpublish(c):
    d = c.drv
    await session(d)
    e = await expect(d.publish("dt/tlog/0001", "hello"), "CMQTT", 11)
    assert e.cls == errtab.STATE and not d.connected
    assert (EV_CONNLOST, 0, 1) in c.events()
    await d.connect("broker.example.net", 1883, "tlog-0001")
    await settle(c)
    assert not d.connected
    assert c.events().count((EV_CONNLOST, 0, 2)) == 1
    await d.stop()
    assert d.stats["connlost"] == 2 and d.stats["pub_errors"] == 1


async def reboot_midpublish(c):
    from atmq.compat import ticks_diff, ticks_ms
    from atmq.link import ST_BOOTING, ST_SUBSCRIBED, Link
    from atmq.modem import Modem

    d = c.drv
    m = Modem(c.at, c.ev)
    m._session = True  # init() ran: boot URCs from now on are a reboot
    lk = Link(m, d)
    await session(d)
    lk.mark(ST_SUBSCRIBED)
    t0 = ticks_ms()
    e = await expect(d.publish("dt/tlog/0001", "hello"), "CMQTT", 11)
    took = ticks_diff(ticks_ms(), t0)
    assert took < 3000, took  # aborted at the boot URC, not after PUB's result timeout
    assert e.cls == errtab.STATE and not d.connected and not d.started
    await settle(c)
    assert m.reboots == 1 and not m.inited
    assert lk.sync() == ST_BOOTING and lk.mqtt_fresh  # rebuilt from "booting"
    await session(d)  # START, ACCQ, CONNECT again: the reboot ended the old service
    assert d.connected


async def connect_error_then_code(c):
    d = c.drv
    seen = []
    cmd = c.at.cmd

    async def spy(command, **kw):  # the timeouts the driver gives the engine
        seen.append((bytes(command), kw.get("timeout_ms")))
        return await cmd(command, **kw)

    c.at.cmd = spy
    await session(d)  # ERROR, then +CMQTTCONNECT: 0,19 later: connected already
    assert d.connected and d.stats["state_ok"] >= 1
    await d.disconnect(60)
    e = await expect(d.connect("broker.example.net", 1883, "tlog-0001", user="dev",
                               password="s3cret"), "CMQTT", 31)
    assert e.cls == errtab.FATAL
    assert "s3cret" not in str(e) and "s3cret" not in repr(e)  # issue 10 #5
    t = dict(seen)
    assert t[b"AT+CMQTTSTART"] >= 12000  # 003 s.16.2.1 max 12 s (002 s.2.1.1: 120 s)
    assert t[b"AT+CMQTTDISC=0,60"] >= 60000  # 16.2.9: the DISC's own <timeout>


async def connlost_before_ok(c):
    d = c.drv
    await session(d)
    await expect(d.publish("dt/y", "17"), "CMQTT", 11)
    assert (await d.is_connected()) is False  # the next command's exchange is intact
    await settle(c)
    assert c.events() == [(EV_CONNLOST, 0, 2), (EV_PUBACK, 0, 11)]
    assert d.stats["late_results"] == 1 and d.stats["pub_errors"] == 1


async def busy_retry(c):
    d = c.drv
    await session(d)
    d.sub_two_step = True
    await d.subscribe("esp32/ctrl", 1)
    await d.publish("esp32/data", "1.5")
    d.busy_retries = 1
    e = await expect(d.publish("esp32/data", "1.5"), "CMQTT", 14)
    assert e.cls == errtab.TRANSIENT
    assert d.stats["busy_retries"] == 3 and d.stats["published"] == 1
    assert d.stats["pub_errors"] == 1 and d.connected


async def reinit_started(c):
    d = c.drv
    await d.start(client_id="tlog-0001")
    assert d.started and d.acquired == (b"tlog-0001", 0)
    await d.connect("broker.example.net", 1883, "tlog-0001")
    assert d.connected and d.stats["state_ok"] == 2


async def connect_19_other_server(c):
    d = c.drv
    await d.start(client_id="tlog-0001")
    await d.connect("broker.example.net", 1883, "tlog-0001")
    assert d.connected and d.stats["connects"] == 1 and d.stats["state_ok"] == 1
    await d.connect("broker.example.net", None, "tlog-0001")  # 16.2.8: no port is 1883
    assert d.connected and d.stats["connects"] == 1 and d.stats["state_ok"] == 2


async def reinit_23_19(c):
    d = c.drv
    await d.start(client_id="tlog-0001")
    assert d.started and d.acquired == (b"tlog-0001", 0)
    await d.stop()
    assert not d.started and d.acquired is None
    assert d.stats["state_ok"] == 5


async def reinit_foreign(c):
    d = c.drv
    await d.start(client_id="tlog-0001")
    assert d.acquired == (b"tlog-0001", 0)


async def stale_started(c):
    d = c.drv
    d.started = True
    await d.connect("broker.example.net", 1883, "tlog-0001")
    assert d.connected and d.started and d.acquired == (b"tlog-0001", 0)


async def noconn_11(c):
    d = c.drv
    await session(d)
    e = await expect(d.publish("esp32/data", "x"), "CMQTT", 11)
    assert e.cls == errtab.STATE and "no connection" in str(e)
    assert not d.connected and c.events() == [(EV_CONNLOST, 0, -11)]
    d.connected = True
    assert (await d.is_connected()) is False and not d.connected


async def sslversion_oldfw(c):
    d = c.drv
    for _ in range(2):
        try:
            await d.configure_tls(T.aws_iot())
        except T.FirmwareError as e:
            assert e.cls == errtab.FATAL and e.revision == "LE11B02SIM7500A"
            s = str(e)
            assert "LE11B02SIM7500A" in s and "upgrade" in s and "sslversion" in s
        else:
            raise AssertionError("no FirmwareError")
    assert d.revision == "LE11B02SIM7500A"


async def sslversion_tls13(c):
    p = await T.configure_ssl(c.at, 0, T.aws_iot())
    assert p is not None and p["sslversion"] == 2 and p["sni"] is None
    # config tls_version "tls1.2": the number of this build's table (0 here, 3 classic)
    prof = {"sslversion": "tls1.2", "cacert": None, "ignorelocaltime": None,
            "negotiatetime": None}
    p = await T.configure_ssl(c.at, 0, prof)
    assert p is not None and p["sslversion"] == 0


async def certs(c):
    at = c.at
    await T.download_cert(at, "cacert.pem", PEM1)
    await T.download_cert(at, "clientkey.pem", KEY1)
    assert await T.list_certs(at) == ["cacert.pem", "clientcert.pem", "clientkey.pem"]
    assert (await T.delete_cert(at, "clientcert.pem")) is True
    assert (await T.delete_cert(at, "gone.pem")) is False
    assert (await T.delete_cert(at, "cacert.pem")) is True
    assert (await T.delete_cert(at, b"clientkey.pem")) is True
    assert await T.list_certs(at) == []


# ---- seed 002 worked examples (colleagues' transcripts, echo on) and seed 003 examples -----

async def _seed002_tail(c, d):
    await d.publish("dddrrrggghhhk", SIXTY, qos=1)
    await d.subscribe_many([("123456789", 1)])
    await d.subscribe("simcommsg", 1)
    await d.unsubscribe("simcommsg")
    await d.disconnect(120)
    await d.stop()
    assert d.stats["subscribed"] == 2 and d.stats["published"] == 1


async def seed002_3_1(c):
    d = c.drv
    await d.start()
    await d.connect("test.mosquitto.org", 1883, "client test0",
                    will=("0123456789", "qwerty", 1, False))
    await d.subscribe("simcommsg", 1)
    await d.publish("simcommsg", SIXTY, qos=1)
    await d.subscribe_many([("123456789", 1)])
    await d.unsubscribe("simcommsg")
    await d.disconnect(120)
    await d.stop()
    await settle(c)
    assert [k for k, a, b in c.events()] == [EV_MSG]
    assert c.message() == (b"simcommsg", SIXTY)


async def seed002_3_2(c):
    d = c.drv
    await d.start()
    await d.connect("test.mosquitto.org", 8883, "client test0", tls=True,
                    will=("0123456789", "qwerty", 1, False))
    await _seed002_tail(c, d)


async def seed002_3_3(c):
    d = c.drv
    await d.configure_tls({"cacert": "server_ca.pem", "ignorelocaltime": None,
                           "negotiatetime": None})
    await d.start()
    await d.connect("mqtts_server:port", None, "client test0", tls=True,
                    will=("0123456789", "qwerty", 1, False))
    await _seed002_tail(c, d)


async def seed002_3_4(c):
    d = c.drv
    await d.configure_tls({"cacert": "ca_cert.pem", "clientcert": "cert.pem",
                           "clientkey": "key_cert.pem", "ignorelocaltime": None,
                           "negotiatetime": None})
    await d.start()
    await d.connect("hooleeping.com", 8883, "client test0", tls=True,
                    will=("0123456789", "qwerty", 1, False))
    await _seed002_tail(c, d)


async def seed003_connect(c):
    d = c.drv
    d.started = True
    d.acquired = (b"a12mmmm", 0)
    await d.connect("120.27.2.154", 1883, "a12mmmm", keepalive_s=20)
    assert (await d.is_connected()) is True


async def seed003_disc(c):
    d = c.drv
    d.connected = True
    await d.disconnect(120)
    assert not d.connected


async def cfg_version_refused(c):
    d = c.drv
    await d.configure(check_utf8=0, version=4)
    await d.connect("broker.example.net", 1883, "tlog-0002")
    assert d.connected and d.version_refused and d.optimeout_s == 120
    assert d.stats["busy_retries"] == 1 and d.stats["connects"] == 1
    assert c.events() == []


CASES = (
    ("bringup_plain", "cmqtt/bringup_plain.atx", bringup_plain, {}),
    ("bringup_tls_mutual", "cmqtt/bringup_tls_mutual.atx", bringup_tls_mutual,
     {"revision": "SIM7600M21-A_V1.1"}),
    ("tls_connect_fail", "cmqtt/tls_connect_fail.atx", tls_connect_fail, {}),
    ("publish_qos", "cmqtt/publish_qos.atx", publish_qos, {}),
    ("subscribe", "cmqtt/subscribe.atx", subscribe, {}),
    ("inbound", "cmqtt/inbound.atx", inbound, {}),
    ("inbound_oversize", "cmqtt/inbound_oversize.atx", inbound_oversize,
     {"inbox": (4, 32, 64)}),
    ("inbound_torn", "cmqtt/inbound_torn.atx", inbound_torn, {"inbox": (2, 32, 64)}),
    ("inbound_badlen", "cmqtt/inbound_badlen.atx", inbound_badlen, {}),
    ("urcs_idle", "cmqtt/urcs_idle.atx", urcs_idle, {}),
    ("engine_free", "cmqtt/engine_free.atx", engine_free, {}),
    ("connlost_midpublish", "cmqtt/connlost_midpublish.atx", connlost_midpublish, {}),
    ("connlost_before_ok", "cmqtt/connlost_before_ok.atx", connlost_before_ok, {}),
    ("reboot_midpublish", "cmqtt/reboot_midpublish.atx", reboot_midpublish, {}),
    ("connect_error_then_code", "cmqtt/connect_error_then_code.atx", connect_error_then_code,
     {}),
    ("busy_retry", "cmqtt/busy_retry.atx", busy_retry, {}),
    ("reinit_started", "cmqtt/reinit_started.atx", reinit_started, {}),
    ("connect_19_other_server", "cmqtt/connect_19_other_server.atx",
     connect_19_other_server, {}),
    ("reinit_23_19", "cmqtt/reinit_23_19.atx", reinit_23_19, {}),
    ("reinit_foreign", "cmqtt/reinit_foreign.atx", reinit_foreign, {}),
    ("stale_started", "cmqtt/stale_started.atx", stale_started, {}),
    ("noconn_11", "cmqtt/noconn_11.atx", noconn_11, {}),
    ("sslversion_oldfw", "cmqtt/sslversion_oldfw.atx", sslversion_oldfw, {}),
    ("certs", "cmqtt/certs.atx", certs, {}),
    ("sslversion_tls13", "cmqtt/sslversion_tls13.atx", sslversion_tls13, {}),
    ("seed002_3_1", "seed002_3_1_mqtt_tcp.atx", seed002_3_1, {}),
    ("seed002_3_2", "seed002_3_2_mqtts_no_verify.atx", seed002_3_2, {}),
    ("seed002_3_3", "seed002_3_3_mqtts_verify_server.atx", seed002_3_3, {}),
    ("seed002_3_4", "seed002_3_4_mqtts_verify_both.atx", seed002_3_4, {}),
    ("seed003_connect", "seed003_16_2_08_cmqttconnect.atx", seed003_connect, {}),
    ("seed003_disc", "seed003_16_2_09_cmqttdisc.atx", seed003_disc, {}),
    ("cfg_version_refused", "cmqtt/cfg_version_refused.atx", cfg_version_refused, {}),
)

NAMES = tuple(c[0] for c in CASES)


async def run_case(name, chunk, timeout_ms=10000):
    return await D.run_case(CASES, Ctx, name, chunk, timeout_ms)
