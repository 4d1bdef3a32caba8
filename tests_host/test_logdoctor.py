"""logdoctor: seed 001's two forum sessions, each known failure mode, --json shape."""

import glob
import json
import os
import subprocess
import sys

import atmq.atx as atx
import logdoctor
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = glob.glob(os.path.join(os.path.dirname(ROOT), "shared", "seeds", "001_*.txt"))
CASES = os.path.join(ROOT, "tests_host", "transcripts", "logdoctor")
TOOL = os.path.join(ROOT, "tools", "logdoctor.py")


def case(name):
    return logdoctor.run(os.path.join(CASES, name))["sessions"]


def ids(session):
    return [f["id"] for f in session["findings"]]


def cmd(session, text):
    return [e for e in session["timeline"] if e["kind"] == "cmd" and e["text"] == text]


@pytest.fixture(scope="module")
def seed():
    if not SEED:
        pytest.skip("shared/seeds/001_*.txt not beside the repo")
    return logdoctor.run(SEED[0])["sessions"]


def test_seed_holds_two_sessions(seed):
    assert len(seed) == 2
    assert "session 1" in seed[0]["label"] and "session 2" in seed[1]["label"]


def test_seed_session1_client_busy_on_a_connect_that_never_finished(seed):
    s = seed[0]
    assert ids(s)[0] == "mqtt_client_busy"
    assert "mqtt_no_connection" not in ids(s)
    (conn,) = cmd(s, 'AT+CMQTTCONNECT=0,"tcp://test.mosquitto.org:1883",60,1')
    assert conn["final"] == "OK" and conn["deferred"] is None and conn["result"] is None
    (sub,) = cmd(s, "AT+CMQTTSUBTOPIC=0,10,1")
    assert sub["result"] == 14
    assert (conn["t"], sub["t"]) == (81554, 82569)  # the log's own "=== SENT@ms ===" stamps
    assert sub["errors"][0]["kind"] == "CMQTT" and sub["errors"][0]["meaning"] == "client is busy"
    f = s["findings"][0]
    assert "+CMQTTCONNECT: 0,<err>" in f["remedy"] and "firmware" in f["remedy"]
    assert "SIM7600M21-A_V1.1" in f["remedy"]
    assert "1000 ms" in f["detail"]
    assert s["modem"]["revision"] == "SIM7600M21-A_V1.1"
    # data after the '>' prompts is data, not commands
    (will,) = cmd(s, "AT+CMQTTWILLTOPIC=0,10")
    assert will["payload"].strip() == "esp32/will" and will["final"] == "OK"


def test_seed_session2_no_connection_after_an_acknowledged_connect(seed):
    s = seed[1]
    assert ids(s)[0] == "mqtt_no_connection"
    assert "mqtt_client_busy" not in ids(s)
    f = s["findings"][0]
    # the query answer "+CMQTTCONNECT: 0" (no server) was misread as connected
    assert "NOT connected" in f["detail"]
    assert "AT+CMQTTCONNECT?" in [e["text"] for e in f["evidence"]]
    (topic,) = cmd(s, "AT+CMQTTTOPIC=0,10")
    assert topic["result"] == 11 and topic["errors"][0]["meaning"] == "no connection"
    # everything up to the connect worked: certificates, SSL config, NETOPEN, start
    (netopen,) = cmd(s, "AT+NETOPEN")
    assert netopen["result"] == 0
    (sslv,) = cmd(s, 'AT+CSSLCFG="sslversion",0,4')
    assert sslv["final"] == "OK"
    assert "sslversion_refused" not in ids(s) and "no_pdp_context" not in ids(s)
    certs = cmd(s, 'AT+CCERTDOWN="clientkey.pem",1677')
    assert certs[0]["final"] == "OK" and "RSA PRIVATE KEY" in certs[0]["payload"]
    assert not [e for e in s["timeline"] if e["kind"] == "noise"]


@pytest.mark.parametrize("name,first,also", [
    ("client_busy.atx", "mqtt_client_busy", ()),
    ("no_connection.atx", "mqtt_no_connection", ()),
    ("sslversion_old_fw.atx", "sslversion_refused", ()),
    ("connection_lost.atx", "mqtt_connection_lost", ("urc_unhandled",)),
    ("registration_denied.atx", "registration_denied", ()),
    ("sim_not_ready.atx", "sim_not_ready", ()),
    ("netopen_failed.atx", "no_pdp_context", ("mqtt_connect_failed",)),
    ("urc_unhandled.atx", "urc_unhandled", ()),
])
def test_each_failure_mode(name, first, also):
    (s,) = case(name)
    assert ids(s)[0] == first
    for other in also:
        assert other in ids(s)


def test_old_firmware_is_named():
    (s,) = case("sslversion_old_fw.atx")
    f = s["findings"][0]
    assert "LE11B02SIM7500A" in f["title"] and "upgrade" in f["remedy"].lower()


def test_connection_lost_cause_from_the_table():
    (s,) = case("connection_lost.atx")
    (u,) = [e for e in s["timeline"] if e["kind"] == "urc"]
    assert u["cause"] == 3 and u["errors"][0]["meaning"] == "Network is closed."
    (pub,) = cmd(s, "AT+CMQTTPUB=0,1,60")
    assert pub["result"] == 0 and pub["deferred"]["text"] == "+CMQTTPUB: 0,0"


def test_sim_and_registration_meanings():
    (s,) = case("sim_not_ready.atx")
    (cpin,) = cmd(s, "AT+CPIN?")
    assert cpin["errors"][0]["code"] == 10 and cpin["errors"][0]["class"] == "FATAL"
    (s,) = case("registration_denied.atx")
    assert "registration denied" in cmd(s, "AT+CREG?")[0]["annotation"]


def test_healthy_session_has_no_findings(tmp_path):
    p = tmp_path / "ok.atx"
    p.write_text(
        "> AT+CMQTTCONNECT=0,\"tcp://b:1883\",60,1\\r\n"
        "< +10 \\r\\nOK\\r\\n\n"
        "< +500 \\r\\n+CMQTTCONNECT: 0,0\\r\\n\n"
        "> AT+CMQTTSUBTOPIC=0,3,1\\r\n"
        "< \\r\\n>\\x20\n"
        "> a/b\n"
        "< \\r\\nOK\\r\\n\n")
    (s,) = logdoctor.run(str(p))["sessions"]
    assert s["findings"] == [] and s["verdict"] == "no known failure mode found"
    (sub,) = cmd(s, "AT+CMQTTSUBTOPIC=0,3,1")
    assert sub["payload"] == "a/b" and sub["final"] == "OK"


def test_network_already_opened_is_not_a_failure(tmp_path):
    p = tmp_path / "again.atx"
    p.write_text("> AT+NETOPEN\\r\n"
                 "< \\r\\n+IP ERROR: Network is already opened\\r\\n\\r\\nERROR\\r\\n\n")
    (s,) = logdoctor.run(str(p))["sessions"]
    (op,) = cmd(s, "AT+NETOPEN")
    assert op["errors"][0]["kind"] == "IP" and op["errors"][0]["code"] == 4
    assert s["findings"] == []


def test_unknown_urc_is_reported_as_unhandled(tmp_path):
    p = tmp_path / "urc.atx"
    p.write_text("> AT\\r\n< \\r\\nOK\\r\\n\n< +100 \\r\\n+QXYZ: 1,2\\r\\n\n"
                 "> AT\\r\n< \\r\\nOK\\r\\n\n")
    (s,) = logdoctor.run(str(p))["sessions"]
    assert [e["kind"] for e in s["timeline"]] == ["cmd", "urc", "cmd"]
    assert ids(s) == ["urc_unhandled"] and "+QXYZ: 1,2" in s["findings"][0]["title"]


def test_answers_split_into_single_bytes_give_the_same_diagnosis(tmp_path):
    src = os.path.join(CASES, "no_connection.atx")
    out = []
    for line in open(src):
        if line.startswith("< "):
            body = line[2:].rstrip("\n")
            delay, data = "", body
            if body.startswith("+"):
                head, data = body.split(" ", 1)
                delay = head + " "
            raw = atx.unescape(data)
            for i in range(len(raw)):
                out.append("< %s%s\n" % (delay if i == 0 else "", atx.escape(raw[i:i + 1])))
        else:
            out.append(line)
    p = tmp_path / "bytes.atx"
    p.write_text("".join(out))
    (a,) = case("no_connection.atx")
    (b,) = logdoctor.run(str(p))["sessions"]
    assert ids(a) == ids(b)
    assert [e["text"] for e in a["timeline"]] == [e["text"] for e in b["timeline"]]


def test_json_shape_and_cli():
    r = subprocess.run([sys.executable, TOOL, "--json", os.path.join(CASES, "client_busy.atx")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert set(data) == {"source", "sessions"}
    (s,) = data["sessions"]
    assert {"label", "meta", "modem", "timeline", "findings", "verdict",
            "conversion_problems"} <= set(s)
    for e in s["timeline"]:
        assert {"kind", "t", "line", "text"} <= set(e)
        assert e["kind"] in ("cmd", "result", "urc", "noise")
    for f in s["findings"]:
        assert set(f) == {"id", "severity", "title", "detail", "remedy", "evidence"}
        assert f["severity"] in ("error", "warning", "info")
        for ev in f["evidence"]:
            assert set(ev) == {"line", "t", "text"}
    assert s["findings"][0]["id"] == "mqtt_client_busy"
    assert s["findings"][0]["evidence"][-1]["line"] == 12  # the SUBTOPIC record


def test_text_output_and_help():
    r = subprocess.run([sys.executable, TOOL, os.path.join(CASES, "no_connection.atx")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert "DIAGNOSIS: AT+CMQTTTOPIC refused with CMQTT 11" in r.stdout
    assert "CMQTT 11: no connection" in r.stdout
    h = subprocess.run([sys.executable, TOOL, "--help"], capture_output=True, text=True,
                       timeout=60)
    assert h.returncode == 0 and "--json" in h.stdout


def test_bad_input_names_the_line(tmp_path):
    p = tmp_path / "bad.atx"
    p.write_text("> AT\\r\n? nonsense\n")
    r = subprocess.run([sys.executable, TOOL, str(p)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "line 2" in r.stderr


def atx_session(tmp_path, text):
    p = tmp_path / "case.atx"
    p.write_text(text)
    (s,) = logdoctor.run(str(p))["sessions"]
    return s


CONNECTED = ("> AT+CMQTTCONNECT=0,\"tcp://b:1883\",60,1\\r\n"
             "< \\r\\nOK\\r\\n\n< +300 \\r\\n+CMQTTCONNECT: 0,0\\r\\n\n")


def test_connection_dropped_without_connlost(tmp_path):
    s = atx_session(tmp_path, CONNECTED + "> +5000 AT+CMQTTTOPIC=0,3\\r\n"
                    "< \\r\\n+CMQTTTOPIC: 0,11\\r\\n\\r\\nERROR\\r\\n\n")
    assert ids(s) == ["mqtt_connection_dropped"]
    assert "t=300 ms" in s["findings"][0]["detail"]


def test_busy_while_connected_is_an_operation_in_flight(tmp_path):
    s = atx_session(tmp_path, CONNECTED + "> AT+CMQTTPUB=0,1,60\\r\n< \\r\\nOK\\r\\n\n"
                    "> AT+CMQTTTOPIC=0,3\\r\n< \\r\\n+CMQTTTOPIC: 0,14\\r\\n\\r\\nERROR\\r\\n\n")
    assert ids(s) == ["mqtt_busy_operation"]
    assert s["findings"][0]["severity"] == "warning"


def test_prompt_on_a_line_of_its_own(tmp_path):
    # SIM7670G answers the prompt as CR LF '>' CR LF
    s = atx_session(tmp_path, CONNECTED + "> AT+CMQTTTOPIC=0,3\\r\n< \\r\\n>\\r\\n\n"
                    "> a/b\n< \\r\\nOK\\r\\n\n")
    (topic,) = cmd(s, "AT+CMQTTTOPIC=0,3")
    assert (topic["payload"], topic["final"]) == ("a/b", "OK") and s["findings"] == []


def test_unexpected_restart_versus_a_requested_one(tmp_path):
    s = atx_session(tmp_path, "> ATE0\\r\n< \\r\\nOK\\r\\n\n> AT+CSQ\\r\n"
                    "< +9000 \\r\\nRDY\\r\\n\n> ATE0\\r\n< \\r\\nOK\\r\\n\n")
    assert ids(s) == ["modem_restarted"]
    assert "AT+CSQ got no answer" in s["findings"][0]["title"]
    s = atx_session(tmp_path, "> AT+CRESET\\r\n< \\r\\nOK\\r\\n\n< +9000 \\r\\nRDY\\r\\n\n"
                    "> ATE0\\r\n< \\r\\nOK\\r\\n\n")
    assert s["findings"] == []


def test_client_in_use_on_reinit_is_not_a_failure(tmp_path):
    s = atx_session(tmp_path, "> AT+CMQTTCONNECT=0,\"tcp://b:1883\",60,1\\r\n"
                    "< \\r\\n+CMQTTCONNECT: 0,19\\r\\n\\r\\nERROR\\r\\n\n"
                    "> AT+CMQTTCONNECT?\\r\n"
                    "< \\r\\n+CMQTTCONNECT: 0,\"tcp://b:1883\",60,1\\r\\n+CMQTTCONNECT: 1\\r\\n"
                    "\\r\\nOK\\r\\n\n")
    assert s["findings"] == []
    assert "client 0 connected to" in cmd(s, "AT+CMQTTCONNECT?")[0]["annotation"]


def test_garbled_streams_never_crash_the_report():
    """Noise, flipped directions and 1..8-byte chunks over every stored transcript:
    the report is still built, every entry well-formed (the fleet's logs are messy)."""
    import random

    rng = random.Random(1)
    files = sorted(glob.glob(os.path.join(ROOT, "tests_host", "transcripts", "**", "*.atx"),
                             recursive=True))
    assert files
    for _ in range(300):
        meta, recs = atx.read(rng.choice(files))
        out = []
        for ln, d, ms, data in recs:
            data = bytes(data)
            if rng.random() < 0.1:
                data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 20)))
            if rng.random() < 0.05:
                d = "<" if d == ">" else ">"
            for i in range(0, max(len(data), 1), 8):
                out.append((ln, d, ms if i == 0 else 0, data[i:i + rng.randint(1, 8)]))
        rep = logdoctor.analyse(logdoctor.Session("fuzz", meta, out))
        for e in rep["timeline"]:
            assert e["kind"] in ("cmd", "result", "urc", "noise") and "text" in e
        for f in rep["findings"]:
            assert f["severity"] in ("error", "warning", "info") and f["evidence"]


def test_sim800_connect_failure_and_publish_without_connection(tmp_path):
    s = atx_session(tmp_path, "@model SIM800\n> AT+SMCONN\\r\n< +5000 \\r\\n+CME ERROR: 3\\r\\n\n"
                    "> AT+SMSTATE?\\r\n< \\r\\n+SMSTATE: 0\\r\\n\\r\\nOK\\r\\n\n"
                    "> AT+SMPUB=\"t\",5,1,0\\r\n< \\r\\nERROR\\r\\n\n")
    assert ids(s) == ["mqtt_connect_failed", "mqtt_not_connected"]
    assert "AT+SMCONN -> " in s["findings"][0]["title"]
    assert "+SMSTATE: 0" in s["findings"][1]["detail"]


def test_sim800_connect_refused_while_connected_is_not_a_failure(tmp_path):
    s = atx_session(tmp_path, "> AT+SMSTATE?\\r\n< \\r\\n+SMSTATE: 1\\r\\n\\r\\nOK\\r\\n\n"
                    "> AT+SMCONN\\r\n< \\r\\n+CME ERROR: 3\\r\\n\n")
    assert s["findings"] == []
