"""tlog.rxredact / tlog.capture on the MicroPython unix port: RX secrets hidden however the
UART reads fall (every two-read cut, one-byte reads), a plain command kept, a valid file."""

import os

import tlogfs

from atmq import atx
from tlog import config as config_mod
from tlog.capture import Capture
from tlog.rxredact import REDACTED, RxRedactor

_KEY_FIRST = (b'\r\n+CMQTTRXPAYLOAD: 0,66\r\n'
              b'{"id":7,"cmd":"set","key":"mqtt_password","value":"s3cret-Pa55"}'
              b'\r\n+CMQTTRXEND: 0\r\n')
_VALUE_FIRST = (b'\r\n+CMQTTRXPAYLOAD: 0,66\r\n'
                b'{"id":7,"cmd":"set","value":"s3cret-Pa55","key":"mqtt_password"}'
                b'\r\n+CMQTTRXEND: 0\r\n')
_PEM = (b'\r\n-----BEGIN PRIVATE KEY-----\nMIIEs3cretBODY\nAAAs3cretBODY==\n'
        b'-----END PRIVATE KEY-----\r\nOK\r\n')
_PLAIN = b'{"id":9,"cmd":"set","key":"topic_prefix","value":"fleet-b"}\r\n'


def _run(data, cuts):
    out = bytearray()
    r = RxRedactor(out.extend)
    chunk = bytearray(256)  # the engine's reused read buffer
    prev = 0
    for c in list(cuts) + [len(data)]:
        if c > prev:
            k = c - prev
            chunk[:k] = data[prev:c]
            r.feed(chunk, k)
        prev = c
    r.flush()
    return bytes(out), r.redactions


def _check(data, shown, secret, count):
    whole, n = _run(data, [])
    assert shown in whole and secret not in whole and n == count, whole
    for k in range(len(data) + 1):
        got, n = _run(data, [k])
        assert got == whole and n == count, (k, got)
    got, n = _run(data, range(1, len(data)))
    assert got == whole and n == count, got


def test_key_first_every_cut():
    _check(_KEY_FIRST, b'"value":"' + REDACTED + b'"}', b"s3cret", 1)


def test_value_first_every_cut():
    _check(_VALUE_FIRST, b'"value":"' + REDACTED + b'","key"', b"s3cret", 1)


def test_pem_key_every_cut():
    _check(_PEM, b"-----BEGIN PRIVATE KEY-----" + REDACTED + b"-----END", b"s3cret", 1)


def test_plain_command_untouched():
    _check(_PLAIN, _PLAIN, b"<redacted>", 0)


def test_capture_file_holds_no_secret():
    class At:
        tap = None

    d = tlogfs.tmpdir("caprx")
    try:
        cfg = config_mod.Config(None, {"mqtt_password": "hunter22"})
        cap = Capture(At(), cfg, d + "/capture")
        cap.start()
        chunk = bytearray(256)
        data = _VALUE_FIRST + b'+CMQTTCONNECT: 0,"tcp://h:1",60,1,"u","hunter22"\r\n' + _PLAIN
        for i in range(0, len(data), 3):
            k = min(3, len(data) - i)
            chunk[:k] = data[i : i + k]
            cap.rx(chunk, k)
        cap.stop()
        name = os.listdir(d + "/capture")[0]
        raw = tlogfs.read(d + "/capture/" + name)
        assert b"s3cret" not in raw and b"hunter22" not in raw and cap.redactions == 2
        _meta, recs = atx.read(d + "/capture/" + name)
        got = b"".join(r[3] for r in recs if r[1] == "<")
        assert got.endswith(_PLAIN), got
    finally:
        tlogfs.rmtree(d)


def test_idle_flush_mid_secret_still_hides_it():
    for data in (_KEY_FIRST, _VALUE_FIRST, _PEM):
        for k in range(len(data) + 1):
            out = bytearray()
            r = RxRedactor(out.extend)
            chunk = bytearray(256)
            for part in (data[:k], data[k:]):
                chunk[: len(part)] = part
                r.feed(chunk, len(part))
                r.idle_flush()  # a quiet line after each read
            r.flush()
            assert b"s3cret" not in out and r.redactions == 1, (k, out)
