"""``--board`` for every host tool: a name from boards/ or a path, resolved one way.

Owns the rule deploy.py, provision.py and run_unix.py share: an argument that names an
existing file is that file; otherwise it is a board name, ``boards/<name>.json``.  An
unknown name is refused with the list of boards and the closest match
("did you mean freematics-one-plus?").  Standard library only.
"""

import difflib
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARDS = os.path.join(ROOT, "boards")


def names():
    """The board names shipped in boards/ (file names without .json), sorted."""
    try:
        return sorted(f[:-5] for f in os.listdir(BOARDS) if f.endswith(".json"))
    except OSError:
        return []


def resolve(arg):
    """The board file for ``arg`` (a path, or a name in boards/); ValueError when neither."""
    if os.path.isfile(arg):
        return arg
    name = arg[:-5] if arg.endswith(".json") else arg
    path = os.path.join(BOARDS, os.path.basename(name) + ".json")
    if os.sep not in name and os.path.isfile(path):
        return path
    known = names()
    close = difflib.get_close_matches(os.path.basename(name), known, n=1)
    hint = ("did you mean %s? " % close[0]) if close else ""
    raise ValueError("board %r is neither a file nor a name in boards/: %sknown boards: %s"
                     % (arg, hint, ", ".join(known)))
