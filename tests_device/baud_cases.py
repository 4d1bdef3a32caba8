"""atmq.baud transcript cases, shared by tests_host/test_baud.py (CPython) and
tests_device/test_baud_device.py (MicroPython unix port).

Each transcript in tests_host/transcripts/baud/ says what is asked (``@want``; with
``@call recover`` and ``@current``: ``recover`` instead of ``switch``), what it must
return (``@expect``, or ``timeout`` for ``ATTimeout``) and the host speeds set in
order (``@host``, ``none`` for no change).  ``run(path, chunk)`` replays it through
the real Engine and ends with ``assert_done``: the host wrote exactly the
transcript's bytes (so nothing like AT+IPREX) and read every modem byte.
"""

import asyncio

from atmq import baud
from atmq.engine import Engine
from atmq.errors import ATTimeout
from atxreplay import ReplayModem, drive

TRANSCRIPTS = "tests_host/transcripts/baud/"


async def run(path, chunk=None, timeout_ms=8000):
    rm = ReplayModem(path, chunk=chunk)
    meta = rm.meta
    at = Engine(rm)
    hosts = []
    logs = []
    want = int(meta["want"])
    old = baud.VERIFY_MS
    baud.VERIFY_MS = 60  # the silent cases wait this per AT (the replay has no clock)
    reader = asyncio.create_task(at.run())
    try:
        try:
            if meta.get("call") == "recover":
                job = baud.recover(at, hosts.append, int(meta["current"]), want, logs.append)
            else:
                job = baud.switch(at, want, hosts.append, log=logs.append)
            got = await drive(rm, job, timeout_ms)
        except ATTimeout:
            got = "timeout"
        rm.assert_done()
    finally:
        baud.VERIFY_MS = old
        reader.cancel()
    if str(got) != meta["expect"]:
        raise AssertionError("%s: switch returned %r, want %s (log %r)"
                             % (path, got, meta["expect"], logs))
    want_hosts = [] if meta["host"] == "none" else [int(v) for v in meta["host"].split(",")]
    if hosts != want_hosts:
        raise AssertionError("%s: host speeds %r, want %r" % (path, hosts, want_hosts))
    return got
