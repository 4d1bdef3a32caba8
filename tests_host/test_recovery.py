"""The recovery ladder on a fake clock: rung order, backoff bounds, escalation, calm reset,
step reports, and the I/O runner with scripted actions."""

import asyncio

import pytest
from atmq import recovery as rc
from atmq.errors import ATTimeout


class Clock:
    def __init__(self):
        self.t = 0
        self.slept = []

    def __call__(self):
        return self.t

    async def sleep(self, ms):
        self.slept.append(ms)
        self.t += ms


def scripted(results, log, rung):
    """An action that pops its next outcome: True, False, or an exception to raise."""
    async def act():
        log.append(rung)
        r = results[rung].pop(0)
        if isinstance(r, BaseException):
            raise r
        return r
    return act


def make(results, ladder=None, clock=None, **kw):
    clock = clock or Clock()
    log, steps = [], []
    lad = ladder or rc.Ladder(seed=3)
    acts = [scripted(results, log, r) if results.get(r) is not None else None
            for r in range(rc.RUNGS)]
    rec = rc.Recovery(lad, acts, on_step=lambda s, r, d: steps.append((s, r, d)),
                      sleep=clock.sleep, clock=clock, **kw)
    return rec, log, steps, clock


def test_rungs_climb_in_order_with_escalate_after():
    results = {0: [False], 1: [False, False, False], 2: [False, False], 3: [False, True], 4: []}
    rec, log, steps, clock = make(results)
    assert asyncio.run(rec.recover(rc.RUNG_PROBE)) == rc.RUNG_RESET
    # default escalate_after (1, 3, 2, 2, 1)
    assert log == [0, 1, 1, 1, 2, 2, 3, 3]
    esc = [(r, d) for s, r, d in steps if s == rc.STEP_ESCALATE]
    assert esc == [(1, 0), (2, 1), (3, 2)]
    assert steps[0] == (rc.STEP_BEGIN, 0, 0) and steps[-1] == (rc.STEP_OK, 3, 8)
    lad = rec.ladder
    assert lad.tries == [1, 3, 2, 2, 0] and lad.fails == [1, 3, 2, 1, 0] and lad.oks[3] == 1
    assert lad.escalations == 3 and lad.floor == 3


def test_backoff_is_exponential_jittered_and_bounded():
    lad = rc.Ladder(base_ms=1000, max_ms=60000, seed=9)
    lad.begin(rc.RUNG_SESSION, 0)
    assert lad.delay_ms() == 0  # the first attempt of a calm ladder waits for nothing
    seen = []
    for k in range(1, 20):
        lad.failed(0)
        d = lad.delay_ms()
        cap = min(60000, 1000 * 2 ** (k - 1))
        assert cap // 2 <= d <= cap, (k, d, cap)
        seen.append(d)
    assert max(seen) <= 60000 and seen[-1] >= 30000
    # jitter: not all the capped delays are equal
    assert len(set(seen[-8:])) > 1


def test_same_seed_same_delays_different_seed_differs():
    def delays(seed):
        lad = rc.Ladder(seed=seed)
        lad.begin(1, 0)
        out = []
        for _ in range(10):
            lad.failed(0)
            out.append(lad.delay_ms())
        return out
    assert delays(5) == delays(5)
    assert delays(5) != delays(6)


def test_escalate_exception_jumps_and_top_rung_retries_forever():
    results = {0: [rc.Escalate(rc.RUNG_RESET)], 1: [], 2: [], 3: [False, False],
               4: [ATTimeout(b"AT", 1000), False, False, True]}
    rec, log, steps, clock = make(results)
    assert asyncio.run(rec.recover(rc.RUNG_PROBE)) == rc.RUNG_POWER
    assert log == [0, 3, 3, 4, 4, 4, 4]
    fails = [d for s, r, d in steps if s == rc.STEP_FAIL]
    assert isinstance(fails[0], rc.Escalate) and isinstance(fails[3], ATTimeout)
    # every wait was a bounded backoff
    assert all(0 < d <= rec.ladder.max_ms for d in clock.slept)
    assert len(clock.slept) == 6


def test_disabled_power_rung_caps_the_ladder():
    lad = rc.Ladder(enabled=(True, True, True, True, False), seed=1)
    results = {0: [], 1: [], 2: [], 3: [False, False, False, True], 4: None}
    rec, log, steps, clock = make(results, ladder=lad)
    assert asyncio.run(rec.recover(rc.RUNG_RESET)) == rc.RUNG_RESET
    assert log == [3, 3, 3, 3]
    assert lad.top == rc.RUNG_RESET
    assert not [s for s, r, d in steps if s == rc.STEP_ESCALATE]


def test_floor_remembered_until_healthy_then_calm_resets():
    lad = rc.Ladder(healthy_ms=600000, seed=2)
    results = {0: [], 1: [False, False, False], 2: [True, True], 3: [], 4: [],
               }
    clock = Clock()
    rec, log, steps, clock = make(results, ladder=lad, clock=clock)
    assert asyncio.run(rec.recover(rc.RUNG_SESSION)) == rc.RUNG_DATA
    assert lad.floor == rc.RUNG_DATA and lad.backoff_n == 3
    # trouble again 1 min later: starts on the data rung, with continued backoff
    clock.t += 60000
    results[1].append(True)
    log.clear()
    n_sleep = len(clock.slept)
    assert asyncio.run(rec.recover(rc.RUNG_SESSION)) == rc.RUNG_DATA
    assert log == [2]
    assert len(clock.slept) == n_sleep + 1  # backoff continued (the ladder was not calm)
    # 10 min of health: calm; the next episode starts where asked, without backoff
    clock.t += 600000
    rec.tick()
    assert lad.floor == 0 and lad.backoff_n == 0 and lad.calms == 1
    assert steps[-1] == (rc.STEP_CALM, 0, rc.RUNG_DATA)
    log.clear()
    n_sleep = len(clock.slept)
    assert asyncio.run(rec.recover(rc.RUNG_SESSION)) == rc.RUNG_SESSION
    assert log == [1] and len(clock.slept) == n_sleep


def test_not_calm_before_healthy_ms():
    lad = rc.Ladder(healthy_ms=1000)
    lad.begin(1, 0)
    lad.failed(0)
    lad.succeeded(100)
    assert not lad.calm(1099)
    assert lad.calm(1100)
    assert not lad.calm(5000)  # already calm: nothing to report


def test_max_attempts_raises_last_error_and_leaves_ladder_idle():
    results = {0: [False], 1: [ATTimeout(b"AT+CMQTTCONNECT", 30000)] * 3, 2: [], 3: [], 4: []}
    rec, log, steps, clock = make(results, max_attempts=4)
    with pytest.raises(ATTimeout):
        asyncio.run(rec.recover(rc.RUNG_PROBE))
    assert log == [0, 1, 1, 1]
    assert rec.ladder.rung == -1 and not rec.running


def test_a_broken_step_hook_does_not_break_recovery():
    results = {0: [True], 1: [], 2: [], 3: [], 4: []}
    lad = rc.Ladder()

    def hook(s, r, d):
        raise RuntimeError("logger down")
    rec = rc.Recovery(lad, [scripted(results, [], r) for r in range(5)], on_step=hook)
    assert asyncio.run(rec.recover(0)) == 0


@pytest.mark.parametrize("kw, fragment", [
    ({"escalate_after": (1, 2)}, "one per rung"),
    ({"base_ms": 0}, "backoff"),
    ({"base_ms": 10, "max_ms": 5}, "backoff"),
    ({"enabled": (False,) * 5}, "at least one"),
    ({"escalate_after": (1, 0, 1, 1, 1)}, ">= 1"),
])
def test_bad_parameters_are_named(kw, fragment):
    with pytest.raises(ValueError) as e:
        rc.Ladder(**kw)
    assert fragment in str(e.value)


def test_stop_ends_the_episode_between_steps_not_inside_one():
    lad = rc.Ladder(seed=1)
    clock = Clock()
    log = []
    holder = []

    async def session():
        log.append("session")
        if len(log) == 2:
            holder[0].stop()  # asked while an action runs: that action still completes
        return False
    rec = rc.Recovery(lad, [None, session, None, None, None], sleep=clock.sleep, clock=clock)
    holder.append(rec)
    with pytest.raises(rc.Stopped):
        asyncio.run(rec.recover(rc.RUNG_SESSION))
    assert log == ["session", "session"] and lad.rung == -1 and not rec.running


def test_first_timeout_of_an_episode_is_retried_at_once_then_backoff():
    """quick(e): a failure that already waited its manual deadline (ATTimeout) is retried
    without a backoff, once per episode; the next failure backs off as usual (issue 9
    round 2: an unanswered AT+CMQTTSTART costs its 12 s, not 12 s + a backoff)."""
    t1, t2 = ATTimeout(b"AT+CMQTTSTART", 12000), ATTimeout(b"AT+CMQTTSTART", 12000)
    results = {0: [], 1: [t1, t2, True], 2: [], 3: [], 4: []}
    rec, log, steps, clock = make(results, quick=lambda e: isinstance(e, ATTimeout))
    assert asyncio.run(rec.recover(rc.RUNG_SESSION)) == rc.RUNG_SESSION
    assert log == [1, 1, 1]
    assert len(clock.slept) == 1 and 1000 <= clock.slept[0] <= 2000  # only the second
    assert rec.quick_retries == 1
    # a new episode gets its own quick retry (its first attempt still waits the backoff
    # the ladder kept from the last episode: it is not calm yet)
    results[1] = [ATTimeout(b"AT", 1000), True]
    clock.slept.clear()
    assert asyncio.run(rec.recover(rc.RUNG_SESSION)) == rc.RUNG_SESSION
    assert rec.quick_retries == 2 and len(clock.slept) == 1
