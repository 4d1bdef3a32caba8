"""TLS layer (lib/atmq/tls.py): certificate download/list/delete and the old-firmware
refusal replayed from transcripts at chunk sizes 1, 2, 3, 7 and random; the three
profiles and the checks that refuse bad certificates, names and settings before a
byte is written."""

import asyncio
import os
import sys

import pytest
from atmq import errtab
from atmq import tls as T
from atmq.engine import Engine
from atmq.errors import ConfigError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "tests_device"))
import atxreplay as R  # noqa: E402  # pyright: ignore[reportMissingImports]
import cmqtt_cases as C  # noqa: E402  # pyright: ignore[reportMissingImports]

CHUNKS = [1, 2, 3, 7, "random"]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("name", ["certs", "sslversion_oldfw", "sslversion_tls13",
                                  "bringup_tls_mutual",
                                  "tls_connect_fail", "seed002_3_3", "seed002_3_4"])
def test_replay(name, chunk):
    asyncio.run(C.run_case(name, chunk))


def test_ccertdown_writes_the_exact_byte_count():
    # the certs transcript holds AT+CCERTDOWN="cacert.pem",<n> with n = len(PEM1)
    path = os.path.join(C.TRANSCRIPTS, "cmqtt", "certs.atx")
    meta, recs = R.atx.read(path)
    tx = b"".join(r[3] for r in recs if r[1] == ">")
    assert b'AT+CCERTDOWN="cacert.pem",%d\r' % len(C.PEM1) + C.PEM1 in tx
    assert b'AT+CCERTDOWN="clientkey.pem",%d\r' % len(C.KEY1) + C.KEY1 in tx


def test_profiles():
    aws = T.normalize(T.aws_iot())
    assert aws["authmode"] == 2 and aws["sni"] is True and aws["port"] == 8883
    assert aws["cacert"] == "cacert.pem" and aws["clientkey"] == "clientkey.pem"
    mq = T.normalize(T.mosquitto_tls(cacert="ca.pem"))
    assert mq["authmode"] == 1 and mq["clientcert"] is None and mq["sni"] is None
    assert T.plain() is None
    # authmode derived from what is given (17.2.1)
    assert T.normalize({})["authmode"] == 1  # cacert defaults to ca.pem
    assert T.normalize({"cacert": None})["authmode"] == 0
    assert T.normalize({"cacert": None, "clientcert": "c.pem", "clientkey": "k.pem"})[
        "authmode"] == 3
    assert T.normalize({"clientcert": "c.pem", "clientkey": "k.pem"})["authmode"] == 2


@pytest.mark.parametrize("tls,key", [
    ({"cacret": "ca.pem"}, "tls.cacret"),
    ({"ssl_ctx": 10}, "tls.ssl_ctx"),
    ({"sslversion": 5}, "tls.sslversion"),
    ({"negotiatetime": 5}, "tls.negotiatetime"),
    ({"ignorelocaltime": 2}, "tls.ignorelocaltime"),
    ({"authmode": 2}, "tls.clientcert"),
    ({"authmode": 1, "cacert": None}, "tls.cacert"),
    ({"clientcert": "c.pem"}, "tls.clientkey"),
    ({"cacert": "ca.crt"}, "tls.cacert"),
    ({"cacert": "a.pem" * 12}, "tls.cacert"),
    ({"sni": 1}, "tls.sni"),
    ("aws", "tls"),
])
def test_bad_tls_settings_name_the_key(tls, key):
    with pytest.raises(ConfigError) as ei:
        T.normalize(tls)
    assert ei.value.key == key


def _at():
    m = R.ReplayModem([])  # any byte written fails the replay
    return m, Engine(m)


@pytest.mark.parametrize("name,data,text", [
    ("ca.pem", b"MIIB...base64 without armour", "not PEM"),
    ("ca.pem", b"-----BEGIN CERTIFICATE-----\n\xff\n-----END CERTIFICATE-----\n", "ASCII"),
    ("ca.pem", b"-----BEGIN CERTIFICATE-----\n" + b"A" * 10240 + b"\n-----END CERTIFICATE-----\n",
     "1..10240"),
    ("ca.pem", b"", "0 bytes"),
    ("ca.der", b"-----BEGIN CERTIFICATE-----", "not DER"),
    ("ca.txt", b"-----BEGIN X-----\n-----END X-----\n", ".pem or .der"),
    ("c.pem" * 12, b"-----BEGIN X-----\n-----END X-----\n", "5..55"),
    ('a"b.pem', b"-----BEGIN X-----\n-----END X-----\n", "no quote"),
])
def test_bad_certificates_refused_before_sending(name, data, text):
    m, at = _at()
    with pytest.raises((ValueError, ConfigError)) as ei:
        asyncio.run(T.download_cert(at, name, data))
    assert text in str(ei.value)
    assert m.written == b""


def test_firmware_error_is_fatal_and_says_what_to_do():
    e = T.FirmwareError(b'AT+CSSLCFG="sslversion",0,4', "LE11B02SIM7500A",
                        'AT+CSSLCFG="sslversion"', "upgrade the modem firmware")
    assert e.cls == errtab.FATAL
    assert str(e) == ('modem firmware LE11B02SIM7500A refuses AT+CSSLCFG="sslversion" '
                      "(plain ERROR): upgrade the modem firmware")
    assert "revision unknown" in str(T.FirmwareError(None, None, "x", "y"))


def test_plain_profile_sends_nothing():
    m, at = _at()
    assert asyncio.run(T.configure_ssl(at, 0, None)) is None
    assert m.written == b""


def test_optional_settings_sent_only_when_given():
    lines = [
        '> AT+CSSLCFG="sslversion",3,3\\r', "< \\r\\nOK\\r\\n",
        '> AT+CSSLCFG="authmode",3,0\\r', "< \\r\\nOK\\r\\n",
        '> AT+CSSLCFG="enableSNI",3,0\\r', "< \\r\\nOK\\r\\n",
        '> AT+CSSLCFG="ignorecertCN",3,1\\r', "< \\r\\nOK\\r\\n",
    ]

    async def go():
        m = R.ReplayModem(lines)
        at = Engine(m)
        task = asyncio.create_task(at.run())
        try:
            p = await R.drive(m, T.configure_ssl(at, 3, {
                "cacert": None, "sslversion": 3, "ignorelocaltime": None,
                "negotiatetime": None, "sni": False, "ignorecertcn": 1}))
        finally:
            task.cancel()
        m.assert_done()
        return p

    p = asyncio.run(go())
    assert p["ssl_ctx"] == 3 and p["authmode"] == 0
