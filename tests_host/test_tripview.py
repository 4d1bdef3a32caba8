"""tripview: PNG and HTML from a synthetic track; tolerant reading; live mode via a broker."""

import json
import math
import os
import subprocess
import sys

import matplotlib
import matplotlib.image as mpimg
import numpy as np
import paho.mqtt.client as mqtt
import tripview
from brokerfix import broker  # noqa: F401
from paho.mqtt.enums import CallbackAPIVersion

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "tripview.py")
T0 = 1795305598


def synthetic(n=120, dev="van-07"):
    """A drive north-east from Sydney: speed 0..90 km/h and back, rpm follows speed."""
    recs = []
    lat, lon = -33.8688, 151.2093
    for i in range(n):
        speed = 45 + 45 * math.sin(i / 15.0)
        d = speed / 3.6 * 5
        lat += d * math.cos(math.radians(40)) / 111320
        lon += d * math.sin(math.radians(40)) / (111320 * math.cos(math.radians(lat)))
        recs.append({"seq": 1000 + i, "dev": dev, "ts": T0 + 5 * i, "ts_src": "gnss",
                     "fix": {"lat_e7": round(lat * 1e7), "lon_e7": round(lon * 1e7),
                             "speed_ckmh": round(speed * 100), "sats": 9},
                     "obd": {"0C": round(800 + 30 * speed), "0D": round(speed)},
                     "rssi_dbm": -70 - i % 20})
    return recs


def coloured(rgb, colours, tol=12):
    """How many pixels of an (h, w, 3) int image lie within tol of one of colours."""
    px = rgb.reshape(-1, 3)
    uniq, counts = np.unique(px, axis=0, return_counts=True)
    ref = np.asarray(colours, dtype="int16")
    near = (np.abs(uniq[:, None, :] - ref[None, :, :]).max(axis=2) <= tol).any(axis=1)
    return int(counts[near].sum())


def write_jsonl(path, recs, batch=5):
    with open(path, "w") as f:
        for k in range(0, len(recs), batch):
            f.write(json.dumps({"topic": "fleet/van-07/telemetry",
                                "payload": recs[k:k + batch]}) + "\n")


def test_png_and_html_from_a_synthetic_track(tmp_path):
    src = tmp_path / "rx.jsonl"
    write_jsonl(src, synthetic())
    png, page = tmp_path / "trip.png", tmp_path / "trip.html"
    r = subprocess.run([sys.executable, TOOL, str(src), "--png", str(png), "--html", str(page)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    img = mpimg.imread(str(png))
    assert img.shape[:2] == (tripview.HEIGHT_PX, tripview.WIDTH_PX)
    # not blank: the three series are drawn in their colours and the track in the
    # speed colour map (viridis) on the left-hand map
    rgb = (img[:, :, :3] * 255).round().astype("int16")
    for colour in ((31, 119, 180), (255, 127, 14), (148, 103, 189)):
        assert coloured(rgb[:, tripview.WIDTH_PX // 2:], [colour]) > 300, colour
    vir = (matplotlib.colormaps["viridis"](np.linspace(0, 1, 64))[:, :3] * 255).round()
    assert coloured(rgb[:, : tripview.WIDTH_PX // 2], vir) > 1500
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text and "</html>" in text
    assert "<img" not in text and "<script" not in text and "<link" not in text  # no fetches
    assert "van-07" in text and "distance_km" in text


def test_reading_is_tolerant_and_deduplicates(tmp_path):
    recs = synthetic(10)
    lines = [json.dumps({"topic": "t", "payload": recs[:5]}),
             json.dumps({"topic": "t", "payload": recs[:5]}),  # at-least-once redelivery
             "not json",
             json.dumps({"topic": "t", "payload": json.dumps(recs[5])}),  # payload as text
             json.dumps(recs[6]),  # a bare record
             json.dumps({"topic": "fleet/car9/telemetry",
                         "payload": {"seq": 1, "ts": T0, "lat": 52.5, "lon": 13.4,
                                     "speed": 30, "rpm": 1500, "signal": -80}}),
             json.dumps({"topic": "t", "payload": "car2#0:5,11:211126,10:23595800,"
                         "A:-33.8688000,B:151.2093000,D:54.3,10C:2150,81:-83*1F"}),
             json.dumps({"topic": "t", "payload": {"hello": 1}})]
    samples, problems = tripview.read_jsonl(lines)
    assert [n for n, _t in problems] == [3, 8]
    assert "not JSON" in problems[0][1]
    vans = [s for s in samples if s.dev == "van-07"]
    assert [s.seq for s in vans] == [1000, 1001, 1002, 1003, 1004, 1005, 1006]
    assert vans[0].lat == round(recs[0]["fix"]["lat_e7"]) / 1e7
    assert vans[0].speed == recs[0]["fix"]["speed_ckmh"] / 100
    assert vans[0].rpm == recs[0]["obd"]["0C"] and vans[0].signal == recs[0]["rssi_dbm"]
    (car9,) = [s for s in samples if s.dev == "car9"]
    assert (car9.lat, car9.lon, car9.speed, car9.rpm, car9.signal) == (52.5, 13.4, 30, 1500, -80)
    (car2,) = [s for s in samples if s.dev == "car2"]
    assert (car2.seq, car2.lat, car2.speed, car2.rpm, car2.signal) == (
        5, -33.8688, 54.3, 2150, -83)
    assert car2.ts == T0  # 21/11/26 23:59:58 UTC


def test_records_without_fix_still_draw(tmp_path):
    recs = [{"seq": i, "ts": i, "ts_src": "uptime", "rssi_dbm": -90 + i} for i in range(10)]
    src = tmp_path / "nofix.jsonl"
    write_jsonl(src, recs)
    png = tmp_path / "nofix.png"
    assert tripview.main([str(src), "--png", str(png)]) == 0
    assert mpimg.imread(str(png)).shape[:2] == (tripview.HEIGHT_PX, tripview.WIDTH_PX)


def test_stats_distance_and_scale(tmp_path):
    samples, _ = tripview.read_jsonl([json.dumps(r) for r in synthetic(40)])
    st = tripview.stats(samples)
    expect = sum(tripview.haversine_m(a.lat, a.lon, b.lat, b.lon)
                 for a, b in zip(samples, samples[1:], strict=False)) / 1000
    assert st["fixes"] == 40 and abs(st["distance_km"] - expect) < 0.001
    assert tripview._nice(3700) == 2000 and tripview._nice(900) == 500


def test_no_input_is_an_error(tmp_path):
    r = subprocess.run([sys.executable, TOOL, "--png", str(tmp_path / "x.png")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "input file or --mqtt" in r.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = subprocess.run([sys.executable, TOOL, str(empty), "--png", str(tmp_path / "x.png")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no records" in r.stderr


def test_live_mode_subscribes_and_draws(tmp_path, broker):  # noqa: F811
    png, saved = tmp_path / "live.png", tmp_path / "live.jsonl"
    proc = subprocess.Popen([sys.executable, TOOL, "--mqtt", "127.0.0.1:%d" % broker.port,
                             "--topic", "fleet/+/telemetry", "--seconds", "4",
                             "--png", str(png), "--save", str(saved)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tripview-test-pub")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    recs = synthetic(200)
    try:
        # publish batches until tripview has finished listening (its --seconds bound it)
        k = 0
        while proc.poll() is None and k < len(recs):
            info = pub.publish("fleet/van-07/telemetry", json.dumps(recs[k:k + 5]), qos=1)
            info.wait_for_publish(timeout=5)
            k += 5
            try:
                proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                pass
        out, err = proc.communicate(timeout=60)
    finally:
        pub.loop_stop()
        pub.disconnect()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = saved.read_text().splitlines()
    assert lines and json.loads(lines[0])["topic"] == "fleet/van-07/telemetry"
    got = [r["seq"] for ln in lines for r in json.loads(ln)["payload"]]
    assert got == sorted(got) and set(got) <= {r["seq"] for r in recs}
    assert mpimg.imread(str(png)).shape[:2] == (tripview.HEIGHT_PX, tripview.WIDTH_PX)


def test_help():
    r = subprocess.run([sys.executable, TOOL, "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "--mqtt" in r.stdout
