"""atmq: SIMCom modems over AT commands, for MicroPython telematics firmware.

Layers, bottom up: ``reader`` (UART ring, bytes to line, prompt and raw-frame
tokens, dispatch to the command in flight or the URC table, without allocating),
``engine`` (commands, timeouts, URC registration), the modem drivers, and the
MQTT facade.  Submodules are imported explicitly so that a board only loads
what it uses.

``atmq.connect(stream, board_or_model, **config)`` (a coroutine) returns a connected
``MQTTClient``; ``atmq.close(client)`` ends it.  Both load ``atmq/wiring.py`` and
the modules it wires only when first called (RAM): see that module.  (Not a module
named ``connect``: importing it would rebind ``atmq.connect`` to the module.)
"""

__version__ = "0.1.0"


def _wiring():
    from . import wiring

    return wiring


def connect(stream, board_or_model, **config):
    """Coroutine: a connected ``MQTTClient`` over ``stream``; see ``atmq/wiring.py``."""
    return _wiring().connect(stream, board_or_model, **config)


def close(client, timeout_s=10):
    """Coroutine: MQTT DISCONNECT and stop the tasks ``connect`` started."""
    return _wiring().close(client, timeout_s)
