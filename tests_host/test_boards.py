"""Board files load and validate; atmq.board refuses bad keys and values, naming the key."""

import copy
import glob
import json
import os

import pytest

from atmq import board
from atmq.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARDS = sorted(glob.glob(os.path.join(ROOT, "boards", "*.json")))
EXPECTED = [
    "esp32-devkitc-generic",
    "freematics-one-plus",
    "lilygo-t-a7670",
    "lilygo-t-sim7000g",
    "lilygo-t-sim7600x",
    "unix",
]

# Independent of atmq.board: where pins are, and whether the ESP32 drives them.
OUTPUT_PATHS = [
    ("uart", "tx"), ("uart", "rts"), ("pwrkey", "pin"), ("reset", "pin"),
    ("power_en", "pin"), ("dtr", "pin"), ("flight", "pin"), ("led", "pin"),
    ("gnss", "uart", "tx"), ("gnss", "power", "pin"), ("obd", "uart", "tx"),
    ("obd", "reset", "pin"),
]
INPUT_PATHS = [
    ("uart", "rx"), ("uart", "cts"), ("status", "pin"), ("ri",), ("gnss", "uart", "rx"),
    ("obd", "uart", "rx"),
]


def _dig(d, path):
    for k in path:
        if d is None:
            return None
        d = d[k]
    return d


def _name(p):
    return os.path.splitext(os.path.basename(p))[0]


def test_every_expected_board_file_exists():
    assert [_name(p) for p in BOARDS] == EXPECTED


@pytest.mark.parametrize("path", BOARDS, ids=_name)
def test_board_loads_and_is_consistent(path):
    b = board.load(path)
    assert b["name"] == _name(path)
    model = b["modem"]["model"]
    assert model in board.MODELS
    assert b["modem"]["family"] == board.MODELS[model][0]
    if b["chip"] == "host":
        assert b["uart"]["device"].startswith("tcp:")
        return
    # every ESP32 board says where its pins came from
    for key in ("uart", "pwrkey", "reset", "status", "power_en", "dtr", "flight", "ri",
                "obd", "led", "gnss"):
        if b[key] is not None and not (key == "gnss" and b[key]["source"] == "none"):
            assert b["sources"].get(key), "%s: no source for %s" % (b["name"], key)
    assert b["pwrkey"] is not None, "every ESP32 board here switches the modem with PWRKEY"
    for k in ("on_ms", "off_ms", "idle_ms"):
        assert 0 < b["pwrkey"][k] <= 5000
    assert b["pwrkey"]["on_ms"] < b["pwrkey"]["off_ms"], "an on pulse must not switch it off"
    assert 0 < b["timing"]["boot_ms"] <= 30000


@pytest.mark.parametrize("path", [p for p in BOARDS if _name(p) != "unix"], ids=_name)
def test_pins_plausible_for_esp32(path):
    b = board.load(path)
    seen = {}
    for paths, output in ((OUTPUT_PATHS, True), (INPUT_PATHS, False)):
        for p in paths:
            pin = _dig(b, p)
            if pin is None:
                continue
            assert isinstance(pin, int)
            where = ".".join(p)
            assert 0 <= pin <= 39 and pin not in (20, 24, 28, 29, 30, 31), where
            assert pin not in range(6, 12), "%s uses flash pin %d" % (where, pin)
            if output:
                assert pin < 34, "%s drives input-only pin %d" % (where, pin)
            assert pin not in seen, "%s and %s share GPIO %d" % (where, seen[pin], pin)
            seen[pin] = where
    assert b["uart"]["id"] in (1, 2)


def test_unix_board_has_no_pins():
    b = board.load(os.path.join(ROOT, "boards", "unix.json"))
    for k in ("pwrkey", "reset", "status", "power_en", "dtr", "flight", "ri", "led"):
        assert b[k] is None
    assert b["fs_root"] == "var/flash"
    assert b["timing"]["boot_ms"] == 0


MINIMAL = {
    "name": "mini",
    "modem": {"model": "SIM7600"},
    "uart": {"id": 1, "tx": 17, "rx": 16},
    "pwrkey": {"pin": 4},
}


def test_defaults_filled_from_schema_and_model():
    src = copy.deepcopy(MINIMAL)
    b = board.validate(src)
    assert src == MINIMAL, "validate must not change its input"
    assert b["modem"]["family"] == "cmqtt"
    assert b["chip"] == "esp32"
    assert b["uart"]["baud"] == 115200 and b["uart"]["rts"] is None
    assert b["pwrkey"] == {"pin": 4, "active": 1, "idle_ms": 100, "on_ms": 500, "off_ms": 3000}
    assert b["timing"] == {"boot_ms": 15000, "shutdown_ms": 26000, "poll_ms": 100}
    assert b["gnss"]["source"] == "modem" and b["obd"] is None and b["led"] is None
    assert b["sources"] == {} and b["notes"] == [] and b["fs_root"] == "/"
    b2 = board.validate(MINIMAL)
    b2["notes"].append("x")
    assert board.validate(MINIMAL)["notes"] == [], "defaults must not be shared"


def _with(mut):
    b = copy.deepcopy(MINIMAL)
    mut(b)
    return b


BAD = [
    ("unknown top key", lambda b: b.update(pwrkye={"pin": 4}), "pwrkye"),
    ("unknown nested key", lambda b: b["uart"].update(baudrate=9600), "uart.baudrate"),
    ("missing name", lambda b: b.pop("name"), "name"),
    ("missing modem", lambda b: b.pop("modem"), "modem"),
    ("pin as string", lambda b: b["uart"].update(tx="17"), "uart.tx"),
    ("bool as int", lambda b: b["pwrkey"].update(on_ms=True), "pwrkey.on_ms"),
    ("negative ms", lambda b: b["pwrkey"].update(on_ms=-1), "pwrkey.on_ms"),
    ("level 2", lambda b: b["pwrkey"].update(active=2), "pwrkey.active"),
    ("flash pin", lambda b: b["pwrkey"].update(pin=7), "pwrkey.pin"),
    ("no such pad", lambda b: b["pwrkey"].update(pin=24), "pwrkey.pin"),
    ("input-only driven", lambda b: b["uart"].update(tx=34), "uart.tx"),
    ("input-only led", lambda b: b.update(led={"pin": 36}), "led.pin"),
    ("pin used twice", lambda b: b.update(led={"pin": 4}), "led.pin"),
    ("uart 0 is the REPL", lambda b: b["uart"].update(id=0), "uart.id"),
    ("missing uart rx", lambda b: b["uart"].pop("rx"), "uart.rx"),
    ("device on esp32", lambda b: b["uart"].update(device="tcp:x:1"), "uart.device"),
    ("bad family", lambda b: b["modem"].update(family="mqtt"), "modem.family"),
    ("unknown model, no family", lambda b: b["modem"].update(model="XYZ1"), "modem.family"),
    ("bad chip", lambda b: b.update(chip="esp8266"), "chip"),
    ("gnss uart missing", lambda b: b.update(gnss={"source": "uart"}), "gnss.uart"),
    ("gnss uart unused", lambda b: b.update(
        gnss={"source": "modem", "uart": {"id": 2, "tx": 25, "rx": 26}}), "gnss.uart"),
    ("gnss on modem uart", lambda b: b.update(
        gnss={"source": "uart", "uart": {"id": 1, "tx": 25, "rx": 26}}), "gnss.uart.id"),
    ("sources not strings", lambda b: b.update(sources={"uart": 1}), "sources.uart"),
    ("notes not list", lambda b: b.update(notes="x"), "notes"),
    ("null required section", lambda b: b.update(uart=None), "uart"),
    ("timing not object", lambda b: b.update(timing=5), "timing"),
]


@pytest.mark.parametrize("mut,key", [(m, k) for _, m, k in BAD], ids=[n for n, _, _ in BAD])
def test_bad_board_refused_naming_the_key(mut, key):
    with pytest.raises(ConfigError) as ei:
        board.validate(_with(mut))
    assert ei.value.key == key
    assert repr(key) in str(ei.value)


def test_unknown_model_needs_explicit_timings():
    def mut(b):
        b["modem"] = {"model": "EG25", "family": "cmqtt"}

    with pytest.raises(ConfigError) as ei:
        board.validate(_with(mut))
    assert ei.value.key == "pwrkey.on_ms"

    def full(b):
        mut(b)
        b["pwrkey"].update(on_ms=500, off_ms=650)
        b["timing"] = {"boot_ms": 13000, "shutdown_ms": 30000}

    assert board.validate(_with(full))["pwrkey"]["off_ms"] == 650


def test_reset_pulse_required_when_model_has_none():
    with pytest.raises(ConfigError) as ei:
        board.validate(_with(lambda b: b.update(reset={"pin": 5})))
    assert ei.value.key == "reset.pulse_ms"
    ok = board.validate(_with(lambda b: b.update(reset={"pin": 5, "pulse_ms": 300})))
    assert ok["reset"] == {"pin": 5, "active": 1, "pulse_ms": 300}


def test_host_board_rules():
    host = {"name": "h", "chip": "host", "modem": {"model": "SIM7600"},
            "uart": {"device": "tcp:127.0.0.1:1"}}
    b = board.validate(host)
    assert b["timing"]["boot_ms"] == 0 and b["pwrkey"] is None
    with pytest.raises(ConfigError) as ei:
        board.validate(dict(host, pwrkey={"pin": 4}))
    assert ei.value.key == "pwrkey.pin"
    with pytest.raises(ConfigError) as ei:
        board.validate(dict(host, uart={"id": 1}))
    assert ei.value.key == "uart.device"


def test_load_reports_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError) as ei:
        board.load(str(tmp_path / "missing.json"))
    assert ei.value.key == "<file>"
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x",')
    with pytest.raises(ConfigError) as ei:
        board.load(str(bad))
    assert ei.value.key == "<file>" and "not valid JSON" in str(ei.value)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(MINIMAL))
    assert board.load(str(good))["name"] == "mini"
