"""deploy.py against the MicroPython unix port behind tools/replrelay.py (a "board")."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from relayfix import mpremote, relay

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY = os.path.join(ROOT, "tools", "deploy.py")
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")

EXPECTED = {
    "lib/atmq/__init__.mpy", "lib/atmq/compat.mpy", "lib/atmq/util.mpy",
    "lib/tlog/__init__.mpy", "lib/tlog/app.mpy", "main.py", "boot.py",
    "board.json", "config.json",
}

# native code, so the .mpy carries its architecture and only loads on a matching VM
UTIL = """from .compat import const, micropython

_K = const(%d)


@micropython.native
def twice():
    return 2 * _K
"""


def make_tree(root):
    (root / "lib" / "atmq").mkdir(parents=True)
    (root / "firmware" / "tlog").mkdir(parents=True)
    (root / "boards").mkdir()
    for name in ("compat.py", "_host.py"):
        shutil.copy(os.path.join(ROOT, "lib", "atmq", name), root / "lib" / "atmq" / name)
    (root / "lib" / "atmq" / "__init__.py").write_text('__version__ = "9.9.9"\n')
    (root / "lib" / "atmq" / "manifest.py").write_text('package("atmq")\n')
    (root / "lib" / "atmq" / "util.py").write_text(UTIL % 21)
    (root / "firmware" / "main.py").write_text("import tlog.app\n")
    (root / "firmware" / "boot.py").write_text("# boot\n")
    (root / "firmware" / "manifest.py").write_text('include("x")\n')
    (root / "firmware" / "tlog" / "__init__.py").write_text("")
    (root / "firmware" / "tlog" / "app.py").write_text(
        "from atmq.util import twice\nANSWER = twice()\n")
    # a board the firmware accepts: deploy checks it with atmq.board before copying
    shutil.copy(os.path.join(ROOT, "boards", "unix.json"), root / "boards" / "testboard.json")
    (root / "config.json").write_text('{"apn": "internet"}\n')


def run_deploy(tree, *args):
    r = subprocess.run([sys.executable, DEPLOY, "--root", str(tree), "--json",
                        "--board", "testboard", "--config", str(tree / "config.json")]
                       + list(args), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


@pytest.fixture()
def board(tmp_path):
    tree = tmp_path / "repo"
    make_tree(tree)
    flash = tmp_path / "flash"
    flash.mkdir()
    with relay(flash) as url:
        yield tree, flash, url


def device_files(flash):
    out = set()
    for base, _dirs, files in os.walk(flash):
        for f in files:
            out.add(os.path.relpath(os.path.join(base, f), flash))
    return out


def test_deploy_copies_everything_then_nothing_then_the_changed_file(board):
    tree, flash, url = board
    # a source file left by an earlier mip install would shadow the .mpy
    (flash / "lib" / "atmq").mkdir(parents=True)
    (flash / "lib" / "atmq" / "util.py").write_text("def twice():\n    return -1\n")
    first, _ = run_deploy(tree, "--port", url, "--arch", "x64")
    assert set(first["copied"]) == EXPECTED and first["unchanged"] == []
    assert device_files(flash) == EXPECTED | {".deploy.json"}
    # host-only module and freeze manifests never reach the board
    assert not (flash / "lib" / "atmq" / "_host.mpy").exists()
    assert (flash / "main.py").read_text() == "import tlog.app\n"
    assert json.loads((flash / "config.json").read_text()) == {"apn": "internet"}
    manifest = json.loads((flash / ".deploy.json").read_text())
    assert set(manifest["files"]) == EXPECTED and manifest["arch"] == "x64"

    second, log = run_deploy(tree, "--port", url, "--arch", "x64")
    assert second["copied"] == [] and set(second["unchanged"]) == EXPECTED
    assert "deploy: 0 copied, 9 unchanged" in log

    (tree / "lib" / "atmq" / "util.py").write_text(UTIL % 50)
    third, log = run_deploy(tree, "--port", url, "--arch", "x64")
    assert third["copied"] == ["lib/atmq/util.mpy"]
    assert "copy lib/atmq/util.py -> :lib/atmq/util.mpy (changed)" in log

    # the deployed .mpy files import, on the "board" itself
    r = mpremote(url, "exec", "import tlog.app, atmq.util; print(tlog.app.ANSWER, "
                 "atmq.util.__file__)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["100", "lib/atmq/util.mpy"]


def test_verify_hashes_the_board_instead_of_trusting_the_manifest(board):
    tree, flash, url = board
    run_deploy(tree, "--port", url, "--arch", "x64")
    (flash / "main.py").write_text("# edited on the board\n")
    (flash / "boot.py").unlink()
    trusting, _ = run_deploy(tree, "--port", url, "--arch", "x64")
    assert trusting["copied"] == []
    verified, _ = run_deploy(tree, "--port", url, "--arch", "x64", "--verify")
    assert sorted(verified["copied"]) == ["boot.py", "main.py"]
    assert (flash / "main.py").read_text() == "import tlog.app\n"


def test_dry_run_copies_nothing(board):
    tree, flash, url = board
    plan, log = run_deploy(tree, "--port", url, "--arch", "x64", "--dry-run")
    assert set(plan["copied"]) == EXPECTED and plan["dry_run"] is True
    assert "would copy" in log
    assert device_files(flash) == set()


def test_prune_removes_files_that_left_the_tree(board):
    tree, flash, url = board
    run_deploy(tree, "--port", url, "--arch", "x64")
    (tree / "firmware" / "boot.py").unlink()
    kept, _ = run_deploy(tree, "--port", url, "--arch", "x64")
    assert kept["removed"] == [] and (flash / "boot.py").exists()
    pruned, _ = run_deploy(tree, "--port", url, "--arch", "x64", "--prune")
    assert pruned["removed"] == ["boot.py"] and pruned["copied"] == []
    assert not (flash / "boot.py").exists()


def test_xtensawin_is_the_default(tmp_path):
    tree = tmp_path / "repo"
    make_tree(tree)
    flash = tmp_path / "flash"
    flash.mkdir()
    with relay(flash) as url:
        summary, _ = run_deploy(tree, "--port", url)
        r = mpremote(url, "exec", "import atmq.util")
    assert summary["arch"] == "xtensawin"
    head = (flash / "lib" / "atmq" / "util.mpy").read_bytes()[:3]
    # .mpy header: b"M", version 6, flags = arch << 2 | sub-version (xtensawin is arch 10)
    assert head[0:2] == b"M\x06" and head[2] >> 2 == 10
    assert r.returncode != 0 and "incompatible .mpy arch" in r.stdout + r.stderr


def test_layout_of_the_repo():
    """The real tree's plan: what goes where (no build: colleagues' files are in flux)."""
    import deploy

    plan = {dev: os.path.relpath(src, ROOT) for src, dev, _how in deploy.sources(ROOT)}
    assert plan["lib/atmq/compat.mpy"] == "lib/atmq/compat.py"
    assert not [d for d in plan if "_host" in d or "manifest" in d]
    for dev, src in plan.items():
        if src.startswith("firmware/tlog/"):
            assert dev == "lib/tlog/" + src[len("firmware/tlog/"):-3] + ".mpy"


def test_missing_board_file_is_named(tmp_path):
    tree = tmp_path / "repo"
    make_tree(tree)
    r = subprocess.run([sys.executable, DEPLOY, "--root", str(tree), "--dry-run",
                        "--board", "nosuch"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "board 'nosuch' is neither a file nor a name" in r.stderr
    assert "known boards: " in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("text, says", [
    ('{"device_id": "x", "mqtt_prot": 1883}', "config key 'mqtt_prot': unknown key"),
    ('{"mqtt_port": "1883"}', "config key 'mqtt_port': must be an integer 1..65535, got '1883'"),
    ('[1, 2]', "must hold one JSON object"),
    # MicroPython's json alone would take it; the board refuses it too (atmq.jsonstrict)
    ('{"mqtt_port": 1883,\n}', "not valid JSON: Expecting property name enclosed in double "
                              "quotes: line 2 column 1"),
])
def test_config_the_firmware_would_refuse_is_not_copied(tmp_path, text, says):
    tree = tmp_path / "repo"
    make_tree(tree)
    cfg = tmp_path / "bad.json"
    cfg.write_text(text)
    r = subprocess.run([sys.executable, DEPLOY, "--root", str(tree), "--dry-run",
                        "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout
    assert "the firmware would refuse this config" in r.stderr and says in r.stderr, r.stderr
    assert "would copy" not in r.stdout


def test_board_names_get_a_suggestion(tmp_path):
    r = subprocess.run([sys.executable, DEPLOY, "--dry-run", "--board",
                        "freematics-one-pluss"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "did you mean freematics-one-plus?" in r.stderr


def test_help():
    r = subprocess.run([sys.executable, DEPLOY, "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "--dry-run" in r.stdout
