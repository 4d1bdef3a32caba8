"""tlog.watchdog on a fake clock: the hardware is fed only while every task makes progress;
a stuck uplink or a dead/silent reader withholds the feed; the limits are per task."""

import asyncio

import pytest
from app_fakes import Clock

from tlog.platform import NoWDT
from tlog.watchdog import ReaderProbe, Watchdog


class FakeAt:
    def __init__(self):
        self.rx_bytes = 0
        self.commands = 0


class FakeTask:
    def __init__(self):
        self.ended = False

    def done(self):
        return self.ended


def make():
    clock = Clock()
    hw = NoWDT(120000)
    wd = Watchdog(hw, clock)
    wd.register("acquire", 60000)
    wd.register("uplink", 600000)
    return wd, hw, clock


def test_fed_while_all_tasks_beat():
    wd, hw, clock = make()
    for _ in range(100):
        clock.advance(10000)
        wd.beat("acquire")
        wd.beat("uplink")
        assert wd.tick()
    assert hw.feeds == 100 and wd.starved == 0


def test_stuck_uplink_starves_the_hardware():
    wd, hw, clock = make()
    for _ in range(60):  # acquisition goes on, the uplink never returns
        clock.advance(10000)
        wd.beat("acquire")
        wd.tick()
    assert wd.stuck == [] and hw.feeds == 60  # 600 s limit: fed up to it
    clock.advance(10000)
    wd.beat("acquire")
    assert not wd.tick() and hw.feeds == 60 and wd.starved == 1
    assert wd.stuck == ["uplink"]
    wd.beat("uplink")  # it came back before the hardware fired: fed again
    assert wd.tick() and wd.stuck == []


def test_each_task_has_its_own_limit():
    wd, _hw, clock = make()
    clock.advance(60001)
    wd.beat("uplink")
    assert wd.check() == ["acquire"]


def test_reader_probe_silence_is_fine_until_commands_go_unanswered():
    at = FakeAt()
    task = FakeTask()
    clock = Clock()
    wd = Watchdog(NoWDT(), clock)
    wd.register("reader", 600000, ReaderProbe(at, task))
    for _ in range(100):  # a quiet modem nobody talks to: progress
        clock.advance(10000)
        assert wd.tick()
    at.commands += 1  # a command, answered
    at.rx_bytes += 6
    clock.advance(10000)
    assert wd.tick()
    at.commands += 5  # commands without a single byte back for longer than the limit
    for _ in range(60):
        clock.advance(10000)
        assert wd.tick()
    clock.advance(10000)
    assert not wd.tick() and wd.stuck == ["reader"]
    at.rx_bytes += 1
    assert wd.tick()


def test_reader_probe_dead_task():
    at = FakeAt()
    task = FakeTask()
    clock = Clock()
    wd = Watchdog(NoWDT(), clock)
    wd.register("reader", 5000, ReaderProbe(at, task))
    task.ended = True  # the reader raised (stream error): no progress whatever happens
    at.rx_bytes += 10
    clock.advance(5001)
    assert wd.check() == ["reader"]


def test_register_errors():
    wd, _hw, _clock = make()
    with pytest.raises(ValueError, match="twice"):
        wd.register("uplink", 1000)
    with pytest.raises(ValueError, match="> 0"):
        wd.register("x", 0)


def test_run_feeds_periodically():
    wd, hw, _clock = make()

    async def go():
        t = asyncio.create_task(wd.run(1))
        for _ in range(50):
            await asyncio.sleep(0.002)
            if hw.feeds >= 3:
                break
        t.cancel()

    asyncio.run(go())
    assert hw.feeds >= 3
