"""On-device half of tools/provision.py: runs on the board (MicroPython) under ``mpremote run``.

Owns the modem side of provisioning.  provision.py copies each certificate to a
temporary file on the board's flash (``mpremote fs cp``: the bytes never pass
through a REPL print or a log) and then runs this file with a call
``main('<json params>')`` appended.  Steps, each reported as one line
``PROV {json}`` that the host parses:

  link       open the modem UART per the board (tlog.platform.open_stream), probe AT
             (PWRKEY power-on through atmq.power when the board has pins and the
             module is silent), then atmq.modem.Modem.init (echo off, numeric errors)
  download   atmq.tls.download_cert per file (AT+CCERTDOWN, manual 17.2.2)
  list       atmq.tls.list_certs (AT+CCERTLIST, 17.2.3): every name must be there
  configure  atmq.tls.configure_ssl (AT+CSSLCFG, 17.2.1) unless the profile is plain
  readback   AT+CSSLCFG=<ctx> (17.2.1 read form), raw fields for the host to compare
  error      the step that failed, the manual's kind/code/class and message
  cleanup    the temporary files removed (always, also after a failure)
  done       ok true/false

Needs atmq and tlog on the board (tools/deploy.py puts both in :lib).
"""

import asyncio
import json
import os

from atmq import tls
from atmq.engine import Engine
from atmq.errors import ModemError
from atmq.events import EventQueue
from atmq.modem import Modem
from tlog import platform


def out(step, d):
    d["step"] = step
    print("PROV " + json.dumps(d))


def _error(step, e, extra=None):
    d = {"at": step, "message": str(e), "type": type(e).__name__}
    if isinstance(e, ModemError):
        d["kind"] = e.kind
        d["code"] = e.code
        d["cls"] = e.cls
        c = e.command
        d["command"] = c.decode() if isinstance(c, (bytes, bytearray)) else c
    if extra:
        for k in extra:
            d[k] = extra[k]
    out("error", d)


def _remove(paths):
    left = []
    for p in paths:
        try:
            os.remove(p)
        except OSError:
            pass
        try:
            os.stat(p)
            left.append(p)
        except OSError:
            pass
    return left


async def _link(at, board, boot_ms):
    m = Modem(at, EventQueue(8), board=board, family=board["modem"]["family"] or "cmqtt",
              pin_factory=platform.pin_factory())
    powered = False
    if not await m.probe(3, 1000):
        if await m.power_on() is None:  # no pins (unix board): nothing more to try
            await m.wait_ready(timeout_ms=3000)
        else:
            powered = True
            await m.wait_ready(timeout_ms=boot_ms + 15000, need_boot=True)
    facts = await m.init()
    out("link", {"ok": True, "powered_on": powered, "model": facts.get("model"),
                 "revision": facts.get("revision")})
    return facts


async def _readback(at, ctx):
    r = await at.cmd(b"AT+CSSLCFG=%d" % ctx, resp=b"+CSSLCFG:", timeout_ms=tls.T_SSL_MS,
                     check=False)
    if not r.ok or r.count < 1:
        out("readback", {"ok": False, "ctx": ctx,
                         "message": "this firmware has no AT+CSSLCFG=<ctx> read form"})
        return
    a = r.line(0)
    out("readback", {"ok": True, "ctx": ctx,
                     "fields": [a.arg_str(i) for i in range(a.count())]})


async def _run(p, at):
    step = "link"
    try:
        facts = await _link(at, p["board"], p.get("boot_ms") or 0)
        for f in p["files"]:
            step = "download"
            with open(f["tmp"], "rb") as fh:
                data = fh.read()
            await tls.download_cert(at, f["name"], data)
            out("download", {"ok": True, "name": f["name"], "role": f["role"],
                             "bytes": len(data)})
            data = None
        step = "list"
        names = await tls.list_certs(at)
        missing = [f["name"] for f in p["files"] if f["name"] not in names]
        out("list", {"ok": not missing, "certs": names, "missing": missing})
        if missing:
            return False
        if p["profile"] is not None:
            step = "configure"
            prof = await tls.configure_ssl(at, p["ctx"], p["profile"],
                                           revision=facts.get("revision"))
            out("configure", {"ok": True, "ctx": p["ctx"], "profile": prof})
            step = "readback"
            await _readback(at, p["ctx"])
        return True
    except Exception as e:  # every failure becomes one machine-readable line
        _error(step, e)
        return False


async def _main(p):
    ok = False
    s = None
    reader = None
    try:
        s = platform.open_stream(p["board"]["uart"], p.get("modem"))
        at = Engine(s)
        reader = asyncio.create_task(at.run())
        ok = await _run(p, at)
    except Exception as e:  # the UART/socket could not be opened
        _error("open", e)
    finally:
        left = _remove([f["tmp"] for f in p["files"]])
        out("cleanup", {"ok": not left, "left": left})
        if left:  # certificate bytes still on the board's flash: not a success
            ok = False
        if reader is not None:
            reader.cancel()
            try:
                await reader
            except BaseException:  # CancelledError; the reader has no result to keep
                pass
        close = getattr(s, "close", None)
        if close is not None:
            close()
    out("done", {"ok": ok})


def main(params):
    asyncio.run(_main(json.loads(params)))
