"""The CMQTT family (manual 003 ch.16; A7600 MQTT manual, seed 002, for SUBTOPIC/UNSUBTOPIC).

Result shapes follow the manuals: write commands answer OK and report the outcome
later as "+CMQTTxxx: <client_index>,<err>", or answer "+CMQTTxxx: <idx>,<err>" then
ERROR when refused at once.  Errors are the 16.3.1 codes (e.g. 11 no connection,
14 client is busy while a CONNECT or a PUB of that client is in flight, 19 client
is used, 20 client not acquired, 23 network is opened for a second CMQTTSTART).
Received messages come back as the +CMQTTRXSTART / RXTOPIC / RXPAYLOAD (chunked) /
RXEND sequence (16.4).
"""

from .atcmd import AtError
from .cmd_basic import family, reg_stat

TESTS = {
    "+CMQTTACCQ": "+CMQTTACCQ: (0-1),(1-128)[,(0-1)]",
    "+CMQTTREL": "+CMQTTREL: (0-1)",
    "+CMQTTSSLCFG": "+CMQTTSSLCFG: (0,1),(0-9)",
    "+CMQTTWILLTOPIC": "+CMQTTWILLTOPIC: (0-1),(1-1024)",
    "+CMQTTWILLMSG": "+CMQTTWILLMSG: (0-1),(1-1024),(0-2)",
    "+CMQTTCONNECT": "+CMQTTCONNECT: (0-1),(9-256),(1-64800),(0-1)[,<user_name>,<pass_word>]",
    "+CMQTTDISC": "+CMQTTDISC: (0-1),(0,60-180)",
    "+CMQTTTOPIC": "+CMQTTTOPIC: (0-1),(1-1024)",
    "+CMQTTPAYLOAD": "+CMQTTPAYLOAD: (0-1),(1-%d)",
    "+CMQTTPUB": "+CMQTTPUB: (0-1),(0-2),(60-180),(0-1),(0-1)",
    "+CMQTTSUBTOPIC": "+CMQTTSUBTOPIC: (0-1),(1-1024),(0-2)",
    "+CMQTTSUB": "+CMQTTSUB: (0-1),(1-1024),(0-2),(0-1)",
    "+CMQTTUNSUBTOPIC": "+CMQTTUNSUBTOPIC: (0-1),(1-1024)",
    "+CMQTTUNSUB": "+CMQTTUNSUB: (0-1),(1-1024),(0-1)",
}
CFG_TEST = ('+CMQTTCFG: "checkUTF8",(0-1),(0-1)', '+CMQTTCFG: "optimeout",(0-1),(20-120)',
            '+CMQTTCFG: "version",(0-1),(3-4)', '+CMQTTCFG: "cid",(1-15)',
            '+CMQTTCFG: "scid",(0-1),(1-15)')


class Slot:
    """One of the two MQTT clients (index 0 or 1)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.acquired = False
        self.client_id = ""
        self.server_type = 0
        self.ssl_ctx = None
        self.will_topic = None
        self.will_msg = None
        self.will_qos = 0
        self.topic = None
        self.payload = b""
        self.sub_topics = []
        self.unsub_topics = []
        self.state = "idle"          # idle | connecting | connected
        self.server = None           # (addr, keepalive, clean, user, password)
        self.check_utf8 = 1
        self.optimeout = 120
        self.version = 3             # 16.2.15: 3 = MQTT 3.1 is the default
        self.bridge = None
        self.lost_cause = 1
        self.published = []          # (topic, payload, qos, retain) sent to the broker
        self.pub_pending = 0         # PUBs whose +CMQTTPUB result is still to come

    def abort_silently(self):
        if self.bridge is not None:
            self.bridge.abort(report=False)
            self.bridge = None
        self.state = "idle"


def busy_line(cmd):
    """'+CMQTTxxx: <idx>,14' for a 'client is busy' fault on any command."""
    if cmd.args and cmd.args[0][0].isdigit() and not cmd.args[0][1]:
        return "%s: %s,14" % (cmd.name, cmd.args[0][0])
    return "%s: 14" % cmd.name


def _need_service(m):
    if not m.st.cmqtt_started:
        raise AtError()          # 16.2.1 note: ERROR at once before AT+CMQTTSTART


def _slot(m, c, name, need="acquired"):
    """Client index argument 0 -> its Slot, enforcing the state the command needs."""
    _need_service(m)
    i = c.int(0, 0, 1)
    s = m.st.mqtt[i]
    if need in ("acquired", "connected", "idle") and not s.acquired:
        raise AtError(lines=["%s: %d,20" % (name, i)])
    if s.state == "connecting" or (s.pub_pending and name in _BUSY_WHILE_PUB):
        raise AtError(lines=["%s: %d,14" % (name, i)])
    if need == "connected" and s.state != "connected":
        raise AtError(lines=["%s: %d,11" % (name, i)])
    return i, s


# A client's next operation while its PUB awaits the PUBACK: 14 "client is busy" (as
# SUBTOPIC during CONNECT in seed 001; +CMQTTPUB: <idx>,<err> has no packet id, so one
# client has one operation in flight; the other client index is free, 003 s.16.2.3).
_BUSY_WHILE_PUB = ("+CMQTTTOPIC", "+CMQTTPAYLOAD", "+CMQTTPUB", "+CMQTTSUBTOPIC",
                   "+CMQTTSUB", "+CMQTTUNSUBTOPIC", "+CMQTTUNSUB")


def _utf8_ok(s, data):
    if not s.check_utf8:
        return True
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


async def _input(m, c, name, i, s, lo, hi):
    n = c.int(1, lo, hi)
    data = await m.prompt(n)
    if not _utf8_ok(s, data):
        raise AtError(lines=["%s: %d,2" % (name, i)])
    return data


async def start(m, c):
    if c.kind == "test":
        return None
    cid = c.int(0, 1, 15) if c.kind == "write" else None
    if m.st.cmqtt_started:
        raise AtError(lines=["+CMQTTSTART: 23"])
    suffix = "" if cid is None else ",%d" % cid
    up = reg_stat(m) == 1

    async def result():
        await m.delay(0.2)
        if up and reg_stat(m) == 1:
            m.st.cmqtt_started = True
            m.urc("+CMQTTSTART: 0" + suffix)
        else:
            m.urc("+CMQTTSTART: 7" + suffix)        # network open fail
    m.after_final(result)


async def stop(m, c):
    if c.kind == "test":
        return None
    if not m.st.cmqtt_started:
        raise AtError()
    if any(s.acquired for s in m.st.mqtt):
        raise AtError(lines=["+CMQTTSTOP: 21"])     # client not released
    m.st.cmqtt_started = False

    async def result():
        await m.delay(0.1)
        m.urc("+CMQTTSTOP: 0")
    m.after_final(result)


async def accq(m, c):
    if c.kind == "test":
        return [TESTS[c.name]]
    _need_service(m)
    if c.kind == "read":
        return ['+CMQTTACCQ: %d,"%s",%d' % (i, s.client_id, s.server_type)
                for i, s in enumerate(m.st.mqtt)]
    i = c.int(0, 0, 1)
    cid = c.str(1, lo=1, hi=128)
    stype = c.int(2, 0, 1, default=0)
    s = m.st.mqtt[i]
    if s.acquired:
        raise AtError(lines=["+CMQTTACCQ: %d,19" % i])
    s.reset()
    s.acquired, s.client_id, s.server_type = True, cid, stype


async def rel(m, c):
    if c.kind == "test":
        return [TESTS[c.name]]
    _need_service(m)
    if c.kind == "read":
        return None
    i, s = _slot(m, c, "+CMQTTREL")
    if s.state == "connected":
        raise AtError(lines=["+CMQTTREL: %d,19" % i])
    s.reset()


async def sslcfg(m, c):
    if c.kind == "test":
        return [TESTS[c.name]]
    _need_service(m)
    if c.kind == "read":
        return ["+CMQTTSSLCFG: %d,%s" % (i, "" if s.ssl_ctx is None else s.ssl_ctx)
                for i, s in enumerate(m.st.mqtt)]
    i = c.int(0, 0, 1)
    m.st.mqtt[i].ssl_ctx = c.int(1, 0, 9)


async def willtopic(m, c):
    if c.kind == "test":
        return [TESTS[c.name]]
    c.int(1, 1, 1024)
    i, s = _slot(m, c, c.name)
    s.will_topic = (await _input(m, c, c.name, i, s, 1, 1024)).decode("utf-8", "replace")


async def willmsg(m, c):
    if c.kind == "test":
        return [TESTS[c.name]]
    c.int(1, 1, 1024)
    qos = c.int(2, 0, 2)
    i, s = _slot(m, c, c.name)
    s.will_msg = await _input(m, c, c.name, i, s, 1, 1024)
    s.will_qos = qos


def parse_server(addr):
    """'tcp://host:port' (or ssl://) -> (tls, host, port); None if malformed."""
    low = addr.lower()
    if low.startswith("tcp://"):
        tls, rest = False, addr[6:]
    elif low.startswith("ssl://"):
        tls, rest = True, addr[6:]
    else:
        return None
    rest = rest.strip().rstrip("/")
    host, _, port = rest.rpartition(":")
    if not host:
        host, port = rest, "1883"
    try:
        port = int(port)
    except ValueError:
        return None
    if not host or not 0 < port < 65536:
        return None
    return tls, host, port


async def connect(m, c):
    if c.kind == "test":
        return [TESTS[c.name]]
    _need_service(m)
    if c.kind == "read":
        out = []
        for i, s in enumerate(m.st.mqtt):
            if s.state == "connected":
                addr, ka, clean, user, pw = s.server
                extra = "" if user is None else (',"%s"' % user) + (
                    "" if pw is None else ',"%s"' % pw)
                out.append('+CMQTTCONNECT: %d,"%s",%d,%d%s' % (i, addr, ka, clean, extra))
            else:
                out.append("+CMQTTCONNECT: %d" % i)
        return out
    i, s = _slot(m, c, c.name)
    if s.state == "connected":
        raise AtError(lines=["+CMQTTCONNECT: %d,19" % i])
    addr = c.str(1, lo=9, hi=256)
    ka = c.int(2, 1, 64800)
    clean = c.int(3, 0, 1)
    user = c.str(4, lo=1, hi=256) if c.n() > 4 else None
    pw = c.str(5, lo=1, hi=256) if c.n() > 5 else None
    parsed = parse_server(addr)
    if parsed is None:
        raise AtError()
    tls, host, port = parsed
    tls = tls or s.server_type == 1
    s.state = "connecting"
    m.after_final(lambda: _do_connect(m, i, s, (addr, ka, clean, user, pw), tls, host, port))


async def _do_connect(m, i, s, server, tls, host, port):
    from .cmd_ssl import build_context
    addr, ka, clean, user, pw = server
    ctx = None
    err = 0
    if tls:
        try:
            ctx = build_context(m, s.ssl_ctx if s.ssl_ctx is not None else i)
        except LookupError:
            err = 33                                  # not set certificate
        except Exception:  # noqa: BLE001 - a bad PEM is a handshake failure on a modem
            err = 32
    target = m.opts.map_server(tls, host, port)
    if err == 0:
        b = m.make_bridge(s, i, s.client_id, s.version, clean)
        will = None
        if s.will_topic and s.will_msg is not None:
            will = (s.will_topic, s.will_msg, s.will_qos, False)
        err = await b.connect(target[0], target[1], keepalive=ka, tls=ctx, username=user,
                              password=pw, will=will, timeout=s.optimeout)
        if s.state != "connecting":                   # rebooted or released meanwhile
            b.abort(report=False)
            return
        if err == 0:
            s.bridge, s.state, s.server = b, "connected", server
    if err:
        s.state = "idle"
        s.ssl_ctx = None                              # 16.2.5: cleared after a failed connect
    m.urc("+CMQTTCONNECT: %d,%d" % (i, err))


def on_lost(m, i, s):
    """The broker connection dropped without AT+CMQTTDISC (16.4 +CMQTTCONNLOST)."""
    if s.state != "connected":
        return
    s.state, s.bridge = "idle", None
    cause, s.lost_cause = s.lost_cause, 1
    m.urc("+CMQTTCONNLOST: %d,%d" % (i, cause))


def on_message(m, i, topic, payload):
    """A broker message as the receive URC sequence, topic and payload chunked."""
    t = topic.encode("utf-8")
    chunk = max(1, m.opts.rx_chunk)
    out = bytearray(b"\r\n+CMQTTRXSTART: %d,%d,%d\r\n" % (i, len(t), len(payload)))
    for k in range(0, len(t), chunk):
        part = t[k:k + chunk]
        out += b"+CMQTTRXTOPIC: %d,%d\r\n" % (i, len(part)) + part + b"\r\n"
    for k in range(0, len(payload), chunk):
        part = payload[k:k + chunk]
        out += b"+CMQTTRXPAYLOAD: %d,%d\r\n" % (i, len(part)) + part + b"\r\n"
    out += b"+CMQTTRXEND: %d\r\n" % i
    m.note("urc", "+CMQTTRXSTART: %d,%d,%d" % (i, len(t), len(payload)))
    m.send(out)


async def disc(m, c):
    if c.kind == "test":
        return [TESTS[c.name]]
    _need_service(m)
    if c.kind == "read":
        return ["+CMQTTDISC: %d,%d" % (i, 0 if s.state == "connected" else 1)
                for i, s in enumerate(m.st.mqtt)]
    i, s = _slot(m, c, c.name)
    if c.has(1):
        t = c.int(1, 0, 180)
        if 0 < t < 60:
            raise AtError()
    if s.state != "connected":
        raise AtError(lines=["+CMQTTDISC: %d,11" % i])
    b, s.bridge, s.state = s.bridge, None, "idle"
    s.ssl_ctx = None

    async def result():
        await b.disconnect()
        m.urc("+CMQTTDISC: %d,0" % i)
    m.after_final(result)


async def topic(m, c):
    if c.kind == "test":
        return [TESTS[c.name]]
    c.int(1, 1, 1024)
    i, s = _slot(m, c, c.name, need="connected")
    s.topic = (await _input(m, c, c.name, i, s, 1, 1024)).decode("utf-8", "replace")


async def payload(m, c):
    if c.kind == "test":
        return [TESTS[c.name] % m.p["payload_max"]]
    c.int(1, 1, m.p["payload_max"])
    i, s = _slot(m, c, c.name, need="connected")
    s.payload = await _input(m, c, c.name, i, s, 1, m.p["payload_max"])


async def pub(m, c):
    if c.kind == "test":
        return [TESTS[c.name]]
    qos = c.int(1, 0, 2)
    timeout = c.int(2, 60, 180)
    retain = c.int(3, 0, 1, default=0)
    c.int(4, 0, 1, default=0)
    i, s = _slot(m, c, c.name, need="connected")
    if not s.topic:
        raise AtError(lines=["+CMQTTPUB: %d,18" % i])   # topic is empty
    t, p, s.topic, s.payload = s.topic, s.payload, None, b""   # 16.2.12 note: cleared
    b = s.bridge

    async def result():
        try:
            err = await b.publish(t, p, qos, retain, timeout)
        finally:
            s.pub_pending = 0
        if err == 0:
            s.published.append((t, p, qos, retain))
        m.urc("+CMQTTPUB: %d,%d" % (i, err))
    s.pub_pending = 1
    m.after_final(result)


async def subtopic(m, c):
    if c.kind == "test":
        return [TESTS[c.name]]
    c.int(1, 1, 1024)
    qos = c.int(2, 0, 2)
    i, s = _slot(m, c, c.name, need="connected")
    t = (await _input(m, c, c.name, i, s, 1, 1024)).decode("utf-8", "replace")
    s.sub_topics.append((t, qos))


async def sub(m, c):
    if c.kind == "test":
        return [TESTS[c.name]]
    if c.kind == "read":
        _need_service(m)
        return None
    i, s = _slot(m, c, c.name, need="connected")
    if c.n() <= 2:                                   # topics from AT+CMQTTSUBTOPIC
        c.int(1, 0, 1, default=0)
        if not s.sub_topics:
            raise AtError(lines=["+CMQTTSUB: %d,18" % i])
        topics, s.sub_topics = s.sub_topics, []
    else:
        qos = c.int(2, 0, 2)
        c.int(3, 0, 1, default=0)
        t = (await _input(m, c, c.name, i, s, 1, 1024)).decode("utf-8", "replace")
        topics = [(t, qos)]
    b = s.bridge

    async def result():
        err = await b.subscribe(topics, timeout=s.optimeout)
        m.urc("+CMQTTSUB: %d,%d" % (i, err))
    m.after_final(result)


async def unsubtopic(m, c):
    if c.kind == "test":
        return [TESTS[c.name]]
    c.int(1, 1, 1024)
    i, s = _slot(m, c, c.name, need="connected")
    t = (await _input(m, c, c.name, i, s, 1, 1024)).decode("utf-8", "replace")
    s.unsub_topics.append(t)


async def unsub(m, c):
    if c.kind == "test":
        return [TESTS[c.name]]
    i, s = _slot(m, c, c.name, need="connected")
    if c.n() <= 2:
        c.int(1, 0, 1, default=0)
        if not s.unsub_topics:
            raise AtError(lines=["+CMQTTUNSUB: %d,18" % i])
        topics, s.unsub_topics = s.unsub_topics, []
    else:
        c.int(2, 0, 1)
        topics = [(await _input(m, c, c.name, i, s, 1, 1024)).decode("utf-8", "replace")]
    b = s.bridge

    async def result():
        err = await b.unsubscribe(topics, timeout=s.optimeout)
        m.urc("+CMQTTUNSUB: %d,%d" % (i, err))
    m.after_final(result)


async def cfg(m, c):
    if c.kind == "test":
        return list(CFG_TEST)
    _need_service(m)
    if c.kind == "read":
        return ["+CMQTTCFG: %d,%d,%d" % (i, s.check_utf8, s.optimeout)
                for i, s in enumerate(m.st.mqtt)]
    what = c.str(0).strip().lower()
    if what == "cid":
        if not c.has(1):
            return ['+CMQTTCFG: "CID",1']
        c.int(1, 1, 15)
        return None
    if what == "scid":
        if not c.has(1):
            return ['+CMQTTCFG: "SCID",0,1', '+CMQTTCFG: "SCID",1,1']
        i = c.int(1, 0, 1)
        if not c.has(2):
            return ['+CMQTTCFG: "SCID",%d,1' % i]
        c.int(2, 1, 15)
        return None
    i = c.int(1, 0, 1)
    s = m.st.mqtt[i]
    if not s.acquired:
        raise AtError()
    if what == "checkutf8":
        s.check_utf8 = c.int(2, 0, 1)
    elif what == "optimeout":
        s.optimeout = c.int(2, 20, 120)
    elif what == "version":
        s.version = c.int(2, 3, 4)
    else:
        raise AtError()


def register(t):
    for name, h in (("+CMQTTSTART", start), ("+CMQTTSTOP", stop), ("+CMQTTACCQ", accq),
                    ("+CMQTTREL", rel), ("+CMQTTSSLCFG", sslcfg),
                    ("+CMQTTWILLTOPIC", willtopic), ("+CMQTTWILLMSG", willmsg),
                    ("+CMQTTCONNECT", connect), ("+CMQTTDISC", disc), ("+CMQTTTOPIC", topic),
                    ("+CMQTTPAYLOAD", payload), ("+CMQTTPUB", pub),
                    ("+CMQTTSUBTOPIC", subtopic), ("+CMQTTSUB", sub),
                    ("+CMQTTUNSUBTOPIC", unsubtopic), ("+CMQTTUNSUB", unsub),
                    ("+CMQTTCFG", cfg)):
        t[name] = family("cmqtt")(h)
