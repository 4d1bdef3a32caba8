"""AT sequences as data: tables of steps run by one small runner (after Zephyr modem_chat).

A step is a tuple ``(command, response prefix, done, timeout ms, policy, source
[, already[, data]])``:

- ``command``: the bytes sent (without CR), or a tuple ``(format, i, j, ...)``: the
  format filled with ``args[i], args[j], ...`` of the run (client index, client id,
  server address...).  A step one of whose arguments is None is not sent: that setting
  is left as the module has it (the row of an option the caller did not give);
- ``response prefix``: information lines to keep (``b"+CSQ:"``) or None;
- ``done``: a two-phase command's completion, the engine's done URC prefix
  (``b"+NETOPEN:"``), or, with a driver's ``send``, whatever that send takes for it
  (the CMQTT driver: the result URC its handlers catch, whose code decides success);
- ``timeout ms``: the manual's maximum response time for that command (also the wait
  for the done URC); None: the run's ``timeout_ms`` (a deadline the caller computes,
  e.g. CONNECT's, for which the manual gives none);
- ``policy``: ``MUST`` (a failure raises the error with the manual's code) or
  ``OPTIONAL`` (a refusal, what some modules answer to a command they lack, is logged
  once with its source, the run goes on, the step's index is in the returned list;
  with a driver's ``send`` a refusal is a plain ERROR, a code of the command's own
  table, a timeout or a lost link still raise);
- ``source``: the manual section the timeout and the meaning come from ("003 s.5.2.2");
- ``already`` (optional, default none): the command's own error codes that may mean
  the state is there already ("client is used" at ACCQ/CONNECT, a START answered
  "network is opened" or a plain ERROR): the step passes when ``confirm(step, code,
  command)`` says so (it may ask the module: ``AT+CMQTTACCQ?``), without a ``confirm``
  these codes pass as they are;
- ``data`` (optional): the index in ``args`` of the bytes sent after the ``>`` prompt
  (TOPIC/PAYLOAD-like commands: the exact bytes, the engine waits for the prompt); unset
  (None) while the command is not is a ValueError, nothing sent: the modem would wait
  at its prompt and take the next command as the data.

``run(at, steps)`` sends them in order on an ``Engine`` and returns the indexes of the
optional steps that failed.  A driver whose commands end in its own result URCs passes
``send(command, step, data, timeout_ms)`` (raises the driver's ``ModemError`` on failure)
and ``code_of(error)`` (the code a raised step carries, -1 for a plain ERROR, None for a
timeout or a CME error).  Retrying busy codes is not the runner's job: the driver's one
retry layer wraps a whole run (a busy step starts the flow again from its first row).
Tables live beside the code that owns the sequence (``modemq._INIT``, ``cmqttup._CONNECT``...),
so the whole sequence and its timings read in one place.  These run once per session:
building a command allocates, which is fine off the hot paths.
"""

from . import log
from .compat import const
from .engine import R_OK
from .errors import ATError, ModemError

MUST = const(0)
OPTIONAL = const(1)
BARE = const(-1)  # the code of a plain ERROR (no code given)


def command(spec, args):
    """The bytes of a step's ``command`` with ``args`` filled in; None when one is None."""
    if isinstance(spec, (bytes, bytearray)):
        return spec
    vals = []
    for k in spec[1:]:
        v = args[k]
        if v is None:
            return None
        vals.append(v)
    return spec[0] % tuple(vals)


def _code_of(e):
    return BARE if isinstance(e, ATError) else None


async def run(at, steps, tag="link", args=(), send=None, confirm=None, code_of=None,
              timeout_ms=None):
    """Run ``steps`` in order; returns the indexes of OPTIONAL steps that failed."""
    failed = []
    if code_of is None:
        code_of = _code_of
    for i in range(len(steps)):
        step = steps[i]
        cmd = command(step[0], args)
        if cmd is None:
            continue  # an option the caller left unset: not sent
        resp, done, t, policy, source = step[1], step[2], step[3], step[4], step[5]
        if t is None:
            t = timeout_ms
        n = len(step)
        already = step[6] if n > 6 else ()
        data = None
        if n > 7 and step[7] is not None:
            data = args[step[7]]
            if data is None:  # sent, the modem would take the next command as the data
                raise ValueError("%r: the data for its '>' prompt is unset" % (cmd,))
        if send is None:
            # MUST: the engine raises (and counts) the error with the manual's code
            r = await at.cmd(cmd, resp=resp, done=done, payload=data, timeout_ms=t,
                             done_timeout_ms=t, check=policy == MUST)
            if r.final == R_OK:
                continue
        else:
            try:
                await send(cmd, step, data, t)
                continue
            except ModemError as e:
                code = code_of(e)
                if code is not None and code in already and (
                        confirm is None or await confirm(step, code, cmd)):
                    continue  # the state is there already
                if policy != OPTIONAL or code != BARE:
                    raise
        failed.append(i)
        log.warn(tag, "%s refused (%s): going on without it", cmd, source)
    return failed
