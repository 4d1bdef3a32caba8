"""Play a transcript's host side through the Engine: the generic, driver-free replay.

Every ``>`` run that ends in CR is sent as a command with ``Engine.cmd``; when
the modem answers it with a ``>`` prompt, the next ``>`` run is its payload.
The modem side comes from a ``ReplayModem``, so the engine's exact bytes are
checked and the answers arrive at whatever chunking the modem uses.  Returns
one outcome per command: (command bytes, final kind, CME/CMS code, stored
lines as bytes).  Runs on CPython and MicroPython.
"""

from atmq.engine import R_PENDING, Engine
from atmq.errors import ATTimeout


# Commands whose outcome ends with a completion URC (two-phase), by command prefix.
DONE = (
    (b"AT+NETOPEN", b"+NETOPEN:"),
    (b"AT+CMQTTSTART", b"+CMQTTSTART:"),
    (b"AT+CMQTTSTOP", b"+CMQTTSTOP:"),
    (b"AT+CMQTTCONNECT=", b"+CMQTTCONNECT:"),
    (b"AT+CMQTTDISC=", b"+CMQTTDISC:"),
    (b"AT+CMQTTPUB=", b"+CMQTTPUB:"),
    (b"AT+CMQTTSUB=", b"+CMQTTSUB:"),
    (b"AT+CMQTTUNSUB=", b"+CMQTTUNSUB:"),
)


def commands(records):
    """[(command, payload or None, done prefix or None, answered)] from the records.

    ``done`` is set when the transcript shows the completion URC after the
    command; ``answered`` is False when the transcript ends before any answer
    (or right at a prompt whose payload it elides).
    """
    runs = []  # (dir, data) with same-direction records joined
    for _lineno, d, _ms, data in records:
        if runs and runs[-1][0] == d:
            runs[-1][1].extend(data)
        else:
            runs.append((d, bytearray(data)))
    out = []
    i = 0
    while i < len(runs):
        d, data = runs[i]
        if d == ">" and data.endswith(b"\r"):
            cmd = bytes(data[:-1])
            payload = None
            rx = runs[i + 1][1] if i + 1 < len(runs) and runs[i + 1][0] == "<" else b""
            answered = True
            if _prompted(rx):
                if i + 2 < len(runs) and not runs[i + 2][1].endswith(b"\r"):
                    payload = bytes(runs[i + 2][1])
                    i += 2
                    rx = runs[i + 1][1] if i + 1 < len(runs) else b""
                else:
                    payload = b""
                    answered = False
            elif not bytes(rx).replace(data, b"", 1).strip():
                answered = False  # nothing but the echo
            done = None
            for prefix, urc in DONE:
                if cmd.startswith(prefix) and bytes(rx).find(b"\n" + urc) >= 0:
                    done = urc
            out.append((cmd, payload, done, answered))
        i += 1
    return out


def _prompted(rx):
    # the prompt is a '>' at the start of a line, with nothing after it but a space
    t = bytes(rx).rstrip(b" ")
    return t.endswith(b"\n>") or t == b">"


async def play(modem, records, engine=None, timeout_ms=5000, urcs=()):
    """Send every command of the transcript; returns (engine, outcomes)."""
    import asyncio

    at = engine or Engine(modem)
    for prefix, fn in urcs:
        at.on(prefix, fn)
    task = asyncio.create_task(at.run())
    outcomes = []
    try:
        for cmd, payload, done, answered in commands(records):
            if not answered:
                # the transcript stops here: the command goes out, nothing comes back
                try:
                    await at.cmd(cmd, payload=payload, timeout_ms=50, prompt_timeout_ms=50)
                except ATTimeout:
                    pass
                outcomes.append((cmd, R_PENDING, -1, []))
                continue
            r = await at.cmd(cmd, bare=True, payload=payload, timeout_ms=timeout_ms,
                             prompt_timeout_ms=timeout_ms, done=done, done_timeout_ms=timeout_ms,
                             check=False)
            lines = [r.line(i).bytes() for i in range(r.count)]
            outcomes.append((cmd, r.final, r.code, lines))
        # let trailing URCs in
        for _ in range(50):
            if not modem.pending_rx():
                break
            await asyncio.sleep(0)
    finally:
        task.cancel()
    return at, outcomes
