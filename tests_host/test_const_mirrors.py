"""Mirrored constants stay equal to the ones they mirror (issue 11: static heap).

A module that imports another's constant (``from .link import ST_FATAL``) keeps a
global-dict entry for it on the board (8 bytes and a share of the table's growth); a
private ``_ST_FATAL = const(10)  # = atmq.link.ST_FATAL`` is folded into the bytecode
by the compiler and costs nothing.  Every such line in lib/ and firmware/ is checked
here against the module it names, so a renumbered constant cannot drift.
"""

import importlib
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIRROR = re.compile(r"^(_\w+) = const\((.+?)\)\s+# = ([\w.]+)\.(\w+)\s*$")


def _mirrors():
    out = []
    for top in ("lib", "firmware"):
        for dirpath, _dirs, files in os.walk(os.path.join(ROOT, top)):
            for name in sorted(files):
                if not name.endswith(".py"):
                    continue
                path = os.path.join(dirpath, name)
                with open(path) as f:
                    for n, line in enumerate(f, 1):
                        m = MIRROR.match(line)
                        if m:
                            rel = os.path.relpath(path, ROOT)
                            out.append(("%s:%d" % (rel, n),) + m.groups())
    return out


MIRRORS = _mirrors()


def test_mirrors_found():
    # the client mirrors the link's states, the events and the recovery rungs at least
    assert len([m for m in MIRRORS if m[0].startswith("lib/atmq/client.py")]) >= 10


@pytest.mark.parametrize("where,name,value,module,target", MIRRORS,
                         ids=[m[0] + " " + m[1] for m in MIRRORS])
def test_mirror_equals_source(where, name, value, module, target):
    mod = importlib.import_module(module)
    assert getattr(mod, target) == eval(value, {}), (where, name)  # noqa: S307
