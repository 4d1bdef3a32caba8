"""The telelogger application: wiring and lifetime.  ``run()`` is what main.py calls.

Owns the order things are built and started in.  Board file and config first
(a bad key stops the boot with the key's name), then the flash data (spool,
sequence numbers), the modem stream, ``Engine`` -> ``Modem`` -> family driver
(``cmqtt`` or ``sm`` by the board) and, once the device id is known (config
``device_id``, else the IMEI), ``MQTTClient``.  Tasks: AT reader, acquisition
(sampler, modem poller, OBD, NMEA), link (bring-up and first connect, retried
with backoff while sampling goes on), MQTT supervisor, uplink, status,
commands, health, watchdog.  The unix port stops cleanly on SIGINT or after
``TLOG_SECONDS``: records staged in RAM are flushed, "offline" is published
(retained) and the MQTT session closed.
"""

import asyncio
import gc

from atmq import board as _board
from atmq.compat import sleep_ms
from atmq.engine import Engine
from atmq import errtab
from atmq.errors import ModemError
from atmq.events import EventQueue
from atmq.inbox import Inbox
from atmq.modem import Modem, reg_ok

from . import config as _config
from . import fsutil, platform
from .acquire import Acquisition, NmeaReader
from .capture import Capture
from .commands import Commands
from .health import Health
from .motion import Motion
from .seqno import SeqNo
from .spool import from_config as _spool_from_config
from .status import Status, Topics, will
from .timesrc import TimeSource
from .uplink import Uplink
from .watchdog import ReaderProbe, Watchdog

_LINK_BACKOFF_MIN_MS = 5000
_LINK_BACKOFF_MAX_MS = 300000  # the anchor blocks 180 s after a failed attach; we keep sampling
_REG_WAIT_MS = 180000
_FATAL_RETRY_MS = 1800000


def log(*args):
    print("[tlog]", *args)


def client_config(cfg, topics, dev, will_retain=False, has_will=True):
    """The ``atmq.client`` config dict from the telelogger config.

    ``will_retain``: the driver can make the will retained (SM family SIM70x0; CMQTT
    cannot, manual 16.2.7); ``has_will``: False for the SIM800 (SMCONF has no will,
    seed 004 3.1), where "offline" is only published on a clean stop.
    """
    user = cfg.get("mqtt_user") or None
    c = {
        "host": cfg.get("mqtt_host"),
        "port": cfg.get("mqtt_port"),
        "client_id": cfg.get("mqtt_client_id") or dev,
        "keepalive_s": cfg.get("mqtt_keepalive_s"),
        "user": user,
        "password": (cfg.get("mqtt_password") or None) if user else None,
        "will": will(topics, will_retain) if has_will else None,
        "tls": None,
        "subscriptions": [(topics.cmd, 1)],
        "qos": cfg.get("mqtt_qos"),
    }
    if cfg.get("mqtt_tls"):
        c["tls"] = {"cacert": cfg.get("tls_ca") or None,
                    "clientcert": cfg.get("tls_cert") or None,
                    "clientkey": cfg.get("tls_key") or None,
                    "port": cfg.get("mqtt_port")}
    return c


def _retry_ms(e, backoff):
    """How long until the next link attempt after ``e``: 0 = never (no retry can help:
    a modem firmware that lacks a feature, a bad setting), a slow retry for other FATAL
    modem errors (no SIM, credentials refused: fixed by a person, not by hammering)."""
    if isinstance(e, ModemError):
        if getattr(e, "remedy", None) is not None:  # tls.FirmwareError: upgrade needed
            return 0
        return _FATAL_RETRY_MS if e.cls == errtab.FATAL else backoff
    if isinstance(e, (ValueError, TypeError)):  # ConfigError is a ValueError
        return 0
    return backoff


def _driver(family, model, at, events, inbox):
    """The MQTT driver of the board's modem family (imported only when used: RAM)."""
    if family == "cmqtt":
        from atmq.cmqtt import CMQTTDriver

        return CMQTTDriver(at, events, inbox)
    from atmq import smmqtt  # the SM family (SIM800, SIM7000/7070/7080)

    return smmqtt.SMDriver(at, events, inbox, variant=smmqtt.variant_for(model))


def motion_from(cfg):
    st = cfg.get("stationary_after_s") * 1000
    return Motion(moving_ms=cfg.get("interval_moving_s") * 1000,
                  table=((st, cfg.get("interval_stationary_s") * 1000),),
                  standby_after_ms=cfg.get("standby_after_s") * 1000)


class App:
    """Everything of one run; built without talking to the modem (that is ``link``'s job)."""

    def __init__(self, opts):
        self.opts = opts
        self.board = b = _board.load(opts["board"])
        self.root = platform.flash_root(b, opts.get("flash"))
        fsutil.makedirs(self.root)
        self.cfg = cfg = _config.load(opts.get("config") or self.root + "/config.json")
        self.timesrc = TimeSource()
        self.stopping = asyncio.Event()
        self.exit_code = 0
        self.link_attempts = 0
        self.link_errors = 0
        self.last_link_error = None
        self._tasks = []
        self._reader = None
        self.dev = None
        self.topics = None
        self.client = self.status = self.commands = self.health = None
        self.spool = _spool_from_config(self.root + "/spool", cfg)
        # the spool's highest seq is the floor: a lost lease file never restarts numbering
        # below records the broker has seen or will see (it would drop them as duplicates)
        self.seq = SeqNo(self.root + "/seqno", floor=self.spool.max_seq)
        if self.seq.recovered:
            log("seqno lease lost: numbering resumes at %d" % self.seq.peek())
        fam = b["modem"]["family"] or "cmqtt"
        stream = platform.open_stream(b["uart"], opts.get("modem"))
        self.at = at = Engine(stream)
        self.events = EventQueue(32)
        self.inbox = Inbox(4, 128, 1024)
        self.modem = Modem(at, self.events, board=b, family=fam,
                           pin_factory=platform.pin_factory(), pin=cfg.get("sim_pin") or None,
                           apn=cfg.get("apn") or None, apn_user=cfg.get("apn_user") or None,
                           apn_password=cfg.get("apn_pass") or None)
        self.driver = _driver(fam, b["modem"]["model"], at, self.events, self.inbox)
        self.wd = Watchdog(platform.hw_watchdog(cfg.get("watchdog_timeout_s") * 1000))
        self.elm = None
        if cfg.get("obd_enable") and b["obd"] is not None:
            try:
                from .obd import Elm327

                self.elm = Elm327(platform.open_stream(b["obd"]["uart"]))
            except OSError as e:  # no adapter (unix: no emulator listening): sample without
                log("OBD not available:", e)
        nmea = None
        if cfg.get("gnss_source") == "external" and b["gnss"]["uart"] is not None:
            nmea = NmeaReader(platform.open_stream(b["gnss"]["uart"]))
        self.uplink = Uplink(self.spool, cfg, None, "", wd=self.wd)
        self.link_up = asyncio.Event()
        self.acq = Acquisition(cfg, self.spool, self.seq, self.timesrc, motion_from(cfg),
                               modem=self.modem, elm=self.elm, nmea=nmea,
                               temp=platform.device_temp_dc, wd=self.wd,
                               on_record=self.uplink.wake.set, link_up=self.link_up)
        self.capture = Capture(at, cfg, self.root + "/capture", meta=self._capture_meta)
        self.ota = None  # tlog/ota.py: loaded when an update is pending on flash or arrives
        self._ota_pending = any(fsutil.exists(self.root + "/ota/" + n)
                                for n in ("probation", "result", "offer"))
        if cfg.get("device_id"):
            self._set_identity(cfg.get("device_id"))

    # ---- context used by commands / health ------------------------------------------------

    def uptime_s(self):
        return self.timesrc.uptime_s()

    def heap_free(self):
        gc.collect()  # a health report every few minutes: the real free heap, not garbage
        return platform.heap_free()

    def apply(self, keys):
        """Live keys changed by a ``set`` command: make them take effect now."""
        done = []
        for k in keys:
            if k in ("interval_moving_s", "interval_stationary_s", "stationary_after_s",
                     "standby_after_s"):
                m = motion_from(self.cfg)
                mo = self.acq.motion
                mo.moving_ms = m.moving_ms
                mo.table = m.table
                mo.standby_after_ms = m.standby_after_ms
            elif k == "batch_max_bytes":
                self.uplink.resize()
            elif k == "mqtt_qos" and self.client is not None:
                self.client.cfg["qos"] = self.cfg.get("mqtt_qos")
            elif k == "capture_enable":
                if self.cfg.get(k):
                    self.capture.start()
                else:
                    self.capture.stop()
            elif k == "spool_flush_records":
                self.spool.flush_records = self.cfg.get(k)
            elif k == "topic_prefix":
                continue  # topics are fixed for the session: they change at the next boot
            # the rest (health_interval_s, payload_format, batch_max_records, capture
            # sizes) is read from cfg where it is used
            done.append(k)
        return done

    async def reboot(self):
        log("reboot requested")
        await self.shutdown(online=False)
        platform.reset()

    def _capture_meta(self):
        f = self.modem.facts
        return {"model": f.get("model"), "revision": f.get("revision"),
                "baud": self.board["uart"]["baud"], "source": "tlog capture"}

    def _set_identity(self, dev):
        self.dev = dev
        self.topics = Topics(self.cfg.get("topic_prefix"), dev)
        self.uplink.bind(None, self.topics.telemetry, dev)
        if self.ota is not None:
            self.ota.bind(self.topics.base)

    def _ota(self):
        """The OTA task (tlog/ota.py, issue 15), imported on first need: its ~10 KB of code
        stay out of RAM until an update is pending on flash or a message arrives."""
        if self.ota is None:
            from .ota import Ota

            self.ota = o = Ota(self, self.root, self.board["name"],
                               "b64" if self.modem.family == "sm" else "bin",
                               self.inbox.payload_max, self.at.tok.line_max)
            if self.topics is not None:
                o.bind(self.topics.base)
            self._tasks.append(asyncio.create_task(o.run()))
        return self.ota

    async def _ota_message(self, topic, payload):
        if self.topics is None or bytes(topic) != (self.topics.base + "ota").encode():
            return False
        return await self._ota().handle(topic, payload)

    # ---- link -------------------------------------------------------------------------------

    async def _modem_up(self, first):
        m = self.modem
        if first:
            return await m.bring_up(_REG_WAIT_MS)
        if not await m.probe(3):  # off or hung: power it (no blind pulse to a live module)
            await m.power_on()
            await m.wait_ready(30000)
        if not m.inited:
            await m.init()
        st = await m.sim_state()
        if st != "READY":
            raise ModemError("CME", 10 if st == "NOT INSERTED" else 13, b"AT+CPIN?")
        for _ in range(_REG_WAIT_MS // 2000):
            if reg_ok(await m.registration()):
                break
            await sleep_ms(2000)
        else:
            raise ModemError("CME", 30, b"AT+CEREG?")
        if not m.data_open:
            await m.data_up()

    def _make_client(self):
        """The MQTT client and the session tasks' objects (once the device id is known)."""
        from atmq.client import MQTTClient

        topics = self.topics
        if topics is None:
            raise ValueError("no device id yet")
        sm = self.modem.family == "sm"
        sim800 = sm and getattr(self.driver, "sim800", False)
        ccfg = client_config(self.cfg, topics, self.dev, sm, not sim800)
        ccfg["subscriptions"].append((topics.base + "ota", 1))  # update offers and chunks
        c = MQTTClient(self.modem, self.driver, self.events, self.inbox, ccfg)
        up = self.uplink
        up.bind(c, topics.telemetry, self.dev)
        cap = getattr(self.driver, "payload_max", 0)
        if sim800:
            # SIM800 publishes inline in quotes (seed 004 3.5): no '"' (so no JSON) and the
            # whole AT+SMPUB="<topic>",1,0,"<payload>" within the engine's tx_max
            up.forced_format = "freematics"
            cap = min(cap, self.at.tx_max - 20 - len(topics.telemetry))
            log("SIM800: telemetry in the freematics format, at most %d bytes per publish"
                % cap)
        up.payload_cap = cap
        up.resize()
        st = Status(topics, c)
        cm = Commands(self, topics, c)
        cm.other = self._ota_message
        he = Health(self, topics, c)
        self.client, self.status, self.commands, self.health = c, st, cm, he
        return c, st, cm, he

    async def link(self):
        """Bring-up and first connect, retried with a growing backoff; then the session tasks."""
        backoff = _LINK_BACKOFF_MIN_MS
        wd = self.wd
        made = None
        while True:
            wd.beat("link")
            self.link_attempts += 1
            try:
                await self._modem_up(self.link_attempts == 1)
                if self.dev is None:
                    imei = self.modem.facts.get("imei")
                    if not imei:
                        raise ModemError("AT", -1, b"AT+CGSN")  # no id to publish under
                    self._set_identity(imei)
                if not self.cfg.get("mqtt_host"):
                    log("mqtt_host is empty: sampling only, records stay in the spool")
                    while True:
                        wd.beat("link")
                        await sleep_ms(10000)
                if made is None:
                    made = self._make_client()
                await made[0].connect()
                break
            except Exception as e:  # modem, SIM, network, broker: log, back off, try again
                self.link_errors += 1
                self.last_link_error = e
                wait = _retry_ms(e, backoff)
                if wait == 0:
                    # no retry can help: say it once, keep sampling into the spool, and
                    # leave the modem alone
                    log("link attempt %d failed, not retrying: %s: %s"
                        % (self.link_attempts, type(e).__name__, e))
                    while True:
                        wd.beat("link")
                        await sleep_ms(10000)
                log("link attempt %d failed: %s: %s; next in %d s"
                    % (self.link_attempts, type(e).__name__, e, wait // 1000))
                while wait > 0:  # beat while waiting: a long wait is not a stuck task
                    wd.beat("link")
                    await sleep_ms(min(wait, 10000))
                    wait -= 10000
                backoff = min(backoff * 2, _LINK_BACKOFF_MAX_MS)
        log("connected as", self.dev)
        c, st, cm, he = made
        for coro in (c.run(), st.run(), cm.run(), he.run(), self._link_state(c)):
            self._tasks.append(asyncio.create_task(coro))
        while True:
            wd.beat("link")
            await sleep_ms(10000)

    async def _link_state(self, c):
        ev = self.link_up
        while True:
            await c.up.wait()
            ev.set()
            await c.down.wait()
            ev.clear()

    # ---- run / stop -------------------------------------------------------------------------

    async def main(self):
        at = self.at
        wd = self.wd
        reader = asyncio.create_task(at.run())
        self._reader = reader
        wd.register("reader", 600000, ReaderProbe(at, reader))
        ivmax = max(self.cfg.get("interval_moving_s"), self.cfg.get("interval_stationary_s"), 10)
        wd.register("acquire", 60000 + 3000 * ivmax)
        wd.register("modem_poll", 600000)
        wd.register("uplink", 600000)
        wd.register("link", 900000)
        self._tasks.append(reader)
        for coro in self.acq.tasks():
            self._tasks.append(asyncio.create_task(coro))
        self._tasks.append(asyncio.create_task(self.uplink.run()))
        self._tasks.append(asyncio.create_task(self.link()))
        if self._ota_pending:
            self._ota()
        self._tasks.append(asyncio.create_task(wd.run(1000)))
        if self.opts.get("stdin_stop"):
            self._tasks.append(asyncio.create_task(self._stdin_stop()))
        if self.cfg.get("capture_enable"):
            self.capture.start()
        self._tasks.append(asyncio.create_task(self._capture_idle()))
        secs = self.opts.get("seconds") or 0
        log("running: board %s, flash %s, seconds %s"
            % (self.board["name"], self.root or "/", secs))
        if secs:
            try:
                await asyncio.wait_for(self.stopping.wait(), secs)
            except asyncio.TimeoutError:
                pass
        else:
            await self.stopping.wait()
        await self.shutdown()
        return self.exit_code

    def stop_now(self):
        """Synchronous last resort: staged records to flash, capture closed."""
        try:
            self.spool.close()
        except OSError as e:
            log("spool close failed:", e)
        self.capture.stop()
        log("interrupted: spool depth %d" % self.spool.depth())

    async def _capture_idle(self):
        """Release the RX bytes the capture holds back once the line is quiet (a no-op
        while capture is off; the engine has no idle hook of its own)."""
        cap = self.capture
        while True:
            await sleep_ms(500)
            if cap.active:
                cap.idle()

    async def _stdin_stop(self):
        await platform.stdin_closed()
        log("stdin closed: stop requested")
        self.stopping.set()

    async def shutdown(self, online=False):
        """Flush the spool, publish "offline" (retained), leave the MQTT session cleanly."""
        log("stopping")
        # Sampling and sending stop first, so nothing is appended after the spool is saved;
        # the reader stays for the last publish and DISCONNECT.
        reader = self._reader
        for t in self._tasks:
            if t is not reader:
                try:
                    t.cancel()
                except Exception:  # the task running this (the reboot command): it ends
                    pass
        self._tasks = [t for t in self._tasks if t is reader]
        try:
            self.spool.close()
        except OSError as e:
            log("spool close failed:", e)
        self.capture.stop()
        c = self.client
        st = self.status
        if c is not None and st is not None and c.isconnected():
            try:
                await asyncio.wait_for(st.announce(online), 10)
                await asyncio.wait_for(c.disconnect(), 10)
            except Exception as e:
                log("clean disconnect failed:", repr(e))
        if reader is not None:
            reader.cancel()
        self._tasks = []
        log("stopped: %d records made, %d sent, spool depth %d"
            % (self.acq.records, self.uplink.sent, self.spool.depth()))


def run():
    """Board entry point (main.py).  Unix port: exits with the app's status."""
    app = App(platform.options())
    try:
        code = asyncio.run(app.main())
    except KeyboardInterrupt:
        # SIGINT on the unix port ends the event loop with it: save what is on flash
        # (no network any more; the Last Will tells the broker).  tools/run_unix.py asks
        # for a clean stop by closing stdin instead (see platform.stdin_closed).
        app.stop_now()
        code = 130
    if not platform.IS_ESP32 and code:
        raise SystemExit(code)
