"""Answer every message on a command topic, from a callback (no task of your own).

``on_message`` runs in the client's supervisor with the topic and payload as
memoryviews into the inbox, valid only during the call: copy what you keep, and
hand work that talks to the modem to a task (here: a queue the main loop drains).
The Last Will says "offline" on the status topic if the link dies.

    ATMQ_MODEM=tcp:127.0.0.1:S ATMQ_HOST=127.0.0.1 ATMQ_PORT=P python3 examples/echo_callback.py
"""

import asyncio
import os

import atmq


def setting(name, default):
    """``default``, or the environment's ``name`` on a PC (the ESP32's os has no getenv)."""
    getenv = getattr(os, "getenv", None)
    return (getenv(name) if getenv is not None else None) or default


MODEL = setting("ATMQ_MODEL", "SIM7600")
DEVICE = "atmq-echo"
CONFIG = {
    "host": setting("ATMQ_HOST", "test.mosquitto.org"),
    "port": int(setting("ATMQ_PORT", "1883")),
    "client_id": DEVICE,
    "apn": setting("ATMQ_APN", "internet"),
    "subscriptions": [(DEVICE + "/cmd", 1)],
    "will": {"topic": DEVICE + "/status", "payload": "offline", "qos": 1, "retain": False},
}
ANSWERS = int(setting("ATMQ_COUNT", "0"))  # answers before the program ends (0: never)


def modem_uart():
    try:
        from machine import UART
    except ImportError:
        return setting("ATMQ_MODEM", "tcp:127.0.0.1:7600")
    return UART(1, baudrate=115200, tx=27, rx=26, rxbuf=4096, timeout=0)


async def main():
    todo = []
    wake = asyncio.Event()

    def on_message(topic, payload):
        todo.append(bytes(payload))  # copy: the inbox slot is reused after this call
        wake.set()

    client = await atmq.connect(modem_uart(), MODEL, on_message=on_message, **CONFIG)
    await client.publish(DEVICE + "/status", "online", qos=1)
    print("ready: publish to", DEVICE + "/cmd")
    answered = 0
    while ANSWERS == 0 or answered < ANSWERS:
        await wake.wait()
        wake.clear()
        while todo:
            cmd = todo.pop(0)
            await client.publish(DEVICE + "/ack", b"echo: " + cmd, qos=1)
            answered += 1
            print("answered", cmd)
    await atmq.close(client)


asyncio.run(main())
