"""Modem simulator as a process (CLI, TCP + pty), baud pacing, and the amqtt broker fallback."""

from modemsim_at import At, run, sim_session

import asyncio
import os
import select
import signal
import subprocess
import sys
import time

from broker import Broker
from modemsim import ModemSim

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read_pty(fd, want, timeout=10.0):
    deadline = time.monotonic() + timeout
    got = b""
    while not got.endswith(want):
        left = deadline - time.monotonic()
        assert left > 0, "pty: expected ...%r, got %r" % (want, got)
        r, _, _ = select.select([fd], [], [], left)
        if r:
            got += os.read(fd, 4096)
    return got


def test_cli_tcp_and_pty():
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "modemsim"), "--fast",
                             "--pty", "--persona", "SIM7670"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        second = proc.stdout.readline().split()
        assert first[0] == "LISTENING" and int(first[1]) > 0
        assert second[0] == "PTY" and second[1].startswith("/dev/")
        fd = os.open(second[1], os.O_RDWR | os.O_NOCTTY)
        try:
            boot = (b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n\r\nPB DONE\r\n"
                    b"\r\nAPP RDY\r\n")
            assert _read_pty(fd, b"APP RDY\r\n") == boot
            os.write(fd, b"AT+CGMR\r")
            want = b"AT+CGMR\r\r\n+CGMR: 2348B01SIM767XM5A\r\n\r\nOK\r\n"
            assert _read_pty(fd, b"OK\r\n") == want

            async def tcp():
                r, w = await asyncio.open_connection("127.0.0.1", int(first[1]))
                at = At(r, w)
                await at.cmd(b"ATE0", b"ATE0\r\r\nOK\r\n")       # same module, echo still on
                await at.cmd(b"AT", b"\r\nOK\r\n")
                w.close()
            run(tcp())
        finally:
            os.close(fd)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_output_is_paced_at_the_baud_rate():
    async def t():
        sim = ModemSim(persona="SIM7600E", baud=4800, latency=0.0, boot_delay=0.0)
        port = await sim.start()
        r, w = await asyncio.open_connection("127.0.0.1", port)
        at = At(r, w)
        try:
            await at.until(b"PB DONE\r\n")
            await at.send(b"ATE0\r")
            await at.expect(b"ATE0\r\r\nOK\r\n")
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await at.send(b"ATI\r")
            got = await at.until(b"\r\nOK\r\n")
            # 10 bits per byte: the answer cannot arrive faster than the line allows
            assert loop.time() - t0 >= len(got) * 10 / 4800 * 0.9
            assert max(sim.write_sizes) <= 16
        finally:
            w.close()
            await sim.stop()
    run(t())


def test_input_is_paced_at_the_baud_rate_when_asked():
    async def t():
        sim = ModemSim(persona="SIM7600E", baud=9600, latency=0.0, boot_delay=0.0,
                       pace_input=True)
        port = await sim.start()
        r, w = await asyncio.open_connection("127.0.0.1", port)
        at = At(r, w)
        try:
            await at.until(b"PB DONE\r\n")
            await at.cmd(b"ATE0", b"ATE0\r\r\nOK\r\n")
            junk = (b"X" * 100 + b"\r") * 9  # not AT lines: the modem ignores them
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await at.send(junk + b"AT+CSQ\r")  # the socket takes it all at once
            await at.expect(b"\r\n+CSQ: 23,99\r\n\r\nOK\r\n")
            # the answer comes only after the line carried every byte before it
            assert loop.time() - t0 >= (len(junk) + 7) * 10 / 9600
            assert sim.modem.commands[-1] == "AT+CSQ"
        finally:
            w.close()
            await sim.stop()
    run(t())


def test_amqtt_fallback_broker_carries_cmqtt():
    b = Broker(prefer="amqtt").start()
    try:
        assert b.kind == "amqtt" and b.tls_port is None

        async def t():
            async with sim_session("A7600", broker=b) as (sim, at):
                await at.cmd(b"AT+CMQTTSTART", b"\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n")
                await at.cmd(b'AT+CMQTTACCQ=0,"amq"', b"\r\nOK\r\n")
                await at.cmd(b"AT+CMQTTCFG=\"version\",0,4", b"\r\nOK\r\n")
                await at.cmd(b'AT+CMQTTCONNECT=0,"tcp://broker:1883",60,1',
                             b"\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n")
                await at.cmd(b"AT+CMQTTSUB=0,3,1", b"\r\n>")
                await at.send(b"a/b")
                await at.expect(b"\r\nOK\r\n\r\n+CMQTTSUB: 0,0\r\n")
                await at.cmd(b"AT+CMQTTTOPIC=0,3", b"\r\n>")
                await at.send(b"a/b")
                await at.expect(b"\r\nOK\r\n")
                await at.cmd(b"AT+CMQTTPAYLOAD=0,2", b"\r\n>")
                await at.send(b"hi")
                await at.expect(b"\r\nOK\r\n")
                await at.cmd(b"AT+CMQTTPUB=0,1,60", b"\r\nOK\r\n")
                await at.expect_unordered(b"\r\n+CMQTTPUB: 0,0\r\n",
                                          b"\r\n+CMQTTRXSTART: 0,3,2\r\n+CMQTTRXTOPIC: 0,3\r\n"
                                          b"a/b\r\n+CMQTTRXPAYLOAD: 0,2\r\nhi\r\n"
                                          b"+CMQTTRXEND: 0\r\n")
                await at.cmd(b"AT+CMQTTDISC=0,60", b"\r\nOK\r\n\r\n+CMQTTDISC: 0,0\r\n")
        run(t())
    finally:
        b.stop()


def test_record_session_as_atx(tmp_path):
    from atmq import atx

    path = tmp_path / "session.atx"
    sent = []

    async def t():
        async with sim_session("SIM7600E", record=str(path)) as (sim, at):
            await at.cmd(b"AT+CSQ", b"\r\n+CSQ: 23,99\r\n\r\nOK\r\n")
            sent.append(bytes(sim.sent))
    run(t())
    meta, records = atx.read(str(path))                     # the strict team reader
    assert meta == {"model": "SIMCOM_SIM7600E", "revision": "LE11B02SIM7600M21-A",
                    "baud": "115200", "source": "modemsim"}
    assert b"".join(r[3] for r in records if r[1] == "<") == sent[0]
    assert b"".join(r[3] for r in records if r[1] == ">") == b"ATE0\rAT+CSQ\r"
    assert [r[3] for r in records][-2:] == [b"\r\n+CSQ: 23,99\r\n", b"\r\nOK\r\n"]


MP_CLIENT = '''
import socket, sys
s = socket.socket()
s.connect(socket.getaddrinfo("127.0.0.1", int(sys.argv[1]))[0][-1])
s.settimeout(10)
def until(marker):
    buf = b""
    while marker not in buf:
        d = s.recv(256)
        if not d:
            break
        buf += d
    return buf
out = [until(b"PB DONE\\r\\n")]
s.send(b"ATE0\\r")
out.append(until(b"OK\\r\\n"))
s.send(b"AT+CMQTTSTART\\r")
out.append(until(b"+CMQTTSTART: 0\\r\\n"))
s.close()
print(repr(b"|".join(out)))
'''


def test_micropython_unix_port_uses_the_socket_as_its_uart(tmp_path):
    mp = os.path.join(ROOT, ".venv", "bin", "micropython")
    script = tmp_path / "mp_client.py"
    script.write_text(MP_CLIENT)

    async def t():
        sim = ModemSim(persona="SIM7600E")        # realistic pacing, latency and boot delay
        port = await sim.start()
        try:
            p = await asyncio.create_subprocess_exec(mp, str(script), str(port),
                                                     stdout=subprocess.PIPE)
            try:
                out, _ = await asyncio.wait_for(p.communicate(), 30)
            finally:
                if p.returncode is None:
                    p.kill()
                    await p.wait()
        finally:
            await sim.stop()
        return out
    out = run(t())
    assert out.strip() == repr(b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n\r\nPB DONE\r\n|"
                               b"ATE0\r\r\nOK\r\n|\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n").encode()
