"""Diagnosis rules of tools/logdoctor.py: the failure modes the fleet has seen.

Owns ``diagnose(entries, meta) -> (modem info, findings)`` over a timeline from
``logdoctor_timeline``.  A finding is ``{id, severity, title, detail, remedy,
evidence}``; ids: mqtt_client_busy, mqtt_no_connection, mqtt_connection_dropped,
mqtt_busy_operation, mqtt_not_connected, mqtt_connect_failed,
mqtt_connection_lost, sslversion_refused, sim_not_ready, registration_denied,
no_pdp_context, urc_unhandled, modem_restarted, no_answer.  Remedies cite the
SIM767XX manual's sections and what fixed seed 001's forum thread.
"""

from logdoctor_timeline import (
    CPIN_MEANING,
    FINAL_ERR,
    split_params,
    to_int,
)

SIM_CME = (5, 10, 11, 12, 13, 14, 15, 16, 17, 18)
SIM_CME_TEXT = ("SIM", "PIN", "PUK")



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

    # SIM800 MQTT (AT+SM*, SIM800 MQTT note ch. 3): failures are +CME ERROR / ERROR.
    sm_conn = [c for c in cmds if c["name"] == "AT+SMCONN" and c["form"] == ""]
    for c in sm_conn:
        states = [x for x in cmds if x["name"] == "AT+SMSTATE" and _before(x, c)]
        if states and "+SMSTATE: 1" in states[-1]["response"]:
            continue  # already connected: CME 3 'operation not allowed' is expected
        if c["final"] not in ("OK", None, "(no answer)"):
            why = c["errors"][-1]["meaning"] if c["errors"] else c["final"]
            out.append(_finding(
                "mqtt_connect_failed", "error",
                "SIM800 MQTT connect failed: AT+SMCONN -> %s" % why,
                "AT+SMCONN did not connect (SIM800 MQTT note 3.3).",
                "Check the bearer (AT+SAPBR=2,1 shows an IP), AT+SMCONF \"URL\" (host:port), "
                "\"CLIENTID\", credentials and, for TLS, AT+SMSSL and the root certificate; "
                "then AT+SMCONN again.",
                [_ev(c)]))
            break
    for c in cmds:
        if c["name"] in ("AT+SMPUB", "AT+SMSUB", "AT+SMUNSUB") and c["final"] not in (
                "OK", ">", None, "(no answer)"):
            connected = any(s["final"] == "OK" and _before(s, c) for s in sm_conn)
            state0 = any(x["name"] == "AT+SMSTATE" and "+SMSTATE: 0" in x["response"]
                         and _before(x, c) for x in cmds)
            if connected and not state0:
                continue
            out.append(_finding(
                "mqtt_not_connected", "error",
                "%s refused (%s): the SIM800 MQTT client is not connected" % (
                    c["name"], c["final"]),
                "No successful AT+SMCONN before it%s." % (
                    "; AT+SMSTATE? answered +SMSTATE: 0 (disconnected)" if state0 else ""),
                "AT+SMCONN (wait for its OK) before AT+SMPUB/AT+SMSUB; poll AT+SMSTATE? and "
                "connect again when it reads 0.",
                [_ev(c)]))
            break

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


