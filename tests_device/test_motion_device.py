"""Motion state machine and IMU driver on MicroPython (fake clock and fake I2C)."""

import asyncio

from atmq.compat import ticks_add
from tlog import imu
from tlog.motion import MOVING, STANDBY, STATIONARY, Motion


class Clock:
    def __init__(self):
        self.t = (1 << 30) - 5000

    def __call__(self):
        return self.t

    def advance(self, ms):
        self.t = ticks_add(self.t, ms)


def test_schedule_and_wake():
    c = Clock()
    m = Motion(clock=c)
    m.speed(2000)
    assert m.update() == MOVING and m.interval_ms() == 1000
    c.advance(10000)
    assert m.update() == STATIONARY and m.interval_ms() == 2000
    c.advance(50000)
    assert m.interval_ms() == 5000
    c.advance(120000)
    assert m.update() == STANDBY and m.changed
    m.accel(0, 0, 1000)
    m.accel(0, 0, 1500)
    assert m.update() == MOVING and m.wakes == 1


class FakeI2C:
    def __init__(self, regs):
        self.regs = regs

    def readfrom_mem_into(self, addr, reg, buf):
        if addr != 0x68:
            raise OSError(19)
        for i in range(len(buf)):
            buf[i] = self.regs.get(reg + i, 0)

    def writeto_mem(self, addr, reg, buf):
        if addr != 0x68:
            raise OSError(19)


def test_icm42627():
    regs = {0x75: 0x20, 0x1F: 0x40, 0x20: 0x00, 0x21: 0xC0, 0x22: 0x00, 0x23: 0x20, 0x24: 0x00}
    dev = asyncio.run(imu.detect(FakeI2C(regs)))
    out = [0, 0, 0]
    assert dev is not None and dev.read_mg(out) and out == [1000, -1000, 500]
