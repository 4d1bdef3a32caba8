"""The modem UART's speed: switch with AT+IPR, verify with AT, fall back to the boot speed.

Owns the procedure and nothing else (the caller owns the link; this runs while no
other command is in flight, e.g. right after bring-up):

1. ``AT+IPR=?``: the speeds this modem takes (003 s.8.2.3; the SIM7600 list ends at
   460800, other families list more).  The fastest one not above the wanted speed is
   chosen; none faster than now: nothing is sent.
2. ``AT+IPR=<speed>``: the modem answers ``OK`` at the old speed, then changes.
3. The host UART is reconfigured (``set_host(speed)``; ``machine.UART.init`` on the
   ESP32; nothing on a TCP stream, where the simulator paces at the new speed after
   that ``OK``: the switch is negotiated in band).
4. ``AT`` up to ``VERIFY_TRIES`` times at the new speed: an ``OK`` ends it.
5. No answer: the host goes back to the old speed and asks ``AT`` there (the modem may
   not have changed).  Still nothing: ``ATTimeout`` is raised with the host at the old
   speed, and the caller's recovery power-cycles the module, which brings it back at
   its saved speed.

Only ``AT+IPR`` is used, never ``AT+IPREX``: IPR is NO_SAVE ("after reboot the baud
rate is set to value of IPREX", 003 s.8.2.3) while IPREX is AUTO_SAVE (s.8.2.4).  A
saved speed would outlive this firmware's board file: after a reflash, a board swap
or a board file reverted to 115200 nobody could reach the module without knowing
the speed.  So every power cycle starts at 115200 and this runs again.

After a host-only reset (the ESP32 rebooted, the modem kept power and its IPR
speed) the boot speed finds no modem: ``find`` asks ``AT`` at each candidate speed.
"""

from .compat import sleep_ms
from .errors import ATTimeout, ModemError

BOOT_BAUD = 115200  # 003 s.8.2.4: AT+IPREX "Set default value 115200" (factory speed)
IPR_TIMEOUT_MS = 5000  # 003 s.8.2.3 AT+IPR Max Response Time
SETTLE_MS = 20  # after the OK: the modem reprograms its UART (not in the manual; Zephyr
# waits after AT+IPR too).  Bytes sent meanwhile could be lost, none are needed.
VERIFY_TRIES = 3
VERIFY_MS = 500  # per AT: bare AT answers at once (003 s.2: no Max Response Time)


def parse_speeds(line):
    """``+IPR: (600,1200,...,460800)`` -> sorted list of ints (ranges ``a-b`` keep both
    ends); [] when the line is not such a list."""
    if isinstance(line, (bytes, bytearray, memoryview)):
        line = bytes(line).decode()
    i = line.find("(")
    j = line.find(")", i + 1)
    if i < 0 or j < 0:
        return []
    out = []
    for part in line[i + 1:j].split(","):
        for end in part.split("-"):
            end = end.strip()
            if end.isdigit():
                out.append(int(end))
    out.sort()
    return out


def pick(speeds, want):
    """The fastest speed of ``speeds`` not above ``want`` (0: none)."""
    best = 0
    for s in speeds:
        if best < s <= want:
            best = s
    return best


def host_setter(stream):
    """A function that sets the host side's speed of ``stream``: ``UART.init`` when the
    stream has one; None for a socket or pty (no host speed to set)."""
    init = getattr(stream, "init", None)
    if init is None:
        return None

    def set_host(baud):
        init(baudrate=baud)
    return set_host


async def _answers(at, tries=0):
    for _ in range(tries or VERIFY_TRIES):
        try:
            await at.cmd(b"AT", timeout_ms=VERIFY_MS)
            return True
        except ModemError:
            pass
    return False


async def supported(at):
    """The speeds the modem lists for ``AT+IPR=?`` ([] when it does not answer that)."""
    try:
        r = await at.cmd(b"AT+IPR=?", resp=b"+IPR:", timeout_ms=IPR_TIMEOUT_MS)
    except ModemError:
        return []
    a = r.find(b"+IPR:")
    return [] if a is None else parse_speeds(a.bytes())


async def switch(at, want, set_host=None, current=BOOT_BAUD, log=None):
    """Run the link at ``want`` (or the fastest speed below it the modem lists); returns
    the speed in use afterwards.  Raises ``ATTimeout`` only when the modem answers at
    neither speed (the host is left at ``current``)."""
    if want <= current:
        return current
    speeds = await supported(at)
    speed = pick(speeds, want)
    if speed <= current:
        if log:
            log("baud: %d asked, modem lists %s: staying at %d" % (want, speeds, current))
        return current
    cmd = b"AT+IPR=%d" % speed
    try:
        await at.cmd(cmd, timeout_ms=IPR_TIMEOUT_MS)
    except ModemError as e:
        if log:
            log("baud: %s refused (%s): staying at %d" % (cmd.decode(), e, current))
        return current
    if set_host is not None:
        set_host(speed)
    await sleep_ms(SETTLE_MS)
    if await _answers(at):
        if log:
            log("baud: %d (asked %d)" % (speed, want))
        return speed
    # silent at the new speed: back to the old one (the OK may have been a stray)
    if set_host is not None:
        set_host(current)
    await sleep_ms(SETTLE_MS)
    if await _answers(at):
        if log:
            log("baud: no answer at %d, back at %d" % (speed, current))
        return current
    raise ATTimeout(b"AT", VERIFY_MS)


async def find(at, set_host, candidates):
    """The speed the modem answers ``AT`` at, trying ``candidates`` in order (e.g. the
    boot speed, then the board's); 0 when none.  The host is left at the one found
    (or at the first candidate)."""
    for speed in candidates:
        if set_host is not None:
            set_host(speed)
        await sleep_ms(SETTLE_MS)
        if await _answers(at, 2):
            return speed
    if set_host is not None and candidates:
        set_host(candidates[0])
    return 0


async def recover(at, set_host, current, want, log=None):
    """The modem stopped answering at ``current`` (a reset or a power cycle brings it back
    at its saved speed, 115200, while the host stays fast and hears noise): find it again
    (``current``, then the boot speed), then switch up to ``want``; returns the speed in
    use.  Nothing found: ``current`` stays (the caller's power cycle comes next)."""
    other = BOOT_BAUD if current != BOOT_BAUD else want
    found = await find(at, set_host, (current, other))
    if not found:
        if set_host is not None:
            set_host(current)
        return current
    if log and found != current:
        log("baud: modem found at %d (host was at %d)" % (found, current))
    if found < want:
        return await switch(at, want, set_host, found, log)
    return found
