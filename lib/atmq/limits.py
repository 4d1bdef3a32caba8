"""What each modem family accepts, as data: the manuals' ranges in one table.

Owns ``LIMITS`` (per family variant: keepalive range, the lengths of host,
client id, user, password, topic and payload) and the engine's command
length, so a configuration can be checked against the modem it will meet
before it reaches the modem (tlog.config).  The drivers keep their own
checks at the point of use; this table must agree with them (tests compare).

Variants: ``"cmqtt"`` (SIM7600 / A76xx, manual 003 ch.16, app note 002),
``"sim800"`` (seed 004), ``"sim70x0"`` (SIM7000 / SIM7070 / SIM7080 AT+SM*).
"""

# The engine's largest command line (atmq.engine.Engine tx_max default).
TX_MAX = 600

# variant: (keepalive lo, hi, host max, client id max, user max, password max,
#           topic max, payload max)
LIMITS = {
    # 003 16.2.8: <keepalive_time> 1..64800, <server_addr> "tcp://host:port" 9..256,
    # user/password 1..256; 16.2.3 client id 1..128; 16.2.4 topic 1..1024;
    # 16.2.11 payload 1..4096 (SIM76XX; the A7600 note 2.1.11 allows 10240)
    "cmqtt": (1, 64800, 256 - 12, 128, 256, 256, 1024, 4096),
    # 004 3.1: KEEPALIVE 60..3600, URL "server:port" up to 255, user/password (quoted);
    # 3.5 <message> 0..1024 (the topic shares the same AT line)
    "sim800": (60, 3600, 255 - 6, 128, 256, 256, 1024, 1024),
    # SIM7080 AT+SMCONF: KEEPTIME 0..65535, URL "server",<port>
    "sim70x0": (0, 65535, 255, 128, 256, 256, 1024, 1024),
}

# Positions in a LIMITS row (plain numbers in the callers: no module globals, RAM).
# 0 keepalive lo, 1 keepalive hi, 2 host, 3 client id, 4 user, 5 password, 6 topic, 7 payload


def variant(family, model=""):
    """The ``LIMITS`` key of a board's modem (family "cmqtt"/"sm" and model name)."""
    if family == "cmqtt":
        return "cmqtt"
    m = str(model or "").upper()
    if m.startswith("SIM800") or m.startswith("SIM808") or m.startswith("SIM868"):
        return "sim800"
    return "sim70x0"


def connect_len(variant_name, host, port, keepalive, user, password):
    """Bytes of the longest AT line that carries the broker credentials.

    cmqtt: ``AT+CMQTTCONNECT=0,"tcp://<host>:<port>",<ka>,1,"<user>","<pass>"`` (003 16.2.8);
    sm: each AT+SMCONF value goes on its own line, the longest wins.
    """
    if variant_name == "cmqtt":
        n = len('AT+CMQTTCONNECT=0,"tcp://') + len(host) + 1 + len(str(port)) + 2
        n += len(str(keepalive)) + 2
        if user:
            n += 3 + len(user)
            if password:
                n += 3 + len(password)
        return n
    base = len('AT+SMCONF=""') + 8 + 3
    return base + max(len(host) + 6, len(user or ""), len(password or ""))
