"""Motion state machine on an injected clock (across the 2**30 tick wrap) and the IMU drivers."""

import asyncio

import pytest
from atmq.compat import ticks_add
from tlog import imu
from tlog.motion import MOVING, STANDBY, STATIONARY, Motion


class Clock:
    """A tick clock that starts 5 s before the 2**30 wrap and moves only when told."""

    def __init__(self):
        self.t = (1 << 30) - 5000

    def __call__(self):
        return self.t

    def advance(self, ms):
        self.t = ticks_add(self.t, ms)


def run_for(m, clock, ms, step=500, feed=None):
    """Advance in steps, feeding inputs and calling update(); returns the states seen."""
    seen = []
    for _ in range(ms // step):
        clock.advance(step)
        if feed:
            feed(m)
        s = m.update()
        if not seen or seen[-1] != s:
            seen.append(s)
    return seen


def test_anchor_schedule_moving_stationary_standby():
    c = Clock()
    m = Motion(clock=c)
    m.speed(5000)
    assert m.update() == MOVING and m.interval_ms() == 1000
    c.advance(9999)
    assert m.update() == MOVING and m.interval_ms() == 1000
    c.advance(1)
    assert m.update() == STATIONARY and m.changed and m.interval_ms() == 2000
    c.advance(50000)
    assert m.update() == STATIONARY and not m.changed and m.interval_ms() == 5000
    c.advance(119999)
    assert m.update() == STATIONARY
    c.advance(1)
    assert m.update() == STANDBY and m.changed and m.interval_ms() == 10000
    c.advance(10 ** 6)
    assert m.update() == STANDBY  # stays until woken


def test_inputs_below_thresholds_do_not_count():
    c = Clock()
    m = Motion(clock=c, rpm_is_motion=False)
    seen = run_for(m, c, 200000, feed=lambda m: (m.speed(299), m.rpm(800), m.battery(13900)))
    assert seen == [MOVING, STATIONARY, STANDBY]


@pytest.mark.parametrize("feed, cause", [
    (lambda m: m.speed(300), 1),
    (lambda m: m.rpm(750), 2),  # idling engine: no standby (anchor issue #165)
    (lambda m: m.battery(14100), 3),
])
def test_each_input_keeps_it_moving(feed, cause):
    c = Clock()
    m = Motion(clock=c)
    assert run_for(m, c, 400000, feed=feed) == [MOVING]
    assert m.cause == cause


def test_wake_from_standby_and_count():
    c = Clock()
    m = Motion(clock=c)
    run_for(m, c, 181000)
    assert m.state == STANDBY and m.wakes == 0
    m.rpm(900)
    assert m.update() == MOVING and m.changed and m.wakes == 1
    assert m.interval_ms() == 1000


def test_standby_disabled():
    c = Clock()
    m = Motion(clock=c, standby_after_ms=0)
    assert run_for(m, c, 10 ** 6, step=5000) == [MOVING, STATIONARY]
    assert m.interval_ms() == 5000


def test_long_idle_does_not_wrap_back_to_moving():
    c = Clock()
    m = Motion(clock=c, standby_after_ms=0)
    for _ in range(40):  # 40 x 2**27 ms: far beyond the 2**29 sign flip of ticks_diff
        c.advance(1 << 27)
        assert m.update() == STATIONARY and m.interval_ms() == 5000


def test_accelerometer_baseline_and_thresholds():
    c = Clock()
    m = Motion(clock=c, motion_mg=60, wake_mg=400)
    # device mounted tilted: gravity mostly on y; small noise never counts as motion
    noise = [(3, 990, 120), (-4, 1002, 118), (2, 995, 125), (0, 1000, 121)]
    i = 0

    def still(m):
        nonlocal i
        m.accel(*noise[i % 4])
        i += 1
    assert run_for(m, c, 200000, feed=still) == [MOVING, STATIONARY, STANDBY]
    assert m.accel_dev_mg < 60
    m.accel(150, 1000, 120)  # 150 mg bump: motion while awake, but not a wake-up
    assert m.update() == STANDBY
    m.accel(0, 1000, 600)  # ~480 mg jolt wakes (the anchor's 0.4 g)
    assert m.update() == MOVING and m.wakes == 1 and m.cause == 4
    c.advance(3000)
    m.accel(80, 1000, 120)
    assert m.cause == 4 and m.stationary_ms() == 0


def test_next_due_wraps():
    c = Clock()
    m = Motion(clock=c)
    last = c()
    assert m.next_due(last) == ticks_add(last, 1000)
    assert m.next_due((1 << 30) - 200) == 800


class FakeI2C:
    """Registers per address; records writes; missing addresses NACK (OSError)."""

    def __init__(self, devices):
        self.devices = devices
        self.writes = []

    def readfrom_mem_into(self, addr, reg, buf):
        regs = self.devices.get(addr)
        if regs is None:
            raise OSError(19)
        for i in range(len(buf)):
            buf[i] = regs.get(reg + i, 0)

    def writeto_mem(self, addr, reg, buf):
        if addr not in self.devices:
            raise OSError(19)
        self.writes.append((addr, reg, bytes(buf)))


def test_icm42627_detect_configure_read():
    regs = {0x75: 0x20, 0x1F: 0x40, 0x20: 0x00, 0x21: 0xC0, 0x22: 0x00, 0x23: 0x20, 0x24: 0x00}
    bus = FakeI2C({0x68: regs})
    dev = asyncio.run(imu.detect(bus))
    assert isinstance(dev, imu.Icm42627) and dev.addr == 0x68
    assert bus.writes == [(0x68, 0x50, b"\x66"), (0x68, 0x4E, b"\x03")]
    out = [0, 0, 0]
    assert dev.read_mg(out) and out == [1000, -1000, 500]


def test_icm20948_on_0x69_and_bus_error():
    regs = {0x00: 0xEA, 0x2D: 0xFF, 0x2E: 0xFF, 0x2F: 0x00, 0x30: 0x00, 0x31: 0x3F, 0x32: 0xFF}
    bus = FakeI2C({0x69: regs})
    dev = asyncio.run(imu.detect(bus))
    assert isinstance(dev, imu.Icm20948) and dev.addr == 0x69
    assert (0x69, 0x14, b"\x00") in bus.writes and bus.writes[-1] == (0x69, 0x7F, b"\x00")
    out = [0, 0, 0]
    assert dev.read_mg(out) and out == [-1, 0, 999]
    del bus.devices[0x69]
    assert not dev.read_mg(out) and dev.errors == 1 and out == [-1, 0, 999]


def test_no_imu():
    assert asyncio.run(imu.detect(FakeI2C({0x68: {0x75: 0x47}}))) is None
