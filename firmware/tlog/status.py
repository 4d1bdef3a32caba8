"""Presence on ``<prefix>/<id>/status``: retained "online" after every connect, "offline"
as the MQTT Last Will (the broker publishes it when the link dies) and, retained, on a
clean stop.

Owns the topic names of the device (``Topics``) and the status task.  The CMQTT
family cannot make the will retained (``AT+CMQTTWILLMSG`` has no retain
parameter, manual 16.2.7), so there the will reaches live subscribers only and
the retained value stays "online" until the next connect or a clean stop; the
SM family (``AT+SMCONF``) is asked for a retained will.
"""

import asyncio

from atmq.compat import wait_for_ms

ONLINE = b"online"
OFFLINE = b"offline"


class Topics:
    """Every topic of one device: ``<prefix>/<id>/{telemetry,status,health,cmd,cmd/ack}``."""

    def __init__(self, prefix, dev):
        base = "%s/%s/" % (prefix, dev)
        self.dev = dev
        self.base = base
        self.telemetry = base + "telemetry"
        self.status = base + "status"
        self.health = base + "health"
        self.cmd = base + "cmd"
        self.ack = base + "cmd/ack"


def will(topics, retain=False):
    """The Last Will for the client config: (topic, payload, qos, retain)."""
    return (topics.status, OFFLINE, 1, retain)


class Status:
    def __init__(self, topics, client):
        self.topics = topics
        self.client = client
        self.announced = 0
        self.failures = 0
        self.last_error = None

    async def announce(self, online=True):
        await self.client.publish(self.topics.status, ONLINE if online else OFFLINE, 1, True)
        self.announced += 1

    async def run(self):
        """After each (re)connect: retained "online" (a reconnect clears the broker's
        "offline" left by the will)."""
        c = self.client
        while True:
            await c.up.wait()
            try:
                await self.announce(True)
            except Exception as e:  # the link went again: the next "up" retries
                self.failures += 1
                self.last_error = e
                try:
                    await wait_for_ms(c.down.wait(), 5000)
                except asyncio.TimeoutError:
                    pass
                continue
            await c.down.wait()
