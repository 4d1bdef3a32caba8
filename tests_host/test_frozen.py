"""End to end on the board-like build: the 32-bit unix port with the firmware frozen in
(tools/build_port.py), run at ``-X heapsize=88K`` (ATMQ_FROZEN_HEAP overrides), against the
SIMCom simulator and Mosquitto (tools/e2erig.py).

Frozen, the bytecode is outside the heap and objects are 32-bit, as on an ESP32 without
PSRAM: the heap here is what the running firmware needs.  Cases (issue 11's scenarios): a
clean run, a network drop (no service for 15 s, then back), a modem reboot mid-run (its boot
URCs, every setting lost: init, data and session again), downlink commands (ping, get, set,
flush, locate, each acknowledged; a get of every key, each of its parts), MQTT over TLS
(the CA stored on the module, AT+CSSLCFG and an SSL session to Mosquitto's TLS listener).
Each fails on a lost record (a seq gap at the broker, or records made != records delivered +
records still in the spool), a MemoryError or a traceback.
Skipped, with the reason, where the port cannot be built (no source, no 32-bit libc and
not root to install gcc-multilib).
"""

import json
import os
import time

import pytest
from brokerfix import broker  # noqa: F401
from e2erig import Rig, telemetry

import build_port

# floor 88K (ram5rt, round 5: clean and TLS pass at 84K; downlink, network drop and modem
# reboot need 88K: at 84K a 164-216 byte block is missing during the recovery's rebuild or a
# long answer's parts) + 4K
HEAP = os.environ.get("ATMQ_FROZEN_HEAP", "92K")
BATCH = 16  # batch_max_records in e2erig.make_config
RUN_TIMEOUT_S = 60
# The second session's own case runs at the heap an ESP32 without PSRAM gives (about 100 KB,
# README memory section), a step below it: at 88K the uplink rightly declines the second
# session (its buffer + tlog.uplink's _LANE_HEAP_ROOM do not fit) and stays at one in flight.
HEAP_TWO = os.environ.get("ATMQ_FROZEN_HEAP_TWO", "96K")


@pytest.fixture(scope="module")
def frozen_port():
    try:
        return build_port.ensure()
    except build_port.Skip as e:
        pytest.skip("32-bit frozen port not buildable here: %s" % e)


def _check(name, rig, ok, extra=None, heap=HEAP):
    rc = rig.stop_firmware()
    log = rig.fw.log_text()
    tail = log[-3000:]
    a = rig.summary()
    counts = rig.fw.final_counts()
    line = {"scenario": "frozen_" + name, "heapsize": heap, "records": a["records"],
            "gaps": a["gaps"], "dups": a["dups"], "recovery_ms": a["recovery_ms"]}
    line.update(extra or {})
    print("E2E " + json.dumps(line))
    assert ok, "scenario did not complete within %d s; firmware log:\n%s" % (RUN_TIMEOUT_S,
                                                                           tail)
    assert "MemoryError" not in log and "Traceback" not in log, "firmware log:\n" + tail
    assert rc in (0, 130), "firmware exit status %r; log:\n%s" % (rc, tail)
    assert a["gaps"] == 0, "seq missing at the broker: %r" % a["missing"]
    assert counts is not None, "no 'stopped:' line; log:\n" + tail
    made, _sent, depth = counts
    # Every record made (seq 0..made-1 on a fresh flash) is at the broker or still in the
    # spool, which holds the newest ``depth``; one at both (published, its PUBACK not yet
    # in when the app stopped) is a duplicate next boot, never a loss.
    at_broker = {seq for _t, seq, _r in telemetry(rig.sub.snapshot())}
    lost = sorted(s for s in range(made) if s not in at_broker and s < made - depth)
    assert not lost, "records lost: %r; %r %r" % (lost[:20], a, counts)
    assert a["dups"] <= BATCH * max(1, a["reconnects"] + a["faults"]), a
    return a


def test_frozen_clean(broker, frozen_port):  # noqa: F811
    with Rig(broker, device_id="frz-clean", heapsize=HEAP, frozen=True) as rig:
        rig.start()
        t0 = time.monotonic()
        ok = rig.wait_until(lambda: rig.records_after(t0) >= 8, RUN_TIMEOUT_S)
        a = _check("clean", rig, ok)
        assert a["unique"] >= 8


def test_frozen_network_drop(broker, frozen_port):  # noqa: F811
    scenario = {"faults": [{"kind": "nonet", "at_s": 5, "duration_s": 15}]}
    with Rig(broker, scenario=scenario, device_id="frz-drop", heapsize=HEAP,
             frozen=True) as rig:
        rig.start()

        def recovered():
            end = rig.fault_end()
            return end is not None and rig.records_after(end) >= 3
        ok = rig.wait_until(recovered, RUN_TIMEOUT_S)
        assert rig.fault_times(), "the fault never fired:\n" + rig.fw.log_text()[-3000:]
        _check("network_drop", rig, ok)


def test_frozen_modem_reboot(broker, frozen_port):  # noqa: F811
    """The module reboots 5 s in (RDY, +CPIN: READY, ... as at power-on; PDP and MQTT service
    gone): the link is rebuilt from booting and every record made meanwhile arrives."""
    scenario = {"faults": [{"kind": "reboot", "at_s": 5}]}
    with Rig(broker, scenario=scenario, device_id="frz-reboot", heapsize=HEAP,
             frozen=True) as rig:
        rig.start()

        def recovered():
            end = rig.fault_end()
            return end is not None and rig.records_after(end) >= 3
        ok = rig.wait_until(recovered, RUN_TIMEOUT_S)
        assert rig.fault_times(), "the fault never fired:\n" + rig.fw.log_text()[-3000:]
        _check("reboot", rig, ok)
        assert "reboot" in rig.fw.log_text(), "no reboot seen:\n" + rig.fw.log_text()[-3000:]


def test_frozen_tls(broker, frozen_port):  # noqa: F811
    """MQTT over TLS (AT+CSSLCFG, the CA file on the module, SSL to Mosquitto's TLS port)."""
    if not broker.tls_port:
        pytest.skip("broker has no TLS listener (amqtt fallback)")
    with Rig(broker, device_id="frz-tls", heapsize=HEAP, frozen=True, tls=True) as rig:
        rig.start()
        t0 = time.monotonic()
        ok = rig.wait_until(lambda: rig.records_after(t0) >= 6, RUN_TIMEOUT_S)
        a = _check("tls", rig, ok)
        assert a["unique"] >= 6
        assert any("AT+CSSLCFG" in c for c in rig.sim_commands()), "TLS never configured"


def test_frozen_two_in_flight_after_a_drop(broker, frozen_port):  # noqa: F811
    """uplink_inflight 2 (the default) at HEAP_TWO: the backlog a 15 s drop leaves opens the
    second session (client index 1) when the heap has room, or says why it stays at one;
    either way nothing is lost and no MemoryError stops the uplink."""
    scenario = {"faults": [{"kind": "nonet", "at_s": 5, "duration_s": 15}]}
    with Rig(broker, scenario=scenario, device_id="frz-two", heapsize=HEAP_TWO, frozen=True,
             persona="A7600", config_extra={"batch_max_records": 4, "uplink_inflight": 2},
             sim_kw={"net_rtt": 0.3}) as rig:
        rig.start()

        def drained():
            end = rig.fault_end()
            return end is not None and rig.records_after(end) >= 6 and any(
                "AT+CMQTTPUB=1," in c for c in rig.sim_commands())
        ok = rig.wait_until(drained, RUN_TIMEOUT_S)
        assert rig.fault_times(), "the fault never fired:\n" + rig.fw.log_text()[-3000:]
        log = rig.fw.log_text()
        opened = "second session (heap free" in log
        _check("two_in_flight", rig, ok, {"second_session": opened}, heap=HEAP_TWO)
        assert opened, "the second session never opened at %s:\n%s" % (HEAP_TWO, log[-3000:])


def test_frozen_downlink_commands(broker, frozen_port):  # noqa: F811
    cmds = [{"id": "c1", "cmd": "ping"},
            {"id": "c2", "cmd": "get", "key": "interval_moving_s"},
            {"id": "c3", "cmd": "set", "key": "health_interval_s", "value": 20},
            {"id": "c4", "cmd": "flush"},
            {"id": "c5", "cmd": "locate"},
            {"id": "c6", "cmd": "get"}]  # every key: answered in parts under the slot
    with Rig(broker, device_id="frz-cmd", heapsize=HEAP, frozen=True) as rig:
        rig.start()
        online = rig.wait_until(lambda: rig.records_after(rig.t_start) >= 2, RUN_TIMEOUT_S)
        acks = {}  # id -> [answers] (a result in parts: several)
        if online:
            for c in cmds:  # one at a time, as an operator would: each waits for its ack
                rig.sub.publish(rig.prefix + "cmd", json.dumps(c))

                def answered(cid=c["id"]):
                    acks.clear()
                    for m in rig.sub.snapshot():
                        p = m["payload"]
                        if m["topic"].endswith("/cmd/ack") and isinstance(p, dict):
                            acks.setdefault(p.get("id"), []).append(p)
                    return cid in acks and acks[cid][-1].get("more") is not True
                rig.wait_until(answered, 20)
        _check("downlink", rig, online, {"acks": sum(len(v) for v in acks.values())})
        assert sorted(acks) == sorted(c["id"] for c in cmds), acks
        bad = {k: v for k, v in acks.items() if any(a.get("ok") is not True for a in v)}
        assert not bad, bad
        every = acks["c6"]
        assert [a["part"] for a in every] == list(range(1, len(every) + 1)), every
        assert every[-1]["more"] is False
        keys = set()
        for a in every:
            keys.update(a["result"])
        assert "interval_moving_s" in keys and "mqtt_password" in keys and len(keys) > 40


def test_build_port_says_why_it_cannot_build(monkeypatch, tmp_path):
    """A wrong ATMQ_MICROPY_SRC is named in the reason; no traceback, no build attempted."""
    monkeypatch.setenv(build_port.SRC_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(build_port.Skip, match="nowhere"):
        build_port.ensure()
    assert build_port.main(["--quiet"]) == build_port.SKIP_RC


def test_unix_manifest_freezes_the_firmware_manifest(tmp_path, monkeypatch):
    """The generated manifest replaces only the ESP32 board include with asyncio and runs
    firmware/manifest.py itself, so the frozen set is the one the board gets."""
    monkeypatch.setattr(build_port, "OUT", str(tmp_path))
    monkeypatch.setattr(build_port, "MANIFEST", str(tmp_path / "manifest.py"))
    monkeypatch.setattr(build_port, "ENTRY", str(tmp_path / "main.py"))
    build_port.write_manifest()
    text = (tmp_path / "manifest.py").read_text()
    assert 'include("$(MPY_DIR)/extmod/asyncio")' in text
    with open(os.path.join(build_port.ROOT, "firmware", "manifest.py")) as f:
        assert build_port._BOARD_LINE in f.read()
    with open(os.path.join(build_port.ROOT, "firmware", "main.py")) as f:
        assert (tmp_path / "main.py").read_text() == f.read()  # the board's own entry
