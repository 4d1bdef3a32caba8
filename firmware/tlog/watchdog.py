"""The watchdog: the hardware WDT is fed only while every critical task makes progress.

Owns the progress bookkeeping.  Each critical task is registered with a limit;
it calls ``beat(name)`` whenever it makes progress (a record appended, a batch
published or found nothing to send, a check done).  A task may instead be
watched by a ``probe`` function called at each check (True = progress), which
is how the AT reader is watched: it is stuck when commands were sent and not
one byte came back for its whole limit, or when its task ended.  ``check()``
names the tasks silent for longer than their limit; ``run()`` feeds the
hardware only when that list is empty, so a stuck uplink or reader lets the
WDT reset the board (the anchor subscribes no task to its 600 s TWDT, so a
hang there is never recovered).  On the unix port the WDT is a no-op object
and the same logic runs (tests use a fake clock).

Bytes read are not progress of the application: a reader that keeps receiving
bytes but parses nothing (a raw frame of a hostile length) still starves the
"delivery" watch, whose progress is records delivered to the broker (or none
waiting, or no broker configured): ``DeliveryProbe``, on a long limit
(``DELIVERY_LIMIT_MS``) so a coverage gap costs at most one reboot an hour.
The sampler beats "acquire" only for a record made and spooled.
"""

from atmq.compat import const, sleep_ms, ticks_diff, ticks_ms

DELIVERY_LIMIT_MS = const(3600000)  # records waiting and none delivered for an hour


class Watchdog:
    def __init__(self, hw, clock=ticks_ms):
        self.hw = hw
        self.clock = clock
        self._names = []
        self._limit = []
        self._last = []
        self._probe = []
        self.feeds = 0
        self.starved = 0  # checks that withheld the feed
        self.stuck = []  # names found stuck by the last check

    def register(self, name, limit_ms, probe=None):
        if name in self._names:
            raise ValueError("watchdog: task %r registered twice" % name)
        if limit_ms <= 0:
            raise ValueError("watchdog: limit for %r must be > 0 ms" % name)
        self._names.append(name)
        self._limit.append(limit_ms)
        self._last.append(self.clock())
        self._probe.append(probe)

    def beat(self, name):
        self._last[self._names.index(name)] = self.clock()

    def check(self):
        """Names of the tasks without progress for longer than their limit (also ``stuck``)."""
        now = self.clock()
        out = []
        for i in range(len(self._names)):
            p = self._probe[i]
            if p is not None and p():
                self._last[i] = now
            if ticks_diff(now, self._last[i]) > self._limit[i]:
                out.append(self._names[i])
        self.stuck = out
        return out

    def tick(self):
        """One check; feeds the hardware when nothing is stuck.  True if fed."""
        if self.check():
            self.starved += 1
            return False
        self.hw.feed()
        self.feeds += 1
        return True

    async def run(self, period_ms=1000):
        while True:
            self.tick()
            await sleep_ms(period_ms)


class ReaderProbe:
    """Progress of the AT reader: bytes arrived, or nothing was asked; False once dead.

    ``task`` (optional) is the reader's asyncio task: once it has ended (the
    stream raised), the reader makes no progress whatever the counters say.
    """

    def __init__(self, at, task=None):
        self.at = at
        self.task = task
        self._rx = at.rx_bytes
        self._cmds = at.commands

    def __call__(self):
        t = self.task
        if t is not None and t.done():
            return False
        at = self.at
        if at.rx_bytes != self._rx:
            self._rx = at.rx_bytes
            self._cmds = at.commands
            return True
        return at.commands == self._cmds  # silent modem is fine while nobody asks


class DeliveryProbe:
    """Application progress of the uplink: records delivered (``uplink.sent`` moved), none
    waiting in the spool, no broker configured (sampling only), or the link working on
    itself while it is down: ``link_progress()`` (a value that changes with every bring-up
    attempt, link state transition or recovery step, or None when the link is parked in
    ``fatal``, which no reset can fix) moved.  A coverage gap of hours must not reset the
    board every hour (records staged in RAM would be lost each time); bytes arriving never
    count, so a reader made deaf while the link looks up still starves the watchdog."""

    def __init__(self, uplink, spool, cfg, link_progress=None):
        self.uplink = uplink
        self.spool = spool
        self.cfg = cfg
        self._sent = uplink.sent
        self._link_progress = link_progress
        self._link_seen = link_progress() if link_progress is not None else 0

    def __call__(self):
        sent = self.uplink.sent
        if sent != self._sent:
            self._sent = sent
            return True
        if not self.cfg.get("mqtt_host") or self.spool.depth() == 0:
            return True
        lp = self._link_progress
        if lp is not None:
            now = lp()
            if now is None:  # parked in fatal: a person or the long retry fixes it
                return True
            if now != self._link_seen:
                self._link_seen = now
                return True
        return False
