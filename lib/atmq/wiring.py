"""One call from a UART (or socket, or pty) to a connected MQTT client: ``atmq.connect``.

(``atmq.connect`` and ``atmq.close`` in ``atmq/__init__.py`` load this module lazily.)

Owns the wiring a library user would otherwise copy: the byte stream (checked, or
adapted on CPython), ``Engine`` and its reader task, ``EventQueue``, ``Inbox``,
``Modem``, the family's MQTT driver (``cmqtt`` for SIM7600/A76xx/SIM767x, 003 ch.16;
``sm`` for SIM800, seed 004, and SIM70x0), ``MQTTClient`` and its supervisor task::

    client = await atmq.connect(uart, "SIM7600", host="broker.example.com",
                                apn="internet", client_id="van-07")
    await client.publish("van-07/hello", "hi")

``board_or_model``: a model name (``atmq.board.MODELS``: "SIM7600", "A7670",
"SIM7670", "SIM7000", "SIM7070", "SIM800", ...), a board dict from
``atmq.board.load``, or the path of a board JSON (boards/*.json: its pins then
power the modem; ``pin_factory`` defaults to ``machine.Pin`` on a board).

``stream``: anything with non-blocking ``readinto(buf)``/``write(buf)`` that
asyncio can poll: on MicroPython a ``machine.UART(..., timeout=0)``, a socket
(set non-blocking here), a pty; on CPython a ``socket.socket`` or a pty/serial
file descriptor (adapted here), or an object that also has ``async
wait_readable()``.  A string ``"tcp:HOST:PORT"`` opens a TCP connection (a modem
simulator, a serial server) on both interpreters.  Anything else is refused with
a ``TypeError`` that says what is taken.

``config``: the ``MQTTClient`` keys (``host``, ``port``, ``client_id``,
``keepalive_s``, ``user``, ``password``, ``will``, ``tls``, ``subscriptions``,
``qos``, ... see ``atmq.client``), the modem's (``apn``, ``apn_user``,
``apn_password``, ``pin``) and sizes (``inbox_slots``, ``topic_max``,
``payload_max``, ``events``), and ``certs`` (``{name: PEM bytes}``: certificate
files put on the modem before the first connect when it does not list them; the
``tls`` profile then names them, e.g. ``atmq.tls.mosquitto_tls("ca.pem")``).  An
unknown key is a ``ConfigError`` naming it.
``on_message`` / ``on_recovery`` are the client's callbacks.

The objects themselves are made by ``atmq.stack`` (``parts``, ``make_client``), the
same code the telelogger calls with the sizes it derives from its board and config:
this module only turns ``board_or_model`` and the keyword config into those sizes.
It imports ``atmq.board`` and ``atmq.client`` only when a call needs them.

The reader and supervisor tasks are started here and kept in ``client.tasks``;
``await atmq.close(client)`` leaves the session cleanly (MQTT DISCONNECT) and
stops both.  The first connect's errors
reach the caller (``ModemError`` with the manual's code, ``ConfigError``) and the
tasks are stopped again: nothing is left running after a failed call.
"""

import asyncio

from . import log as alog
from .compat import IS_MICROPYTHON
from .errors import ConfigError
from .stack import make_client, parts, ring_for

_MODEM_KEYS = ("apn", "apn_user", "apn_password", "pin")
# resources, allocated once: inbound messages kept until read, URC events in flight
_SIZES = {"inbox_slots": 4, "topic_max": 128, "payload_max": 1024, "events": 32}

TAKES = ("a stream with non-blocking readinto()/write(): machine.UART(..., timeout=0), "
         "a socket, a pty; on CPython also a socket.socket or a file descriptor; "
         "or 'tcp:HOST:PORT'")


def _tcp(device):
    """A non-blocking TCP connection for ``tcp:HOST:PORT`` (both interpreters)."""
    import socket

    host, sep, port = device[4:].rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError("expected tcp:HOST:PORT, got %r" % (device,))
    s = socket.socket()
    try:
        s.connect(socket.getaddrinfo(host, int(port))[0][-1])
    except OSError as e:
        s.close()
        raise OSError("cannot connect to the modem at %s: %s" % (device, e)) from None
    return s


def stream_of(obj):
    """``obj`` as a stream the engine can read (see the module docstring); TypeError else."""
    if isinstance(obj, str):
        if not obj.startswith("tcp:"):
            raise TypeError("a string stream must be 'tcp:HOST:PORT', got %r (open a pty or "
                            "serial port yourself and pass the object)" % (obj,))
        obj = _tcp(obj)
    if IS_MICROPYTHON:
        if hasattr(obj, "readinto") and hasattr(obj, "write"):
            if hasattr(obj, "setblocking"):  # a socket: never block the event loop
                obj.setblocking(False)
            return obj
    else:
        if hasattr(obj, "wait_readable") and hasattr(obj, "readinto"):
            return obj  # already speaks the project's stream protocol (atmq.compat)
        from ._host import FdStream, SocketStream  # type: ignore

        if hasattr(obj, "recv_into") and hasattr(obj, "send"):
            return SocketStream(obj)
        if isinstance(obj, int) or hasattr(obj, "fileno"):
            return FdStream(obj)
    raise TypeError("atmq takes %s; got %s" % (TAKES, type(obj).__name__))


def _board_of(board_or_model):
    """(board dict or None, model, family) for a model name, board dict or board path."""
    from . import board as _board

    b = board_or_model
    if isinstance(b, str) and b.endswith(".json"):
        b = _board.load(b)
    if isinstance(b, dict):
        m = b.get("modem") or {}
        model = m.get("model")
        fam = m.get("family") or (_board.MODELS.get(str(model)) or ("cmqtt",))[0]
        return b, model, fam
    if isinstance(b, str):
        spec = _board.MODELS.get(b.upper())
        if spec is None:
            raise ConfigError("model", "unknown modem model %r (known: %s; or a board file)"
                              % (b, ", ".join(sorted(_board.MODELS))))
        return None, b.upper(), spec[0]
    raise TypeError("board_or_model: a model name, a board dict or a board .json path")


def _split(config, keys):
    """(client config, modem options, sizes) from the flat keyword config."""
    cc, mo, sizes = {}, {}, dict(_SIZES)
    for k, v in config.items():
        if k in keys:
            cc[k] = v
        elif k in _MODEM_KEYS:
            mo[k] = v
        elif k in sizes:
            if not isinstance(v, int) or v < 1:
                raise ConfigError(k, "must be a positive integer, got %r" % (v,))
            sizes[k] = v
        else:
            known = sorted(list(keys) + list(_MODEM_KEYS) + list(_SIZES))
            raise ConfigError(k, "unknown key (known: %s)" % ", ".join(known))
    return cc, mo, sizes


def _library_parts(stream, board_or_model, pin_factory, config):
    """``parts()`` and the client config from ``connect``/``build``'s arguments."""
    from .client import _DEFAULTS

    board, model, family = _board_of(board_or_model)
    cc, mo, sizes = _split(config, _DEFAULTS)
    for secret in (cc.get("password"), mo.get("apn_password")):
        if secret:
            alog.add_secret(secret)  # never in a log line (AT+CMQTTCONNECT carries it)
    s = stream_of(stream)
    if pin_factory is None and board is not None and board.get("chip") == "esp32":
        from machine import Pin  # type: ignore

        pin_factory = Pin
    baud = ((board or {}).get("uart") or {}).get("baud") or 115200  # raw-frame deadlines
    d = _DEFAULTS
    mo.update(sizes)
    session = parts(s, family, model, board, pin_factory,
                    ring_size=ring_for(board) if board else 2048, baud=baud,
                    reg_timeout_ms=cc.get("reg_timeout_ms") or d["reg_timeout_ms"],
                    boot_timeout_ms=cc.get("boot_timeout_ms") or d["boot_timeout_ms"],
                    fatal_retry_ms=(cc.get("fatal_retry_s") or d["fatal_retry_s"]) * 1000,
                    **mo)
    modem = session[3]
    if model and not modem.facts.get("model"):
        modem.facts["model"] = model  # type: ignore
    return session, cc


def build(stream, board_or_model, on_message=None, on_recovery=None, pin_factory=None,
          **config):
    """Every object of a session, nothing started and nothing sent: the ``MQTTClient``
    with ``client.at`` (the ``Engine``).  For callers that run their own tasks; needs
    ``client_id`` (``connect`` can take it from the IMEI instead)."""
    session, cc = _library_parts(stream, board_or_model, pin_factory, config)
    c = make_client(session, cc, on_message, on_recovery)
    c.tasks = []  # type: ignore[attr-defined]  # none started (see connect)
    return c


async def connect(stream, board_or_model, on_message=None, on_recovery=None, pin_factory=None,
                  **config):
    """A connected ``MQTTClient`` (reader and supervisor running); see the module docstring.
    Without ``client_id`` the modem is brought up first and its IMEI names the client
    ("atmq-<IMEI>")."""
    certs = config.pop("certs", None)
    session, cc = _library_parts(stream, board_or_model, pin_factory, config)
    at, link = session[0], session[5]
    tasks = [asyncio.create_task(at.run())]  # type: list
    try:
        if certs or not cc.get("client_id"):
            await link.up(first=True)  # identification gives the IMEI
        if certs:
            await install_certs(at, certs)
        c = make_client(session, cc, on_message, on_recovery)
        c.tasks = tasks  # type: ignore[attr-defined]
        await c.connect()
    except BaseException:
        _cancel(tasks)
        raise
    tasks.append(asyncio.create_task(c.run()))
    return c


async def install_certs(at, certs):
    """Download each ``{name: PEM bytes}`` the modem does not list yet (AT+CCERTLIST, then
    AT+CCERTDOWN, 003 s.17.2); a name already there is kept (delete it with
    ``atmq.tls.delete_cert`` to replace it).  Returns the names downloaded."""
    from . import tls

    if not isinstance(certs, dict):
        raise ConfigError("certs", "a dict {name on the modem: PEM bytes}")
    have = await tls.list_certs(at)
    done = []
    for name, data in certs.items():
        if name not in have:
            await tls.download_cert(at, name, data)
            done.append(name)
    return done


def _cancel(tasks):
    for t in tasks:
        t.cancel()
    del tasks[:]


async def close(client, timeout_s=10):
    """Leave the session cleanly (MQTT DISCONNECT, so no Last Will) and stop the tasks
    ``connect`` started.  Bounded: after ``timeout_s`` the tasks are stopped anyway."""
    try:
        if client.isconnected():
            await asyncio.wait_for(client.disconnect(), timeout_s)
    finally:
        _cancel(getattr(client, "tasks", []))
