"""Board files (boards/*.json): their schema, validation, defaults and per-model timings.

``load(path)`` reads a board JSON and returns a plain dict with every key of
the schema present (defaults filled in, per-model power timings filled in
from ``MODELS`` where the file leaves them null).  Any problem raises
``ConfigError`` whose ``key`` is the dotted path of the offending entry
(``"pwrkey.on_ms"``); unknown keys are errors too, so a typo never silently
falls back to a default.  On ``chip: "esp32"`` boards every pin is checked
for the classic ESP32: no flash pins 6-11, no missing pads, no input-only pin
(34-39) used as an output, and no pin used twice.  ``chip: "host"`` (the unix
port) has no pins at all: the modem is ``uart.device`` ("tcp:HOST:PORT" or a
pty path).

Load the board once at boot; the dict is all ``atmq.power`` and the drivers
need, so the firmware may then drop this module (``del sys.modules[...]``):
its schema and code cost ~16 KB on the 64-bit unix port, the loaded dict ~3.5 KB.
"""

import json

from . import jsonstrict
from .errors import ConfigError

# Per-model defaults, used when a board file leaves the value null:
# (family, PWRKEY on pulse ms, PWRKEY off pulse ms, boot ms until the UART
#  answers, shutdown ms until STATUS falls, RESET pulse ms or None).
# The AT manuals (003, 004) give no pin timings; sources, per model:
# SIM7600: on 500 / off 3000 / boot 15000: LilyGO-T-A76XX examples/ATdebug/
#   utilities.h (MODEM_POWERON/POWEROFF_PULSE_WIDTH_MS, MODEM_START_WAIT_MS for
#   T-SIM7600); SIMCom SIM7600 Hardware Design: Ton typ 500 ms, Toff >= 2.5 s.
#   shutdown 26000 is Toff(status) of the SIM7912/7906 Hardware Design V1.02
#   table 11 (25-26 s); the SIM7600 document itself was not checked.
# A7670 / SIM7670: on 100 / off 3000 / boot 3000 / reset 2600: LilyGO
#   utilities.h and its reset sequence; shutdown 10000 is a margin, no source.
# A7608: on 1000 / off 3000: LilyGO utilities.h.
# SIM7000 / SIM7070 / SIM7080: on 1000 / off 1300: LilyGO utilities.h;
#   SIM7000 Hardware Design V1.04 table 9: Toff >= 1.2 s, Toff(status) 1.8-6.9 s.
# SIM800: SIM800 Hardware Design V1.09 4.2: PWRKEY low >= 1 s to start, serial
#   port active > 3 s later (figure 12); >= 1.5 s to stop; STATUS low ~2 s later.
MODELS = {
    "SIM7600": ("cmqtt", 500, 3000, 15000, 26000, None),
    "A7670": ("cmqtt", 100, 3000, 3000, 10000, 2600),
    "SIM7670": ("cmqtt", 100, 3000, 3000, 10000, 2600),
    "A7608": ("cmqtt", 1000, 3000, 3000, 10000, 2600),
    "SIM7000": ("sm", 1000, 1300, 3000, 6900, None),
    "SIM7070": ("sm", 1000, 1300, 3000, 6900, None),
    "SIM7080": ("sm", 1000, 1300, 3000, 6900, None),
    "SIM800": ("sm", 1100, 1500, 3000, 2000, None),
}

FAMILIES = ("cmqtt", "sm")
CHIPS = ("esp32", "host")
GNSS_SOURCES = ("modem", "uart", "none")

_REQ = "\x00required"  # marker default: the key must be given

# Leaf types: "str", "int" (>= 0), "pin", "level" (0/1), "strmap", "strlist",
# a tuple of allowed strings, or a dict (a nested schema).  Spec per key:
# (type, default, nullable).
_UART = {
    "id": ("int", None, True),
    "tx": ("pin", None, True),
    "rx": ("pin", None, True),
    # the link's speed after bring-up: the modem is reached at min(baud, 115200) first,
    # a higher one is switched to with AT+IPR, never saved (atmq.baud, 003 s.8.2.3)
    "baud": ("int", 115200, False),
    "rts": ("pin", None, True),
    "cts": ("pin", None, True),
    "rxbuf": ("int", 1024, False),
    "device": ("str", None, True),
}
_OUT = {"pin": ("pin", _REQ, False), "active": ("level", 1, False)}
_SCHEMA = {
    "name": ("str", _REQ, False),
    "description": ("str", "", False),
    "chip": (CHIPS, "esp32", False),
    "modem": (
        {"model": ("str", _REQ, False), "family": (FAMILIES, None, True)},
        _REQ,
        False,
    ),
    "uart": (_UART, _REQ, False),
    "pwrkey": (
        {
            "pin": ("pin", _REQ, False),
            "active": ("level", 1, False),
            "idle_ms": ("int", 100, False),
            "on_ms": ("int", None, True),
            "off_ms": ("int", None, True),
        },
        None,
        True,
    ),
    "reset": (
        {
            "pin": ("pin", _REQ, False),
            "active": ("level", 1, False),
            "pulse_ms": ("int", None, True),
        },
        None,
        True,
    ),
    "status": ({"pin": ("pin", _REQ, False), "active": ("level", 1, False)}, None, True),
    "power_en": (
        {
            "pin": ("pin", _REQ, False),
            "active": ("level", 1, False),
            "settle_ms": ("int", 100, False),
        },
        None,
        True,
    ),
    "dtr": ({"pin": ("pin", _REQ, False), "wake": ("level", 0, False)}, None, True),
    "flight": (_OUT, None, True),
    "ri": ("pin", None, True),
    "timing": (
        {
            "boot_ms": ("int", None, True),
            "shutdown_ms": ("int", None, True),
            "poll_ms": ("int", 100, False),
        },
        {},
        False,
    ),
    "gnss": (
        {
            "source": (GNSS_SOURCES, "modem", False),
            "uart": (_UART, None, True),
            "power": (_OUT, None, True),
            "modem_gpio": ("int", None, True),
            "modem_gpio_level": ("level", 1, False),
        },
        {},
        False,
    ),
    "obd": (
        {
            "kind": (("elm327",), "elm327", False),
            "uart": (_UART, _REQ, False),
            "reset": (
                {
                    "pin": ("pin", _REQ, False),
                    "active": ("level", 0, False),
                    "pulse_ms": ("int", 50, False),
                },
                None,
                True,
            ),
        },
        None,
        True,
    ),
    "led": (_OUT, None, True),
    "fs_root": ("str", "/", False),
    "sources": ("strmap", {}, False),
    "notes": ("strlist", [], False),
}

# Classic ESP32 (not S2/S3/C3): GPIO 6-11 are the SPI flash, 20/24/28-31 do
# not exist, 34-39 are input-only (ESP32 datasheet, 2.2 pin description).
_FLASH_PINS = (6, 7, 8, 9, 10, 11)
_NO_PAD = (20, 24, 28, 29, 30, 31)
# Where pins sit, and whether the ESP32 drives them.
_OUTPUTS = (
    "uart.tx", "uart.rts", "pwrkey.pin", "reset.pin", "power_en.pin", "dtr.pin",
    "flight.pin", "led.pin", "gnss.uart.tx", "gnss.uart.rts", "gnss.power.pin",
    "obd.uart.tx", "obd.uart.rts", "obd.reset.pin",
)
_INPUTS = (
    "uart.rx", "uart.cts", "status.pin", "ri", "gnss.uart.rx", "gnss.uart.cts",
    "obd.uart.rx", "obd.uart.cts",
)


def _err(path, problem):
    return ConfigError(path, problem)


def _copy(v):
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _leaf(v, t, path):
    if isinstance(t, tuple):
        if v not in t:
            raise _err(path, "must be one of %s, got %r" % ("/".join(t), v))
    elif t == "str":
        if not isinstance(v, str):
            raise _err(path, "must be a string, got %r" % (v,))
    elif t == "int":
        if not _is_int(v) or v < 0:
            raise _err(path, "must be an integer >= 0, got %r" % (v,))
    elif t == "pin":
        if not _is_int(v) or v < 0 or v > 48:
            raise _err(path, "must be a GPIO number 0-48, got %r" % (v,))
    elif t == "level":
        if not _is_int(v) or v not in (0, 1):
            raise _err(path, "must be 0 or 1, got %r" % (v,))
    elif t == "strmap":
        if not isinstance(v, dict):
            raise _err(path, "must be an object of strings")
        for k, x in v.items():
            if not isinstance(x, str):
                raise _err(path + "." + k, "must be a string, got %r" % (x,))
    elif t == "strlist":
        if not isinstance(v, list):
            raise _err(path, "must be a list of strings")
        for i in range(len(v)):
            if not isinstance(v[i], str):
                raise _err("%s[%d]" % (path, i), "must be a string, got %r" % (v[i],))
    return v


def _obj(v, schema, path):
    if not isinstance(v, dict):
        raise _err(path or "<board>", "must be an object, got %r" % (v,))
    pre = path + "." if path else ""
    for k in v:
        if k not in schema:
            raise _err(pre + k, "unknown key (known: %s)" % ", ".join(sorted(schema)))
    out = {}
    for k, spec in schema.items():
        t, default, nullable = spec
        p = pre + k
        if k in v:
            x = v[k]
        elif default is _REQ:
            raise _err(p, "missing (required)")
        else:
            x = _copy(default)
        if x is None:
            if not nullable:
                raise _err(p, "must not be null")
            out[k] = None
        elif isinstance(t, dict):
            out[k] = _obj(x, t, p)
        else:
            out[k] = _leaf(x, t, p)
    return out


def _get(b, path):
    v = b
    for part in path.split("."):
        if v is None:
            return None
        v = v[part]
    return v


def _check_uart(u, path, host):
    if u is None:
        return
    if host:
        if u["device"] is None:
            raise _err(path + ".device", 'host boards need "tcp:HOST:PORT" or a pty path')
        for k in ("id", "tx", "rx", "rts", "cts"):
            if u[k] is not None:
                raise _err(path + "." + k, "host boards have no UART pins")
    else:
        if u["device"] is not None:
            raise _err(path + ".device", "only host boards use a device path")
        for k in ("id", "tx", "rx"):
            if u[k] is None:
                raise _err(path + "." + k, "required on an ESP32 board")
        if u["id"] not in (1, 2):
            raise _err(path + ".id", "must be UART 1 or 2 (0 is the REPL), got %r" % u["id"])
    if u["baud"] < 300:
        raise _err(path + ".baud", "implausible baud rate %d" % u["baud"])


def _check_pins(b):
    used = {}
    host = b["chip"] == "host"
    for names, output in ((_OUTPUTS, True), (_INPUTS, False)):
        for path in names:
            pin = _get(b, path)
            if pin is None:
                continue
            if host:
                raise _err(path, "host boards have no pins")
            if pin in _FLASH_PINS:
                raise _err(path, "GPIO %d is wired to the SPI flash (6-11)" % pin)
            if pin in _NO_PAD or pin > 39:
                raise _err(path, "the ESP32 has no GPIO %d" % pin)
            if output and pin >= 34:
                raise _err(path, "GPIO %d is input-only (34-39) but this pin is driven" % pin)
            if pin in used:
                raise _err(path, "GPIO %d is already used by %s" % (pin, used[pin]))
            used[pin] = path


def _fill_model(b):
    model = b["modem"]["model"]
    m = MODELS.get(model)

    def need(path, idx):
        sect, key = path.split(".")
        if b[sect] is None or b[sect][key] is not None:
            return
        if m is None or m[idx] is None:
            raise _err(path, "model %s has no default here: give a value" % model)
        b[sect][key] = m[idx]

    if b["modem"]["family"] is None:
        if m is None:
            raise _err("modem.family", "unknown model %r: give the family" % model)
        b["modem"]["family"] = m[0]
    if b["chip"] == "host":
        # No pins: nothing to pulse or wait for.
        t = b["timing"]
        for k in ("boot_ms", "shutdown_ms"):
            if t[k] is None:
                t[k] = 0
        return
    need("pwrkey.on_ms", 1)
    need("pwrkey.off_ms", 2)
    need("timing.boot_ms", 3)
    need("timing.shutdown_ms", 4)
    need("reset.pulse_ms", 5)


def validate(obj):
    """Check a board dict (as parsed from JSON); return a new dict with defaults filled in."""
    b = _obj(obj, _SCHEMA, "")
    host = b["chip"] == "host"
    _check_uart(b["uart"], "uart", host)
    g = b["gnss"]
    _check_uart(g["uart"], "gnss.uart", host)
    if g["source"] == "uart" and g["uart"] is None:
        raise _err("gnss.uart", 'required when gnss.source is "uart"')
    if g["source"] != "uart" and g["uart"] is not None:
        raise _err("gnss.uart", 'only used when gnss.source is "uart"')
    if b["obd"] is not None:
        _check_uart(b["obd"]["uart"], "obd.uart", host)
    if not host:
        ids = [("uart.id", b["uart"]["id"])]
        if g["uart"] is not None:
            ids.append(("gnss.uart.id", g["uart"]["id"]))
        if b["obd"] is not None:
            ids.append(("obd.uart.id", b["obd"]["uart"]["id"]))
        for i in range(1, len(ids)):
            for j in range(i):
                if ids[i][1] == ids[j][1]:
                    raise _err(ids[i][0], "UART %d is already used by %s" % (ids[i][1], ids[j][0]))
    _check_pins(b)
    _fill_model(b)
    return b


def load(path):
    """Read and validate the board file at ``path``; ConfigError names the bad key."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        jsonstrict.check(data)  # MicroPython's json alone takes {"a": 1,}: CPython refuses
        obj = json.loads(data)
    except OSError as e:
        raise _err("<file>", "cannot read board file %s: %s" % (path, e)) from None
    except ValueError as e:
        raise _err("<file>", "board file %s is not valid JSON: %s" % (path, e)) from None
    return validate(obj)

