"""Persona tables: what each simulated SIMCom model says about itself and which families it has.

Data only.  Identity strings for SIM7600E come from seed 001 (ATI/AT+CGMR logs); the
SIM767X revision from manual 003 (AT+CGMR example); the old SIM7600A firmware that
refuses AT+CSSLCFG="sslversion" is LE11B02SIM7500A (seed 001).
"""

# Boot URCs, one line each, in the order a powered-on module prints them.
BOOT_7600 = ("RDY", "+CPIN: READY", "SMS DONE", "PB DONE")
# A76xx/SIM767x add "APP RDY" once the application is up (Zephyr's A76xx chat script
# waits for it; docs/anchors/modem-stacks.md G.18).
BOOT_A76 = BOOT_7600 + ("APP RDY",)
BOOT_SIM800 = ("RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready")

OLD_FIRMWARE_REVISION = "LE11B02SIM7500A"

PERSONAS = {
    "SIM7600E": {
        "model": "SIMCOM_SIM7600E",
        "ati_revision": "SIM7600M21-A_V1.1",
        "cgmr": "LE11B02SIM7600M21-A",
        "boot": BOOT_7600,
        "families": ("cmqtt", "ssl", "net", "gps"),
        "payload_max": 10240,       # A7600/SIM7600 MQTT manual: 1-10240
        "prompt": b"\r\n>",          # seed 001: prompt is ">" on a new line, no space
        "cgsn_prefix": "",
    },
    "A7600": {
        "model": "A7600E-H",
        "ati_revision": "A7600M6_V1.0",
        "cgmr": "A011B05A7600M6",
        "boot": BOOT_A76,
        "families": ("cmqtt", "ssl", "net", "gnss"),
        "payload_max": 10240,       # seed 002 2.1.11
        "prompt": b"\r\n>",
        "cgsn_prefix": "",
    },
    "SIM7670": {
        "model": "SIM7670G-MNGV",
        "ati_revision": "2348B01SIM767XM5A",
        "cgmr": "2348B01SIM767XM5A",  # manual 003 AT+CGMR example
        "boot": BOOT_A76,
        "families": ("cmqtt", "ssl", "net", "gnss"),
        "payload_max": 4096,        # manual 003 16.2.11: "The SIM76XX is: (1-4096)"
        "prompt": b"\r\n>",
        "cgsn_prefix": "",
    },
    "SIM800": {
        "model": "SIM800L",
        "ati_revision": "1418B05SIM800L24",
        "cgmr": "Revision:1418B05SIM800L24",
        "boot": BOOT_SIM800,
        "families": ("sm", "sapbr"),
        "payload_max": 1024,        # seed 004 3.5: message range 0-1024
        "prompt": b"\r\n> ",        # SIM800 family prompts are "> "
        "cgsn_prefix": "",
    },
}

IDENTITY = {
    "manufacturer": "SIMCOM INCORPORATED",
    "imei": "864764050000017",
    "iccid": "89860318760238610932",
    "imsi": "460011234567890",
    "ip": "10.84.17.161",
    "operator": "46001",
}


def persona(name):
    try:
        return PERSONAS[name]
    except KeyError:
        raise ValueError("unknown persona %r (have %s)" % (name, ", ".join(PERSONAS))) from None
