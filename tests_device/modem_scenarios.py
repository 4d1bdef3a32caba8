"""Modem transcript scenarios, shared by tests_host/test_modem.py (CPython) and
tests_device/test_modem_device.py (MicroPython unix port).

Each transcript in tests_host/transcripts/modem/ names its scenario (``@scenario``)
and the Modem options (``@family``, ``@pin``, ``@apn``, ``@model``).  ``run(path,
chunk)`` replays it through the real Engine and Modem, runs the scenario's calls,
checks their results and the events raised, and ends with ``assert_done`` (the
host wrote exactly the transcript's bytes and read every modem byte).
"""

import asyncio
import sys

from atmq.engine import Engine
from atmq.errors import ConfigError, ModemError
from atmq.events import EV_NONET, EV_REBOOT, EV_REG, EV_SIM, EventQueue
from atmq.fix import Fix
from atmq.link import Link
from atmq.modem import BOOT_APP, BOOT_RDY, NONET_CGEV, NONET_PDP, Modem, reg_name
from atxreplay import ReplayModem, drive

TRANSCRIPTS = "tests_host/transcripts/modem/"


def check(cond, what):
    # a plain raise: asserts vanish under -O and on optimised MicroPython builds
    if not cond:
        raise AssertionError(what)


def eq(got, want, what):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def events(q):
    out = []
    while True:
        k = q.get()
        if k < 0:
            return out
        out.append((k, q.a, q.b))


async def next_event(q, kind):
    """Wait (bounded by drive()) until an event of ``kind`` is queued; returns (a, b)."""
    while True:
        while len(q):
            k = q.get()
            if k == kind:
                return q.a, q.b
        await q.wait()


# ---- scenarios: async f(modem, q, meta) ---------------------------------------------------

async def bringup(m, q, meta):
    await m.wait_ready(5000, probe_ms=300)
    check(m.boot_urcs & BOOT_RDY, "RDY seen")
    facts = await m.init()
    # the bring-up steps' module is dropped after each call (issue 11: heap when connected)
    check("atmq.modemq" not in sys.modules, "atmq.modemq dropped after init()")
    eq(facts["manufacturer"], "SIMCOM INCORPORATED", "manufacturer")
    eq(facts["model"], "SIMCOM_SIM7600E", "model")
    eq(facts["revision"], "SIM7600M21-A_V1.1", "revision")
    eq(facts["firmware"], "LE11B04SIM7600M21-A", "firmware")
    eq(facts["imei"], "862636051234567", "imei")
    eq(facts["iccid"], "89610185002185155510", "iccid")
    eq(m.model_key, "SIM7600", "model key")
    eq(m.gnss_set, "cgps", "gnss command set")
    eq(await m.sim_state(), "READY", "sim")
    eq(await m.registration(), 1, "registration")
    check(m.registered() and not m.roaming, "home registration")
    eq(await m.signal(), (-73, None), "signal")
    cell = await m.serving_cell()
    eq(cell["mode"], "LTE", "mode")
    eq((cell["mcc"], cell["mnc"], cell["tac"], cell["cell_id"]), (505, 1, 0x309D, 136092930),
       "cell")
    eq((cell["band"], cell["earfcn"], cell["rsrp"], cell["rssnr"]),
       ("EUTRAN-BAND3", 1275, -1185, 7), "lte fields")
    await m.set_apn(meta["apn"])
    eq(await m.data_up(), "10.84.17.161", "ip")
    check(m.data_open, "data open")
    # 24/03/05 21:30:15 at +44 quarter hours (+11:00) = 2024-03-05 10:30:15 UTC
    eq(await m.clock(), 1709634615 - 946684800, "clock")
    eq(await m.battery_mv(), 3749, "battery")
    kinds = [e[0] for e in events(q)]
    eq(kinds, [EV_SIM], "events (boot +CPIN: READY only; no reboot before init)")


async def bringup_a76(m, q, meta):
    await m.wait_ready(5000, probe_ms=300)
    check(m.boot_urcs & BOOT_APP, "APP RDY seen")
    facts = await m.init()
    eq(facts["model"], "A7600E-H", "model")
    eq(m.gnss_set, "cgnss", "gnss set")
    eq(facts["iccid"], "8944500601200157932", "iccid")
    eq(await m.sim_state(), "READY", "sim")
    eq(await m.registration(), 1, "LTE-only registration")
    eq(m.reg, [0, 0, 1], "per-domain stat")
    eq(await m.data_up(), "100.72.5.9", "ip")


async def bearer(m, q, meta):
    await m.wait_ready(5000, probe_ms=150)  # first probe unanswered (autobaud)
    facts = await m.init()
    eq((facts["model"], facts["revision"]), ("SIM800", "R14.18"), "ATI one-liner")
    eq(facts["firmware"], "1418B04SIM800C24", "CGMR")
    eq(facts["iccid"], "89860117838009934120", "CCID")
    eq(m.gnss_set, None, "no modem GNSS")
    eq(await m.registration(), 1, "GPRS registration")
    eq(m.reg, [1, 1, -1], "no CEREG on SIM800")
    eq(await m.data_up(), "10.89.193.1", "bearer ip")
    eq(await m.battery_mv(), 4050, "SIM800 CBC mV")
    a, _ = await next_event(q, EV_NONET)
    eq(a, NONET_PDP, "bearer deactivated")
    check(not m.data_open and m.ip is None, "data marked down")
    try:
        await m.gnss(True)
    except ConfigError:
        pass
    else:
        raise AssertionError("GNSS on a SIM800 must be refused")


async def sim_pin(m, q, meta):
    eq(await m.sim_state(), "READY", "after PIN")
    eq(m.pin_attempts, 1, "one PIN sent")
    eq([e[1] for e in events(q) if e[0] == EV_SIM], [0, 1], "EV_SIM: PIN needed, then ready")


async def sim_pin_wrong(m, q, meta):
    try:
        await m.sim_state()
    except ModemError as e:
        eq((e.kind, e.code), ("CME", 16), "wrong PIN error")
        # issue 10 #5: the PIN is in no error text (str, repr, the command kept)
        check("0000" not in str(e) and "0000" not in repr(e), "PIN in the error: %r" % e)
    else:
        raise AssertionError("a rejected PIN must raise")
    check(m.pin_rejected, "pin_rejected")
    eq(await m.sim_state(), "SIM PIN", "state without a second attempt")
    eq(m.pin_attempts, 1, "never a second PIN")


async def sim_absent(m, q, meta):
    eq(await m.sim_state(), "NOT INSERTED", "no SIM")
    r = await m.at.cmd(b"AT+CICCID", resp=b"+ICCID:", check=False)
    eq(r.code, 10, "CICCID CME 10")


async def reg_denied(m, q, meta):
    stat = await m.registration()
    eq(stat, 3, "denied")
    eq(reg_name(stat), "registration denied", "name")
    check(not m.registered(), "not registered")
    a, b = await next_event(q, EV_REG)
    eq((a, b), (2, 2), "CEREG searching URC")
    eq(m.reg[2], 2, "state follows the URC")


async def reg_roaming(m, q, meta):
    eq(await m.registration(), 5, "roaming")
    check(m.registered() and m.roaming, "roaming counts as registered")
    eq(await m.signal(), (-85, None), "signal")
    # the reader may decode several URCs before this task runs: check the event order,
    # and the state only once it is final
    eq(await next_event(q, EV_REG), (2, 2), "LTE searching")
    eq(await next_event(q, EV_REG), (2, 1), "GPRS searching")
    eq(await next_event(q, EV_REG), (5, 2), "roaming again")
    eq(m.reg, [5, 2, 5], "final per-domain state")
    check(m.registered(), "registered again")


async def csq(m, q, meta):
    eq(await m.signal(), (None, None), "99,99 unknown")
    eq(await m.signal(), (-113, 7), "bottom of the scale")
    eq(await m.signal(), (-51, 0), "top of the scale")


async def netopen_already(m, q, meta):
    eq(await m.data_up(), "10.84.17.161", "already open counts as open")
    await m.data_down()
    check(not m.data_open, "closed")
    try:
        await m.data_up()
    except ModemError as e:
        eq((e.kind, e.code), ("NET", 1), "NETOPEN failure code")
    else:
        raise AssertionError("+NETOPEN: 1 must raise")
    eq(events(q), [], "our own NETCLOSE raises no EV_NONET")


async def cclk(m, q, meta):
    off = 946684800  # 1970 -> 2000
    eq(await m.clock(), 1704093300 - off, "UTC-5: 2024-01-01 07:15:00Z")
    eq(await m.clock(), 1704074400 - off, "UTC-4 over new year: 2024-01-01 02:00:00Z")
    eq(await m.clock(), 1709251199 - off, "leap day, +00")
    eq(await m.clock(), None, "no network time yet")


async def gnss_cgps(m, q, meta):
    fix = Fix()
    await m.gnss(True)
    check(m.gnss_on, "on")
    check(not await m.gnss_fix(fix) and not fix.valid, "no fix")
    check(await m.gnss_fix(fix), "fix")
    eq((fix.lat_e7, fix.lon_e7, fix.alt_dm), (312223881, 1213539011, 441), "position")
    eq((fix.year, fix.month, fix.day, fix.hh, fix.mm, fix.ss), (2011, 3, 25, 7, 28, 9), "time")
    await m.gnss(True)  # ERROR then +CGPS: 1,1: already on is fine
    await m.gnss(False)
    check(not m.gnss_on, "off")


async def gnss_cgnss(m, q, meta):
    fix = Fix()
    await m.gnss(True)
    check(not await m.gnss_fix(fix), "manual's empty answer: no fix")
    check(not await m.gnss_fix(fix), "empty fields: no fix")
    check(await m.gnss_fix(fix), "fix")
    eq((fix.lat_e7, fix.lon_e7, fix.sats, fix.hdop_x10), (-312221770, -1213543760, 15, 9),
       "position")
    await m.gnss(False)
    eq(m.at.unknown, 1, "+CGNSSPWR: READY! counted as unknown, nothing else")


async def reboot(m, q, meta):
    await m.init()
    check(m.inited, "inited")
    a, _ = await next_event(q, EV_NONET)
    eq(a, NONET_CGEV, "PDP deactivated by the network")
    try:
        await m.at.cmd(b"AT+CSQ", resp=b"+CSQ:", timeout_ms=5000)
    except ModemError as e:
        eq((e.kind, e.code), ("AT", -2), "the command in flight is aborted by RDY")
    else:
        raise AssertionError("AT+CSQ must fail when the module reboots under it")
    a, _ = await next_event(q, EV_REBOOT)
    eq(a, BOOT_RDY, "reboot cause")
    eq(m.reboots, 1, "reboots")
    check(not m.inited and not m.data_open, "state reset")
    await m.wait_ready(5000, probe_ms=300)  # echo is on again after the reboot
    await m.at.cmd(b"ATE0")
    eq(m.reboots, 1, "boot URCs after the first RDY raise no second reboot")


async def resets(m, q, meta):
    await m.init()
    events(q)
    await m.radio_cycle()
    check(not m.data_open and m.inited, "radio cycle: data closed, no re-init needed")
    await m.restart(5000)
    check(m.inited and m.boot_urcs & BOOT_RDY, "restarted and re-inited")
    eq(m.reboots, 0, "asked-for resets are not spontaneous reboots")
    kinds = [e[0] for e in events(q)]
    check(EV_REBOOT not in kinds and EV_NONET not in kinds, "no EV_REBOOT/NONET: %r" % kinds)
    eq(m.facts["imei"], "862636051234567", "facts after re-init")


async def cnact(m, q, meta):
    eq(await m.data_up(), "10.180.3.7", "CNACT ip")
    # the DEACTIVE URC may be decoded before data_up() resumes: state is checked at the end
    a, _ = await next_event(q, EV_NONET)
    eq(a, NONET_PDP, "+APP PDP: DEACTIVE")
    check(not m.data_open and m.ip is None, "data marked down")


async def sim_puk(m, q, meta):
    eq(await m.sim_state(), "SIM PUK", "PUK-locked")
    eq(m.pin_attempts, 0, "no PIN tried")
    eq([e[:2] for e in events(q)], [(EV_SIM, 0)], "EV_SIM not ready")


async def netclose_closed(m, q, meta):
    await m.data_down()  # +NETCLOSE: 2, ERROR; NETOPEN? says closed: success
    check(not m.data_open, "closed")
    try:
        await m.data_down()
    except ModemError:
        pass
    else:
        raise AssertionError("ERROR while NETOPEN? says open must raise")
    eq(events(q), [], "our own NETCLOSE raises no EV_NONET")


async def cgev_cid(m, q, meta):
    m._own_teardown = m._own_teardown - 10000  # no NETCLOSE of ours just happened
    await m.signal()
    eq(m._nonet_seq, 0, "other contexts' DEACT are not ours")
    await m.signal()
    eq(m._nonet_seq, 1, "+CGEV: NW PDN DEACT 1 is ours")
    await m.signal()
    eq(m._nonet_seq, 3, "DEACT with our cid, then a PS detach")
    eq(m.sim, "NOT READY", "+CPIN: NOT READY recorded")
    kinds = [e[0] for e in events(q)]
    eq(kinds.count(EV_NONET), 3, "EV_NONET per loss of our context")


async def a76_app_rdy_late(m, q, meta):
    lk = Link(m)
    await lk.up()
    eq(lk.name, "data_up", "link state")
    eq((m.boots, m.reboots), (0, 0), "the boot's own late APP RDY is not a reboot")
    check(m.boot_urcs & BOOT_APP and m.inited and m.data_open, "one boot, one init")
    check(EV_REBOOT not in [e[0] for e in events(q)], "no EV_REBOOT")
    check(not m.settling, "data_up: a boot URC from here on is a new boot")


SCENARIOS = {
    "netclose_closed": netclose_closed,
    "cgev_cid": cgev_cid,
    "sim_puk": sim_puk,
    "cnact": cnact,
    "resets": resets,
    "bringup": bringup,
    "bringup_a76": bringup_a76,
    "a76_app_rdy_late": a76_app_rdy_late,
    "bearer": bearer,
    "sim_pin": sim_pin,
    "sim_pin_wrong": sim_pin_wrong,
    "sim_absent": sim_absent,
    "reg_denied": reg_denied,
    "reg_roaming": reg_roaming,
    "csq": csq,
    "netopen_already": netopen_already,
    "cclk": cclk,
    "gnss_cgps": gnss_cgps,
    "gnss_cgnss": gnss_cgnss,
    "reboot": reboot,
}


async def run(path, chunk=None, timeout_ms=8000):
    """Replay one transcript at one chunking and run its scenario; returns the Modem."""
    rm = ReplayModem(path, chunk=chunk)
    meta = rm.meta
    at = Engine(rm)
    q = EventQueue(16)
    m = Modem(at, q, family=meta.get("family", "cmqtt"), pin=meta.get("pin"),
              apn=meta.get("apn"))
    if "model" in meta and meta["scenario"] not in ("bringup", "bringup_a76", "bearer",
                                                       "a76_app_rdy_late"):
        m.facts["model"] = meta["model"]  # scenarios that skip init(): ATI is not replayed
    reader = asyncio.create_task(at.run())
    try:
        await drive(rm, SCENARIOS[meta["scenario"]](m, q, meta), timeout_ms)
        rm.assert_done()
    finally:
        reader.cancel()
    return m
