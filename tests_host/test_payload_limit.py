"""The per-publish payload limit from the modem's identity (tlog.uplink.cmqtt_payload_max):
AT+CMQTTPAYLOAD takes 1..10240 on the A76xx (A76xx MQTT note 2.1.11) and 1..4096 on the
SIM76xx (manual 003 s.16.2.11); the identities are the ones the modems print (ATI model
and revision, AT+CGMR), as in the simulator personas and the seed logs."""

import pytest

from tlog.uplink import cmqtt_payload_max

from modemsim.personas import PERSONAS


@pytest.mark.parametrize("model,revision,want", [
    ("A7600E-H", "A7600M6_V1.0", 10240),
    ("A7670SA-FASE", None, 10240),
    (None, "A011B05A7600M6", 10240),
    ("SIMCOM_SIM7600E", "SIM7600M21-A_V1.1", 4096),
    ("SIMCOM_SIM7600E-H", "LE20B04SIM7600M22", 4096),
    ("SIM7670G-MNGV", "2348B01SIM767XM5A", 4096),
    ("", None, 4096),   # not known: the smaller limit
    (None, None, 4096),
])
def test_limit_by_identity(model, revision, want):
    assert cmqtt_payload_max(model, revision) == want


def test_personas_agree():
    for name in ("A7600", "SIM7670"):
        p = PERSONAS[name]
        assert cmqtt_payload_max(p["model"], p["ati_revision"]) == p["payload_max"], name
