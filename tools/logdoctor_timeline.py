"""AT stream timeline: pair each command with its answer, deferred results, URCs, data.

Owns the parsing half of tools/logdoctor.py.  Records ``(lineno, dir, ms, data)``
(as ``atmq.atx.read`` gives them) go in; a list of entries comes out, each a
dict: ``cmd`` (a command with its response lines, final result code, data sent
after a ``>`` prompt, errors looked up in ``atmq.errtab``, and its deferred
result), ``result`` (a result code that came after the OK, e.g.
``+CMQTTCONNECT: 0,0``), ``urc`` and ``noise``.  Also the short meaning of each
command and status line (descriptions, not error tables).  Chunking does not
matter: the RX stream is reassembled into lines whatever the record boundaries.
"""

import os
import re
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_LIB = os.path.join(os.path.dirname(_HERE), "lib")
if _LIB not in sys.path:
    sys.path.insert(0, _LIB)

from atmq import errtab  # noqa: E402


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
    "+SMSTATE", "+SMSUB", "+SMPUBLISH", "+SMPUB", "+SMUNSUB", "+CTZV", "+PDP", "+CFOTA",
    "+CGNSSPWR",
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
    "+SMPUBLISH": "SIM800 MQTT: incoming message",
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
        if idx < 0 or idx >= len(p):  # "+SMxxx:" with no argument (a garbled line)
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


