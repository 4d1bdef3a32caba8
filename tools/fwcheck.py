"""The firmware's own checks of its input files, run on the host before anything starts.

Owns importing ``tlog.config`` and ``atmq.board`` (the modules the firmware boots with,
not copies of their schemas) on CPython, so run_unix.py, deploy.py and provision.py
refuse exactly what the board would refuse, with the firmware's own words, before a
process is started or a byte is copied.  Both raise ``ValueError`` with a one-line
message that names the file.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (os.path.join(ROOT, "firmware"), os.path.join(ROOT, "lib")):
    if _p not in sys.path:
        sys.path.insert(0, _p)


def check_config(path):
    """The validated config dict of ``path`` (tlog.config.load); ValueError when the firmware
    would refuse it (not found, not JSON, unknown key, bad value)."""
    from tlog import config

    if not os.path.isfile(path):
        raise ValueError("config file not found: %s" % path)
    try:
        cfg = config.load(path)
    except ValueError as e:  # ConfigError is a ValueError
        where = _json_error(path)
        raise ValueError("%s: %s" % (path, where or e)) from None
    return {k: cfg.get(k) for k in config.SCHEMA}


def _json_error(path):
    """Where the JSON of ``path`` breaks ("line 3 column 1: ..."), or None if it parses."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            json.load(f)
    except ValueError as e:
        return "not valid JSON: %s" % e
    except OSError:
        pass
    return None


def check_board(path):
    """The loaded board dict of ``path`` (atmq.board.load); ValueError naming the key."""
    from atmq import board

    try:
        return board.load(path)
    except (OSError, ValueError) as e:
        raise ValueError("%s: %s" % (path, e)) from None
