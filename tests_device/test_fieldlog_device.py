"""atmq.log + tlog.fieldlog on MicroPython: levels, the RAM ring, the link context, the
manual's code in modem errors, redaction of every secret, the rotating flash files (never
more than their budget), errors written at once and warnings at flush."""

import os

import tlogfs

from atmq import log as alog
from atmq.errors import ATTimeout, ModemError
from tlog import fieldlog


class _Cfg:
    def __init__(self, values):
        self.v = values

    def get(self, k):
        return self.v.get(k)


class _Client:
    up = False

    def isconnected(self):
        return self.up


class _App:
    def __init__(self):
        self.client = _Client()
        self.modem = None
        self.last_link_error = None


def _quiet():
    alog.reset()
    alog.set_level(console=alog.ERROR + 1)  # keep the test output readable


def test_levels_ring_and_counts():
    _quiet()
    alog.set_level(sink=alog.WARN)
    got = []
    alog.set_sink(got.append)
    alog.info("t", "hello %d", 1)
    alog.debug("t", "not kept: console and sink are above DEBUG")
    alog.warn("t", "careful")
    alog.error("t", "bad %s", "thing")
    lines = alog.tail(10)
    assert len(lines) == 3 and lines[0].endswith(" I t: hello 1"), lines
    assert [x.split(" ", 2)[1] for x in got] == ["W", "E"], got
    assert alog.counts() == (1, 1)
    for i in range(40):  # the ring keeps the last KEEP (16) lines only
        alog.info("t", "n%d", i)
    last = alog.tail(100)
    assert len(last) == alog.KEEP == 16 and last[-1].endswith("n39") and last[0].endswith("n24")
    alog.set_keep(4)  # smaller (config log_ram_lines): the newest stay, in order
    assert alog.tail(100) == last[-4:]
    alog.info("t", "n40")
    assert alog.tail(100) == last[-3:] + [alog.tail(1)[0]] and alog.tail(1)[0].endswith("n40")
    alog.set_keep(8)  # larger: nothing lost, room for more
    alog.info("t", "n41")
    assert [x.split(": ")[1] for x in alog.tail(100)] == ["n37", "n38", "n39", "n40", "n41"]
    alog.info("t", "a literal %d without args")  # no args: not a format string
    assert alog.tail(1)[0].endswith("a literal %d without args")
    alog.reset()


def test_modem_error_line_has_table_code_class_meaning_command_and_link_state():
    _quiet()
    app = _App()
    alog.set_context(lambda: fieldlog.context(app))
    e = ModemError("CMQTT", 14, b"AT+CMQTTSUBTOPIC=0,9,1")
    app.last_link_error = e
    line = alog.warn("link", "subscribe failed: %s", alog.exc(e))
    assert " W link [link=down last=CMQTT 14]: subscribe failed: CMQTT 14 (client is busy)" \
        in line, line
    assert line.endswith("[AT+CMQTTSUBTOPIC=0,9,1], transient"), line
    app.client.up = True
    line = alog.error("at", "%s", alog.exc(ATTimeout(b"AT+CSQ", 9000)))
    assert "[link=up" in line and line.endswith(
        "E at [link=up last=CMQTT 14]: TIMEOUT: no final result within 9000 ms [AT+CSQ], "
        "transient"), line
    assert "[" not in alog.info("x", "info lines carry no context").split(":")[0]
    alog.reset()


def test_secrets_never_reach_a_line_the_ring_or_flash():
    _quiet()
    d = tlogfs.tmpdir("flogsec")
    app = _App()
    fl = fieldlog.install(app, d, _Cfg({"mqtt_password": "s3cret-pw", "apn_pass": "apn-pw-9",
                                       "apn": "internet", "sim_pin": "4711"}))
    e = ModemError("CME", 100, b'AT+CMQTTCONNECT=0,"tcp://h:1883",60,1,"user","s3cret-pw"')
    alog.error("link", "connect: %s", alog.exc(e))
    alog.warn("link", "apn password apn-pw-9 and %s", b"s3cret-pw")
    alog.warn("sim", "%s", alog.exc(ModemError("CME", 16, b'AT+CPIN="4711"')))
    alog.warn("t", "uptime 4711 s")  # the PIN's digits elsewhere are not a secret
    fl.flush()
    text = "\n".join(alog.tail(32) + fl.tail(50))
    assert "s3cret-pw" not in text and "apn-pw-9" not in text, text
    # the error's own mask (atmq.errors: the PIN argument) hides it before the log's redaction
    assert "[AT+CPIN=***]" in text and '"4711"' not in text and "4711" in alog.tail(1)[0], text
    assert text.count("<redacted>") >= 4 and "internet" not in text
    tlogfs.rmtree(d)
    alog.reset()


def test_errors_go_to_flash_at_once_warnings_at_flush():
    _quiet()
    d = tlogfs.tmpdir("flogflush")
    fl = fieldlog.install(_App(), d)
    alog.warn("a", "w1")
    assert fl.tail(10) == [alog.tail(1)[0]]  # pending, shown, not yet on flash
    assert fl.written == 0
    alog.error("a", "e1")
    assert fl.written == 2  # the error took the pending warning with it
    alog.warn("a", "w2")
    again = fieldlog.FieldLog(d)  # what a reboot finds: both, not w2
    assert [x.split(": ", 1)[1] for x in again.tail(10)] == ["w1", "e1"]
    fl.flush()
    assert [x.split(": ", 1)[1] for x in fieldlog.FieldLog(d).tail(10)] == ["w1", "e1", "w2"]
    tlogfs.rmtree(d)
    alog.reset()


def test_rotation_keeps_the_newest_within_the_budget():
    _quiet()
    d = tlogfs.tmpdir("flogrot")
    fl = fieldlog.FieldLog(d, max_bytes=4096)  # two files of at most 2048 bytes
    alog.set_sink(fl.sink)
    for i in range(300):
        alog.warn("r", "line %03d %s", i, "x" * 40)
        if i % 7 == 0:
            fl.flush()
    fl.flush()
    total = sum(os.stat(d + "/log/" + n)[6] for n in os.listdir(d + "/log"))
    assert total <= 4096, total
    last = fl.tail(5)
    assert last[-1].split(": ", 1)[1].startswith("line 299"), last
    nums = [int(x.split("line ")[1][:3]) for x in fl.tail(200)]
    assert nums == sorted(nums) and nums[-1] == 299 and nums[0] > 200
    tlogfs.rmtree(d)
    alog.reset()


def test_recovery_steps_are_logged_with_the_modem_error():
    _quiet()
    from atmq.recovery import RUNG_SESSION, STEP_FAIL, STEP_OK

    fieldlog.on_recovery(STEP_FAIL, RUNG_SESSION, ModemError("CMQTT", 11, b"AT+CMQTTSTART"))
    fieldlog.on_recovery(STEP_OK, RUNG_SESSION, 2)
    a, b = alog.tail(2)
    assert " W recovery: session failed: CMQTT 11 (" in a and "[AT+CMQTTSTART]" in a, a
    assert " I recovery: session restored the link (attempt 2)" in b, b
    alog.reset()
