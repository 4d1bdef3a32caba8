"""The second publish session: CMQTT client index 1 beside the main client (issue 14).

Owns one publish-only MQTT session on the other client index of a CMQTT modem
(AT+CMQTTACCQ 0-1, 003 s.16.2.3; 002 s.2.1.3) so the uplink can keep two batches
in flight: one client runs one operation at a time (it answers 14 "client is
busy" while its result is pending, seed 001) and ``+CMQTTPUB: <idx>,<err>`` has
no packet id, so the overlap comes from a second client, not from pipelining one.

It follows the main client and never repairs the modem: it connects (same broker,
TLS and credentials, client id ``<main id>-2``, clean session, no will, no
subscriptions) only while the main client is up, marks itself down on its own
CONNLOST or on any failed publish, and tries again with a growing backoff.  All
recovery (reboots, data, service) stays with the main client's ladder; the main
driver forwards this index's result and loss URCs to the peer driver (the reader
gives a URC to one handler) and its link losses (``lost``).  The peer's events go
to a queue of its own, so the main client never sees this session's CONNLOST.

The uplink makes it when a backlog waits and closes it (``close``: DISC and REL of
its client index, 003 s.16.2.9/16.2.4, the service left to the main client) when
the backlog is gone or the heap runs low; closed, the main driver has no peer.
"""

import asyncio

from atmq.compat import sleep_ms, wait_for_ms
from atmq.events import EV_CONNLOST, EV_NONET, EventQueue

_BACKOFF_MIN_MS = 5000
_BACKOFF_MAX_MS = 300000
_IDLE_WAIT_MS = 5000


class LaneDown(OSError):
    """A publish on the second session while it is not connected (the batch stays)."""


def second_id(client_id):
    """The second session's client id: the main one + "-2", within 16.2.3's 128 bytes."""
    cid = client_id if isinstance(client_id, str) else bytes(client_id).decode()
    return (cid[:126] if len(cid) > 126 else cid) + "-2"


class PublishLane:
    def __init__(self, main, at, inbox, index=1):
        from atmq.cmqtt import CMQTTDriver

        self.main = main  # the MQTTClient (its driver, config and ``up`` event)
        self.events = EventQueue(8)
        self.backoff_ms = 0
        self.connects = 0
        self.failures = 0
        self.published = 0
        self.last_error = None
        self._wake = asyncio.Event()
        self._connecting = False  # inside _connect: close lets it finish (bounded)
        self._closing = False  # close() asked ``run`` to end
        # last: a MemoryError before this leaves the main driver without a peer
        self.driver = CMQTTDriver(at, self.events, inbox, client_index=index,
                                  payload_max=main.driver.payload_max, peer_of=main.driver)

    def isconnected(self):
        return self.driver.connected and self.main.isconnected()

    async def publish(self, topic, payload, qos=1, retain=False):
        d = self.driver
        if not self.isconnected():
            raise LaneDown("second session not connected")
        d.payload_max = self.main.driver.payload_max
        try:
            await d.publish(topic, payload, qos, retain)
        except Exception as e:
            self.failures += 1
            self.last_error = e
            d.connected = False  # an unknown state: connect again (after a DISC) later
            self._wake.set()
            raise
        self.published += 1

    async def _connect(self):
        c = self.main.cfg
        d = self.driver
        d.started = True  # the main client is up: the service runs (its START, not ours)
        d.payload_max = self.main.driver.payload_max
        await d.configure_tls(c["tls"])
        await d.connect(c["host"], c["port"], second_id(c["client_id"]),
                        keepalive_s=c["keepalive_s"], clean=True, user=c["user"],
                        password=c["password"], tls=c["tls"] is not None,
                        timeout_ms=c["connect_timeout_ms"])
        self.connects += 1

    async def run(self):
        """Until ``close``: while the main client is up and this session is not, connect it."""
        ev = self.events
        while not self._closing:
            k = ev.get()
            while k >= 0:  # its own CONNLOST/NONET (the driver marked itself down already)
                if k == EV_CONNLOST or k == EV_NONET:
                    self.driver.connected = False
                k = ev.get()
            m = self.main
            if not m.isconnected():
                try:
                    await wait_for_ms(m.up.wait(), _IDLE_WAIT_MS)
                except asyncio.TimeoutError:
                    pass
                continue
            if self.driver.connected:
                self._wake.clear()
                try:
                    await wait_for_ms(self._wake.wait(), _IDLE_WAIT_MS)
                except asyncio.TimeoutError:
                    pass
                continue
            self._connecting = True
            try:
                await self._connect()
                self.backoff_ms = 0
                continue
            except Exception as e:  # noqa: BLE001 - this session only; the main one goes on
                self.last_error = e
                b = self.backoff_ms
                self.backoff_ms = _BACKOFF_MIN_MS if b == 0 else min(2 * b, _BACKOFF_MAX_MS)
            finally:
                self._connecting = False
            if not self._closing:
                await sleep_ms(self.backoff_ms)

    async def close(self, task=None):
        """Stop ``task`` (this session's ``run``; a connect under way finishes first, within
        its own deadline), then DISC and REL its client index; the main driver's peer goes.
        Errors are kept in ``last_error``, not raised: the main session goes on."""
        self._closing = True
        if task is not None:
            if self._connecting:  # ``run`` ends once the connect is over
                c = self.main.cfg
                try:  # the CONNECT's own deadline (TLS handshake included) and a margin
                    await wait_for_ms(task, c["connect_timeout_ms"] + 15000)
                except Exception:  # noqa: BLE001 - timed out (then cancelled) or failed
                    pass
            task.cancel()
        d = self.driver
        try:
            if d.connected or d.acquired is not None:
                await d.release()
        except Exception as e:  # noqa: BLE001 - a link already down: the slot goes with it
            self.last_error = e
        d.connected = False
        m = self.main.driver
        if m.peer is d:
            m.peer = None

    def stats(self):
        return {"up": self.isconnected(), "connects": self.connects,
                "reconnects": self.connects - 1 if self.connects > 1 else 0,
                "published": self.published, "failures": self.failures,
                "backoff_ms": self.backoff_ms}
