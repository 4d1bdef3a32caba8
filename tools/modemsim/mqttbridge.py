"""Bridge from the modem's MQTT client to a real broker with paho-mqtt 2.2 (VERSION2 callbacks).

Owns one paho client per modem MQTT client: connect (TCP or TLS), publish with
acknowledgement, subscribe/unsubscribe, clean disconnect, abrupt abort (so the
broker publishes the Last Will), and delivery of broker messages and connection
loss into the asyncio loop.  Results are CMQTT <err> codes (manual 003 16.3.1).
"""

import asyncio
import socket
import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

# paho maps MQTT 3.x CONNACK return codes 1..5 to these reason codes.
CONNACK_ERR = {132: 27, 133: 28, 136: 29, 134: 30, 135: 31, 1: 27, 2: 28, 3: 29, 4: 30, 5: 31}


class BridgeClient:
    """One broker connection.  on_message(topic, payload, qos, retain, mid) and
    on_lost() are called in the asyncio loop."""

    def __init__(self, client_id, version=4, clean=True, on_message=None, on_lost=None,
                 net_rtt=0.0):
        self.loop = asyncio.get_running_loop()
        self.net_rtt = net_rtt  # seconds a qos >= 1 PUBLISH -> PUBACK adds (cellular network)
        proto = mqtt.MQTTv31 if version == 3 else mqtt.MQTTv311
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             clean_session=bool(clean), protocol=proto)
        self.on_message = on_message or (lambda *a: None)
        self.on_lost = on_lost or (lambda: None)
        self.connected = False
        self._closing = False
        self._connack = None
        self._pending = {}       # mid -> future (PUBACK/SUBACK/UNSUBACK)
        self._done = {}          # mid -> result that arrived before its future
        self.c.on_connect = self._cb_connect
        self.c.on_disconnect = self._cb_disconnect
        self.c.on_message = self._cb_message
        self.c.on_publish = lambda c, u, mid, rc, p: self._resolve(mid, 0)
        self.c.on_subscribe = self._cb_suback
        self.c.on_unsubscribe = lambda c, u, mid, rcs, p: self._resolve(mid, 0)

    # -- paho thread -> loop ---------------------------------------------------------
    def _call(self, fn, *args):
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass                                      # loop closed while shutting down

    def _cb_connect(self, c, u, flags, rc, props):
        self._call(self._set_connack, rc.value if hasattr(rc, "value") else int(rc))

    def _set_connack(self, v):
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(v)

    def _cb_disconnect(self, c, u, flags, rc, props):
        self._call(self._lost)

    def _lost(self):
        was = self.connected
        self.connected = False
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(-1)
        for f in self._pending.values():
            if not f.done():
                f.set_result(26)                      # socket is closed by server
        self._pending.clear()
        if was and not self._closing:
            self._closing = True
            self.c.disconnect()                       # stop paho's automatic reconnect
            self.loop.run_in_executor(None, self.c.loop_stop)
            self.on_lost()

    def _cb_message(self, c, u, msg):
        self._call(self.on_message, msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain),
                   msg.mid)

    def _cb_suback(self, c, u, mid, rcs, props):
        bad = any((getattr(r, "value", r) >= 0x80) for r in rcs)
        self._call(self._resolve_now, mid, 1 if bad else 0)

    def _resolve(self, mid, result):
        self._call(self._resolve_now, mid, result)

    def _resolve_now(self, mid, result):
        f = self._pending.pop(mid, None)
        if f is None:
            self._done[mid] = result
        elif not f.done():
            f.set_result(result)

    async def _wait_mid(self, mid, timeout):
        if mid in self._done:
            return self._done.pop(mid)
        f = self.loop.create_future()
        self._pending[mid] = f
        try:
            return await asyncio.wait_for(f, timeout)
        except asyncio.TimeoutError:
            self._pending.pop(mid, None)
            return 17                                 # timeout

    # -- operations ----------------------------------------------------------------
    async def connect(self, host, port, keepalive=60, tls=None, username=None,
                      password=None, will=None, timeout=30.0):
        """0 on CONNACK accepted, else a CMQTT <err> code."""
        if username is not None:
            self.c.username_pw_set(username, password)
        if will is not None:
            topic, payload, qos, retain = will
            self.c.will_set(topic, payload, qos=qos, retain=retain)
        if tls is not None:
            self.c.tls_set_context(tls)
        self._connack = self.loop.create_future()
        try:
            await asyncio.wait_for(asyncio.to_thread(self.c.connect, host, port, keepalive),
                                   timeout)
        except asyncio.TimeoutError:
            return 17
        except socket.gaierror:
            return 25                                 # DNS error
        except ssl.SSLError:
            return 32                                 # handshake fail
        except OSError:
            return 3                                  # sock connect fail
        self.c.loop_start()
        try:
            rc = await asyncio.wait_for(self._connack, timeout)
        except asyncio.TimeoutError:
            rc = -2
        if rc == 0:
            self.connected = True
            return 0
        self._closing = True
        self.c.disconnect()
        await asyncio.to_thread(self.c.loop_stop)
        if rc == -1:
            return 32 if tls is not None else 26      # dropped during handshake/CONNECT
        return 17 if rc == -2 else CONNACK_ERR.get(rc, 1)

    async def publish(self, topic, payload, qos, retain, timeout):
        if not self.connected:
            return 11
        try:
            info = self.c.publish(topic, payload, qos=qos, retain=bool(retain))
        except ValueError:
            return 12                                 # invalid parameter (wildcard topic)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return 16                                 # sock sending fail
        if qos == 0:
            return 0
        if self.net_rtt > 0:
            await asyncio.sleep(self.net_rtt)  # the loopback broker answers in microseconds
        return await self._wait_mid(info.mid, timeout)

    async def subscribe(self, topics, timeout=30.0):
        if not self.connected:
            return 11
        try:
            rc, mid = self.c.subscribe(list(topics))
        except ValueError:
            return 12
        if rc != mqtt.MQTT_ERR_SUCCESS:
            return 16
        return await self._wait_mid(mid, timeout)

    async def unsubscribe(self, topics, timeout=30.0):
        if not self.connected:
            return 11
        try:
            rc, mid = self.c.unsubscribe(list(topics))
        except ValueError:
            return 12
        if rc != mqtt.MQTT_ERR_SUCCESS:
            return 16
        return await self._wait_mid(mid, timeout)

    async def disconnect(self):
        """Clean DISCONNECT (no Will)."""
        self._closing = True
        self.connected = False
        self.c.disconnect()
        await asyncio.to_thread(self.c.loop_stop)
        return 0

    def abort(self, report=True):
        """Drop the TCP connection without DISCONNECT: the broker publishes the Will.
        With report, on_lost() runs as for a real loss."""
        if not report:
            self._closing = True
        sock = self.c.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # pyright: ignore[reportAttributeAccessIssue]
            except OSError:
                pass
        if not report:
            was, self.connected = self.connected, False
            if was:
                self.loop.run_in_executor(None, self._stop_quietly)

    def _stop_quietly(self):
        self.c.disconnect()
        self.c.loop_stop()
