"""The AT engine alone: identify the modem and read its signal, no MQTT.

``Engine`` runs one command at a time over any stream with non-blocking
``readinto``/``write`` (see atmq/wiring.py ``stream_of``: a UART, a socket, a pty;
on CPython a plain socket is adapted).  Errors carry the manual's code and meaning
(``ModemError``); a missing answer raises ``ATTimeout`` after the command's own
maximum response time.

    ATMQ_MODEM=tcp:127.0.0.1:S python3 examples/at_commands.py
"""

import asyncio
import os

from atmq.wiring import stream_of
from atmq.engine import Engine
from atmq.errors import ModemError


def setting(name, default):
    """``default``, or the environment's ``name`` on a PC (the ESP32's os has no getenv)."""
    getenv = getattr(os, "getenv", None)
    return (getenv(name) if getenv is not None else None) or default


def modem_uart():
    try:
        from machine import UART
    except ImportError:
        return setting("ATMQ_MODEM", "tcp:127.0.0.1:7600")
    return UART(1, baudrate=115200, tx=27, rx=26, rxbuf=4096, timeout=0)


async def main():
    at = Engine(stream_of(modem_uart()))
    reader = asyncio.create_task(at.run())  # the only reader of the stream
    for _ in range(30):  # a modem only answers AT once it has booted (SIM7600: ~15 s)
        try:
            await at.cmd(b"AT", timeout_ms=1000)
            break
        except ModemError:
            await asyncio.sleep(0.5)
    await at.cmd(b"ATE0")
    r = await at.cmd(b"AT+CGMM", bare=True)  # 003 s.2.2.14: the model, a bare line
    print("model", r.line(0).text() if r.count else "?")
    r = await at.cmd(b"AT+CSQ", resp=b"+CSQ:")  # 003 s.3.2.2: <rssi>,<ber>
    rssi = r.line(0).arg_int(0)
    print("signal", "unknown" if rssi == 99 else "%d dBm" % (-113 + 2 * rssi))
    try:
        await at.cmd(b"AT+NOSUCH")
    except ModemError as e:
        print("refused as expected:", e)
    reader.cancel()


asyncio.run(main())
