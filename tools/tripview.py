#!/usr/bin/env python3
"""Render received telemetry as a picture: the GNSS track on a map-like plot and
speed, rpm and signal over time, as PNG and as a self-contained HTML page.

Owns reading what an MQTT subscriber received (JSON lines
``{"topic": ..., "payload": <record | [records] | text>}``; bare records or
arrays per line are accepted too) into flat samples, and drawing them.  The
record schema is firmware/tlog/RECORDS.md: ``seq``, ``dev``, ``ts``/``ts_src``,
``fix`` with ``lat_e7``/``lon_e7`` (degrees x 1e7) and ``speed_ckmh`` (km/h x
100), ``obd`` {"0C": rpm, "0D": km/h}, ``rssi_dbm``.  Reading is tolerant:
float ``lat``/``lon``, ``speed``/``rpm``/``signal`` keys and the Freematics text
format (``DEV#0:seq,A:lat,B:lon,D:speed,10C:rpm,81:dBm*CS``) are understood;
lines that cannot be read are reported with their number and skipped.

The map is an equirectangular projection (x = lon, y = lat, aspect 1/cos(mid
latitude)) with a lat/lon grid, a scale bar and the track coloured by speed.

    tripview.py received.jsonl --png trip.png --html trip.html
    tripview.py --mqtt 127.0.0.1:1883 --topic 'fleet/+/telemetry' --seconds 60 \\
        --save received.jsonl --png trip.png
"""

import argparse
import base64
import datetime
import html
import io
import json
import math
import os
import sys
import threading

if __name__ == "__main__":  # plain python3 without matplotlib: continue under .venv
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import venvexec

    venvexec.ensure(["matplotlib"])

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

WIDTH_PX, HEIGHT_PX, DPI = 1400, 900, 100
EARTH_M_PER_DEG = 111320.0  # metres per degree of latitude (and of longitude at the equator)
GAP_S = 120  # a longer silence breaks the track line


class Sample:
    """One record, flattened to what is drawn (floats in natural units)."""

    def __init__(self):
        self.dev: "str | None" = None
        self.seq: "float | None" = None
        self.ts: "float | None" = None
        self.uptime = False
        self.lat: "float | None" = None
        self.lon: "float | None" = None
        self.speed: "float | None" = None  # km/h
        self.rpm: "float | None" = None
        self.signal: "float | None" = None  # dBm
        self.topic: "str | None" = None


# --- reading --------------------------------------------------------------------


def _num(v):
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _obd(obd, pid):
    if not isinstance(obd, dict):
        return None
    for k in (pid, pid.lower(), "0x" + pid, str(int(pid, 16))):
        if k in obd:
            return _num(obd[k])
    return None


def sample_from_record(rec, topic=None):
    """One JSON record (RECORDS.md, or close to it) -> Sample, or None if it is not one."""
    if not isinstance(rec, dict):
        return None
    s = Sample()
    s.topic = topic
    s.dev = rec.get("dev") or rec.get("device") or rec.get("id")
    if s.dev is None and topic:
        parts = topic.split("/")
        s.dev = parts[1] if len(parts) > 2 else None
    s.seq = _num(rec.get("seq"))
    s.ts = _num(rec.get("ts", rec.get("time")))
    s.uptime = rec.get("ts_src") == "uptime"
    fix = rec["fix"] if isinstance(rec.get("fix"), dict) else rec
    lat = _num(fix.get("lat_e7"))
    lon = _num(fix.get("lon_e7"))
    if lat is not None and lon is not None:
        s.lat, s.lon = lat / 1e7, lon / 1e7
    else:
        lat, lon = _num(fix.get("lat")), _num(fix.get("lon", fix.get("lng")))
        if lat is not None and lon is not None:
            s.lat, s.lon = lat, lon
    sp = _num(fix.get("speed_ckmh"))
    if sp is not None:
        s.speed = sp / 100.0
    else:
        s.speed = _num(fix.get("speed", rec.get("speed", rec.get("speed_kmh"))))
    obd = rec.get("obd")
    s.rpm = _obd(obd, "0C")
    if s.rpm is None:
        s.rpm = _num(rec.get("rpm"))
    if s.speed is None:
        s.speed = _obd(obd, "0D")
    s.signal = _num(rec.get("rssi_dbm", rec.get("signal", rec.get("rssi"))))
    if s.seq is None and s.ts is None and s.lat is None:
        return None
    return s


def samples_from_freematics(text, topic=None):
    """``DEV#0:seq,A:lat,B:lon,D:kmh,10C:rpm,81:dBm,...*CS`` -> Samples (PID 0 starts each)."""
    dev, sep, body = text.partition("#")
    if not sep:
        raise ValueError("not JSON and not the Freematics DEV#PID:value text format")
    body = body.rsplit("*", 1)[0]
    out = []
    cur = None
    date = tod = None
    for item in body.split(","):
        pid, _, val = item.partition(":")
        pid = pid.strip().upper()
        if pid == "0":
            if cur is not None:
                out.append(cur)
            cur = Sample()
            cur.dev, cur.topic, cur.seq = dev.strip(), topic, _num(val)
            date = tod = None
            continue
        if cur is None:
            continue
        v = _num(val)
        if pid == "A":
            cur.lat = v
        elif pid == "B":
            cur.lon = v
        elif pid == "D":
            cur.speed = v
        elif pid == "10C":
            cur.rpm = v
        elif pid == "81":
            cur.signal = v
        elif pid == "11":
            date = val.strip()
        elif pid == "10":
            tod = val.strip()
        if date and tod and len(date) == 6 and len(tod) >= 6:
            try:
                d = datetime.datetime(2000 + int(date[4:6]), int(date[2:4]), int(date[0:2]),
                                      int(tod[0:2]), int(tod[2:4]), int(tod[4:6]),
                                      tzinfo=datetime.timezone.utc)
                cur.ts = d.timestamp()
            except ValueError:
                pass
    if cur is not None:
        out.append(cur)
    return out


def samples_from_payload(payload, topic=None):
    if isinstance(payload, (bytes, bytearray)):
        payload = bytes(payload).decode("utf-8", "replace")
    if isinstance(payload, str):
        t = payload.strip()
        try:
            payload = json.loads(t)
        except ValueError:
            return samples_from_freematics(t, topic)
    recs = payload if isinstance(payload, list) else [payload]
    out = []
    for r in recs:
        s = sample_from_record(r, topic)
        if s is not None:
            out.append(s)
    return out


_NOT_RECORDS = ("/status", "/health", "/cmd", "/cmd/ack")


def not_telemetry(lines):
    """What the file is when it is plainly not telemetry (an .atx transcript, a modem log):
    a phrase for the message, or None.  Judged on its first non-blank lines."""
    head = [ln.strip() for ln in lines if ln.strip()][:20]
    if not head:
        return None
    if all(ln[:2] in ("> ", "< ") or ln[:1] in ("#", "@") for ln in head):
        return "an .atx modem transcript (see tools/logdoctor.py)"
    if any(ln.startswith("=== SENT@") or ln.startswith("=== RECV@") for ln in head):
        return "a Freematics debug log (see tools/logdoctor.py)"
    if not any(ln[:1] in "{[" or "#" in ln for ln in head):
        return "neither JSON nor Freematics text"
    return None


def read_jsonl(lines, warn=None):
    """Lines of a received-messages file -> (samples, problems [(lineno, text)])."""
    samples, problems = [], []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            problems.append((n, "not JSON: %s" % e))
            continue
        if isinstance(obj, dict) and "payload" in obj:
            topic, payload = obj.get("topic"), obj["payload"]
            if isinstance(topic, str) and topic.endswith(_NOT_RECORDS):
                continue  # the device's other topics hold no records: nothing to report
        else:
            topic, payload = None, obj
        try:
            got = samples_from_payload(payload, topic)
        except ValueError as e:
            problems.append((n, str(e)))
            continue
        if not got:
            problems.append((n, "no record in this message"))
        samples.extend(got)
    if warn:
        for n, text in problems:
            warn("line %d: %s" % (n, text))
    return tidy(samples), problems


def tidy(samples):
    """Drop re-deliveries (same dev and seq: at-least-once) and order by time."""
    seen = set()
    out = []
    for s in samples:
        key = (s.dev, s.seq)
        if s.seq is not None and key in seen:
            continue
        seen.add(key)
        out.append(s)
    out.sort(key=lambda s: (s.dev or "", s.ts if s.ts is not None else -1,
                            s.seq if s.seq is not None else -1))
    return out


# --- drawing --------------------------------------------------------------------


def haversine_m(lat1, lon1, lat2, lon2):
    r = 6371000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(min(1.0, math.sqrt(a)))


def stats(samples):
    fixes = [s for s in samples if s.lat is not None]
    dist = 0.0
    for a, b in zip(fixes, fixes[1:], strict=False):
        if a.dev == b.dev:
            dist += haversine_m(a.lat, a.lon, b.lat, b.lon)
    ts = [s.ts for s in samples if s.ts is not None and not s.uptime]
    speeds = [s.speed for s in samples if s.speed is not None]
    return {
        "records": len(samples),
        "fixes": len(fixes),
        "devices": sorted({s.dev for s in samples if s.dev}),
        "distance_km": round(dist / 1000.0, 3),
        "max_speed_kmh": round(max(speeds), 1) if speeds else None,
        "start": _iso(min(ts)) if ts else None,
        "end": _iso(max(ts)) if ts else None,
    }


def _iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%SZ")


def _nice(x):
    """The largest 1/2/5 x 10^n not above x."""
    if x <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(x))
    for m in (5, 2, 1):
        if m * e <= x:
            return m * e
    return e


def _draw_map(ax, samples, fig):
    fixes = [s for s in samples if s.lat is not None]
    ax.set_title("GNSS track (equirectangular), coloured by speed")
    if not fixes:
        ax.text(0.5, 0.5, "no GNSS fix in these records", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    lats = [s.lat for s in fixes]
    lons = [s.lon for s in fixes]
    lat0 = (min(lats) + max(lats)) / 2
    coslat = max(0.05, math.cos(math.radians(lat0)))
    # pad so that the track does not touch the frame; a single point still gets an area
    span = max(max(lats) - min(lats), (max(lons) - min(lons)) * coslat, 0.002)
    pad = span * 0.08
    ax.set_ylim(min(lats) - pad, max(lats) + pad)
    ax.set_xlim(min(lons) - pad / coslat, max(lons) + pad / coslat)
    ax.set_aspect(1.0 / coslat)  # equirectangular: 1 deg lon = cos(lat) deg lat on paper
    ax.set_facecolor("#eef2f5")
    ax.grid(True, color="white", linewidth=1.2)
    ax.set_axisbelow(True)
    # enough decimals that neighbouring grid lines read differently on a short trip
    dec = max(3, min(7, 1 - int(math.floor(math.log10(span / 5)))))
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda v, _p: "%.*f°%s" % (dec, abs(v), "E" if v >= 0 else "W")))
    ax.yaxis.set_major_formatter(FuncFormatter(
        lambda v, _p: "%.*f°%s" % (dec, abs(v), "N" if v >= 0 else "S")))
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.tick_params(axis="y", labelsize=8)
    segs, colours = [], []
    for a, b in zip(fixes, fixes[1:], strict=False):
        if a.dev != b.dev:
            continue
        if a.ts is not None and b.ts is not None and abs(b.ts - a.ts) > GAP_S:
            continue
        segs.append([(a.lon, a.lat), (b.lon, b.lat)])
        sp = [v for v in (a.speed, b.speed) if v is not None]
        colours.append(sum(sp) / len(sp) if sp else 0.0)
    speeds = [s.speed for s in fixes if s.speed is not None] or [0.0]
    norm = Normalize(0, max(max(speeds), 1.0))
    lc = LineCollection(segs, cmap="viridis", norm=norm, linewidths=3, capstyle="round")
    lc.set_array(colours)
    ax.add_collection(lc)
    ax.scatter(lons, lats, c=[s.speed if s.speed is not None else 0 for s in fixes],
               cmap="viridis", norm=norm, s=8, zorder=3)
    ax.plot(lons[0], lats[0], marker="o", ms=11, mfc="#2ca02c", mec="black", zorder=4,
            label="start")
    ax.plot(lons[-1], lats[-1], marker="s", ms=11, mfc="#d62728", mec="black", zorder=4,
            label="end")
    ax.legend(loc="upper right", fontsize=8)
    cb = fig.colorbar(lc, ax=ax, fraction=0.04, pad=0.02)
    cb.set_label("speed km/h")
    # scale bar, bottom left: a round length near a quarter of the width
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    m_per_deg_lon = EARTH_M_PER_DEG * coslat
    width_m = (x1 - x0) * m_per_deg_lon
    bar_m = _nice(width_m / 4)
    bar_deg = bar_m / m_per_deg_lon
    # in the bottom corner the track crosses least
    left = sum(1 for s in fixes if s.lon < x0 + (x1 - x0) * 0.4 and s.lat < y0 + (y1 - y0) * 0.2)
    right = sum(1 for s in fixes if s.lon > x1 - (x1 - x0) * 0.4
                and s.lat < y0 + (y1 - y0) * 0.2)
    bx = x0 + (x1 - x0) * 0.05 if left <= right else x1 - (x1 - x0) * 0.05 - bar_deg
    by = y0 + (y1 - y0) * 0.04
    ax.plot([bx, bx + bar_deg], [by, by], color="black", linewidth=4, solid_capstyle="butt",
            zorder=5)
    label = "%g km" % (bar_m / 1000) if bar_m >= 1000 else "%g m" % bar_m
    ax.text(bx + bar_deg / 2, by + (y1 - y0) * 0.015, label, ha="center", va="bottom",
            fontsize=9, zorder=5, bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none",
                                        "pad": 1.5})


def _uptime_only(samples):
    """True when no record has a wall-clock time (then the axis is seconds since boot)."""
    return not any(not s.uptime and s.ts is not None for s in samples)


def _series(ax, samples, attr, label, colour):
    uptime = _uptime_only(samples)
    # Records stamped before the first clock sync (ts_src "uptime") cannot be placed
    # on a wall-clock axis: with any wall-clock record present they are left out.
    pts = [(s.ts, getattr(s, attr)) for s in samples
           if getattr(s, attr) is not None and s.ts is not None and s.uptime == uptime]
    ax.set_ylabel(label)
    ax.grid(True, alpha=0.4)
    if not pts:
        ax.text(0.5, 0.5, "no %s in these records" % label, ha="center", va="center",
                transform=ax.transAxes, fontsize=9)
        return
    if uptime:
        xs = [t for t, _v in pts]
    else:
        xs = [datetime.datetime.fromtimestamp(t, datetime.timezone.utc) for t, _v in pts]
    ax.plot(xs, [v for _t, v in pts], color=colour, linewidth=1.4, marker=".", ms=3)
    if not uptime:
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=datetime.timezone.utc))
        ax.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=6))


def figure(samples, title=None):
    fig = plt.figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    gs = fig.add_gridspec(3, 2, width_ratios=[1.35, 1], hspace=0.35, wspace=0.22,
                          left=0.07, right=0.97, top=0.9, bottom=0.08)
    _draw_map(fig.add_subplot(gs[:, 0]), samples, fig)
    ax_s = fig.add_subplot(gs[0, 1])
    ax_r = fig.add_subplot(gs[1, 1], sharex=ax_s)
    ax_q = fig.add_subplot(gs[2, 1], sharex=ax_s)
    _series(ax_s, samples, "speed", "speed km/h", "#1f77b4")
    _series(ax_r, samples, "rpm", "rpm", "#ff7f0e")
    _series(ax_q, samples, "signal", "signal dBm", "#9467bd")
    ax_s.set_title("over time (seconds since boot)" if _uptime_only(samples)
                   else "over time (UTC)")
    ax_q.set_xlabel("time")
    st = stats(samples)
    head = title or "Trip: %s" % (", ".join(st["devices"]) or "unknown device")
    span = "%s .. %s" % (st["start"], st["end"]) if st["start"] else "no wall clock"
    up = [s.ts for s in samples if s.uptime and s.ts is not None]
    if not st["start"] and up:
        span = "uptime %d .. %d s (no wall clock)" % (min(up), max(up))
    sub = "%d records, %d fixes, %.2f km, max %s km/h, %s" % (
        st["records"], st["fixes"], st["distance_km"],
        st["max_speed_kmh"] if st["max_speed_kmh"] is not None else "-", span)
    fig.suptitle(head + "\n" + sub, fontsize=12)
    return fig


def render_png(samples, path, title=None):
    fig = figure(samples, title)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def render_html(samples, path, title=None):
    fig = figure(samples, title)
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.find("<svg"):]  # inline: drop the XML prolog and DOCTYPE
    st = stats(samples)
    title = title or "Trip: %s" % (", ".join(st["devices"]) or "unknown device")
    rows = "".join("<tr><th>%s</th><td>%s</td></tr>" % (html.escape(k), html.escape(
        ", ".join(v) if isinstance(v, list) else str(v))) for k, v in st.items())
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title>\n"
        "<style>body{font-family:sans-serif;margin:1em}svg{max-width:100%%;height:auto}"
        "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:2px 8px;"
        "text-align:left}</style></head><body>\n<h1>%s</h1>\n<table>%s</table>\n%s\n"
        "</body></html>\n" % (html.escape(title), html.escape(title), rows, svg))
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)


def png_data_uri(samples):
    """The PNG as a data: URI (for embedding elsewhere)."""
    fig = figure(samples)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


# --- live -----------------------------------------------------------------------


def collect_mqtt(hostport, topic, seconds, cafile=None, username=None, password=None):
    """Subscribe for ``seconds`` and return the received messages as JSON-lines text."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError("--mqtt wants HOST:PORT, not %r" % hostport)
    lines = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2,
                         client_id="tripview-%d" % os.getpid())
    if cafile:
        client.tls_set(ca_certs=cafile)
    if username:
        client.username_pw_set(username, password)

    def on_connect(c, _u, _f, rc, _p=None):
        if not rc.is_failure:
            c.subscribe(topic, qos=1)

    def on_message(_c, _u, msg):
        try:
            payload = json.loads(msg.payload.decode("utf-8"))
        except ValueError:
            payload = msg.payload.decode("utf-8", "replace")
        lines.append(json.dumps({"topic": msg.topic, "payload": payload}))

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(host, int(port), keepalive=30)
    client.loop_start()
    try:
        threading.Event().wait(seconds)  # listen for exactly this long
    finally:
        client.disconnect()
        client.loop_stop()
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Draw received telemetry (JSON lines of {topic, payload}): GNSS track "
                    "coloured by speed on an equirectangular map, and speed, rpm and signal "
                    "over time.  PNG and/or self-contained HTML.")
    p.add_argument("input", nargs="?", help="received messages, JSON lines")
    p.add_argument("--png", help="write the picture here")
    p.add_argument("--html", help="write a self-contained HTML page (inline SVG) here")
    p.add_argument("--title", help="title of the picture")
    p.add_argument("--mqtt", metavar="HOST:PORT", help="live: subscribe to this broker")
    p.add_argument("--topic", default="#", help="live: topic filter (default #)")
    p.add_argument("--seconds", type=float, default=30.0, help="live: how long to listen")
    p.add_argument("--cafile", help="live: CA certificate for TLS")
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--save", help="live: also write the received messages (JSON lines) here")
    a = p.parse_args(argv)
    if bool(a.input) == bool(a.mqtt):
        p.error("give an input file or --mqtt HOST:PORT (one of them)")
    if not a.png and not a.html:
        p.error("nothing to write: give --png and/or --html")

    def warn(msg):
        sys.stderr.write("tripview: %s\n" % msg)

    try:
        if a.mqtt:
            lines = collect_mqtt(a.mqtt, a.topic, a.seconds, a.cafile, a.username, a.password)
            warn("received %d message(s) on %s in %.0f s" % (len(lines), a.topic, a.seconds))
            if a.save:
                with open(a.save, "w") as f:
                    f.write("".join(ln + "\n" for ln in lines))
        else:
            with open(a.input, encoding="utf-8", errors="replace") as f:
                lines = f.readlines()
            kind = not_telemetry(lines)
            if kind:
                warn("%s is %s, not received telemetry: tripview draws the JSON lines an MQTT "
                     "subscriber saved (tools/demo.py writes var/demo/received.jsonl; or "
                     "--mqtt HOST:PORT --save FILE)" % (a.input, kind))
                return 2
        samples, _problems = read_jsonl(lines, warn)
    except (OSError, ValueError) as e:
        warn(str(e))
        return 2
    if not samples:
        warn("no records to draw")
        return 1
    if a.png:
        render_png(samples, a.png, a.title)
        print("wrote %s" % a.png)
    if a.html:
        render_html(samples, a.html, a.title)
        print("wrote %s" % a.html)
    return 0


if __name__ == "__main__":
    sys.exit(main())
