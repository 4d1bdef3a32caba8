"""Issue 10, replayed: hostile commands, configs, flash and files against the telelogger.

The attacks the adversarial pass found, each the way it was found, each asserting the
outcome (boots, refuses, rolls back, counts):

* end to end (the firmware on the MicroPython unix port, the SIMCom simulator, Mosquitto,
  a paho client publishing on ``<prefix>/<id>/cmd``): the two-value ``set`` that bricked
  the next boot is refused; a config.json that fails at boot runs on the last good config
  and says why in health; unsigned, escaped, forged and replayed link changes are refused;
  a signed change to a dead broker is rolled back after its probation; a ping flood is
  answered or counted;
* in process (CPython, the same modules): cross-key rules at every spool geometry, the
  modem family's limits, backslashes, escaped keys, a full flash (seqno lease, capture
  budget, drop reasons), unreadable and deleted spool files, the delivery watchdog;
* on the MicroPython unix port: HMAC-SHA256 and the spool's EISDIR path with the real os.
"""

import errno
import json
import os
import subprocess
import time

import pytest
from brokerfix import broker  # noqa: F401
from e2erig import Firmware, Rig

from atmq import atx, limits
from atmq.errors import ConfigError
from tlog import auth, config as C, fsutil, lastgood
from tlog.capture import Capture
from tlog.seqno import SeqNo
from tlog.spool import Spool
from tlog.watchdog import DeliveryProbe, Watchdog

import signcmd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
KEY = "5f1c0c4a9d2e4b7f8a6e3d2c1b0a99887766554433221100ffeeddccbbaa0011"
DEV = "hostile-1"

needs_mpy = pytest.mark.skipif(not os.path.exists(MICROPYTHON),
                               reason="no MicroPython unix port in .venv")


# ---- item 1: cross-key rules, unbrickable boot -----------------------------------------------

def test_every_spool_geometry_the_schema_accepts_opens(tmp_path):
    """Accepted by config <=> the spool can be built: no accepted value fails at boot."""
    for max_bytes in (16384, 17408, 32768):
        for segs in range(2, 257):
            values = dict(C.defaults(), spool_max_bytes=max_bytes, spool_max_segments=segs)
            try:
                C.check_all(values)
                accepted = True
            except ConfigError as e:
                accepted = False
                assert e.key == "spool_max_segments" and "at most" in str(e)
            try:
                Spool(str(tmp_path / ("s%d_%d" % (max_bytes, segs))), max_bytes=max_bytes,
                      max_segments=segs, batch_max_bytes=4096, max_record=128)
                opens = True
            except ValueError:
                opens = False
            assert accepted == opens, (max_bytes, segs)


def test_the_bricking_set_is_refused_and_nothing_written(tmp_path):
    p = str(tmp_path / "config.json")
    cfg = C.load(p)
    with pytest.raises(ConfigError) as ei:
        cfg.update({"spool_max_segments": 256, "spool_max_bytes": 16384})
    assert ei.value.key == "spool_max_segments" and "64 B" in str(ei.value)
    assert not os.path.exists(p) and cfg.get("spool_max_segments") == 16


def test_boot_config_falls_back_to_last_good_then_defaults(tmp_path):
    root = str(tmp_path)
    p = root + "/config.json"
    with open(p, "w") as f:
        json.dump({"mqtt_host": "new.example", "spool_max_segments": 256,
                   "spool_max_bytes": 16384}, f)
    lg = lastgood.LastGood(root)
    cfg, src, err = lastgood.boot_config(p, "cmqtt", lg)
    assert src == "defaults" and "spool_max_segments" in str(err) and cfg.get("mqtt_host") == ""
    good = dict(C.defaults(), mqtt_host="good.example", mqtt_password="pw-1234",
                mqtt_user="u")
    assert lg.reached(good)
    cfg, src, err = lastgood.boot_config(p, "cmqtt", lastgood.LastGood(root))
    assert src == "lastgood" and cfg.get("mqtt_host") == "good.example"
    assert cfg.path == p  # a later set writes a whole valid config.json again
    # a torn lastgood file is never used
    with open(root + "/" + lastgood.LASTGOOD, "r+b") as f:
        f.seek(5)
        f.write(b"#")
    assert lastgood.LastGood(root).load() is None


class _ProbationApp:
    def __init__(self, path, source=lastgood.FILE):
        self.cfg = C.load(path)
        self.cfg_source = source
        self.reboots = 0

    async def reboot(self):
        self.reboots += 1


def _probation_run(tmp_path, reached, source=lastgood.FILE):
    import asyncio

    root = str(tmp_path)
    os.makedirs(root)
    p = root + "/config.json"
    lg = lastgood.LastGood(root)
    lg.reached(dict(C.defaults(), mqtt_host="good.example"))
    cfg = C.Config(p, {"mqtt_host": "new.example"})
    cfg.save()
    lg = lastgood.LastGood(root)  # the next boot
    lg.start_probation(1)
    app = _ProbationApp(p, source)

    async def go():
        t = asyncio.create_task(lg.probation(app, period_ms=20))
        if reached:
            await asyncio.sleep(0.1)
            lg.reached(app.cfg.values())
        await asyncio.wait_for(t, 5)

    asyncio.run(go())
    return app, lg, C.load(p)


def test_probation_rolls_back_unless_the_broker_is_reached(tmp_path):
    app, lg, after = _probation_run(tmp_path / "a", reached=False)
    assert app.reboots == 1 and lg.rolled_back and after.get("mqtt_host") == "good.example"
    assert lg.probation_s() == 0
    app, lg, after = _probation_run(tmp_path / "b", reached=True)
    assert app.reboots == 0 and after.get("mqtt_host") == "new.example"
    kept = lastgood.LastGood(str(tmp_path / "b")).load()
    assert kept is not None and kept["mqtt_host"] == "new.example"
    app, lg, after = _probation_run(tmp_path / "c", reached=False, source=lastgood.LASTGOOD_SRC)
    assert app.reboots == 0 and lg.probation_s() == 0  # already on the last good: no reboot


# ---- item 8, 11, 13.6: values against the modem, escapes, one-line errors --------------------

def test_limits_table_agrees_with_the_drivers():
    from atmq import cmqtt, cmqttup, engine, smmqtt

    lim = limits.LIMITS
    assert lim["cmqtt"][1] == cmqttup.KEEPALIVE_MAX  # the connect's limits: its setup module
    assert lim["cmqtt"][2] + len("tcp://:65535") == cmqttup.ADDR_MAX
    assert lim["cmqtt"][3] == cmqttup.CLIENT_ID_MAX
    assert lim["cmqtt"][4] == lim["cmqtt"][5] == cmqttup.CRED_MAX
    assert lim["cmqtt"][6] == cmqtt.TOPIC_MAX and lim["cmqtt"][7] == cmqtt.PAYLOAD_MAX_SIM76XX
    assert lim["sim800"][0] == smmqtt.KEEPALIVE_MIN_SIM800
    assert lim["sim800"][1] == smmqtt.KEEPALIVE_MAX_SIM800
    assert lim["sim800"][7] == smmqtt.MSG_MAX_SIM800
    assert lim["sim70x0"][1] == smmqtt.KEEPTIME_MAX_SIM70X0
    import inspect

    tx = inspect.signature(engine.Engine.__init__).parameters["tx_max"].default
    assert limits.TX_MAX == tx
    assert limits.variant("sm", "SIM800") == "sim800"
    assert limits.variant("sm", "SIM7080") == "sim70x0"
    assert limits.variant("cmqtt", "A7670") == "cmqtt"


def test_connect_line_over_the_engine_limit_refused_at_load_and_set(tmp_path):
    p = tmp_path / "config.json"
    big = {"mqtt_host": "h" * 128, "mqtt_user": "u" * 256, "mqtt_password": "p" * 256,
           "mqtt_port": 8883, "mqtt_keepalive_s": 60}
    n = limits.connect_len("cmqtt", big["mqtt_host"], 8883, 60, big["mqtt_user"],
                           big["mqtt_password"])
    assert n > limits.TX_MAX  # the 683-byte AT+CMQTTCONNECT of the report
    p.write_text(json.dumps(big))
    C.load(str(p))  # the modem is not known: each value alone is valid
    with pytest.raises(ConfigError) as ei:
        C.load(str(p), "cmqtt")
    assert "600" in str(ei.value) and "p" * 20 not in str(ei.value)
    cfg = C.Config(str(tmp_path / "c2.json"), None, "cmqtt")
    cfg.update({"mqtt_host": "h" * 128, "mqtt_user": "u" * 200})
    with pytest.raises(ConfigError):
        cfg.update({"mqtt_password": "p" * 256})
    assert cfg.get("mqtt_password") == ""


def test_sim800_keepalive_range():
    cfg = C.Config(None, None, "sim800")
    with pytest.raises(ConfigError) as ei:
        cfg.set("mqtt_keepalive_s", 30)
    assert "60..3600" in str(ei.value) and "sim800" in str(ei.value)
    cfg.set("mqtt_keepalive_s", 60)
    C.Config(None, {"mqtt_keepalive_s": 30}, "cmqtt")  # fine on the SIM7600


@pytest.mark.parametrize("key", ["apn", "apn_user", "apn_pass", "mqtt_user", "mqtt_password",
                                 "topic_prefix"])
def test_backslash_sequences_refused_in_quoted_values(key):
    with pytest.raises(ConfigError) as ei:
        C.validate(key, "x\\22,\\0d\\0aAT")
    assert "backslash" in str(ei.value)
    if C.is_secret(key):
        assert "\\22" not in str(ei.value)


def test_errors_are_one_line_with_value_range_and_suggestion():
    cases = [("mqtt_port", "1883", "must be an integer 1..65535, got '1883'"),
             ("mqtt_hots", "x", "did you mean 'mqtt_host'?"),
             ("spool_max_segmnets", 2, "did you mean 'spool_max_segments'?"),
             ("mqtt_qos", 7, "7 is out of range 0..2")]
    for key, value, words in cases:
        with pytest.raises(ConfigError) as ei:
            C.validate(key, value)
        text = str(ei.value)
        assert words in text and "\n" not in text and key in text
        assert ei.value.args == (text,)  # no tuple repr in a traceback


# ---- item 6: JSON escapes and the capture redaction ----------------------------------------

_ESCAPED = [b'{"id":1,"cmd":"set","values":{"mqtt_passwo\\u0072d":"leak-me-1"}}',
            b'{"id":2,"cmd":"set","key":"sim_\\u0070in","value":"4711"}',
            b'{"id":3,"cmd":"set","values":{"\\u006dqtt_password":"leak-me-3"}}']


def test_escaped_keys_are_refused_by_the_firmware(tmp_path):
    import asyncio

    from app_fakes import FakeClient
    from tlog.commands import Commands
    from tlog.status import Topics

    class Ctx:
        cfg = C.Config(str(tmp_path / "config.json"))
        root = str(tmp_path)

    cm = Commands(Ctx(), Topics("tlog", DEV), FakeClient())
    for p in _ESCAPED:
        r = asyncio.run(cm.handle(("tlog/%s/cmd" % DEV).encode(), p))
        assert r is not None and not r["ok"] and "backslash" in r["error"]
    assert cm.escaped == 3 and Ctx.cfg.get("mqtt_password") == "" and Ctx.cfg.get("sim_pin") == ""


def test_capture_marker_is_the_redactors():
    from tlog import capture, rxredact

    assert capture.REDACTED == rxredact.REDACTED


def test_escaped_keys_never_reach_the_capture_in_clear(tmp_path):
    class FakeAt:
        tap = None

    for i, p in enumerate(_ESCAPED):
        data = b"\r\n+CMQTTRXPAYLOAD: 0,%d\r\n" % len(p) + p + b"\r\n+CMQTTRXEND: 0\r\nOK\r\n"
        for k in range(1, len(data)):  # two UART reads, cut at every offset
            cap = Capture(FakeAt(), C.Config(None), str(tmp_path / ("c%d_%d" % (i, k))))
            cap.start()
            cap.rx(data[:k], k)
            cap.rx(data[k:], len(data) - k)
            cap.stop()
            assert cap.path is not None
            with open(cap.path) as f:
                text = f.read()
            for secret in ("leak-me", "4711"):
                assert secret not in text, (p, k)
            _meta, recs = atx.read(cap.path)
            rx = b"".join(data for _ln, d, _ms, data in recs if d == "<")
            assert rx.endswith(b"<redacted>\r\n+CMQTTRXEND: 0\r\nOK\r\n"), (p, k, rx)


# ---- item 2: authenticated link changes ---------------------------------------------------

def test_hmac_matches_the_standard_library():
    import hashlib
    import hmac as std

    for klen in (16, 32, 64, 100):
        key = bytes(range(klen))
        for msg in (b"", b"x", b"{" * 300):
            assert auth.hmac_sha256(key, msg) == std.new(key, msg, hashlib.sha256).digest()


def test_signcmd_output_checks_and_replays_are_refused(tmp_path):
    a = auth.Auth(str(tmp_path / "cmdctr"), KEY)
    obj = {"id": 1, "cmd": "set", "values": {"mqtt_host": "evil.example"}}
    p = signcmd.sign_command(obj, KEY, DEV, 5)
    assert a.check(p, json.loads(p), DEV) is None and a.last_ctr == 5
    assert "replayed" in str(a.check(p, json.loads(p), DEV))
    assert "replayed" in str(auth.Auth(str(tmp_path / "cmdctr"), KEY).check(
        p, json.loads(p), DEV))  # the counter survived a reboot
    p2 = signcmd.sign_command(obj, KEY, DEV, 6)
    assert a.check(p2, json.loads(p2), "other-dev") == '"dev" is not this device'
    forged = p2.replace(b"evil.example", b"evil.exampl3")
    assert a.check(forged, json.loads(forged), DEV) == "bad MAC"
    assert "no cmd_key" in str(auth.Auth(str(tmp_path / "c2"), "").check(p2, json.loads(p2),
                                                                         DEV))
    assert a.refused == 3 and a.accepted == 1


def test_signcmd_cli(tmp_path):
    kf = tmp_path / "k"
    kf.write_text(KEY + "\n")
    out = subprocess.run(
        ["python3", os.path.join(ROOT, "tools", "signcmd.py"), "--key-file", str(kf),
         "--dev", DEV, "--ctr", "9", '{"id":1,"cmd":"reboot"}'],
        capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    msg = json.loads(out)
    assert msg["ctr"] == 9 and msg["dev"] == DEV and len(msg["mac"]) == 64
    assert auth.Auth(str(tmp_path / "c"), KEY).check(out.encode(), msg, DEV) is None
    bad = subprocess.run(["python3", os.path.join(ROOT, "tools", "signcmd.py"), "--key", "zz",
                          "--dev", DEV, "{}"], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "hex" in bad.stderr and "Traceback" not in bad.stderr


# ---- item 4: a full flash ------------------------------------------------------------------

def test_seqno_numbers_on_when_the_lease_cannot_be_written(tmp_path, monkeypatch):
    path = str(tmp_path / "seqno")
    sq = SeqNo(path, block=4)
    got = [sq.next() for _ in range(3)]
    real = fsutil.atomic_write

    def full(p, data):
        raise OSError(errno.ENOSPC, "ENOSPC")

    monkeypatch.setattr(fsutil, "atomic_write", full)
    got += [sq.next() for _ in range(10)]  # past the lease: numbering goes on from RAM
    assert sq.lease_errors >= 9 and sq.unleased
    monkeypatch.setattr(fsutil, "atomic_write", real)
    got.append(sq.next())  # the retry succeeds: the lease covers every number handed out
    assert got == list(range(14)) and not sq.unleased
    assert SeqNo(path, block=4).peek() >= 14  # never reused after a reboot


def test_capture_takes_a_bounded_share_and_stops_first(tmp_path):
    class FakeAt:
        tap = None

    free = [530 * 1024]
    sp = Spool(str(tmp_path / "spool"), max_bytes=512 * 1024, max_segments=16)
    cfg = C.Config(None, {"capture_max_bytes": 1048576, "capture_max_files": 4})
    cap = Capture(FakeAt(), cfg, str(tmp_path / "cap"), spool=sp, free=lambda p: free[0])
    st = cap.start()
    assert not st["active"] and "flash budget" in st["error"]  # 530 KB free, 512 KB promised
    free[0] = 4 * 1024 * 1024
    st = cap.start()
    assert st["active"] and st["file_max"] == (free[0] - 512 * 1024 - 16384) // 2 // 4
    line = b"+CSQ: 20,99\r\n" * 100
    for _ in range(10):
        cap.rx(line, len(line))
    assert cap.active
    free[0] = 512 * 1024  # the spool grew into the flash: capture is the one that stops
    for _ in range(400):
        cap.rx(line, len(line))
        if not cap.active:
            break
    assert not cap.active and "flash budget" in cap.status()["error"] and cap.errors == 0


def test_every_record_not_kept_is_counted_with_a_reason(tmp_path):
    from app_fakes import append_records

    sp = Spool(str(tmp_path / "s"), max_bytes=16384, max_segments=4)
    append_records(sp, 0, 1000)  # more than fits: the oldest segments go
    st = sp.stats()
    assert st["dropped"] > 0 and st["drops"]["full"] == st["dropped"]
    assert st["appended"] == st["dropped"] + st["depth"]


# ---- item 7: spool files broken from outside -------------------------------------------------

def _seg_names(d):
    return sorted(n for n in os.listdir(d) if n.endswith(".seg"))


def test_a_directory_where_a_segment_was_is_set_aside(tmp_path):
    from app_fakes import append_records

    d = str(tmp_path / "s")
    sp = Spool(d, max_bytes=16384, max_segments=8)
    append_records(sp, 0, 200)
    sp.close()
    depth = sp.depth()
    first = _seg_names(d)[0]
    held = Spool(d, max_bytes=16384, max_segments=8)
    lost = held._segs[0][2]
    os.remove(os.path.join(d, first))
    os.mkdir(os.path.join(d, first))  # EISDIR on open/read
    sp = Spool(d, max_bytes=16384, max_segments=8)
    st = sp.stats()
    assert st["set_aside"] == 1 and os.path.isdir(os.path.join(d, first + ".bad"))
    assert st["depth"] == depth - lost and st["drops"]["lost"] == lost
    assert st["appended"] == 200 and st["appended"] == st["dropped"] + st["depth"]
    append_records(sp, 200, 5)  # goes on
    assert sp.depth() == depth - lost + 5


def test_a_segment_deleted_from_outside_is_counted(tmp_path):
    from app_fakes import append_records

    d = str(tmp_path / "s")
    sp = Spool(d, max_bytes=16384, max_segments=8)
    append_records(sp, 0, 300)
    # no close: a kill.  The counters on flash are at most one segment old.
    names = _seg_names(d)
    assert len(names) >= 3
    gone = Spool(d, max_bytes=16384, max_segments=8)._segs[1][2]
    os.remove(os.path.join(d, names[1]))
    sp2 = Spool(d, max_bytes=16384, max_segments=8)
    st = sp2.stats()
    assert st["drops"]["lost"] == gone and st["appended"] >= 300 - 0
    assert st["appended"] == st["dropped"] + st["depth"] + st["acked"]


def test_appended_never_goes_backwards_after_a_kill(tmp_path):
    from app_fakes import append_records

    d = str(tmp_path / "s")
    sp = Spool(d, max_bytes=16384, max_segments=8)
    append_records(sp, 0, 10)
    b = sp.peek_batch(max_records=4)
    sp.ack(b)  # the cursor is saved here (appended 10)
    append_records(sp, 10, 20)  # flushed, the cursor not saved again: then a kill
    before = sp.appended
    again = Spool(d, max_bytes=16384, max_segments=8)
    assert again.appended == before == 30 and again.depth() == 26
    assert again.stats()["drops"]["lost"] == 0


def test_deleted_while_running_is_counted_not_raised(tmp_path):
    from app_fakes import append_records

    d = str(tmp_path / "s")
    sp = Spool(d, max_bytes=16384, max_segments=8)
    append_records(sp, 0, 300)
    n0 = sp._segs[0][2]
    os.remove(os.path.join(d, _seg_names(d)[0]))
    b = sp.peek_batch()
    assert len(b) > 0 and sp.stats()["drops"]["lost"] == n0


# ---- item 3 (watchdog half) ----------------------------------------------------------------

def test_bytes_without_delivery_starve_the_watchdog():
    from app_fakes import Clock

    from tlog.platform import NoWDT

    class Up:
        sent = 0

    class Sp:
        n = 5

        def depth(self):
            return self.n

    clock = Clock()
    up, sp = Up(), Sp()
    wd = Watchdog(NoWDT(), clock)
    cfg = C.Config(None, {"mqtt_host": "b.example"})
    wd.register("delivery", 3600000, DeliveryProbe(up, sp, cfg))
    for _ in range(359):  # bytes keep coming (the reader probe would say progress): no record
        clock.advance(10000)
        assert wd.tick()
    clock.advance(20000)
    assert not wd.tick() and wd.stuck == ["delivery"]
    up.sent = 3  # records delivered: fed again
    assert wd.tick()
    sp.n = 0
    clock.advance(7200000)
    assert wd.tick()  # nothing waiting is not a fault


def test_a_long_coverage_gap_does_not_reset_the_board_while_the_link_retries():
    from app_fakes import Clock

    from tlog.platform import NoWDT

    class Up:
        sent = 0

    class Sp:
        def depth(self):
            return 50  # records pile up in the spool: nothing can be delivered

    clock = Clock()
    progress = [0]  # type: list
    wd = Watchdog(NoWDT(), clock)
    cfg = C.Config(None, {"mqtt_host": "b.example"})
    wd.register("delivery", 3600000, DeliveryProbe(Up(), Sp(), cfg, lambda: progress[0]))
    for _ in range(4 * 360):  # four hours out of coverage, a bring-up attempt every 5 min
        clock.advance(10000)
        if clock.t % 300000 < 10000:
            progress[0] += 1
        assert wd.tick()
    for _ in range(361):  # the link stops working on itself (a hung task): starved
        clock.advance(10000)
        wd.tick()
    assert wd.stuck == ["delivery"]
    progress[0] = None  # parked in fatal (credentials refused): a reset cannot fix it
    clock.advance(10000)
    assert wd.tick()


# ---- on the MicroPython unix port ----------------------------------------------------------

_MPY_CHECK = r"""
import os
from tlog import auth
from tlog.spool import Spool
k = bytes(range(32))
print(auth._hex(auth.hmac_sha256(k, b"hostile")))
d = "%s"
sp = Spool(d, max_bytes=16384, max_segments=8)
b = bytearray(60)
for i in range(200):
    b[0] = i & 0xFF
    sp.append(b)
sp.close()
names = sorted(n for n in os.listdir(d) if n.endswith(".seg"))
os.remove(d + "/" + names[0])
os.mkdir(d + "/" + names[0])
sp = Spool(d, max_bytes=16384, max_segments=8)
st = sp.stats()
print(st["set_aside"], st["appended"], st["dropped"] + st["depth"], st["drops"]["lost"] > 0)
import json
p = %r
a = auth.Auth(d + "/ctr", "%s")
print(a.check(p, json.loads(p), "%s"), a.check(p, json.loads(p), "%s"))
"""


@needs_mpy
def test_hmac_and_eisdir_on_the_unix_port(tmp_path):
    import hashlib
    import hmac as std

    env = dict(os.environ, MICROPYPATH=".frozen:%s/lib:%s/firmware" % (ROOT, ROOT))
    signed = signcmd.sign_command({"id": 1, "cmd": "set", "key": "mqtt_host",
                                   "value": "b.example"}, KEY, DEV, 77)
    r = subprocess.run([MICROPYTHON, "-c", _MPY_CHECK % (tmp_path / "s", signed, KEY, DEV, DEV)],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    mac, counts, checks = r.stdout.strip().splitlines()
    assert checks == "None replayed: ctr 77 is not above 77"
    assert mac == std.new(bytes(range(32)), b"hostile", hashlib.sha256).hexdigest()
    assert counts == "1 200 200 True"


# ---- end to end: the firmware, the simulator, Mosquitto -------------------------------------

def _acks(rig):
    return [m["payload"] for m in rig.sub.snapshot() if m["topic"].endswith("/cmd/ack")]


def _ask(rig, payload, cid, timeout=20):
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    rig.sub.publish(rig.prefix + "cmd", payload)
    ok = rig.sub.wait(lambda: any(isinstance(a, dict) and a.get("id") == cid
                                  for a in _acks(rig)), timeout)
    assert ok, "no answer to %r; firmware log:\n%s" % (cid, rig.fw.log_text()[-3000:])
    return [a for a in _acks(rig) if isinstance(a, dict) and a.get("id") == cid][-1]


def _health(rig):
    return [m["payload"] for m in rig.sub.snapshot() if m["topic"].endswith("/health")]


def _online_count(rig):
    return sum(1 for m in rig.sub.snapshot()
               if m["topic"].endswith("/status") and m["payload"] == "online")


def _restart(rig, name):
    # as-is: the point is the firmware's fallback from a config.json it refuses
    fw = Firmware(rig.workdir, rig.fw.modem, rig.fw.config, config_as_is=True)
    fw.log_path = os.path.join(rig.workdir, name + ".log")
    rig.fw = fw
    fw.start()
    return fw


@needs_mpy
def test_e2e_remote_attacks_are_refused_and_a_bad_config_boots(broker, tmp_path):  # noqa: F811
    with Rig(broker, device_id=DEV, workdir=str(tmp_path),
             config_extra={"cmd_key": KEY, "health_interval_s": 10}) as rig:
        rig.start()
        assert rig.wait_until(lambda: rig.records_after(0) >= 2, 45), rig.fw.log_text()
        flash = rig.fw.flash
        assert rig.sub.wait(lambda: os.path.exists(flash + "/lastgood.json"), 10)
        # 1: the two values that bricked the next boot
        a = _ask(rig, {"id": "brick", "cmd": "set",
                       "values": {"spool_max_segments": 256, "spool_max_bytes": 16384}}, "brick")
        assert not a["ok"] and "spool_max_segments" in a["error"]
        # 2: redirect without a signature; an escaped key; a forged and a replayed signature
        a = _ask(rig, {"id": "redir", "cmd": "set",
                       "values": {"mqtt_host": "evil.example", "mqtt_tls": False}}, "redir")
        assert not a["ok"] and "signed" in a["error"]
        a = _ask(rig, '{"id":"esc","cmd":"set","values":{"mqtt_passwo\\u0072d":"leak-me-1"}}',
                 "esc")
        assert not a["ok"] and "backslash" in a["error"]
        good = signcmd.sign_command({"id": "s1", "cmd": "set", "key": "mqtt_keepalive_s",
                                     "value": 45}, KEY, DEV, 100)
        forged = good.replace(b"45", b"46")
        a = _ask(rig, forged, "s1")
        assert not a["ok"] and "bad MAC" in a["error"]
        a = _ask(rig, good.replace(b'"s1"', b'"s1"'), "s1")
        # the forged one was answered first under the same id: wait for the second answer
        assert rig.sub.wait(lambda: len([x for x in _acks(rig) if x.get("id") == "s1"]) == 2, 20)
        a = [x for x in _acks(rig) if x.get("id") == "s1"][-1]
        assert a["ok"] and a["result"]["probation_s"] == 600, a
        rig.sub.publish(rig.prefix + "cmd", good)  # replayed
        assert rig.sub.wait(lambda: len([x for x in _acks(rig) if x.get("id") == "s1"]) == 3, 20)
        a = [x for x in _acks(rig) if x.get("id") == "s1"][-1]
        assert not a["ok"] and "replayed" in a["error"]
        # 11: a ping flood: every ping answered or counted as unanswered
        for i in range(100):
            rig.sub.client.publish(rig.prefix + "cmd", json.dumps({"id": "f%d" % i,
                                                                  "cmd": "ping"}), qos=1)
        a = _ask(rig, {"id": "after", "cmd": "ping"}, "after", timeout=60)
        pongs = {x["id"] for x in _acks(rig) if str(x.get("id", "")).startswith("f")}
        unanswered = max([x.get("unanswered", 0) for x in _acks(rig)] + [0])
        print("E2E flood: %d of 100 pings answered, %d said unanswered" % (len(pongs),
                                                                          unanswered))
        assert len(pongs) + unanswered >= 95, (len(pongs), unanswered)
        assert len(pongs) == 100 or unanswered > 0
        assert rig.stop_firmware() == 0
        log = open(rig.fw.log_path).read()
        assert "leak-me-1" not in log and "Traceback" not in log
        # a config.json that fails at boot (written before these checks existed)
        with open(rig.fw.config) as f:
            cfg = json.load(f)
        assert cfg["mqtt_keepalive_s"] == 45  # the signed set was stored
        cfg.update(spool_max_segments=256, spool_max_bytes=16384)
        with open(rig.fw.config, "w") as f:
            json.dump(cfg, f)
        # and item 7: the spool segment being written replaced by a directory (EISDIR)
        spool_dir = os.path.join(flash, "spool")
        segs = sorted(n for n in os.listdir(spool_dir) if n.endswith(".seg"))
        victim = os.path.join(spool_dir, segs[-1] if segs else "0000ffff.seg")
        if os.path.exists(victim):
            os.remove(victim)
        os.mkdir(victim)
        t0 = time.monotonic()
        _restart(rig, "fallback")
        assert rig.wait_until(lambda: rig.records_after(t0) >= 2 and any(
            isinstance(h, dict) and h.get("config", {}).get("source") == "lastgood"
            for h in _health(rig)), 60), rig.fw.log_text()
        h = [h for h in _health(rig) if h.get("config", {}).get("source") == "lastgood"][-1]
        assert "spool_max_segments" in h["config"]["error"] and h["flash_free"] > 0
        assert h["spool"]["set_aside"] == 1 and os.path.isdir(victim + ".bad")
        assert h["cmd"]["unanswered"] == 0  # a new boot
        assert rig.stop_firmware() == 0


@needs_mpy
def test_e2e_signed_link_change_to_a_dead_broker_rolls_back(broker, tmp_path):  # noqa: F811
    with Rig(broker, device_id=DEV, workdir=str(tmp_path),
             config_extra={"cmd_key": KEY}) as rig:
        rig.start()
        assert rig.wait_until(lambda: rig.records_after(0) >= 2, 45), rig.fw.log_text()
        # TLS with a CA file the modem does not hold: the simulator refuses the connect
        # (+CMQTTCONNECT error 33, certificate not set), as a wrong broker would
        cmd = signcmd.sign_command({"id": "mv", "cmd": "set", "values": {
            "mqtt_tls": True, "tls_ca": "nosuch.pem", "link_probation_s": 10}}, KEY, DEV, 1)
        a = _ask(rig, cmd, "mv")
        assert a["ok"] and set(a["result"]["reboot"]) == {"mqtt_tls", "tls_ca",
                                                          "link_probation_s"}, a
        _ask(rig, {"id": "rb", "cmd": "reboot"}, "rb")
        rig.fw.proc.wait(30)
        assert rig.fw.proc.returncode == 0
        with open(rig.fw.config) as f:
            assert json.load(f)["tls_ca"] == "nosuch.pem"
        # the next boot cannot reach the broker: rolled back after 10 s, then it reboots
        fw = _restart(rig, "probation")
        assert fw.proc is not None
        fw.proc.wait(90)
        log = fw.log_text()
        assert "rolled back" in log, log
        with open(rig.fw.config) as f:
            back = json.load(f)
        assert back["tls_ca"] == "" and back["mqtt_tls"] is False
        online = _online_count(rig)
        t0 = time.monotonic()
        _restart(rig, "back")
        assert rig.wait_until(lambda: rig.records_after(t0) >= 2
                              and _online_count(rig) > online, 60), rig.fw.log_text()
        assert not os.path.exists(rig.fw.flash + "/probation")
        assert rig.stop_firmware() == 0
