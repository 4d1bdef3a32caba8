"""Certificates and SSL contexts: AT+CCERTDOWN/CCERTLIST/CCERTDELE, AT+CSSLCFG (manual 003 ch.17).

Also turns an SSL context plus the downloaded files into a Python ssl.SSLContext for
the MQTT bridge: authmode 0 no verification, 1 verify server (cacert), 2 verify server
and present client cert/key, 3 client cert only (17.2.1).
"""

import os
import ssl
import tempfile

from .atcmd import AtError

CSSLCFG_TEST = (
    '+CSSLCFG: "sslversion",(0-9),(0-4)', '+CSSLCFG: "authmode",(0-9),(0-3)',
    '+CSSLCFG: "ignorelocaltime",(0-9),(0,1)', '+CSSLCFG: "negotiatetime",(0-9),(10-300)',
    '+CSSLCFG: "cacert",(0-9),(5-55)', '+CSSLCFG: "clientcert",(0-9),(5-55)',
    '+CSSLCFG: "clientkey",(0-9),(5-55)', '+CSSLCFG: "password",(0-9),(5-55)',
    '+CSSLCFG: "enableSNI",(0-9),(0,1)', '+CSSLCFG: "ignorecertCN",(0-9),(0,1)',
    '+CSSLCFG: "use_tickets",(0-9),(0,1)', '+CSSLCFG: "ciphersuites",(0-9),(0x0000-0xffff)')

# field -> (kind, lo, hi); files are names 5-55 bytes ending .pem/.der
FIELDS = {"sslversion": ("int", 0, 4), "authmode": ("int", 0, 3),
          "ignorelocaltime": ("int", 0, 1), "negotiatetime": ("int", 10, 300),
          "cacert": ("file",), "clientcert": ("file",), "clientkey": ("file",),
          "password": ("file",), "enablesni": ("int", 0, 1), "ignorecertcn": ("int", 0, 1),
          "use_tickets": ("int", 0, 1), "ciphersuites": ("int", 0, 0xFFFF)}
ORDER = ("sslversion", "authmode", "ignorelocaltime", "negotiatetime", "cacert", "clientcert",
         "clientkey", "password", "enablesni", "ignorecertcn", "use_tickets", "ciphersuites")


def default_ctx():
    return {"sslversion": 4, "authmode": 0, "ignorelocaltime": 1, "negotiatetime": 300,
            "cacert": "", "clientcert": "", "clientkey": "", "password": "", "enablesni": 0,
            "ignorecertcn": 0, "use_tickets": 0, "ciphersuites": 0}


def ctx_line(i, ctx):
    vals = []
    for k in ORDER:
        v = ctx[k]
        vals.append('"%s"' % v if FIELDS[k][0] == "file" else
                    ("0x%04X" % v if k == "ciphersuites" and v else str(v)))
    return "+CSSLCFG: %d,%s" % (i, ",".join(vals))


def valid_filename(name):
    return 5 <= len(name) <= 55 and name.lower().endswith((".pem", ".der"))


async def csslcfg(m, c):
    if c.kind == "test":
        if m.old_firmware:
            raise AtError()    # no SSL contexts at all (the seed 001 firmware, assumed)
        return list(CSSLCFG_TEST)
    if c.kind == "read":
        return [ctx_line(i, x) for i, x in enumerate(m.ssl_ctx)]
    if c.kind != "write":
        raise AtError()
    if not c.quoted(0):
        i = c.int(0, 0, 9)
        return [ctx_line(i, m.ssl_ctx[i])]
    field = c.str(0).lower()
    if field not in FIELDS:
        raise AtError()
    if field == "sslversion" and m.old_firmware:
        raise AtError()        # seed 001: LE11B02SIM7500A answers ERROR to this one
    i = c.int(1, 0, 9)
    spec = FIELDS[field]
    if spec[0] == "int":
        m.ssl_ctx[i][field] = c.int(2, spec[1], spec[2])
    else:
        name = c.str(2)
        if not valid_filename(name):
            raise AtError()
        m.ssl_ctx[i][field] = name
    return None


async def ccertdown(m, c):
    if c.kind == "test":
        return ["+CCERTDOWN: (5-55),(1-10240)"]
    if c.kind != "write":
        raise AtError()
    name = c.str(0)
    n = c.int(1, 1, 10240)
    if not valid_filename(name):
        raise AtError()
    data = await m.prompt(n)
    m.certs[name] = data
    return None


async def ccertlist(m, c):
    if c.kind != "exec":
        return None
    return ['+CCERTLIST: "%s"' % k for k in sorted(m.certs)]


async def ccertdele(m, c):
    if c.kind != "write":
        return None
    name = c.str(0)
    if name not in m.certs:
        raise AtError()
    del m.certs[name]
    return None


def build_context(m, ctx_index, check_name=True):
    """ssl.SSLContext for SSL context ctx_index; raises LookupError if a file is missing."""
    ctx = m.ssl_ctx[ctx_index]
    sc = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    sc.check_hostname = False
    sc.verify_mode = ssl.CERT_NONE
    mode = ctx["authmode"]
    version = {1: ssl.TLSVersion.TLSv1, 2: ssl.TLSVersion.TLSv1_1, 3: ssl.TLSVersion.TLSv1_2}
    if ctx["sslversion"] in version:
        v = version[ctx["sslversion"]]
        try:
            sc.minimum_version = sc.maximum_version = v
        except ValueError:
            pass
    if mode in (1, 2):
        ca = m.certs.get(ctx["cacert"])
        if ca is None:
            raise LookupError("cacert")
        sc.verify_mode = ssl.CERT_REQUIRED
        sc.check_hostname = check_name and not ctx["ignorecertcn"]
        if b"-----BEGIN" in ca:
            sc.load_verify_locations(cadata=ca.decode("latin-1"))
        else:
            sc.load_verify_locations(cadata=ca)
    if mode in (2, 3):
        cert, key = m.certs.get(ctx["clientcert"]), m.certs.get(ctx["clientkey"])
        if cert is None or key is None:
            raise LookupError("clientcert/clientkey")
        with tempfile.TemporaryDirectory(prefix="modemsim-") as d:
            cp, kp = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
            with open(cp, "wb") as f:
                f.write(cert)
            with open(kp, "wb") as f:
                f.write(key)
            sc.load_cert_chain(cp, kp)
    return sc


def register(t):
    from .cmd_basic import family
    for name, h in (("+CSSLCFG", csslcfg), ("+CCERTDOWN", ccertdown),
                    ("+CCERTLIST", ccertlist), ("+CCERTDELE", ccertdele)):
        t[name] = family("ssl")(h)
