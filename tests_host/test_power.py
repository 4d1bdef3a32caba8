"""atmq.power: the exact pin sequence and timing, on a fake clock with recording fake pins.

The fake clock's ``sleep`` only advances a counter (no real sleeping); its
ticks wrap at 2**30 like the ESP32's, and some tests start next to the wrap.
"""

import asyncio
import copy
import os

import pytest

from atmq import board, power

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MASK = (1 << 30) - 1


def load(name):
    return board.load(os.path.join(ROOT, "boards", name + ".json"))


class Clock:
    def __init__(self, start=0):
        self.now = start  # unbounded ms; ticks() wraps it
        self.sleeps = []

    def ticks(self):
        return self.now & MASK

    async def sleep(self, ms):
        assert ms >= 0
        self.sleeps.append(ms)
        self.now += ms
        await asyncio.sleep(0)


class Pins:
    """Called like machine.Pin; records (t, pin, level) for every output change."""

    IN = 1
    OUT = 3

    def __init__(self, clock, inputs=None):
        self.clock = clock
        self.inputs = inputs or {}  # pin -> f(now) -> level
        self.log = []
        self.reads = 0

    def __call__(self, n, mode, pull=None, value=None):
        return FakePin(self, n, mode, value)


class FakePin:
    def __init__(self, bank, n, mode, value):
        self.bank, self.n, self.mode = bank, n, mode
        if mode == Pins.OUT:
            assert value in (0, 1), "outputs are created at a defined level"
            bank.log.append((bank.clock.now, n, value))
        self.level = value

    def value(self, v=None):
        if v is None:
            assert self.mode == Pins.IN
            self.bank.reads += 1
            return self.bank.inputs[self.n](self.bank.clock.now)
        assert self.mode == Pins.OUT
        self.bank.log.append((self.bank.clock.now, self.n, v))
        self.level = v
        return None


def run(coro):
    return asyncio.run(coro)


def rel(log, t0):
    return [(t - t0, n, v) for t, n, v in log]


def up_after(t_on):
    return lambda now: 1 if now >= t_on else 0


def down_after(t_off):
    return lambda now: 0 if now >= t_off else 1


# LilyGO T-SIM7600X: PWRKEY 4 (active high), STATUS 34, DTR 32, FLIGHT 25 (active low).


def test_sim7600x_power_on_pulses_500ms_and_waits_for_status():
    b = load("lilygo-t-sim7600x")
    c = Clock(1000)
    pins = Pins(c, {34: up_after(1000 + 100 + 500 + 9000)})
    assert run(power.power_on(b, pins, c.sleep, c.ticks)) is True
    assert rel(pins.log, 1000) == [
        (0, 25, 1),  # FLIGHTMODE released (active low)
        (0, 32, 0),  # DTR low: UART stays awake
        (0, 4, 0),  # PWRKEY idle ...
        (100, 4, 1),  # ... then asserted for on_ms
        (600, 4, 0),
    ]
    # STATUS came up 9000 ms after the pulse; polled every 100 ms
    assert c.now - 1000 == 600 + 9000
    assert set(c.sleeps[2:]) == {100}


def test_sim7600x_already_on_is_not_pulsed():
    b = load("lilygo-t-sim7600x")
    c = Clock()
    pins = Pins(c, {34: lambda now: 1})
    assert run(power.power_on(b, pins, c.sleep, c.ticks)) is True
    assert [n for _, n, _ in pins.log] == [25, 32], "no PWRKEY edge on a running module"
    assert c.now == 0


def test_sim7600x_status_never_up_gives_false_after_boot_ms_across_tick_wrap():
    b = load("lilygo-t-sim7600x")
    start = MASK + 1 - 3000  # the deadline lies past the 2**30 wrap
    c = Clock(start)
    pins = Pins(c, {34: lambda now: 0})
    assert run(power.power_on(b, pins, c.sleep, c.ticks)) is False
    assert c.now - start == 600 + b["timing"]["boot_ms"] == 15600
    assert pins.reads == 15000 // 100 + 2  # the first status check, then every poll


def test_sim7600x_power_off_pulses_3000ms_and_waits_for_status_low():
    b = load("lilygo-t-sim7600x")
    c = Clock()
    pins = Pins(c, {34: down_after(100 + 3000 + 12000)})
    assert run(power.power_off(b, pins, c.sleep, c.ticks)) is True
    assert pins.log == [(0, 4, 0), (100, 4, 1), (3100, 4, 0)]
    assert c.now == 3100 + 12000


def test_power_off_of_a_module_already_off_does_not_pulse():
    b = load("lilygo-t-sim7600x")
    c = Clock()
    pins = Pins(c, {34: lambda now: 0})
    assert run(power.power_off(b, pins, c.sleep, c.ticks)) is True
    assert pins.log == [] and c.now == 0


def test_power_off_status_stuck_high_reports_false_within_shutdown_ms():
    b = load("lilygo-t-sim7600x")
    c = Clock()
    pins = Pins(c, {34: lambda now: 1})
    assert run(power.power_off(b, pins, c.sleep, c.ticks)) is False
    assert c.now == 3100 + b["timing"]["shutdown_ms"]


# Freematics ONE+: PWRKEY 27 active high, no STATUS: blind waits.


def test_freematics_power_on_blind():
    b = load("freematics-one-plus")
    c = Clock(50)
    pins = Pins(c)
    assert run(power.power_on(b, pins, c.sleep, c.ticks)) is None
    assert rel(pins.log, 50) == [(0, 27, 0), (100, 27, 1), (600, 27, 0)]
    assert c.sleeps == [100, 500, 15000]


def test_freematics_power_off_blind():
    b = load("freematics-one-plus")
    c = Clock()
    pins = Pins(c)
    assert run(power.power_off(b, pins, c.sleep, c.ticks)) is None
    assert pins.log == [(0, 27, 0), (100, 27, 1), (3100, 27, 0)]
    assert c.sleeps == [100, 3000, 26000]


def test_freematics_reset_without_reset_line_is_off_then_on():
    b = load("freematics-one-plus")
    c = Clock()
    pins = Pins(c)
    assert run(power.reset(b, pins, c.sleep, c.ticks)) is None
    off_end = 3100 + 26000
    assert pins.log == [
        (0, 27, 0), (100, 27, 1), (3100, 27, 0),
        (off_end, 27, 0), (off_end + 100, 27, 1), (off_end + 600, 27, 0),
    ]
    assert c.now == off_end + 600 + 15000


# LilyGO T-A7670: power switch 12, PWRKEY 4 (100 ms), RESET 5 active high 2600 ms.


def test_a7670_power_on_switches_supply_first():
    b = load("lilygo-t-a7670")
    c = Clock()
    pins = Pins(c)
    assert run(power.power_on(b, pins, c.sleep, c.ticks)) is None
    assert pins.log == [
        (0, 12, 1),  # supply on, settle 100 ms
        (100, 25, 0),  # DTR low
        (100, 4, 0),
        (200, 4, 1),
        (300, 4, 0),  # 100 ms on pulse
    ]
    assert c.now == 300 + 3000


def test_a7670_power_off_cuts_supply_after_shutdown_time():
    b = load("lilygo-t-a7670")
    c = Clock()
    pins = Pins(c)
    assert run(power.power_off(b, pins, c.sleep, c.ticks)) is None
    assert pins.log == [(0, 4, 0), (100, 4, 1), (3100, 4, 0), (13100, 12, 0)]


def test_a7670_reset_pulses_reset_line():
    b = load("lilygo-t-a7670")
    c = Clock()
    pins = Pins(c)
    assert run(power.reset(b, pins, c.sleep, c.ticks)) is None
    assert pins.log == [(0, 5, 1), (2600, 5, 0)]
    assert c.now == 2600 + 3000


def test_power_cycle_reset_when_only_a_supply_switch():
    b = load("lilygo-t-a7670")
    b = copy.deepcopy(b)
    b["reset"] = None
    c = Clock()
    pins = Pins(c)
    run(power.reset(b, pins, c.sleep, c.ticks))
    assert pins.log[:2] == [(0, 12, 0), (2000, 12, 1)]
    assert pins.log[-3:] == [(2100, 4, 0), (2200, 4, 1), (2300, 4, 0)]


# Generic DevKitC (SIM800): RESET 22 150 ms, STATUS 34.


def test_devkitc_reset_waits_for_status():
    b = load("esp32-devkitc-generic")
    c = Clock()
    pins = Pins(c, {34: up_after(150 + 1700)})
    assert run(power.reset(b, pins, c.sleep, c.ticks)) is True
    assert pins.log == [(0, 22, 1), (150, 22, 0)]
    assert c.now == 150 + 1700


def test_devkitc_power_on_sim800_timing():
    b = load("esp32-devkitc-generic")
    c = Clock()
    pins = Pins(c, {34: up_after(100 + 1100 + 2200)})
    assert run(power.power_on(b, pins, c.sleep, c.ticks)) is True
    assert [e for e in pins.log if e[1] == 23] == [(0, 23, 0), (100, 23, 1), (1200, 23, 0)]


def test_status_helper():
    c = Clock()
    b = load("lilygo-t-sim7600x")
    assert power.status(b, Pins(c, {34: lambda now: 1})) is True
    assert power.status(b, Pins(c, {34: lambda now: 0})) is False
    assert power.status(load("freematics-one-plus"), Pins(c)) is None


class NoPins:
    IN = 1
    OUT = 3

    def __call__(self, *a, **k):
        raise AssertionError("the unix board has no pins")


@pytest.mark.parametrize("fn", [power.power_on, power.power_off, power.reset])
def test_unix_board_is_a_no_op(fn):
    b = load("unix")
    c = Clock()
    assert power.has_pins(b) is False
    assert run(fn(b, NoPins(), c.sleep, c.ticks)) is None
    assert c.sleeps == []
    # and without injected clock functions too (defaults are compat's)
    assert run(fn(b, NoPins())) is None
