"""The GNSS fix: one mutable record of scaled integers, shared by every position source.

Owned here: the ``Fix`` class and the calendar arithmetic that turns a UTC date
and time into seconds.  Parsers (``gnssparse`` for modem answers, ``nmea`` for a
receiver) write into a caller-owned ``Fix`` so a hot loop allocates nothing
(within MicroPython's small-int range, see below).

Units (all ints; no floats anywhere):
  lat_e7, lon_e7   degrees x 1e7, signed (south and west negative)
  alt_dm           altitude above mean sea level, decimetres (signed)
  speed_ckmh       speed over ground, 0.01 km/h (the unit of the anchor's PID D
                   and of OBD speed x 100; 1 knot = 185.2)
  course_cdeg      course over ground, 0.01 degree, 0..35999
  sats             satellites used in the solution (0 when unknown)
  hdop_x10         horizontal dilution of precision x 10 (0 when unknown)
  year..ss, ms     UTC date and time of the fix (year four digits)
  epoch_s          seconds since 2000-01-01T00:00:00Z: MicroPython's embedded
                   epoch, which stays a small int on the ESP32 until 2034;
                   ``unix_s()`` adds the 1970 offset when a server wants it
  valid            True only when the source said the position is a real fix

Note: |lon_e7| above 2**30 (107.37 degrees) is a boxed int on the ESP32, so such
longitudes cost one small allocation per fix; lat_e7 always fits.
"""

from .compat import const

UNIX_OFFSET_S = const(946684800)  # 2000-01-01 minus 1970-01-01, in seconds

# Days before each month in a non-leap year (index 1..12).
_CUM_DAYS = (0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def days_since_2000(year, month, day):
    """Days from 2000-01-01 to the given date (proleptic Gregorian, year >= 2000)."""
    y = year - 2000
    # Leap days in the whole years 2000..year-1: 2000 itself is a leap year.
    days = y * 365 + (y + 3) // 4 - (y + 99) // 100 + (y + 399) // 400
    days += _CUM_DAYS[month] + day - 1
    if month > 2 and (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        days += 1
    return days


class Fix:
    """A GNSS position; ``clear()`` it, let a parser fill it, ``copy_from`` to publish."""

    def __init__(self):
        self.clear()

    def clear(self):
        self.valid = False
        self.lat_e7 = 0
        self.lon_e7 = 0
        self.alt_dm = 0
        self.speed_ckmh = 0
        self.course_cdeg = 0
        self.sats = 0
        self.hdop_x10 = 0
        self.year = 0
        self.month = 0
        self.day = 0
        self.hh = 0
        self.mm = 0
        self.ss = 0
        self.ms = 0
        self.epoch_s = 0

    def copy_from(self, other):
        self.valid = other.valid
        self.lat_e7 = other.lat_e7
        self.lon_e7 = other.lon_e7
        self.alt_dm = other.alt_dm
        self.speed_ckmh = other.speed_ckmh
        self.course_cdeg = other.course_cdeg
        self.sats = other.sats
        self.hdop_x10 = other.hdop_x10
        self.year = other.year
        self.month = other.month
        self.day = other.day
        self.hh = other.hh
        self.mm = other.mm
        self.ss = other.ss
        self.ms = other.ms
        self.epoch_s = other.epoch_s

    def has_date(self):
        return self.year >= 2000 and 1 <= self.month <= 12 and self.day >= 1

    def update_epoch(self):
        """Recompute ``epoch_s`` from the date and time fields (0 without a date)."""
        if not self.has_date():
            self.epoch_s = 0
            return 0
        d = days_since_2000(self.year, self.month, self.day)
        self.epoch_s = d * 86400 + self.hh * 3600 + self.mm * 60 + self.ss
        return self.epoch_s

    def unix_s(self):
        """Seconds since 1970 (allocates a long int on the ESP32; not for hot loops)."""
        return self.epoch_s + UNIX_OFFSET_S if self.epoch_s else 0

    def to_dict(self):
        """A JSON-ready dict (allocates; for logs, tests and the outbox, not the parser)."""
        return {
            "valid": self.valid,
            "lat_e7": self.lat_e7,
            "lon_e7": self.lon_e7,
            "alt_dm": self.alt_dm,
            "speed_ckmh": self.speed_ckmh,
            "course_cdeg": self.course_cdeg,
            "sats": self.sats,
            "hdop_x10": self.hdop_x10,
            "date": (self.year, self.month, self.day),
            "time": (self.hh, self.mm, self.ss, self.ms),
            "epoch_s": self.epoch_s,
        }
