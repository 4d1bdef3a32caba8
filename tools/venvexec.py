"""Run a host tool under the project's .venv when plain ``python3`` lacks what it needs.

Owns the one rule every documented ``python3 tools/X.py`` command follows: if an import
the tool needs (paho-mqtt, matplotlib, ...) is missing from the interpreter that started
it and ``.venv/bin/python`` exists, the tool re-executes itself there with the same
arguments; without a venv it says in one line how to make one and exits 2 (no
traceback).  Standard library only, so it runs before anything else is importable.
"""

import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
_GUARD = "ATMQ_VENV_REEXEC"  # set on the re-exec: never loop if the venv lacks it too


def missing(modules):
    """The names in ``modules`` this interpreter cannot import."""
    out = []
    for name in modules:
        try:
            if importlib.util.find_spec(name) is None:
                out.append(name)
        except (ImportError, ValueError):
            out.append(name)
    return out


def ensure(modules, argv=None):
    """Return when every module in ``modules`` imports; else re-exec under .venv or exit 2."""
    lack = missing(modules)
    if not lack:
        return
    argv = list(sys.argv if argv is None else argv)
    if os.path.exists(VENV_PYTHON) and not os.environ.get(_GUARD):
        os.environ[_GUARD] = "1"
        sys.stdout.flush()
        os.execv(VENV_PYTHON, [VENV_PYTHON] + argv)
    tool = os.path.relpath(os.path.abspath(argv[0]), os.getcwd()) if argv else "this tool"
    where = ".venv" if os.environ.get(_GUARD) else sys.executable
    sys.stderr.write(
        "%s needs %s, not installed for %s.  Run 'python3 tools/dev.py bootstrap' once "
        "(it makes .venv from tools/requirements.txt); then this command works as typed.\n"
        % (tool, ", ".join(lack), where))
    raise SystemExit(2)
