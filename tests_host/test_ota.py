"""tools/ota.py and tlog/ota.py on CPython: the host's bundle, signature and chunks are what
the device's code accepts, byte for byte (no network: the host's messages go straight into
the device's handler), and the CLI's user errors are one line, not a traceback."""

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys

import pytest

import boot
import ota as otatool
from tlog import ota as devota
from tlog.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = b"host-test-fleet-key-123456"


def test_device_hmac_is_rfc2104():
    for key in (b"k", KEY, b"x" * 64, b"y" * 200):
        for msg in (b"", b"abc", bytes(range(256)) * 5):
            assert devota.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()
    assert devota.same(b"abc", b"abc") and not devota.same(b"abc", b"abd")
    assert not devota.same(b"abc", b"ab")


def test_versions_and_paths():
    assert devota.parse_version("1.10.0") > devota.parse_version("1.9.9")
    for bad in ("", "1.x", "1..2", None, "1.2.3.4.5"):
        with pytest.raises(ValueError):
            devota.parse_version(bad)
    assert devota.check_path("tlog/ota.mpy")
    for bad in ("/etc/x", "../boot.py", "tlog/../../x", "a//b", "a b", "", "x" * 97):
        assert not devota.check_path(bad)


def test_parse_status():
    head, kv = otatool.parse_status(
        "receiving 37 % | sid=1a2b3c4d offset=12345 size=33333 chunk=984 enc=bin")
    assert head == "receiving 37 %"
    assert kv == {"sid": "1a2b3c4d", "offset": "12345", "size": "33333", "chunk": "984",
                  "enc": "bin"}
    assert otatool.chunk_size(kv) == 984 and otatool.chunk_size(kv, 500) == 500
    assert otatool.parse_status("rolled back: no telemetry within 300 s | v=1.0.0") == (
        "rolled back: no telemetry within 300 s", {"v": "1.0.0"})


class _Spool:
    def depth_bytes(self):
        return 0


class _Uplink:
    sent = 0


class _Ctx:
    def __init__(self):
        self.cfg = Config(None, {"ota_key": KEY.decode()})
        self.spool = _Spool()
        self.uplink = _Uplink()
        self.client = None
        self.reboots = 0

    async def reboot(self):
        self.reboots += 1


def _install(root, stream):
    otatool.unpack(stream, os.path.join(root, "lib"))


def _tree(root):
    out = {}
    for base, _dirs, files in os.walk(os.path.join(root, "lib")):
        for f in files:
            p = os.path.join(base, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, os.path.join(root, "lib"))] = fh.read()
    return out


@pytest.mark.parametrize("enc", ["bin", "b64"])
def test_host_bundle_installs_through_the_device_code(tmp_path, enc):
    """A source bundle of this tree, offered and sent as tools/ota.py sends it, is verified,
    staged and switched by tlog/ota.py and boot.py; the new tree is the bundle's files."""
    root = str(tmp_path)
    _hdr0, old, _man0 = otatool.build(ROOT, "unix", "py", "0.0.1")
    _install(root, old)
    hdr, stream, man = otatool.build(ROOT, "unix", "py", "0.2.0", min_from="0.0.1")
    assert man is not None and hdr["kind"] == "files" and hdr["mpy"] is None
    assert hdr["unpacked"] == sum(f[1] for f in man["files"])
    names = [f[0] for f in man["files"]]
    assert "tlog/ota.py" in names and "atmq/engine.py" in names and "main.py" not in names
    assert not any(n.startswith("boot") for n in names)
    ctx = _Ctx()
    dev = devota.Ota(ctx, root, "unix", enc, 1024, 512)
    dev.version = "0.0.1"
    dev.bind("tlog/d1/")
    chunk = dev.chunk_max()
    assert chunk == (984 if enc == "bin" else (512 - 14 - len("tlog/d1/ota") - 40) // 4 * 3)

    async def go():
        assert await dev.handle(b"tlog/d1/ota", otatool.offer_message(KEY, hdr))
        for off in range(0, len(stream), chunk):
            msg = otatool.chunk_message(dev.sid, off, stream[off:off + chunk], enc)
            assert len(msg) <= (1024 if enc == "bin" else 512 - 14 - len("tlog/d1/ota"))
            await dev.handle(b"tlog/d1/ota", msg)
        assert dev.recv == len(stream)
        return await dev.finish()

    assert asyncio.run(go()), dev._out
    assert dev._out[-1][0] == "verified | sid=%s v=0.2.0" % hdr["sha256"][:8]
    assert boot.recover(root) == "switched"
    tree = _tree(root)
    assert tree["tlog/version.py"].endswith(b'VERSION = "0.2.0"\n')
    with open(os.path.join(ROOT, "firmware", "tlog", "ota.py"), "rb") as f:
        assert tree["tlog/ota.py"] == f.read()
    assert len(tree) == len(man["files"])


def test_signature_covers_force_and_header(tmp_path):
    """Changing any header field (force, version, size) after signing is refused."""
    hdr, _stream, _man = otatool.build(ROOT, "unix", "py", "0.0.1", force=False)
    good = otatool.offer_message(KEY, hdr)
    forged = good.replace(b'"force":false', b'"force":true')
    assert forged != good
    dev = devota.Ota(_Ctx(), str(tmp_path), "unix", "bin", 1024, 512)
    dev.bind("tlog/d1/")
    asyncio.run(dev.handle(b"tlog/d1/ota", forged))
    assert dev._out[-1][0].startswith("refused: bad signature")
    asyncio.run(dev.handle(b"tlog/d1/ota", good))  # 0.0.1 is older than 0.1.0: not newer
    assert "is not newer than" in dev._out[-1][0]


def _cli(*args, env=None):
    e = dict(os.environ)
    e.pop("TLOG_OTA_KEY", None)
    e.update(env or {})
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "ota.py"), *args],
                          capture_output=True, text=True, env=e, timeout=120)


def test_cli_dry_run_and_user_errors(tmp_path):
    key = tmp_path / "fleet.key"
    key.write_text(KEY.decode() + "\n")
    out = str(tmp_path / "b")
    r = _cli("--board", "unix", "--arch", "py", "--version", "1.0.0", "--key-file", str(key),
             "--dry-run", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "dry run: nothing sent" in r.stdout and "publishes" in r.stdout
    with open(out + ".offer", "rb") as f:
        offer = f.read()
    sig, hb = offer.split(b" ", 2)[1:]
    assert hmac.new(KEY, hb, hashlib.sha256).hexdigest().encode() == sig
    assert json.loads(hb)["size"] == os.path.getsize(out + ".bin")
    for args, want in (
        (["--key-file", str(tmp_path / "none")], "No such file"),
        ([], "at least 16 characters"),
        (["--key-file", str(key), "--arch", "pdp11"], "unknown --arch"),
        (["--key-file", str(key)], "--broker and --device are needed"),
        (["--key-file", str(key), "--broker", "nohost", "--device", "d"], "HOST:PORT"),
    ):
        r = _cli("--board", "unix", "--arch", "py", "--version", "1.0.0", *args)
        assert r.returncode == 2 and want in r.stderr and "Traceback" not in r.stderr, (
            args, r.stderr)
    r = _cli("--board", "unix", "--arch", "py", "--version", "1.0.0", "--dry-run",
             env={"TLOG_OTA_KEY": KEY.decode()})
    assert r.returncode == 0, r.stderr


def test_bundle_is_reproducible():
    """The same tree gives the same bundle (so a re-run resumes the same transfer)."""
    a = otatool.build(ROOT, "unix", "py", "1.0.0")
    b = otatool.build(ROOT, "unix", "py", "1.0.0")
    assert a[0]["sha256"] == b[0]["sha256"] and a[1] == b[1]
