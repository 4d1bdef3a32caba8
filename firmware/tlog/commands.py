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

This module is the resident part (the task, the answer, the counters); the handlers
are in tlog.cmdexec, imported for each command and dropped after its answer.
"""

from atmq.compat import const, sleep_ms

from .health import encode as _encode

MAX_PAYLOAD = 1024  # the app's largest inbox slot (a signed set of a 256-byte password fits)
_ANSWER_TRIES = const(3)  # publishes of one answer (each waits for the link, bounded)
_NOMEM_WAIT_MS = const(200)  # after a MemoryError: the other tasks free theirs meanwhile


async def _ignore(topic, payload):  # type: (bytes, bytes) -> bool
    return False  # not handled


def _drop_exec():
    """tlog.cmdexec (the handlers, ~0.6 KB of heap as objects) out of ``sys.modules`` once
    a command is answered: collected, imported again by the next command (MicroPython;
    CPython keeps it)."""
    from atmq.compat import IS_MICROPYTHON

    if IS_MICROPYTHON:
        import sys

        sys.modules.pop("tlog.cmdexec", None)
        pkg = sys.modules.get("tlog")
        if pkg is not None:
            pkg.__dict__.pop("cmdexec", None)


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
        try:
            from .cmdexec import handle  # the handlers: imported for this command (issue 11)
        except MemoryError:
            # the heap at its peak (a publish, a recovery): the other tasks free theirs
            # meanwhile, then once more; a half-made module must not stay for that import
            _drop_exec()
            await sleep_ms(_NOMEM_WAIT_MS)
            try:
                from .cmdexec import handle
            except MemoryError:
                _drop_exec()
                return self._nomem("the command was not run, send it again")
        try:
            r = await handle(self, payload)
        except MemoryError:  # reading the command (its JSON): the handlers answer the rest
            return self._nomem("it may not have run: check (get) before sending it again")
        if not r["ok"]:
            self.errors += 1
        return r

    def _nomem(self, what):
        # answered (id null: only the handlers read it), never a silent loss
        self.errors += 1
        return {"id": None, "ok": False, "error": "out of memory: " + what}

    def _inbox_count(self):
        ib = getattr(self.ctx, "inbox", None)
        # overwritten by a flood, or too large for the slot (dropped before a byte of it was
        # kept: no id to answer; its silence would otherwise go unexplained)
        return 0 if ib is None else ib.overwritten + ib.oversize

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
            _drop_exec()
            if self.reboot_pending:
                await self.ctx.reboot()
