"""End-to-end fault matrix: the telelogger firmware on the MicroPython unix port (via
tools/run_unix.py) drives the SIMCom simulator (tools/modemsim) whose MQTT reaches a real
Mosquitto; a paho subscriber counts what arrived.

Under each simulator fault: no record is lost (telemetry ``seq`` gap-free at the broker, and
records made == records received + records still in the spool), duplicates stay within one
batch per disturbance, the link comes back by itself (telemetry arrives after the fault),
no crash, no MemoryError.  Old firmware refusing ``AT+CSSLCFG="sslversion"`` (seed 001)
gets its clear error and no retry loop.

Each scenario prints one JSON line (``E2E {...}``: scenario, records, gaps, dups,
recovery_ms, ...); ``-s`` shows them.  recovery_ms: from the fault's end (its firing, plus
``duration_s`` for lasting faults) to the next telemetry message at the broker.
"""

import json

import pytest
from brokerfix import broker  # noqa: F401
from e2erig import Rig

# On the unix port the firmware's bytecode lives in the heap (~256 KB measured on this
# 64-bit build as .mpy: tlog.app + atmq imported, gc.mem_alloc() delta); frozen on the
# ESP32 it does not.  A 96 KB heap for the app's data is therefore code + 96K here, run
# from precompiled .mpy as on a board (from source the compiler needs more: 416K boots).
CODE_HEAP_K = 304  # floor 292 K before reader4 and drain4 (+3.4 and +2 KB of x64 code) + 4 K
LOW_HEAP = "%dK" % (CODE_HEAP_K + 96)
BATCH = 16  # batch_max_records in e2erig.make_config
AFTER = 3  # telemetry messages wanted after the fault's end
RUN_TIMEOUT_S = 45

SCENARIOS = {
    "connlost": ({"faults": [{"kind": "connlost", "at_s": 5, "cause": 1}]}, {}),
    "connlost_a7600": ({"faults": [{"kind": "connlost", "at_s": 5, "cause": 2}]},
                       {"persona": "A7600"}),
    "nonet_4s": ({"faults": [{"kind": "nonet", "at_s": 5, "duration_s": 4}]}, {}),
    "busy": ({"faults": [{"kind": "busy", "match": "AT+CMQTTSUBTOPIC", "times": 1},
                         {"kind": "busy", "match": "AT+CMQTTTOPIC", "times": 2}]}, {}),
    "reboot_lowheap": ({"faults": [{"kind": "reboot", "at_s": 5}]},
                       {"heapsize": LOW_HEAP, "mpy": True}),
    # +CREG between the echo and the answer of every publish (how modems interleave URCs),
    # plus twice inside a +CGPSINFO line and once inside a publish's "OK" (garbled bytes:
    # that answer is lost, the command times out and is retried)
    "stray_urcs": ({"faults": [
        {"kind": "stray_urc", "match": "AT+CMQTTPUB", "urc": "+CREG: 1", "offset": 0,
         "times": 0},
        {"kind": "stray_urc", "match": "AT+CGPSINFO", "urc": '+CMTI: "SM",3', "offset": 4,
         "times": 2},
        {"kind": "stray_urc", "match": "AT+CMQTTPAYLOAD", "urc": "+CSQ: 20,99", "offset": 3,
         "times": 1}]}, {}),
    "stall_4s": ({"faults": [{"kind": "stall", "at_s": 5, "duration_s": 4}]}, {}),
    "slow_0.5s": ({"faults": [{"kind": "slow", "at_s": 4, "delay_s": 0.5, "duration_s": 5}]},
                  {}),
    "byte_per_write": ({"faults": [{"kind": "byte_per_write", "at_s": 4, "duration_s": 5}]},
                       {}),
    "echo_on": ({"faults": [{"kind": "echo_on"}]}, {}),
}
# Two publishes in flight (uplink_inflight 2: a second session on CMQTT client index 1,
# tlog.lane): each fault fires right after a publish of the second session was accepted, so
# both batches wait for their PUBACKs.  A 3 s round trip with 2 records per batch makes a
# backlog at one record a second (the second session only publishes when a second batch
# waits); duplicates are then bounded by two batches per disturbance.
_TWO = {"config_extra": {"uplink_inflight": 2, "batch_max_records": 2},
        "sim_kw": {"net_rtt": 3.0}, "persona": "A7600"}
SCENARIOS.update({
    "inflight2_connlost": ({"faults": [{"kind": "connlost", "match": "AT+CMQTTPUB=1",
                                        "cause": 1}]}, _TWO),
    "inflight2_reboot": ({"faults": [{"kind": "reboot", "match": "AT+CMQTTPUB=1"}]}, _TWO),
    "inflight2_nonet": ({"faults": [{"kind": "nonet", "match": "AT+CMQTTPUB=1",
                                     "duration_s": 4}]}, _TWO),
})


def _report(name, rig, a):
    line = {"scenario": name, "records": a["records"], "gaps": a["gaps"], "dups": a["dups"],
            "recovery_ms": a["recovery_ms"], "max_silence_ms": a["max_silence_ms"],
            "reconnects": a["reconnects"], "faults": a["faults"],
            "heapsize": rig.heapsize or "1M (run_unix default)", "persona": rig.persona}
    print("E2E " + json.dumps(line))


def _problems(log):
    bad = [w for w in ("MemoryError", "Traceback") if w in log]
    return bad


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fault_nothing_lost(broker, name):  # noqa: F811
    scenario, opts = SCENARIOS[name]
    dev = "e2e-" + name.replace(".", "").replace("_", "-")
    with Rig(broker, scenario=scenario, device_id=dev, **opts) as rig:
        rig.start()

        def recovered():
            end = rig.fault_end()
            return end is not None and rig.records_after(end) >= AFTER
        ok = rig.wait_until(recovered, RUN_TIMEOUT_S)
        rc = rig.stop_firmware()
        log = rig.fw.log_text()
        counts = rig.fw.final_counts()
        a = rig.summary()
        _report(name, rig, a)
        tail = log[-3000:]
        assert rig.fault_times(), "the fault never fired; firmware log:\n" + tail
        assert ok, "no telemetry after the fault within %d s; firmware log:\n%s" % (
            RUN_TIMEOUT_S, tail)
        assert not _problems(log), "firmware log:\n" + tail
        assert rc in (0, 130), "firmware exit status %r; log:\n%s" % (rc, tail)
        assert a["gaps"] == 0, "seq missing at the broker: %r" % a["missing"]
        assert counts is not None, "no 'stopped:' line; log:\n" + tail
        made, _sent, depth = counts
        two = opts.get("config_extra", {}).get("uplink_inflight") == 2
        if two:
            # a batch the broker has may still be in the spool: the second one, delivered
            # while the first one failed, or both still in flight at the stop (re-sent later)
            n = 2 * opts["config_extra"]["batch_max_records"]
            assert made <= a["unique"] + depth <= made + n, (a, counts)
        else:
            assert a["unique"] + depth == made, (a, counts)
        per = 2 * BATCH if two else BATCH
        assert a["dups"] <= per * max(1, a["reconnects"] + a["faults"]), a


def test_old_firmware_sslversion_clear_error_no_retry_loop(broker):  # noqa: F811
    """Seed 001: LE11B02SIM7500A answers ERROR to AT+CSSLCFG="sslversion",0,4; nothing but a
    firmware upgrade helps, so the firmware says so once and does not hammer the modem."""
    if not broker.tls_port:
        pytest.skip("broker has no TLS listener (amqtt fallback)")
    scenario = {"faults": [{"kind": "old_firmware"}]}
    with Rig(broker, scenario=scenario, device_id="e2e-oldfw", tls=True) as rig:
        rig.start()

        def tried():
            return any("sslversion" in c for c in rig.sim_commands())
        assert rig.wait_until(tried, 30), "sslversion never sent:\n" + rig.fw.log_text()
        # long enough for the app's link backoff (5 s, then 10 s) to try again if it would
        rig.sub.wait(lambda: not rig.fw.running(), 17)
        cmds = rig.sim_commands()
        rig.stop_firmware()
        log = rig.fw.log_text()
        a = rig.summary()
        attempts = sum(1 for c in cmds if "sslversion" in c)
        print("E2E " + json.dumps({"scenario": "old_firmware", "records": a["records"],
                                   "gaps": a["gaps"], "dups": a["dups"], "recovery_ms": None,
                                   "sslversion_attempts": attempts}))
        assert not _problems(log), log[-3000:]
        assert "LE11B02SIM7500A" in log and "sslversion" in log, log[-3000:]
        assert attempts == 1, "sslversion sent %d times (a retry loop); log:\n%s" % (
            attempts, log[-3000:])
