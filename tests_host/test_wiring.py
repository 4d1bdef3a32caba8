"""The one wiring (issue 13): ``atmq.stack`` builds the objects of a session with the sizes
as parameters, for the telelogger (tlog/app.py) and for ``atmq.connect``/``wiring.build``
alike; the app's boot loads only that core (RAM, issue 11)."""

import os
import subprocess

import pytest
from atmq import board, stack, wiring
from atmq.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
UNIX_BOARD = os.path.join(ROOT, "boards", "unix.json")


@pytest.mark.parametrize("rxbuf, ring", [(None, 1024), (256, 512), (1024, 1024), (1500, 2048),
                                         (8192, 2048)])
def test_ring_from_the_boards_uart_buffer(rxbuf, ring):
    assert stack.ring_for({"uart": {"rxbuf": rxbuf}}) == ring


def test_parts_takes_the_sizes_it_is_given():
    at, events, inbox, modem, drv, link = stack.parts(
        None, "cmqtt", "SIM7600", ring_size=1024, baud=9600, events=8, inbox_slots=2,
        topic_max=64, payload_max=512, reg_timeout_ms=1000, boot_timeout_ms=2000,
        fatal_retry_ms=3000)
    assert (at.ring.size, at.tok.line_max, at.tx_max, at.reader.baud) == (1024, 512, 600, 9600)
    assert (inbox.topic_max, inbox.payload_max, len(inbox._payloads)) == (64, 512, 2)
    assert type(drv).__name__ == "CMQTTDriver" and modem.at is at and drv.at is at
    assert link.modem is modem and link.driver is drv
    assert (link.reg_timeout_ms, link.boot_timeout_ms, link.fatal_retry_ms) == (1000, 2000, 3000)
    assert modem.events is events


def test_sm_family_lines_hold_a_whole_message_and_its_topic():
    """SIM800 publishes inline and receives the message inside the +SMSUB line (seed 004
    3.5, 3.10): line and command buffers of message + topic + framing, unless given."""
    at, _e, _i, _m, drv, _l = stack.parts(None, "sm", "SIM800", payload_max=1024, topic_max=128)
    assert (at.tok.line_max, at.tx_max) == (1200, 1200) and type(drv).__name__ == "SMDriver"
    assert drv.sim800  # pyright: ignore[reportAttributeAccessIssue]
    at, _e, _i, _m, drv, _l = stack.parts(None, "sm", "SIM7070", line_max=900, payload_max=512)
    assert (at.tok.line_max, at.tx_max) == (900, 900)
    assert drv.variant == "sim70x0"  # pyright: ignore[reportAttributeAccessIssue]
    at = stack.parts(None, "sm", "SIM7070", payload_max=4096)[0]  # the line, not the command
    assert (at.tok.line_max, at.tx_max) == (4096 + 128 + 48, 3071)  # 003 s.4


def test_sm_family_without_a_model_is_refused_not_guessed():
    with pytest.raises(ConfigError, match="modem.model"):
        stack.parts(None, "sm")


def test_library_sizes_come_from_the_board_and_the_keywords():
    b = board.load(UNIX_BOARD)
    c = wiring.build(_Null(), UNIX_BOARD, host="h", client_id="c",
                     boot_timeout_ms=5000, fatal_retry_s=60, inbox_slots=2, payload_max=256)
    at = c.at
    assert at.ring.size == stack.ring_for(b) and at.reader.baud == b["uart"]["baud"]
    assert (c.link.boot_timeout_ms, c.link.fatal_retry_ms) == (5000, 60000)
    assert c.inbox.payload_max == 256 and len(c.inbox._payloads) == 2
    assert c.link.modem is c.modem and c.link.driver is c.driver
    assert c.tasks == []  # pyright: ignore[reportAttributeAccessIssue]


class _Null:
    """A stream that never has data (the objects are built, nothing is sent)."""

    def readinto(self, buf):
        return None

    def write(self, buf):
        return len(buf)

    async def wait_readable(self):
        pass


@pytest.mark.skipif(not os.path.exists(MICROPYTHON), reason="no MicroPython unix port")
def test_the_app_boots_with_the_core_only():
    """``import tlog.app`` (what main.py does) loads atmq.stack and atmq.client (every boot
    connects: its globals table is placed before the heap fragments, issue 11), not
    atmq.wiring's adapters and keyword parsing nor a driver the board may not use."""
    env = dict(os.environ, MICROPYPATH=".frozen:%s/lib:%s/firmware" % (ROOT, ROOT))
    code = "import sys, tlog.app; print(' '.join(sorted(k for k in sys.modules)))"
    r = subprocess.run([MICROPYTHON, "-c", code], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    loaded = r.stdout.split()
    assert "atmq.stack" in loaded and "tlog.app" in loaded and "atmq.client" in loaded
    for m in ("atmq.wiring", "atmq.cmqtt", "atmq.smmqtt"):
        assert m not in loaded, m
