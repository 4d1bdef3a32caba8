"""tools/freematics2atx.py against seed 001 and against the odd shapes it must handle."""

import io
import os
import subprocess
import sys

import freematics2atx as F
import pytest
from atmq import atx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = "/work/shared/seeds/001_859eb65525a0c5ae.txt"
TOOL = os.path.join(ROOT, "tools", "freematics2atx.py")
TRANSCRIPTS = os.path.join(ROOT, "tests_host", "transcripts")


def _seed_lines():
    if not os.path.exists(SEED):
        pytest.skip("seed 001 not present")
    with open(SEED, encoding="utf-8") as f:
        return f.readlines()


def _triples(session):
    return [(r.dir, r.delay, r.data) for r in session.records]


def test_seed_001_has_two_sessions_and_converts_cleanly():
    sessions, problems = F.convert(_seed_lines())
    assert problems == []
    assert len(sessions) == 2
    assert (sessions[0].first_line, len(sessions[0].records)) == (25, 33)
    assert (sessions[1].first_line, len(sessions[1].records)) == (365, 54)


def test_seed_001_session_1_records():
    s = F.convert(_seed_lines())[0][0]
    t = _triples(s)
    assert t[:4] == [
        (">", 0, b"AT\r"),
        ("<", 3, b"\r\nOK\r\n"),
        (">", 0, b"ATE0\r"),
        ("<", 3, b"\r\nOK\r\n"),
    ]
    # "+GCAP: ==================": the read ended mid-line, the rest came 4 ms later
    assert t[5] == (
        "<",
        13,
        b"\r\nManufacturer: SIMCOM INCORPORATED\r\nModel: SIMCOM_SIM7600E\r\n"
        b"Revision: SIM7600M21-A_V1.1\r\nIMEI: XXXXXXXXXXXXXXXXXXXXX\r\n+GCAP: ",
    )
    assert t[6] == ("<", 4, b"+CGSM\r\n\r\nOK\r\n")
    # the 70 s gap between AT+CGACT and AT+CMQTTSTART
    assert (">", 70179, b"AT+CMQTTSTART\r") in t
    # prompt with nothing after '>', then the topic written without CR
    i = t.index((">", 2000, b"AT+CMQTTWILLTOPIC=0,10\r"))
    assert t[i + 1 : i + 4] == [
        ("<", 4, b"\r\n>"),
        (">", 1000, b"esp32/will"),
        ("<", 3, b"\r\nOK\r\n"),
    ]
    assert t[-1] == ("<", 7, b"\r\n+CMQTTSUBTOPIC: 0,14\r\n\r\nERROR\r\n")


def test_seed_001_session_2_echo_and_overwritten_lines():
    t = _triples(F.convert(_seed_lines())[0][1])
    # boot URCs before the echo, then "AT" + CR + CRLF OK
    assert t[:3] == [
        (">", 0, b"AT\r"),
        ("<", 0, b"\r\nSMS DONE\r\n\r\nPB DONE\r\n"),
        ("<", 2, b"AT\r\r\nOK\r\n"),
    ]
    # "==================ntcert.pem",1222": the echo ended in a bare CR
    assert t[3:6] == [
        (">", 10, b'AT+CCERTDOWN="clientcert.pem",1222\r'),
        ("<", 7, b'AT+CCERTDOWN="clientcert.pem",1222\r'),
        ("<", 6, b"\r\n>"),
    ]
    # certificate data written as shown (LF), echoed back as the same bytes
    cert = b"\n-----BEGIN CERTIFICATE-----\n[REMOVED...]\n-----END CERTIFICATE-----\n"
    assert t[6] == (">", 107, cert)
    assert t[7] == ("<", 102, cert + b"\r\nOK\r\n")
    # a block that shows nothing: a short echo entirely under the marker
    i = t.index((">", 1000, b"AT+NETOPEN\r"))
    assert t[i + 1 : i + 3] == [
        ("<", 3, b"AT+NETOPEN\r"),
        ("<", 8, b"\r\nOK\r\n\r\n+NETOPEN: 0\r\n"),
    ]
    i = t.index((">", 9, b'AT+CGDCONT=1,"IP","telstra.iph"\r'))
    assert t[i + 1] == ("<", 6, b'AT+CGDCONT=1,"IP","telstra.iph"\r')
    assert t[-1] == ("<", 7, b"AT+CMQTTTOPIC=0,10\r\r\n+CMQTTTOPIC: 0,11\r\n\r\nERROR\r\n")


@pytest.mark.parametrize(
    "n, name",
    [
        (0, "seed001_s1_sim7600e_cmqtt_subtopic_busy.atx"),
        (1, "seed001_s2_sim7600e_cmqtts_topic_noconn.atx"),
    ],
)
def test_committed_fixtures_match_the_converter(n, name):
    s = F.convert(_seed_lines())[0][n]
    meta, recs = atx.read(os.path.join(TRANSCRIPTS, name))
    assert [(d, ms, data) for _, d, ms, data in recs] == _triples(s)
    assert meta["model"] == "SIM7600E"
    assert meta["source"].startswith("seed 001")


LOG_WITH_PROBLEMS = """\
forum prose
=== SENT@100 ===
AT+CSQ
==================
=== RECV@105 ===
==================
=== SENT@200 ===
AT+CGDCONT=1,"IP","some.very.long.apn"
==================
=== RECV@210 ===
==================xxxx
=== RECV@220 ===
never closed
=== SENT@230 ===
AT
==================
""".splitlines(True)


def test_problems_are_reported_with_line_numbers():
    sessions, problems = F.convert(LOG_WITH_PROBLEMS)
    assert problems == [
        (12, "RECV block has no end marker"),
        (
            10,
            "RECV block ends in a bare CR and the marker hid the line (shown: 'xxxx'); "
            "it is not the echo of the last command",
        ),
    ]
    # the hidden 6-character echo of AT+CSQ is rebuilt; the rest goes on
    t = _triples(sessions[0])
    assert t[:2] == [(">", 0, b"AT+CSQ\r"), ("<", 5, b"AT+CSQ\r")]
    assert t[-1] == (">", 30, b"AT\r")


def test_header_after_other_text_and_a_new_session_when_time_goes_back():
    log = [
        "Init MQTT stack...=== SENT@500 ===\n",
        "AT\n",
        "==================\n",
        "=== RECV@503 ===\n",
        "\n",
        "OK\n",
        "==================\n",
        "rebooted\n",
        "=== SENT@10 ===\n",
        "ATI\n",
        "==================\n",
    ]
    sessions, problems = F.convert(log)
    assert problems == []
    assert [_triples(s) for s in sessions] == [
        [(">", 0, b"AT\r"), ("<", 3, b"\r\nOK\r\n")],
        [(">", 0, b"ATI\r")],
    ]


def test_cli_help_stdout_file_and_session_choice(tmp_path):
    r = subprocess.run([sys.executable, TOOL, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--session" in r.stdout
    log = tmp_path / "log.txt"
    log.write_text(
        "=== SENT@1 ===\nAT\n==================\n=== RECV@4 ===\n\nOK\n==================\n"
    )
    r = subprocess.run([sys.executable, TOOL, str(log), "--meta", "model=X"], capture_output=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines()[1:] == ["@model X", "> AT\\r", "< +3 \\r\\nOK\\r\\n"]
    out = tmp_path / "o.atx"
    assert F.main([str(log), "-o", str(out)]) == 0
    assert atx.read(str(out))[1] == [(2, ">", 0, b"AT\r"), (3, "<", 3, b"\r\nOK\r\n")]
    if os.path.exists(SEED):
        assert F.main([SEED]) == 2  # two sessions: must choose
        assert F.main([SEED, "--session", "3"]) == 2
        assert F.main([SEED, "--session", "2", "-o", str(out)]) == 0
        assert len(atx.read(str(out))[1]) == 54


def test_cli_refuses_bad_blocks_unless_told(tmp_path, capsys):
    log = tmp_path / "bad.txt"
    log.write_text("".join(LOG_WITH_PROBLEMS))
    assert F.main([str(log)]) == 1
    err = capsys.readouterr().err
    assert "bad.txt:12: RECV block has no end marker" in err
    out = tmp_path / "o.atx"
    assert F.main([str(log), "--skip-bad", "-o", str(out)]) == 0
    text = out.read_text()
    assert "# skipped bad.txt line 10:" in text
    atx.read(text.splitlines())


def test_write_atx_keeps_one_block_per_record():
    s = F.Session()
    s.records = [F.Record(">", 0, b"AT\r", 1), F.Record("<", 5, b"AT\r\r\nOK\r\n\r\n+X: 1\r\n", 4)]
    buf = io.StringIO()
    F.write_atx(s, buf)
    assert buf.getvalue() == "> AT\\r\n< +5 AT\\r\\r\\nOK\\r\\n\\r\\n+X: 1\\r\\n\n"
