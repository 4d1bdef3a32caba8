"""package.json and the freeze manifests match the tree; mip installs package.json."""

import json
import os
import subprocess
import sys

import genpackage
from relayfix import mpremote, relay

ROOT = genpackage.ROOT
GENPACKAGE = os.path.join(ROOT, "tools", "genpackage.py")


def _deployable():
    """Repo-relative paths of every lib/ and firmware/ module that goes to a board."""
    out = set()
    for top in ("lib", "firmware"):
        for base, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for f in files:
                if f.endswith(".py") and f not in ("_host.py", "manifest.py"):
                    out.add(os.path.relpath(os.path.join(base, f), ROOT))
    return out


def test_generated_files_are_up_to_date():
    assert genpackage.check(ROOT) == [], "run tools/genpackage.py"


def test_library_package_json_is_atmq_alone():
    """``mip install github:<org>/<repo>`` installs the library, never an app's main.py."""
    with open(os.path.join(ROOT, "package.json")) as f:
        pkg = json.load(f)
    srcs = [src for _dest, src in pkg["urls"]]
    assert set(srcs) == {p for p in _deployable() if p.startswith("lib/atmq/")}
    for dest, src in pkg["urls"]:
        assert dest == src[4:]
    assert "lib/atmq/_host.py" not in srcs


def test_app_package_json_lists_every_board_file_and_nothing_else():
    with open(os.path.join(ROOT, "app-package.json")) as f:
        pkg = json.load(f)
    srcs = [src for _dest, src in pkg["urls"]]
    assert len(srcs) == len(set(srcs))
    assert set(srcs) == _deployable()
    for dest, src in pkg["urls"]:
        assert os.path.isfile(os.path.join(ROOT, src))
        if src.startswith("lib/"):
            assert dest == src[4:]  # lib/atmq/x.py -> /lib/atmq/x.py
        elif src.startswith("firmware/tlog/"):
            assert dest == "tlog/" + src[len("firmware/tlog/"):]
        elif src in ("firmware/main.py", "firmware/boot.py"):
            assert dest == "../" + os.path.basename(src)
    assert "lib/atmq/_host.py" not in srcs
    with open(os.path.join(ROOT, "lib", "atmq", "__init__.py")) as f:
        assert '__version__ = "%s"' % pkg["version"] in f.read()


def _manifest_calls(path):
    """Execute a manifest.py with recording stand-ins for the manifest functions."""
    calls = []

    def rec(name):
        return lambda *a, **kw: calls.append((name, a, kw))

    env = {n: rec(n) for n in ("metadata", "package", "module", "include", "require",
                               "freeze", "options")}
    with open(path) as f:
        exec(compile(f.read(), path, "exec"), env)
    return calls


def test_atmq_manifest_freezes_the_package_without_host_module():
    calls = _manifest_calls(os.path.join(ROOT, "lib", "atmq", "manifest.py"))
    meta = [c for c in calls if c[0] == "metadata"]
    assert meta and meta[0][2]["version"] == genpackage.version(ROOT)
    pkgs = [c for c in calls if c[0] == "package"]
    assert len(pkgs) == 1 and pkgs[0][1] == ("atmq",)
    base = os.path.normpath(os.path.join(ROOT, "lib", "atmq", pkgs[0][2]["base_path"]))
    files = {os.path.relpath(os.path.join(base, "atmq", f), ROOT) for f in pkgs[0][2]["files"]}
    assert files == {p for p in _deployable() if p.startswith("lib/atmq/")}
    assert "_host.py" not in pkgs[0][2]["files"]


def test_firmware_manifest_includes_board_atmq_and_app():
    calls = _manifest_calls(os.path.join(ROOT, "firmware", "manifest.py"))
    includes = [c[1][0] for c in calls if c[0] == "include"]
    assert "$(PORT_DIR)/boards/manifest.py" in includes
    assert "../lib/atmq/manifest.py" in includes
    assert os.path.isfile(os.path.join(ROOT, "firmware", "../lib/atmq/manifest.py"))
    pkgs = [c for c in calls if c[0] == "package"]
    assert [p[1][0] for p in pkgs] == ["tlog"]
    files = {"firmware/tlog/" + f for f in pkgs[0][2]["files"]}
    assert files == {p for p in _deployable() if p.startswith("firmware/tlog/")}


def test_check_reports_a_stale_package_json(tmp_path):
    for rel in genpackage.layout(ROOT):
        src = os.path.join(ROOT, rel[0])
        dst = tmp_path / rel[0]
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(open(src, "rb").read())
    assert genpackage.main(["--root", str(tmp_path)]) == 0
    assert genpackage.check(str(tmp_path)) == []
    (tmp_path / "lib" / "atmq" / "newmod.py").write_text("X = 1\n")
    assert set(genpackage.check(str(tmp_path))) == {"package.json", "app-package.json",
                                                    os.path.join("lib", "atmq", "manifest.py")}


def _small_tree(dst):
    """A few files in the repo's layout: enough to prove how mip places each kind."""
    files = {
        "lib/atmq/__init__.py": '__version__ = "0.0.1"\n',
        "lib/atmq/compat.py": open(os.path.join(ROOT, "lib", "atmq", "compat.py")).read(),
        "lib/atmq/_host.py": "# host only\n",
        "firmware/tlog/__init__.py": "",
        "firmware/tlog/app.py": "from atmq import compat\nOK = compat.IS_MICROPYTHON\n",
        "firmware/main.py": "import tlog.app\n",
        "firmware/boot.py": "# boot\n",
    }
    for rel, text in files.items():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst / rel).write_text(text)


def test_mip_installs_the_library_without_touching_main_py(tmp_path):
    tree = tmp_path / "repo"
    _small_tree(tree)
    assert genpackage.main(["--root", str(tree)]) == 0
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text("# the user's own program\n")
    with relay(flash) as url:
        r = mpremote(url, "mip", "install", "--target", "lib", str(tree / "package.json"),
                     timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    assert (flash / "main.py").read_text() == "# the user's own program\n"
    assert not (flash / "boot.py").exists() and not (flash / "lib" / "tlog").exists()
    assert (flash / "lib" / "atmq" / "compat.py").read_bytes() == \
        (tree / "lib" / "atmq" / "compat.py").read_bytes()


def test_mip_installs_the_app_package_on_the_unix_port(tmp_path):
    """mpremote mip install of the generated app-package.json puts every file where it
    belongs, main.py and boot.py at the root (mip's target is lib/, dest ../main.py)."""
    tree = tmp_path / "repo"
    _small_tree(tree)
    assert genpackage.main(["--root", str(tree)]) == 0
    flash = tmp_path / "flash"
    flash.mkdir()
    with relay(flash) as url:
        r = mpremote(url, "mip", "install", "--target", "lib", str(tree / "app-package.json"),
                     timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    pkg = json.loads((tree / "app-package.json").read_text())
    dests = [d for d, _s in pkg["urls"]]
    assert "../main.py" in dests and "../boot.py" in dests
    assert (flash / "main.py").read_bytes() == (tree / "firmware" / "main.py").read_bytes()
    for dest, src in pkg["urls"]:
        landed = os.path.normpath(os.path.join(str(flash), "lib", dest))
        assert open(landed, "rb").read() == (tree / src).read_bytes(), dest
    assert not (flash / "lib" / "atmq" / "_host.py").exists()
    # what mip installed imports on the "board": the app through the library
    with relay(flash) as url:
        r = mpremote(url, "exec", "import tlog.app; print(tlog.app.OK)")
    assert (r.returncode, r.stdout.strip()) == (0, "True"), r.stderr


def test_help():
    r = subprocess.run([sys.executable, GENPACKAGE, "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "--check" in r.stdout
