"""The objects of one modem + MQTT session, wired in one place: ``parts()`` and
``make_client()``.

The one wiring of the library (``atmq.connect``/``atmq.wiring.build``, which derive
the sizes from a model or board and the keyword config) and of the telelogger
(tlog/app.py, which derives them from its board file and config.json): the
``Engine`` (reader ring, line and command sizes, the baud its raw-frame deadlines
assume), ``EventQueue``, ``Inbox``, ``Modem``, the family's MQTT driver, the
``Link`` that owns the bring-up, then the ``MQTTClient``.

Small on purpose: the telelogger imports it at boot, before its long-lived buffers,
so it loads neither ``atmq.board`` nor ``atmq.client`` (the client is made later, in
``make_client``) nor the stream adapters and keyword parsing of ``atmq.wiring``.
"""

from .compat import const
from .engine import CMD_LINE_MAX, Engine
from .errors import ConfigError
from .events import EventQueue
from .inbox import Inbox
from .link import Link
from .modem import Modem

# an SM-family line beyond the topic and the message: AT+SMPUB="<topic>",q,r,"<message>"
# out, +SMSUB: "<topic>","<message>" in (seed 004 3.5, 3.10)
_SM_FRAMING = const(48)


def ring_for(board):
    """The reader's ring size for a board: dispatch empties it after every read (at most a
    256-byte chunk), so it holds only what a reader error left over; a burst waits in the
    UART driver's buffer (``uart.rxbuf``).  A power of two >= rxbuf, 512..2048."""
    ring = 512
    rxbuf = (board.get("uart") or {}).get("rxbuf") or 1024
    while ring < rxbuf and ring < 2048:
        ring <<= 1
    return ring


def driver(family, model, at, events, inbox):
    """The MQTT driver of the modem family (its module imported only here: RAM): CMQTT
    (SIM7600/A76xx/SIM767x, 003 ch.16) or SM (SIM800, seed 004; SIM70x0), whose variant
    the model picks: without a model an SM modem is refused, not guessed."""
    if family == "cmqtt":
        from .cmqtt import CMQTTDriver

        return CMQTTDriver(at, events, inbox)
    if not model:
        raise ConfigError("modem.model", "the SM family needs the model (SIM800, SIM7000, "
                          "SIM7070, SIM7080): it picks the commands")
    from . import smmqtt

    return smmqtt.SMDriver(at, events, inbox, variant=smmqtt.variant_for(model))


def parts(stream, family, model=None, board=None, pin_factory=None, pin=None, apn=None,
          apn_user=None, apn_password=None, ring_size=2048, line_max=None, tx_max=None,
          baud=115200, events=32, inbox_slots=4, topic_max=128, payload_max=1024,
          reg_timeout_ms=180000, boot_timeout_ms=30000, fatal_retry_ms=1800000):
    """Every object of a session below the client, nothing sent: the tuple ``(engine,
    events, inbox, modem, driver, link)``; every buffer is allocated here, in this order.

    ``stream``: already a stream the engine takes (``atmq.wiring.stream_of``).
    ``family``: "cmqtt" or "sm"; ``model`` picks the SM variant.  ``ring_size``: the
    reader's ring (``ring_for(board)``); ``line_max``/``tx_max``: the longest line in
    and command out (None: the engine's 512/600, and for the SM family, which carries a
    message inline, ``payload_max + topic_max`` + framing); ``baud``: the UART speed the
    raw-frame deadlines assume; ``events``: URC events in flight; ``inbox_slots`` x
    (``topic_max``, ``payload_max``): inbound messages kept until read; the link's
    registration wait, boot wait and fatal backoff."""
    if family == "sm" and line_max is None:
        line_max = payload_max + topic_max + _SM_FRAMING
    if line_max is None:
        at = Engine(stream, ring_size=ring_size, baud=baud)
    else:
        # a command line never exceeds the modem's buffer (003 s.4), whatever the message
        at = Engine(stream, ring_size=ring_size, line_max=line_max,
                    tx_max=tx_max or min(line_max, CMD_LINE_MAX), baud=baud)
    evq = EventQueue(events)
    inbox = Inbox(inbox_slots, topic_max, payload_max)
    modem = Modem(at, evq, board=board, family=family, pin_factory=pin_factory, pin=pin,
                  apn=apn, apn_user=apn_user, apn_password=apn_password)
    drv = driver(family, model, at, evq, inbox)
    # the one owner of the bring-up, shared by connect() (IMEI first) and the client
    link = Link(modem, drv, reg_timeout_ms=reg_timeout_ms, boot_timeout_ms=boot_timeout_ms,
                fatal_retry_ms=fatal_retry_ms)
    return at, evq, inbox, modem, drv, link


def make_client(session, config, on_message=None, on_recovery=None):
    """The ``MQTTClient`` over ``parts()``'s ``session``; ``client.at`` is the engine.

    ``atmq.client`` is imported here for the library; the telelogger imports it at boot
    on purpose (its globals table placed before the heap fragments).  No attribute is
    added to the client here: two more grew its attribute table by a 376-byte block
    (issue 11)."""
    from .client import MQTTClient

    _at, events, inbox, modem, drv, link = session
    c = MQTTClient(modem, drv, events, inbox, config, on_message=on_message,
                   on_recovery=on_recovery, link=link)
    return c
