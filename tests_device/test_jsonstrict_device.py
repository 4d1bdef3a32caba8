"""atmq.jsonstrict on MicroPython: what the lenient json.loads would take is refused, so
config and board files are valid on the board exactly when CPython (deploy.py) says so."""

import json

import tlogfs

from atmq import jsonstrict
from atmq.errors import ConfigError
from tlog import config as C

GOOD = (b"{}", b"[]", b'{"a": [1, 2.5e-3, -0, "x\\u00e9\\n", true, false, null]}',
        b' [ {"b": {}} ] ', b'"s"', b"0", b"-1.0E+5")
# each of these is taken by MicroPython's json.loads and refused by CPython's json
LENIENT = (b'{"a": 1,}', b"[1, 2,]", b"[1 2]", b'{"a": 01}', b'{"a": 1 "b": 2}')


def test_valid_json_passes_and_matches_loads():
    for g in GOOD:
        jsonstrict.check(g)
        json.loads(g)


def test_what_micropython_would_accept_is_refused_with_a_position():
    for b in LENIENT:
        try:
            jsonstrict.check(b)
        except ValueError as e:
            assert "line 1 column" in str(e), e
        else:
            raise AssertionError("accepted %r" % b)


def test_config_with_trailing_comma_is_refused_on_the_board():
    d = tlogfs.tmpdir("cfgjs")
    p = d + "/config.json"
    tlogfs.write(p, b'{"mqtt_port": 1883,\n}')
    try:
        C.load(p)
    except ConfigError as e:
        assert e.key == "file" and "line 2 column 1" in str(e), e
    else:
        raise AssertionError("trailing comma accepted")
    tlogfs.rmtree(d)
