"""Motion-adaptive sampling: how often to sample, and when to go to standby.

Owned here: the state machine MOVING -> STATIONARY -> STANDBY and the sampling
interval for each, fed with speed (GNSS or OBD), engine rpm, battery voltage
and accelerometer samples.  Pure logic with an injected tick clock, so it is
tested without hardware or sleeps; the accelerometer driver lives in ``imu``.

Defaults follow the anchor (Freematics telelogger config.h): 1 s while moving,
2 s after 10 s without motion, 5 s after 60 s, standby after 180 s; 0.4 g wakes
from standby.  ``standby_after_ms=0`` disables standby (users asked for it,
anchor issue #165).  Unlike the anchor, a running engine (rpm > 0, or a
charging voltage) counts as activity, so idling does not lead to standby.
"""

from atmq.compat import const, ticks_add, ticks_diff, ticks_ms

MOVING = const(0)
STATIONARY = const(1)
STANDBY = const(2)
STATE_NAMES = ("moving", "stationary", "standby")

# Longest stationary time tracked; keeps ticks_diff far from the 2**29 ms sign flip.
_CAP_MS = const(0x10000000)


class Motion:
    """Call the inputs whenever a reading arrives, then ``update()`` once per loop.

    ``table`` is ((stationary_ms, interval_ms), ...) in increasing order: once
    nothing moved for ``stationary_ms``, sample every ``interval_ms``.
    """

    def __init__(self, clock=ticks_ms, moving_ms=1000, table=((10000, 2000), (60000, 5000)),
                 standby_after_ms=180000, standby_interval_ms=10000, min_speed_ckmh=300,
                 rpm_is_motion=True, wake_mv=14000, motion_mg=60, wake_mg=400):
        self.clock = clock
        self.moving_ms = moving_ms
        self.table = table
        self.standby_after_ms = standby_after_ms
        self.standby_interval_ms = standby_interval_ms
        self.min_speed_ckmh = min_speed_ckmh
        self.rpm_is_motion = rpm_is_motion
        self.wake_mv = wake_mv
        self.motion_mg = motion_mg
        self.wake_mg = wake_mg
        self.state = MOVING
        self.changed = False  # set by update(): the state differs from the previous update()
        self._prev = MOVING
        self.wakes = 0
        self.last_motion = clock()
        self.cause = 0  # what last counted as motion: 1 speed, 2 rpm, 3 battery, 4 accel
        self._bx = 0  # accelerometer baseline (gravity + bias), mg x 16
        self._by = 0
        self._bz = 0
        self._have_base = False
        self.accel_dev_mg = 0  # last deviation from the baseline (L1 norm)

    # ---- inputs -------------------------------------------------------------------

    def _moved(self, cause):
        self.last_motion = self.clock()
        self.cause = cause
        if self.state == STANDBY:
            self.wakes += 1
        self.state = MOVING

    def speed(self, speed_ckmh):
        """Speed in 0.01 km/h (Fix.speed_ckmh, or OBD km/h x 100)."""
        if speed_ckmh >= self.min_speed_ckmh:
            self._moved(1)

    def rpm(self, rpm):
        if self.rpm_is_motion and rpm > 0:
            self._moved(2)

    def battery(self, mv):
        """A charging voltage means the engine runs (the anchor's 14 V wake)."""
        if self.wake_mv and mv >= self.wake_mv:
            self._moved(3)

    def accel(self, x_mg, y_mg, z_mg):
        """One accelerometer sample in mg; motion = L1 deviation from a slow baseline."""
        if not self._have_base:
            self._bx = x_mg << 4
            self._by = y_mg << 4
            self._bz = z_mg << 4
            self._have_base = True
            self.accel_dev_mg = 0
            return
        dx = x_mg - (self._bx >> 4)
        dy = y_mg - (self._by >> 4)
        dz = z_mg - (self._bz >> 4)
        dev = (dx if dx >= 0 else -dx) + (dy if dy >= 0 else -dy) + (dz if dz >= 0 else -dz)
        self.accel_dev_mg = dev
        # Baseline follows at 1/16 per sample: gravity and bias, not vibration.
        self._bx += dx
        self._by += dy
        self._bz += dz
        limit = self.wake_mg if self.state == STANDBY else self.motion_mg
        if dev >= limit:
            self._moved(4)

    # ---- evaluation ---------------------------------------------------------------

    def stationary_ms(self):
        now = self.clock()
        d = ticks_diff(now, self.last_motion)
        if d > _CAP_MS:
            self.last_motion = ticks_add(now, -_CAP_MS)
            d = _CAP_MS
        return d if d > 0 else 0

    def update(self):
        """Re-evaluate at the clock's now; returns the state (``changed`` says if it moved)."""
        if self.state != STANDBY:  # only an input wakes the device
            d = self.stationary_ms()
            if self.standby_after_ms and d >= self.standby_after_ms:
                self.state = STANDBY
            elif self.table and d >= self.table[0][0]:
                self.state = STATIONARY
            else:
                self.state = MOVING
        self.changed = self.state != self._prev
        self._prev = self.state
        return self.state

    def interval_ms(self):
        """Sampling interval for the current state and stationary time."""
        if self.state == STANDBY:
            return self.standby_interval_ms
        d = self.stationary_ms()
        ms = self.moving_ms
        for limit, interval in self.table:
            if d >= limit:
                ms = interval
        return ms

    def next_due(self, last_sample):
        """Tick at which the next sample is due, given the tick of the last one."""
        return ticks_add(last_sample, self.interval_ms())
