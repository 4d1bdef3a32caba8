"""ModemSim: the library API and the transports (TCP on 127.0.0.1, optional pty).

Owns the link between one Modem and the host: a TCP listener (one peer at a time,
like a UART), an optional pty, and the output writer that paces bytes at the baud
rate (10 bits per byte) or one byte per write under that fault.  The module keeps
its state across reconnects (an ESP32 reset does not power-cycle the modem); it
powers on (boot URCs) when the first peer connects.
"""

import asyncio
import os

from .cmd_basic import BaudSwitch
from .faults import Scenario
from .gnss import Track, load_track
from .modem import Modem
from .personas import persona


class SimOptions:
    def __init__(self, fast=False, baud=115200, latency=None, boot_delay=None, broker=None,
                 broker_tls=None, rx_chunk=1024, pace_input=False, net_rtt=0.0):
        self.fast = fast
        self.net_rtt = net_rtt  # added to each qos >= 1 publish's wait for PUBACK
        self.baud = baud  # the line's speed now (AT+IPR changes it: cmd_basic)
        self.baud_saved = baud  # the power-on speed (AT+IPREX, survives a reboot)
        # host -> modem bytes reach the modem no faster than the line carries them (TCP)
        self.pace_input = pace_input and not fast and baud > 0
        self.latency = (0.0 if fast else 0.02) if latency is None else latency
        self.boot_delay = (0.0 if fast else 0.5) if boot_delay is None else boot_delay
        self.broker = broker
        self.broker_tls = broker_tls
        self.rx_chunk = rx_chunk

    def map_server(self, tls, host, port):
        """The modem's server address -> where the simulator really connects."""
        if tls and self.broker_tls:
            return self.broker_tls
        if not tls and self.broker:
            return self.broker
        if tls and self.broker and not self.broker_tls:
            return self.broker
        return (host, port)


class LinePace:
    """One direction of a UART at ``baud`` (10 bits a byte): ``carry(n)`` returns when the
    line has carried ``n`` more bytes.  Paced by deadlines, not a sleep per piece, so the
    scheduler's overhead does not make the line slower than its baud rate."""

    def __init__(self, baud):
        self.baud = baud
        self.free = 0.0  # loop time at which the line has carried everything so far

    def idle(self):
        """New bytes after a pause: the line starts from now, not from the last deadline."""
        self.free = max(self.free, asyncio.get_running_loop().time())

    async def carry(self, n):
        if self.baud <= 0:
            return
        self.free += n * 10.0 / self.baud
        wait = self.free - asyncio.get_running_loop().time()
        if wait > 0:
            await asyncio.sleep(wait)


class ModemSim:
    """A simulated SIMCom module on a TCP port (and optionally a pty).

    sim = ModemSim(persona="SIM7600E", broker=("127.0.0.1", 1883),
                   broker_tls=("127.0.0.1", 8883), scenario="faults.json", fast=True)
    port = await sim.start(); ...; await sim.stop()
    """

    def __init__(self, persona="SIM7600E", broker=None, broker_tls=None, scenario=None,
                 fast=False, baud=115200, latency=None, boot_delay=None, host="127.0.0.1",
                 port=0, pty=False, track=None, gnss_clock=None, gnss_ttff=None, rx_chunk=1024,
                 record=None, pace_input=False, net_rtt=0.0):
        persona_check(persona)
        self.persona = persona
        self.host, self.port = host, port
        self.use_pty = pty
        self.pty_path = None
        self.opts = SimOptions(fast=fast, baud=baud, latency=latency, boot_delay=boot_delay,
                               broker=broker, broker_tls=broker_tls, rx_chunk=rx_chunk,
                               pace_input=pace_input, net_rtt=net_rtt)
        self.scenario = None if scenario is None else Scenario(scenario)
        if isinstance(track, str):
            track = load_track(track)
        ttff = (0.0 if fast else 2.0) if gnss_ttff is None else gnss_ttff
        self.track = Track(track, clock=gnss_clock, ttff=ttff)
        self._out = asyncio.Queue()     # bytes towards the host, in order
        self.modem = Modem(self.persona, self._send, self.opts, scenario=self.scenario,
                           gnss=self.track)
        self._server = None
        self._writer = None             # current TCP peer's StreamWriter
        self._tasks = []
        self._pty_fds = None
        self._powered = False
        self.record_path = record       # .atx transcript of the session, or None
        self.recorder = None
        self.sent = bytearray()         # bytes sent towards the host (last 1-2 MiB)
        self.write_sizes = []           # size of each transport write, last 4096 (for tests)
        self.baud_log = []              # (loop time, baud) of each AT+IPR/IPREX/reboot switch
        self._lines = []                # the LinePace of each direction (the speed changes)

    # -- introspection --------------------------------------------------------------
    @property
    def commands(self):
        """Command lines received, in order (e.g. 'AT+CMQTTSTART')."""
        return list(self.modem.commands)

    def mqtt_state(self, index=0):
        """State of CMQTT client index as a dict."""
        s = self.modem.st.mqtt[index]
        return {"started": self.modem.st.cmqtt_started, "acquired": s.acquired,
                "client_id": s.client_id, "state": s.state,
                "server": s.server[0] if s.server else None,
                "published": list(s.published), "will": (s.will_topic, s.will_msg)}

    def sm_state(self):
        sm = self.modem.st.sm
        return {"connected": sm.connected, "conf": dict(sm.conf), "published": list(sm.published)}

    @property
    def certs(self):
        return dict(self.modem.certs)

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self):
        if self.record_path:
            from .record import Recorder
            self.recorder = Recorder(self.record_path, self.modem.p["model"],
                                     self.modem.revision(), self.opts.baud)
        self._server = await asyncio.start_server(self._on_client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._tasks.append(asyncio.ensure_future(self._write_loop()))
        if self.use_pty:
            self._open_pty()
            self._power_on()
        return self.port

    def _power_on(self):
        if not self._powered:
            self._powered = True
            self._tasks.append(asyncio.ensure_future(self.modem.run()))

    async def stop(self):
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        await self.modem.close()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        self._tasks = []
        if self._pty_fds is not None:
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._pty_fds[0])
            for fd in self._pty_fds:
                os.close(fd)
            self._pty_fds = None
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.stop()

    # -- transports ---------------------------------------------------------------------
    async def _on_client(self, reader, writer):
        if self._writer is not None:                  # a UART has one peer: newest wins
            self._writer.close()
        self._writer = writer
        self._power_on()
        try:
            line = LinePace(self.opts.baud) if self.opts.pace_input else None
            if line is not None:
                self._lines.append(line)
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                if line is None:
                    self._feed(data)
                    continue
                # Hand the bytes on as they would have arrived, 16 at a time (the socket
                # buffer hides the line rate from the sender; the answers that follow
                # do not).
                line.idle()
                for k in range(0, len(data), 16):
                    piece = data[k:k + 16]
                    await line.carry(len(piece))
                    self._feed(piece)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if line is not None and line in self._lines:
                self._lines.remove(line)
            if self._writer is writer:
                self._writer = None
            writer.close()

    def _open_pty(self):
        import tty
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._pty_fds = (master, slave)
        self.pty_path = os.ttyname(slave)
        loop = asyncio.get_running_loop()

        def readable():
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if data:
                self._feed(data)
        loop.add_reader(master, readable)

    def _feed(self, data):
        if self.recorder is not None:
            self.recorder.tx(data)
        self.modem.feed(data)

    def _send(self, data):
        self._out.put_nowait(data)

    async def _write_loop(self):
        line = LinePace(self.opts.baud) if not self.opts.fast and self.opts.baud else None
        if line is not None:
            self._lines.append(line)
        while True:
            data = await self._out.get()
            if isinstance(data, BaudSwitch):
                # queued behind the OK of AT+IPR (or the last bytes before a reboot): what
                # was queued before went at the old speed, what follows goes at the new one
                self._set_baud(data.baud)
                continue
            self.sent += data
            if len(self.sent) > (1 << 21):
                del self.sent[:1 << 20]  # keep the recent past only (long demos)
            if self.recorder is not None:
                self.recorder.rx(data)
            step = 1 if self.modem.byte_per_write else (len(data) if self.opts.fast else 16)
            if line is not None:
                line.idle()
            for k in range(0, len(data), step):
                chunk = data[k:k + step]
                await self._write(chunk)
                if line is not None:
                    await line.carry(len(chunk))

    def _set_baud(self, baud):
        if baud <= 0 or baud == self.opts.baud:
            return
        self.opts.baud = baud
        self.baud_log.append((asyncio.get_running_loop().time(), baud))
        for line in self._lines:
            line.idle()
            line.baud = baud

    async def _write(self, chunk):
        self.write_sizes.append(len(chunk))
        del self.write_sizes[:-4096]
        w = self._writer
        if w is not None:
            try:
                w.write(chunk)
                await w.drain()
            except (ConnectionError, RuntimeError):
                pass
        if self._pty_fds is not None:
            try:
                os.write(self._pty_fds[0], chunk)
            except OSError:
                pass


def persona_check(name):
    persona(name)
