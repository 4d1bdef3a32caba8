"""Fault injection from a scenario (JSON): what goes wrong, and when.

Format (README.md has the full table):
    {"faults": [{"kind": "busy", "match": "AT+CMQTTSUBTOPIC", "times": 1}, ...]}
Triggers: "at_s" (seconds after first boot), "after_commands" (on the Nth command),
"from_command" (the first command at or after the Nth that also matches, within
"within" commands), "nth" (the Nth command that matches), "match" (command text
prefix, case-insensitive) or "regex"; none = from boot.  "times" limits firings
(default 1, 0 = unlimited); "when" is "before" or "after" the triggering command's
answer, or "instead" of it (the command is not executed: a reboot leaves it
unanswered).

Kinds that stand in for the answer (the fault-at-step matrix, tools/fault_matrix.py):
"noanswer" (the command is lost), "error" (plain ERROR, or "+CME ERROR: <cme>" per
AT+CMEE, after optional information "lines"), "result_error" (OK, then the result URC
"urc" the command would have sent, e.g. "+CMQTTCONNECT: 0,26").
"""

import json
import re

from .cmd_basic import reg_urc

KINDS = ("connlost", "nonet", "busy", "reboot", "stray_urc", "stall", "slow",
         "byte_per_write", "echo_on", "old_firmware", "noanswer", "error", "result_error")
AFTER_BY_DEFAULT = ("connlost", "nonet", "reboot")
INSTEAD_ONLY = ("noanswer", "error", "result_error")
WHENS = ("before", "after", "instead")
RESULT_DELAY_S = 0.05   # OK, then the (failed) result URC this long after it


class Fault:
    def __init__(self, d):
        if d.get("kind") not in KINDS:
            raise ValueError("unknown fault kind %r (have %s)" % (d.get("kind"), KINDS))
        self.d = d
        self.kind = d["kind"]
        self.at_s = d.get("at_s")
        self.after_commands = d.get("after_commands")
        self.from_command = d.get("from_command")
        self.within = int(d.get("within", 10))
        self.nth = d.get("nth")
        self.seen = 0             # commands matched so far (for "nth")
        self.match = d.get("match")
        self.regex = re.compile(d["regex"], re.I) if d.get("regex") else None
        self.times = int(d.get("times", 1))
        self.when = d.get("when", "instead" if self.kind in INSTEAD_ONLY else
                          "after" if self.kind in AFTER_BY_DEFAULT else "before")
        if self.when not in WHENS or (self.kind in INSTEAD_ONLY and self.when != "instead"):
            raise ValueError("fault %r: bad 'when' %r" % (self.kind, self.when))
        if self.when == "instead" and self.kind not in INSTEAD_ONLY + ("reboot",):
            raise ValueError("fault %r cannot stand in for an answer" % self.kind)
        self.fired = 0
        self.fired_on = None      # (command count, command text) of the last firing

    def command_triggered(self):
        return (self.after_commands is not None or self.from_command is not None
                or self.match or self.regex)

    def wants(self, text, count):
        if self.times and self.fired >= self.times:
            return False
        if self.after_commands is not None and count != int(self.after_commands):
            return False
        if self.from_command is not None and not (
                0 <= count - int(self.from_command) < self.within):
            return False
        if self.match and not text.upper().startswith(self.match.upper()):
            return False
        if self.regex and not self.regex.search(text):
            return False
        if self.nth is not None:
            self.seen += 1
            if self.seen != int(self.nth):
                return False
        return bool(self.command_triggered())


class Scenario:
    def __init__(self, data):
        if isinstance(data, str):
            with open(data) as f:
                data = json.load(f)
        faults = data.get("faults", []) if isinstance(data, dict) else data
        self.faults = [Fault(d) for d in faults]
        self.booted = False
        self.log = []            # (kind, command text or trigger) as fired, for tests

    def on_boot(self, m):
        if self.booted:
            return
        self.booted = True
        for f in self.faults:
            if f.at_s is not None:
                m.spawn(self._timed(m, f))
            elif not f.command_triggered():
                self.fire(m, f, "boot")

    async def _timed(self, m, f):
        import asyncio
        await asyncio.sleep(float(f.at_s))
        self.fire(m, f, "at_s")

    def before_command(self, m, text):
        """None, "busy", "drop" (no answer) or bytes: the answer in the command's place."""
        verdict = None
        for f in self.faults:
            if f.when in ("before", "instead") and f.wants(text, m.command_count):
                verdict = self.fire(m, f, text) or verdict
        return verdict

    def after_command(self, m, text):
        for f in self.faults:
            if f.when == "after" and f.wants(text, m.command_count):
                self.fire(m, f, text)

    # -- actions ------------------------------------------------------------------
    def fire(self, m, f, why):
        f.fired += 1
        f.fired_on = (m.command_count, why)
        self.log.append((f.kind, why))
        d, k = f.d, f.kind
        dur = d.get("duration_s")
        if f.when == "instead":
            return self._instead(m, f)
        if k == "busy":
            return "busy"
        if k == "stall":
            import time
            m.stall_until = time.monotonic() + float(dur or 5.0)
            return "drop"
        if k == "stray_urc":
            m.inject_next(d.get("urc", "+CSQ: 10,99"), d.get("offset"))
        elif k == "slow":
            m.slow_extra = float(d.get("delay_s", 1.0))
            self._revert_after(m, dur, lambda: setattr(m, "slow_extra", 0.0))
        elif k == "byte_per_write":
            m.byte_per_write = True
            self._revert_after(m, dur, lambda: setattr(m, "byte_per_write", False))
        elif k == "echo_on":
            m.echo_forced = True
            self._revert_after(m, dur, lambda: setattr(m, "echo_forced", False))
        elif k == "old_firmware":
            m.old_firmware = True
        elif k == "reboot":
            m.reboot(delay=float(d.get("delay_s", 0.0)))
        elif k == "connlost":
            connlost(m, d.get("client"), int(d.get("cause", 1)))
        elif k == "nonet":
            nonet(m, float(dur or 5.0))
        return None

    def _instead(self, m, f):
        """The fault takes the command's place: it is not executed."""
        from .atcmd import AtError, final_error, frame_lines
        d, k = f.d, f.kind
        if k == "reboot":
            m.reboot(delay=float(d.get("delay_s", 0.0)))
            return "drop"
        if k == "noanswer":
            return "drop"
        if k == "error":
            err = AtError(cme=d.get("cme"), lines=d.get("lines", ()))
            return frame_lines(err.lines) + final_error(err, m.st.cmee)
        # result_error: the command is accepted, its result reports the failure
        urc = d["urc"]

        async def later():
            import asyncio
            await asyncio.sleep(RESULT_DELAY_S)
            m.urc(urc)
        t = m.spawn(later())
        m._results.add(t)             # a result: a reboot before it ends it (modem.reboot)
        t.add_done_callback(m._results.discard)
        return b"\r\nOK\r\n"

    def _revert_after(self, m, dur, fn):
        if dur is None:
            return

        async def later():
            import asyncio
            await asyncio.sleep(float(dur))
            fn()
        m.spawn(later())


def connlost(m, client, cause):
    """+CMQTTCONNLOST: <i>,<cause> for connected clients (the broker sees a dropped TCP)."""
    for i, s in enumerate(m.st.mqtt):
        if s.state == "connected" and client in (None, i) and s.bridge is not None:
            s.lost_cause = cause
            s.bridge.abort(report=True)
    if client is None:
        m.st.sm.abort_silently()


def nonet(m, seconds):
    """Network gone for `seconds`: registration lost, MQTT and PDP torn down (16.4, 13.4)."""
    import asyncio
    st = m.st
    st.net_down = True
    reg_urc(m)
    for i, s in enumerate(st.mqtt):
        if s.state == "connected":
            s.abort_silently()
            m.urc("+CMQTTCONNLOST: %d,3" % i)
    if st.cmqtt_started:
        st.cmqtt_started = False
        for s in st.mqtt:
            s.reset()
        m.urc("+CMQTTNONET")
    if st.netopen:
        st.netopen = False
        m.urc("+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY")
    st.sm.abort_silently()
    st.sapbr_open = False
    if st.cnact:
        st.cnact = False
        m.urc("+APP PDP: DEACTIVE")

    async def back():
        await asyncio.sleep(seconds)
        if m.st is st:
            st.net_down = False
            reg_urc(m)
    m.spawn(back())
