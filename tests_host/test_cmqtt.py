"""CMQTT driver: every transcript replay of tests_device/cmqtt_cases.py at chunk sizes
1, 2, 3, 7 and seeded random (the replay checks every byte written; the cases check
results, exceptions, events, Inbox contents and counters), a ring overflow inside an
inbound frame, and input validation that must refuse before a byte is written."""

import asyncio
import os
import sys

import pytest
from atmq.cmqtt import CMQTTDriver
from atmq.engine import Engine
from atmq.events import EV_MSG, EV_MSG_DROPPED, EventQueue
from atmq.errors import ModemError
from atmq.inbox import Inbox

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "tests_device"))
import atxreplay as R  # noqa: E402  # pyright: ignore[reportMissingImports]
import cmqtt_cases as C  # noqa: E402  # pyright: ignore[reportMissingImports]

CHUNKS = [1, 2, 3, 7, "random"]
TLS_ONLY = ("sslversion_oldfw", "certs", "sslversion_tls13")  # replayed by test_tls.py


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("name", [n for n in C.NAMES if n not in TLS_ONLY])
def test_replay(name, chunk):
    asyncio.run(C.run_case(name, chunk))


class Idle:
    def readinto(self, buf):
        return None

    def write(self, buf):
        return len(buf)


def test_ring_overflow_inside_a_frame_drops_that_message_only():
    at = Engine(Idle(), ring_size=64, chunk_size=64)
    ev = EventQueue(8)
    ib = Inbox(2, 32, 256)
    drv = CMQTTDriver(at, ev, ib)

    def put(data):  # what the reader does per read, without its chunk limit
        at.ring.put(data, len(data))
        at.process()

    put(b"\r\n+CMQTTRXSTART: 0,3,200\r\n")
    put(b"+CMQTTRXTOPIC: 0,3\r\nt/a\r\n+CMQTTRXPAYLOAD: 0,200\r\n")
    put(b"p" * 200 + b"\r\n+CMQTTRXEND: 0\r\n")  # 219 bytes into a 64-byte ring: overflow
    put(b"\r\n+CMQTTRXSTART: 0,3,2\r\n+CMQTTRXTOPIC: 0,3\r\nt/b\r\n")
    put(b"+CMQTTRXPAYLOAD: 0,2\r\nok\r\n+CMQTTRXEND: 0\r\n")
    assert at.ring.overflows == 1
    got = []
    while (k := ev.get()) >= 0:
        got.append((k, ev.a))
    assert got == [(EV_MSG_DROPPED, 3), (EV_MSG, 0)]
    s0 = ib.get()
    assert bytes(ib.topic(s0)) == b"t/b" and bytes(ib.payload(s0)) == b"ok"
    assert drv.stats["rx_torn"] == 1 and drv.stats["received"] == 1


def _msg(i, topic, payload):
    return (b"\r\n+CMQTTRXSTART: %d,%d,%d\r\n+CMQTTRXTOPIC: %d,%d\r\n%s\r\n"
            b"+CMQTTRXPAYLOAD: %d,%d\r\n%s\r\n+CMQTTRXEND: %d\r\n"
            % (i, len(topic), len(payload), i, len(topic), topic, i, len(payload), payload, i))


def test_reader_starts_messages_itself_and_leaves_the_odd_ones_to_the_handler():
    # RXSTART of a message that fits the prepared inbox slot: no Python call (on_start);
    # restarted (torn), oversize, another client's, inbox full: the handler, as before
    at = Engine(Idle())
    ev = EventQueue(16)
    ib = Inbox(2, 8, 16)
    drv = CMQTTDriver(at, ev, ib)
    calls = []
    rd = at.reader
    i = [k for k in range(len(rd.urc_fns)) if rd.urc_fns[k] == drv._on_rxstart][0]
    rd.urc_fns[i] = lambda a: (calls.append(a.bytes()), drv._on_rxstart(a))

    def put(data):
        at.feed(data)

    put(_msg(0, b"t/a", b"one"))
    assert calls == [] and drv.stats["received"] == 1 and ib.torn == 0
    put(b"\r\n+CMQTTRXSTART: 0,3,5\r\n+CMQTTRXTOPIC: 0,3\r\nt/x\r\n")  # never ends ...
    put(_msg(0, b"t/b", b"two"))  # ... restarted: torn, counted by the inbox and the driver
    assert calls == [b"+CMQTTRXSTART: 0,3,3"] and ib.torn == 1 and drv.stats["rx_torn"] == 1
    put(_msg(0, b"t/c", b"x" * 17))  # over the inbox's payload size: the handler drops it
    put(_msg(1, b"t/d", b"four"))  # client 1's: skipped in step
    put(_msg(0, b"t/e", b"five"))  # inbox full (2 unread): the handler overwrites the oldest
    assert len(calls) == 4 and drv.stats["rx_oversize"] == 1
    assert drv.stats["rx_overwritten"] == 1 and drv.stats["received"] == 3
    ib.get()
    ib.release()
    put(_msg(0, b"t/f", b"six"))  # a slot is free, but t/e ended on a full inbox: handler
    assert len(calls) == 5 and drv.stats["received"] == 4
    put(_msg(0, b"t/g", b"seven"))  # full again (t/e, t/f): overwrite via the handler
    got = []
    while (s := ib.get()) >= 0:
        got.append((bytes(ib.topic(s)), bytes(ib.payload(s))))
        ib.release()
    assert got == [(b"t/f", b"six"), (b"t/g", b"seven")]
    put(_msg(0, b"t/h", b"eight"))  # emptied, but prepared only at a message's end: handler
    put(_msg(0, b"t/i", b"nine"))  # prepared at t/h's end: the reader's own again
    assert len(calls) == 7
    got = []
    while (s := ib.get()) >= 0:
        got.append((bytes(ib.topic(s)), bytes(ib.payload(s))))
        ib.release()
    assert got == [(b"t/h", b"eight"), (b"t/i", b"nine")]
    assert drv.stats["rx_torn"] == 1 and drv.stats["rx_bad_len"] == 0


def _idle_driver(revision=None):
    m = R.ReplayModem([])  # an empty transcript: any byte written fails the replay
    at = Engine(m)
    return m, CMQTTDriver(at, EventQueue(4), Inbox(1, 8, 8), 0, revision)


BAD_CALLS = [
    ("publish", ("", b"x"), {}, ValueError, "topic is 0 bytes"),
    ("publish", ("t" * 1025, b"x"), {}, ValueError, "1..1024"),
    ("publish", ("a/+/b", b"x"), {}, ValueError, "wildcards"),
    ("publish", ("a/#", b"x"), {}, ValueError, "wildcards"),
    ("publish", ("a", b"x" * 4097), {}, ValueError, "0..4096"),
    ("publish", ("a", b"x"), {"qos": 3}, ValueError, "qos=3"),
    ("publish", ("a", 12), {}, TypeError, "payload must be str or bytes"),
    ("connect", ("h", 1883, ""), {}, ValueError, "client_id is 0 bytes"),
    ("connect", ("h", 1883, "c" * 129), {}, ValueError, "1..128"),
    ("connect", ("h", 1883, 'a"b'), {}, ValueError, "must not contain"),
    ("connect", ("h", 1883, "id"), {"keepalive_s": 0}, ValueError, "keepalive_s=0"),
    ("connect", ("h", 1883, "id"), {"keepalive_s": 64801}, ValueError, "1..64800"),
    ("connect", ("h", 70000, "id"), {}, ValueError, "port=70000"),
    ("connect", ("h" * 250, 1883, "id"), {}, ValueError, "server address is 261 bytes"),
    ("connect", ("h", 1883, "id"), {"password": "p"}, ValueError, "needs a user name"),
    ("connect", ("h", 1883, "id"), {"user": "u" * 257}, ValueError, "1..256"),
    ("connect", ("h", 1883, "id"), {"will": ("w", "m", 1, True)}, ValueError, "retain"),
    ("connect", ("h", 1883, "id"), {"will": ("w" * 1025, "m", 1, False)}, ValueError, "1..1024"),
    ("connect", ("h", 1883, "id"), {"will": ("w", "", 1, False)}, ValueError, "will message"),
    ("connect", ("h", 1883, "id"), {"will": ("w", "m", 5, False)}, ValueError, "will qos"),
    ("subscribe", ("",), {}, ValueError, "topic is 0 bytes"),
    ("subscribe", ("a",), {"qos": -1}, ValueError, "qos=-1"),
    ("subscribe_many", ([("a", 0), ("b", 1)],), {"two_step": False}, ValueError, "two-step"),
    ("subscribe_many", ([],), {}, ValueError, "nothing to subscribe"),
    ("unsubscribe", ("t" * 1025,), {}, ValueError, "1..1024"),
    ("disconnect", (), {"timeout_s": 30}, ValueError, "60..180"),
    ("configure", (), {"optimeout_s": 10}, ValueError, "20..120"),
    ("configure", (), {"version": 5}, ValueError, "3..4"),
    ("start", (), {"client_id": "x" * 129}, ValueError, "1..128"),
    ("configure_tls", ("aws",), {}, ValueError, "must be a dict or None"),
    ("configure_tls", ({"authmode": 2},), {}, ValueError, "needs clientcert and clientkey"),
]


@pytest.mark.parametrize("method,args,kw,exc,text", BAD_CALLS)
def test_bad_input_refused_before_sending(method, args, kw, exc, text):
    m, d = _idle_driver()

    async def go():
        with pytest.raises(exc) as ei:
            await getattr(d, method)(*args, **kw)
        return ei.value

    e = asyncio.run(go())
    assert text in str(e)
    assert m.written == b"" and m.failure is None


def test_payload_limit_follows_the_model():
    assert _idle_driver("SIM7600M21-A_V1.1")[1].payload_max == 4096  # manual 003 16.2.11
    assert _idle_driver("A011B07A7600M7")[1].payload_max == 10240  # A7600 note 2.1.11
    at = Engine(R.ReplayModem([]))
    assert CMQTTDriver(at, EventQueue(2), Inbox(1, 8, 8), 1, None, 512).payload_max == 512
    with pytest.raises(ValueError):
        CMQTTDriver(at, EventQueue(2), Inbox(1, 8, 8), 2)


# ---- end to end: the driver over TCP to the modem simulator, bridged to a real Mosquitto ----

from brokerfix import Subscriber, broker, mqtt_sub  # noqa: E402, F401
from modemsim_at import cert_bytes, run, sim_session  # noqa: E402

from atmq import tls as T  # noqa: E402


class TcpStream:
    """The stream protocol over an asyncio TCP connection (the simulator's UART)."""

    def __init__(self, reader, writer):
        self.r, self.w = reader, writer
        self.buf = bytearray()
        self.eof = False
        self.ev = asyncio.Event()
        self.task = asyncio.ensure_future(self._fill())

    async def _fill(self):
        while True:
            data = await self.r.read(4096)
            if not data:
                self.eof = True
                self.ev.set()
                return
            self.buf += data
            self.ev.set()

    def readinto(self, buf):
        if not self.buf:
            return 0 if self.eof else None
        n = min(len(buf), len(self.buf))
        buf[:n] = self.buf[:n]
        del self.buf[:n]
        return n

    def write(self, buf):
        self.w.write(bytes(buf))
        return len(buf)

    async def wait_readable(self):
        while not self.buf and not self.eof:
            self.ev.clear()
            await self.ev.wait()

    async def wait_writable(self):
        await self.w.drain()


async def _events(ev, want, timeout=10.0):
    """Collect events until `want` of them arrived (bounded)."""
    got = []
    while len(got) < want:
        await asyncio.wait_for(ev.wait(), timeout)
        while (k := ev.get()) >= 0:
            got.append((k, ev.a, ev.b))
    return got


@pytest.mark.parametrize("persona", ["SIM7600E", "A7600"])
def test_end_to_end_plain_against_mosquitto(broker, mqtt_sub, persona):  # noqa: F811
    mqtt_sub.subscribe("dt/#", qos=2)

    async def t():
        async with sim_session(persona, broker=broker, rx_chunk=100) as (sim, at_raw):
            s = TcpStream(at_raw.r, at_raw.w)
            at = Engine(s)
            ev = EventQueue(16)
            ib = Inbox(4, 64, 512)
            d = CMQTTDriver(at, ev, ib, 0, sim.modem.revision())
            reader = asyncio.ensure_future(at.run())
            try:
                await d.stop()  # boot: whatever state the modem is in
                await d.start()
                await d.connect("broker.example.net", 1883, "e2e-" + persona, keepalive_s=30,
                                will=("dt/will", "gone", 1, False))
                await d.subscribe("cmd/#", 1)
                q1 = "dt/%s/q1" % persona
                await d.publish("dt/q0", b"zero", qos=0)
                await d.publish(q1, b"one\r\nOK\r\n>", qos=1, retain=True)
                await d.publish("dt/q2", "tw\u00f6", qos=2)
                got = {}
                for topic in ("dt/q0", q1, "dt/q2"):
                    got[topic] = await asyncio.to_thread(mqtt_sub.wait_for, topic)
                assert got["dt/q0"] == ("dt/q0", b"zero", 0, False)
                assert got[q1] == (q1, b"one\r\nOK\r\n>", 1, False)
                assert got["dt/q2"] == ("dt/q2", "tw\u00f6".encode(), 2, False)
                late = Subscriber(broker.host, broker.port, "late-" + persona)
                try:  # the broker kept the retained one: a new subscriber gets it, flagged
                    late.subscribe(q1, 1)
                    r = await asyncio.to_thread(late.wait_for, q1)
                    assert r == (q1, b"one\r\nOK\r\n>", 1, True)
                finally:
                    late.close()
                big = bytes(range(32, 127)) * 4  # 380 bytes: several 100-byte RX chunks
                await asyncio.to_thread(mqtt_sub.publish, "cmd/big", big, 1)
                await asyncio.to_thread(mqtt_sub.publish, "cmd/huge", b"h" * 600, 1)  # oversize
                await asyncio.to_thread(mqtt_sub.publish, "cmd/ok", b"+CMQTTRXEND: 0\r\n", 1)
                evs = await _events(ev, 3)
                assert [(k, a) for k, a, b in evs] == [(EV_MSG, 0), (EV_MSG_DROPPED, 1),
                                                       (EV_MSG, 1)]
                assert (bytes(ib.topic(0)), bytes(ib.payload(0))) == (b"cmd/big", big)
                ib.release()
                assert (bytes(ib.topic(1)), bytes(ib.payload(1))) == (
                    b"cmd/ok", b"+CMQTTRXEND: 0\r\n")
                assert await d.is_connected()
                await d.unsubscribe("cmd/#")
                await d.disconnect()
                await d.stop()
                assert d.stats["published"] == 3 and d.stats["received"] == 2
                assert d.stats["rx_oversize"] == 1 and at.unknown == 0
            finally:
                reader.cancel()
                s.task.cancel()

    run(t())


def test_end_to_end_mutual_tls_against_mosquitto(broker, mqtt_sub):  # noqa: F811
    if not broker.tls_port:
        pytest.skip("broker without a TLS listener (amqtt fallback)")
    mqtt_sub.subscribe("tls/#", qos=1)

    async def t():
        async with sim_session("SIM7600E", broker=broker) as (sim, at_raw):
            s = TcpStream(at_raw.r, at_raw.w)
            at = Engine(s)
            d = CMQTTDriver(at, EventQueue(8), Inbox(2, 32, 64))
            reader = asyncio.ensure_future(at.run())
            try:
                for name, path in (("cacert.pem", broker.ca_path),
                                   ("clientcert.pem", broker.client_cert),
                                   ("clientkey.pem", broker.client_key)):
                    await T.download_cert(at, name, cert_bytes(path))
                assert sorted(await T.list_certs(at)) == [
                    "cacert.pem", "clientcert.pem", "clientkey.pem"]
                await d.start()
                await d.configure_tls(T.aws_iot())
                await d.connect("localhost", 8883, "e2e-tls", tls=True)
                await d.publish("tls/up", b"secure", qos=1)
                m = await asyncio.to_thread(mqtt_sub.wait_for, "tls/up")
                assert m[:2] == ("tls/up", b"secure")
                await d.disconnect()
                # a wrong CA: the handshake fails with 32, and the driver says so
                await T.download_cert(at, "cacert.pem", cert_bytes(broker.client_cert))
                with pytest.raises(ModemError) as ei:
                    await d.connect("localhost", 8883, "e2e-tls", tls=True)
                assert (ei.value.kind, ei.value.code) == ("CMQTT", 32)
                await d.stop()
            finally:
                reader.cancel()
                s.task.cancel()

    run(t())


def test_reset_forgets_modem_state():
    m, d = _idle_driver()
    d.started, d.connected, d.acquired = True, True, (b"id", 0)
    d.reset()
    assert (d.started, d.connected, d.acquired) == (False, False, None)
    assert m.written == b""


def test_setup_module_is_imported_for_a_call_only():
    # issue 11: start/connect/... live in atmq.cmqttup, imported for a bring-up and dropped
    # by connect (even a refused one), subscribe or the teardown; a probe of a name the
    # driver lacks leaves nothing imported
    m, d = _idle_driver()
    assert getattr(d, "no_such_method", None) is None
    assert "atmq.cmqttup" not in sys.modules
    d.set_model("SIMCOM_SIM7600E")  # the steps opening a session keep it for the next ones
    assert d.start_timeout_ms == 12000 and "atmq.cmqttup" in sys.modules
    with pytest.raises(ValueError):
        asyncio.run(d.connect("broker.example.net", 1883, 'bad"id'))
    assert "atmq.cmqttup" not in sys.modules and m.written == b""


def test_end_to_end_largest_messages_both_ways(broker, mqtt_sub):  # noqa: F811
    """A7600: 10240-byte payloads (note 2.1.11 and 16.4 limits) out and in, exact bytes."""
    mqtt_sub.subscribe("big/#", qos=1)
    blob = bytes((i * 7 + 3) & 0xFF for i in range(10240)).replace(b"\x00", b"\x01")

    async def t():
        async with sim_session("A7600", broker=broker) as (sim, at_raw):
            s = TcpStream(at_raw.r, at_raw.w)
            at = Engine(s)
            ev = EventQueue(8)
            ib = Inbox(2, 32, 10240)
            d = CMQTTDriver(at, ev, ib, 0, sim.modem.revision())
            assert d.payload_max == 10240
            reader = asyncio.ensure_future(at.run())
            try:
                await d.configure(check_utf8=0)  # binary payload
                await d.start()
                await d.connect("broker.example.net", 1883, "e2e-big")
                await d.subscribe("cmd/big", 1)
                await d.publish("big/up", blob, qos=1)
                m = await asyncio.to_thread(mqtt_sub.wait_for, "big/up")
                assert m[1] == blob
                await asyncio.to_thread(mqtt_sub.publish, "cmd/big", blob[::-1], 1)
                evs = await _events(ev, 1)
                assert evs[0][0] == EV_MSG
                assert bytes(ib.payload(ib.get())) == blob[::-1]
                assert at.ring.overflows == 0 and at.unknown == 0
                await d.stop()
            finally:
                reader.cancel()
                s.task.cancel()

    run(t())


def test_peer_driver_gets_its_index_urcs_only():
    """A second session on client index 1 (tlog.lane): the reader gives a URC to one
    handler, so the main driver forwards index 1's result and loss URCs to its peer;
    each driver's events go to its own queue."""
    from atmq.events import EV_CONNLOST, EV_NONET, EV_PUBACK

    at = Engine(Idle(), ring_size=256, chunk_size=64)
    ev0, ev1 = EventQueue(8), EventQueue(8)
    ib = Inbox(2, 32, 256)
    main = CMQTTDriver(at, ev0, ib)
    peer = CMQTTDriver(at, ev1, ib, client_index=1, peer_of=main)
    with pytest.raises(ValueError):
        CMQTTDriver(at, ev1, ib, client_index=1, peer_of=main)  # one peer

    def put(data):
        at.ring.put(data, len(data))
        at.process()

    def drain(q):
        out = []
        while (k := q.get()) >= 0:
            out.append((k, q.a, q.b))
        return out

    main.connected = peer.connected = True
    put(b"\r\n+CMQTTPUB: 1,0\r\n")  # nobody waits: a late result, reported by the peer
    put(b"\r\n+CMQTTCONNLOST: 1,2\r\n")
    assert drain(ev1) == [(EV_PUBACK, 1, 0), (EV_CONNLOST, 1, 2)] and drain(ev0) == []
    assert main.connected and not peer.connected
    peer.connected = True
    put(b"\r\n+CMQTTCONNLOST: 0,1\r\n")
    assert drain(ev0) == [(EV_CONNLOST, 0, 1)] and drain(ev1) == []
    assert not main.connected and peer.connected
    put(b"\r\n+CMQTTNONET\r\n")  # the service stopped: both sessions are gone
    assert drain(ev0) == [(EV_NONET, 0, 0)] and drain(ev1) == [(EV_NONET, 1, 0)]
    peer.connected, peer.acquired = True, (b"x-2", 0)
    main.lost(True)  # a reboot seen by the link owner reaches the peer too
    assert not peer.connected and peer.acquired is None and not peer.started
