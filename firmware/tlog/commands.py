"""Remote commands on ``<prefix>/<id>/cmd``, each answered on ``<prefix>/<id>/cmd/ack``.

Owns parsing, validation and dispatch.  A command is a JSON object with an
``"id"`` (string or integer, echoed in the answer) and a ``"cmd"``:

  ping                                  -> "pong", uptime
  get      [key | keys: [...]]          -> values (secrets as "***"); no key: every key,
                                           in schema order, answered in parts
  set      key + value | values: {...}  -> validated all-or-nothing, persisted,
                                           live keys applied now, others listed
                                           in "reboot" (take effect after one)
  reboot                                -> answered, then the board restarts
  locate                                -> a fresh GNSS fix, or an error
  flush                                 -> staged records to flash, uplink woken
  capture  action: start | stop | status -> AT traffic to rotating .atx files
  log      [lines: 1..50] [source: ram | flash] -> the last lines of the field log
                                           (ram: this boot, every level, at most
                                           log_ram_lines; flash: warnings and
                                           errors across reboots; a line longer
                                           than a part is cut, "..." at its end)

The answer is ``{"id": ..., "ok": true, "result": ...}`` or ``{"id": ...,
"ok": false, "error": "<what was wrong>"}``.  A result larger than ``PART_MAX``
bytes of JSON (a ``get`` of every key, a long ``log``) is sent as several
answers with the same id, ``"part": 1, 2...`` and ``"more": true`` on all but
the last: each answer stays under the inbox slot, so no answer needs a large
contiguous block of a fragmented heap (the merged result is the one answer).
Malformed JSON, a missing id, an unknown command, a bad value or a payload over
``MAX_PAYLOAD`` bytes get an error answer (id null when it could not be read) and
never an exception; a payload over the inbox slot (512 bytes, 1024 with ``cmd_key``
or ``ota_key`` set: tlog.app) is dropped by the inbox unread and counted below.
Only the device's own command topic is obeyed; anything else is counted and
ignored (answering another device's command would confuse its owner).

Hostile input (README, *Security model*): a backslash anywhere in a command is
refused (a JSON escape such as ``"mqtt_passwo\\u0072d"`` would hide a key from
the capture redaction; no valid value needs one).  Link keys (``config.LINK``:
broker, TLS, APN, SIM PIN, identity, the command key) are set only by a command
signed with the device's ``cmd_key`` (tlog.auth: HMAC-SHA256, replay counter);
such a change is stored under probation (tlog.lastgood): if the next boot does
not reach the broker within ``link_probation_s`` the last good link comes back.
Commands that arrived but were overwritten in the full inbox before they could
be read (a flood), or were too large for its slot, are counted in ``unanswered``
and said in the next answer.
"""

import json

from atmq.compat import sleep_ms
from atmq.errors import ConfigError

from . import config as _config
from .health import encode as _encode

MAX_PAYLOAD = 1024  # the app's largest inbox slot (a signed set of a 256-byte password fits)
_NAMES = ("ping", "get", "set", "reboot", "locate", "flush", "capture", "log")
_ANSWER_TRIES = 3  # publishes of one answer (each waits for the link, bounded)
_NOMEM_WAIT_MS = 200  # after a MemoryError: the other tasks free theirs meanwhile
_LOG_ANSWER_MAX = 1536  # bytes of log lines' JSON in one log answer (all parts): the oldest go
PART_MAX = 256  # bytes of result JSON per answer: with the envelope (a 64-character id),
# under the 512-byte command slot; one item larger than this goes alone in its part


async def _ignore(topic, payload):  # type: (bytes, bytes) -> bool
    return False  # not handled


def _err(cid, text):
    return {"id": cid, "ok": False, "error": text}


def _ok(cid, result):
    return {"id": cid, "ok": True, "result": result}


def _groups(items, size_of):
    """``items`` cut into runs [(start, end)] of at most about ``PART_MAX`` bytes each."""
    out = []
    start = size = 0
    for i in range(len(items)):
        n = size_of(items[i])
        if i > start and size + n > PART_MAX:
            out.append((start, i))
            start, size = i, 0
        size += n
    out.append((start, len(items)))
    return out


def _parts(groups, make):
    """The result of each run: the answers of a result sent in parts (``Commands.answer``)."""
    for start, end in groups:
        yield make(start, end)


def _jlen(text):
    """Bytes of ``text`` as JSON and a separator (MicroPython keeps non-ASCII as UTF-8)."""
    return len(json.dumps(text).encode()) + 2


def _fit(lines, i):
    """Cut ``lines[i]`` (in place, "..." at its end) so that its JSON and a separator fit
    one part; the bytes it then takes in an answer."""
    line = lines[i]
    n = _jlen(line)
    if n <= PART_MAX:
        return n
    keep = len(line) * PART_MAX // n - 4  # escapes spread evenly: about right, then less
    while True:
        cut = line[:keep if keep > 0 else 0] + "..."
        n = _jlen(cut)
        if n <= PART_MAX or keep <= 0:
            lines[i] = cut
            return n
        keep = keep * 3 // 4


def _text(b):
    try:
        return bytes(b).decode()
    except UnicodeError:
        return None


class Commands:
    """``ctx`` is the app (cfg, apply, spool, uplink, acq, capture, uptime_s, reboot)."""

    def __init__(self, ctx, topics, client):
        self.ctx = ctx
        self.topics = topics
        self._own = topics.cmd.encode()
        self.client = client
        self.handled = 0
        self.errors = 0  # commands answered with an error
        self.foreign = 0  # messages on other topics, ignored
        self.ack_failures = 0
        self.reboot_pending = False
        self.last_error = None
        self.auth = None  # tlog.auth.Auth, made on the first signed command
        self.auth_refused = 0  # link keys without a valid signature, bad MACs, replays
        self.escaped = 0  # commands refused for a backslash
        self.unanswered = 0  # commands overwritten in the inbox before they were read
        self._inbox_lost = self._inbox_count()
        self.other = _ignore  # async (topic, payload): the device's other topics (tlog/ota.py)

    async def handle(self, topic, payload):
        """The answer dict for one message, or None when it is not addressed to us."""
        if bytes(topic) != self._own:
            self.foreign += 1
            return None
        self.handled += 1
        r = await self._handle(payload)
        if not r["ok"]:
            self.errors += 1
        return r

    def _inbox_count(self):
        ib = getattr(self.ctx, "inbox", None)
        # overwritten by a flood, or too large for the slot (dropped before a byte of it was
        # kept: no id to answer; its silence would otherwise go unexplained)
        return 0 if ib is None else ib.overwritten + ib.oversize

    async def _handle(self, payload):
        n = len(payload)
        if n > MAX_PAYLOAD:
            return _err(None, "payload of %d bytes is larger than %d" % (n, MAX_PAYLOAD))
        text = _text(payload)
        if text is None:
            return _err(None, "payload is not UTF-8 text")
        try:
            msg = json.loads(text)
        except ValueError:
            return _err(None, "payload is not valid JSON")
        if not isinstance(msg, dict):
            return _err(None, "payload must be a JSON object")
        cid = msg.get("id")
        if cid is None or isinstance(cid, bool) or not isinstance(cid, (str, int)):
            return _err(None, 'missing or bad "id" (a string or an integer)')
        if isinstance(cid, str) and len(cid) > 64:
            return _err(None, '"id" is longer than 64 characters')
        if "\\" in text:  # an escaped key would hide from the capture redaction
            self.escaped += 1
            return _err(cid, "a backslash (JSON escape) is not accepted in commands: send"
                        " plain ASCII JSON")
        name = msg.get("cmd")
        if name not in _NAMES:
            return _err(cid, "unknown command %r (known: %s)" % (name, ", ".join(_NAMES)))
        signed = "mac" in msg
        if signed:
            why = self._auth().check(payload, msg, self.topics.dev)
            if why is not None:
                self.auth_refused += 1
                return _err(cid, "not authenticated: " + why)
        try:
            if name == "set":
                return _ok(cid, await self._c_set(msg, signed))
            return _ok(cid, await getattr(self, "_c_" + name)(msg))
        except ConfigError as e:
            return _err(cid, str(e))
        except (ValueError, TypeError, KeyError) as e:
            return _err(cid, "%s: %s" % (name, e))
        except Exception as e:  # a modem or flash failure: say so, keep running
            self.last_error = e
            return _err(cid, "%s failed: %r" % (name, e))

    # ---- commands -------------------------------------------------------------------------

    async def _c_ping(self, msg):
        return {"pong": True, "uptime_s": self.ctx.uptime_s()}

    async def _c_get(self, msg):
        cfg = self.ctx.cfg
        keys = msg.get("keys")
        if "key" in msg:
            keys = [msg["key"]]
        if keys is None:
            keys = _config.SCHEMA  # every key, in the schema's order
        if not isinstance(keys, (list, tuple)):
            raise ValueError('"keys" must be a list of key names')
        for k in keys:
            if not isinstance(k, str) or k not in _config.SCHEMA:
                raise ConfigError(str(k), "unknown key")
        # no dict of every value, no 1.6 KB string: runs of keys, one answer each
        groups = _groups(keys, lambda k: len(k) + len(json.dumps(cfg.shown(k))) + 6)

        def make(start, end):
            out = {}
            for i in range(start, end):
                out[keys[i]] = cfg.shown(keys[i])
            return out
        return make(0, len(keys)) if len(groups) == 1 else _parts(groups, make)

    def _auth(self):
        cfg = self.ctx.cfg
        a = self.auth
        if a is None or a.key_hex != cfg.get("cmd_key"):
            from .auth import Auth  # only when a signed command comes (RAM)

            a = self.auth = Auth(self.ctx.root + "/cmdctr", cfg.get("cmd_key"))
        return a

    async def _c_set(self, msg, signed=False):
        if "values" in msg:
            changes = msg["values"]
            if not isinstance(changes, dict) or not changes:
                raise ValueError('"values" must be a non-empty object of key: value')
        elif "key" in msg and "value" in msg:
            changes = {msg["key"]: msg["value"]}
        else:
            raise ValueError('needs "key" and "value", or "values"')
        for k in changes:
            if not isinstance(k, str):
                raise ValueError("key names must be strings")
        cfg = self.ctx.cfg
        before = {}
        link = []
        for k in changes:
            before[k] = cfg.get(k)  # unknown key: ConfigError before anything changes
            if _config.is_link(k) and before[k] != changes[k]:
                link.append(k)
        cfg.check(changes)  # ConfigError before anything is written
        if link and not signed:
            self.auth_refused += 1
            raise ConfigError(link[0], "a link key: set only by a command signed with the"
                              " device's cmd_key (tools/signcmd.py), or locally")
        lg = self.ctx.lastgood if link else None
        pending = lg is not None and lg.probation_s()  # an earlier change, not proven yet
        if lg is not None:
            # probation first: a cut before the config is written rolls back to the same link
            lg.start_probation(cfg.get("link_probation_s")
                               if "link_probation_s" not in changes
                               else changes["link_probation_s"])
        try:
            reboot = cfg.update(changes)  # validated all-or-nothing, then persisted
        except Exception as e:
            if lg is not None and not pending:
                # nothing changed: no probation left behind (the next boot would roll back
                # to the last good after a coverage gap, undoing local changes since)
                lg.end_probation()
            raise e
        live = [k for k in changes if k not in reboot and before[k] != cfg.get(k)]
        try:
            applied = self.ctx.apply(live)
        except Exception as e:  # a MemoryError making a buffer...: the values are on flash,
            self.last_error = e  # so the answer says "reboot" for them, not "set failed"
            from atmq import log as alog

            alog.warn("cmd", "set stored, not applied now: %s", alog.exc(e))
            applied = []
        later = [k for k in live if k not in applied]  # live in the schema, not yet here
        out = {"applied": applied, "reboot": reboot + later}
        if link:
            out["probation_s"] = cfg.get("link_probation_s")
        return out

    async def _c_reboot(self, msg):
        self.reboot_pending = True  # the task reboots once this answer went out
        return {"rebooting": True}

    async def _c_locate(self, msg):
        fix = await self.ctx.acq.locate()
        if fix is None:
            raise ValueError("no GNSS fix within the wait")
        return {"lat_e7": fix.lat_e7, "lon_e7": fix.lon_e7, "alt_dm": fix.alt_dm,
                "speed_ckmh": fix.speed_ckmh, "course_cdeg": fix.course_cdeg,
                "sats": fix.sats, "hdop_x10": fix.hdop_x10, "epoch_s": fix.epoch_s}

    async def _c_flush(self, msg):
        sp = self.ctx.spool
        written = sp.flush()
        self.ctx.uplink.wake.set()
        return {"written": written, "depth": sp.depth()}

    async def _c_capture(self, msg):
        cap = self.ctx.capture
        action = msg.get("action", "status")
        if action == "start":
            return cap.start()
        if action == "stop":
            return cap.stop()
        if action == "status":
            return cap.status()
        raise ValueError('"action" must be start, stop or status')

    async def _c_log(self, msg):
        from atmq import log as alog

        n = msg.get("lines", 20)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 50:
            raise ValueError('"lines" must be an integer 1..50')
        source = msg.get("source", "ram")
        flog = getattr(self.ctx, "flog", None)
        if source == "ram":
            lines = alog.tail(n)
        elif source == "flash" and flog is not None:
            lines = flog.tail(n)
        else:
            raise ValueError('"source" must be ram or flash')
        # sized as JSON (a quote or control character is escaped, and CPython escapes
        # non-ASCII); a line too long for a part alone is cut, never left out with every
        # older one behind it
        size = 0
        keep = len(lines)
        while keep > 0:
            n = _fit(lines, keep - 1)
            if size + n > _LOG_ANSWER_MAX:
                break
            keep -= 1
            size += n
        errs, warns = alog.counts()
        lines = lines[keep:]
        groups = _groups(lines, _jlen)

        def make(start, end):
            out = {"lines": lines[start:end]}
            if end == len(lines):  # the counts once, in the last part
                out.update(left_out=keep, errors=errs, warnings=warns)
            return out
        return make(0, len(lines)) if len(groups) == 1 else _parts(groups, make)

    # ---- the task ---------------------------------------------------------------------------

    async def answer(self, reply):
        lost = self._inbox_count()
        if lost != self._inbox_lost:
            # a flood overwrote commands in the inbox before they were read: say so
            self.unanswered += lost - self._inbox_lost
            self._inbox_lost = lost
            reply["unanswered"] = self.unanswered
        parts = reply.get("result")
        if not hasattr(parts, "send"):
            await self._send(reply)
            return
        # a result in parts (a generator of dicts): one answer each, "more" on all but the
        # last (one part made ahead to know); a part not delivered ends the answer
        part = 1
        reply["result"] = next(parts)
        for nxt in parts:
            reply["part"] = part
            reply["more"] = True
            if not await self._send(reply):
                return
            reply.pop("unanswered", None)  # said once, in the first part
            reply["result"] = nxt
            part += 1
        reply["part"] = part
        reply["more"] = False
        await self._send(reply)

    async def _send(self, reply):
        """Publish one answer (a few tries); False when it could not be delivered."""
        for _ in range(_ANSWER_TRIES):
            # A link that drops just after the command arrived fails the answer's publish
            # (a reboot or CONNLOST inside it): the answer is kept and sent again once the
            # link is back (client.publish waits for the reconnect, bounded), a few times.
            # The JSON goes in one buffer of its exact size, made per try (health.encode).
            try:
                await self.client.publish(self.topics.ack, _encode(reply), 1)
                return True
            except Exception as e:
                self.ack_failures += 1
                self.last_error = e
                if isinstance(e, MemoryError):  # a heap at its peak: wait, then again
                    await sleep_ms(_NOMEM_WAIT_MS)
        from atmq import log as alog

        alog.warn("cmd", "answer to %s not published after %d tries: %s", reply.get("id"),
                  _ANSWER_TRIES, alog.exc(self.last_error))
        return False

    async def run(self):
        async for topic, payload in self.client.messages():
            try:
                reply = await self.handle(topic, payload)
                if reply is None:
                    await self.other(topic, payload)
                    continue
                await self.answer(reply)
            except Exception as e:  # a MemoryError at the heap's peak: this command is
                self.errors += 1  # lost (logged, counted), the commands task lives on
                self.last_error = e
                from atmq import log as alog

                alog.warn("cmd", "command not handled: %s", alog.exc(e))
            if self.reboot_pending:
                await self.ctx.reboot()
