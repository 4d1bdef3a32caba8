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


# ---- RX: secrets split across UART reads -------------------------------------------------

_SET_KEY_FIRST = (b'\r\n+CMQTTRXSTART: 0,13,66\r\n+CMQTTRXTOPIC: 0,13\r\ntlog/v07/cmd\r\n'
                  b'+CMQTTRXPAYLOAD: 0,66\r\n'
                  b'{"id":7,"cmd":"set","key":"mqtt_password","value":"s3cret-Pa55"}'
                  b'\r\n+CMQTTRXEND: 0\r\n')
_SET_VALUE_FIRST = (b'\r\n+CMQTTRXPAYLOAD: 0,66\r\n'
                    b'{"id":7,"cmd":"set","value":"s3cret-Pa55","key":"mqtt_password"}'
                    b'\r\n+CMQTTRXEND: 0\r\n')
_SET_VALUES = (b'\r\n+SMPUBLISH: "tlog/v07/cmd","{"id":8,"cmd":"set","values":'
               b'{"apn_pass" : "s3cret-Pa55", "sim_pin":"7391"}}"\r\n')
_PEM = (b'\r\n+CFTRANTX: DATA,120\r\n-----BEGIN EC PRIVATE KEY-----\n'
        b'MHcCAQEEIBs3cretKEYbodyAAAAAAAAAAAAAAAAAAAAAAAAAAoAoGCCqGSM49\n'
        b'AwEHoUQDQgAEs3cretKEYbody==\n-----END EC PRIVATE KEY-----\r\n\r\nOK\r\n')
_PLAIN = (b'\r\n+CMQTTRXPAYLOAD: 0,61\r\n'
          b'{"id":9,"cmd":"set","key":"topic_prefix","value":"fleet-b"}\r\n+CMQTTRXEND: 0\r\n')


def rx_chunks(cap, data, cuts):
    """``data`` as UART reads ending at the offsets ``cuts``."""
    prev = 0
    for c in list(cuts) + [len(data)]:
        if c > prev:
            rx(cap, data[prev:c])
        prev = c


def captured_rx(cap):
    if cap._file is not None:
        cap._file.flush()  # the OS buffer, not what the redactor holds
    path = cap.path
    assert path is not None
    _meta, recs = read(cap, os.path.basename(path))
    return b"".join(d for k, d in recs if k == "<")


def capture_of(tmp_path, data, cuts, **cfg):
    cap, _at, _clock = make(tmp_path, **cfg)
    cap.start()
    rx_chunks(cap, data, cuts)
    cap.stop()
    path = cap.path
    assert path is not None
    with open(path) as f:
        text = f.read()
    return cap, text, captured_rx(cap)


def _cases():
    return [
        ("key first", _SET_KEY_FIRST, [b"s3cret", b"Pa55"],
         b'"key":"mqtt_password","value":"' + REDACTED + b'"}', 1),
        ("value first", _SET_VALUE_FIRST, [b"s3cret", b"Pa55"],
         b'"value":"' + REDACTED + b'","key":"mqtt_password"}', 1),
        ("values object", _SET_VALUES, [b"s3cret", b"Pa55", b"7391"],
         b'{"apn_pass" : "' + REDACTED + b'", "sim_pin":"' + REDACTED + b'"}}', 2),
        ("pem key", _PEM, [b"s3cret", b"MHcCAQ", b"AwEHo"],
         b"-----BEGIN EC PRIVATE KEY-----" + REDACTED + b"-----END EC PRIVATE KEY-----", 1),
    ]


def test_rx_secret_at_every_chunk_boundary(tmp_path):
    for name, data, secrets, shown, count in _cases():
        whole = None
        for k in range(len(data) + 1):  # two reads, cut at every offset
            d = tmp_path / ("%s-%d" % (name.replace(" ", "_"), k))
            cap, text, got = capture_of(d, data, [k])
            for s in secrets:
                assert s.decode() not in text, (name, k, s)
            assert shown in got, (name, k, got)
            assert cap.redactions == count, (name, k)
            if whole is None:
                whole = got
            assert got == whole, (name, k)  # the same text, however the reads fell


def test_rx_secret_in_one_byte_reads_and_short_reads(tmp_path):
    for name, data, secrets, shown, count in _cases():
        for step in (1, 2, 3, 7, 64, 256):
            d = tmp_path / ("%s-%d" % (name.replace(" ", "_"), step))
            cap, text, got = capture_of(d, data, range(step, len(data), step))
            for s in secrets:
                assert s.decode() not in text, (name, step, s)
            assert shown in got and cap.redactions == count, (name, step)


def test_rx_non_secret_command_stays_readable(tmp_path):
    for k in range(len(_PLAIN) + 1):
        cap, _text, got = capture_of(tmp_path / str(k), _PLAIN, [k])
        assert got == _PLAIN and cap.redactions == 0, k
    cap, _text, got = capture_of(tmp_path / "one", _PLAIN, range(1, len(_PLAIN)))
    assert got == _PLAIN


def test_rx_certificate_stays_readable(tmp_path):
    cert = (b"\r\n-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n"
            b"-----END CERTIFICATE-----\r\nOK\r\n")
    cap, _text, got = capture_of(tmp_path, cert, range(5, len(cert), 5))
    assert got == cert and cap.redactions == 0


def test_rx_current_secret_value_read_back_is_hidden(tmp_path):
    data = b'\r\n+CMQTTCONNECT: 0,"tcp://mqtt.example:8883",60,1,"van-07","hunter22"\r\n\r\nOK\r\n'
    for k in range(len(data) + 1):
        cap, text, got = capture_of(tmp_path / str(k), data, [k], mqtt_password="hunter22")
        assert "hunter22" not in text and cap.redactions == 1, k
        assert got == data.replace(b"hunter22", REDACTED), k


def test_rx_held_bytes_flushed_when_idle(tmp_path):
    cap, _at, clock = make(tmp_path)
    cap.start()
    rx(cap, b'\r\n+CMQTTRXPAYLOAD: 0,5\r\n"valu')  # could be the start of "value":
    cap.idle()
    assert captured_rx(cap) == b"\r\n+CMQTTRXPAYLOAD: 0,5\r\n"  # the tail is held
    clock.advance(999)
    cap.idle()
    assert captured_rx(cap) == b"\r\n+CMQTTRXPAYLOAD: 0,5\r\n"
    clock.advance(1)
    cap.idle()  # quiet for a second: nothing secret is still arriving
    assert captured_rx(cap) == b'\r\n+CMQTTRXPAYLOAD: 0,5\r\n"valu'
    cap.stop()


def test_rx_held_bytes_written_on_stop_and_file_is_valid(tmp_path):
    import logdoctor

    cap, _at, _clock = make(tmp_path)
    cap.start()
    tx(cap, b"AT+CMQTTSUB=0\r")
    rx_chunks(cap, _SET_KEY_FIRST + _PLAIN, range(3, 400, 3))
    rx(cap, b'"mqtt_pass')  # the start of a key name, then the capture stops
    cap.stop()
    got = captured_rx(cap)
    assert got.endswith(_PLAIN + b'"mqtt_pass') and b"s3cret" not in got
    report = logdoctor.run(cap.path)
    assert report["sessions"] and report["sessions"][0]["timeline"]


def test_rx_secret_across_rotation_is_still_hidden(tmp_path):
    cap, _at, _clock = make(tmp_path, capture_max_bytes=4096, capture_max_files=16)
    cap.start()
    filler = b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"
    while cap._file is not None and cap._file.n < 4096 - 40:
        rx(cap, filler)
    rx_chunks(cap, _SET_KEY_FIRST, range(2, len(_SET_KEY_FIRST), 2))
    cap.stop()
    assert cap.files >= 2
    text = "".join(open(os.path.join(cap.folder, n)).read() for n in os.listdir(cap.folder))
    assert "s3cret" not in text and cap.redactions == 1


def test_rx_secret_resuming_after_an_idle_flush_is_still_hidden(tmp_path):
    """A pause of more than IDLE_FLUSH_MS anywhere in the message: what was held is shown
    (it reveals nothing) but still matched when the rest arrives."""
    from tlog.capture import IDLE_FLUSH_MS

    for known, (name, data, secrets, _shown, count) in [(a, c) for a in ("", "s3cret-Pa55")
                                                        for c in _cases()]:
        tag = name.replace(" ", "_") + ("-known" if known else "")
        whole = capture_of(tmp_path / ("whole-" + tag), data, [])[2]
        for k in range(len(data) + 1):
            # known: the value is also the current one (a read-back form is matched too)
            cap, _at, clock = make(tmp_path / ("%s-%d" % (tag, k)), mqtt_password=known)
            cap.start()
            rx_chunks(cap, data[:k], [])
            clock.advance(IDLE_FLUSH_MS)
            cap.idle()
            mid = captured_rx(cap)
            rx_chunks(cap, data[k:], [])
            cap.stop()
            got = captured_rx(cap)
            for s in secrets:
                assert s not in got and s not in mid, (name, k, s)
            assert cap.redactions == count, (name, k)
            if name != "value first":  # a value whose key is still out is hidden anyway
                assert got == whole, (name, k, got)


def test_rx_idle_never_shows_the_start_of_a_current_secret(tmp_path):
    from tlog.capture import IDLE_FLUSH_MS

    cap, _at, clock = make(tmp_path, mqtt_password="hunter22")
    cap.start()
    rx(cap, b'\r\n+CMQTTCONNECT: 0,"tcp://h:1",60,1,"u","hunt')
    clock.advance(IDLE_FLUSH_MS)
    cap.idle()
    assert captured_rx(cap) == b'\r\n+CMQTTCONNECT: 0,"tcp://h:1",60,1,"u",'
    rx(cap, b'er22"\r\n')
    cap.stop()
    assert captured_rx(cap).endswith(b'"u","' + REDACTED + b'"\r\n')
