"""A fault at one step of a session: the catalogue of faults and the scenario for each.

Owns what "fault F at step k" means for every AT command, so one mechanism serves
every command (tools/fault_matrix.py runs it): a step is the command's head (its
text up to and including '=' or '?', e.g. ``AT+CMQTTPUB=``) and which occurrence
of that head in the session it is (the k-th command of a clean recording), and the
fault fires inside the simulator on exactly that command (faults.py, "nth").

Faults (the columns of the matrix):

  reboot       the module reboots on receiving the command: unanswered, state reset,
               boot URCs (faults.py reboot "instead")
  reboot_wait  a two-phase command is answered OK, then the module reboots before
               its result URC (a publish waiting for +CMQTTPUB)
  connlost     answered, then +CMQTTCONNLOST: 0,1 (only while connected; 003 s.16.4)
  nonet        answered, then the network is gone for NONET_S (+CMQTTNONET etc., s.16.4)
  noanswer     the command is lost: no answer at all (the caller's timeout)
  error        plain ERROR instead of the answer
  code         the command's own error codes (OWN_CODES), one run each
  stray_urc    STRAY_URC inside the answer, at the line boundary before the final code

Only codes a working session can meet by bad luck are listed (TRANSIENT/STATE in
lib/atmq/errtab.py); FATAL ones (bad credentials, 27-31, 33) must stop the link
by design, so "back within 15 s" does not apply to them.
"""

import re

FAULTS = ("reboot", "reboot_wait", "connlost", "nonet", "noanswer", "error", "code",
          "stray_urc")
NONET_S = 3.0
STRAY_URC = '+CMTI: "SM",1'   # 003 s.4 new-SMS indication: nothing the link expects

# Commands that answer OK and report their outcome in a later URC (a "result wait").
TWO_PHASE = ("AT+CMQTTSTART", "AT+CMQTTSTOP", "AT+CMQTTCONNECT=", "AT+CMQTTDISC=",
             "AT+CMQTTSUB=", "AT+CMQTTUNSUB=", "AT+CMQTTPUB=", "AT+NETOPEN", "AT+NETCLOSE",
             "AT+CNTP")

# head -> [(label, shape, text)]: shape "result" = OK then the URC `text`;
# "refuse" = the information line `text` then ERROR; "cme" = +CME ERROR: `text`
# (per AT+CMEE).  "{i}" is the command's client index.
OWN_CODES = {
    # 003 s.16.2.1 case 2: OK, +CMQTTSTART: <err>; 16.3.1 7 network open fail
    "AT+CMQTTSTART": [("CMQTT 7", "result", "+CMQTTSTART: 7")],
    # 16.3.1 19 client is used (a slot the module kept across an ESP32 reset)
    "AT+CMQTTACCQ=": [("CMQTT 19", "refuse", "+CMQTTACCQ: {i},19")],
    "AT+CMQTTWILLTOPIC=": [("CMQTT 14", "refuse", "+CMQTTWILLTOPIC: {i},14")],
    "AT+CMQTTWILLMSG=": [("CMQTT 14", "refuse", "+CMQTTWILLMSG: {i},14")],
    # 16.2.8: OK then +CMQTTCONNECT: <i>,<err>; 3 sock connect fail, 26 closed by
    # server, 29 server unavailable; refused at once with 14 client is busy
    "AT+CMQTTCONNECT=": [("CMQTT 3", "result", "+CMQTTCONNECT: {i},3"),
                         ("CMQTT 26", "result", "+CMQTTCONNECT: {i},26"),
                         ("CMQTT 29", "result", "+CMQTTCONNECT: {i},29"),
                         ("CMQTT 14", "refuse", "+CMQTTCONNECT: {i},14")],
    "AT+CMQTTSUBTOPIC=": [("CMQTT 14", "refuse", "+CMQTTSUBTOPIC: {i},14")],
    # 16.2.13: 17 timeout (no SUBACK), 11 no connection
    "AT+CMQTTSUB=": [("CMQTT 17", "result", "+CMQTTSUB: {i},17"),
                     ("CMQTT 11", "refuse", "+CMQTTSUB: {i},11")],
    "AT+CMQTTTOPIC=": [("CMQTT 14", "refuse", "+CMQTTTOPIC: {i},14"),
                       ("CMQTT 11", "refuse", "+CMQTTTOPIC: {i},11")],
    "AT+CMQTTPAYLOAD=": [("CMQTT 14", "refuse", "+CMQTTPAYLOAD: {i},14")],
    # 16.2.12: OK then +CMQTTPUB: <i>,<err>; 11 no connection, 17 timeout (no PUBACK)
    "AT+CMQTTPUB=": [("CMQTT 11", "result", "+CMQTTPUB: {i},11"),
                     ("CMQTT 17", "result", "+CMQTTPUB: {i},17"),
                     ("CMQTT 14", "refuse", "+CMQTTPUB: {i},14")],
    # 13.2.1: OK, +NETOPEN: <err> (13.3.2 1 network failure); case 2 already opened
    "AT+NETOPEN": [("NET 1", "result", "+NETOPEN: 1"),
                   ("already open", "refuse", "+IP ERROR: Network is already opened")],
    # 25.3 CME 14 SIM busy (after boot, before the SIM is read)
    "AT+CPIN?": [("CME 14", "cme", "14")],
    "AT+CICCID": [("CME 14", "cme", "14")],
    # 12.3.2 NTP <err> 4 network error (the exec form answers OK, then +CNTP: <err>)
    "AT+CNTP": [("NTP 4", "result", "+CNTP: 4")],
}


def head(text):
    """'AT+CMQTTPUB=0,1,60' -> 'AT+CMQTTPUB='; 'AT+CPIN?' and 'ATE0' stay as they are."""
    for i, ch in enumerate(text):
        if ch == "=":
            return text[:i + 1] if text[i + 1:i + 2] != "?" else text[:i + 2]
        if ch == "?":
            return text[:i + 1]
    return text


def head_regex(h):
    """Exactly this head: AT+CMQTTSUB= must not match AT+CMQTTSUBTOPIC=."""
    return "^" + re.escape(h) + ("" if h.endswith("=") else "$")


def client_index(text):
    """First argument of a CMQTT command when it is a client index, else 0."""
    args = text.partition("=")[2]
    first = args.split(",", 1)[0].strip()
    return int(first) if first in ("0", "1") else 0


def applies(fault, step):
    """Whether `fault` means something at `step` (a dict: head, connected)."""
    if fault == "connlost":
        return bool(step.get("connected"))
    if fault == "reboot_wait":
        return step["head"] in TWO_PHASE
    if fault == "code":
        return step["head"] in OWN_CODES
    return fault in FAULTS


def variants(fault, step):
    """[(label, fault dict without trigger)] for this fault at this step."""
    if fault == "reboot":
        return [("reboot", {"kind": "reboot", "when": "instead"})]
    if fault == "reboot_wait":
        return [("reboot_wait", {"kind": "reboot", "when": "after"})]
    if fault == "connlost":
        return [("connlost", {"kind": "connlost", "when": "after", "cause": 1})]
    if fault == "nonet":
        return [("nonet", {"kind": "nonet", "when": "after", "duration_s": NONET_S})]
    if fault == "noanswer":
        return [("noanswer", {"kind": "noanswer"})]
    if fault == "error":
        return [("error", {"kind": "error"})]
    if fault == "stray_urc":
        return [("stray_urc", {"kind": "stray_urc", "when": "before", "urc": STRAY_URC,
                               "offset": "final"})]
    if fault == "code":
        out = []
        idx = client_index(step["text"])
        for label, shape, text in OWN_CODES.get(step["head"], ()):
            text = text.replace("{i}", str(idx))
            if shape == "result":
                d = {"kind": "result_error", "urc": text}
            elif shape == "refuse":
                d = {"kind": "error", "lines": [text]}
            else:
                d = {"kind": "error", "cme": int(text)}
            out.append((label, d))
        return out
    raise ValueError("unknown fault %r (have %s)" % (fault, ", ".join(FAULTS)))


def scenario(step, fault_dict, by_index=False):
    """The scenario firing `fault_dict` on the step's command: its nth occurrence, or
    (by_index) whatever command comes k-th, as in the recording or not."""
    if by_index:
        d = dict(fault_dict, after_commands=step["k"], times=1)
    else:
        d = dict(fault_dict, regex=head_regex(step["head"]), nth=step["nth"], times=1)
    return {"faults": [d]}


def duration(fault_dict):
    """Seconds the fault keeps acting after it fired (recovery is timed from its end)."""
    return float(fault_dict.get("duration_s", 0.0)) if fault_dict["kind"] == "nonet" else 0.0
