"""tlog.health: the report carries uptime, heap, spool depth and dropped count, the modem's
facts, signal and operator, error counters of every layer and reconnects; a failed publish
is counted, never raised; tlog.app's client config mapping (will, TLS, credentials)."""

import asyncio
import json

from app_fakes import FakeClient

from atmq.events import EventQueue
from atmq.modem import Modem
from tlog.app import client_config, motion_from
from tlog.commands import Commands
from tlog.config import Config
from tlog.health import Health, encode
from tlog.platform import NoWDT
from tlog.status import Topics
from tlog.timesrc import TimeSource
from tlog.watchdog import Watchdog


class Ring:
    overflows = 0


class FakeAt:
    commands, timeouts, errors, urcs, unknown = 120, 2, 1, 30, 0
    ring = Ring()

    def on(self, prefix, handler, nargs=-1):
        pass

    def on_store(self, prefix, target, first, last, slot, seq=-1, nargs=-1, then=None,
                 on_change=-1):
        pass

    def on_seen(self, prefix, handler, target, slot, bits, nargs=-1):
        pass

    def on_state(self, *a, **k):
        pass


class Spool:
    def stats(self):
        return {"depth": 17, "dropped": 3, "appended": 100, "acked": 80}


class Up:
    batches, sent, failures, bad_records, last_error = 9, 80, 2, 0, None


class Acq:
    rssi_dbm, records, errors, modem_errors, last_error, jumps = -79, 100, 0, 1, None, 0


class Client(FakeClient):
    reconnects = 4
    last_error = None

    def stats(self):
        return {"up": True, "published": 90, "failed": 1, "reconnects": 4, "ladder": {}}


class Ctx:
    def __init__(self):
        self.cfg = Config(None, {"health_interval_s": 10})
        self.at = FakeAt()
        self.modem = Modem(self.at, EventQueue(4))
        f: dict = self.modem.facts
        f.update(model="SIMCOM_SIM7600E", revision="SIM7600M21-A_V1.1", imei="861234050011223")
        self.modem.reg[2] = 1
        self.spool = Spool()
        self.client = Client()
        self.uplink = Up()
        self.acq = Acq()
        self.elm = None
        self.timesrc = TimeSource()
        self.wd = Watchdog(NoWDT())
        self.commands = Commands(self, Topics("tlog", "dev1"), self.client)
        self.link_owner: object = None  # App.link_owner (atmq.link.Link) when a test sets it

    def uptime_s(self):
        return 3600

    def heap_free(self):
        return 51234


def test_report_content():
    ctx = Ctx()
    h = Health(ctx, Topics("tlog", "dev1"), ctx.client)
    h.operator = "Example Net"
    rep = h.report()
    assert rep["uptime_s"] == 3600 and rep["heap_free"] == 51234
    assert rep["spool_depth"] == 17 and rep["dropped"] == 3
    assert rep["modem"] == {"model": "SIMCOM_SIM7600E", "revision": "SIM7600M21-A_V1.1",
                            "imei": "861234050011223", "operator": "Example Net",
                            "rssi_dbm": -79, "reg": 1, "supply_mv": None, "reboots": 0}
    assert rep["at"]["timeouts"] == 2 and rep["at"]["errors"] == 1
    assert rep["mqtt"]["failed"] == 1 and "ladder" not in rep["mqtt"]
    assert rep["reconnects"] == 4
    assert rep["uplink"]["failures"] == 2 and rep["acq"]["modem_errors"] == 1
    assert rep["cmd"] == {"handled": 0, "errors": 0, "foreign": 0, "unanswered": 0,
                          "auth_refused": 0}
    assert rep["flash_free"] > 0  # statvfs of the folder that stands for flash
    assert rep["time_src"] == "uptime" and rep["watchdog"]["stuck"] == []
    json.dumps(rep)  # JSON-ready


def test_report_says_link_state_and_why_it_is_parked():
    """Issue 9: health reads the link owner's state and, when parked, the fatal reason
    (the manual's code and meaning, the command masked)."""
    from atmq.errors import ModemError
    from atmq.link import Link

    ctx = Ctx()
    lk = Link(ctx.modem)
    ctx.link_owner = lk  # the App attribute health reads
    h = Health(ctx, Topics("tlog", "dev1"), ctx.client)
    assert h.report()["link"]["state"] == "off" and h.report()["link"]["fatal"] is None
    lk.fail(ModemError("CMQTT", 31, b'AT+CMQTTCONNECT=0,"tcp://h:8883",60,1,"u","pw-xyz"'))
    rep = h.report()["link"]
    assert rep["state"] == "fatal" and rep["fatals"] == 1
    assert rep["fatal"].startswith("CMQTT 31 (not authorized)") and "pw-xyz" not in rep["fatal"]


def test_publish_to_health_topic_and_failures_counted():
    ctx = Ctx()
    h = Health(ctx, Topics("tlog", "dev1"), ctx.client)
    asyncio.run(h.publish())
    t, p, q, r = ctx.client.broker[0]
    assert t == "tlog/dev1/health" and q == 1 and not r and json.loads(p)["spool_depth"] == 17
    ctx.client.plan = ["linkdown"]

    async def one_round():
        task = asyncio.create_task(h.run())
        for _ in range(20):
            await asyncio.sleep(0)
        task.cancel()

    asyncio.run(one_round())
    assert h.failures == 1 and h.sent == 1


def test_client_config_mapping():
    topics = Topics("fleet", "van-07")
    cfg = Config(None, {"mqtt_host": "mqtt.example.net", "mqtt_user": "van",
                        "mqtt_password": "pw", "tls_cert": "c.pem", "tls_key": "k.pem"})
    c = client_config(cfg, topics, "van-07")
    assert c["host"] == "mqtt.example.net" and c["port"] == 8883 and c["client_id"] == "van-07"
    assert c["user"] == "van" and c["password"] == "pw"
    assert c["will"] == ("fleet/van-07/status", b"offline", 1, False)  # CMQTT: no retain
    assert c["subscriptions"] == [("fleet/van-07/cmd", 1)]
    assert c["tls"] == {"cacert": "ca.pem", "clientcert": "c.pem", "clientkey": "k.pem",
                        "port": 8883}
    plain = Config(None, {"mqtt_host": "h", "mqtt_tls": False, "mqtt_port": 1883,
                          "mqtt_password": "orphan", "mqtt_client_id": "cid"})
    c = client_config(plain, topics, "van-07", will_retain=True)
    assert c["tls"] is None and c["user"] is None and c["password"] is None
    assert c["client_id"] == "cid" and c["will"][3] is True


def test_motion_from_config():
    m = motion_from(Config(None, {"interval_moving_s": 2, "interval_stationary_s": 30,
                                  "stationary_after_s": 120, "standby_after_s": 0}))
    assert m.moving_ms == 2000 and m.table == ((120000, 30000),) and m.standby_after_ms == 0


def test_link_retry_policy():
    from atmq.errors import ATTimeout, ConfigError, ModemError
    from atmq.tls import FirmwareError
    from tlog.app import _FATAL_RETRY_MS, _retry_ms

    old = FirmwareError(b'AT+CSSLCFG="sslversion",0,4', "LE11B02SIM7500A", "sslversion",
                        "upgrade the modem firmware")
    # issue 9: fatal errors park the link and retry on the long backoff (or at once on a
    # set/reconnect), never "not retrying" for good: a firmware upgrade or a config fix
    # over the air must be picked up without a site visit
    assert _retry_ms(old, 5000) == _FATAL_RETRY_MS
    assert _retry_ms(ConfigError("mqtt.host", "required"), 5000) == _FATAL_RETRY_MS
    assert _retry_ms(ModemError("CME", 10, b"AT+CPIN?"), 5000) == _FATAL_RETRY_MS  # no SIM
    assert _retry_ms(ModemError("CME", 30, b"AT+CEREG?"), 5000) == 5000  # no service yet
    assert _retry_ms(ATTimeout(b"AT", 1000), 20000) == 20000
    assert _retry_ms(OSError(104, "ECONNRESET"), 10000) == 10000


def test_flash_root_paths():
    from tlog.platform import flash_root

    assert flash_root({"fs_root": "/"}) + "/spool" == "/spool"  # ESP32: not "//spool"
    assert flash_root({"fs_root": "var/flash"}) == "var/flash"
    assert flash_root({"fs_root": "/"}, "/tmp/flash/") == "/tmp/flash"


def test_report_carries_the_log_tail_once_after_an_error():
    from atmq import log as alog

    alog.reset()
    alog.set_level(console=alog.ERROR + 1)
    ctx = Ctx()
    h = Health(ctx, Topics("tlog", "dev1"), ctx.client)
    alog.warn("link", "a warning alone brings no tail")
    rep = h.report()
    assert rep["log"] == {"errors": 0, "warnings": 1}
    alog.error("link", "attach refused")
    rep = h.report()
    assert rep["log"]["errors"] == 1 and rep["log"]["tail"][-1].endswith("attach refused")
    assert len(rep["log"]["tail"]) == 2
    assert "tail" not in h.report()["log"]  # reported once; the next error brings it again
    alog.reset()


def test_health_json_written_once_at_its_exact_size():
    """encode: the report's JSON in a bytearray of exactly its length, as json.dumps."""
    rep = {"a": [1, 2, {"b": None}], "c": "x\u00e9\"y", "d": True, "e": -3}
    out = encode(rep)
    assert isinstance(out, bytearray) and bytes(out) == json.dumps(rep).encode()


def test_a_memory_error_skips_one_report_never_the_task():
    """refresh() at the heap's peak (a MemoryError reading the supply voltage) skips that
    report, counted; the task lives on (it died there at 88K on the frozen build)."""
    ctx = Ctx()
    h = Health(ctx, Topics("tlog", "dev1"), ctx.client)

    async def refresh():
        raise MemoryError("memory allocation failed, allocating 176 bytes")
    h.refresh = refresh

    async def one_round():
        task = asyncio.create_task(h.run())
        for _ in range(20):
            await asyncio.sleep(0)
        done = task.done()
        task.cancel()
        return done

    assert asyncio.run(one_round()) is False  # still running (sleeping until the next one)
    assert h.failures == 1 and isinstance(h.last_error, MemoryError) and h.sent == 0
