#!/usr/bin/env python3
"""Explain a modem session: annotated AT timeline plus a diagnosis of known failure modes.

Owns the timeline parsing of an AT byte stream (splitting lines, pairing each
command with its answer, deferred result codes, URCs, data after a ``>`` prompt)
and the rules that recognise the failure modes the fleet has seen.  Error-code
meanings come from ``atmq.errtab`` (the manuals' tables); transcripts are read
with ``atmq.atx``; Freematics "=== SENT@ms ===" debug logs are converted with
``tools/freematics2atx.py``.  A Freematics log holding several sessions (a forum
thread quoting two runs, a log spanning a reboot) is split where the millisecond
stamps start again.

    logdoctor.py session.atx
    logdoctor.py --json debug.log
"""

import argparse
import json
import os
import re
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
for _p in (os.path.join(_ROOT, "lib"), _HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from atmq import atx, errtab  # noqa: E402

# --- what the commands and lines mean (descriptions, not error tables) -----

# Short meanings of the commands a telelogger uses (SIM767XX manual chapters
# 2-6, 13 TCP/IP, 16 MQTT, 17 SSL, 21 GNSS; SIM800 MQTT note for AT+SM*).
COMMANDS = {
    "AT": "attention: is the modem alive",
    "ATE0": "echo off",
    "ATE1": "echo on",
    "ATI": "identification (manufacturer, model, firmware revision)",
    "ATZ": "reset settings to the stored profile",
    "AT&W": "store settings",
    "AT+CGMR": "firmware revision",
    "AT+GMR": "firmware revision",
    "AT+CGSN": "IMEI",
    "AT+CIMI": "IMSI of the SIM",
    "AT+CICCID": "ICCID of the SIM",
    "AT+CCID": "ICCID of the SIM",
    "AT+CMEE": "error reporting format (+CME ERROR numeric/verbose)",
    "AT+CPIN": "SIM PIN state / enter PIN",
    "AT+CFUN": "phone functionality (radio on/off, reset)",
    "AT+CRESET": "reset the module",
    "AT+CSQ": "signal quality",
    "AT+CPSI": "serving cell / system information",
    "AT+COPS": "operator selection",
    "AT+CREG": "circuit-switched network registration",
    "AT+CGREG": "GPRS (packet) network registration",
    "AT+CEREG": "LTE (EPS) network registration",
    "AT+CGATT": "packet domain attach",
    "AT+CGDCONT": "define PDP context (APN)",
    "AT+CGACT": "activate/deactivate PDP context",
    "AT+CGPADDR": "PDP address",
    "AT+CSOCKSETPN": "default PDP profile for sockets",
    "AT+NETOPEN": "open the socket network service (data call)",
    "AT+NETCLOSE": "close the socket network service",
    "AT+IPADDR": "IP address of the data call",
    "AT+CIPOPEN": "open a TCP/UDP socket",
    "AT+CIPCLOSE": "close a socket",
    "AT+CIPSEND": "send on a socket",
    "AT+CCERTDOWN": "download a certificate file into the modem",
    "AT+CCERTLIST": "list certificate files",
    "AT+CCERTDELE": "delete a certificate file",
    "AT+CSSLCFG": "configure an SSL context",
    "AT+CCHSTART": "start the SSL client service",
    "AT+CCHOPEN": "open an SSL connection",
    "AT+CMQTTSTART": "start the MQTT service",
    "AT+CMQTTSTOP": "stop the MQTT service",
    "AT+CMQTTACCQ": "acquire an MQTT client",
    "AT+CMQTTREL": "release an MQTT client",
    "AT+CMQTTSSLCFG": "bind an SSL context to an MQTT client",
    "AT+CMQTTCFG": "configure the MQTT client",
    "AT+CMQTTWILLTOPIC": "set the will topic (data follows the > prompt)",
    "AT+CMQTTWILLMSG": "set the will message (data follows the > prompt)",
    "AT+CMQTTCONNECT": "connect to the MQTT broker",
    "AT+CMQTTDISC": "disconnect from the MQTT broker",
    "AT+CMQTTTOPIC": "set the publish topic (data follows the > prompt)",
    "AT+CMQTTPAYLOAD": "set the publish payload (data follows the > prompt)",
    "AT+CMQTTPUB": "publish the prepared message",
    "AT+CMQTTSUBTOPIC": "add a subscribe topic (data follows the > prompt)",
    "AT+CMQTTSUB": "subscribe",
    "AT+CMQTTUNSUBTOPIC": "add an unsubscribe topic",
    "AT+CMQTTUNSUB": "unsubscribe",
    "AT+CGNSSPWR": "GNSS power",
    "AT+CGNSSINFO": "GNSS fix information",
    "AT+CGPS": "GPS session on/off",
    "AT+CGPSINFO": "GPS fix information",
    "AT+CFOTA": "firmware over the air",
    "AT+SMCONF": "SIM800 MQTT: configure",
    "AT+SMCONN": "SIM800 MQTT: connect",
    "AT+SMPUB": "SIM800 MQTT: publish",
    "AT+SMSUB": "SIM800 MQTT: subscribe",
    "AT+SMUNSUB": "SIM800 MQTT: unsubscribe",
    "AT+SMDISC": "SIM800 MQTT: disconnect",
    "AT+SMSTATE": "SIM800 MQTT: connection state",
    "AT+SAPBR": "SIM800 bearer settings",
    "AT+CSTT": "SIM800 APN",
    "AT+CIICR": "SIM800 bring up the wireless connection",
    "AT+CIFSR": "SIM800 local IP address",
}

FINAL_OK = ("OK",)
FINAL_ERR = ("ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE")

# Result codes that a command reports later, after its OK (manual 13.2, 16.2, 17.2).
DEFERRED = {
    "CMQTTCONNECT", "CMQTTDISC", "CMQTTPUB", "CMQTTSUB", "CMQTTUNSUB", "CMQTTSTART",
    "CMQTTSTOP", "NETOPEN", "NETCLOSE", "CIPOPEN", "CIPCLOSE", "CCHOPEN", "CCHSTART",
    "CCHSTOP", "CCHCLOSE", "SMCONN",
}

# Which field of "+NAME: a,b" carries an <err> and in which errtab table.
ERR_FIELD = {
    "CMQTTSTART": (0, "CMQTT"),
    "CMQTTSTOP": (0, "CMQTT"),
    "NETOPEN": (0, "NET"),
    "NETCLOSE": (0, "NET"),
    "CIPOPEN": (1, "NET"),
    "CIPCLOSE": (1, "NET"),
    "CCHSTART": (0, "SSL"),
    "CCHSTOP": (0, "SSL"),
    "CCHOPEN": (1, "SSL"),
    "CCHCLOSE": (1, "SSL"),
}

# Lines the modem sends on its own (manual 9.3, 13.4, 16.4, 17.4, start-up).
URC_PREFIXES = (
    "+CMQTTCONNLOST", "+CMQTTNONET", "+CMQTTRXSTART", "+CMQTTRXTOPIC", "+CMQTTRXPAYLOAD",
    "+CMQTTRXEND", "+CMQTTPING", "+CIPEVENT", "+IPCLOSE", "+CCHEVENT", "+CCH_RECV_CLOSED",
    "+CCH_PEER_CLOSED", "+CCH:", "+CGEV", "+CMTI", "+CDS", "+CLIP", "+CRING", "+CMTE",
    "+CPIN", "+CREG", "+CGREG", "+CEREG", "+CNTP", "+HTTP_PEER_CLOSED", "+HTTP_NONET_EVENT",
    "+SMSTATE", "+SMSUB", "+SMPUB", "+SMUNSUB", "+CTZV", "+PDP", "+CFOTA", "+CGNSSPWR",
)
URC_WORDS = (
    "RDY", "SMS DONE", "PB DONE", "*ATREADY", "RING", "START", "CLOSED",
    "UNDER-VOLTAGE WARNING", "OVER-VOLTAGE WARNING", "UNDER-VOLTAGE WARNING POWER DOWN",
    "OVER-VOLTAGE WARNING POWER DOWN", "NORMAL POWER DOWN", "+CMQTTNONET", "+CCH: CCH STOP",
)
URC_MEANING = {
    "RDY": "modem (re)started: all settings and sessions are gone",
    "*ATREADY": "modem (re)started: all settings and sessions are gone",
    "START": "modem (re)started",
    "SMS DONE": "SMS storage ready (start-up)",
    "PB DONE": "phonebook ready (start-up)",
    "+CMQTTNONET": "network lost: MQTT must be restarted with AT+CMQTTSTART (16.4)",
    "+CIPEVENT": "data network closed unexpectedly: close sockets, AT+NETCLOSE, reopen (13.4)",
    "+IPCLOSE": "socket closed passively (13.4)",
    "+CCH_PEER_CLOSED": "SSL connection closed by the server (17.4)",
    "+CCH: CCH STOP": "SSL service stopped by a network error (17.4)",
    "+CMQTTRXSTART": "incoming publish starts",
    "+CMQTTRXTOPIC": "incoming publish: topic follows",
    "+CMQTTRXPAYLOAD": "incoming publish: payload follows",
    "+CMQTTRXEND": "incoming publish complete",
    "+CGEV": "packet domain event",
    "NORMAL POWER DOWN": "modem powered down",
    "+CGNSSPWR: READY!": "GNSS engine powered and ready (21.2)",
    "+SMSTATE": "SIM800 MQTT connection state",
    "+SMSUB": "SIM800 MQTT: subscribe result or incoming message",
    "+SMPUB": "SIM800 MQTT: publish result",
    "+SMUNSUB": "SIM800 MQTT: unsubscribe result",
}

# 3GPP 27.007 10.1.19/20: <stat> of +CREG/+CGREG/+CEREG.
REG_STAT = {
    0: "not registered, not searching",
    1: "registered, home network",
    2: "not registered, searching",
    3: "registration denied",
    4: "unknown",
    5: "registered, roaming",
    6: "registered for SMS only, home",
    7: "registered for SMS only, roaming",
    11: "emergency bearer services only",
}


def reg_stat(stat):
    return REG_STAT.get(stat if stat is not None else -1, "stat %s" % stat)


CPIN_MEANING = {
    "READY": "SIM ready",
    "SIM PIN": "SIM waits for its PIN",
    "SIM PUK": "SIM blocked: waits for the PUK",
    "PH-SIM PIN": "waits for the phone-to-SIM password",
    "SIM PIN2": "waits for PIN2",
    "SIM PUK2": "waits for PUK2",
    "NOT READY": "SIM not ready",
    "NOT INSERTED": "no SIM inserted",
    "SIM REMOVED": "SIM removed",
}
# CME codes that mean the SIM is missing, locked or not ready (27.007 9.2.1).
SIM_CME = (5, 10, 11, 12, 13, 14, 15, 16, 17, 18)
SIM_CME_TEXT = ("SIM", "PIN", "PUK")

_CMD_RE = re.compile(r"^AT([+&*$#%^]?[A-Z_0-9]*)(=\?|\?|=)?(.*)$", re.I)
_PLUS_RE = re.compile(r"^\+([A-Z_0-9]+):\s?(.*)$")


def split_params(s):
    """Split an AT parameter list on commas outside quotes."""
    out, cur, q = [], "", False
    for ch in s:
        if ch == '"':
            q = not q
            cur += ch
        elif ch == "," and not q:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip() or out:
        out.append(cur.strip())
    return out


def to_int(s):
    try:
        return int(str(s).strip().strip('"'))
    except ValueError:
        return None


def describe_error(kind, code):
    """One errtab lookup, as a dict (name/meaning/class) for text and JSON."""
    hit = errtab.lookup(kind, code)
    if hit is None:
        return {"kind": kind, "code": code, "name": None,
                "meaning": errtab.describe(kind, code), "class": "UNKNOWN"}
    name, meaning, cls = hit
    return {"kind": kind, "code": code, "name": name, "meaning": meaning,
            "class": errtab.CLASS_NAMES[cls] if 0 <= cls < len(errtab.CLASS_NAMES) else "UNKNOWN"}


def describe_error_text(kind, text):
    """A verbose result (+CME ERROR: SIM busy, +IP ERROR: ...) mapped back to its code."""
    code = errtab.code_for(kind, text)
    if code is not None:
        return describe_error(kind, code)
    return {"kind": kind, "code": None, "name": text, "meaning": text, "class": "UNKNOWN"}


# --- input -------------------------------------------------------------------

def is_freematics(text):
    return bool(re.search(r"=== (SENT|RECV)@\d+ ===", text))


class Session:
    def __init__(self, label, meta, records, problems=(), t0=0):
        self.label = label
        self.meta = meta
        self.records = records  # [(lineno, dir, ms, data)]
        self.problems = list(problems)  # [(lineno, text)] the converter could not use
        self.t0 = t0  # ms of the first record (a Freematics log's own stamp)


def load(path):
    """Read a .atx or a Freematics log into a list of Sessions.

    A Freematics log may hold several sessions (the stamps start again after a
    reboot, or a forum thread quotes two runs); line numbers stay the log's own.
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    name = os.path.basename(path)
    if not is_freematics(text):
        meta, records = atx.read(path)
        return [Session(name, meta, records)]
    import freematics2atx  # only Freematics logs need the converter

    lines = text.splitlines(keepends=True)
    fsessions, problems = freematics2atx.convert(lines)
    out = []
    for n, fs in enumerate(fsessions, 1):
        records = [(r.lineno, r.dir, r.delay, r.data) for r in fs.records]
        # times as the log shows them: the first block's own "@ms" stamp
        m = re.search(r"=== (?:SENT|RECV)@(\d+) ===", lines[records[0][0] - 1]) \
            if records else None
        t0 = int(m.group(1)) if m else 0
        mine = [p for p in problems if fs.first_line <= p[0] <= fs.last_line]
        label = name if len(fsessions) == 1 else "%s session %d (lines %d-%d)" % (
            name, n, fs.first_line, fs.last_line)
        out.append(Session(label, {"source": "freematics log"}, records, mine, t0))
    if not out:
        raise ValueError("no SENT/RECV blocks found")
    return out


# --- timeline ------------------------------------------------------------------


def _as_text(data):
    if isinstance(data, (bytes, bytearray)):
        return bytes(data).decode("latin-1")
    return data


class Entry(dict):
    """One timeline item; a dict so that --json is the same data."""


def _new(kind, t, line, text, **kw):
    e = Entry(kind=kind, t=t, line=line, text=text)
    e.update(kw)
    return e


class Timeline:
    """Pairs TX commands with RX answers.  Feed records in order, then .entries."""

    def __init__(self):
        self.entries = []
        self.t = 0
        self.tx = ""
        self.rx = ""
        self.open = None  # command waiting for its final result code
        self.awaiting = {}  # NAME -> command entry whose deferred result has not come
        self.payload_for = None  # command whose '>' prompt was answered with data
        self.payload_left = None
        self.echo_lines = set()

    # commands

    def _command(self, text, line):
        m = _CMD_RE.match(text)
        name = ("AT" + m.group(1)).upper() if m else text.upper()
        form = (m.group(2) or "") if m else ""
        params = split_params(m.group(3)) if m and form == "=" else []
        if m and not form and m.group(3):
            # ATE0, ATI, AT&W: the letters after AT are the command
            name = ("AT" + m.group(1) + m.group(3)).upper()
        meaning = COMMANDS.get(name) or COMMANDS.get(name.rstrip("0123456789"), "")
        if meaning and form == "?":
            meaning = "read: " + meaning
        elif meaning and form == "=?":
            meaning = "test (supported values): " + meaning
        e = _new("cmd", self.t, line, text, name=name, form=form, params=params,
                 meaning=meaning,
                 response=[], final=None, errors=[], result=None, deferred=None, urcs=[],
                 t_final=None)
        if self.open is not None and self.open["final"] is None:
            self.open["final"] = "(no answer)"
        self.entries.append(e)
        self.open = e
        self.echo_lines = {text}
        return e

    def feed_tx(self, data, line):
        self.tx += data
        while self.tx:
            if self.payload_for is not None:
                cmd = self.payload_for
                take = len(self.tx) if self.payload_left is None else self.payload_left
                chunk = self.tx[:take]
                self.tx = self.tx[take:]
                cmd["payload"] = cmd.get("payload", "") + chunk
                if self.payload_left is not None:
                    self.payload_left -= len(chunk)
                if self.payload_left is None or self.payload_left <= 0:
                    self._end_payload()
                    # a CR/LF the converter added after the data is not a command
                    self.tx = self.tx.lstrip("\r\n")
                continue
            cut = min([i for i in (self.tx.find("\r"), self.tx.find("\n")) if i >= 0] or [-1])
            if cut < 0:
                return
            text, self.tx = self.tx[:cut], self.tx[cut + 1:]
            if text.strip():
                self._command(text.strip(), line)

    def _end_payload(self):
        cmd = self.payload_for
        self.payload_for = None
        self.payload_left = None
        if cmd is not None:
            self.open = cmd
            self.echo_lines = {ln.strip() for ln in cmd.get("payload", "").splitlines()
                               if ln.strip()}

    def flush_tx(self, line):
        if self.tx.strip() and self.payload_for is None:
            self._command(self.tx.strip(), line)
        self.tx = ""
        # The modem answers only after the data (or refuses it): when the host
        # stops writing, the data is complete, whatever length was announced.
        if self.payload_for is not None and "payload" in self.payload_for:
            self._end_payload()

    # answers

    def feed_rx(self, data, line):
        self.rx += data
        while True:
            i = self.rx.find("\n")
            if i < 0:
                break
            text, self.rx = self.rx[:i].strip("\r"), self.rx[i + 1:]
            self._rx_line(text.strip(), line)
        # a prompt has no line end: "> " (or ">" in the Freematics logs)
        if self.rx.strip() == ">" or (self.rx.startswith(">") and self.open is not None
                                      and self.rx.strip().startswith(">")):
            self.rx = ""
            self._prompt(line)

    def flush_rx(self, line):
        rest, self.rx = self.rx.strip(), ""
        if rest == ">" or rest.startswith("> "):
            self._prompt(line)
        elif rest:
            self._rx_line(rest, line)

    def _prompt(self, line):
        cmd = self.open
        if cmd is None:
            self.entries.append(_new("noise", self.t, line, ">", meaning="prompt with no command"))
            return
        cmd["final"] = ">"
        cmd["t_final"] = self.t
        self.payload_for = cmd
        self.open = None
        n = to_int(cmd["params"][1]) if len(cmd["params"]) > 1 else None
        self.payload_left = n if n and n > 0 else None

    def _rx_line(self, text, line):
        if not text:
            return
        cmd = self.open
        if text in (">", "> ") and cmd is not None:
            self._prompt(line)  # some modems end the prompt line (SIM7670G: CR LF > CR LF)
            return
        if cmd is not None and (text in self.echo_lines or text.upper() == cmd["text"].upper()
                                or (len(text) > 0 and text in cmd.get("payload", ""))):
            cmd.setdefault("echo", []).append(text)
            return
        m = _PLUS_RE.match(text)
        pname = m.group(1).upper() if m else None
        pargs = m.group(2) if m else ""
        if cmd is not None:
            if text in FINAL_OK or text in FINAL_ERR or text.startswith(
                    ("+CME ERROR", "+CMS ERROR")):
                self._final(cmd, text)
                return
            if pname and cmd["name"] == "AT+" + pname:
                # its own answer, unless it is the deferred result of an earlier
                # command of the same name (+CMQTTCONNECT: 0,0 during a query)
                if not self._deferred(pname, pargs, text, line, cmd["form"] == "?"):
                    cmd["response"].append(text)
                return
        if pname and self._deferred(pname, pargs, text, line, False):
            return
        if self._is_urc(text, pname) or (pname and cmd is None):
            # a "+NAME: ..." line while no command waits is unsolicited by definition
            self._urc(text, pname, line)
            return
        if cmd is not None:
            cmd["response"].append(text)
            return
        self.entries.append(_new("noise", self.t, line, text, meaning="line outside any command"))

    def _final(self, cmd, text):
        cmd["final"] = text
        cmd["t_final"] = self.t
        self.open = None
        self.echo_lines = set()
        code = None
        if text.startswith("+CME ERROR") or text.startswith("+CMS ERROR"):
            kind = text[1:4]
            val = text.split(":", 1)[1].strip() if ":" in text else ""
            code = to_int(val)
            if code is not None:
                cmd["errors"].append(describe_error(kind, code))
            else:
                cmd["errors"].append(describe_error_text(kind, val))
        short = cmd["name"][3:] if cmd["name"].startswith("AT+") else None
        for r in cmd["response"]:
            if r.startswith("+IP ERROR:"):
                cmd["errors"].append(describe_error_text("IP", r.split(":", 1)[1].strip()))
            mm = _PLUS_RE.match(r)
            if mm and short and mm.group(1).upper() == short and cmd["form"] in ("=", ""):
                self._result(cmd, short, mm.group(2))
        if text == "OK" and short in DEFERRED and cmd["form"] in ("=", "") \
                and cmd["result"] is None:
            self.awaiting[short] = cmd

    def _result(self, cmd, short, args):
        """Interpret "+NAME: args" as a result code of a write/exec command."""
        p = split_params(args)
        if short in ERR_FIELD:
            idx, kind = ERR_FIELD[short]
        elif short.startswith("CMQTT") and short not in ("CMQTTCONNLOST",) \
                and not short.startswith("CMQTTRX"):
            idx, kind = 1, "CMQTT"
        elif short.startswith("SM") and short != "SMSTATE":
            idx, kind = len(p) - 1, "SM"
        else:
            return
        if idx >= len(p):
            return
        code = to_int(p[idx])
        if code is None:
            return
        cmd["result"] = code
        if code != 0:
            cmd["errors"].append(describe_error(kind, code))

    def _deferred(self, pname, args, text, line, strict):
        cmd = self.awaiting.get(pname)
        if cmd is None:
            return False
        p = split_params(args)
        # A result code is all integers ("0,0" or "0"); a query answer is not.
        if not p or any(to_int(x) is None for x in p):
            return False
        if strict and len(p) < 2:
            return False
        del self.awaiting[pname]
        before = len(cmd["errors"])
        self._result(cmd, pname, args)
        cmd["deferred"] = {"text": text, "t": self.t, "line": line}
        self.entries.append(_new("result", self.t, line, text, of=cmd["text"],
                                 of_line=cmd["line"], code=cmd["result"],
                                 errors=cmd["errors"][before:]))
        return True

    @staticmethod
    def _is_urc(text, pname):
        if text in URC_WORDS or text.startswith(("UNDER-VOLTAGE", "OVER-VOLTAGE", "+CCH:")):
            return True
        return bool(pname) and ("+" + pname).startswith(URC_PREFIXES)

    def _urc(self, text, pname, line):
        e = _new("urc", self.t, line, text, name=("+" + pname) if pname else text,
                 meaning=urc_meaning(text, pname), errors=[])
        if pname == "CMQTTCONNLOST":
            p = split_params(text.split(":", 1)[1])
            cause = to_int(p[1]) if len(p) > 1 else None
            if cause is not None:
                e["cause"] = cause
                e["errors"].append(describe_error("CONNLOST", cause))
        if self.open is not None:
            self.open["urcs"].append(text)
        self.entries.append(e)

    def feed(self, records):
        prev_dir = None
        for lineno, d, ms, data in records:
            self.t += int(ms or 0)
            data = _as_text(data)
            if d != prev_dir:
                if prev_dir == ">":
                    self.flush_tx(lineno)
                elif prev_dir == "<":
                    self.flush_rx(lineno)
            prev_dir = d
            if d == ">":
                self.feed_tx(data, lineno)
            else:
                self.feed_rx(data, lineno)
        if prev_dir == ">":
            self.flush_tx(None)
        self.flush_rx(None)
        if self.open is not None and self.open["final"] is None:
            self.open["final"] = "(no answer)"
        return self.entries


def urc_meaning(text, pname):
    if pname in ("CREG", "CGREG", "CEREG"):
        p = split_params(text.split(":", 1)[1])
        # URC form is "+CREG: <stat>[,...]"
        stat = to_int(p[0]) if p else None
        return "registration: " + reg_stat(stat)
    if pname == "CPIN":
        v = text.split(":", 1)[1].strip()
        return CPIN_MEANING.get(v, "SIM state " + v)
    if pname == "CMQTTCONNLOST":
        return "MQTT connection lost passively: connect again (16.4)"
    for k, v in URC_MEANING.items():
        if text.startswith(k):
            return v
    return "unsolicited result code"


def annotate(cmd):
    """What the answer of a command means, in one line."""
    final = cmd["final"]
    name = cmd["name"]
    resp = cmd["response"]
    notes = []
    for r in resp:
        m = _PLUS_RE.match(r)
        if not m:
            continue
        pn, args = m.group(1).upper(), m.group(2)
        p = split_params(args)
        if pn in ("CREG", "CGREG", "CEREG") and cmd["form"] == "?" and len(p) >= 2:
            notes.append("%s: %s" % (pn, reg_stat(to_int(p[1]))))
        elif pn == "CPIN":
            notes.append(CPIN_MEANING.get(args.strip(), "SIM state " + args.strip()))
        elif pn == "CSQ" and p:
            rssi = to_int(p[0])
            if rssi == 99 or rssi is None:
                notes.append("signal unknown")
            else:
                notes.append("signal %d dBm" % (-113 + 2 * rssi))
        elif pn == "CMQTTCONNECT" and cmd["form"] == "?":
            if len(p) == 1:
                notes.append("client %s not connected" % p[0])
            else:
                notes.append("client %s connected to %s" % (p[0], p[1]))
        elif pn == "NETOPEN" and cmd["form"] == "?":
            notes.append("network %s" % ("open" if to_int(p[0]) == 1 else "closed"))
        elif pn == "CGMR":
            notes.append("firmware " + args.strip())
        elif pn == "IPADDR":
            notes.append("IP " + args.strip())
    for r in resp:
        if r.startswith("Revision:"):
            notes.append("firmware " + r.split(":", 1)[1].strip())
    for err in cmd["errors"]:
        notes.append("%s %s: %s" % (err["kind"], err["code"], err["meaning"]))
    if final == ">":
        notes.append("prompt: data follows")
    elif final == "OK" and not cmd["errors"]:
        if cmd["name"][3:] in DEFERRED and cmd["form"] in ("=", ""):
            d = cmd["deferred"]
            if d is None and cmd["result"] is None:
                notes.append("accepted only: its result code (+%s: ...) never arrived"
                             % name[3:])
            elif cmd["result"] == 0:
                notes.append("done")
        elif not notes:
            notes.append("ok")
    elif final == "(no answer)":
        notes.append("no final result code")
    elif final and final not in FINAL_OK and not cmd["errors"]:
        notes.append("failed (%s)" % final)
    return "; ".join(notes)


# --- diagnosis -----------------------------------------------------------------


def _finding(fid, severity, title, detail, remedy, evidence):
    return {"id": fid, "severity": severity, "title": title, "detail": detail,
            "remedy": remedy, "evidence": evidence}


def modem_info(cmds):
    info = {}
    for c in cmds:
        for r in c["response"]:
            if r.startswith("Model:"):
                info["model"] = r.split(":", 1)[1].strip()
            elif r.startswith("Revision:"):
                info["revision"] = r.split(":", 1)[1].strip()
            elif r.startswith("+CGMR:"):
                info["cgmr"] = r.split(":", 1)[1].strip()
        if c["name"] in ("AT+CGMR", "AT+GMR") and c["final"] == "OK":
            plain = [r for r in c["response"] if not r.startswith("+")]
            if plain:
                info["cgmr"] = plain[0].strip()
    return info


def _ev(e):
    return {"line": e["line"], "t": e["t"], "text": e["text"]}


def _client(cmd):
    return cmd["params"][0] if cmd["params"] else "0"


NEEDS_CONNECTION = (
    "AT+CMQTTTOPIC", "AT+CMQTTPAYLOAD", "AT+CMQTTPUB", "AT+CMQTTSUBTOPIC", "AT+CMQTTSUB",
    "AT+CMQTTUNSUBTOPIC", "AT+CMQTTUNSUB",
)


def _before(a, b):
    return (a["t"], a["line"] or 0) < (b["t"], b["line"] or 0)


def _fw(rev):
    return (" (now " + rev + ")") if rev else ""


def _asked_for_reset(cmds, urc):
    """True when the last command before a start-up URC restarted the modem on purpose."""
    prev = [c for c in cmds if _before(c, urc)]
    if not prev:
        return False
    c = prev[-1]
    if c["name"] in ("AT+CRESET", "ATZ", "AT+CPOF"):
        return True
    # AT+CFUN=<fun>,1: reset before changing the functionality (27.007 8.2)
    return c["name"] == "AT+CFUN" and len(c["params"]) > 1 and c["params"][1] == "1"


def _mqtt_refusal(fid, r, c, idx, cmds, rev):
    """The finding for an MQTT command refused with CMQTT 11 or 14 (16.3.1)."""
    meaning = r["errors"][-1]["meaning"] if r["errors"] else "?"
    if fid == "mqtt_not_connected":
        return _finding(
            fid, "error",
            "%s refused with CMQTT %s (%s) and no AT+CMQTTCONNECT before it"
            % (r["name"], r["result"], meaning),
            "Client %s was never connected in this log." % idx,
            "AT+CMQTTSTART, AT+CMQTTACCQ, AT+CMQTTCONNECT and wait for "
            "+CMQTTCONNECT: %s,0 before publishing or subscribing." % idx,
            [_ev(r)])
    gap = r["t"] - (c["t_final"] or c["t"])
    if fid == "mqtt_client_busy":
        return _finding(
            fid, "error",
            "%s refused with CMQTT 14 'client is busy': client %s never finished "
            "connecting" % (r["name"], idx),
            "AT+CMQTTCONNECT was only acknowledged (OK at t=%s ms); its result code "
            "+CMQTTCONNECT: %s,<err> had not arrived when %s was sent %d ms later%s. "
            "The client was still busy with the connect, so the modem refused the "
            "command. The log treated the bare OK as a completed connect."
            % (c["t_final"], idx, r["name"], gap,
               "" if c["deferred"] is None else " (it came later)"),
            "Treat OK as 'accepted' only (16.2.8): wait, with a deadline (e.g. 30 s), for "
            "+CMQTTCONNECT: %s,<err> before SUBTOPIC/TOPIC/PUB; go on only on <err> 0, "
            "otherwise look the code up and connect again. Do not send MQTT commands "
            "while the connect is in flight. If the result never comes even with a "
            "proper wait, upgrade the modem firmware%s: in the forum thread 'client is "
            "busy' was reported cured by a firmware update, and LE11B02 builds needed "
            "one for SSL/MQTT." % (idx, _fw(rev)),
            [_ev(c), _ev(r)])
    queried = [q for q in cmds if q["name"] == "AT+CMQTTCONNECT" and q["form"] == "?"
               and _before(c, q)]
    not_conn = [q for q in queried if ("+CMQTTCONNECT: %s" % idx) in q["response"]]
    query_note = ""
    if not_conn:
        query_note = (" The query AT+CMQTTCONNECT? answered '+CMQTTCONNECT: %s' with no "
                      "server address, which means client %s is NOT connected (a connected "
                      "client lists its server, keepalive and clean session, 16.2.8)."
                      % (idx, idx))
    if fid == "mqtt_no_connection":
        return _finding(
            fid, "error",
            "%s refused with CMQTT 11 'no connection' after a connect that was only "
            "acknowledged" % r["name"],
            "AT+CMQTTCONNECT got OK at t=%s ms but no +CMQTTCONNECT: %s,0 followed; %s at "
            "t=%s ms was refused with CMQTT 11 'no connection'.%s%s"
            % (c["t_final"], idx, r["name"], r["t"], query_note,
               " Yet the host went on as if connected." if not_conn else ""),
            "Wait for the URC +CMQTTCONNECT: %s,<err> (deadline ~30 s) and go on only "
            "on <err> 0; on another code look it up (e.g. 32 handshake fail: certificates, "
            "sslversion, clock; 26 closed by server: broker policy/client id). Judge "
            "AT+CMQTTCONNECT? by the server address in the answer, not by OK. If "
            "the result never arrives, check the firmware revision%s (ATI / AT+CGMR): "
            "old LE11B02 builds needed an upgrade for MQTT(S)." % (idx, _fw(rev)),
            [_ev(c)] + [_ev(q) for q in not_conn if _before(q, r)] + [_ev(r)])
    if fid == "mqtt_connection_dropped":
        return _finding(
            fid, "error",
            "%s refused with CMQTT 11 'no connection': the connection dropped without "
            "+CMQTTCONNLOST" % r["name"],
            "Client %s was connected (+CMQTTCONNECT: %s,0 at t=%s ms) but at t=%s ms the "
            "modem had no connection, and no +CMQTTCONNLOST was seen.%s"
            % (idx, idx, c["deferred"]["t"] if c["deferred"] else c["t_final"], r["t"],
               query_note),
            "Treat CMQTT 11 on any MQTT command as a lost connection: AT+CMQTTCONNECT again "
            "(with backoff), re-subscribe, and re-send unacknowledged messages; check "
            "keepalive against the broker and the data call (AT+NETOPEN?, +CGEV).",
            [_ev(c), _ev(r)])
    return _finding(
        fid, "warning",
        "%s refused with CMQTT 14 'client is busy' while connected" % r["name"],
        "Client %s was busy with an earlier operation (a publish or subscribe whose result "
        "code had not come yet)." % idx,
        "One MQTT operation per client at a time: wait for its +CMQTTPUB/+CMQTTSUB/"
        "+CMQTTUNSUB result (or a deadline) before the next, then retry.",
        [_ev(c), _ev(r)])


def diagnose(entries, meta):
    cmds = [e for e in entries if e["kind"] == "cmd"]
    urcs = [e for e in entries if e["kind"] == "urc"]
    info = modem_info(cmds)
    for k in ("model", "revision"):
        if k in meta and k not in info:
            info[k] = meta[k]
    rev = info.get("cgmr") or info.get("revision")
    out = []

    # MQTT: connect results, then every refusal for want of a connection.
    connects = [c for c in cmds if c["name"] == "AT+CMQTTCONNECT" and c["form"] == "="]
    for c in connects:
        if c["result"] in (None, 0):
            continue
        idx = _client(c)
        err = c["errors"][-1] if c["errors"] else {"meaning": "?", "class": "UNKNOWN"}
        connected_later = any(
            x["name"] == "AT+CMQTTCONNECT" and x["form"] == "?" and x["t"] >= c["t"]
            and any(r.startswith("+CMQTTCONNECT: %s," % idx) for r in x["response"])
            for x in cmds)
        if err["class"] == "STATE" and connected_later:
            continue  # e.g. 19 'client is used' on a re-init: it is connected already
        out.append(_finding(
            "mqtt_connect_failed", "error",
            "MQTT connect failed: +CMQTTCONNECT: %s,%s (%s)" % (idx, c["result"],
                                                               err["meaning"]),
            "The broker connection of client %s failed with CMQTT error %s (%s)." % (
                idx, c["result"], err["class"]),
            "Fix the cause the code names (32 handshake fail / 33 not set certificate: "
            "SSL context and certificates; 25 DNS error / 3 sock connect fail: broker "
            "address, PDP context; 9 network not opened: AT+CMQTTSTART / data call), then "
            "AT+CMQTTCONNECT again.",
            [_ev(c)] + ([c["deferred"]] if c["deferred"] else [])))

    seen_ids = set()
    for r in cmds:
        if r["name"] not in NEEDS_CONNECTION or r["result"] not in (11, 14):
            continue
        idx = _client(r)
        before = [c for c in connects if _client(c) == idx and _before(c, r)]
        c = before[-1] if before else None
        if c is None:
            fid = "mqtt_not_connected"
        elif c["result"] is None or (c["deferred"] and c["deferred"]["t"] > r["t"]):
            fid = "mqtt_client_busy" if r["result"] == 14 else "mqtt_no_connection"
        elif c["result"] != 0:
            continue  # the failed connect is the finding
        elif any(u["text"].startswith("+CMQTTCONNLOST") and _before(c, u)
                 and (_before(u, r) or u["text"] in r["urcs"]) for u in urcs):
            continue  # the lost connection is the finding
        else:
            fid = "mqtt_connection_dropped" if r["result"] == 11 else "mqtt_busy_operation"
        if fid in seen_ids:
            continue
        seen_ids.add(fid)
        out.append(_mqtt_refusal(fid, r, c, idx, cmds, rev))

    # sslversion refused: old firmware.
    for c in cmds:
        if c["name"] == "AT+CSSLCFG" and c["params"] and c["params"][0].strip('"').lower() \
                == "sslversion" and c["final"] not in ("OK", None):
            out.append(_finding(
                "sslversion_refused", "error",
                "AT+CSSLCFG=\"sslversion\" refused (%s) by the modem firmware%s" % (
                    c["final"], (" " + rev) if rev else ""),
                "The firmware%s does not accept the SSL version setting. The forum thread "
                "saw this on LE11B02SIM7500A: SSL/MQTT(S) commands failed until the module "
                "was upgraded (to LE11B03SIM7600A-H)." % ((" revision " + rev) if rev else
                                                           " (revision not in the log: "
                                                           "send ATI or AT+CGMR)"),
                "Upgrade the modem firmware (SIMCom USB update tool, or FOTA AT+CFOTA where "
                "the carrier supports it), then retry the SSL configuration.",
                [_ev(c)]))
            break

    # SIM not ready.
    sim_bad = []
    for c in cmds:
        for err in c["errors"]:
            if err["kind"] == "CME" and (err["code"] in SIM_CME or (
                    err["code"] is None and any(w in str(err["name"]).upper()
                                                for w in SIM_CME_TEXT))):
                sim_bad.append((c, "%s -> +CME ERROR %s (%s)" % (
                    c["text"], err["code"], err["meaning"])))
        if c["name"] == "AT+CPIN" and c["form"] == "?":
            for r in c["response"]:
                v = r.split(":", 1)[1].strip() if ":" in r else ""
                if r.startswith("+CPIN:") and v != "READY":
                    sim_bad.append((c, "%s -> %s (%s)" % (c["text"], r, CPIN_MEANING.get(
                        v, "not ready"))))
    for u in urcs:
        if u["text"].startswith("+CPIN:") and u["text"].split(":", 1)[1].strip() != "READY":
            sim_bad.append((u, "%s (%s)" % (u["text"], u["meaning"])))
    if sim_bad:
        ready_later = any(r == "+CPIN: READY" for c in cmds for r in c["response"]) or any(
            u["text"] == "+CPIN: READY" for u in urcs)
        out.append(_finding(
            "sim_not_ready", "warning" if ready_later else "error",
            "SIM not ready: " + sim_bad[0][1],
            "The SIM was missing, locked or still initialising%s." % (
                "; it became ready later" if ready_later else " for the whole session"),
            "Check the SIM is inserted and seated; enter the PIN with AT+CPIN=<pin> (or "
            "disable it); after power-up wait for +CPIN: READY (or poll AT+CPIN? with a "
            "deadline) before registration and data commands.",
            [_ev(x) for x, _ in sim_bad[:4]]))

    # Registration denied / never registered.
    denied = []
    registered = False
    for c in cmds:
        if c["name"] in ("AT+CREG", "AT+CGREG", "AT+CEREG") and c["form"] == "?":
            for r in c["response"]:
                p = split_params(r.split(":", 1)[1]) if ":" in r else []
                st = to_int(p[1]) if len(p) > 1 else None
                if st == 3:
                    denied.append(c)
                if st in (1, 5):
                    registered = True
    for u in urcs:
        if u["name"] in ("+CREG", "+CGREG", "+CEREG"):
            p = split_params(u["text"].split(":", 1)[1])
            st = to_int(p[0]) if p else None
            if st == 3:
                denied.append(u)
            if st in (1, 5):
                registered = True
    if denied:
        out.append(_finding(
            "registration_denied", "error",
            "Network registration denied (%s)" % denied[0]["text"],
            "The network rejected the registration (<stat> 3)%s." % (
                "; it registered later" if registered else ""),
            "The SIM/subscription is not allowed on this network: check the SIM is active "
            "and has data, roaming is permitted, the IMEI is not barred, and the RAT/band "
            "(AT+CNMP) suits the carrier; ask the carrier. Retrying harder does not help.",
            [_ev(x) for x in denied[:4]]))

    # PDP context / NETOPEN failures.
    net = []
    for c in cmds:
        short = c["name"][3:]
        # "+IP ERROR: Network is already opened" (IP 4) means the data call is up
        already = c["errors"] and all(e["kind"] == "IP" and e["code"] == 4
                                      for e in c["errors"])
        if short in ("NETOPEN", "CGACT", "CGATT", "IPADDR", "CIICR", "CSTT", "SAPBR",
                     "CGDCONT") and (c["errors"] or c["final"] in FINAL_ERR
                                     or c["final"] == "(no answer)"):
            if c["form"] == "?" or already:
                continue
            net.append(c)
        elif c["name"].startswith("AT+CMQTT") and c["result"] in (7, 9):
            net.append(c)
    nonet = [u for u in urcs if u["text"].startswith(("+CMQTTNONET", "+CIPEVENT"))]
    if net or nonet:
        first = net[0] if net else nonet[0]
        if first["kind"] == "urc":
            title = "No data connection: %s (%s)" % (first["text"], first["meaning"])
        else:
            why = first["errors"][-1]["meaning"] if first["errors"] else first["final"]
            title = "No data connection: %s -> %s" % (first["text"], why)
        out.append(_finding(
            "no_pdp_context", "error",
            title,
            "The packet data connection (PDP context / AT+NETOPEN) could not be brought up "
            "or was lost, so nothing IP-based (MQTT, SSL) can work.",
            "Check registration (+CGREG/+CEREG 1 or 5) and the APN (AT+CGDCONT=1,\"IP\","
            "\"<apn>\"); then AT+NETOPEN and wait for +NETOPEN: 0. 'Network is already "
            "opened' is harmless. After +CMQTTNONET or +CIPEVENT close and reopen the "
            "network and restart MQTT.",
            [_ev(x) for x in (net + nonet)[:4]]))

    # Connection lost.
    for u in urcs:
        if u["text"].startswith("+CMQTTCONNLOST"):
            err = u["errors"][0] if u["errors"] else {"code": "?", "meaning": "unknown cause"}
            again = [c for c in cmds if c["name"] == "AT+CMQTTCONNECT" and c["form"] == "="
                     and c["t"] >= u["t"] and (c["line"] or 0) >= (u["line"] or 0)]
            out.append(_finding(
                "mqtt_connection_lost", "error" if not again else "warning",
                "MQTT connection lost: %s (cause %s: %s)" % (u["text"], err["code"],
                                                            err["meaning"]),
                "The modem dropped the broker connection by itself%s." % (
                    "; the host connected again" if again else
                    " and the host did not connect again"),
                "Reconnect with AT+CMQTTCONNECT (client stays acquired), with backoff; cause "
                "3 (network closed) needs the data call back first (AT+NETOPEN); repeated "
                "1/2 point at the broker (keepalive, duplicate client id, policy).",
                [_ev(u)]))
            break

    # URCs the host did not act on.
    unhandled = []
    for u in urcs:
        later = [c for c in cmds if (c["t"], c["line"] or 0) > (u["t"], u["line"] or 0)]
        names = {c["name"] for c in later}
        if u["text"].startswith("+CMQTTCONNLOST") and later and "AT+CMQTTCONNECT" not in names:
            unhandled.append((u, "commands went on without reconnecting"))
        elif u["text"].startswith("+CMQTTNONET") and later and "AT+CMQTTSTART" not in names:
            unhandled.append((u, "MQTT was not restarted with AT+CMQTTSTART"))
        elif u["text"].startswith("+CIPEVENT") and later and "AT+NETOPEN" not in names:
            unhandled.append((u, "the network was not reopened"))
        elif u["text"] in ("RDY", "*ATREADY", "START") and any(
                c["t"] < u["t"] for c in cmds) and later and not (
                names & {"ATE0", "AT+CPIN", "AT+CMQTTSTART", "AT+NETOPEN"}):
            unhandled.append((u, "the modem restarted mid-session and was not set up again"))
        elif u["text"].startswith("+CMQTTRXSTART") and not any(
                x["text"].startswith("+CMQTTRXEND") for x in urcs if x["t"] >= u["t"]):
            unhandled.append((u, "incoming publish never completed (+CMQTTRXEND missing)"))
        elif u["meaning"] == "unsolicited result code":
            unhandled.append((u, "not a URC this tool knows"))
    if unhandled:
        out.append(_finding(
            "urc_unhandled", "warning",
            "Unhandled URC: %s (%s)" % (unhandled[0][0]["text"], unhandled[0][1]),
            "; ".join("%s: %s" % (u["text"], why) for u, why in unhandled[:6]),
            "Dispatch every URC as it arrives (the line can come between any command's "
            "lines) and act on the state-changing ones: reconnect after +CMQTTCONNLOST, "
            "AT+CMQTTSTART after +CMQTTNONET, re-initialise after RDY.",
            [_ev(u) for u, _ in unhandled[:6]]))

    # The modem restarted in the middle of the session.
    restarts = [u for u in urcs if u["text"] in ("RDY", "*ATREADY", "START")
                and any(_before(c, u) for c in cmds) and not _asked_for_reset(cmds, u)]
    lost = []
    if restarts:
        r0 = restarts[0]
        lost = [c for c in cmds if _before(c, r0) and c["final"] == "(no answer)"
                and not any(_before(c, x) and _before(x, r0) for x in cmds)]
        out.append(_finding(
            "modem_restarted", "warning",
            "The modem restarted mid-session (%s at t=%s ms)%s" % (
                r0["text"], r0["t"], (": %s got no answer" % lost[0]["text"]) if lost else ""),
            "Everything the modem held (echo/CMEE settings, PDP context, MQTT clients, SSL "
            "contexts) is gone after a restart.",
            "Find out why: supply brown-out during transmit bursts (the modem wants ~2 A "
            "peaks), a PWRKEY/RESET glitch, or its own watchdog. The host must notice RDY "
            "and set everything up again.",
            [_ev(r0)] + [_ev(c) for c in lost]))

    # Commands that got no answer at all (a bare "AT" probe during autobaud is normal).
    silent = [c for c in cmds if c["final"] == "(no answer)" and c["name"] != "AT"
              and c not in lost]
    if silent:
        out.append(_finding(
            "no_answer", "warning",
            "%d command(s) got no final result code (first: %s)" % (len(silent),
                                                                   silent[0]["text"]),
            "The log ends or moves on before OK/ERROR arrived.",
            "Give every command a deadline and treat a missing answer as a failure; check "
            "baud rate, wiring and that the modem is powered.",
            [_ev(c) for c in silent[:4]]))

    order = {"error": 0, "warning": 1, "info": 2}
    # Within a severity the earliest evidence first: it is usually the root cause.
    out.sort(key=lambda f: (order[f["severity"]],
                            min([x["t"] for x in f["evidence"]] or [0])))
    return info, out


# --- output --------------------------------------------------------------------


def analyse(session):
    tl = Timeline()
    tl.t = session.t0
    entries = tl.feed(session.records)
    for e in entries:
        if e["kind"] == "cmd":
            e["annotation"] = annotate(e)
    info, findings = diagnose(entries, session.meta)
    return {
        "label": session.label,
        "conversion_problems": [{"line": ln, "text": t} for ln, t in session.problems],
        "meta": session.meta,
        "modem": info,
        "timeline": entries,
        "findings": findings,
        "verdict": findings[0]["title"] if findings else "no known failure mode found",
    }


def _clip(s, n=70):
    s = s.replace("\r", "\\r").replace("\n", "\\n")
    return s if len(s) <= n else s[: n - 3] + "..."


def render_text(report, out):
    w = out.write
    for s in report["sessions"]:
        w("=" * 78 + "\n")
        w("%s\n" % s["label"])
        if s["modem"]:
            w("modem: %s\n" % ", ".join("%s=%s" % kv for kv in sorted(s["modem"].items())))
        w("-" * 78 + "\n")
        for e in s["timeline"]:
            t = "%8d" % e["t"]
            if e["kind"] == "cmd":
                w("%s > %s" % (t, _clip(e["text"])))
                w("   [%s]\n" % e["meaning"] if e["meaning"] else "\n")
                for r in e["response"]:
                    w("%s     < %s\n" % (" " * 8, _clip(r)))
                if "payload" in e:
                    w("%s     > (data) %s\n" % (" " * 8, _clip(e["payload"].strip())))
                w("%s     = %s: %s\n" % (" " * 8, e["final"], e["annotation"]))
            elif e["kind"] == "result":
                w("%s < %s   [result of %s]\n" % (t, e["text"], _clip(e["of"], 40)))
                for err in e["errors"]:
                    w("%s     = %s %s: %s\n" % (" " * 8, err["kind"], err["code"],
                                                 err["meaning"]))
            elif e["kind"] == "urc":
                w("%s < %s   [URC: %s]\n" % (t, e["text"], e["meaning"]))
                for err in e["errors"]:
                    w("%s     = cause %s: %s\n" % (" " * 8, err["code"], err["meaning"]))
            else:
                w("%s ? %s   [%s]\n" % (t, _clip(e["text"]), e["meaning"]))
        for pr in s["conversion_problems"]:
            w("line %s: not converted: %s\n" % (pr["line"], pr["text"]))
        w("-" * 78 + "\n")
        w("DIAGNOSIS: %s\n" % s["verdict"])
        for f in s["findings"]:
            w("\n[%s] %s\n" % (f["severity"].upper(), f["title"]))
            w("  why:    %s\n" % f["detail"])
            w("  remedy: %s\n" % f["remedy"])
            ev = ", ".join("line %s t=%s %s" % (x["line"], x["t"], _clip(x["text"], 40))
                           for x in f["evidence"])
            w("  seen:   %s\n" % ev)
        w("\n")


def run(path):
    sessions = load(path)
    return {"source": path, "sessions": [analyse(s) for s in sessions]}


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Annotated timeline and diagnosis of a modem session (.atx transcript "
                    "or Freematics '=== SENT@ms ===' debug log).")
    p.add_argument("log", help=".atx transcript or Freematics debug log")
    p.add_argument("--json", action="store_true", help="print the same as JSON data")
    a = p.parse_args(argv)
    try:
        report = run(a.log)
    except (OSError, ValueError) as e:
        sys.stderr.write("logdoctor: %s: %s\n" % (a.log, e))
        return 2
    if a.json:
        json.dump(report, sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    else:
        render_text(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
