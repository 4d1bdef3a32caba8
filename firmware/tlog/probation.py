"""A remote link change on probation: reach the broker in time, or roll back and reboot.

Owns the probation task of one boot (tlog.lastgood writes and clears the
``probation`` file; this module is imported only when one is pending).  The
running link has the seconds the file gives; if ``LastGood.ok`` (the broker
was reached) is not set by then, config.json is replaced by the last good
configuration and the board reboots onto it.
"""

from atmq import log as _log
from atmq.compat import sleep_ms

from . import config as _config
from .lastgood import FILE, known


async def watch(lastgood, app, period_ms=1000):
    left_ms = lastgood.probation_s() * 1000
    if app.cfg_source != FILE:  # already running on the last good (or defaults)
        lastgood.end_probation()
        return
    _log.warn("config", "link change on probation: %d s to reach the broker", left_ms // 1000)
    while left_ms > 0:
        if lastgood.ok:
            return
        await sleep_ms(period_ms)
        left_ms -= period_ms
    if lastgood.ok:
        return
    good = lastgood.load()
    lastgood.end_probation()
    if good is None:
        _log.warn("config", "link change not confirmed, no last good link kept: keeping it")
        return
    try:
        cfg = _config.Config(app.cfg.path, known(good), app.cfg.variant)
        cfg.save()
    except (ValueError, OSError) as e:
        _log.error("config", "link rollback failed: %s", e)
        return
    lastgood.rolled_back = True
    _log.error("config", "link change did not reach the broker: rolled back to the last good"
               " link, rebooting")
    await app.reboot()
