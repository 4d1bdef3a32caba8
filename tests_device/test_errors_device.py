"""errtab, errors, board and power on MicroPython (unix port in CI, a board via mpremote)."""

import asyncio
import os

import run
from atmq import board, errtab, power
from atmq.errors import ATError, ATTimeout, ConfigError, ModemError


def _root():
    f = __file__
    d = f[: f.rfind("/")] if "/" in f else "."
    return d[: d.rfind("/")] if "/" in d else "."


def _boards_dir():
    p = _root() + "/boards"
    try:
        os.stat(p)
    except OSError:
        raise run.SkipTest("no boards/ folder next to tests_device/") from None
    return p


def test_errtab_lookup_describe_classes():
    assert errtab.describe("CMQTT", 14) == "CMQTT 14 (client is busy): client is busy"
    assert errtab.describe("CMQTT", 99) == "CMQTT 99 (unknown code)"
    assert errtab.lookup("CME", 1)[1] == "no connection to phone"
    assert errtab.lookup("CME", 100)[1] == "unknown error"
    assert errtab.cls_of("CMQTT", 19) == errtab.STATE
    assert errtab.cls_of("CMQTT", 33) == errtab.FATAL
    assert errtab.cls_of("SSL", 3) == errtab.TRANSIENT
    assert errtab.cls_of("NET", 99) == errtab.UNKNOWN
    assert errtab.code_for("IP", "Network is already opened") == 4
    n = 0
    for kind in errtab.KINDS:
        for code, cls, name, meaning in errtab.entries(kind):
            assert errtab.lookup(kind, code) == (name, meaning, cls)
            n += 1
    assert n > 250
    try:
        errtab.lookup("NOPE", 1)
    except ValueError:
        pass
    else:
        raise AssertionError("unknown kind accepted")


def test_exceptions_str_and_attributes():
    e = ModemError("CMQTT", 14, b"AT+CMQTTSUBTOPIC=0,10,1\r")
    assert str(e) == "CMQTT 14 (client is busy): client is busy [AT+CMQTTSUBTOPIC=0,10,1]"
    assert e.cls == errtab.TRANSIENT and e.code == 14 and e.kind == "CMQTT"
    try:
        raise ATTimeout(b"AT+NETOPEN\r", 5000)
    except ModemError as x:
        assert isinstance(x, ATTimeout)
        assert str(x) == "TIMEOUT: no final result within 5000 ms [AT+NETOPEN]"
        assert x.timeout_ms == 5000 and x.cls == errtab.TRANSIENT
    a = ATError("AT+X")
    assert str(a) == "AT ERROR (no code given) [AT+X]" and a.code == -1
    assert str(ModemError("CME", 9, b"\xff")) == "CME 9 (unknown code) [b'\\xff']"
    c = ConfigError("uart.tx", "bad")
    assert isinstance(c, ValueError) and c.key == "uart.tx"
    assert str(c) == "config key 'uart.tx': bad"


def test_every_board_file_loads():
    d = _boards_dir()
    names = sorted(n for n in os.listdir(d) if n.endswith(".json"))
    assert len(names) == 6
    for n in names:
        b = board.load(d + "/" + n)
        assert b["name"] + ".json" == n
        assert b["modem"]["family"] in ("cmqtt", "sm")


def test_board_refuses_bad_key():
    base = {"name": "m", "modem": {"model": "SIM7600"}, "uart": {"id": 1, "tx": 17, "rx": 16}}
    assert board.validate(base)["timing"]["boot_ms"] == 15000
    for bad, key in (
        ({"pwrkye": {"pin": 4}}, "pwrkye"),
        ({"pwrkey": {"pin": 35}}, "pwrkey.pin"),
        ({"led": {"pin": 8}}, "led.pin"),
    ):
        b = dict(base)
        b.update(bad)
        try:
            board.validate(b)
        except ConfigError as e:
            assert e.key == key, (e.key, key)
        else:
            raise AssertionError("accepted " + key)


class _Clock:
    def __init__(self):
        self.now = 0

    def ticks(self):
        return self.now & ((1 << 30) - 1)

    async def sleep(self, ms):
        self.now += ms
        await asyncio.sleep_ms(0)


class _Pins:
    IN = 1
    OUT = 3

    def __init__(self, clock):
        self.clock = clock
        self.log = []

    def __call__(self, n, mode, pull=None, value=None):
        return _Pin(self, n, value)


class _Pin:
    def __init__(self, bank, n, value):
        self.bank = bank
        self.n = n
        if value is not None:
            bank.log.append((bank.clock.now, n, value))

    def value(self, v=None):
        if v is None:
            return 1 if self.bank.clock.now >= 5000 else 0  # STATUS up at 5 s
        self.bank.log.append((self.bank.clock.now, self.n, v))


async def test_power_on_sequence_on_micropython():
    d = _boards_dir()
    b = board.load(d + "/lilygo-t-sim7600x.json")
    c = _Clock()
    pins = _Pins(c)
    assert await power.power_on(b, pins, c.sleep, c.ticks) is True
    assert pins.log == [(0, 25, 1), (0, 32, 0), (0, 4, 0), (100, 4, 1), (600, 4, 0)]
    assert c.now == 5000


async def test_power_is_a_no_op_on_the_unix_board():
    d = _boards_dir()
    b = board.load(d + "/unix.json")
    assert await power.power_on(b, None) is None
    assert await power.power_off(b, None) is None
    assert await power.reset(b, None) is None
