"""The ``Modem``'s rarely used parts, imported on first use (issue 11: static heap).

Every method of a class costs RAM for the whole boot on a board (a function object
and a slot in the class dict, ~24-32 bytes each, even with the bytecode frozen in
flash).  What a CMQTT board never calls on its boot path lives here instead:

- the public queries ``serving_cell()`` (``AT+CPSI?``), ``data_is_open()``,
  ``registered()``, ``roaming`` and ``expect_reboot()``: still read as attributes of a
  ``Modem`` (``Modem.__getattr__`` -> ``attr`` below), same names, same results;
- the sm family's data path (``AT+SAPBR`` bearer, SIM800 MQTT note 4.1; ``AT+CNACT``,
  SIM7000/SIM7070/SIM7080), called by ``Modem.data_up`` on an sm board only.
"""

from .compat import const
from .engine import R_OK
from .errors import ModemError
from .modem import _int_or_none, _quoted, reg_ok, reg_roaming

_NOINT = const(-0x3FFFFFFF)  # arg_int default that no field value reaches (as in atmq.modem)

_METHODS = const(("serving_cell", "data_is_open", "registered", "expect_reboot"))


def attr(m, name):
    """``getattr(m, name)`` for the names kept here; AttributeError for any other."""
    if name == "roaming":
        return reg_roaming(m.best_stat())
    if name not in _METHODS:
        raise AttributeError(name)
    f = globals()[name]
    return lambda *args: f(m, *args)


def registered(m):
    """True when a packet domain (CGREG or CEREG) is registered, home or roaming."""
    return reg_ok(m.reg[1]) or reg_ok(m.reg[2])


def expect_reboot(m, on=True):
    """Say that a reset is on purpose (recovery): boot URCs then raise no EV_REBOOT."""
    m._expect_boot = on


async def serving_cell(m):
    """``AT+CPSI?`` (manual 4.2.6) as a dict: mode, op_mode, mcc, mnc, lac/tac, cell_id...

    LTE adds band, earfcn, rsrq, rsrp, rssi, rssnr (the module's units);
    GSM arfcn, rxlev; WCDMA band, psc, freq, ecio, rscp.  "NO SERVICE" gives
    only mode and op_mode.
    """
    r = await m.at.cmd(b"AT+CPSI?", resp=b"+CPSI:", timeout_ms=5000)
    a = r.find(b"+CPSI:")
    if a is None:
        return None
    n = a.count()
    mode = a.arg_str(0)
    d = {"mode": mode, "op_mode": a.arg_str(1) if n > 1 else ""}
    if n < 5:
        return d
    plmn = a.arg_str(2)
    k = plmn.find("-")
    try:
        d["mcc"] = int(plmn[:k])
        d["mnc"] = int(plmn[k + 1:])
    except ValueError:
        d["mcc"] = d["mnc"] = None
    area = a.arg_str(3)
    try:
        area = int(area, 16)
    except ValueError:
        area = None
    d["tac" if mode == "LTE" else "lac"] = area
    d["cell_id"] = _int_or_none(a.arg_int(4, _NOINT))
    if mode == "LTE":
        keys = ("pci", "band", "earfcn", "dlbw", "ulbw", "rsrq", "rsrp", "rssi", "rssnr")
    elif mode == "GSM":
        keys = ("arfcn", "rxlev", "track_lo", "c1c2")
    else:
        keys = ("band", "psc", "freq", "ssc", "ecio", "rscp", "qual", "rxlev", "txpwr")
    for i in range(len(keys)):
        j = 5 + i
        if j >= n:
            break
        v = a.arg_int(j, _NOINT)
        d[keys[i]] = v if v != _NOINT else a.arg_str(j)
    return d


async def data_is_open(m):
    """Ask the module whether the PDP for data is up (NETOPEN? / SAPBR=2,1 / CNACT?)."""
    if m.family == "cmqtt":
        r = await m.at.cmd(b"AT+NETOPEN?", resp=b"+NETOPEN:", timeout_ms=5000)
        a = r.find(b"+NETOPEN:")
        up = a is not None and a.arg_int(0) == 1
    elif m.model_key in ("SIM7000", "SIM7070", "SIM7080"):
        up = await cnact_query(m, m.model_key != "SIM7000")
    else:
        up = await sapbr_query(m) == 1
    m.data_open = up
    return up


# ---- the sm family's data path ---------------------------------------------------------

async def sapbr_up(m, timeout_ms):
    # SIM800 MQTT note 4.1: profile 1 as GPRS with the APN, open, query
    at = m.at
    st = await sapbr_query(m)
    if st == 1:
        return
    await at.cmd(b'AT+SAPBR=3,1,"Contype","GPRS"')
    if m.apn:
        await at.cmd(('AT+SAPBR=3,1,"APN","%s"' % _quoted("apn", m.apn)).encode())
    if m.apn_user:
        await at.cmd(('AT+SAPBR=3,1,"USER","%s"' % _quoted("apn_user", m.apn_user)).encode())
    if m.apn_password:
        await at.cmd(('AT+SAPBR=3,1,"PWD","%s"' % _quoted("apn_password",
                                                           m.apn_password)).encode())
    await at.cmd(b"AT+SAPBR=1,1", timeout_ms=timeout_ms)
    if await sapbr_query(m) != 1:
        raise ModemError("AT", -1, b"AT+SAPBR=2,1")


async def sapbr_query(m):
    m._checked_seq = m._nonet_seq
    r = await m.at.cmd(b"AT+SAPBR=2,1", resp=b"+SAPBR:", check=False)
    a = r.find(b"+SAPBR:")
    if r.final != R_OK or a is None:
        return -1
    st = a.arg_int(1)  # <cid>,<Status 0 connecting 1 connected 2 closing 3 closed>,<IP>
    m.ip = a.arg_str(2) if st == 1 else None
    return st


async def cnact_up(m, timeout_ms):
    new = m.model_key != "SIM7000"  # SIM7070/SIM7080: <pdpidx>,<statusx>,<addr>
    if await cnact_query(m, new):
        return
    if new:
        cmd = b"AT+CNACT=0,1"
    else:
        cmd = ('AT+CNACT=1,"%s"' % _quoted("apn", m.apn or "")).encode()
    await m.at.cmd(cmd, done=b"+APP PDP:", done_timeout_ms=timeout_ms)
    if not await cnact_query(m, new):
        raise ModemError("AT", -1, cmd)


async def cnact_query(m, new):
    m._checked_seq = m._nonet_seq
    r = await m.at.cmd(b"AT+CNACT?", resp=b"+CNACT:", check=False)
    if r.final != R_OK:
        return False
    for i in range(r.count):
        a = r.line(i)
        if new and a.arg_int(0) == 0 and a.arg_int(1) == 1:
            m.ip = a.arg_str(2)
            return True
        if not new and a.arg_int(0) == 1:
            m.ip = a.arg_str(1)
            return True
    return False
