"""examples/*.py run as a user runs them (CPython and the MicroPython unix port) against the
modem simulator and a real Mosquitto; ``atmq.connect``'s refusals of bad input."""

import asyncio
import os
import socket
import subprocess
import sys
import threading

import pytest
from brokerfix import broker, mqtt_sub  # noqa: F401

import atmq
from atmq import wiring
from atmq.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
INTERPRETERS = ["cpython", "micropython"]


class Sim:
    """``python3 tools/modemsim --fast`` as a user starts it (its LISTENING line read)."""

    def __init__(self, broker, persona="SIM7600E"):  # noqa: F811
        cmd = [sys.executable, os.path.join(ROOT, "tools", "modemsim"), "--fast", "--persona",
               persona, "--broker", "%s:%d" % (broker.host, broker.port), "--seconds", "120"]
        if broker.tls_port:
            cmd += ["--broker-tls", "%s:%d" % (broker.host, broker.tls_port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # pyright: ignore[reportOptionalMemberAccess]
        assert line.startswith("LISTENING"), line
        self.port = int(line.split()[1])

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def sim(broker):  # noqa: F811
    s = Sim(broker)
    yield s
    s.close()


def example(name, interp, env_extra, stdin=None):
    env = dict(os.environ, **env_extra)
    if interp == "micropython":
        env["MICROPYPATH"] = ".frozen:" + os.path.join(ROOT, "lib")
        cmd = [MICROPYTHON, os.path.join(EXAMPLES, name)]
    else:
        env["PYTHONPATH"] = os.path.join(ROOT, "lib")
        cmd = [sys.executable, os.path.join(EXAMPLES, name)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=ROOT)


def env_for(broker, sim, **kw):  # noqa: F811
    e = {"ATMQ_MODEM": "tcp:127.0.0.1:%d" % sim.port, "ATMQ_HOST": broker.host,
         "ATMQ_PORT": str(broker.port), "ATMQ_COUNT": "3"}
    e.update(kw)
    return e


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_hello_publishes_and_closes(broker, sim, mqtt_sub, interp):  # noqa: F811
    mqtt_sub.subscribe("atmq-hello/#")
    p = example("hello.py", interp, env_for(broker, sim))
    out, _ = p.communicate(timeout=90)
    assert p.returncode == 0, out
    assert "connected" in out and "published 2" in out and "closed" in out, out
    got = [mqtt_sub.wait_for("atmq-hello/count", 20) for _ in range(3)]
    assert [m[1] for m in got] == [b"0", b"1", b"2"]


def test_hello_on_the_sim800(broker, mqtt_sub):  # noqa: F811
    """The same program with MODEL = "SIM800": the SM driver (seed 004) is picked."""
    s = Sim(broker, persona="SIM800")
    try:
        mqtt_sub.subscribe("atmq-hello/#")
        p = example("hello.py", "cpython", env_for(broker, s, ATMQ_MODEL="SIM800",
                                                   ATMQ_COUNT="2", ATMQ_APN="CMNET"))
        out, _ = p.communicate(timeout=90)
        assert p.returncode == 0, out
        assert [mqtt_sub.wait_for("atmq-hello/count", 20)[1] for _ in range(2)] == [b"0", b"1"]
    finally:
        s.close()


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_echo_callback_answers_a_command(broker, sim, mqtt_sub, interp):  # noqa: F811
    mqtt_sub.subscribe("atmq-echo/#")
    p = example("echo_callback.py", interp, env_for(broker, sim, ATMQ_COUNT="1"))
    lines = []
    ready = threading.Event()

    def read():
        for line in p.stdout:  # pyright: ignore[reportOptionalIterable]
            lines.append(line)
            if line.startswith("ready"):
                ready.set()
    t = threading.Thread(target=read, daemon=True)
    t.start()
    try:
        assert ready.wait(60), "".join(lines)
        assert mqtt_sub.wait_for("atmq-echo/status", 20)[1] == b"online"
        mqtt_sub.publish("atmq-echo/cmd", b"hi", qos=1)
        assert mqtt_sub.wait_for("atmq-echo/ack", 20)[1] == b"echo: hi"
        assert p.wait(30) == 0, "".join(lines)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        t.join(5)


def test_tls_publish_puts_the_ca_on_the_modem_then_connects(broker, sim, mqtt_sub):  # noqa: F811
    if not broker.tls_port:
        pytest.skip("no TLS listener (amqtt fallback)")
    mqtt_sub.subscribe("atmq-tls/#")
    p = example("tls_publish.py", "micropython", env_for(
        broker, sim, ATMQ_PORT=str(broker.tls_port), ATMQ_CA=broker.ca_path, ATMQ_COUNT="2"))
    out, _ = p.communicate(timeout=90)
    assert p.returncode == 0, out
    assert "connected over TLS" in out, out
    # the simulator bridges to the TLS listener with the CA that AT+CCERTDOWN stored
    assert [mqtt_sub.wait_for("atmq-tls/count", 20)[1] for _ in range(2)] == [b"0", b"1"]


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_at_commands(broker, sim, interp):  # noqa: F811
    p = example("at_commands.py", interp, env_for(broker, sim))
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0, out
    assert "model SIMCOM_SIM7600E" in out and "dBm" in out, out
    assert "refused as expected: AT ERROR" in out, out


# ---- atmq.connect: what it takes, what it refuses -------------------------------------------

def test_connect_stays_the_function_after_the_wiring_loaded():
    import atmq.wiring  # noqa: F401

    assert callable(atmq.connect) and atmq.connect.__name__ == "connect"
    asyncio.run(_refuses(TypeError, 12.5, "SIM7600"))


async def _refuses(exc, stream, model, match=None, **cfg):
    with pytest.raises(exc, match=match):
        await atmq.connect(stream, model, host="127.0.0.1", **cfg)
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


def test_connect_refuses_bad_input_naming_it():
    a, b = socket.socketpair()
    try:
        asyncio.run(_refuses(TypeError, object(), "SIM7600", match="non-blocking readinto"))
        asyncio.run(_refuses(ConfigError, a, "SIM7600", match="hots", hots="x"))
        asyncio.run(_refuses(ConfigError, a, "SIM9999", match="unknown modem model"))
        asyncio.run(_refuses(TypeError, "/dev/ttyUSB0", "SIM7600", match="tcp:HOST:PORT"))
    finally:
        a.close()
        b.close()


def test_connect_names_an_address_nothing_listens_on():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(OSError, match="tcp:127.0.0.1:%d" % port):
        asyncio.run(atmq.connect("tcp:127.0.0.1:%d" % port, "SIM7600", host="x"))


def test_build_picks_the_family_of_the_model():
    a, b = socket.socketpair()
    try:
        async def t():
            c1 = wiring.build(a, "SIM800", host="h", client_id="c")
            c2 = wiring.build(a, os.path.join(ROOT, "boards", "unix.json"), host="h",
                              client_id="c")
            return type(c1.driver).__name__, type(c2.driver).__name__
        assert asyncio.run(t()) == ("SMDriver", "CMQTTDriver")
    finally:
        a.close()
        b.close()


def test_engine_says_which_streams_it_takes():
    from atmq.engine import Engine

    a, b = socket.socketpair()
    try:
        with pytest.raises(TypeError, match="stream_of"):
            Engine(a)  # a CPython socket has recv_into/send, not readinto/write
        at = Engine(wiring.stream_of(a))  # adapted: the engine reads it
        assert at.stream is not a
    finally:
        a.close()
        b.close()


def test_examples_run_on_a_board_too():
    """The ESP32's os has no getenv and its UART comes from machine: every example reads
    its PC switches through setting() and opens machine.UART when there is one."""
    for name in sorted(os.listdir(EXAMPLES)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(EXAMPLES, name)) as f:
            text = f.read()
        assert text.count("os.getenv") == 0 and "getattr(os, \"getenv\", None)" in text, name
        assert "from machine import UART" in text, name


def test_engine_over_a_pty_on_cpython():
    """A pty (what a USB serial adapter looks like) as a file descriptor: stream_of adapts
    it and the engine runs a command over it."""
    import tty

    from atmq.engine import Engine

    master, slave = os.openpty()
    tty.setraw(slave)

    async def t():
        at = Engine(wiring.stream_of(master))
        reader = asyncio.create_task(at.run())
        loop = asyncio.get_running_loop()
        got = bytearray()

        def modem_side():  # answers the one command it gets, as a modem would
            got.extend(os.read(slave, 64))
            if got.endswith(b"\r"):
                os.write(slave, b"\r\n+CSQ: 21,0\r\n\r\nOK\r\n")
        loop.add_reader(slave, modem_side)
        try:
            r = await asyncio.wait_for(at.cmd(b"AT+CSQ", resp=b"+CSQ:"), 10)
            return bytes(got), r.line(0).arg_int(0)
        finally:
            loop.remove_reader(slave)
            reader.cancel()
    try:
        assert asyncio.run(t()) == (b"AT+CSQ\r", 21)
    finally:
        os.close(master)
        os.close(slave)
