"""tlog.commands on CPython: every command with good input, and the bad inputs (malformed
JSON, no id, unknown command, bad value, oversize, not UTF-8, another device's topic)
answered with an error that names the problem; set persists and applies live keys."""

import asyncio
import json

from app_fakes import FakeClient

from tlog import config as config_mod
from tlog.commands import MAX_PAYLOAD, Commands
from tlog.lastgood import LastGood
from tlog.status import Topics

OWN = b"tlog/dev1/cmd"


class FakeSpool:
    def __init__(self):
        self.flushed = 0

    def flush(self):
        self.flushed += 1
        return 2

    def depth(self):
        return 5


class FakeUplink:
    def __init__(self):
        self.wake = asyncio.Event()


class FakeFix:
    lat_e7, lon_e7, alt_dm, speed_ckmh, course_cdeg, sats, hdop_x10 = (
        482000000, 92500000, 4000, 1852, 9000, 7, 9)
    epoch_s = 848620800


class FakeAcq:
    def __init__(self, fix):
        self.fix = fix

    async def locate(self):
        return self.fix


class FakeCapture:
    def __init__(self):
        self.active = False

    def start(self):
        self.active = True
        return {"active": True}

    def stop(self):
        self.active = False
        return {"active": False}

    def status(self):
        return {"active": self.active}


KEY = "00112233445566778899aabbccddeeff"


def signed(obj, key=KEY, dev="dev1", ctr=1):
    import signcmd

    return signcmd.sign_command(obj, key, dev, ctr)


class Ctx:
    def __init__(self, tmp_path, fix: "FakeFix | None" = FakeFix()):
        self.root = str(tmp_path)
        self.lastgood = LastGood(self.root)
        self.path = str(tmp_path / "config.json")
        self.cfg = config_mod.Config(self.path, {"device_id": "dev1", "mqtt_password": "s3cret"})
        self.applied = []
        self.spool = FakeSpool()
        self.uplink = FakeUplink()
        self.acq = FakeAcq(fix)
        self.capture = FakeCapture()
        self.rebooted = 0

    def uptime_s(self):
        return 42

    def apply(self, keys):
        self.applied.extend(keys)
        return [k for k in keys if k != "topic_prefix"]  # as the app: topics are per session

    async def reboot(self):
        self.rebooted += 1


def make(tmp_path, **kw):
    ctx = Ctx(tmp_path, **kw)
    client = FakeClient()
    return Commands(ctx, Topics("tlog", "dev1"), client), ctx, client


def ask(cm, payload, topic=OWN) -> dict:
    if isinstance(payload, (dict, list)):
        payload = json.dumps(payload).encode()
    r = asyncio.run(cm.handle(topic, payload))
    assert r is not None, "not answered"
    return r


def ignored(cm, payload, topic):
    return asyncio.run(cm.handle(topic, json.dumps(payload).encode()))


def test_ping(tmp_path):
    cm, _ctx, _c = make(tmp_path)
    assert ask(cm, {"id": "a1", "cmd": "ping"}) == {
        "id": "a1", "ok": True, "result": {"pong": True, "uptime_s": 42}}


def answers(cm, client, payload):
    """handle + answer as run() does: the answers that reached the broker, parsed."""
    client.broker.clear()

    async def go():
        r = await cm.handle(OWN, json.dumps(payload).encode())
        assert r is not None
        await cm.answer(r)
    asyncio.run(go())
    return [json.loads(p) for _t, p, _q, _r in client.broker]


def merged(acks):
    """The parts of one answer checked (numbered, "more" on all but the last, each under
    the 512-byte command slot) and their results joined; one plain answer as it is."""
    if len(acks) == 1 and "part" not in acks[0]:
        return acks[0]["result"]
    assert [a["part"] for a in acks] == list(range(1, len(acks) + 1)), acks
    assert [a["more"] for a in acks] == [True] * (len(acks) - 1) + [False]
    assert all(len(json.dumps(a)) <= 512 for a in acks), [len(json.dumps(a)) for a in acks]
    out = {}
    for a in acks:
        assert a["ok"] is True
        for k, v in a["result"].items():
            out[k] = out.get(k, []) + v if isinstance(v, list) else v
    return out


def test_get_one_all_and_secret_redacted(tmp_path):
    cm, ctx, client = make(tmp_path)
    r = ask(cm, {"id": 1, "cmd": "get", "key": "mqtt_port"})
    assert r == {"id": 1, "ok": True, "result": {"mqtt_port": 8883}}
    r = ask(cm, {"id": 3, "cmd": "get", "keys": ["nope"]})
    assert not r["ok"] and "nope" in r["error"] and "unknown key" in r["error"]
    # every key: in parts (each answer under the inbox slot), the schema's order, secrets ***
    acks = answers(cm, client, {"id": "x" * 64, "cmd": "get"})
    assert len(acks) > 2 and all(a["id"] == "x" * 64 for a in acks)
    got = merged(acks)
    assert list(got) == list(config_mod.SCHEMA) and got == ctx.cfg.redacted()
    assert got["mqtt_password"] == "***" and all(b"s3cret" not in p for *_x, p, _q, _r
                                                  in [("",) + m for m in client.broker])
    # a few keys that fit one answer: one plain answer, no part numbers
    acks = answers(cm, client, {"id": 4, "cmd": "get", "keys": ["mqtt_port", "mqtt_qos"]})
    assert acks == [{"id": 4, "ok": True, "result": {"mqtt_port": 8883, "mqtt_qos": 1}}]


def test_a_part_not_delivered_ends_the_answer(tmp_path):
    """A part whose publish fails every try is the last one sent (logged, counted): the
    operator sees "more": true without a next part and asks again."""
    cm, _ctx, client = make(tmp_path)
    client.plan = ["ok"] + ["modem"] * 3
    acks = answers(cm, client, {"id": 5, "cmd": "get"})
    assert [a["part"] for a in acks] == [1] and acks[0]["more"] is True
    assert client.calls == 4 and cm.ack_failures == 3


def test_set_validates_persists_and_applies_live(tmp_path):
    cm, ctx, _c = make(tmp_path)
    r = ask(cm, {"id": 7, "cmd": "set", "values": {"interval_moving_s": 2, "obd_baud": 9600}})
    assert r == {"id": 7, "ok": True,
                 "result": {"applied": ["interval_moving_s"], "reboot": ["obd_baud"]}}
    assert ctx.applied == ["interval_moving_s"]
    again = config_mod.load(ctx.path)  # persisted
    assert again.get("interval_moving_s") == 2 and again.get("obd_baud") == 9600


def test_set_live_key_the_app_cannot_apply_now_is_reported(tmp_path):
    cm, ctx, _c = make(tmp_path)
    ctx.cfg.set("cmd_key", KEY)
    r = ask(cm, signed({"id": 1, "cmd": "set", "key": "topic_prefix", "value": "fleet"}))
    assert r["result"] == {"applied": [], "reboot": ["topic_prefix"], "probation_s": 600}


def test_a_signed_link_set_that_cannot_be_written_leaves_no_probation(tmp_path, monkeypatch):
    """The probation is written before the config (a cut between them rolls back to the same
    link); a write that fails changes nothing, so it must not leave a probation behind (the
    next boot would roll back to the last good after a coverage gap).  A probation already
    pending (an earlier change of this boot) stays."""
    cm, ctx, _c = make(tmp_path)
    ctx.cfg.set("cmd_key", KEY)

    def broken():
        raise OSError(28, "ENOSPC")
    monkeypatch.setattr(ctx.cfg, "save", broken)
    r = ask(cm, signed({"id": 1, "cmd": "set", "key": "mqtt_host", "value": "b.example"}))
    assert not r["ok"] and "set failed" in r["error"]
    assert ctx.cfg.get("mqtt_host") == "" and ctx.lastgood.probation_s() == 0
    ctx.lastgood.start_probation(600)  # an earlier link change waits for its proof
    r = ask(cm, signed({"id": 2, "cmd": "set", "key": "mqtt_host", "value": "b.example"},
                       ctr=2))
    assert not r["ok"] and ctx.lastgood.probation_s() == 600


def test_a_set_stored_but_not_applied_now_is_answered_as_needing_a_reboot(tmp_path):
    """apply() failing (a MemoryError making the uplink's new buffer) after the values were
    written: the answer is not "set failed" (they are set, for the next boot)."""
    cm, ctx, _c = make(tmp_path)

    def apply(keys):
        raise MemoryError("memory allocation failed, allocating 4096 bytes")
    ctx.apply = apply  # pyright: ignore
    r = ask(cm, {"id": 9, "cmd": "set", "key": "batch_max_bytes", "value": 2048})
    assert r == {"id": 9, "ok": True, "result": {"applied": [], "reboot": ["batch_max_bytes"]}}
    assert config_mod.load(ctx.path).get("batch_max_bytes") == 2048


def test_set_bad_value_changes_nothing(tmp_path):
    cm, ctx, _c = make(tmp_path)
    r = ask(cm, {"id": 8, "cmd": "set", "values": {"interval_moving_s": 3, "mqtt_qos": 7}})
    assert r["id"] == 8 and not r["ok"]
    assert "mqtt_qos" in r["error"] and "out of range" in r["error"]
    assert ctx.cfg.get("interval_moving_s") == 1 and ctx.applied == []  # all or nothing
    r = ask(cm, {"id": 9, "cmd": "set", "key": "no_such_key", "value": 1})
    assert not r["ok"] and "no_such_key" in r["error"]
    r = ask(cm, {"id": 10, "cmd": "set", "key": "mqtt_tls"})
    assert not r["ok"] and '"value"' in r["error"]
    r = ask(cm, {"id": 11, "cmd": "set", "key": "obd_baud", "value": 'x"y'})
    assert not r["ok"] and "backslash" in r["error"]  # the quote arrives escaped: refused
    r = ask(cm, {"id": 12, "cmd": "set", "key": "payload_format", "value": "x'y"})
    assert not r["ok"] and "payload_format" in r["error"] and "x'y" in r["error"]


def test_malformed_inputs_get_errors_not_exceptions(tmp_path):
    cm, _ctx, _c = make(tmp_path)
    cases = [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"cmd": "ping"}', '"id"'),
        (b'{"id": true, "cmd": "ping"}', '"id"'),
        (b'{"id": [1], "cmd": "ping"}', '"id"'),
        (b"\xff\xfe", "UTF-8"),
        (b"", "not valid JSON"),
    ]
    for payload, words in cases:
        r = ask(cm, payload)
        assert r["ok"] is False and r["id"] is None and words in r["error"], (payload, r)
    r = ask(cm, {"id": "x", "cmd": "selfdestruct"})
    assert r["id"] == "x" and not r["ok"] and "unknown command 'selfdestruct'" in r["error"]
    r = ask(cm, {"id": "y"})
    assert not r["ok"] and "unknown command None" in r["error"]
    assert cm.errors == len(cases) + 2


def test_oversize_payload_refused_before_parsing(tmp_path):
    cm, _ctx, _c = make(tmp_path)
    big = json.dumps({"id": 1, "cmd": "ping", "pad": "x" * MAX_PAYLOAD}).encode()
    r = ask(cm, big)
    assert r == {"id": None, "ok": False,
                 "error": "payload of %d bytes is larger than %d" % (len(big), MAX_PAYLOAD)}


def test_a_command_too_large_for_the_inbox_slot_is_said_in_the_next_answer(tmp_path):
    """The app's inbox slot is 512 bytes without cmd_key/ota_key: a longer command is dropped
    by the inbox before its id could be read; the next answer counts it in "unanswered"."""
    from atmq.inbox import Inbox

    cm, ctx, client = make(tmp_path)
    ctx.inbox = ib = Inbox(2, 128, 512)  # pyright: ignore
    cm._inbox_lost = cm._inbox_count()
    assert ib.start(len(OWN), 600) == -1  # a 600-byte get of many keys: not kept
    acks = answers(cm, client, {"id": 2, "cmd": "ping"})
    assert acks[0]["id"] == 2 and acks[0]["unanswered"] == 1


def test_other_topics_are_ignored(tmp_path):
    cm, _ctx, _c = make(tmp_path)
    for t in (b"tlog/dev2/cmd", b"tlog/dev1/cmd/ack", b"tlog/dev1", b"other/dev1/cmd"):
        assert ignored(cm, {"id": 1, "cmd": "reboot"}, t) is None
    assert cm.foreign == 4 and cm.handled == 0 and not cm.reboot_pending


def test_locate_flush_capture(tmp_path):
    cm, ctx, _c = make(tmp_path)
    r = ask(cm, {"id": 1, "cmd": "locate"})
    assert r["ok"] and r["result"]["lat_e7"] == 482000000 and r["result"]["sats"] == 7
    r = ask(cm, {"id": 2, "cmd": "flush"})
    assert r["result"] == {"written": 2, "depth": 5} and ctx.uplink.wake.is_set()
    assert ask(cm, {"id": 3, "cmd": "capture", "action": "start"})["result"] == {"active": True}
    assert ask(cm, {"id": 4, "cmd": "capture"})["result"] == {"active": True}
    assert ask(cm, {"id": 5, "cmd": "capture", "action": "stop"})["result"] == {"active": False}
    r = ask(cm, {"id": 6, "cmd": "capture", "action": "explode"})
    assert not r["ok"] and "action" in r["error"]


def test_locate_without_fix(tmp_path):
    cm, _ctx, _c = make(tmp_path, fix=None)
    r = ask(cm, {"id": 1, "cmd": "locate"})
    assert r == {"id": 1, "ok": False, "error": "locate: no GNSS fix within the wait"}


def test_run_answers_on_ack_topic_and_reboots_after_answer(tmp_path):
    cm, ctx, client = make(tmp_path)

    async def go():
        t = asyncio.create_task(cm.run())
        await client.inbound.put((b"tlog/dev2/cmd", b'{"id":0,"cmd":"reboot"}'))
        await client.inbound.put((OWN, b'{"id":1,"cmd":"ping"}'))
        await client.inbound.put((OWN, b"garbage"))
        await client.inbound.put((OWN, b'{"id":2,"cmd":"reboot"}'))
        for _ in range(100):
            if ctx.rebooted:
                break
            await asyncio.sleep(0)
        t.cancel()

    asyncio.run(go())
    acks = [(t, json.loads(p), q) for t, p, q, _r in client.broker]
    assert [a[0] for a in acks] == ["tlog/dev1/cmd/ack"] * 3 and all(a[2] == 1 for a in acks)
    assert [a[1]["id"] for a in acks] == [1, None, 2]
    assert acks[2][1] == {"id": 2, "ok": True, "result": {"rebooting": True}}
    assert ctx.rebooted == 1


def test_log_command_returns_the_last_lines_bounded_and_redacted(tmp_path):
    from atmq import log as alog
    from tlog import fieldlog

    alog.reset()
    alog.set_level(console=alog.ERROR + 1)
    cm, app, _client = make(tmp_path)
    app.flog = fieldlog.install(app, str(tmp_path), app.cfg)  # pyright: ignore
    alog.add_secret("pw-secret-1")
    for i in range(30):
        alog.warn("t", "line %d pw-secret-1 %s", i, "y" * 60)

    def ask(**kw) -> dict:
        r = asyncio.run(cm.handle(OWN, json.dumps(dict(id=1, cmd="log", **kw)).encode()))
        assert r is not None
        return r

    res = merged(answers(cm, _client, dict(id=1, cmd="log", lines=5)))
    lines = res["lines"]
    assert len(lines) == 5 and lines[-1].endswith("line 29 <redacted> " + "y" * 60)
    assert res["warnings"] == 30 and res["left_out"] == 0
    # 30 lines of ~120 bytes, the RAM ring keeps log_ram_lines (16) of them: the newest
    # 1536 bytes of those, in parts under the slot
    res = merged(answers(cm, _client, dict(id=1, cmd="log", lines=50)))
    assert sum(len(x) + 4 for x in res["lines"]) <= 1536 and res["left_out"] > 0
    assert res["left_out"] + len(res["lines"]) == 16 and res["warnings"] == 30
    assert res["lines"][-1].endswith("line 29 <redacted> " + "y" * 60)
    res = merged(answers(cm, _client, dict(id=1, cmd="log", lines=3, source="flash")))
    assert [x.split(": ", 1)[1][:7] for x in res["lines"]] == ["line 27", "line 28",
                                                               "line 29"]
    for bad in ({"lines": 0}, {"lines": "5"}, {"source": "disk"}):
        r = ask(**bad)
        assert not r["ok"] and ("lines" in r["error"] or "source" in r["error"]), r
    assert all(b"pw-secret-1" not in m[1] for m in _client.broker)
    alog.reset()


def test_log_lines_long_or_full_of_escapes_stay_within_the_parts(tmp_path):
    """Parts are sized by the lines' JSON (a '"' is two bytes there, a control character
    six), and a line too long for one part is cut with "..." instead of leaving it and
    every older line out: the newest line of 2000 bytes used to empty the answer."""
    from atmq import log as alog

    alog.reset()
    alog.set_level(console=alog.ERROR + 1)
    cm, _ctx, client = make(tmp_path)
    for i in range(6):
        alog.warn("at", "line %d %s", i, '"\x01' * 40)  # AT traffic: quotes, controls
    alog.warn("t", "newest %s %s", "z" * 2000, "\u00e9" * 300)
    acks = answers(cm, client, dict(id="i" * 64, cmd="log", lines=10))
    res = merged(acks)  # every answer under 512 bytes
    lines = res["lines"]
    assert len(lines) >= 2 and lines[-1].endswith("...") and "newest zzz" in lines[-1]
    assert lines[-2].split(": ", 1)[1].startswith("line 5 ")
    assert res["left_out"] + len(lines) == 7
    assert sum(len(json.dumps(x)) + 2 for x in lines) <= 1536
    alog.reset()


def test_an_answer_whose_publish_fails_is_sent_again_after_the_reconnect(tmp_path):
    """The link drops just after a command arrived (a reboot or CONNLOST inside the
    answer's publish): the answer is kept and published again, bounded (issue 9 round 2)."""
    cm, ctx, client = make(tmp_path)
    client.plan = ["modem", "linkdown", "ok"]
    asyncio.run(cm.answer({"id": 7, "ok": True, "result": {"pong": True}}))
    assert client.calls == 3 and cm.ack_failures == 2
    assert [t for t, *_ in client.broker] == ["tlog/dev1/cmd/ack"]
    client.plan = ["modem"] * 5
    client.calls = 0
    asyncio.run(cm.answer({"id": 8, "ok": True, "result": None}))
    assert client.calls == 3  # bounded: three tries, then the answer is given up


def test_a_memory_error_loses_one_try_or_one_command_never_the_task(tmp_path):
    """At the heap's peak (the 32-bit frozen build at its floor) an answer's encoding or a
    command's handling can raise MemoryError: the try is counted and made again after a
    pause; a command that fails outright is counted and logged, and the next is answered
    (the task once died there and no command was answered for the rest of the boot)."""
    cm, _ctx, client = make(tmp_path)
    real = client.publish
    fails = [1]

    async def publish(topic, payload, qos=1, retain=False):
        if fails[0]:
            fails[0] -= 1
            raise MemoryError("memory allocation failed, allocating 320 bytes")
        await real(topic, payload, qos, retain)
    client.publish = publish
    asyncio.run(cm.answer({"id": 1, "ok": True, "result": {"pong": True}}))
    assert [json.loads(p)["id"] for _t, p, _q, _r in client.broker] == [1]
    assert cm.ack_failures == 1

    handle = cm.handle
    boom = [1]

    async def flaky(topic, payload):
        if boom[0]:
            boom[0] -= 1
            raise MemoryError("memory allocation failed, allocating 96 bytes")
        return await handle(topic, payload)
    cm.handle = flaky

    async def go():
        t = asyncio.create_task(cm.run())
        await client.inbound.put((OWN, b'{"id":2,"cmd":"ping"}'))
        await client.inbound.put((OWN, b'{"id":3,"cmd":"ping"}'))
        for _ in range(200):
            if len(client.broker) == 2:
                break
            await asyncio.sleep(0)
        t.cancel()
    asyncio.run(go())
    assert [json.loads(p)["id"] for _t, p, _q, _r in client.broker] == [1, 3]
    assert cm.errors == 1 and isinstance(cm.last_error, MemoryError)
