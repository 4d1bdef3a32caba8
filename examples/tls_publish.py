"""Publish over TLS: the broker's CA certificate put on the modem, then MQTTS.

The SIM7600 family verifies the broker with certificate files stored on the modem
(AT+CCERTDOWN, 003 s.17.2) and an SSL context (AT+CSSLCFG); ``certs`` puts them
there on the first connect (a name the modem already lists is kept) and
``atmq.tls.mosquitto_tls("ca.pem")`` is the profile of a Mosquitto TLS listener
(``atmq.tls.aws_iot()`` for AWS IoT Core: add the client certificate and key).
For a fleet, provision once with tools/provision.py instead of shipping the PEM.

    python3 tools/broker.py --seconds 600 &        # prints port=P tls_port=T and CA <path>
    python3 tools/modemsim --broker 127.0.0.1:P --broker-tls 127.0.0.1:T
    ATMQ_MODEM=tcp:127.0.0.1:S ATMQ_HOST=127.0.0.1 ATMQ_PORT=T ATMQ_CA=<path> \\
        python3 examples/tls_publish.py
"""

import asyncio
import os

import atmq
from atmq import tls


def setting(name, default):
    """``default``, or the environment's ``name`` on a PC (the ESP32's os has no getenv)."""
    getenv = getattr(os, "getenv", None)
    return (getenv(name) if getenv is not None else None) or default


MODEL = setting("ATMQ_MODEL", "SIM7600")  # the CMQTT family (A7670, SIM7670 too)
CA_FILE = setting("ATMQ_CA", "/ca.pem")  # the broker's CA, PEM; on the board's flash
CONFIG = {
    "host": setting("ATMQ_HOST", "test.mosquitto.org"),
    "port": int(setting("ATMQ_PORT", "8883")),
    "client_id": "atmq-tls",
    "apn": setting("ATMQ_APN", "internet"),
    "tls": tls.mosquitto_tls("ca.pem"),
}
COUNT = int(setting("ATMQ_COUNT", "0"))  # publishes before the program ends (0: forever)


def modem_uart():
    try:
        from machine import UART
    except ImportError:
        return setting("ATMQ_MODEM", "tcp:127.0.0.1:7600")
    return UART(1, baudrate=115200, tx=27, rx=26, rxbuf=4096, timeout=0)


async def main():
    with open(CA_FILE, "rb") as f:
        ca = f.read()
    client = await atmq.connect(modem_uart(), MODEL, certs={"ca.pem": ca}, **CONFIG)
    print("connected over TLS")
    n = 0
    while COUNT == 0 or n < COUNT:
        await client.publish("atmq-tls/count", str(n), qos=1)
        print("published", n)
        n += 1
        await asyncio.sleep(1)
    await atmq.close(client)


asyncio.run(main())
