"""The telelogger's configuration: one JSON file on flash, a schema, validation, redaction.

Owns the schema (``spec(key)``; the names in ``SCHEMA``: every key with its
default, range or choices, and flags: SECRET = never printed or logged, LIVE =
applies without a reboot, LINK = changes where and how the device connects:
remotely settable only by an authenticated command, see tlog.auth), the rules
between keys (``check_all``: spool geometry, and the modem family's limits from
atmq.limits), ``load(path)`` (defaults merged with the file; unknown keys and
bad values are refused with a ``ConfigError`` that names the key, the value
and what is allowed, with a "did you mean" for a typo'd key) and ``Config``
(validated ``get``/``set``, persisted atomically with tmp + rename,
``redacted()`` for printing).  Every key is documented in CONFIG.md.

Strings end up inside quoted AT command parameters (APN, MQTT credentials,
certificate names), where the manuals define no escape (003 s.5.2.6, 16.2.8),
so ``"``, ``\\`` and control characters are refused everywhere.
"""

import json

from atmq import jsonstrict
from atmq.compat import const
from atmq.errors import ConfigError

from . import fsutil

SECRET = const(1)  # never printed, logged or returned by redacted()
LIVE = const(2)  # takes effect without a reboot
LINK = const(4)  # link or security: remote set needs an authenticated command (tlog.auth)

_MAX_FILE = const(8192)
_REDACTED = const("***")

# String classes: the characters a value may use (const: the table below stays constant).
_ID = const("id")  # A-Z a-z 0-9 _ - .
_TOPIC = const("topic")  # printable ASCII without + # and without leading/trailing /
_DIGITS = const("digits")
_HOST = const("host")  # A-Z a-z 0-9 . - : (names, IPv4, IPv6)
_FILE = const("file")  # a file name on the modem: id characters, no path
_TEXT = const("text")  # printable ASCII without " and \\
_HEX = const("hex")  # 0-9 a-f A-F

# The smallest spool segment: one packed record (records.PACKED_MAX = 128, what
# spool.from_config uses) plus the 8-byte frame (tlog.spool).
SEGMENT_MIN = const(128 + 8)

# (key, default, rule, flags); the default's type is the key's type:
#   int:  rule = (lo, hi)
#   bool: rule = None
#   str:  rule = (min_len, max_len, class) or a tuple of allowed choices (all str)
# One tuple of constants: frozen, it lives in flash and costs no heap (a dict of tuples
# built at import took ~2.6 KB). Looked up by ``spec`` (a linear scan: config paths only).
_TABLE: tuple = (
    ("device_id", "", (0, 32, _ID), LINK),
    ("topic_prefix", "tlog", (1, 64, _TOPIC), LIVE | LINK),
    ("apn", "", (0, 63, _TEXT), LINK),
    ("apn_user", "", (0, 63, _TEXT), LINK),
    ("apn_pass", "", (0, 63, _TEXT), SECRET | LINK),
    ("sim_pin", "", (0, 8, _DIGITS), SECRET | LINK),
    ("mqtt_host", "", (0, 128, _HOST), LINK),
    ("mqtt_port", 8883, (1, 65535), LINK),
    ("mqtt_tls", True, None, LINK),
    ("mqtt_client_id", "", (0, 128, _ID), LINK),
    ("mqtt_user", "", (0, 256, _TEXT), LINK),
    ("mqtt_password", "", (0, 256, _TEXT), SECRET | LINK),
    ("mqtt_keepalive_s", 60, (1, 64800), LINK),
    ("mqtt_qos", 1, (0, 2), LIVE | LINK),
    ("mqtt_version", 4, (3, 4), LINK),
    ("mqtt_binary", False, None, LINK),
    ("link_fatal_retry_s", 1800, (60, 86400), LIVE),
    ("tls_ca", "ca.pem", (0, 64, _FILE), LINK),
    ("tls_cert", "", (0, 64, _FILE), LINK),
    ("tls_key", "", (0, 64, _FILE), SECRET | LINK),
    ("tls_version", "default", ("default", "all", "tls1.2", "tls1.3"), LINK),
    ("interval_moving_s", 1, (1, 3600), LIVE),
    ("interval_stationary_s", 5, (1, 3600), LIVE),
    ("stationary_after_s", 60, (0, 3600), LIVE),
    ("standby_after_s", 180, (0, 86400), LIVE),
    ("health_interval_s", 300, (10, 86400), LIVE),
    ("batch_max_records", 32, (1, 256), LIVE),
    ("batch_max_bytes", 4096, (256, 10240), LIVE),  # capped by the modem (uplink)
    ("uplink_inflight", 2, (1, 2), LIVE),  # 2: CMQTT's second session on a backlog; SM: 1
    ("spool_max_bytes", 262144, (16384, 16777216), 0),
    ("spool_max_segments", 16, (2, 256), 0),
    ("spool_flush_records", 1, (1, 64), LIVE),
    ("payload_format", "json", ("json", "freematics"), LIVE),
    ("obd_enable", True, None, 0),
    ("obd_uart", 2, (1, 2), 0),
    ("obd_baud", 38400, (9600, 921600), 0),
    ("gnss_source", "modem", ("modem", "external", "none"), 0),
    ("capture_enable", False, None, LIVE),
    ("capture_max_bytes", 65536, (4096, 1048576), LIVE),
    ("capture_max_files", 4, (1, 16), LIVE),
    ("watchdog_timeout_s", 120, (10, 3600), 0),
    ("log_ram_lines", 16, (4, 64), 0),  # the field log's RAM ring (atmq.log), ~100 B a line
    ("cmd_key", "", (0, 64, _HEX), SECRET | LINK),
    ("link_probation_s", 600, (10, 86400), LINK),
    # over-the-air update (tlog/ota.py, issue 15); an empty ota_key turns OTA off
    # a link key: whoever sets it could sign their own code (only a signed command may)
    ("ota_key", "", (0, 128, _TEXT), SECRET | LINK),
    ("ota_probation_s", 300, (10, 86400), LIVE),
    ("ota_max_boots", 3, (1, 20), LIVE),
    ("ota_spool_max_pct", 50, (1, 100), LIVE),
)


# every key name, in table order: a literal (frozen, it lives in flash; built from _TABLE at
# import it was a 208-byte tuple on the heap); tests_host/test_config.py checks it
SCHEMA = (
    "device_id", "topic_prefix", "apn", "apn_user", "apn_pass", "sim_pin", "mqtt_host",
    "mqtt_port", "mqtt_tls", "mqtt_client_id", "mqtt_user", "mqtt_password",
    "mqtt_keepalive_s", "mqtt_qos", "mqtt_version", "mqtt_binary", "link_fatal_retry_s",
    "tls_ca", "tls_cert", "tls_key", "tls_version", "interval_moving_s",
    "interval_stationary_s", "stationary_after_s", "standby_after_s",
    "health_interval_s", "batch_max_records", "batch_max_bytes", "uplink_inflight",
    "spool_max_bytes", "spool_max_segments", "spool_flush_records", "payload_format",
    "obd_enable", "obd_uart", "obd_baud", "gnss_source", "capture_enable",
    "capture_max_bytes", "capture_max_files", "watchdog_timeout_s", "log_ram_lines",
    "cmd_key", "link_probation_s", "ota_key", "ota_probation_s", "ota_max_boots",
    "ota_spool_max_pct",
)


def spec(key):
    """``(default, rule, flags)`` of ``key``, or None for an unknown key."""
    for row in _TABLE:
        if row[0] == key:
            return row[1:]
    return None


def _is_class_char(c, cls):
    o = ord(c)
    if o < 0x20 or o > 0x7E or c == '"' or c == "\\":
        return False
    if cls == _TEXT:
        return True
    if cls == _DIGITS:
        return "0" <= c <= "9"
    if cls == _HEX:
        return "0" <= c <= "9" or "a" <= c <= "f" or "A" <= c <= "F"
    alnum = "0" <= c <= "9" or "a" <= c <= "z" or "A" <= c <= "Z"
    if cls == _ID or cls == _FILE:
        return alnum or c in "_-."
    if cls == _HOST:
        return alnum or c in ".-:"
    if cls == _TOPIC:
        return c not in "+#"
    return False


def unknown_key(key):
    """The ConfigError for a key not in the schema, with a "did you mean" (error path only:
    tlog.confighelp is imported then, not at boot)."""
    from .confighelp import suggest

    hint = suggest(key, SCHEMA)
    return ConfigError(key, "unknown key" + (" (did you mean %r?)" % hint if hint else ""))


def _shown(key, value):
    """How a bad value appears in an error: secrets never (not even a wrong one)."""
    row = spec(key)
    if row is not None and row[2] & SECRET:
        return "(secret, not shown)"
    r = repr(value)
    return r if len(r) <= 40 else r[:37] + "..."


def validate(key, value):
    """``value`` if it is valid for ``key``; else ConfigError naming the key, the value and
    what is allowed."""
    row = spec(key)
    if row is None:
        raise unknown_key(key)
    default, rule, _flags = row
    if default is True or default is False:
        if value is not True and value is not False:
            raise ConfigError(key, "must be true or false, got %s" % _shown(key, value))
        return value
    if isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(key, "must be an integer %d..%d, got %s"
                              % (rule[0], rule[1], _shown(key, value)))
        if value < rule[0] or value > rule[1]:
            raise ConfigError(key, "%d is out of range %d..%d" % (value, rule[0], rule[1]))
        return value
    if not isinstance(value, str):
        raise ConfigError(key, "must be a string, got %s" % _shown(key, value))
    if isinstance(rule[0], str):  # choices
        if value not in rule:
            raise ConfigError(key, "must be one of %s, got %s"
                              % (", ".join(rule), _shown(key, value)))
        return value
    lo, hi, cls = rule
    if len(value) < lo or len(value) > hi:
        raise ConfigError(key, "length %d is out of range %d..%d" % (len(value), lo, hi))
    for c in value:
        if not _is_class_char(c, cls):
            what = "a backslash (no escapes in quoted AT parameters)" if c == "\\" else \
                "character %r" % c
            from .confighelp import CLASS_TEXT

            raise ConfigError(key, "%s is not allowed (allowed: %s)"
                              % (what, CLASS_TEXT.get(cls, cls)))
    if cls == _TOPIC and (value[0] == "/" or value[-1] == "/"):
        raise ConfigError(key, "must not start or end with '/', got %s" % _shown(key, value))
    if cls == _DIGITS and value and len(value) < 4:
        raise ConfigError(key, "a SIM PIN has 4 to 8 digits")
    if cls == _HEX and value and len(value) < 32:
        raise ConfigError(key, "a command key has 32 to 64 hex digits (128 to 256 bits)")
    return value


# every key check_all reads: a change is checked against these alone, not against a copy
# of the whole config (a 60-key dict is a 472-byte block a fragmented heap may not have)
_CROSS = ("spool_max_bytes", "spool_max_segments", "mqtt_keepalive_s", "mqtt_host",
          "mqtt_port", "mqtt_client_id", "mqtt_user", "mqtt_password")


def check_all(values, variant=None):
    """The rules between keys, and the modem family's limits (``variant``: an
    atmq.limits.LIMITS key, or None when the modem is not known yet).

    ``values``: valid single values of at least the keys in ``_CROSS``.  Raises
    ConfigError naming the key to change.
    """
    seg = values["spool_max_bytes"] // values["spool_max_segments"]
    if seg < SEGMENT_MIN:
        raise ConfigError(
            "spool_max_segments",
            "%d segments of spool_max_bytes %d give %d B each, less than one record (%d B):"
            " at most %d segments" % (values["spool_max_segments"], values["spool_max_bytes"],
                                      seg, SEGMENT_MIN,
                                      values["spool_max_bytes"] // SEGMENT_MIN))
    if variant is None:
        return
    from atmq import limits

    lim = limits.LIMITS[variant]  # (ka lo, ka hi, host, client id, user, password, ...)
    ka = values["mqtt_keepalive_s"]
    if ka < lim[0] or ka > lim[1]:
        raise ConfigError("mqtt_keepalive_s", "%d is out of range %d..%d for the %s modem"
                          % (ka, lim[0], lim[1], variant))
    for key, idx in (("mqtt_host", 2), ("mqtt_client_id", 3), ("mqtt_user", 4),
                     ("mqtt_password", 5)):
        n = len(values[key])
        if n > lim[idx]:
            raise ConfigError(key, "length %d is over %d for the %s modem"
                              % (n, lim[idx], variant))
    n = limits.connect_len(variant, values["mqtt_host"], values["mqtt_port"], ka,
                           values["mqtt_user"], values["mqtt_password"])
    if n > limits.TX_MAX:
        raise ConfigError("mqtt_host", "with mqtt_user and mqtt_password the connect command is"
                          " %d bytes, over the modem command limit of %d: shorten one of them"
                          % (n, limits.TX_MAX))


def defaults():
    """A new dict of every key's default value."""
    return {row[0]: row[1] for row in _TABLE}


def _flags(key):
    row = spec(key)
    if row is None:
        raise unknown_key(key)
    return row[2]


def is_secret(key):
    return bool(_flags(key) & SECRET)


def is_live(key):
    return bool(_flags(key) & LIVE)


def is_link(key):
    return bool(_flags(key) & LINK)


def parse_text(key, text):
    """Turn console/BLE text into the key's type (then ``validate``)."""
    row = spec(key)
    if row is None:
        raise unknown_key(key)
    default = row[0]
    if default is True or default is False:
        t = text.strip().lower()
        if t in ("1", "true", "on", "yes"):
            return True
        if t in ("0", "false", "off", "no"):
            return False
        raise ConfigError(key, "must be true or false, got %s" % _shown(key, text))
    if isinstance(default, int):
        try:
            n = int(text.strip())
        except ValueError:
            raise ConfigError(key, "must be an integer, got %s" % _shown(key, text)) from None
        return validate(key, n)
    return validate(key, text)


class Config:
    """Validated settings backed by one JSON file (``path``; None keeps them in RAM only).

    ``variant``: the modem's atmq.limits key, checked by ``check_all`` with every change.

    Only the values that differ from their default are held (``_v``); a default is read
    from the table (in flash): a dict of every key was a 472-byte block for the whole
    boot, the values a config sets are a few (issue 11).
    """

    def __init__(self, path=None, values=None, variant=None):
        self.path = path
        self.variant = variant
        self._v = {}
        if values:
            for k in values:
                self._put(k, validate(k, values[k]))
            check_all({k: self.get(k) for k in _CROSS}, variant)

    def _put(self, key, value):
        """Hold ``value`` for ``key`` (a valid key), or nothing when it is the default."""
        v = self._v
        row = spec(key)
        d = None if row is None else row[0]
        if value == d and type(value) is type(d):
            v.pop(key, None)
        else:
            v[key] = value

    def get(self, key):
        v = self._v
        if key in v:
            return v[key]
        for row in _TABLE:  # (not spec(): its row[1:] is a new tuple; get runs per batch,
            if row[0] == key:  # per publish, per sample: no allocation, as the dict was)
                return row[1]
        raise unknown_key(key)

    def values(self):
        """A copy of every key's value (secrets included: for lastgood, never for output)."""
        return {k: self.get(k) for k in SCHEMA}

    def __getitem__(self, key):
        return self.get(key)

    def set(self, key, value):
        """Validate, store and persist one value.  Returns True if it applies without reboot."""
        self.update({key: value})
        return is_live(key)

    def check(self, changes):
        """Validate ``changes`` alone and together with the other values; nothing is stored.
        Returns the checked values."""
        checked = {}
        for k in changes:
            checked[k] = validate(k, changes[k])
        check_all({k: checked[k] if k in checked else self.get(k) for k in _CROSS},
                  self.variant)
        return checked

    def update(self, changes):
        """Validate every change first (all or nothing), then persist once.

        Returns the keys whose new value needs a reboot to take effect.
        """
        checked = self.check(changes)
        old = {k: self.get(k) for k in checked}  # the changed keys' values only
        # made before the write: a MemoryError after a good write would report a set that
        # is on flash as failed (and its live keys never applied)
        reboot = [k for k in checked if not is_live(k) and old[k] != checked[k]]
        try:
            for k in checked:
                self._put(k, checked[k])
            self.save()
        except Exception as e:  # OSError, or MemoryError while writing or holding a value
            for k in old:
                self._put(k, old[k])  # not set: do not pretend it is
            # a write that failed after the old file was removed (rename refused twice) or
            # that left a torn config.json.tmp where no config.json exists would boot with
            # the new or no values: put the old values back on flash (best effort)
            try:
                self.save()
            except Exception:  # the first error is the one to report
                pass
            raise e
        return reboot

    def save(self):
        """Write the file atomically (tmp + rename); readers see the old or the new file."""
        if self.path is None:
            return
        # line by line: the whole text and its encoded copy (~2 KB each) would need
        # contiguous heap, which a fragmented 32-bit heap may not have when "set" comes
        fsutil.atomic_write(self.path, self._json_lines())

    def _json_lines(self):
        keys = sorted(SCHEMA)  # every key, defaults too: the file says the whole config
        last = len(keys) - 1
        yield b"{\n"
        for i, k in enumerate(keys):
            yield ("  %s: %s%s\n" % (json.dumps(k), json.dumps(self.get(k)),
                                      "," if i < last else "")).encode()
        yield b"}\n"

    def to_json(self):
        """The whole configuration as JSON text, one key per line, secrets included."""
        return b"".join(self._json_lines()).decode()

    def shown(self, key):
        """``key``'s value as it may be printed or sent: a secret that is set is "***"."""
        v = self.get(key)
        return _REDACTED if (v != "" and is_secret(key)) else v

    def redacted(self):
        """A dict safe to print or log: secret values set are replaced by "***"."""
        out = {}
        for k in SCHEMA:
            out[k] = self.shown(k)
        return out

    def __repr__(self):
        return "Config(%r)" % (self.redacted(),)

    __str__ = __repr__


def _read(path):
    """The file's bytes (one more than _MAX_FILE at most, to see it is too long), read
    into a block of the file's size: an 8 KB read buffer for a ~2 KB file is a block the
    heap may not have at boot (the 64-bit port from .mpy at its low heap failed there)."""
    n = fsutil.size(path)
    if n < 0:
        return None
    return fsutil.read_bytes(path, (n if n < _MAX_FILE else _MAX_FILE) + 1)


def load(path, variant=None):
    """Defaults merged with the JSON file at ``path`` (missing file: all defaults).

    A file cut between write and rename on a FAT volume is read back from
    ``path.tmp``.  Bad JSON, a non-object, unknown keys and bad values raise
    ConfigError (the key, or "file" for the file as a whole).
    """
    data = _read(path)
    if data is None:
        data = _read(path + fsutil.TMP_SUFFIX)
    if data is None:
        return Config(path, None, variant)
    if len(data) > _MAX_FILE:
        raise ConfigError("file", "%s is larger than %d bytes" % (path, _MAX_FILE))
    try:
        jsonstrict.check(data)  # strict as CPython (tools/deploy.py): MicroPython's json is not
        obj = json.loads(data)
    except ValueError as e:
        raise ConfigError("file", "%s is not valid JSON: %s" % (path, e)) from None
    if not isinstance(obj, dict):
        raise ConfigError("file", "%s must hold one JSON object" % path)
    return Config(path, obj, variant)
