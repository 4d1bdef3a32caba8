"""GNSS track replay: a position that moves over time, printed as +CGPSINFO or +CGNSSINFO.

A track is a list of points {"t": s, "lat": deg, "lon": deg, "alt": m, "speed": knots,
"course": deg} (JSON file), or NMEA sentences (RMC, optionally GGA for altitude) read
with pynmeagps.  Position at time t interpolates linearly between points and holds
the last one.  Formats: manual 003 21.2.20 (CGPSINFO, ddmm.mmmmmm) and 21.2.21
(CGNSSINFO, dd.dddddd).
"""

import datetime
import json
import time

# A default drive: 2 minutes heading east at about 36 km/h near Shanghai (manual's example).
DEFAULT_TRACK = [{"t": 10.0 * k, "lat": 31.222388, "lon": 121.353568 + 0.001045 * k,
                  "alt": 44.1, "speed": 19.4, "course": 90.0} for k in range(13)]


def load_track(path):
    """Points from a .json list or an NMEA file."""
    with open(path, "rb") as f:
        head = f.read(1)
    if head in (b"[", b"{"):
        with open(path) as f:
            pts = json.load(f)
        return sorted(pts, key=lambda p: p["t"])
    return nmea_track(path)


def nmea_track(path):
    from pynmeagps import NMEAReader

    pts, alt, t0 = [], 0.0, None
    with open(path, "rb") as f:
        for _raw, msg in NMEAReader(f, nmeaonly=False, quitonerror=0):
            if msg is None:
                continue
            f = msg.__dict__            # pynmeagps sets sentence fields as attributes
            ident = f.get("_msgID", getattr(msg, "msgID", ""))
            if ident == "GGA" and f.get("alt", "") != "":
                alt = float(f["alt"])
            if ident != "RMC" or f.get("status") != "A":
                continue
            tod = f["time"]
            secs = tod.hour * 3600 + tod.minute * 60 + tod.second + tod.microsecond / 1e6
            t0 = secs if t0 is None else t0
            pts.append({"t": secs - t0, "lat": float(f["lat"]), "lon": float(f["lon"]),
                        "alt": alt, "speed": float(f.get("spd") or 0.0),
                        "course": float(f.get("cog") or 0.0)})
    if not pts:
        raise ValueError("no valid RMC fix in " + path)
    return pts


class Track:
    """Replays points against a clock (seconds); clock is injectable for tests."""

    def __init__(self, points=None, clock=None, ttff=0.0):
        self.points = points or DEFAULT_TRACK
        self.clock = clock or time.monotonic
        self.ttff = ttff
        self.t_on = None

    def power(self, on):
        self.t_on = self.clock() if on else None

    def fix(self):
        """(lat, lon, alt, speed, course) or None while off / before first fix."""
        if self.t_on is None:
            return None
        t = self.clock() - self.t_on
        if t < self.ttff:
            return None
        t -= self.ttff
        pts = self.points
        if t <= pts[0]["t"]:
            p = pts[0]
            return p["lat"], p["lon"], p.get("alt", 0.0), p.get("speed", 0.0), p.get(
                "course", 0.0)
        for a, b in zip(pts, pts[1:], strict=False):
            if a["t"] <= t <= b["t"]:
                f = (t - a["t"]) / ((b["t"] - a["t"]) or 1.0)
                return tuple(a.get(k, 0.0) + (b.get(k, 0.0) - a.get(k, 0.0)) * f
                             for k in ("lat", "lon", "alt", "speed", "course"))
        p = pts[-1]
        return p["lat"], p["lon"], p.get("alt", 0.0), p.get("speed", 0.0), p.get("course", 0.0)


def _dm(value, deg_digits):
    a = abs(value)
    d = int(a)
    return "%0*d%09.6f" % (deg_digits, d, (a - d) * 60.0)


def _date_time():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%d%m%y"), "%s.%d" % (now.strftime("%H%M%S"), now.microsecond // 100000)


def cgpsinfo(fix):
    """+CGPSINFO: <lat ddmm.mmmmmm>,<N/S>,<lon dddmm.mmmmmm>,<E/W>,<date>,<utc>,<alt>,<speed>,
    <course> (manual 003 21.2.20); empty fields without a fix."""
    if fix is None:
        return "+CGPSINFO: ,,,,,,,,"
    lat, lon, alt, spd, crs = fix
    date, utc = _date_time()
    return "+CGPSINFO: %s,%s,%s,%s,%s,%s,%.1f,%.1f,%.1f" % (
        _dm(lat, 2), "N" if lat >= 0 else "S", _dm(lon, 3), "E" if lon >= 0 else "W",
        date, utc, alt, spd, crs)


def cgnssinfo(fix):
    """+CGNSSINFO: <mode>,<gps>,<glonass>,<galileo>,<beidou>,<lat dd.dddddd>,<N/S>,
    <lon ddd.dddddd>,<E/W>,<date>,<utc>,<alt>,<speed>,<course>,<pdop>,<hdop>,<vdop>,<nosv>
    (manual 003 21.2.21); the manual's no-fix example otherwise."""
    if fix is None:
        return "+CGNSSINFO: ,,,,,,,,,,,,,"
    lat, lon, alt, spd, crs = fix
    date, utc = _date_time()
    return "+CGNSSINFO: 3,09,05,00,00,%.6f,%s,%.6f,%s,%s,%s,%.1f,%.1f,%.1f,1.5,0.9,1.2,14" % (
        abs(lat), "N" if lat >= 0 else "S", abs(lon), "E" if lon >= 0 else "W",
        date, utc + "0", alt, spd, crs)
