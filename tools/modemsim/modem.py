"""The simulated module: state, the command-line engine, prompts, URCs, boot and reboot.

Owns the byte-level behaviour common to every command (manual 003 ch.2 and V.250):
echo of the command line (ATE), one command at a time, information lines framed
CR LF, final OK / ERROR / +CME ERROR per AT+CMEE, the '>' data prompt with an exact
byte count, URCs as CR LF <line> CR LF, boot URCs after power-on and after
AT+CRESET.  Command handlers live in the cmd_* modules; faults in faults.py.
"""

import asyncio
import time

from . import cmd_basic, cmd_cmqtt, cmd_gnss, cmd_sm, cmd_ssl
from .atcmd import AtError, final_error, frame_lines, parse_line
from .personas import OLD_FIRMWARE_REVISION, persona

HANDLERS = {}
for _mod in (cmd_basic, cmd_ssl, cmd_cmqtt, cmd_sm, cmd_gnss):
    _mod.register(HANDLERS)

PROMPT_TIMEOUT_S = 60.0   # how long a '>' prompt waits for its data before ERROR


class State:
    """Everything a reboot resets (certificates survive: they live in flash)."""

    def __init__(self, p):
        self.echo = True                 # V.250 default E1 (manual 003 2.2.6)
        self.cmee = 0
        self.reg_urc = {"+CREG": 0, "+CGREG": 0, "+CEREG": 0}
        self.cfun = 1
        self.net_down = False            # a network-drop fault is active
        self.netopen = False
        self.sapbr_open = False
        self.cnact = False
        self.apn = ""
        self.cntp = ("", 0)
        self.cmqtt_started = False
        self.mqtt = [cmd_cmqtt.Slot(), cmd_cmqtt.Slot()]
        self.sm = cmd_sm.SmState()
        self.gnss_on = False
        self.gnss_on_at = 0.0
        self.gnss_report_s = 0
        self.settings = {}

    def registered(self):
        return self.cfun == 1 and not self.net_down


class Modem:
    """One module on one byte stream.  `send` is the sink for bytes towards the host."""

    def __init__(self, persona_name, send, opts, scenario=None, gnss=None):
        self.persona_name = persona_name
        self.p = persona(persona_name)
        self.send_raw = send
        self.opts = opts                 # SimOptions (server.py)
        self.fast = opts.fast
        self.certs = {}                  # name -> bytes (AT+CCERTDOWN)
        self.ssl_ctx = [cmd_ssl.default_ctx() for _ in range(10)]
        self.st = State(self.p)
        self.commands = []               # every command text received, in order
        self.command_count = 0
        self.log = []                    # (monotonic, 'urc'|'cmd', text), recent entries
        self.log_dropped = 0             # entries trimmed from the front of log
        self.booting = True
        self.rx = bytearray()
        self._rx_event = asyncio.Event()
        self._tasks = set()
        self._after = []
        self._results = set()            # result tasks of answered commands (reboot ends them)
        self._inject = None              # (urc bytes, offset) for the next response
        self.old_firmware = False
        self.byte_per_write = False
        self.echo_forced = False
        self.stall_until = 0.0
        self.slow_extra = 0.0
        self.scenario = scenario         # faults.Scenario or None
        self.gnss = gnss                 # gnss.Track
        self.t0 = time.monotonic()

    def make_bridge(self, slot, i, client_id, version, clean):
        """A broker connection for CMQTT client i (or the SM client when i < 0)."""
        from .mqttbridge import BridgeClient
        rtt = self.opts.net_rtt
        if i < 0:
            return BridgeClient(client_id, version, clean,
                                on_message=lambda t, p, q, r, mid: cmd_sm.on_message(
                                    self, t, p, mid),
                                on_lost=lambda: cmd_sm.on_lost(self), net_rtt=rtt)
        return BridgeClient(client_id, version, clean,
                            on_message=lambda t, p, q, r, mid: cmd_cmqtt.on_message(
                                self, i, t, p),
                            on_lost=lambda: cmd_cmqtt.on_lost(self, i, slot), net_rtt=rtt)

    # -- identity ------------------------------------------------------------
    def revision(self):
        return OLD_FIRMWARE_REVISION if self.old_firmware else self.p["cgmr"]

    def has(self, family):
        return family in self.p["families"]

    # -- output ----------------------------------------------------------------
    def send(self, data):
        self.send_raw(bytes(data))

    def urc(self, line):
        """An unsolicited result code, framed CR LF line CR LF."""
        self.note("urc", line)
        self.send(b"\r\n" + (line.encode("latin-1") if isinstance(line, str) else line)
                  + b"\r\n")

    def note(self, kind, text):
        """Remember a command or URC (bounded: a long demo must not grow without end)."""
        self.log.append((time.monotonic(), kind, text))
        if len(self.log) > 20000:
            del self.log[:10000]
            self.log_dropped += 10000
        if len(self.commands) > 20000:
            del self.commands[:10000]

    def after_final(self, fn):
        """Run coroutine function fn after this command's final result has been sent."""
        self._after.append(fn)

    def spawn(self, coro):
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    def inject_next(self, urc, offset=None):
        self._inject = (b"\r\n" + urc.encode() + b"\r\n", offset)

    async def delay(self, seconds):
        if not self.fast and seconds > 0:
            await asyncio.sleep(seconds)

    # -- input -------------------------------------------------------------------
    def feed(self, data):
        self.rx += data
        self._rx_event.set()

    async def _wait_rx(self, timeout=None):
        self._rx_event.clear()
        if timeout is None:
            await self._rx_event.wait()
        else:
            await asyncio.wait_for(self._rx_event.wait(), timeout)

    async def read_line(self):
        """Next command line without its CR; a lone LF after CR is dropped."""
        while True:
            while self.rx[:1] == b"\n":
                del self.rx[0]
            i = self.rx.find(b"\r")
            if i >= 0:
                line = bytes(self.rx[:i])
                del self.rx[:i + 1]
                return line
            await self._wait_rx()

    async def read_exact(self, n, timeout=PROMPT_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while len(self.rx) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError
            await self._wait_rx(left)
        data = bytes(self.rx[:n])
        del self.rx[:n]
        return data

    async def prompt(self, n):
        """Send the '>' prompt and take exactly n bytes (echoed when echo is on)."""
        self.send(self.p["prompt"])
        try:
            data = await self.read_exact(n)
        except asyncio.TimeoutError:
            raise AtError() from None
        if self.echo_on():
            self.send(data)
        return data

    def echo_on(self):
        return self.st.echo or self.echo_forced

    # -- lifecycle -----------------------------------------------------------------
    async def run(self):
        await self.boot()
        while True:
            line = await self.read_line()
            if self.booting:
                continue                              # a booting module hears nothing
            now = time.monotonic()
            if now < self.stall_until:
                continue                              # stalled: line lost, no echo
            await self.process(line)

    async def boot(self):
        self.booting = True
        await self.delay(self.opts.boot_delay)
        self.rx.clear()
        self.booting = False
        for line in self.p["boot"]:
            self.urc(line)
            await self.delay(0.05)
        if self.scenario is not None:
            self.scenario.on_boot(self)

    def reboot(self, delay=0.0):
        """Power cycle: drop MQTT sessions, forget RAM state, boot URCs again."""
        for slot in self.st.mqtt:
            slot.abort_silently()
        self.st.sm.abort_silently()
        me = asyncio.current_task()
        for t in list(self._results):          # a rebooted module reports no old results
            if t is not me:
                t.cancel()
        self.st = State(self.p)
        # the UART comes back at the saved speed (AT+IPR is NO_SAVE, 003 s.8.2.3)
        self.send_raw(cmd_basic.baud_switch(getattr(self.opts, "baud_saved", 0)))
        if self.gnss is not None:
            self.gnss.power(False)
        self.booting = True
        self.rx.clear()

        async def later():
            await self.delay(delay)
            await self.boot()

        self.spawn(later())

    async def close(self):
        for slot in self.st.mqtt:
            slot.abort_silently()
        self.st.sm.abort_silently()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass

    # -- one command line ---------------------------------------------------------
    async def process(self, raw):
        text = raw.decode("latin-1")
        if self.echo_on():
            self.send(raw + b"\r")
        cmds = parse_line(text.strip())
        if cmds is None:
            return                                    # not an AT line: ignored
        self.command_count += 1
        self.commands.append(text.strip())
        self.note("cmd", text.strip())
        fired = self.scenario.before_command(self, text.strip()) if self.scenario else None
        if fired == "drop":
            return
        if isinstance(fired, bytes):          # a fault answers in the command's place
            self.send(fired)
            return
        await self.delay(self.opts.latency)
        if self.slow_extra > 0:
            await asyncio.sleep(self.slow_extra)
        lines = []
        self._after = []
        result = b"\r\nOK\r\n"
        for cmd in cmds:
            try:
                if fired == "busy":
                    raise AtError(lines=[cmd_cmqtt.busy_line(cmd)])
                out = await self.dispatch(cmd)
                if out:
                    lines.extend(out)
            except AtError as e:
                lines.extend(e.lines)
                result = final_error(e, self.st.cmee)
                self._after = []
                break
        resp = frame_lines(lines) + result
        if self._inject is not None:
            urc, off = self._inject
            self._inject = None
            if off == "final":                # at the line boundary before the final result
                off = len(resp) - len(result)
            off = len(resp) // 2 if off is None else max(0, min(off, len(resp)))
            resp = resp[:off] + urc + resp[off:]
        self.send(resp)
        after, self._after = self._after, []
        for fn in after:
            t = self.spawn(fn())
            self._results.add(t)
            t.add_done_callback(self._results.discard)
        if self.scenario:
            self.scenario.after_command(self, text.strip())

    async def dispatch(self, cmd):
        h = HANDLERS.get(cmd.name)
        if h is None or cmd.kind == "bad":
            raise AtError()                           # unknown command: plain ERROR
        fam = getattr(h, "family", None)
        if fam and not self.has(fam):
            raise AtError()
        return await h(self, cmd)
