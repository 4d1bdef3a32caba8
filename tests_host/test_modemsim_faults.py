"""Modem simulator fault injection: each fault kind and each trigger kind, exact bytes."""

from brokerfix import broker  # noqa: F401
from modemsim_at import BOOT_7600, run, sim_session

import asyncio
import json


async def _connect(at):
    await at.cmd(b"AT+CMQTTSTART", b"\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n")
    await at.cmd(b'AT+CMQTTACCQ=0,"faulty"', b"\r\nOK\r\n")
    await at.cmd(b'AT+CMQTTCONNECT=0,"tcp://x:1883",60,1', b"\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n")


def test_busy_by_match_then_clears():
    scen = {"faults": [{"kind": "busy", "match": "AT+CMQTTSUBTOPIC", "times": 1}]}

    async def t():
        async with sim_session("SIM7600E", scenario=scen) as (sim, at):
            await at.cmd(b"AT+CMQTTSUBTOPIC=0,10,1", b"\r\n+CMQTTSUBTOPIC: 0,14\r\n\r\nERROR\r\n")
            await at.cmd(b"AT+CMQTTSUBTOPIC=0,10,1", b"\r\nERROR\r\n")   # not started: real
            assert sim.scenario is not None
            assert sim.scenario.log == [("busy", "AT+CMQTTSUBTOPIC=0,10,1")]
    run(t())


def test_busy_by_regex_unlimited():
    scen = {"faults": [{"kind": "busy", "regex": r"^AT\+CMQTTSTART$", "times": 0}]}

    async def t():
        async with sim_session("SIM7600E", scenario=scen) as (sim, at):
            for _ in range(3):
                await at.cmd(b"AT+CMQTTSTART", b"\r\n+CMQTTSTART: 14\r\n\r\nERROR\r\n")
            await at.cmd(b"AT+CMQTTSTART=1", b"\r\nOK\r\n\r\n+CMQTTSTART: 0,1\r\n")
    run(t())


def test_nonet_drops_mqtt_and_network_then_recovers(broker):  # noqa: F811
    scen = {"faults": [{"kind": "nonet", "match": "AT+CSQ", "duration_s": 1.0}]}

    async def t():
        async with sim_session("SIM7600E", broker=broker, scenario=scen) as (sim, at):
            await at.cmd(b"AT+CREG=1", b"\r\nOK\r\n")
            await at.cmd(b"AT+NETOPEN", b"\r\nOK\r\n\r\n+NETOPEN: 0\r\n")
            await _connect(at)
            await at.cmd(b"AT+CSQ", b"\r\n+CSQ: 23,99\r\n\r\nOK\r\n"
                         b"\r\n+CREG: 2\r\n\r\n+CMQTTCONNLOST: 0,3\r\n\r\n+CMQTTNONET\r\n"
                         b"\r\n+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY\r\n")
            await at.cmd(b"AT+CSQ", b"\r\n+CSQ: 99,99\r\n\r\nOK\r\n")
            await at.cmd(b"AT+NETOPEN", b"\r\nOK\r\n\r\n+NETOPEN: 1\r\n")
            await at.cmd(b"AT+CMQTTSTART", b"\r\nOK\r\n\r\n+CMQTTSTART: 7\r\n")
            await at.expect(b"\r\n+CREG: 1\r\n")                   # network back
            await _connect(at)
    run(t())


def test_connlost_all_clients_by_time(broker):  # noqa: F811
    async def t():
        async with sim_session("SIM7600E", broker=broker) as (sim, at):
            await _connect(at)
            from modemsim.faults import Scenario
            sc = Scenario({"faults": [{"kind": "connlost", "at_s": 0.05, "cause": 1}]})
            sc.on_boot(sim.modem)                       # timers start as at power-on
            await at.expect(b"\r\n+CMQTTCONNLOST: 0,1\r\n")
            await at.cmd(b"AT+CMQTTCONNECT?", b"\r\n+CMQTTCONNECT: 0\r\n+CMQTTCONNECT: 1\r\n"
                         b"\r\nOK\r\n")
    run(t())


def test_reboot_after_command_count_resets_state():
    scen = {"faults": [{"kind": "reboot", "after_commands": 3}]}

    async def t():
        async with sim_session("SIM7600E", scenario=scen) as (sim, at):   # ATE0 is #1
            await at.cmd(b"AT+CMQTTSTART", b"\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n")
            await at.cmd(b"AT+CSQ", b"\r\n+CSQ: 23,99\r\n\r\nOK\r\n")
            await at.expect(BOOT_7600)
            await at.cmd(b"AT+CMQTTSTART", b"AT+CMQTTSTART\r\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n")
    run(t())


def test_stray_urc_inside_response_bytes():
    scen = {"faults": [{"kind": "stray_urc", "match": "AT+CGMR", "urc": "+CREG: 1",
                        "offset": 7}]}

    async def t():
        async with sim_session("SIM7600E", scenario=scen) as (sim, at):
            await at.cmd(b"AT+CGMR", b"\r\n+CGMR\r\n+CREG: 1\r\n: LE11B02SIM7600M21-A\r\n"
                         b"\r\nOK\r\n")
            await at.cmd(b"AT+CGMR", b"\r\n+CGMR: LE11B02SIM7600M21-A\r\n\r\nOK\r\n")
    run(t())


def test_stall_loses_commands_until_it_ends():
    scen = {"faults": [{"kind": "stall", "match": "AT+CSQ", "duration_s": 0.5}]}

    async def t():
        async with sim_session("SIM7600E", scenario=scen) as (sim, at):
            await at.send(b"AT+CSQ\r")
            loop = asyncio.get_running_loop()
            deadline, polls, got = loop.time() + 10, 0, b""
            while not got and loop.time() < deadline:
                await at.send(b"AT\r")                              # host keeps probing
                polls += 1
                got = await at.read_some(0.1)
            assert got == b"\r\nOK\r\n" and polls >= 2
            assert "AT+CSQ" in sim.commands and b"+CSQ" not in bytes(sim.sent)
    run(t())


def test_slow_answers_and_one_byte_per_write():
    scen = {"faults": [{"kind": "slow", "match": "AT+CSQ", "delay_s": 0.3, "duration_s": 60},
                       {"kind": "byte_per_write", "match": "AT+CGSN"}]}

    async def t():
        async with sim_session("SIM7600E", scenario=scen) as (sim, at):
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await at.cmd(b"AT+CSQ", b"\r\n+CSQ: 23,99\r\n\r\nOK\r\n")
            assert loop.time() - t0 >= 0.3                         # never faster than told
            sim.modem.slow_extra = 0.0
            n0 = len(sim.write_sizes)
            want = b"\r\n864764050000017\r\n\r\nOK\r\n"
            await at.cmd(b"AT+CGSN", want)
            assert sim.write_sizes[n0:] == [1] * len(want)
    run(t())


def test_echo_stays_on_and_old_firmware(tmp_path):
    path = tmp_path / "scen.json"
    path.write_text(json.dumps({"faults": [{"kind": "echo_on"}, {"kind": "old_firmware"}]}))

    async def t():
        async with sim_session("SIM7600E", scenario=str(path), echo_off=False) as (sim, at):
            await at.cmd(b"ATE0", b"ATE0\r\r\nOK\r\n")
            await at.cmd(b"AT+CGMR", b"AT+CGMR\r\r\n+CGMR: LE11B02SIM7500A\r\n\r\nOK\r\n")
            await at.cmd(b'AT+CSSLCFG="sslversion",0,4',
                         b'AT+CSSLCFG="sslversion",0,4\r\r\nERROR\r\n')
            await at.cmd(b'AT+CSSLCFG="authmode",0,2', b'AT+CSSLCFG="authmode",0,2\r\r\nOK\r\n')
    run(t())


def test_unknown_fault_kind_is_named():
    from modemsim.faults import Scenario
    try:
        Scenario({"faults": [{"kind": "meteor"}]})
    except ValueError as e:
        assert "meteor" in str(e)
    else:
        raise AssertionError("accepted an unknown fault kind")


def test_shipped_example_scenarios_load():
    import glob
    import os

    from modemsim.faults import Scenario
    here = os.path.dirname(os.path.abspath(__file__))
    paths = sorted(glob.glob(os.path.join(here, "..", "tools", "modemsim", "scenarios", "*.json")))
    assert len(paths) >= 3
    for p in paths:
        assert Scenario(p).faults, p
