"""The SM family of the SIM800 MQTT application note (seed 004), plus SIM7000's prompt AT+SMPUB.

AT+SMCONF, SMCONN (synchronous: OK once connected), SMSUB/SMUNSUB/SMPUB (OK, then
"+SMSUB: <packet_id>,<status>" etc., status 0 success / 1 time out / 2 other error),
SMSTATE?, SMDISC, SMSSL, and "+SMPUBLISH: <packet_id>,"<topic>",<len>,"<message>""
for received data (3.10).  AT+SMPUB="topic",<len>,<qos>,<retain> (SIM7000 form)
prompts for <len> bytes and answers OK after the publish completes.
"""

from .atcmd import AtError
from .cmd_basic import family, reg_stat

CONF_TAGS = ("CID", "URL", "CLIENTID", "KEEPALIVE", "CLEANSS", "USERNAME", "PASSWORD",
             "TIMEOUT", "QOS", "TOPIC", "MESSAGE", "RETAIN", "SUBHEX", "ASYNCMODE")


class SmState:
    def __init__(self):
        self.conf = {"CID": "1", "URL": "", "CLIENTID": "", "KEEPALIVE": "60", "CLEANSS": "0",
                     "USERNAME": "", "PASSWORD": "", "TIMEOUT": "60"}
        self.ssl = 0
        self.connected = False
        self.bridge = None
        self.packet_id = 0
        self.published = []

    def next_pid(self):
        self.packet_id = self.packet_id % 65535 + 1
        return self.packet_id

    def abort_silently(self):
        if self.bridge is not None:
            self.bridge.abort(report=False)
            self.bridge = None
        self.connected = False


def _status(err):
    return 0 if err == 0 else (1 if err == 17 else 2)


async def smconf(m, c):
    sm = m.st.sm
    if c.kind == "test":
        return ['+SMCONF: "MQTTParamTag","MQTTParamValue"']
    if c.kind == "read":
        return ['+SMCONF: "%s","%s"' % (k, v) for k, v in sm.conf.items()]
    if c.kind != "write":
        raise AtError()
    tag = c.str(0).upper()
    if tag not in CONF_TAGS:
        raise AtError(cme=50)
    if tag == "URL" and c.n() >= 3:                   # SIM7000: "URL","host",port
        sm.conf["URL"] = "%s:%d" % (c.str(1), c.int(2, 1, 65535))
        return None
    val = c.str(1)
    if tag == "KEEPALIVE":
        c.int(1, 60, 3600)
    elif tag == "CLEANSS":
        c.int(1, 0, 1)
    sm.conf[tag] = val
    return None


def _url(sm):
    host, _, port = sm.conf["URL"].rpartition(":")
    if not host:
        host, port = sm.conf["URL"], "1883"
    try:
        return host.strip(), int(port)
    except ValueError:
        return None


async def smconn(m, c):
    sm = m.st.sm
    if c.kind == "test":
        return None
    if c.kind != "exec":
        raise AtError()
    bearer = m.st.sapbr_open or m.st.cnact
    url = _url(sm) if sm.conf["URL"] else None
    if sm.connected or not bearer or url is None or reg_stat(m) != 1:
        raise AtError(cme=3)
    ctx = None
    if sm.ssl:
        from .cmd_ssl import build_context
        try:
            ctx = build_context(m, 0)
        except Exception:  # noqa: BLE001 - any certificate problem fails the connect
            raise AtError(cme=3) from None
    target = m.opts.map_server(bool(sm.ssl), url[0], url[1])
    b = m.make_bridge(None, -1, sm.conf["CLIENTID"] or "SIM800", 4,
                      int(sm.conf["CLEANSS"] or 0))
    user = sm.conf["USERNAME"] or None
    err = await b.connect(target[0], target[1], keepalive=int(sm.conf["KEEPALIVE"] or 60),
                          tls=ctx, username=user,
                          password=sm.conf["PASSWORD"] if user else None,
                          timeout=float(sm.conf["TIMEOUT"] or 60))
    if err:
        raise AtError(cme=3)
    sm.bridge, sm.connected = b, True
    return None


def on_lost(m):
    m.st.sm.connected = False
    m.st.sm.bridge = None


def on_message(m, topic, payload, mid):
    m.send(b'\r\n+SMPUBLISH: %d,"%s",%d,"' % (mid, topic.encode(), len(payload))
           + payload + b'"\r\n')


def _need_conn(m):
    if not m.st.sm.connected:
        raise AtError(cme=3)
    return m.st.sm


async def smsub(m, c):
    if c.kind == "test":
        return ['+SMSUB: "topic",<qos>']
    sm = _need_conn(m)
    t, qos = c.str(0, lo=1, hi=1024), c.int(1, 0, 1)
    pid, b = sm.next_pid(), sm.bridge

    async def result():
        m.urc("+SMSUB: %d,%d" % (pid, _status(await b.subscribe([(t, qos)]))))
    m.after_final(result)


async def smunsub(m, c):
    if c.kind == "test":
        return ['+SMUNSUB: "topic"']
    sm = _need_conn(m)
    t = c.str(0, lo=1, hi=1024)
    pid, b = sm.next_pid(), sm.bridge

    async def result():
        m.urc("+SMUNSUB: %d,%d" % (pid, _status(await b.unsubscribe([t]))))
    m.after_final(result)


async def smpub(m, c):
    if c.kind == "test":
        return ['+SMPUB: "topic",<qos>,"message"']
    sm = _need_conn(m)
    t = c.str(0, lo=1, hi=1024)
    timeout = float(sm.conf["TIMEOUT"] or 60)
    if c.n() == 4 and not c.quoted(3):               # SIM7000: topic,len,qos,retain + prompt
        n, qos, retain = c.int(1, 0, m.p["payload_max"]), c.int(2, 0, 2), c.int(3, 0, 1)
        data = await m.prompt(n) if n else b""
        err = await sm.bridge.publish(t, data, qos, retain, timeout)
        if err:
            raise AtError(cme=3)
        sm.published.append((t, data, qos, retain))
        return None
    qos, retain = c.int(1, 0, 1), c.int(2, 0, 1)
    data = c.str(3, hi=m.p["payload_max"]).encode("latin-1")
    pid, b = sm.next_pid(), sm.bridge

    async def result():
        err = await b.publish(t, data, qos, retain, timeout)
        if err == 0:
            sm.published.append((t, data, qos, retain))
        m.urc("+SMPUB: %d,%d" % (pid, _status(err)))
    m.after_final(result)


async def smstate(m, c):
    if c.kind == "read":
        return ["+SMSTATE: %d" % (1 if m.st.sm.connected else 0)]
    return None


async def smdisc(m, c):
    if c.kind == "test":
        return None
    sm = m.st.sm
    if not sm.connected:
        raise AtError(cme=3)
    b, sm.bridge, sm.connected = sm.bridge, None, False
    await b.disconnect()
    return None


async def smssl(m, c):
    if c.kind in ("read", "test"):
        return ["+SMSSL: %d" % m.st.sm.ssl] if c.kind == "read" else ["+SMSSL: (0,1)"]
    m.st.sm.ssl = c.int(0, 0, 1)
    return None


def register(t):
    for name, h in (("+SMCONF", smconf), ("+SMCONN", smconn), ("+SMSUB", smsub),
                    ("+SMUNSUB", smunsub), ("+SMPUB", smpub), ("+SMSTATE", smstate),
                    ("+SMDISC", smdisc), ("+SMSSL", smssl)):
        t[name] = family("sm")(h)
