"""GNSS commands: SIM7600 AT+CGPS/AT+CGPSINFO and A76xx/SIM767x AT+CGNSSPWR/AT+CGNSSINFO.

Manual 003 21.2.1 (CGNSSPWR), 21.2.20 (CGPSINFO), 21.2.21 (CGNSSINFO).  The
write form "=<time>" turns on a periodic report every <time> seconds (0 stops it).
"""

import asyncio

from .atcmd import AtError
from .cmd_basic import family
from .gnss import cgnssinfo, cgpsinfo


def _power(m, on):
    m.st.gnss_on = on
    m.gnss.power(on)
    if not on:
        m.st.gnss_report_s = 0


async def cgps(m, c):
    if c.kind == "read":
        return ["+CGPS: %d,1" % (1 if m.st.gnss_on else 0)]
    if c.kind == "test":
        return ["+CGPS: (0,1),(1-3)"]
    on = c.int(0, 0, 1)
    c.int(1, 1, 3, default=1)
    if on == m.st.gnss_on:
        raise AtError()                       # already in that state
    _power(m, bool(on))
    if not on:
        m.after_final(_urc_later(m, "+CGPS: 0"))


def _urc_later(m, line):
    async def f():
        await m.delay(0.1)
        m.urc(line)
    return f


async def cgnsspwr(m, c):
    if c.kind == "read":
        return ["+CGNSSPWR: %d" % (1 if m.st.gnss_on else 0)]
    if c.kind == "test":
        return ["+CGNSSPWR: (0,1)"]
    on = bool(c.int(0, 0, 1))
    _power(m, on)
    if on:
        m.after_final(_urc_later(m, "+CGNSSPWR: READY!"))   # A76xx: GNSS engine is up


def _info(name, fmt):
    async def h(m, c):
        if c.kind == "test":
            return ["%s: (0-255)" % name]
        if c.kind == "read":
            return ["%s: %d" % (name, m.st.gnss_report_s)]
        if c.kind == "write":
            n = c.int(0, 0, 255)
            if not m.st.gnss_on:
                raise AtError()
            m.st.gnss_report_s = n
            if n:
                m.after_final(lambda: _report(m, n, fmt))
            return None
        if not m.st.gnss_on:
            return [fmt(None)]
        return [fmt(m.gnss.fix())]
    return h


async def _report(m, n, fmt):
    st = m.st
    while st is m.st and st.gnss_report_s == n and st.gnss_on:
        m.urc(fmt(m.gnss.fix()))
        await asyncio.sleep(n)


def register(t):
    t["+CGPS"] = family("gps")(cgps)
    t["+CGPSINFO"] = family("gps")(_info("+CGPSINFO", cgpsinfo))
    t["+CGNSSPWR"] = family("gnss")(cgnsspwr)
    t["+CGNSSINFO"] = family("gnss")(_info("+CGNSSINFO", cgnssinfo))
