"""atmq.link, the one owner of the cellular link (issue 9), and the driver-side items of
issue 10 that live beside it: states entered and logged by name, the reader's losses
applied in a task, the APN credentials sent again after a failed AT+CGAUTH (10 #9),
secrets kept out of every error and log line (10 #5), backslashes refused in quoted AT
parameters (10 #11), and the manual's timeouts handed to the engine (003 s.3.2.1...)."""

import asyncio

import pytest
from app_fakes import FakeModem
from atmq import log
from atmq.engine import Engine
from atmq.errors import ATTimeout, ModemError, redact_command
from atmq.events import EventQueue
from atmq.link import (
    ST_BOOTING,
    ST_FATAL,
    ST_REGISTERED,
    ST_SUBSCRIBED,
    STATE_NAMES,
    Link,
    is_fatal,
)
from atmq.modem import Modem


def test_every_state_has_a_name_and_transitions_are_logged():
    assert len(STATE_NAMES) == ST_FATAL + 1 and STATE_NAMES[ST_SUBSCRIBED] == "subscribed"
    m = FakeModem()
    lk = Link(m)
    asyncio.run(lk.up(first=True))
    assert lk.name == "data_up"
    lines = [t.split(": ", 1)[1] for t in log.tail() if " link: " in t]
    assert lines[-5:] == ["off -> booting (power on)", "booting -> at_ready",
                          "at_ready -> sim_ready", "sim_ready -> registered",
                          "registered -> data_up"]
    assert m.calls == ["power_on", "wait_ready", "init", "sim_state", "registration",
                        "data_up"]


def test_reader_losses_are_recorded_then_applied_in_a_task():
    class Drv:
        def __init__(self):
            self.lost_calls = []
            self.resets = 0

        def lost(self, reboot):  # from the reader: record only
            self.lost_calls.append(reboot)

        def reset(self):
            self.resets += 1

    m = FakeModem()
    d = Drv()
    lk = Link(m, d)
    assert m.on_lost == lk.lost  # the modem's handlers report to the link
    lk.mark(ST_SUBSCRIBED)
    lost = m.on_lost
    assert lost is not None
    lost(ST_REGISTERED)  # PDP loss (what Modem._nonet calls)
    lost(ST_BOOTING)  # then a reboot: the lowest state wins
    assert d.lost_calls == [False, True] and lk.state == ST_SUBSCRIBED  # nothing applied yet
    assert lk.sync() == ST_BOOTING and d.resets == 1 and lk.mqtt_fresh
    assert lk.sync() == ST_BOOTING  # applied once


def test_apn_credentials_are_sent_again_after_a_failed_cgauth():
    """Issue 10 #9: a failed AT+CGAUTH must not let the next bring-up open data without
    the credentials: set_apn runs again before data, every time until it succeeds."""
    m = FakeModem(apn="internet", user="u", password="p4ss")
    m.fail["set_apn"] = [ModemError("CME", 100, b'AT+CGAUTH=1,1,"p4ss","u"')]
    lk = Link(m)
    with pytest.raises(ModemError):
        asyncio.run(lk.up())
    assert "data_up" not in m.calls  # never data without the configured credentials
    asyncio.run(lk.up())
    assert m.calls.count("set_apn") == 2 and m.calls[-1] == "data_up"
    assert m.apn_sets[-1] == ("internet", "u", "p4ss")
    asyncio.run(lk.up())  # sent once per boot
    assert m.calls.count("set_apn") == 2
    lk.lost(ST_BOOTING)  # a reboot forgets the PDP context and its credentials
    m.inited = False
    asyncio.run(lk.up())
    assert m.calls.count("set_apn") == 3


def test_fatal_classes():
    assert is_fatal(ModemError("CMQTT", 31, b"x")) and is_fatal(ModemError("CME", 10, b"x"))
    assert is_fatal(ValueError("bad"))
    assert not is_fatal(ModemError("CME", 30, b"x")) and not is_fatal(ATTimeout(b"AT", 1))
    assert not is_fatal(ModemError("CMQTT", 11, b"x"))


@pytest.mark.parametrize("cmd, secret", [
    (b'AT+CMQTTCONNECT=0,"tcp://h.example:8883",60,1,"dev","s3cr3t-pw"', "s3cr3t-pw"),
    (b'AT+CGAUTH=1,1,"apn-p4ss","apnuser"', "apn-p4ss"),
    (b'AT+CPIN="8642"', "8642"),
    (b"AT+CPIN=8642", "8642"),
    (b'AT+SMCONF="PASSWORD","sm-p4ss"', "sm-p4ss"),
    (b'AT+SAPBR=3,1,"PWD","bearer-pw"', "bearer-pw"),
])
def test_no_secret_in_any_error(cmd, secret):
    """Issue 10 #5: on a timeout, a CME error, a bare ERROR: str, repr, args, command."""
    from atmq.errors import ATError

    for e in (ATTimeout(cmd, 10000), ModemError("CME", 100, cmd), ATError(cmd),
              ModemError("CMQTT", 31, cmd.decode())):
        for text in (str(e), repr(e), repr(e.args), repr(e.command)):
            assert secret not in text, text
    assert secret not in redact_command(cmd.decode())


def test_registered_secrets_are_masked_in_any_command():
    log.add_secret("Zz-unique-secret")
    try:
        e = ModemError("CME", 4, b'AT+CSOMETHING="Zz-unique-secret"')
        assert "Zz-unique-secret" not in str(e) and "<redacted>" in str(e)
    finally:
        log.clear_secrets()


@pytest.mark.parametrize("value", ["x\\22,\\0d\\0aAT", "a\\b"])
def test_backslash_refused_in_quoted_parameters(value):
    """Issue 10 #11: a backslash could start an escape inside a quoted AT string."""
    from atmq.cmqtt import CMQTTDriver
    from atmq.errors import ConfigError
    from atmq.inbox import Inbox

    class NoStream:
        def readinto(self, b):
            return None

        def write(self, b):
            raise AssertionError("nothing may be written")

    at = Engine(NoStream())
    m = Modem(at, EventQueue(4))
    with pytest.raises(ConfigError):
        asyncio.run(m.set_apn(value))
    d = CMQTTDriver(at, EventQueue(4), Inbox(2, 32, 32))
    with pytest.raises(ValueError):
        asyncio.run(d.connect("h.example", 1883, "id", user="u", password=value))


def test_manual_timeouts_reach_the_engine():
    """003 s.3.2.1 AT+CFUN max 25 s; init's set commands 5 s (2.2.6, 3.2.8, 4.2.1, 5.2.2),
    AT+CGREG 9 s (5.2.1); AT+CGEREP=1 (5.2.10: modes 0 and 1 only)."""
    class At:
        def __init__(self):
            self.sent = []

        def on(self, *a, **k):
            pass

        def on_store(self, *a, **k):  # Modem's CREG/CGREG/CEREG entries
            pass

        on_seen = on_state = on_store  # Modem's boot URC and CREG/CGREG/CEREG entries

        async def cmd(self, cmd, timeout_ms=None, **kw):
            self.sent.append((cmd, timeout_ms))

            class R:
                final = 0
                count = 0
                ok = True

                def find(self, p):
                    return None
            return R()

    at = At()
    m = Modem(at, EventQueue(4))
    asyncio.run(m.radio_cycle())
    assert at.sent == [(b"AT+CFUN=0", 25000), (b"AT+CFUN=1", 25000)]
    at.sent = []
    asyncio.run(m.init())
    t = dict(at.sent)
    assert t[b"ATE0"] == t[b"AT+CMEE=1"] == t[b"AT+CREG=1"] == t[b"AT+CEREG=1"] == 5000
    assert t[b"AT+CGREG=1"] == 9000 and t[b"AT+CGEREP=1"] == 5000
    assert b"AT+CGEREP=2,1" not in t


def test_script_runner_optional_and_must_steps():
    from atmq import script
    from atmq.engine import R_ERROR, R_OK
    from atmq.errors import ATError

    class At:
        def __init__(self, finals):
            self.finals = finals
            self.sent = []

        async def cmd(self, cmd, check=True, timeout_ms=None, **kw):
            self.sent.append((cmd, timeout_ms, check))
            f = self.finals.pop(0)
            if check and f != R_OK:
                raise ATError(cmd)

            class R:
                final = f
            return R()

    steps = ((b"AT+A", None, None, 5000, script.MUST, "003 s.1"),
             (b"AT+B", None, None, 9000, script.OPTIONAL, "003 s.2"),
             (b"AT+C", None, None, 25000, script.MUST, "003 s.3"))
    at = At([R_OK, R_ERROR, R_OK])
    assert asyncio.run(script.run(at, steps)) == [1]  # the optional refusal, and on
    assert at.sent == [(b"AT+A", 5000, True), (b"AT+B", 9000, False), (b"AT+C", 25000, True)]
    assert any("AT+B" in t and "003 s.2" in t for t in log.tail())
    at = At([R_ERROR])
    with pytest.raises(ATError):
        asyncio.run(script.run(at, steps))
    assert len(at.sent) == 1  # a MUST step stops the sequence


class _BootAt:
    """An engine stand-in: answers OK (CPIN READY, registered), and at the ``reboot_at``-th
    command with that text the module reboots: its "RDY" reaches the URC handler, which
    aborts the command in flight (as the reader does: ModemError AT -2)."""

    def __init__(self, modem_box, reboot_at=(), answer_rdy_first=True):
        self.box = modem_box
        self.reboot_at = list(reboot_at)
        self.sent = []
        self.aborted = 0

    def on(self, *a, **k):
        pass

    def on_store(self, *a, **k):  # Modem's CREG/CGREG/CEREG entries
        pass

    on_seen = on_state = on_store  # Modem's boot URC and CREG/CGREG/CEREG entries

    def abort(self):
        self.aborted += 1

    async def cmd(self, cmd, resp=None, **kw):
        self.sent.append(cmd)
        await asyncio.sleep(0)
        if self.reboot_at and self.reboot_at[0] == cmd:
            self.reboot_at.pop(0)
            self.box[0]._boot(1)  # "RDY" (BOOT_RDY)
            raise ModemError("AT", -2, cmd)
        from atmq.engine import R_OK

        class Line:
            def __init__(self, text):
                self.t = text

            def arg_str(self, i):
                return self.t

            def arg_int(self, i, d=0):
                return 1

            def count(self):
                return 2

        class R:
            final = R_OK
            ok = True
            count = 0

            def find(self, p):
                if p == b"+CPIN:":
                    return Line("READY")
                return None

            def line(self, i):
                return Line("")
        return R()


def _register_and_open(m, at):
    """The bring-up's registration and data steps as one command each (the CEREG? and
    NETOPEN the scripted engine answers), so the link climbs to data_up."""
    async def registration():
        await at.cmd(b"AT+CEREG?")
        return 1

    async def data_up():
        await at.cmd(b"AT+NETOPEN")
        m.data_open = True

    m.registration = registration
    m.data_up = data_up  # type: ignore[method-assign]


def test_a_reboot_during_bring_up_restarts_it_from_booting_at_once():
    """A module that reboots while the link brings it up (its RDY after it answered AT)
    aborts the command in flight and the bring-up starts again from booting, with no
    deadline waited out and no backoff (issue 9 round 2: a reboot at AT+CGREG=1)."""
    box = [None]  # type: list
    at = _BootAt(box, reboot_at=[b"AT+CGREG=1"])
    m = Modem(at, EventQueue(8))
    box[0] = m
    slept = []

    async def sleep(ms):
        slept.append(ms)

    lk = Link(m, sleep=sleep)
    m.boot_urcs = 1  # the cold boot's RDY was seen

    _register_and_open(m, at)

    async def go():
        await lk.up(first=True)

    asyncio.run(go())
    assert m.boots == 1 and m.reboots == 1 and at.aborted == 1
    assert at.sent.count(b"ATE0") == 2 and at.sent.count(b"AT+CGREG=1") == 2
    assert m.inited and lk.name == "data_up" and slept == []
    assert any("rebooted during bring-up" in t for t in log.tail(20))


def test_app_rdy_of_the_same_boot_is_not_a_reboot():
    """A76xx: "APP RDY" trails RDY/+CPIN/SMS DONE/PB DONE by seconds, often after the
    module answered AT: the first one of a boot is that boot's, not a new one."""
    box = [None]  # type: list
    at = _BootAt(box)
    m = Modem(at, EventQueue(8))
    box[0] = m
    m.boot_urcs = 1
    asyncio.run(m.wait_ready(1000))
    m._boot(16)  # APP RDY, first of this boot
    assert m.boots == 0 and at.aborted == 0
    m._boot(16)  # a second one: a new boot
    assert m.boots == 1 and at.aborted == 1 and not m.inited


def test_a_reboot_during_registration_is_one_reboot_while_settling():
    """``settling`` does not hide a reboot during registration: its "RDY" is a new boot
    (one reboot, init again), and the new boot's own late "APP RDY" is not a second one."""
    box = [None]  # type: list
    at = _BootAt(box, reboot_at=[b"AT+CEREG?"])
    m = Modem(at, EventQueue(8))
    box[0] = m
    lk = Link(m)
    m.boot_urcs = 1  # the cold boot's RDY was seen
    seen = []

    async def registration():
        seen.append(m.settling)
        await at.cmd(b"AT+CEREG?")
        return 1

    async def data_up():
        m._boot(16)  # the new boot's late APP RDY, its first: that boot's own
        await at.cmd(b"AT+NETOPEN")
        m.data_open = True

    m.registration = registration
    m.data_up = data_up  # type: ignore[method-assign]
    asyncio.run(lk.up(first=True))
    assert seen == [True, True]  # settling both times: the RDY was still taken as a boot
    assert m.boots == 1 and m.reboots == 1 and at.sent.count(b"ATE0") == 2
    assert lk.name == "data_up" and not m.settling


def test_app_rdy_after_the_link_fell_below_data_up_is_a_reboot():
    """``settling`` covers the climb of one boot to data_up only: a link that falls to
    registered later (the PDP went) brings no boot up, so an "APP RDY" this boot never
    printed is a new boot, its RDY lost in the reset's garbage (TinyGSM#358).  Here the
    host found the module running (no boot URC seen), as after an ESP32-only restart."""
    from atmq.link import ST_CONNECTED, ST_REGISTERED

    box = [None]  # type: list
    at = _BootAt(box)
    m = Modem(at, EventQueue(8))
    box[0] = m

    async def sleep(ms):
        pass

    lk = Link(m, sleep=sleep)

    _register_and_open(m, at)
    asyncio.run(lk.up(first=True))
    assert lk.name == "data_up" and not m.settling and m.boots == 0
    lk.mark(ST_CONNECTED)
    lk.lost(ST_REGISTERED)  # the PDP went: down to registered, the module did not reboot
    lk.sync()
    assert lk.name == "registered" and m.reboots == 0
    m._boot(16)  # "APP RDY", no RDY before it
    assert m.boots == 1 and m.reboots == 1 and at.aborted == 1 and not m.inited


def test_operator_is_asked_only_when_connected_idle_and_the_registration_changed():
    """AT+COPS? has one max response time for every form, 60 s (003 s.4.2.2): never
    inside bring-up, never with records waiting, once per registration."""
    from atmq.link import ST_CONNECTED

    box = [None]  # type: list
    at = _BootAt(box)
    sent = []

    async def cmd(c, resp=None, timeout_ms=None, **kw):
        sent.append((c, timeout_ms))

        class A:
            def count(self):
                return 3

            def arg_str(self, i):
                return "46001"

        class R:
            def find(self, p):
                return A()
        return R()

    at.cmd = cmd  # type: ignore[method-assign]
    m = Modem(at, EventQueue(8))
    lk = Link(m)
    assert asyncio.run(lk.query_operator()) is None and sent == []  # not connected
    lk.mark(ST_CONNECTED)
    assert asyncio.run(lk.query_operator(idle=False)) is None and sent == []  # busy
    assert asyncio.run(lk.query_operator()) == "46001"
    assert sent == [(b"AT+COPS?", 60000)]
    assert asyncio.run(lk.query_operator()) == "46001" and len(sent) == 1  # cached
    m.reg[2] = 5  # roaming now: asked again
    asyncio.run(lk.query_operator())
    assert len(sent) == 2


def test_start_deadline_follows_the_models_manual():
    from atmq.cmqtt import CMQTTDriver
    from atmq.inbox import Inbox

    d = CMQTTDriver(Engine(None), EventQueue(4), Inbox(1, 8, 8))
    assert d.start_timeout_ms == 120000  # unknown model: the longer bound
    d.set_model("SIMCOM_SIM7600E")
    assert d.start_timeout_ms == 12000  # 003 s.16.2.1
    d.set_model("SIM7670G-MNGV")
    assert d.start_timeout_ms == 12000
    d.set_model("A7600E-H")
    assert d.start_timeout_ms == 120000  # 002 s.2.1.1
