"""atmq: SIMCom modems over AT commands, for MicroPython telematics firmware.

Layers, bottom up: ``ring`` (UART ring buffer), ``tokenizer`` (bytes to line,
prompt and raw-frame tokens without allocating), ``engine`` (one command in
flight, URC dispatch), the modem drivers, and the MQTT facade.  Submodules are
imported explicitly so that a board only loads what it uses.
"""

__version__ = "0.1.0"
