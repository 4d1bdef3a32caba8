"""SIMCom modem simulator: AT commands over TCP/pty, bridged to a real MQTT broker.

Library API: ModemSim (see server.py).  CLI: python3 tools/modemsim --help.
"""

import os
import sys

if __package__ in (None, ""):  # pragma: no cover - run as a directory
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from .server import ModemSim, SimOptions  # noqa: E402

__all__ = ["ModemSim", "SimOptions"]
