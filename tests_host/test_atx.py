"""The .atx format: escaping, the line grammar, strict reading, the writer."""

import io
import os

import pytest
from atmq import atx

TRANSCRIPTS = os.path.join(os.path.dirname(__file__), "transcripts")


def test_every_byte_value_round_trips():
    data = bytes(range(256))
    text = atx.escape(data)
    assert atx.unescape(text) == data
    # only printable ASCII survives in the text
    assert all(" " <= c <= "~" for c in text)


@pytest.mark.parametrize("b", range(256))
def test_each_byte_alone_and_in_context(b):
    one = bytes([b])
    for data in (one, b"A" + one, one + b"Z", one * 3):
        text = atx.escape(data)
        assert atx.unescape(text) == data
        assert atx.parse_line("< " + text) == ("<", 0, data)


def test_escape_forms():
    assert atx.escape(b"AT+CSQ\r") == "AT+CSQ\\r"
    assert atx.escape(b"\r\n\t\\") == "\\r\\n\\t\\\\"
    assert atx.escape(b"\x00\x1a\x7f\xff") == "\\x00\\x1a\\x7f\\xff"
    assert atx.escape(b"a b ") == "a b\\x20"  # only the trailing space is escaped
    assert atx.escape(bytearray(b"x\r")) == "x\\r"
    assert atx.escape(memoryview(b"\r\n>")[2:]) == ">"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("a\\q", "bad escape '\\q'"),
        ("\\xAB", "bad escape '\\xAB'"),
        ("\\x4", "bad escape '\\x4'"),
        ("\\xg0", "bad escape '\\xg0'"),
        ("ab\\", "lone backslash"),
        ("ok ", "\\x20"),
        ("tab\there", "must be written as an escape"),
        ("caf\u00e9", "must be written as an escape"),
    ],
)
def test_unescape_rejects_with_a_clear_message(text, fragment):
    with pytest.raises(ValueError) as e:
        atx.unescape(text)
    assert fragment in str(e.value)


def test_parse_line_kinds():
    assert atx.parse_line("# comment") is None
    assert atx.parse_line("") is None
    assert atx.parse_line("\n") is None
    assert atx.parse_line("   ") is None
    assert atx.parse_line("@model SIM7600E\n") == ("meta", "model", "SIM7600E")
    assert atx.parse_line("@note two words") == ("meta", "note", "two words")
    assert atx.parse_line("@flag") == ("meta", "flag", "")
    assert atx.parse_line("> AT\\r\r\n") == (">", 0, b"AT\r")
    assert atx.parse_line("< +1010 \\r\\nERROR\\r\\n") == ("<", 1010, b"\r\nERROR\r\n")
    # pauses, with and without the trailing space editors may strip
    assert atx.parse_line("< +500") == ("<", 500, b"")
    assert atx.parse_line("< +500 ") == ("<", 500, b"")
    # "+" not followed by digits and a space is data
    assert atx.parse_line("< +CMQTTSTART: 0") == ("<", 0, b"+CMQTTSTART: 0")
    assert atx.parse_line("< +12x") == ("<", 0, b"+12x")
    assert atx.parse_line("< +0 +1 x") == ("<", 0, b"+1 x")
    assert atx.parse_line(">  lead") == (">", 0, b" lead")


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("> ", "empty record"),
        (">", "exactly one space"),
        (">AT", "exactly one space"),
        ("x AT", "a line starts with"),
        (" # indented", "a line starts with"),
        ("@ value", "without a key"),
        ("< \\xZZ", "bad escape"),
    ],
)
def test_parse_line_rejects(line, fragment):
    with pytest.raises(ValueError) as e:
        atx.parse_line(line)
    assert fragment in str(e.value)


def test_read_reports_the_line_number():
    lines = ["# c", "@model X", "> AT\\r", "", "< \\r\\nOK\\q"]
    with pytest.raises(ValueError) as e:
        atx.read(lines)
    assert str(e.value).startswith("line 5: ")
    assert "\\q" in str(e.value)


def test_read_rejects_metadata_after_a_record():
    with pytest.raises(ValueError) as e:
        atx.read(["@model X", "> AT\\r", "@baud 115200"])
    assert str(e.value) == "line 3: metadata @baud after the first record"


def test_read_meta_and_records(tmp_path):
    p = tmp_path / "t.atx"
    p.write_bytes(
        "# SIM7600E: subscribe refused\n@model SIM7600E\n@note one\n@note two\n"
        "> AT+CMQTTSUBTOPIC=0,10,1\\r\n< +1010 \\r\\n+CMQTTSUBTOPIC: 0,14\\r\\n\n"
        "# caf\u00e9 in a comment is fine\n< \\r\\nERROR\\r\\n\n".encode()
    )
    meta, recs = atx.read(str(p))
    assert meta == {"model": "SIM7600E", "note": "one\ntwo"}
    assert recs == [
        (5, ">", 0, b"AT+CMQTTSUBTOPIC=0,10,1\r"),
        (6, "<", 1010, b"\r\n+CMQTTSUBTOPIC: 0,14\r\n"),
        (8, "<", 0, b"\r\nERROR\r\n"),
    ]
    # bytes lines work too
    assert atx.read(p.read_bytes().splitlines(True)) == (meta, recs)


def _written(fn):
    s = io.StringIO()
    w = atx.Writer(s)
    fn(w)
    return s.getvalue().splitlines()


def test_writer_splits_rx_after_each_lf():
    lines = _written(lambda w: w.rx(b"AT+CSQ\r\r\n+CSQ: 23,0\r\n\r\nOK\r\n\r\n+X: 1\r\npartial"))
    assert lines == [
        "< AT+CSQ\\r",
        "< \\r\\n+CSQ: 23,0\\r\\n",
        "< \\r\\nOK\\r\\n",
        "< \\r\\n+X: 1\\r\\n",
        "< partial",
    ]


def test_writer_split_keeps_the_delay_on_the_first_piece_and_the_prompt_whole():
    lines = _written(lambda w: w.rx(b"AT+CMQTTTOPIC=0,9\r\r\n>", delay_ms=7))
    assert lines == ["< +7 AT+CMQTTTOPIC=0,9\\r", "< \\r\\n>"]
    assert _written(lambda w: w.rx(b"\r\n")) == ["< \\r\\n"]
    assert _written(lambda w: w.rx(b"a\nb\n", split=False)) == ["< a\\nb\\n"]


def test_writer_round_trip_and_ambiguous_plus():
    def body(w):
        w.comment("made by a test\nsecond line")
        w.meta("model", "SIM7600E")
        w.meta("note", "a\nb")
        w.tx(b"AT\r")
        w.rx(b"+1 looks like a delay")
        w.rx(b"+CMQTTRXEND: 0\r\n")
        w.tx(b"", 250)  # a pure pause
        w.tx(b"")  # nothing: not recorded
        w.rx(bytes(range(256)), 3, split=False)

    lines = _written(body)
    assert "< +0 +1 looks like a delay" in lines
    assert "< +CMQTTRXEND: 0\\r\\n" in lines
    assert "> +250" in lines
    meta, recs = atx.read(lines)
    assert meta == {"model": "SIM7600E", "note": "a\nb"}
    assert [(d, ms, data) for _, d, ms, data in recs] == [
        (">", 0, b"AT\r"),
        ("<", 0, b"+1 looks like a delay"),
        ("<", 0, b"+CMQTTRXEND: 0\r\n"),
        (">", 250, b""),
        ("<", 3, bytes(range(256))),
    ]


def test_writer_refuses_metadata_after_a_record_and_bad_input(tmp_path):
    p = str(tmp_path / "w.atx")
    w = atx.Writer(p)
    w.tx(b"AT\r")
    with pytest.raises(ValueError):
        w.meta("model", "X")
    with pytest.raises(ValueError):
        w.rx(b"x", -1)
    w.close()
    assert open(p).read() == "> AT\\r\n"
    with pytest.raises(ValueError):
        atx.Writer(io.StringIO()).meta("two words", "x")


def _fixtures():
    return sorted(n for n in os.listdir(TRANSCRIPTS) if n.endswith(".atx"))


def test_there_are_fixtures():
    assert len(_fixtures()) >= 10


@pytest.mark.parametrize("name", _fixtures())
def test_every_fixture_parses(name):
    meta, recs = atx.read(os.path.join(TRANSCRIPTS, name))
    assert recs, name
    assert "source" in meta, name
    # every fixture starts with a comment saying where it comes from
    with open(os.path.join(TRANSCRIPTS, name)) as f:
        assert f.readline().startswith("# "), name


def test_writer_takes_a_binary_stream_too():
    s, b = io.StringIO(), io.BytesIO()
    for out in (s, b):
        w = atx.Writer(out)
        w.comment("c")
        w.meta("model", "X")
        w.tx(b"AT\r", 1234567)
        w.rx(b"AT\r\r\nOK\r\n \x00\xff ")
    assert b.getvalue().decode() == s.getvalue()
    assert s.getvalue().splitlines() == [
        "# c",
        "@model X",
        "> +1234567 AT\\r",
        "< AT\\r",
        "< \\r\\nOK\\r\\n",
        "<  \\x00\\xff\\x20",
    ]
