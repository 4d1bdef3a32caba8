"""Modem simulator: AT+IPR / AT+IPREX (manual 003 s.8.2.3, s.8.2.4) and the line speed.

The simulated UART changes speed after the OK of AT+IPR has left at the old speed,
in both directions; AT+IPR is NO_SAVE (a reboot comes back at the AT+IPREX speed),
AT+IPREX is AUTO_SAVE; the speed survives a host reconnect (an ESP32 reset does not
power-cycle the modem).  Then atmq.baud.switch through the real Engine.
"""

import asyncio
import socket

from modemsim_at import At, run
from sockstream import SockStream

from atmq import baud
from atmq.engine import Engine
from modemsim import ModemSim
from modemsim.cmd_basic import IPR_SPEEDS_003

LIST_003 = b"+IPR: (600,1200,2400,4800,9600,19200,38400,57600,115200,230400,460800)"


def paced_sim(persona="SIM7600E", baud_rate=115200):
    # pacing on (not fast), no per-command latency: the line is what the test times
    return ModemSim(persona=persona, baud=baud_rate, latency=0.0, boot_delay=0.0,
                    pace_input=True, gnss_ttff=0.0)


async def connect(sim):
    r, w = await asyncio.open_connection("127.0.0.1", sim.port)
    at = At(r, w)
    last = sim.modem.p["boot"][-1].encode()  # PB DONE, or APP RDY on the A76xx
    await at.until(last + b"\r\n")
    return at, w


async def timed(at, line, want):
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await at.cmd(line, want)
    return loop.time() - t0


def test_ipr_read_test_write_and_the_line_speed():
    async def t():
        sim = paced_sim()
        await sim.start()
        at, w = await connect(sim)
        try:
            await at.cmd(b"ATE0", b"ATE0\r\r\nOK\r\n")
            await at.cmd(b"AT+IPR?", b"\r\n+IPR: 115200\r\n\r\nOK\r\n")
            await at.cmd(b"AT+IPR=?", b"\r\n" + LIST_003 + b"\r\n\r\nOK\r\n")
            await at.cmd(b"AT+IPR=921600", b"\r\nERROR\r\n")   # not in the SIM7600 list
            await at.cmd(b"AT+IPR=abc", b"\r\nERROR\r\n")
            assert sim.opts.baud == 115200
            # down to 9600: "AT+IPR=?\r" (9 bytes) in and its 80-byte answer out now take
            # at least (9 + 80 - 16) * 10 / 9600 s = 76 ms (the sender hands the last
            # 16-byte piece over before its line time); at 115200 about 8 ms
            await at.cmd(b"AT+IPR=9600", b"\r\nOK\r\n")
            await asyncio.sleep(0.05)
            assert sim.opts.baud == 9600 and [b for _t, b in sim.baud_log] == [9600]
            slow = await timed(at, b"AT+IPR=?", b"\r\n" + LIST_003 + b"\r\n\r\nOK\r\n")
            assert slow >= (9 + len(LIST_003) + 10 - 16) * 10 / 9600 * 0.95, slow
            # input is paced too: ~200 bytes of command line take >= 208 ms at 9600
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await at.cmd(b"AT+CGDCONT=1,\"IP\",\"" + b"a" * 180 + b"\"", b"\r\nOK\r\n")
            assert loop.time() - t0 >= 200 * 10 / 9600 * 0.95
            await at.cmd(b"AT+IPR?", b"\r\n+IPR: 9600\r\n\r\nOK\r\n")
            # a new peer (the host rebooted, the modem did not): same speed
            w.close()
            at, w = await connect_again(sim)
            await at.cmd(b"AT+IPR?", b"\r\n+IPR: 9600\r\n\r\nOK\r\n")
            await at.cmd(b"AT+IPREX?", b"\r\n+IPREX: 115200\r\n\r\nOK\r\n")
            # a reboot comes back at the saved speed (NO_SAVE, 003 s.8.2.3)
            await at.cmd(b"AT+CRESET", b"\r\nOK\r\n")
            await at.until(b"PB DONE\r\n")
            assert sim.opts.baud == 115200
            await at.cmd(b"AT", b"AT\r\r\nOK\r\n")
            await at.cmd(b"AT+IPR?", b"AT+IPR?\r\r\n+IPR: 115200\r\n\r\nOK\r\n")
            # AT+IPREX persists (AUTO_SAVE, s.8.2.4) and applies at once
            await at.cmd(b"AT+IPREX=230400", b"AT+IPREX=230400\r\r\nOK\r\n")
            await asyncio.sleep(0.05)
            assert sim.opts.baud == 230400
            await at.cmd(b"AT+CFUN=1,1", b"AT+CFUN=1,1\r\r\nOK\r\n")
            await at.until(b"PB DONE\r\n")
            await at.cmd(b"AT+IPR?", b"AT+IPR?\r\r\n+IPR: 230400\r\n\r\nOK\r\n")
            await at.cmd(b"AT+IPREX", b"AT+IPREX\r\r\nOK\r\n")  # exec: back to 115200
            await at.cmd(b"AT+IPREX?", b"AT+IPREX?\r\r\n+IPREX: 115200\r\n\r\nOK\r\n")
        finally:
            w.close()
            await sim.stop()
    run(t())


async def connect_again(sim):
    r, w = await asyncio.open_connection("127.0.0.1", sim.port)
    return At(r, w), w


def test_a7600_lists_921600():
    async def t():
        sim = paced_sim("A7600")
        await sim.start()
        at, w = await connect(sim)
        try:
            await at.cmd(b"AT+IPR=?", b"AT+IPR=?\r\r\n+IPR: (300,600,1200,2400,4800,9600,"
                         b"19200,38400,57600,115200,230400,460800,921600,3000000,3200000,"
                         b"3686400)\r\n\r\nOK\r\n")
            await at.cmd(b"AT+IPR=921600", b"AT+IPR=921600\r\r\nOK\r\n")
            await asyncio.sleep(0.05)
            assert sim.opts.baud == 921600
        finally:
            w.close()
            await sim.stop()
    run(t())


def test_switch_against_the_simulator():
    """atmq.baud.switch through the real Engine: SIM7600E ends at 460800 (its list),
    A7600 at 921600; nothing saved (no AT+IPREX)."""
    async def one(persona, want):
        sim = paced_sim(persona)
        port = await sim.start()
        sock = socket.create_connection(("127.0.0.1", port))
        at = Engine(SockStream(sock))
        reader = asyncio.create_task(at.run())
        try:
            await asyncio.sleep(0.3)  # boot URCs
            got = await baud.switch(at, want)
            await at.cmd(b"AT")
            return got, sim.opts.baud, list(sim.commands)
        finally:
            reader.cancel()
            sock.close()
            await sim.stop()

    async def t():
        got, line, cmds = await one("SIM7600E", 921600)
        assert (got, line) == (460800, 460800)
        assert cmds == ["AT+IPR=?", "AT+IPR=460800", "AT", "AT"]
        got, line, cmds = await one("A7600", 921600)
        assert (got, line) == (921600, 921600)
        assert not any("IPREX" in c for c in cmds)
        assert max(IPR_SPEEDS_003) == 460800
    run(t())
