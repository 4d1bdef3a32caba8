"""How a remote command is carried out: parsing, checks, dispatch, the answer's result.

Imported for each command by ``tlog.commands`` and dropped from ``sys.modules`` after
its answer went out (MicroPython; issue 11): the handlers' function objects cost heap
only while a command is handled, the frozen bytecode stays in flash.  Each handler
takes the resident ``Commands`` (``cm``: its ctx, counters and auth) and the parsed
message.  What the commands do, their answers and the parts: tlog/commands.py.
"""

import json

from atmq.compat import const
from atmq.errors import ConfigError

from . import config as _config
from .commands import MAX_PAYLOAD

_NAMES = const(("ping", "get", "set", "reboot", "locate", "flush", "capture", "log"))
# bytes of log lines' JSON in one log answer (all parts): the oldest go
_LOG_ANSWER_MAX = const(1536)
# bytes of result JSON per answer: with the envelope (a 64-character id), under the
# 512-byte command slot; one item larger than this goes alone in its part
PART_MAX = const(256)


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


async def handle(cm, payload):
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
        cm.escaped += 1
        return _err(cid, "a backslash (JSON escape) is not accepted in commands: send"
                    " plain ASCII JSON")
    name = msg.get("cmd")
    if name not in _NAMES:
        return _err(cid, "unknown command %r (known: %s)" % (name, ", ".join(_NAMES)))
    signed = "mac" in msg
    if signed:
        why = _auth(cm).check(payload, msg, cm.topics.dev)
        if why is not None:
            cm.auth_refused += 1
            return _err(cid, "not authenticated: " + why)
    try:
        if name == "set":
            return _ok(cid, await _c_set(cm, msg, signed))
        return _ok(cid, await globals()["_c_" + str(name)](cm, msg))
    except ConfigError as e:
        return _err(cid, str(e))
    except (ValueError, TypeError, KeyError) as e:
        return _err(cid, "%s: %s" % (name, e))
    except Exception as e:  # a modem or flash failure: say so, keep running
        cm.last_error = e
        return _err(cid, "%s failed: %r" % (name, e))

# ---- the commands -------------------------------------------------------------------------


async def _c_ping(cm, msg):
    return {"pong": True, "uptime_s": cm.ctx.uptime_s()}


async def _c_get(cm, msg):
    cfg = cm.ctx.cfg
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


def _auth(cm):
    cfg = cm.ctx.cfg
    a = cm.auth
    if a is None or a.key_hex != cfg.get("cmd_key"):
        from .auth import Auth  # only when a signed command comes (RAM)

        a = cm.auth = Auth(cm.ctx.root + "/cmdctr", cfg.get("cmd_key"))
    return a


async def _c_set(cm, msg, signed=False):
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
    cfg = cm.ctx.cfg
    before = {}
    link = []
    for k in changes:
        before[k] = cfg.get(k)  # unknown key: ConfigError before anything changes
        if _config.is_link(k) and before[k] != changes[k]:
            link.append(k)
    cfg.check(changes)  # ConfigError before anything is written
    if link and not signed:
        cm.auth_refused += 1
        raise ConfigError(link[0], "a link key: set only by a command signed with the"
                          " device's cmd_key (tools/signcmd.py), or locally")
    lg = cm.ctx.lastgood if link else None
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
        applied = cm.ctx.apply(live)
    except Exception as e:  # a MemoryError making a buffer...: the values are on flash,
        cm.last_error = e  # so the answer says "reboot" for them, not "set failed"
        from atmq import log as alog

        alog.warn("cmd", "set stored, not applied now: %s", alog.exc(e))
        applied = []
    later = [k for k in live if k not in applied]  # live in the schema, not yet here
    out = {"applied": applied, "reboot": reboot + later}
    if link:
        out["probation_s"] = cfg.get("link_probation_s")
    return out


async def _c_reboot(cm, msg):
    cm.reboot_pending = True  # the task reboots once this answer went out
    return {"rebooting": True}


async def _c_locate(cm, msg):
    fix = await cm.ctx.acq.locate()
    if fix is None:
        raise ValueError("no GNSS fix within the wait")
    return {"lat_e7": fix.lat_e7, "lon_e7": fix.lon_e7, "alt_dm": fix.alt_dm,
            "speed_ckmh": fix.speed_ckmh, "course_cdeg": fix.course_cdeg,
            "sats": fix.sats, "hdop_x10": fix.hdop_x10, "epoch_s": fix.epoch_s}


async def _c_flush(cm, msg):
    sp = cm.ctx.spool
    written = sp.flush()
    cm.ctx.uplink.wake.set()
    return {"written": written, "depth": sp.depth()}


async def _c_capture(cm, msg):
    cap = cm.ctx.capture
    action = msg.get("action", "status")
    if action == "start":
        return cap.start()
    if action == "stop":
        return cap.stop()
    if action == "status":
        return cap.status()
    raise ValueError('"action" must be start, stop or status')


async def _c_log(cm, msg):
    from atmq import log as alog

    n = msg.get("lines", 20)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 50:
        raise ValueError('"lines" must be an integer 1..50')
    source = msg.get("source", "ram")
    flog = getattr(cm.ctx, "flog", None)
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
