"""Pytest fixtures for a loopback MQTT broker and a paho subscriber that records messages.

Import in a test module:  from brokerfix import broker, mqtt_sub  # noqa: F401
`broker` is one Mosquitto (or amqtt fallback) per test module; `mqtt_sub` is a
connected paho client whose `.wait_for(topic, timeout)` returns the first matching
message (bounded wait, no sleeps).
"""

import queue
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
import pytest

from broker import Broker


@pytest.fixture(scope="module")
def broker():
    b = Broker().start()
    try:
        yield b
    finally:
        b.stop()


class Subscriber:
    """paho client on the broker's plain port; records every message it gets."""

    def __init__(self, host, port, client_id="atmq-test-sub"):
        self.messages = queue.Queue()
        self._subacks = {}
        self._lock = threading.Condition()
        self._connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_connect = lambda c, u, f, rc, p: self._connected.set()
        self.client.on_message = lambda c, u, m: self.messages.put(
            (m.topic, bytes(m.payload), m.qos, bool(m.retain)))
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise TimeoutError("subscriber did not connect")

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self._lock:
            self._subacks[mid] = True
            self._lock.notify_all()

    def subscribe(self, topic, qos=1, timeout=10):
        """Subscribe and wait for the SUBACK."""
        _, mid = self.client.subscribe(topic, qos)
        with self._lock:
            if not self._lock.wait_for(lambda: mid in self._subacks, timeout):
                raise TimeoutError("no SUBACK for " + topic)

    def publish(self, topic, payload, qos=1, retain=False, timeout=10):
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout)

    def wait_for(self, topic, timeout=10):
        """First recorded message on topic as (topic, payload, qos, retain)."""
        deadline = time.monotonic() + timeout
        skipped = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no message on " + topic)
                try:
                    msg = self.messages.get(timeout=left)
                except queue.Empty:
                    raise TimeoutError("no message on " + topic) from None
                if msg[0] == topic:
                    return msg
                skipped.append(msg)
        finally:
            for m in skipped:
                self.messages.put(m)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mqtt_sub(broker):
    s = Subscriber(broker.host, broker.port)
    try:
        yield s
    finally:
        s.close()
