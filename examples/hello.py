"""Publish a counter, print what arrives, report the link going up and down.

The README's program: a complete atmq application.  On an ESP32 copy it as main.py
(after `mpremote mip install github:<org>/<repo>`); on a PC it talks to the modem
simulator:

    python3 tools/broker.py --seconds 600 &                # prints port=P
    python3 tools/modemsim --broker 127.0.0.1:P            # prints LISTENING S
    ATMQ_MODEM=tcp:127.0.0.1:S ATMQ_HOST=127.0.0.1 ATMQ_PORT=P python3 examples/hello.py

(`.venv/bin/micropython examples/hello.py` with MICROPYPATH=.frozen:lib runs it on the
MicroPython unix port the same way.)
"""

import asyncio
import os

import atmq


def setting(name, default):
    """``default``, or the environment's ``name`` on a PC (the ESP32's os has no getenv)."""
    getenv = getattr(os, "getenv", None)
    return (getenv(name) if getenv is not None else None) or default


# ---- settings: edit these for your board, SIM and broker ---------------------------------
MODEL = setting("ATMQ_MODEL", "SIM7600")  # or "A7670", "SIM7670", "SIM7070", "SIM800"
CONFIG = {
    "host": setting("ATMQ_HOST", "test.mosquitto.org"),
    "port": int(setting("ATMQ_PORT", "1883")),
    "client_id": "atmq-hello",
    "apn": setting("ATMQ_APN", "internet"),  # your SIM's APN
    "subscriptions": [("atmq-hello/in", 1)],
}
COUNT = int(setting("ATMQ_COUNT", "0"))  # publishes before the program ends (0: forever)


def modem_uart():
    """The modem's UART on an ESP32 (LilyGO T-SIM7600: TX 27, RX 26); on a PC the
    simulator's address."""
    try:
        from machine import UART
    except ImportError:
        return setting("ATMQ_MODEM", "tcp:127.0.0.1:7600")
    return UART(1, baudrate=115200, tx=27, rx=26, rxbuf=4096, timeout=0)


async def print_messages(client):
    async for topic, payload in client.messages():
        print("received", topic, payload)


async def print_link(client):
    while True:
        await client.down.wait()
        print("link down")
        await client.up.wait()
        print("link up")


async def main():
    client = await atmq.connect(modem_uart(), MODEL, **CONFIG)
    print("connected")
    asyncio.create_task(print_messages(client))
    asyncio.create_task(print_link(client))
    n = 0
    while COUNT == 0 or n < COUNT:
        await client.publish("atmq-hello/count", str(n), qos=1)  # returns once PUBACKed
        print("published", n)
        n += 1
        await asyncio.sleep(1)
    await atmq.close(client)
    print("closed")


asyncio.run(main())
