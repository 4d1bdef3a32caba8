"""atmq.errtab and atmq.errors: the tables match the manuals, classes are sane, API formats.

The completeness tests re-read the manuals in /work/shared/seeds and compare
every code and meaning with the table (skipped only when the seeds are not on
this machine); the spot checks below them hold the manual's wording inline.
"""

import glob
import os
import re

import pytest

from atmq import errtab
from atmq.errors import ATError, ATTimeout, ConfigError, ModemError

SEEDS = os.environ.get("ATMQ_SEEDS", "/work/shared/seeds")
LINE = re.compile(r"^(\d+) ([OTSF]) ([^|\n]+?)(?:\|([^|\n]+))?$")


def meaning(kind, code):
    e = errtab.lookup(kind, code)
    assert e is not None, (kind, code)
    return e[1]


def _seed(prefix):
    found = glob.glob(os.path.join(SEEDS, prefix + "_*.txt"))
    if not found:
        pytest.skip("seed %s not on this machine" % prefix)
    with open(found[0], encoding="utf-8") as f:
        return f.read().split("\n")


def _manual_table(lines, start, end):
    """{code: meaning} from the tab-separated table between two headings of manual 003."""
    i = next(n for n, ln in enumerate(lines) if ln.startswith(start))
    out = {}
    for ln in lines[i + 1 :]:
        if ln.startswith(end):
            break
        m = re.match(r"^(\d+)\t(.+?)\s*$", ln)
        if m:
            code = int(m.group(1))
            assert code not in out, "manual lists %d twice" % code
            out[code] = m.group(2)
    assert out, "no table found after %r" % start
    return out


# (kind, heading that starts the table in manual 003, heading that ends it)
MANUAL_003 = [
    ("CME", "# 25.3 Summary of CME ERROR Codes", "AT+CPIN="),
    ("CMS", "# 25.4 Summary of CMS ERROR Codes", "#### AT+CMGS"),
    ("CMQTT", "### 16.3.1 Description of <err>", "### **16.4"),
    ("SSL", "# 17.3.1 Description of <err>", "# 17.4"),
    ("NET", "# 13.3.2 Description of <err>", "# 13.4"),
    ("IP", "#### 13.3.1 Description of <err", "# 13.3.2"),
]


@pytest.mark.parametrize("kind,start,end", MANUAL_003, ids=[k for k, _, _ in MANUAL_003])
def test_table_equals_manual_003(kind, start, end):
    manual = _manual_table(_seed("003"), start, end)
    ours = {code: m for code, _cls, _name, m in errtab.entries(kind)}
    assert sorted(ours) == sorted(manual)
    for code, text in manual.items():
        assert ours[code] == text, (kind, code)


def test_cmqtt_cross_checked_with_a7600_note_002():
    lines = _seed("002")
    i = lines.index("2.2.1 Command result <err> codes")
    j = lines.index("2.2.2 Unsolicited result codes")
    # The OCR lost the numbers of the first rows: compare the meanings as a set,
    # and the numbered rows (23-35) code by code.
    texts = set()
    numbered = {}
    for ln in lines[i + 1 : j]:
        ln = ln.strip()
        m = re.match(r"^(\d+) (.+)$", ln)
        if m:
            numbered[int(m.group(1))] = m.group(2)
            texts.add(m.group(2))
        elif re.search(r"[a-zA-Z]{4}", ln):  # skip the OCR-garbled number column
            texts.add(ln)
    ours = {code: m for code, _c, _n, m in errtab.entries("CMQTT")}
    assert texts == set(ours.values())
    assert numbered and all(ours[c] == t for c, t in numbered.items())
    assert sorted(ours) == list(range(36))


def test_connlost_causes_from_note_002():
    text = "\n".join(_seed("002"))
    for code, want in ((1, "Socket is closed passively."), (2, "Socket is reset."),
                       (3, "Network is closed.")):
        assert "%d — %s" % (code, want) in text
        assert meaning("CONNLOST", code) == want


def test_sm_status_from_sim800_note_004():
    text = "\n".join(_seed("004"))
    assert text.count("<status> Subscribe status") == 1
    for code, want in ((0, "Success"), (1, "Time Out"), (2, "Other Error")):
        assert meaning("SM", code) == want
    assert "1\tTime Out" in text and "2\tOther Error" in text


@pytest.mark.parametrize("kind", errtab.KINDS)
def test_table_text_is_well_formed(kind):
    raw = errtab._TABLES[errtab.KINDS.index(kind)]
    assert raw.startswith("\n") and raw.endswith("\n")
    codes = []
    for ln in raw.strip("\n").split("\n"):
        m = LINE.match(ln)
        assert m, "bad line %r in %s" % (ln, kind)
        codes.append(int(m.group(1)))
        if m.group(4) is not None:  # a short name must be shorter than the meaning
            assert len(m.group(3)) < len(m.group(4)), ln
    assert len(codes) == len(set(codes)), "duplicate codes in %s" % kind
    assert codes == sorted(codes)


@pytest.mark.parametrize("kind", errtab.KINDS)
def test_entries_consistent_with_lookup_and_cls_of(kind):
    for code, cls, name, text in errtab.entries(kind):
        assert cls in (errtab.SUCCESS, errtab.TRANSIENT, errtab.STATE, errtab.FATAL)
        assert (cls == errtab.SUCCESS) == (code == 0 and kind not in ("CME", "IP"))
        assert name and text and name == name.strip() and text == text.strip()
        assert errtab.lookup(kind, code) == (name, text, cls)
        assert errtab.cls_of(kind, code) == cls


def test_codes_that_prefix_others_are_not_confused():
    assert meaning("CME", 1) == "no connection to phone"
    assert meaning("CME", 10) == "SIM not inserted"
    assert meaning("CME", 100) == "unknown error"
    assert meaning("CMQTT", 3) == "sock connect fail"
    assert meaning("CMQTT", 35) == "Disconnect from server failed"


CLASSES = [
    # CMQTT, manual 003 16.3.1: the brief's decisions
    ("CMQTT", 0, errtab.SUCCESS),
    ("CMQTT", 11, errtab.STATE),
    ("CMQTT", 14, errtab.TRANSIENT),
    ("CMQTT", 19, errtab.STATE),
    ("CMQTT", 20, errtab.STATE),
    ("CMQTT", 21, errtab.STATE),
    ("CMQTT", 23, errtab.STATE),
    ("CMQTT", 30, errtab.FATAL),
    ("CMQTT", 31, errtab.FATAL),
    ("CMQTT", 33, errtab.FATAL),
    ("CMQTT", 34, errtab.FATAL),
    ("CMQTT", 17, errtab.TRANSIENT),
    ("CMQTT", 26, errtab.TRANSIENT),
    # CME: SIM credentials are fatal, a busy SIM is not
    ("CME", 10, errtab.FATAL),
    ("CME", 11, errtab.FATAL),
    ("CME", 12, errtab.FATAL),
    ("CME", 14, errtab.TRANSIENT),
    ("CME", 30, errtab.TRANSIENT),
    ("CME", 127, errtab.FATAL),
    ("CME", 129, errtab.FATAL),
    ("CME", 515, errtab.STATE),
    ("CME", 524, errtab.STATE),
    ("CMS", 314, errtab.TRANSIENT),
    ("CMS", 311, errtab.FATAL),
    ("SSL", 19, errtab.FATAL),
    ("SSL", 3, errtab.TRANSIENT),
    ("SSL", 17, errtab.STATE),
    ("NET", 2, errtab.STATE),
    ("NET", 9, errtab.STATE),
    ("NET", 11, errtab.TRANSIENT),
    ("IP", 4, errtab.STATE),
    ("IP", 12, errtab.FATAL),
    ("SM", 1, errtab.TRANSIENT),
    ("CONNLOST", 3, errtab.STATE),
]


@pytest.mark.parametrize("kind,code,cls", CLASSES)
def test_class_decisions(kind, code, cls):
    assert errtab.cls_of(kind, code) == cls


def test_manual_wording_spot_checks():
    assert errtab.lookup("CMQTT", 14) == ("client is busy", "client is busy", errtab.TRANSIENT)
    assert errtab.lookup("CMQTT", 30) == (
        "bad user name or password",
        "connection refused: bad user name or password",
        errtab.FATAL,
    )
    assert meaning("CME", 32) == "network not allowed - emergency call only"
    assert meaning("CME", 127) == "Mission or unknown APN"  # sic, manual 25.3
    assert meaning("CMS", 340) == "no +CNMA acknowledgement expected"
    assert meaning("SSL", 1) == "Alerting state(reserved)"
    assert meaning("NET", 11) == "DNS parse failed for AT+CIPOPEN"
    assert meaning("IP", 16) == "Net close failed for socket opened"


def test_describe_format():
    assert errtab.describe("CMQTT", 14) == "CMQTT 14 (client is busy): client is busy"
    assert errtab.describe("CME", 32) == (
        "CME 32 (emergency calls only): network not allowed - emergency call only"
    )
    assert errtab.describe("CMQTT", 99) == "CMQTT 99 (unknown code)"
    # describe never raises: it runs on error paths
    assert errtab.describe("NOPE", 1) == "NOPE 1 (unknown code)"
    assert errtab.describe("CME", "14") == "CME 14 (unknown code)"


def test_unknown_code_and_bad_arguments():
    assert errtab.lookup("CMQTT", 99) is None
    assert errtab.lookup("CME", 0) is None
    assert errtab.cls_of("CMQTT", 99) == errtab.UNKNOWN
    with pytest.raises(ValueError, match="unknown kind 'CMQ'"):
        errtab.lookup("CMQ", 1)
    with pytest.raises(ValueError):
        errtab.cls_of("", 1)
    with pytest.raises(TypeError):
        errtab.lookup("CME", "14")


def test_code_for_verbose_text():
    assert errtab.code_for("CME", "SIM busy") == 14
    assert errtab.code_for("CME", " sim BUSY ") == 14
    assert errtab.code_for("IP", "Network is already opened") == 4
    assert errtab.code_for("CMQTT", "client is busy") == 14
    assert errtab.code_for("CME", "emergency calls only") == 32  # by short name
    # a short name that two entries share resolves by meaning first, then in order
    assert errtab.code_for("CME", "Message not compatible with protocol state") == 186
    assert errtab.code_for("CME", "no such text") is None


def test_modem_error_carries_code_class_and_command():
    e = ModemError("CMQTT", 14, b"AT+CMQTTSUBTOPIC=0,10,1\r")
    assert (e.kind, e.code, e.cls) == ("CMQTT", 14, errtab.TRANSIENT)
    assert e.command == b"AT+CMQTTSUBTOPIC=0,10,1\r"
    assert str(e) == "CMQTT 14 (client is busy): client is busy [AT+CMQTTSUBTOPIC=0,10,1]"
    assert str(ModemError("CME", 11)) == "CME 11 (SIM PIN required): SIM PIN required"
    assert ModemError("CME", 9999, "AT+X").cls == errtab.UNKNOWN
    assert str(ModemError("CME", 9999, b"\xff")) == "CME 9999 (unknown code) [b'\\xff']"
    assert ModemError("WHAT", 1).cls == errtab.UNKNOWN


def test_timeout_and_bare_error():
    t = ATTimeout(b"AT+NETOPEN\r", 120000)
    assert isinstance(t, ModemError)
    assert (t.kind, t.code, t.timeout_ms, t.cls) == ("TIMEOUT", -1, 120000, errtab.TRANSIENT)
    assert str(t) == "TIMEOUT: no final result within 120000 ms [AT+NETOPEN]"
    a = ATError("AT+CGACT=1,1")
    assert (a.kind, a.code, a.cls, a.final) == ("AT", -1, errtab.UNKNOWN, "ERROR")
    assert str(a) == "AT ERROR (no code given) [AT+CGACT=1,1]"
    assert str(ATError(None, "NO CARRIER")) == "AT NO CARRIER (no code given)"
    with pytest.raises(ModemError):
        raise a


def test_config_error_names_key():
    c = ConfigError("uart.tx", "must be an integer >= 0, got '17'")
    assert isinstance(c, ValueError)
    assert c.key == "uart.tx"
    assert str(c) == "config key 'uart.tx': must be an integer >= 0, got '17'"
