"""tlog.capture: the engine's traffic in valid .atx files, secrets redacted before they
reach flash (MQTT credentials, SIM PIN, certificate bodies, key names), bounded in size
and number of files, and a failing flash never breaks the link."""

import os

from app_fakes import Clock

from atmq import atx
from tlog.capture import REDACTED, Capture, redact_command
from tlog.config import Config


class FakeAt:
    tap = None


def make(tmp_path, **cfg):
    at = FakeAt()
    c = Config(None, cfg)
    clock = Clock()
    cap = Capture(at, c, str(tmp_path / "capture"), clock=clock,
                  meta=lambda: {"model": "SIMCOM_SIM7600E", "revision": None})
    return cap, at, clock


def tx(cap, data):
    cap.tx(bytearray(data), len(data))


def rx(cap, data):
    buf = bytearray(256)
    buf[: len(data)] = data
    cap.rx(buf, len(data))  # the engine passes its whole chunk buffer and a count


def read(cap, name):
    meta, recs = atx.read(os.path.join(cap.folder, name))
    return meta, [(d, data) for _ln, d, _ms, data in recs]


def test_records_what_crossed_the_wire(tmp_path):
    cap, at, clock = make(tmp_path)
    st = cap.start()
    assert at.tap is cap and st["active"] and st["file"].endswith("cap-0.atx")
    tx(cap, b"AT+CSQ\r")
    clock.advance(30)
    rx(cap, b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
    assert cap.stop()["active"] is False and at.tap is None
    meta, recs = read(cap, "cap-0.atx")
    assert meta["model"] == "SIMCOM_SIM7600E" and "revision" not in meta
    assert b"".join(d for k, d in recs if k == ">") == b"AT+CSQ\r"
    assert b"".join(d for k, d in recs if k == "<") == b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"
    _m, full = atx.read(os.path.join(cap.folder, "cap-0.atx"))
    assert full[1][2] == 30  # the delay of the answer


def test_secrets_never_reach_the_file(tmp_path):
    cap, _at, _clock = make(tmp_path)
    cap.start()
    tx(cap, b'AT+CMQTTCONNECT=0,"tcp://mqtt.example:1883",60,1,"van-07","hunter2"\r')
    tx(cap, b'AT+CPIN="1234"\r')
    tx(cap, b"AT+CPIN=4321\r")
    tx(cap, b'AT+CGAUTH=1,1,"apnuser","apnpass"\r')
    tx(cap, b'AT+CSSLCFG="clientkey",0,"secret-key.pem"\r')
    tx(cap, b'AT+CCERTDOWN="client.key",64\r')
    rx(cap, b"\r\n>")
    tx(cap, b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n")
    rx(cap, b"\r\nOK\r\n")
    tx(cap, b"AT+CSQ\r")  # after the body: recorded as is
    cap.stop()
    text = open(os.path.join(cap.folder, "cap-0.atx")).read()
    for secret in ("hunter2", "van-07", "1234", "4321", "apnpass", "apnuser", "secret-key",
                   "PRIVATE KEY", "MIIEvQ"):
        assert secret not in text, secret
    assert "tcp://mqtt.example:1883" in text and "client.key" in text and "AT+CSQ" in text
    assert cap.redactions == 6
    _meta, recs = read(cap, "cap-0.atx")
    sent = [d for k, d in recs if k == ">"]
    assert sent[0] == (b'AT+CMQTTCONNECT=0,"tcp://mqtt.example:1883",60,1,"' + REDACTED
                       + b'","' + REDACTED + b'"\r')
    assert sent[2] == b"AT+CPIN=" + REDACTED + b"\r"


def test_redact_command_leaves_others_alone():
    assert redact_command(b"AT+CMQTTTOPIC=0,5\r") == (b"AT+CMQTTTOPIC=0,5\r", None)
    line, what = redact_command(b'AT+CMQTTCONNECT=0,"tcp://h:1",60,1\r')
    assert line == b'AT+CMQTTCONNECT=0,"tcp://h:1",60,1\r' and what == "AT+CMQTTCONNECT="


def test_rotation_is_bounded(tmp_path):
    cap, _at, _clock = make(tmp_path, capture_max_bytes=4096, capture_max_files=3)
    cap.start()
    line = b"\r\n+CGPSINFO: 4812.000000,N,00915.000000,E,211126,120000.0,400.0,10.0,90.0\r\n"
    for _ in range(600):
        rx(cap, line)
    cap.stop()
    names = sorted(os.listdir(cap.folder))
    assert len(names) == 3 and cap.files > 3
    for n in names:
        assert os.path.getsize(os.path.join(cap.folder, n)) < 4096 + 200
        read(cap, n)  # each one is a valid transcript
    assert names[-1] == "cap-%d.atx" % (cap.files - 1)


def test_flash_error_stops_capture_not_the_link(tmp_path):
    cap, at, _clock = make(tmp_path)
    cap.start()

    class Broken:
        n = 0

        def write(self, s):
            raise OSError(28, "ENOSPC")

        def close(self):
            pass

    f = cap._file
    assert f is not None
    f.f = Broken()  # type: ignore[assignment]  # the disk is full
    tx(cap, b"AT\r")  # must not raise into the engine
    assert cap.errors == 1 and not cap.active and at.tap is None


def test_numbering_continues_after_reboot(tmp_path):
    cap, _at, _clock = make(tmp_path)
    cap.start()
    cap.stop()
    cap2, _at2, _c2 = make(tmp_path)
    assert cap2.start()["file"].endswith("cap-1.atx")
