"""Modem power through the board's pins: PWRKEY on/off pulses, hardware reset, STATUS.

Every function takes a validated board dict (``atmq.board``) and a pin
factory: anything called like ``machine.Pin`` (``pins(n, pins.OUT, value=v)``,
``pins(n, pins.IN)``) whose pins have ``value([v])``.  On the ESP32 pass
``machine.Pin`` itself; tests pass a recording fake.  ``sleep`` (an async
``sleep_ms``) and ``ticks`` (a ``ticks_ms``) can be injected so tests run on
a fake clock; every wait is bounded by the board's timings.

Levels in the board file are at the ESP32 pin (``active`` = the level that
asserts the signal), so boards that drive PWRKEY through a transistor say
``active: 1``.  Timings come from the board file, which ``atmq.board`` fills
from its per-model table (the sources are cited there).

Results: ``True`` = STATUS confirms the module is (on / off) as wanted,
``False`` = STATUS disagrees after the whole wait, ``None`` = nothing to
confirm with (no STATUS pin: the caller probes with ``AT``), and on a board
without pins (unix) every function returns ``None`` at once.

A clean power-off sends ``AT+CPOF`` (SIM7600/A76xx, AT manual 3.2.3) or
``AT+CPOWD=1`` (SIM7000/SIM800) first; that is the driver's job.  The pulse
here is the fallback, and the only way to power a module on.
"""

from .compat import sleep_ms as _sleep_ms
from .compat import const, ticks_add, ticks_diff
from .compat import ticks_ms as _ticks_ms

# Supply off-time for a power-cycle reset on boards with a power switch but
# no RESET line: long enough for the module's supply rails to collapse
# (SIM7020/SIM7000 hardware designs ask >= 5 s between power-off and the
# next power-on when using PWRKEY; with the supply cut 2 s is ample).
_CYCLE_GAP_MS = const(2000)


def has_pins(board):
    """True when the board wires any modem control line (False on the unix board)."""
    for k in ("pwrkey", "reset", "power_en", "status"):
        if board[k] is not None:
            return True
    return False


def _out(pins, spec, asserted):
    a = spec["active"]
    return pins(spec["pin"], pins.OUT, value=a if asserted else 1 - a)


def _set(pin, spec, asserted):
    a = spec["active"]
    pin.value(a if asserted else 1 - a)


def status(board, pins):
    """True/False from the STATUS pin (True = module on), None when the board has none."""
    s = board["status"]
    if s is None:
        return None
    return pins(s["pin"], pins.IN).value() == s["active"]


async def _wait_status(board, pins, want_on, limit_ms, sleep, ticks):
    s = board["status"]
    poll = board["timing"]["poll_ms"] or 100
    p = pins(s["pin"], pins.IN)
    deadline = ticks_add(ticks(), limit_ms)
    while True:
        if (p.value() == s["active"]) == want_on:
            return True
        left = ticks_diff(deadline, ticks())
        if left <= 0:
            return False
        await sleep(poll if poll < left else left)


async def _pulse(pins, key, hold_ms, sleep):
    # Inactive for idle_ms first so the module sees a clean edge even if the
    # line floated during boot (the LilyGO examples do LOW 100 ms, then HIGH).
    p = _out(pins, key, False)
    await sleep(key["idle_ms"])
    _set(p, key, True)
    await sleep(hold_ms)
    _set(p, key, False)


def _prepare(board, pins):
    # Lines that must sit at their "run" level while the module is on:
    # FLIGHTMODE released, DTR at the level that keeps the UART awake.
    f = board["flight"]
    if f is not None:
        _out(pins, f, False)
    d = board["dtr"]
    if d is not None:
        pins(d["pin"], pins.OUT, value=d["wake"])


async def power_on(board, pins, sleep=None, ticks=None):
    """Switch the module on: supply, PWRKEY on pulse, then wait for STATUS or boot_ms.

    Does not pulse when STATUS already reads on: a second pulse can switch a
    running module off (SIM800: any pulse >= 1 s toggles it).
    """
    if not has_pins(board):
        return None
    sleep = sleep or _sleep_ms
    ticks = ticks or _ticks_ms
    en = board["power_en"]
    if en is not None:
        _out(pins, en, True)
        await sleep(en["settle_ms"])
    _prepare(board, pins)
    if board["status"] is not None and status(board, pins):
        return True
    key = board["pwrkey"]
    if key is not None:
        await _pulse(pins, key, key["on_ms"], sleep)
    return await _await_boot(board, pins, sleep, ticks)


async def _await_boot(board, pins, sleep, ticks):
    boot = board["timing"]["boot_ms"]
    if board["status"] is not None:
        return await _wait_status(board, pins, True, boot, sleep, ticks)
    await sleep(boot)  # blind: the UART is usable after boot_ms at the earliest
    return None


async def power_off(board, pins, sleep=None, ticks=None):
    """Switch the module off: PWRKEY off pulse, wait for STATUS low or shutdown_ms, cut supply.

    Does not pulse when STATUS already reads off (the pulse would switch it on).
    The supply switch opens only after the module had its shutdown time.
    """
    if not has_pins(board):
        return None
    sleep = sleep or _sleep_ms
    ticks = ticks or _ticks_ms
    result = None
    key = board["pwrkey"]
    if board["status"] is not None and not status(board, pins):
        result = True
    elif key is not None:
        await _pulse(pins, key, key["off_ms"], sleep)
        limit = board["timing"]["shutdown_ms"]
        if board["status"] is not None:
            result = await _wait_status(board, pins, False, limit, sleep, ticks)
        else:
            await sleep(limit)
    en = board["power_en"]
    if en is not None:
        _out(pins, en, False)
        if board["status"] is not None:
            result = not status(board, pins)
    return result


async def reset(board, pins, sleep=None, ticks=None):
    """Hardware reset: RESET pulse if wired, else a supply power cycle, else PWRKEY off+on.

    Returns like ``power_on`` (True once STATUS reads on again).
    """
    if not has_pins(board):
        return None
    sleep = sleep or _sleep_ms
    ticks = ticks or _ticks_ms
    r = board["reset"]
    if r is not None:
        p = _out(pins, r, True)
        await sleep(r["pulse_ms"])
        _set(p, r, False)
        return await _await_boot(board, pins, sleep, ticks)
    en = board["power_en"]
    if en is not None:
        _out(pins, en, False)
        await sleep(_CYCLE_GAP_MS)
        return await power_on(board, pins, sleep, ticks)
    await power_off(board, pins, sleep, ticks)
    return await power_on(board, pins, sleep, ticks)
