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

from atmq.compat import const, sleep_ms, ticks_ms, wait_for_ms
from atmq import stack
import atmq.client  # noqa: F401  at boot: every boot connects, and its globals table
# (then a 472-byte block) imported at the first connect failed there at 88K, every attempt
from atmq.limits import variant as _limits_variant
from atmq.link import is_fatal

from . import fieldlog, fsutil, platform
from .acquire import Acquisition, NmeaReader
from .capture import Capture
from .commands import Commands
from .health import Health
from .lastgood import LastGood, boot_config
from .motion import Motion
from .seqno import SeqNo
from .spool import from_config as _spool_from_config
from .status import Status, Topics, will
from .timesrc import TimeSource
from .uplink import Uplink
from .watchdog import DeliveryProbe, ReaderProbe, Watchdog

_LINK_BACKOFF_MIN_MS = const(2000)  # then 4, 8, 16 s...: a short outage costs seconds, not 15 s
# the anchor blocks 180 s after a failed attach; we keep sampling
_LINK_BACKOFF_MAX_MS = const(300000)
_REG_WAIT_MS = const(180000)
# The clean stop's bounds: an AT command in flight may end (it is not cut mid-prompt),
# then the retained "offline" and the DISCONNECT get these (a broker answers in well
# under a second; past them the Last Will says "offline" for us)
_STOP_HOLD_MS = const(2000)
_STOP_DRAIN_MS = const(8000)  # the spool's last records: no new batch after 5 s (_final_drain)
_STOP_ANNOUNCE_MS = const(3000)
_STOP_DISC_MS = const(2000)
_FATAL_RETRY_MS = const(1800000)
_SM_LINE_MAX = const(1024 + 128 + 48)  # message, topic (128: the Inbox's), +SMPUBLISH framing
# Other modules' names used once, off the hot paths, are imported where used and these
# mirrored (folded at compile time): each module global is a slot in a table on the heap
# for the whole boot (issue 11; tests_host/test_const_mirrors.py checks the mirrors)
_ST_FATAL = const(10)  # = atmq.link.ST_FATAL
_DELIVERY_LIMIT_MS = const(3600000)  # = tlog.watchdog.DELIVERY_LIMIT_MS


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
        tv = cfg.get("tls_version")
        if tv and tv != "default":  # a name: atmq.tls maps it to the module's numbering
            c["tls"]["sslversion"] = tv
    return c


def _retry_ms(e, backoff, fatal_ms=_FATAL_RETRY_MS):
    """How long until the next link attempt after ``e``: the link's long fatal backoff for
    what no retry can fix soon (errtab FATAL: no SIM, credentials refused, a firmware that
    lacks a feature, a bad setting: fixed by a person, a ``set`` or a ``reconnect`` ends
    the wait early), else the growing backoff."""
    if is_fatal(e):
        return fatal_ms
    return backoff


def motion_from(cfg):
    st = cfg.get("stationary_after_s") * 1000
    return Motion(moving_ms=cfg.get("interval_moving_s") * 1000,
                  table=((st, cfg.get("interval_stationary_s") * 1000),),
                  standby_after_ms=cfg.get("standby_after_s") * 1000)


def _load_board(path):
    """The validated board dict.  Read once at boot: on MicroPython the module (its schema
    dicts, ~2.4 KB of heap) is dropped afterwards, and so are the documentation keys."""
    from atmq import board

    b = board.load(path)
    for k in ("description", "sources", "notes"):
        b.pop(k, None)
    from atmq.compat import IS_MICROPYTHON

    if IS_MICROPYTHON:
        import sys

        import atmq

        sys.modules.pop("atmq.board", None)
        atmq.__dict__.pop("board", None)
    return b


class App:
    """Everything of one run; built without talking to the modem (that is ``link``'s job)."""

    def __init__(self, opts, level=0, why=None):
        self.opts = opts
        self.board = b = _load_board(opts["board"])
        self.root = platform.flash_root(b, opts.get("flash"))
        fsutil.makedirs(self.root)
        # unbrickable: a config.json that fails boots on the last good one (or defaults)
        self.lastgood = LastGood(self.root)
        self.cfg, self.cfg_source, self.cfg_error = boot_config(
            opts.get("config") or self.root + "/config.json",
            _limits_variant(b["modem"]["family"] or "cmqtt", b["modem"]["model"]),
            self.lastgood, level, why)
        cfg = self.cfg
        if self.cfg_error:
            log("config refused (%s): running on %s" % (self.cfg_error, self.cfg_source))
        self.flog = fieldlog.install(self, self.root, cfg)  # W/E lines to flash, redacted
        gc.collect()  # the checks' garbage gone before the long-lived buffers are placed
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
        # The biggest long-lived buffers first, while the heap is still in one piece: the
        # uplink's payload and the spool's batch and staging buffers.  Allocated later, amid
        # the small objects and garbage of the rest of the boot, a 4 KB buffer found no
        # contiguous room in a 72 KB heap that had 19 KB free (32-bit frozen build).
        self.wd = Watchdog(platform.hw_watchdog(cfg.get("watchdog_timeout_s") * 1000))
        # the uplink reads each batch into the end of its own payload buffer: the spool's
        # batch buffer holds one record (the scan at open), not a second 2-4 KB block
        self.spool = _spool_from_config(self.root + "/spool", cfg, lent=True)
        self.uplink = Uplink(self.spool, cfg, None, "", wd=self.wd)
        # the spool's highest seq is the floor: a lost lease file never restarts numbering
        # below records the broker has seen or will see (it would drop them as duplicates)
        self.seq = SeqNo(self.root + "/seqno", floor=self.spool.max_seq)
        if self.seq.recovered:
            log("seqno lease lost: numbering resumes at %d" % self.seq.peek())
        fam = b["modem"]["family"] or "cmqtt"
        # the modem answers at its power-on speed first; a faster uart.baud is switched to
        # after bring-up (atmq.baud, _link_speed)
        self.link_baud = min(b["uart"]["baud"], 115200)
        stream = platform.open_stream(dict(b["uart"], baud=self.link_baud), opts.get("modem"))
        meter = None
        if opts.get("read_gaps"):  # TLOG_READ_GAPS: the drain bench's read-gap meter (its
            from .readgap import ReadGapMeter  # module only then: 0.5 KB of heap)

            meter = ReadGapMeter(stream, opts["read_gaps"])
        stream = stream if meter is None else meter
        if fam == "sm":
            # SIM800 publishes inline (AT+SMPUB="<topic>",q,r,"<message>") and receives the
            # message inside the +SMPUBLISH line: 1024 bytes each way (seed 004 3.5/3.10)
            # plus the topic and the framing need more than the 600/512-byte defaults
            line_max = _SM_LINE_MAX
        else:
            line_max = None  # the engine's defaults
        # sized from the config: plain commands are small JSON objects (512 bytes each; 4 KB
        # at 1024 was the biggest preallocation of the app), a signed command carrying link
        # credentials (cmd_key) or an OTA chunk (ota_key, 984-byte chunks) needs 1024.  A
        # longer message is dropped and counted (rx_dropped).  Slots: OTA's host keeps 3
        # chunks in flight (tlog/ota.py) + the one being read; commands come one at a time
        # (one answered, one waiting; a burst's overwritten ones are said in "unanswered")
        slot = 1024 if cfg.get("cmd_key") or cfg.get("ota_key") else 512
        # the library's one wiring (atmq.stack, atmq.connect's too), sized from the board and
        # the config: the reader's ring from uart.rxbuf, raw-frame deadlines at the link's
        # baud; the link owner: bring-up, state, fatal parking, operator, network time
        session = stack.parts(
            stream, fam, b["modem"]["model"], b, platform.pin_factory(),
            pin=cfg.get("sim_pin") or None, apn=cfg.get("apn") or None,
            apn_user=cfg.get("apn_user") or None, apn_password=cfg.get("apn_pass") or None,
            ring_size=stack.ring_for(b), line_max=line_max, baud=self.link_baud,
            events=32, inbox_slots=4 if cfg.get("ota_key") else 2, topic_max=128, payload_max=slot,
            reg_timeout_ms=_REG_WAIT_MS, fatal_retry_ms=cfg.get("link_fatal_retry_s") * 1000)
        at, self.events, self.inbox, self.modem, self.driver, self.link_owner = session
        self.at = at
        if meter is not None:
            meter.watch(at.ring)
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
        self.link_up = asyncio.Event()
        self.acq = Acquisition(cfg, self.spool, self.seq, self.timesrc, motion_from(cfg),
                               modem=self.modem, link=self.link_owner, elm=self.elm, nmea=nmea,
                               temp=platform.device_temp_dc, wd=self.wd,
                               on_record=self.uplink.wake.set, link_up=self.link_up,
                               rec=self.uplink.rec)
        self.capture = Capture(at, cfg, self.root + "/capture", meta=self._capture_meta,
                               spool=self.spool)  # the spool has priority on flash
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
            elif k == "link_fatal_retry_s":
                self.link_owner.fatal_retry_ms = self.cfg.get(k) * 1000
            elif k == "spool_flush_records":
                self.spool.flush_records = self.cfg.get(k)
            elif k == "topic_prefix":
                continue  # topics are fixed for the session: they change at the next boot
            elif k in ("apn", "apn_user", "apn_pass", "sim_pin", "mqtt_host", "mqtt_port",
                       "mqtt_tls", "mqtt_client_id", "mqtt_user", "mqtt_password",
                       "mqtt_keepalive_s", "tls_ca", "tls_cert", "tls_key", "mqtt_version",
                       "mqtt_binary", "tls_version"):
                # a link key: applied at the next boot; a link parked in "fatal" (say, refused
                # credentials) gets its next try now instead of after the long backoff
                self.link_owner.retry()
                continue
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

    async def _link_speed(self, find):
        """Board ``uart.baud`` above 115200 (atmq.baud): ``find`` the speed the modem answers
        at (it keeps AT+IPR across a host reset, a power cycle ends it), else switch to it."""
        want = self.board["uart"]["baud"]
        if want <= 115200:
            return
        from atmq import baud

        host = baud.host_setter(self.at.stream)
        if find:
            other = want if self.link_baud != want else baud.BOOT_BAUD
            self.link_baud = await baud.find(self.at, host, (self.link_baud, other)) or (
                self.link_baud)
        else:
            self.link_baud = await baud.switch(self.at, want, host, self.link_baud, log)

    async def _speed_guard(self):
        """uart.baud above 115200: a modem that reset (the client's recovery, a brown-out)
        is back at 115200 while the host stays fast and hears noise.  When commands time
        out while the link runs fast, find the modem's speed again and switch back up."""
        from atmq import baud

        at = self.at
        seen = at.timeouts
        while True:
            await sleep_ms(10000)
            if at.timeouts - seen >= 2 and self.link_baud > baud.BOOT_BAUD:
                try:
                    self.link_baud = await baud.recover(
                        at, baud.host_setter(at.stream), self.link_baud,
                        self.board["uart"]["baud"], log)
                except Exception as e:  # noqa: BLE001 - the link's recovery goes on
                    log("baud: recover failed: %s" % e)
            seen = at.timeouts

    def _link_progress(self):
        """For the delivery watch: changes whenever the link works on itself (bring-up
        attempts, state transitions, the client's recovery steps); None while parked in
        ``fatal`` (no reset can fix it)."""
        lk = self.link_owner
        if lk.state == _ST_FATAL:
            return None
        c = self.client
        steps = sum(c.recovery.ladder.tries) if c is not None else 0
        return self.link_attempts + lk.transitions + steps

    def _make_client(self):
        """The MQTT client and the session tasks' objects (once the device id is known)."""
        gc.collect()  # bring-up's garbage gone before the session's long-lived objects land
        topics = self.topics
        if topics is None:
            raise ValueError("no device id yet")
        sm = self.modem.family == "sm"
        sim800 = sm and getattr(self.driver, "sim800", False)
        ccfg = client_config(self.cfg, topics, self.dev, sm, not sim800)
        ccfg["subscriptions"].append((topics.base + "ota", 1))  # update offers and chunks
        c = stack.make_client((self.at, self.events, self.inbox, self.modem, self.driver,
                               self.link_owner), ccfg, on_recovery=fieldlog.on_recovery)
        up = self.uplink
        up.bind(c, topics.telemetry, self.dev)
        cap = getattr(self.driver, "payload_max", 0)
        if not sm:  # CMQTT: the limit of the model the modem says it is (not a constant)
            from .uplink import cmqtt_payload_max

            facts = self.modem.facts
            cap = self.driver.payload_max = cmqtt_payload_max(facts.get("model"),
                                                              facts.get("revision"))
        if sim800:
            # SIM800 publishes inline in quotes (seed 004 3.5): no '"' (so no JSON) and the
            # whole AT+SMPUB="<topic>",1,0,"<payload>" within the engine's tx_max
            up.forced_format = "freematics"
            cap = min(cap, self.at.tx_max - 20 - len(topics.telemetry))
            log("SIM800: telemetry in the freematics format, at most %d bytes per publish"
                % cap)
        up.payload_cap = cap
        up.resize()
        if not sm and getattr(self.driver, "peer", 1) is None:
            # a second session (client index 1) for two batches in flight, made by the
            # uplink when a backlog waits and the heap has room (tlog.lane, uplink_inflight)
            up.lane_factory = self._make_lane
        st = Status(topics, c)
        cm = Commands(self, topics, c)
        cm.other = lambda topic, payload: self._ota().handle(topic, payload)  # a coroutine
        he = Health(self, topics, c)
        self.client, self.status, self.commands, self.health = c, st, cm, he
        return c, st, cm, he

    def _make_lane(self):
        from .lane import PublishLane

        return PublishLane(self.client, self.at, self.inbox)

    async def link(self):
        """Bring-up and first connect, retried with a growing backoff; then the session tasks."""
        from atmq import log as alog
        from atmq.errors import ATTimeout, ModemError

        backoff = _LINK_BACKOFF_MIN_MS
        wd = self.wd
        made = None
        quick = True  # the next timeout / reboot is retried without a backoff
        while True:
            wd.beat("link")
            self.link_attempts += 1
            boots = getattr(self.modem, "boots", 0)
            try:
                # the link owner's bring-up; a module that does not answer ``AT`` is
                # powered on (no blind PWRKEY pulse to a live module: it would switch off)
                await self._link_speed(True)
                first = self.link_attempts == 1
                if not first and not await self.modem.probe(3):
                    first = True
                await self.link_owner.up(first=first)
                await self._link_speed(False)
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
                    # CMQTT's MQTT settings (AT+CMQTTCFG, manual 16.2.15), sent by the driver
                    # after every ACCQ: the protocol version (the SIM767XX default is 3 =
                    # MQTT 3.1, which AWS IoT Core refuses) and, for binary payloads, no
                    # UTF-8 check
                    f = getattr(self.driver, "configure", None)
                    if f is not None and self.modem.family == "cmqtt":
                        await f(check_utf8=0 if self.cfg.get("mqtt_binary") else None,
                                version=self.cfg.get("mqtt_version"))
                await made[0].connect()
                self.lastgood.reached(self.cfg)  # keeps it, ends a probation
                break
            except Exception as e:  # modem, SIM, network, broker: log, back off, try again
                self.link_errors += 1
                self.last_link_error = e
                alog.warn("link", "attempt %d failed: %s", self.link_attempts, alog.exc(e))
                lk = self.link_owner
                if is_fatal(e):
                    # no quick retry can help: park the link in "fatal" (status and health
                    # say why), keep sampling into the spool, leave the modem alone, try
                    # again after the long backoff or at once on a set/reconnect
                    lk.fail(e)
                    log("link attempt %d failed: %s; parked, next in %d s or on set"
                        % (self.link_attempts, lk.fatal_text(), lk.fatal_retry_ms // 1000))
                    while not await lk.wait_retry(10000):
                        wd.beat("link")
                    continue
                rebooted = getattr(self.modem, "boots", 0) != boots
                if quick and (isinstance(e, ATTimeout) or rebooted):
                    # a command past its manual deadline or a module that rebooted under
                    # the attempt: the deadline was the wait, rebuild now (once in a row)
                    quick = False
                    log("link attempt %d failed: %s: %s; again now"
                        % (self.link_attempts, type(e).__name__, e))
                    continue
                quick = True
                wait = _retry_ms(e, backoff)
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
        wd.register("delivery", _DELIVERY_LIMIT_MS,
                    DeliveryProbe(self.uplink, self.spool, self.cfg, self._link_progress))
        self._tasks.append(reader)
        for coro in self.acq.tasks():
            self._tasks.append(asyncio.create_task(coro))
        self._tasks.append(asyncio.create_task(self.uplink.run()))
        self._tasks.append(asyncio.create_task(self.link()))
        if self._ota_pending:
            self._ota()
        self._tasks.append(asyncio.create_task(wd.run(1000)))
        self._tasks.append(asyncio.create_task(self.flog.run()))
        if self.board["uart"]["baud"] > 115200:
            self._tasks.append(asyncio.create_task(self._speed_guard()))
        if self.opts.get("stdin_stop"):
            self._tasks.append(asyncio.create_task(self._stdin_stop()))
        if self.cfg.get("capture_enable"):
            self.capture.start()
        self._tasks.append(asyncio.create_task(self._capture_idle()))
        self._tasks.append(asyncio.create_task(self.lastgood.probation(self)))
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
        self.flog.flush()
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
        # the reader stays for the last publish and DISCONNECT.  A task is cancelled only
        # between two AT commands (the engine paused here): one cancelled inside a
        # command would leave the modem at a ">" prompt eating the next command as payload,
        # or its late OK ending the next command, and the "offline" publish would wait
        # that out.  A command that does not answer gets _STOP_HOLD_MS, then is cut.
        reader = self._reader
        if not await self.at.pause(_STOP_HOLD_MS):
            log("stop: an AT command did not end within %d ms" % _STOP_HOLD_MS)
        for t in self._tasks:
            if t is not reader:
                try:
                    t.cancel()
                except Exception:  # the task running this (the reboot command): it ends
                    pass
        self._tasks = [t for t in self._tasks if t is reader]
        self.uplink.drop_lane()  # the second session's task (the uplink made it) ends too
        self.at.resume()
        try:
            self.spool.close()
            self.seq.close()  # a clean restart numbers on without a gap
        except OSError as e:
            log("spool close failed:", e)
        self.capture.stop()
        c = self.client
        st = self.status
        if c is not None and st is not None and c.isconnected():
            try:
                await wait_for_ms(self._final_drain(), _STOP_DRAIN_MS)  # what sampling made last
            except Exception as e:  # the records stay in the spool for the next boot
                log("final drain stopped:", repr(e))
            try:  # client index 1 (the second session) first: DISC/REL 1, then DISC 0
                await wait_for_ms(self.uplink.close_lane(), _STOP_DISC_MS)
            except Exception as e:
                log("second session close failed:", repr(e))
            try:
                # bounded whatever the stop interrupted: the will says "offline" otherwise
                await wait_for_ms(st.announce(online), _STOP_ANNOUNCE_MS)
                await wait_for_ms(c.disconnect(), _STOP_DISC_MS)
            except Exception as e:
                log("clean disconnect failed:", repr(e))
        if reader is not None:
            reader.cancel()
        self._tasks = []
        self.flog.flush()
        log("stopped: %d records made, %d sent, spool depth %d"
            % (self.acq.records, self.uplink.sent, self.spool.depth()))

    async def _final_drain(self, ms=5000):
        """Clean stop with the link up: the records still in the spool go out now, not at
        the next boot; no new batch starts after ``ms``."""
        from atmq.compat import ticks_diff

        t0 = ticks_ms()
        while self.client is not None and self.client.isconnected() \
                and ticks_diff(ticks_ms(), t0) < ms:
            if not await self.uplink.send_once():
                return


def _build(opts):
    """The App, falling back to the last good config, then the defaults, when the setup
    fails with a value error (a config the checks let through must not brick the board)."""
    from atmq.errors import ConfigError

    why = None
    for level in (0, 1, 2):
        try:
            return App(opts, level, why)
        except ConfigError:
            raise  # the board file: no config can help (config.json's are handled inside)
        except (ValueError, TypeError, KeyError, IndexError) as e:
            if level == 2:
                raise
            why = "setup failed: %s: %s" % (type(e).__name__, e)
            log(why)
    raise RuntimeError("unreachable")


def run():
    """Board entry point (main.py).  Unix port: exits with the app's status."""
    app = _build(platform.options())
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
