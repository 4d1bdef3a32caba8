"""Transcript replays of the SM driver (smmqtt.SMDriver), shared by CPython and MicroPython.

Each case is ``(name, source, body, options)``: ``run_case(name, chunk)`` builds an
Engine on a ``ReplayModem`` (which checks every byte the driver writes), runs
``body(ctx)`` (driver calls and assertions on results, exceptions, events, Inbox
contents and counters), lets the reader consume every modem byte and asserts the
transcript finished.  ``source`` is a file under ``tests_host/transcripts/`` or a
function building the records from the seed 004 fixtures (the manual's worked
examples, which stop before two results the manual does not print).
``tests_host/test_smmqtt.py`` runs every case at chunk sizes 1, 2, 3, 7 and seeded
random; ``tests_device/test_smmqtt_device.py`` runs them on the unix port.
"""

import sys

import drivercases as D  # pyright: ignore[reportMissingImports]
from atmq import atx
from atmq.errors import ATError
from atmq.events import EV_CONNLOST, EV_MSG, EV_MSG_DROPPED, EV_PUBACK
from atmq.smmqtt import DROP_OVERSIZE, DROP_OVERWRITTEN, SMDriver
from drivercases import (  # pyright: ignore[reportMissingImports]
    TRANSCRIPTS,
    DriverCtx,
    expect,
    settle,
)


OK = b"\r\nOK\r\n"


class Ctx(DriverCtx):
    def __init__(self, source, chunk, variant="sim800", inbox=(4, 64, 64), line_max=512):
        if not isinstance(source, str):
            source = source()
        elif not source.startswith("/"):
            source = TRANSCRIPTS + source
        super().__init__(source, chunk, inbox, line_max)
        self.drv = SMDriver(self.at, self.ev, self.inbox, 0, None, variant)

    def messages(self):
        """Every (topic, payload) in the Inbox, released."""
        ib = self.inbox
        out = []
        while True:
            s = ib.get()
            if s < 0:
                return out
            out.append((bytes(ib.topic(s)), bytes(ib.payload(s))))
            ib.release()


# ---- seed 004 worked examples ------------------------------------------------------------------

def _seed(name):
    return atx.read(TRANSCRIPTS + name)


def seed004_4_1_records():
    """4.1 from AT+SMCONF="URL" on (the bearer is the Modem's: sim800_bearer in modem
    tests).  The manual prints no result for that SMCONF: the OK of 3.1 is added."""
    meta, a = _seed("seed004_4_1a_sim800_bearer.atx")
    _, b = _seed("seed004_4_1b_sim800_mqtt.atx")
    i = 0
    while not (a[i][1] == ">" and a[i][3].startswith(b"AT+SMCONF")):
        i += 1
    return meta, a[i:] + [(a[-1][0], "<", 0, OK)] + b


def seed004_4_2_records():
    """4.2 part 2 (TLS options, Azure, subscribe, receive, publish, disconnect).  The
    SMDISC result falls on a page break in the manual: its OK is added."""
    meta, b = _seed("seed004_4_2b_sim800_azure_mqtt.atx")
    return meta, b + [(b[-1][0], "<", 0, OK)]


AZURE_TOPIC = (b"devices/simcomdevice/messages/devicebound/%24.mid=17a3c1ba-9aed-437a-9923-"
               b"4426ba711167&%24.to=%2Fdevices%2Fsimcomdevice%2Fmessag")


async def seed004_4_1(c):
    d = c.drv
    d.reset()  # 4.1 starts from a modem with the note's defaults
    await d.start()
    await d.connect("117.131.85.139", 6000, None, keepalive_s=60, clean=True)
    assert d.connected and d.stats["connects"] == 1
    # the setup's module is dropped after each call (issue 11: heap between bring-ups)
    assert "atmq.smmqttup" not in sys.modules
    await d.subscribe("Topic1", 1)
    await d.publish("Topic1", "hello world", 1)
    await settle(c)
    assert c.events() == [(EV_MSG, 0, 0)]
    assert c.messages() == [(b"Topic1", b"hello world")]
    await d.unsubscribe("Topic1")
    await d.disconnect()
    assert not d.connected
    await c.at.cmd(b"AT+SAPBR=0,1")  # the Modem closes the bearer
    st = d.stats
    assert st["published"] == 1 and st["received"] == 1 and st["subscribed"] == 1
    assert c.at.echoes == 8  # the note's terminal has echo on: every echo skipped


async def seed004_4_2(c):
    d = c.drv
    d.reset()
    await d.configure_tls({"root": "C:\\USER\\HENRY_SSL.CRT", "root_len": 947,
                           "verify": True, "client_auth": True})
    await d.connect_azure("9AMIoTHub-HW.azure-devices.cn", "simcomdevice",
                          "n1AoqKmG6ltXWtNX1HL4zPAih/ug50D7P4rCv6pc/3c=", 86400)
    assert d.connected
    await d.subscribe("devices/simcomdevice/messages/devicebound/#", 1)
    await d.publish("devices/simcomdevice/messages/events/", b"hello world", 1)
    await d.disconnect()
    assert c.events() == [(EV_MSG, 0, 0)]
    assert c.messages() == [(AZURE_TOPIC, b"123213")]


# ---- SIM800 ------------------------------------------------------------------------------------

async def sim800_session(c):
    d = c.drv
    await d.start()
    await d.connect("broker.example.net", 1883, "tlog-0001", keepalive_s=120, clean=True,
                    user="dev", password="s3cret")
    assert d.connected
    assert (await d.is_connected()) is True
    # qos 0 is done at its OK: seed 004 3.5 shows "+SMPUB: <id>,<status>" for qos 1 only;
    # this transcript's modem sends one anyway, and it is counted as a late result
    await d.publish("tlog/0001/status", "online", qos=0, retain=True)
    await d.publish("tlog/0001/t", b"{a:1}", qos=1)
    await d.disconnect()
    assert (await d.is_connected()) is False
    # our own disconnect is no loss; the qos 0 result came after its OK: late
    assert not d.connected and c.events() == [(EV_PUBACK, 0, 0)], c.events()
    assert d.stats["late_results"] == 1
    await d.connect("broker.example.net", 1883, "tlog-0001", keepalive_s=120, clean=True,
                    user="dev", password="s3cret")
    await d.stop()
    await d.connect("broker.example.net", 1883, "tlog-0001", keepalive_s=120, clean=True,
                    user="dev", password="n3w")
    assert d.connected and d.stats["published"] == 2 and d.stats["connects"] == 3


async def sim800_inbound(c):
    d = c.drv
    d.reset()
    d.connected = True
    await d.subscribe("cmd/tlog/0001/#", 1)
    await settle(c)
    await d.unsubscribe("cmd/tlog/0001/#")
    ev = c.events()
    # "line\r\nend" is kept whole (its tail read raw by its declared length, issue 10
    # #10); the 4-slot inbox, nobody reading, overwrites the oldest twice
    assert ev == [(EV_MSG, 0, 0), (EV_MSG, 1, 0), (EV_MSG, 2, 0), (EV_MSG, 3, 0),
                  (EV_MSG_DROPPED, DROP_OVERWRITTEN, 0), (EV_MSG, 0, 0),
                  (EV_MSG_DROPPED, DROP_OVERSIZE, 80), (EV_MSG_DROPPED, DROP_OVERSIZE, 150),
                  (EV_MSG_DROPPED, DROP_OVERWRITTEN, 0), (EV_MSG, 1, 0)], ev
    got = c.messages()
    assert got == [(b"cmd/tlog/0001/ping", b""), (b"cmd/tlog/0001/x", b"OK> +S"),
                   (b"cmd/tlog/0001/two", b"line\r\nend"), (b"cmd/tlog/0001/ok", b"{}")], got
    st = d.stats
    assert st["received"] == 6 and st["rx_oversize"] == 2 and st["rx_torn"] == 0, st
    assert st["rx_overwritten"] == 2 and st["rx_dropped"] == 4, st
    assert c.at.unknown == 0  # no tail of a message was read as a line
    assert c.at.tok.truncations == 1


async def sim800_inject(c):
    from atmq.modem import Modem

    d = c.drv
    m = Modem(c.at, c.ev, family="sm")
    m._session = True  # init() ran: a RDY line now would mean a reboot
    d.reset()
    d.connected = True
    await d.subscribe("cmd/#", 1)
    await settle(c)
    assert m.reboots == 0 and d.connected  # nothing inside a message was read as a line
    assert c.events() == [(EV_MSG, 0, 0), (EV_MSG, 1, 0), (EV_MSG, 2, 0)], c.events()
    assert c.messages() == [(b"cmd/a", b"x\r\nRDY\r\n"), (b"cmd/b", b"\r\n+SMSTATE: 0\r\n"),
                            (b"cmd/c", b"ok")]
    assert c.at.unknown == 0 and (await d.is_connected()) is True


async def sim800_inbound_first(c):
    # the same stream read as it comes: the first message is intact with its quotes
    d = c.drv
    d.connected = True
    await d.subscribe("cmd/tlog/0001/#", 1)
    await settle(c)
    c.events()
    s = c.inbox.get()
    assert bytes(c.inbox.topic(s)) == b"cmd/tlog/0001/set"
    assert bytes(c.inbox.payload(s)) == b'{"a":"x,y","b":[1,2]}  '
    c.messages()
    await d.unsubscribe("cmd/tlog/0001/#")


async def sim800_errors(c):
    d = c.drv
    await d.connect("broker.example.net", 1883, "tlog-0001")
    e = await expect(d.subscribe("cmd/#", 1), "SM", 1)
    assert "Time Out" in str(e) and d.connected
    await expect(d.publish("t", "x"), "CME", 3)
    assert not d.connected
    assert c.events() == [(EV_CONNLOST, 0, -1)]
    await d.connect("broker.example.net", 1883, "tlog-0001")
    await expect(d.publish("t", "y"), "SM", 2)
    assert d.connected and d.stats["pub_errors"] == 2
    await d.connect("broker.example.net", 1883, "tlog-0001")  # already: state_ok
    assert d.connected and d.stats["state_ok"] == 1
    await d.stop()
    await d.stop()
    assert d.stats["state_ok"] == 2 and not d.connected
    await expect(d.connect("broker.example.net", 1883, "tlog-0001"), "CME", 3)
    assert not d.connected and len(c.events()) == 1


async def sim800_loss_pending(c):
    d = c.drv
    await d.connect("broker.example.net", 1883, "tlog-0001")
    await expect(d.publish("t", "x"), "SM", 2)
    assert not d.connected and c.events() == [(EV_CONNLOST, 0, 0)]
    assert (await d.is_connected()) is False
    await settle(c)
    assert c.events() == [(EV_CONNLOST, 0, 0), (EV_PUBACK, 0, 1)]
    assert d.stats["late_results"] == 1 and d.stats["pub_errors"] == 1


# ---- SIM70x0 -----------------------------------------------------------------------------------

async def sim70x0_session(c):
    d = c.drv
    tls = {"ssl_ctx": 0, "cacert": "ca.crt", "clientcert": "client.crt",
           "clientkey": "client.key", "sni": "broker.example.net"}
    await d.configure_tls(tls)
    await d.configure_tls(tls)  # the same profile: nothing sent again
    await d.connect("broker.example.net", 8883, "tlog-0001", keepalive_s=30, clean=False,
                    will=("tlog/0001/status", "offline", 1, True), tls=True)
    assert d.connected
    await d.subscribe("cmd/tlog/0001/#", 1)
    await d.publish("tlog/0001/t", b'{"v":"a,b"}\r\nOK\r\n>x', 1)
    await settle(c)
    assert c.events() == [(EV_MSG, 0, 0), (EV_MSG, 1, 0)]
    assert c.messages() == [(b"cmd/tlog/0001/set", b'{"a":"x,y","b":"",""}'),
                            (b"cmd/tlog/0001/empty", b"")]
    assert (await d.is_connected()) is True
    await d.unsubscribe("cmd/tlog/0001/#")
    await d.disconnect()
    await d.configure_tls(None)
    await d.connect("broker.example.net", 8883, "tlog-0001", keepalive_s=30, clean=False,
                    will=("tlog/0001/status", "offline", 1, True))
    assert d.connected and d.stats["published"] == 1 and d.stats["subscribed"] == 1


async def sim70x0_connlost(c):
    d = c.drv
    await d.connect("broker.example.net", 1883, "tlog-0001")
    # "+SMSTATE: 1" answers, "+SMSTATE: 0" follows in the same read: whether the loss is
    # handled before the query resumes depends on the chunking; either way it wins
    await d.is_connected()
    await settle(c)
    assert not d.connected
    assert c.events() == [(EV_CONNLOST, 0, 0)]
    try:
        await d.publish("t", b"ab")
        raise AssertionError("no error")
    except ATError:
        pass
    await d.connect("broker.example.net", 1883, "tlog-0001")
    await expect(d.publish("t", b"ab"), "CME", 3)
    assert not d.connected
    assert c.events() == [(EV_CONNLOST, 0, 0), (EV_CONNLOST, 0, -1)]
    assert d.stats["connlost"] == 2 and d.stats["pub_errors"] == 2


CASES = (
    ("seed004_4_1", seed004_4_1_records, seed004_4_1, {}),
    ("seed004_4_2", seed004_4_2_records, seed004_4_2, {"inbox": (2, 160, 32)}),
    ("sim800_session", "sm/sim800_session.atx", sim800_session, {}),
    ("sim800_inbound", "sm/sim800_inbound.atx", sim800_inbound, {"line_max": 160}),
    ("sim800_inbound_first", "sm/sim800_inbound.atx", sim800_inbound_first,
     {"line_max": 160, "inbox": (8, 64, 64)}),
    ("sim800_errors", "sm/sim800_errors.atx", sim800_errors, {}),
    ("sim800_inject", "sm/sim800_inject.atx", sim800_inject, {}),
    ("sim800_loss_pending", "sm/sim800_loss_pending.atx", sim800_loss_pending, {}),
    ("sim70x0_session", "sm/sim70x0_session.atx", sim70x0_session, {"variant": "sim70x0"}),
    ("sim70x0_connlost", "sm/sim70x0_connlost.atx", sim70x0_connlost, {"variant": "sim70x0"}),
)

NAMES = tuple(c[0] for c in CASES)


async def run_case(name, chunk, timeout_ms=10000):
    return await D.run_case(CASES, Ctx, name, chunk, timeout_ms)
