"""atmq: SIMCom modems over AT commands, for MicroPython telematics firmware.

Layers, bottom up: ``reader`` (UART ring, bytes to line, prompt and raw-frame
tokens, dispatch to the command in flight or the URC table, without allocating),
``engine`` (commands, timeouts, URC registration), the modem drivers, and the
MQTT facade.  Submodules are imported explicitly so that a board only loads
what it uses.
"""

__version__ = "0.1.0"
