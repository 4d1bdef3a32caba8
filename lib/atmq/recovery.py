"""The recovery ladder: what to try next when the link is lost, how long to wait, when to escalate.

Rungs, cheapest first (modem-stacks study G5, after Zephyr ``modem_cellular``
and particle device-os #2198/#2940):

  0 probe    ``AT`` x3: is the module answering at all?
  1 session  rebuild the MQTT session (driver stop, start, connect, resubscribe)
  2 data     reopen the data path (NETOPEN / bearer), then the session
  3 reset    ``AT+CRESET`` / ``AT+CFUN=1,1``, wait for the boot URCs, re-init, then up
  4 power    PWRKEY power cycle (only on boards that wire it), then up

Two parts.  ``Ladder`` is pure logic over a caller-supplied ``now`` (ms ticks):
per-rung counters, exponential backoff with bounded jitter, escalation after
``escalate_after[rung]`` consecutive failures on a rung (or at once when an
action says the module is unresponsive), a memory of how high the last episode
had to climb (``floor``) and a reset of that memory and of the backoff after
``healthy_ms`` without trouble.  ``Recovery`` runs a ladder against async
actions and reports every step to ``on_step(step, rung, detail)``, so the app
logs it and the health report counts it.  Tests drive both with a fake clock.
"""

from .compat import const, sleep_ms, ticks_diff, ticks_ms

RUNG_PROBE = const(0)
RUNG_SESSION = const(1)
RUNG_DATA = const(2)
RUNG_RESET = const(3)
RUNG_POWER = const(4)
RUNGS = const(5)
RUNG_NAMES = ("probe", "session", "data", "reset", "power")

# on_step(step, rung, detail)
STEP_BEGIN = const(0)  # an episode starts (detail: the rung asked for)
STEP_TRY = const(1)  # an attempt starts (detail: backoff slept before it, ms)
STEP_OK = const(2)  # the attempt restored service (detail: attempts in this episode)
STEP_FAIL = const(3)  # the attempt failed (detail: the exception or None)
STEP_ESCALATE = const(4)  # moving up (rung: the new rung; detail: the old one)
STEP_CALM = const(5)  # healthy long enough: floor and backoff forgotten (detail: old floor)
STEP_NAMES = ("begin", "try", "ok", "fail", "escalate", "calm")


class Escalate(Exception):
    """Raised by an action that knows a higher rung is needed (e.g. no answer to ``AT``)."""

    def __init__(self, rung):
        super().__init__(rung)
        self.rung = rung


class Stopped(Exception):
    """``Recovery.stop()`` was called: the episode ends without service (app shutdown)."""


class Ladder:
    """Pure state of the ladder; every method takes ``now`` from the caller's clock.

    ``escalate_after``: consecutive failures per rung before moving up (the top
    rung never moves).  ``base_ms``/``max_ms``: backoff ``base * 2**(k-1)``
    capped at ``max_ms`` after the k-th failure since the ladder was last calm,
    then jittered into ``[d/2, d]`` (bounded both ways, so a fleet does not
    retry in lockstep).  ``enabled``: five booleans (power off on pin-less
    boards).  ``healthy_ms``: trouble-free time after a recovery that resets
    the floor and the backoff.
    """

    def __init__(self, escalate_after=(1, 3, 2, 2, 1), base_ms=2000, max_ms=300000,
                 healthy_ms=600000, enabled=(True, True, True, True, True), seed=1):
        if len(escalate_after) != RUNGS or len(enabled) != RUNGS:
            raise ValueError("escalate_after and enabled need %d entries (one per rung)" % RUNGS)
        if base_ms <= 0 or max_ms < base_ms:
            raise ValueError("backoff needs 0 < base_ms <= max_ms, got %d, %d"
                             % (base_ms, max_ms))
        if not any(enabled):
            raise ValueError("at least one rung must be enabled")
        for n in escalate_after:
            if n < 1:
                raise ValueError("escalate_after entries must be >= 1, got %r"
                                 % (escalate_after,))
        self.escalate_after = tuple(escalate_after)
        self.enabled = tuple(enabled)
        self.base_ms = base_ms
        self.max_ms = max_ms
        self.healthy_ms = healthy_ms
        self.top = max(i for i in range(RUNGS) if enabled[i])
        self._x = (seed & 0xFFFFFFFF) or 0x9E3779B9
        self.tries = [0] * RUNGS
        self.oks = [0] * RUNGS
        self.fails = [0] * RUNGS
        self.escalations = 0
        self.episodes = 0
        self.calms = 0
        self.rung = -1  # -1: no episode in progress
        self.streak = 0  # consecutive failures on the current rung
        self.backoff_n = 0  # failures since the ladder was last calm
        self.skip_next = False  # the next attempt follows at once (a quick failure)
        self.floor = 0  # lowest rung the next episode starts on
        self.last_ok = None  # now of the last successful recovery
        self.last_trouble = None  # now of the last begin()/failure

    def _enabled_from(self, r):
        while r < self.top and not self.enabled[r]:
            r += 1
        return min(r, self.top)

    def _rand(self):
        x = self._x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._x = x
        return x

    def calm(self, now):
        """Forget floor and backoff after ``healthy_ms`` of health; True when it did."""
        if self.rung >= 0 or self.last_ok is None:
            return False
        if self.floor == 0 and self.backoff_n == 0:
            return False
        if ticks_diff(now, self.last_ok) < self.healthy_ms:
            return False
        self.floor = 0
        self.backoff_n = 0
        self.calms += 1
        return True

    def begin(self, rung, now):
        """Start an episode at ``rung`` (raised to the floor); returns the rung to try."""
        self.calm(now)
        r = rung if rung > self.floor else self.floor
        self.rung = self._enabled_from(r)
        self.streak = 0
        self.skip_next = False
        self.episodes += 1
        self.last_trouble = now
        return self.rung

    def delay_ms(self):
        """Backoff before the next attempt: 0 on a calm ladder, else jittered and bounded."""
        k = self.backoff_n
        if self.skip_next:
            self.skip_next = False
            return 0
        if k <= 0:
            return 0
        d = self.base_ms
        while k > 1 and d < self.max_ms:
            d *= 2
            k -= 1
        if d > self.max_ms:
            d = self.max_ms
        half = d // 2
        return half + self._rand() % (d - half + 1)

    def attempt(self):
        self.tries[self.rung] += 1

    def failed(self, now, hint=-1, quick=False):
        """Count a failure; returns True when the ladder moved up (``rung`` is the new one).
        ``quick``: the next attempt follows at once (no backoff counted for this one)."""
        r = self.rung
        self.fails[r] += 1
        self.streak += 1
        if quick:
            self.skip_next = True
        else:
            self.backoff_n += 1
        self.last_trouble = now
        up = -1
        if hint > r:
            up = hint
        elif self.streak >= self.escalate_after[r] and r < self.top:
            up = r + 1
        if up < 0:
            return False
        self.rung = self._enabled_from(up)
        self.streak = 0
        self.escalations += 1
        return True

    def succeeded(self, now):
        """Service is back; the next episode starts no lower than this rung until calm."""
        r = self.rung
        self.oks[r] += 1
        self.floor = r
        self.last_ok = now
        self.rung = -1
        self.streak = 0
        return r

    def stats(self):
        """Counters for the health report; ``tries``/``oks``/``fails`` are the ladder's own
        lists (read them, do not keep or change them: no copies made per report)."""
        return {
            "tries": self.tries,
            "oks": self.oks,
            "fails": self.fails,
            "escalations": self.escalations,
            "episodes": self.episodes,
            "calms": self.calms,
            "floor": self.floor,
        }


class Recovery:
    """Runs a ``Ladder`` against ``actions``: five async callables (None: rung absent).

    An action returns normally (or True) when service is restored, returns
    False or raises when not; ``Escalate(rung)`` jumps straight up.  ``sleep``
    and ``clock`` are injectable (a fake clock in tests).  ``max_attempts``
    (None: forever) bounds one episode; when reached ``recover`` raises the
    last error so the app can decide (reboot the ESP32, sleep, report).  ``fatal(e)``
    -> True ends the episode at once with ``e`` (a fatal error climbs no rung).
    ``quick(e)`` -> True: the failure already waited its deadline (a command past the
    manual's max response time) or met a module that rebooted under it: the next
    attempt follows without a backoff, once per episode (a module that keeps doing it
    gets the backoff after that).
    """

    def __init__(self, ladder, actions, on_step=None, sleep=None, clock=None, max_attempts=None,
                 fatal=None, quick=None):
        if len(actions) != RUNGS:
            raise ValueError("actions needs %d entries (probe, session, data, reset, power)"
                             % RUNGS)
        self.ladder = ladder
        self.actions = actions
        self.on_step = on_step
        self.sleep = sleep or sleep_ms
        self.clock = clock or ticks_ms
        self.max_attempts = max_attempts
        self.fatal = fatal  # fatal(e) -> True: no rung can fix e, the episode ends with it
        self.quick = quick  # quick(e) -> True: retry at once (once per episode)
        self.quick_retries = 0
        self.last_error = None
        self.running = False
        self._stop = False

    def stop(self, on=True):
        """Make the running (or next) ``recover`` end at the next step with ``Stopped``;
        never interrupts an action half-way (a modem command is not cancelled)."""
        self._stop = on

    def _emit(self, step, rung, detail):
        f = self.on_step
        if f is not None:
            try:
                f(step, rung, detail)
            except Exception as e:  # a logging hook must not break recovery
                self.last_error = e

    def tick(self):
        """Call now and then while healthy: reports the ladder calming down."""
        old = self.ladder.floor
        if self.ladder.calm(self.clock()):
            self._emit(STEP_CALM, 0, old)

    async def recover(self, rung):
        """Climb from ``rung`` until an action restores service; returns the rung that did."""
        lad = self.ladder
        old = lad.floor
        if lad.calm(self.clock()):
            self._emit(STEP_CALM, 0, old)
        r = lad.begin(rung, self.clock())
        self._emit(STEP_BEGIN, r, rung)
        self.running = True
        n = 0
        quick_left = 1
        try:
            while True:
                if self._stop:
                    raise Stopped()
                d = lad.delay_ms()
                if d:
                    await self.sleep(d)
                if self._stop:
                    raise Stopped()
                lad.attempt()
                n += 1
                self._emit(STEP_TRY, r, d)
                hint = -1
                err = None
                ok = False
                try:
                    act = self.actions[r]
                    ok = (await act()) is not False if act is not None else False
                except Escalate as e:
                    hint = e.rung
                    err = e
                except Exception as e:  # any failure of a repair is a failed attempt
                    err = e
                    if self.fatal is not None and self.fatal(e):
                        # credentials refused, no SIM, a setting the modem rejects: a reset
                        # or power cycle cannot fix it, and would hide it.  Leave the ladder
                        self.last_error = e
                        self._emit(STEP_FAIL, r, e)
                        lad.failed(self.clock())
                        raise
                if ok:
                    lad.succeeded(self.clock())
                    self._emit(STEP_OK, r, n)
                    return r
                self.last_error = err
                self._emit(STEP_FAIL, r, err)
                quick = False
                if quick_left and err is not None and self.quick is not None and \
                        self.quick(err):
                    quick = True
                    quick_left -= 1
                    self.quick_retries += 1
                if lad.failed(self.clock(), hint, quick):
                    self._emit(STEP_ESCALATE, lad.rung, r)
                r = lad.rung
                if self.max_attempts is not None and n >= self.max_attempts:
                    if err is not None:
                        raise err
                    raise OSError("recovery: %d attempts without success" % n)
        finally:
            self.running = False
            lad.rung = -1  # given up or cancelled: no episode in progress any more
