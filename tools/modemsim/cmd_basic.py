"""General commands: identity, echo, CMEE, SIM, registration, PDP/NETOPEN, bearer, clock, power.

Formats from manual 003 (ch.2-4, 9, 12, 13) and seed 001 (SIM7600E ATI, CPSI);
SAPBR from seed 004; CNACT as SIM7000/SIM7080 print it.
"""

import datetime

from .atcmd import AtError
from .personas import IDENTITY

CPSI_LTE = "LTE,Online,505-01,0x309D,136092930,257,EUTRAN-BAND3,1275,4,4,-178,-1185,-789,7"
LAC, CI = "309D", "81C8A02"

# Plain settings a firmware may send at init; read form prints "+NAME: value".
SETTINGS = {"+CTZR": "0", "+CTZU": "0", "+CSCLK": "0", "+CLTS": "0", "+CGEREP": "0,0",
            "+IFR": "115200", "+CSCS": '"IRA"', "+CMGF": "0",
            "+CNMP": "2", "+CMNB": "1", "+CIPTIMEOUT": "120000,120000,120000"}


def family(name):
    def deco(fn):
        fn.family = name
        return fn
    return deco


def reg_stat(m):
    if m.st.cfun != 1:
        return 0
    return 2 if m.st.net_down else 1


def reg_urc(m):
    """+CREG/+CGREG/+CEREG URCs for every family whose URC mode is on (27.007)."""
    stat = reg_stat(m)
    for name, n in m.st.reg_urc.items():
        if name == "+CEREG" and not m.has("net"):
            continue
        if n == 1:
            m.urc("%s: %d" % (name, stat))
        elif n == 2:
            m.urc('%s: %d,"%s","%s"' % (name, stat, LAC, CI) if stat in (1, 5)
                  else "%s: %d" % (name, stat))


async def at(m, c):
    return None


async def ate(m, c):
    v = c.int(0, 0, 1, default=0)
    m.st.echo = bool(v)


async def noop(m, c):
    return None


async def ati(m, c):
    p = m.p
    if not m.has("cmqtt"):
        return ["SIM800 R14.18"]
    return ["Manufacturer: " + IDENTITY["manufacturer"], "Model: " + p["model"],
            "Revision: " + (m.revision() if m.old_firmware else p["ati_revision"]),
            "IMEI: " + IDENTITY["imei"], "+GCAP: +CGSM"]


async def cgmr(m, c):
    if c.kind == "test":
        return None
    if not m.has("cmqtt"):
        return [m.p["cgmr"]]
    return ["+CGMR: " + m.revision()]


async def cgmi(m, c):
    return [IDENTITY["manufacturer"]] if c.kind == "exec" else None


async def cgmm(m, c):
    return [m.p["model"]] if c.kind == "exec" else None


async def cgsn(m, c):
    return [IDENTITY["imei"]] if c.kind == "exec" else None


async def ciccid(m, c):
    return ["+ICCID: " + IDENTITY["iccid"]] if c.kind == "exec" else None


async def ccid(m, c):
    return [IDENTITY["iccid"]] if c.kind == "exec" else None


async def cimi(m, c):
    return [IDENTITY["imsi"]] if c.kind == "exec" else None


async def cmee(m, c):
    if c.kind == "read":
        return ["+CMEE: %d" % m.st.cmee]
    if c.kind == "test":
        return ["+CMEE: (0-2)"]
    m.st.cmee = c.int(0, 0, 2, default=0)


async def cpin(m, c):
    if c.kind == "read":
        return ["+CPIN: READY"]
    if c.kind == "write":
        raise AtError(cme=3)     # no PIN request pending (manual 003 6.2.2)


def _reg(name):
    async def h(m, c):
        if c.kind == "read":
            n, stat = m.st.reg_urc[name], reg_stat(m)
            if n == 2 and stat in (1, 5):
                return ['%s: %d,%d,"%s","%s"' % (name, n, stat, LAC, CI)]
            return ["%s: %d,%d" % (name, n, stat)]
        if c.kind == "test":
            return ["%s: (0-2)" % name]
        m.st.reg_urc[name] = c.int(0, 0, 2, default=0)
    return h


async def csq(m, c):
    if c.kind == "test":
        return ["+CSQ: (0-31,99),(0-7,99)"]
    return ["+CSQ: 99,99" if reg_stat(m) != 1 else "+CSQ: 23,99"]


@family("net")
async def cpsi(m, c):
    if c.kind != "read":
        return None
    if m.st.cfun != 1:
        return ["+CPSI: NO SERVICE,Low Power Mode"]
    return ["+CPSI: NO SERVICE,Online" if m.st.net_down else "+CPSI: " + CPSI_LTE]


async def cops(m, c):
    if c.kind != "read":
        return None
    if reg_stat(m) != 1:
        return ["+COPS: 0"]
    if m.has("net"):
        return ['+COPS: 0,2,"%s",7' % IDENTITY["operator"]]
    return ['+COPS: 0,2,"%s"' % IDENTITY["operator"]]


async def cgdcont(m, c):
    if c.kind == "read":
        return ['+CGDCONT: 1,"IP","%s","0.0.0.0",0,0' % m.st.apn]
    if c.kind == "write":
        c.int(0, 1, 24)
        if c.has(2):
            m.st.apn = c.str(2)


async def cgact(m, c):
    if c.kind == "read":
        return ["+CGACT: 1,%d" % (1 if reg_stat(m) == 1 else 0)]
    if c.kind == "write" and reg_stat(m) != 1 and c.int(0, 0, 1) == 1:
        raise AtError(cme=30)


async def cgatt(m, c):
    if c.kind == "read":
        return ["+CGATT: %d" % (1 if reg_stat(m) == 1 else 0)]


@family("net")
async def netopen(m, c):
    if c.kind == "read":
        return ["+NETOPEN: %d" % (1 if m.st.netopen else 0)]
    if c.kind == "test":
        return None
    if m.st.netopen:
        raise AtError(lines=["+IP ERROR: Network is already opened"])
    ok = reg_stat(m) == 1

    async def result():
        await m.delay(0.3)
        if ok and reg_stat(m) == 1:
            m.st.netopen = True
            m.urc("+NETOPEN: 0")
        else:
            m.urc("+NETOPEN: 1")             # 13.3.2: 1 network failure
    m.after_final(result)


@family("net")
async def netclose(m, c):
    if c.kind == "test":
        return None
    if not m.st.netopen:
        raise AtError(lines=["+NETCLOSE: 2"])  # 13.3.2: 2 network not opened

    async def result():
        await m.delay(0.1)
        m.st.netopen = False
        m.urc("+NETCLOSE: 0")
    m.after_final(result)


@family("net")
async def ipaddr(m, c):
    if c.kind == "test":
        return None
    if not m.st.netopen:
        raise AtError(lines=["+IP ERROR: Network not opened"])
    return ["+IPADDR: " + IDENTITY["ip"]]


@family("sapbr")
async def sapbr(m, c):
    if c.kind == "test":
        return ["+SAPBR: (0-4),(1-3),\"ConParamTag\",\"ConParamValue\""]
    op = c.int(0, 0, 4)
    c.int(1, 1, 3)
    if op == 3:
        if c.has(3) and c.str(2).upper() == "APN":
            m.st.apn = c.str(3)
        return None
    if op == 1:
        if m.st.sapbr_open or reg_stat(m) != 1:
            raise AtError(cme=3)
        await m.delay(0.5)
        m.st.sapbr_open = True
        return None
    if op == 0:
        if not m.st.sapbr_open:
            raise AtError(cme=3)
        m.st.sapbr_open = False
        return None
    if op == 2:
        if m.st.sapbr_open:
            return ['+SAPBR: 1,1,"%s"' % IDENTITY["ip"]]
        return ['+SAPBR: 1,3,"0.0.0.0"']
    return None


@family("sm")
async def cnact(m, c):
    """SIM7000 form AT+CNACT=<mode>[,<apn>] and SIM7080 form AT+CNACT=<pdpidx>,<action>."""
    if c.kind == "read":
        ip = IDENTITY["ip"] if m.st.cnact else "0.0.0.0"
        return ['+CNACT: %d,"%s"' % (1 if m.st.cnact else 0, ip)]
    if c.kind != "write":
        return None
    if c.n() >= 2 and not c.quoted(1):
        idx, on = c.int(0, 0, 3), c.int(1, 0, 2)
        prefix = "%d," % idx
    else:
        on, prefix = c.int(0, 0, 2), ""
    if on and reg_stat(m) != 1:
        raise AtError(cme=3)
    m.st.cnact = bool(on)
    state = "ACTIVE" if on else "DEACTIVE"

    async def result():
        await m.delay(0.2)
        m.urc("+APP PDP: %s%s" % (prefix, state))
    m.after_final(result)


async def cclk(m, c):
    if c.kind == "read":
        now = datetime.datetime.now(datetime.timezone.utc)
        return [now.strftime('+CCLK: "%y/%m/%d,%H:%M:%S+00"')]


async def cbc(m, c):
    if c.kind == "test":
        return None
    return ["+CBC: 0,85,4012"] if m.has("sm") else ["+CBC: 3.949V"]


async def cntp(m, c):
    if c.kind == "read":
        return ['+CNTP: "%s",%d' % m.st.cntp]
    if c.kind == "test":
        return ['+CNTP: "HOST",(-96~96)']
    if c.kind == "write":
        m.st.cntp = (c.str(0, lo=1, hi=255), c.int(1, -96, 96, default=0))
        return None
    if not m.st.cntp[0]:
        raise AtError()
    up = reg_stat(m) == 1

    async def result():
        await m.delay(0.5)
        m.urc("+CNTP: %d" % (0 if up and reg_stat(m) == 1 else 1))
    m.after_final(result)


async def cfun(m, c):
    if c.kind == "read":
        return ["+CFUN: %d" % m.st.cfun]
    if c.kind == "test":
        return ["+CFUN: (0,1,4,5,6,7),(0-1)"]
    fun, rst = c.int(0, 0, 7), c.int(1, 0, 1, default=0)
    if rst == 1:
        m.after_final(lambda: _reboot_soon(m))
        return None
    m.st.cfun = 1 if fun == 1 else 0
    if fun == 1 and m.has("sm"):
        m.urc("+CPIN: READY")              # seed 004 4.2: CFUN=1 prints +CPIN: READY
    m.after_final(_reg_urc_later(m))
    return None


def _reg_urc_later(m):
    async def f():
        await m.delay(0.1)
        reg_urc(m)
    return f


async def _reboot_soon(m):
    await m.delay(0.2)
    m.reboot(delay=m.opts.boot_delay)


async def creset(m, c):
    if c.kind in ("exec", "test"):
        if c.kind == "exec":
            m.after_final(lambda: _reboot_soon(m))
        return None
    raise AtError()


def _setting(name):
    async def h(m, c):
        if c.kind == "read":
            return ["%s: %s" % (name, m.st.settings.get(name, SETTINGS[name]))]
        if c.kind == "write":
            if name == "+CGEREP" and c.args and c.args[0][0] not in ("0", "1"):
                raise AtError()  # 003 s.5.2.10: <mode> 0 and 1 only
            m.st.settings[name] = ",".join(
                ('"%s"' % v) if q else v for v, q in c.args)
        return None
    return h


# -- serial speed (manual 003 s.8.2.3 AT+IPR, s.8.2.4 AT+IPREX) -----------------------
# 003 s.8.2.3/8.2.4 <speed>: the SIM7600 series list.  The A76xx list is longer
# (SIMCom's A76xx AT manual, which is not among our manuals: unverified here); a modem
# tells its own list in answer to AT+IPR=?, and atmq.baud reads it from there.
IPR_SPEEDS_003 = (600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800)
IPR_SPEEDS_A76 = (300,) + IPR_SPEEDS_003 + (921600, 3000000, 3200000, 3686400)


class BaudSwitch(bytes):
    """A marker in the byte queue towards the host (empty, so harmless to any other
    sink): the line runs at ``baud`` from here on, in both directions (server.py)."""

    baud = 0


def baud_switch(baud):
    mark = BaudSwitch()
    mark.baud = baud
    return mark


def ipr_speeds(m):
    return IPR_SPEEDS_A76 if m.p["model"].startswith("A76") else IPR_SPEEDS_003


def line_speed(m):
    """(current, saved) speed of the simulated UART (the server's SimOptions)."""
    o = m.opts
    return getattr(o, "baud", 115200), getattr(o, "baud_saved", getattr(o, "baud", 115200))


def _set_speed(m, speed):
    """After this command's OK has left at the old speed, the line changes speed."""
    async def later():
        m.send_raw(baud_switch(speed))
    m.after_final(later)


def _speed_cmd(name, permanent):
    async def h(m, c):
        now, saved = line_speed(m)
        if c.kind == "read":
            return ["%s: %d" % (name, saved if permanent else now)]
        if c.kind == "test":
            return ["%s: (%s)" % (name, ",".join(str(v) for v in ipr_speeds(m)))]
        # exec: IPR goes back to the boot value (IPREX), IPREX to the default 115200
        speed = c.int(0) if c.kind == "write" else (115200 if permanent else saved)
        if speed not in ipr_speeds(m):
            raise AtError()          # 003 s.8.2.3: "2) ERROR"
        if permanent:
            m.opts.baud_saved = speed  # AUTO_SAVE: valid after a reboot too (s.8.2.4)
        if speed != now:
            _set_speed(m, speed)
        return None
    return h


def register(t):
    t.update({"": at, "E": ate, "I": ati, "V": noop, "Q": noop, "Z": noop, "&F": noop,
              "&W": noop, "+CGMR": cgmr, "+GMR": cgmr, "+CGMI": cgmi, "+CGMM": cgmm,
              "+CGSN": cgsn, "+GSN": cgsn, "+CICCID": ciccid, "+CCID": ccid, "+CIMI": cimi,
              "+CMEE": cmee, "+CPIN": cpin, "+CSQ": csq, "+CPSI": cpsi, "+COPS": cops,
              "+CGDCONT": cgdcont, "+CGACT": cgact, "+CGATT": cgatt, "+NETOPEN": netopen,
              "+NETCLOSE": netclose, "+IPADDR": ipaddr, "+SAPBR": sapbr, "+CNACT": cnact,
              "+CCLK": cclk, "+CBC": cbc, "+CNTP": cntp, "+CFUN": cfun, "+CRESET": creset})
    t["+IPR"] = _speed_cmd("+IPR", False)
    t["+IPREX"] = _speed_cmd("+IPREX", True)
    for name in ("+CREG", "+CGREG", "+CEREG"):
        t[name] = _reg(name)
    for name in SETTINGS:
        t[name] = _setting(name)
