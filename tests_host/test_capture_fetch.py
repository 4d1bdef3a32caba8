"""tools/capture.py: capture files made on the MicroPython unix port by the app's own capture
(firmware/tlog/capture.py teeing an Engine talking to the SIMCom simulator) are fetched with
mpremote through replrelay byte for byte, listed, explained by logdoctor, cleared only once
verified, and never overwrite a different local file."""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading

import capture
import pytest
from modemsim import ModemSim
from replrelay import Relay

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "capture.py")
CAPDIR = "var/flash/capture"  # boards/unix.json fs_root + /capture, relative to the REPL's cwd
SECRET = b"MIIBsecretcertificatebodyline"

# Runs on the unix port: the app's Capture on an Engine talking to the simulator.
_PRODUCE = """
import asyncio
from atmq.engine import Engine
from tlog import platform
from tlog.capture import Capture
from tlog.config import Config

async def go():
    s = platform.open_stream({"device": "tcp:127.0.0.1:%d"})
    at = Engine(s)
    t = asyncio.create_task(at.run())
    cap = Capture(at, Config(None, {"capture_max_bytes": 4096, "capture_max_files": 4}), %r,
                  meta=lambda: {"model": "SIMCOM_SIM7600E", "source": "tlog capture"})
    cap.start()
    await at.cmd(b"AT")
    await at.cmd(b"ATE0")
    pem = b"-----BEGIN CERTIFICATE-----\\n" + %r + b"\\n-----END CERTIFICATE-----\\n"
    await at.cmd(b'AT+CCERTDOWN="ca.pem",%%d' %% len(pem), payload=pem)
    for i in range(40):
        await at.cmd(b"ATI", bare=True)
    st = cap.stop()
    t.cancel()
    s.close()
    print("PRODUCED", len(st["files"]))

asyncio.run(go())
"""


class SimThread:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim = ModemSim(persona="SIM7600E", fast=True)
        self.port = asyncio.run_coroutine_threadsafe(self.sim.start(), self.loop).result(15)

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """(url, flash dir) of a unix-port REPL with lib/ and firmware/ on its path."""
    flash = tmp_path_factory.mktemp("flash")
    path = ".frozen:%s:%s" % (os.path.join(ROOT, "lib"), os.path.join(ROOT, "firmware"))
    with Relay(str(flash), path=path) as r:
        yield r.url, str(flash)


@pytest.fixture
def produced(board):
    """Capture files made on the board; returns their paths in the board's flash."""
    url, flash = board
    shutil.rmtree(os.path.join(flash, "var"), ignore_errors=True)
    sim = SimThread()
    try:
        mpremote = os.path.join(ROOT, ".venv", "bin", "mpremote")
        r = subprocess.run([mpremote, "connect", url, "resume", "exec",
                            _PRODUCE % (sim.port, CAPDIR, SECRET)],
                           capture_output=True, text=True, timeout=120)
        assert "PRODUCED" in r.stdout, r.stdout + r.stderr
    finally:
        sim.stop()
    folder = os.path.join(flash, CAPDIR)
    names = sorted(os.listdir(folder), key=lambda n: int(n[4:-4]))
    assert len(names) >= 2  # 4096-byte files: the session rolled over at least once
    return [os.path.join(folder, n) for n in names]


def tool(board, *args):
    r = subprocess.run([sys.executable, TOOL, "--port", board[0]] + list(args),
                       capture_output=True, text=True, timeout=300)
    return r


def read(p):
    with open(p, "rb") as f:
        return f.read()


def test_fetch_verified_listed_doctored_then_cleared(board, produced, tmp_path):
    out = tmp_path / "got"
    r = tool(board, "--board", "unix", "--out", str(out), "--doctor", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    names = [os.path.basename(p) for p in produced]
    assert [os.path.basename(p) for p in res["fetched"]] == names  # cap-N order
    for p in produced:
        assert read(out / os.path.basename(p)) == read(p)
        assert SECRET not in read(p)  # the capture redacted the certificate body
    total = sum(s["records"] for s in res["summaries"])
    assert total > 80 and all(s.get("model") == "SIMCOM_SIM7600E" for s in res["summaries"])
    assert sum(s["tx_bytes"] for s in res["summaries"]) > 40 * len(b"ATI\r")
    first = str(out / names[0])
    assert res["doctor"][first]["rc"] == 0
    assert "AT+CCERTDOWN" in res["doctor"][first]["report"]
    assert "==== logdoctor" in r.stderr  # --json sends the human report to stderr
    assert res["removed"] == 0 and all(os.path.exists(p) for p in produced)

    again = tool(board, "--board", "unix", "--out", str(out), "--clear")
    assert again.returncode == 0, again.stderr
    assert "already fetched" in again.stdout and "removed %d" % len(produced) in again.stdout
    assert not any(os.path.exists(p) for p in produced)
    assert sorted(os.listdir(out)) == sorted(names)  # nothing lost, nothing duplicated


def test_name_taken_by_other_bytes_is_kept(board, produced, tmp_path):
    out = tmp_path / "got"
    out.mkdir()
    first = os.path.basename(produced[0])
    (out / first).write_bytes(b"# an older capture with the same name\n")
    r = tool(board, "--dir", CAPDIR, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert read(out / first) == b"# an older capture with the same name\n"
    renamed = [n for n in os.listdir(out) if n.startswith(first[:-4] + "-")]
    assert len(renamed) == 1 and read(out / renamed[0]) == read(produced[0])


def test_list_copies_nothing(board, produced, tmp_path):
    out = tmp_path / "none"
    r = tool(board, "--board", "unix", "--list", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout.strip().splitlines()[-1])["on_board"]
    assert [(f["name"], f["bytes"]) for f in listed] == [
        (os.path.basename(p), os.path.getsize(p)) for p in produced]
    assert not out.exists()


def test_no_capture_folder(board, tmp_path):
    r = tool(board, "--dir", "no/such/folder", "--out", str(tmp_path / "o"))
    assert r.returncode == 0 and "no folder no/such/folder" in r.stdout


def test_board_unreachable():
    r = subprocess.run([sys.executable, TOOL, "--port", "socket://127.0.0.1:1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "mpremote failed" in r.stderr


class FakeBoard:
    """Lists one file; the copy comes out different (a torn transfer)."""

    def __init__(self, data, copied):
        import hashlib
        self.files = [("cap-3.atx", len(data), hashlib.sha256(data).hexdigest())]
        self.copied = copied
        self.removed = None

    def listing(self, folder):
        return self.files, False

    def copy(self, pairs):
        for _remote, local in pairs:
            with open(local, "wb") as f:
                f.write(self.copied)

    def remove(self, paths):
        self.removed = list(paths)
        return len(paths)


def test_torn_copy_is_an_error_and_not_cleared(tmp_path):
    b = FakeBoard(b"> AT\\r\n< \\r\\nOK\\r\\n\n", b"> AT\\r\n")
    res = capture.fetch(b, "/capture", str(tmp_path), clear=True, log=lambda s: None)
    assert res["fetched"] == [] and "differs from the board" in res["errors"][0]
    assert b.removed is None and os.listdir(tmp_path) == []


def test_good_copy_is_cleared(tmp_path):
    data = b"> AT\\r\n< \\r\\nOK\\r\\n\n"
    b = FakeBoard(data, data)
    res = capture.fetch(b, "/capture", str(tmp_path), clear=True, log=lambda s: None)
    assert res["errors"] == [] and b.removed == ["/capture/cap-3.atx"]
    assert read(tmp_path / "cap-3.atx") == data


def test_board_folders_and_order():
    assert capture.board_dir("unix") == "var/flash/capture"
    assert capture.board_dir("lilygo-t-sim7600x") == "/capture"
    names = ["cap-10.atx", "cap-2.atx", "other.atx", "cap-1.atx"]
    assert sorted(names, key=capture._index) == ["cap-1.atx", "cap-2.atx", "cap-10.atx",
                                                 "other.atx"]


def test_summary_of_a_file_cut_short(tmp_path):
    p = tmp_path / "cap-0.atx"
    p.write_bytes(b"> AT\\r\n< \\r\\nOK\\x")  # a reset in the middle of an escape
    s = capture.summarize(str(p))
    assert "error" in s and s["bytes"] == p.stat().st_size


def test_help():
    r = subprocess.run([sys.executable, TOOL, "--help"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0 and "--doctor" in r.stdout and "--clear" in r.stdout
