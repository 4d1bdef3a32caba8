"""AT sequences as data: tables of steps run by one small runner (after Zephyr modem_chat).

A step is a tuple ``(command, response prefix, done URC, timeout ms, policy, source)``:

- ``command``: the bytes sent (without CR);
- ``response prefix``: information lines to keep (``b"+CSQ:"``) or None;
- ``done URC``: a two-phase command's completion URC (``b"+NETOPEN:"``) or None;
- ``timeout ms``: the manual's maximum response time for that command (also the wait
  for the done URC);
- ``policy``: ``MUST`` (a failure raises the engine's ``ModemError``) or ``OPTIONAL``
  (a failure is what some modules answer: logged once with its source, the run goes
  on, the step's index is in the returned list);
- ``source``: the manual section the timeout and the meaning come from ("003 s.5.2.2").

``run(at, steps)`` sends them in order on an ``Engine`` and returns the indexes of the
optional steps that failed.  Tables live beside the code that owns the sequence
(``modem._INIT``...), so the whole sequence and its timings read in one place.
"""

from . import log
from .compat import const
from .engine import R_OK

MUST = const(0)
OPTIONAL = const(1)


async def run(at, steps, tag="link"):
    """Run ``steps`` in order; returns the indexes of OPTIONAL steps that failed."""
    failed = []
    for i in range(len(steps)):
        cmd, resp, done, timeout_ms, policy, source = steps[i]
        # MUST: the engine raises (and counts) the error with the manual's code
        r = await at.cmd(cmd, resp=resp, done=done, timeout_ms=timeout_ms,
                         done_timeout_ms=timeout_ms, check=policy == MUST)
        if r.final == R_OK:
            continue
        failed.append(i)
        log.warn(tag, "%s refused (%s): going on without it", cmd, source)
    return failed
