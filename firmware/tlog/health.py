"""Health reports on ``<prefix>/<id>/health`` every ``health_interval_s`` (live).

Owns the report's content: uptime, heap, spool depth and dropped count, the
modem's facts (model, revision, IMEI), signal, operator and registration,
error counters of every layer (AT engine, MQTT client, uplink, acquisition,
commands, OBD), reconnects, time source, watchdog state, and the field log's
counts, with its last lines when an error was logged since the last report.  A report is best
effort: it is not spooled, and a failed publish is counted and skipped.  The JSON (1-3 KB)
is written into one buffer of exactly its size (``_JsonOut``), not grown piece by piece
as ``json.dumps`` does: each growth is a reallocation that a fragmented heap may not have
contiguous room for, and the report comes just after the connect, at the heap's peak.
"""

import asyncio
from io import IOBase

from atmq import log as alog
from atmq.compat import const, sleep_ms, wait_for_ms
from atmq.errors import ModemError

from . import fsutil


LOG_TAIL = const(8)  # log lines in a report after an error (atmq.log ring, redacted)


def _name(e):
    return None if e is None else "%s: %s" % (type(e).__name__, e)


class _JsonOut(IOBase):
    """``json.dump``'s stream: counts the bytes, then (``dst`` set) copies them into it."""

    def __init__(self):
        self.n = 0
        self.dst = None  # type: bytearray | None

    def write(self, b):
        if isinstance(b, str):  # CPython writes str pieces; MicroPython bytes
            b = b.encode()
        n = len(b)
        dst = self.dst
        if dst is not None:
            dst[self.n : self.n + n] = b
        self.n += n
        return n


def encode(obj):
    """``obj`` as JSON in a bytearray of exactly its length (two passes, no regrowth)."""
    import json

    out = _JsonOut()
    json.dump(obj, out)
    dst = out.dst = bytearray(out.n)
    out.n = 0
    json.dump(obj, out)
    return dst


class Health:
    def __init__(self, ctx, topics, client):
        self.ctx = ctx
        self.topics = topics
        self.client = client
        self.sent = 0
        self.failures = 0
        self.operator = None
        self.modem_mv = None
        self.last_error = None
        self.errors_seen = 0  # atmq.log errors already reported with their tail

    async def refresh(self):
        """Ask the modem for what only health needs (operator, supply voltage)."""
        m = self.ctx.modem
        if m is None or not m.inited:
            return
        try:
            lk = getattr(self.ctx, "link_owner", None)
            if lk is not None:
                # AT+COPS? is the link's, asked only with nothing waiting to be sent (its
                # manual deadline is 60 s: it must not hold the uplink)
                sp = getattr(self.ctx, "spool", None)
                idle = sp is None or sp.depth() == 0
                self.operator = await lk.query_operator(idle)
            self.modem_mv = await m.battery_mv()
        except ModemError as e:
            self.last_error = e

    def report(self):
        c = self.ctx
        sp = c.spool.stats()
        rep = {
            "uptime_s": c.uptime_s(),
            "heap_free": c.heap_free(),
            "spool_depth": sp["depth"],
            "dropped": sp["dropped"],
            "spool": sp,
            "time_src": c.timesrc.name(),
            "flash_free": fsutil.free_bytes(getattr(c, "root", "") or "/"),
        }
        if getattr(c, "cfg_source", None) is not None:  # the unbrickable boot (tlog.lastgood)
            rep["config"] = {"source": c.cfg_source, "error": c.cfg_error}
        m = c.modem
        if m is not None:
            f = m.facts
            rep["modem"] = {"model": f.get("model"), "revision": f.get("revision"),
                            "imei": f.get("imei"), "operator": self.operator,
                            "rssi_dbm": c.acq.rssi_dbm if c.acq is not None else None,
                            "reg": m.best_stat(), "supply_mv": self.modem_mv,
                            "reboots": m.reboots}
        lk = getattr(c, "link_owner", None)
        if lk is not None:
            # the link owner's state, and why it is parked when it is ("fatal")
            rep["link"] = {"state": lk.name, "fatal": lk.fatal_text(),
                           "transitions": lk.transitions, "fatals": lk.fatals}
        at = c.at
        if at is not None:
            rep["at"] = {"commands": at.commands, "timeouts": at.timeouts, "errors": at.errors,
                         "urcs": at.urcs, "unknown": at.unknown,
                         "overflows": at.ring.overflows}
        cl = c.client
        if cl is not None:
            st = cl.stats()
            st.pop("ladder", None)
            st["last_error"] = _name(cl.last_error)
            rep["mqtt"] = st
            rep["reconnects"] = cl.reconnects
        up = c.uplink
        if up is not None:
            rep["uplink"] = {"batches": up.batches, "sent": up.sent, "failures": up.failures,
                             "bad_records": up.bad_records, "last_error": _name(up.last_error)}
            two = getattr(up, "second_stats", None)
            if two is not None:  # two in flight (tlog.lane): in flight now, its counters
                rep["uplink2"] = two()
        a = c.acq
        if a is not None:
            rep["acq"] = {"records": a.records, "errors": a.errors, "gnss_jumps": a.jumps,
                          "modem_errors": a.modem_errors, "last_error": _name(a.last_error)}
        cm = c.commands
        if cm is not None:
            rep["cmd"] = {"handled": cm.handled, "errors": cm.errors, "foreign": cm.foreign,
                          "unanswered": cm.unanswered, "auth_refused": cm.auth_refused}
        if c.elm is not None:
            rep["obd"] = c.elm.stats()
        wd = c.wd
        if wd is not None:
            rep["watchdog"] = {"feeds": wd.feeds, "starved": wd.starved, "stuck": wd.stuck}
        errs, warns = alog.counts()
        lg = {"errors": errs, "warnings": warns}  # type: dict
        if errs > self.errors_seen:  # an error since the last report: its context comes along
            self.errors_seen = errs
            lg["tail"] = alog.tail(LOG_TAIL)
        rep["log"] = lg
        return rep

    async def publish(self):
        await self.client.publish(self.topics.health, encode(self.report()), 1)
        self.sent += 1

    async def run(self):
        c = self.client
        while True:
            try:
                await wait_for_ms(c.up.wait(), 60000)
            except asyncio.TimeoutError:
                continue
            try:
                await self.refresh()
                await self.publish()
            except Exception as e:  # a failed publish, or a MemoryError at the heap's peak:
                self.failures += 1  # this report is skipped, the next one comes
                self.last_error = e
            await sleep_ms(self.ctx.cfg.get("health_interval_s") * 1000)
