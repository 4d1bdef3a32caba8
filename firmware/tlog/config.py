"""The telelogger's configuration: one JSON file on flash, a schema, validation, redaction.

Owns ``SCHEMA`` (every key with its type, default, range or choices, and
flags: SECRET = never printed or logged, LIVE = applies without a reboot),
``load(path)`` (defaults merged with the file; unknown keys and bad values are
refused with a ``ConfigError`` that names the key) and ``Config`` (validated
``get``/``set``, persisted atomically with tmp + rename, ``redacted()`` for
printing).  Every key is documented in CONFIG.md.

Strings end up inside quoted AT command parameters (APN, MQTT credentials,
certificate names), so ``"`` and control characters are refused everywhere.
"""

import json

from atmq.errors import ConfigError

from . import fsutil

SECRET = 1  # never printed, logged or returned by redacted()
LIVE = 2  # takes effect without a reboot

_MAX_FILE = 8192
_REDACTED = "***"

# String classes: the characters a value may use.
_ID = "id"  # A-Z a-z 0-9 _ - .
_TOPIC = "topic"  # printable ASCII without + # and without leading/trailing /
_DIGITS = "digits"
_HOST = "host"  # A-Z a-z 0-9 . - : (names, IPv4, IPv6)
_FILE = "file"  # a file name on the modem: id characters, no path
_TEXT = "text"  # printable ASCII without "

# key: (type, default, spec, flags)
#   int:  spec = (lo, hi)
#   bool: spec = None
#   str:  spec = (min_len, max_len, class) or a tuple of allowed choices (all str)
SCHEMA = {
    "device_id": (str, "", (0, 32, _ID), 0),
    "topic_prefix": (str, "tlog", (1, 64, _TOPIC), LIVE),
    "apn": (str, "", (0, 63, _TEXT), 0),
    "apn_user": (str, "", (0, 63, _TEXT), 0),
    "apn_pass": (str, "", (0, 63, _TEXT), SECRET),
    "sim_pin": (str, "", (0, 8, _DIGITS), SECRET),
    "mqtt_host": (str, "", (0, 128, _HOST), 0),
    "mqtt_port": (int, 8883, (1, 65535), 0),
    "mqtt_tls": (bool, True, None, 0),
    "mqtt_client_id": (str, "", (0, 128, _ID), 0),
    "mqtt_user": (str, "", (0, 256, _TEXT), 0),
    "mqtt_password": (str, "", (0, 256, _TEXT), SECRET),
    "mqtt_keepalive_s": (int, 60, (1, 64800), 0),
    "mqtt_qos": (int, 1, (0, 2), LIVE),
    "tls_ca": (str, "ca.pem", (0, 64, _FILE), 0),
    "tls_cert": (str, "", (0, 64, _FILE), 0),
    "tls_key": (str, "", (0, 64, _FILE), SECRET),
    "interval_moving_s": (int, 1, (1, 3600), LIVE),
    "interval_stationary_s": (int, 5, (1, 3600), LIVE),
    "stationary_after_s": (int, 60, (0, 3600), LIVE),
    "standby_after_s": (int, 180, (0, 86400), LIVE),
    "health_interval_s": (int, 300, (10, 86400), LIVE),
    "batch_max_records": (int, 32, (1, 256), LIVE),
    "batch_max_bytes": (int, 4096, (256, 4096), LIVE),
    "spool_max_bytes": (int, 262144, (16384, 16777216), 0),
    "spool_max_segments": (int, 16, (2, 256), 0),
    "spool_flush_records": (int, 1, (1, 64), LIVE),
    "payload_format": (str, "json", ("json", "freematics"), LIVE),
    "obd_enable": (bool, True, None, 0),
    "obd_uart": (int, 2, (1, 2), 0),
    "obd_baud": (int, 38400, (9600, 921600), 0),
    "gnss_source": (str, "modem", ("modem", "external", "none"), 0),
    "capture_enable": (bool, False, None, LIVE),
    "capture_max_bytes": (int, 65536, (4096, 1048576), LIVE),
    "capture_max_files": (int, 4, (1, 16), LIVE),
    "watchdog_timeout_s": (int, 120, (10, 3600), 0),
    # over-the-air update (tlog/ota.py, issue 15); an empty ota_key turns OTA off
    "ota_key": (str, "", (0, 128, _TEXT), SECRET),
    "ota_probation_s": (int, 300, (10, 86400), LIVE),
    "ota_max_boots": (int, 3, (1, 20), LIVE),
    "ota_spool_max_pct": (int, 50, (1, 100), LIVE),
}


def _is_class_char(c, cls):
    o = ord(c)
    if o < 0x20 or o > 0x7E or c == '"':
        return False
    if cls == _TEXT:
        return True
    if cls == _DIGITS:
        return "0" <= c <= "9"
    alnum = "0" <= c <= "9" or "a" <= c <= "z" or "A" <= c <= "Z"
    if cls == _ID or cls == _FILE:
        return alnum or c in "_-."
    if cls == _HOST:
        return alnum or c in ".-:"
    if cls == _TOPIC:
        return c not in "+#"
    return False


def validate(key, value):
    """``value`` if it is valid for ``key``; else ConfigError naming the key and the rule."""
    spec = SCHEMA.get(key)
    if spec is None:
        raise ConfigError(key, "unknown key")
    typ, _default, rule, _flags = spec
    if typ is bool:
        if value is not True and value is not False:
            raise ConfigError(key, "must be true or false, got %r" % (value,))
        return value
    if typ is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(key, "must be an integer, got %r" % (value,))
        if value < rule[0] or value > rule[1]:
            raise ConfigError(key, "%d is out of range %d..%d" % (value, rule[0], rule[1]))
        return value
    if not isinstance(value, str):
        raise ConfigError(key, "must be a string")
    if isinstance(rule[0], str):  # choices
        if value not in rule:
            raise ConfigError(key, "must be one of %s" % ", ".join(rule))
        return value
    lo, hi, cls = rule
    if len(value) < lo or len(value) > hi:
        raise ConfigError(key, "length %d is out of range %d..%d" % (len(value), lo, hi))
    for c in value:
        if not _is_class_char(c, cls):
            raise ConfigError(key, "character %r is not allowed (%s)" % (c, cls))
    if cls == _TOPIC and (value[0] == "/" or value[-1] == "/"):
        raise ConfigError(key, "must not start or end with '/'")
    if cls == _DIGITS and value and len(value) < 4:
        raise ConfigError(key, "a SIM PIN has 4 to 8 digits")
    return value


def defaults():
    """A new dict of every key's default value."""
    return {k: v[1] for k, v in SCHEMA.items()}


def is_secret(key):
    return bool(SCHEMA[key][3] & SECRET)


def is_live(key):
    return bool(SCHEMA[key][3] & LIVE)


def parse_text(key, text):
    """Turn console/BLE text into the key's type (then ``validate``)."""
    spec = SCHEMA.get(key)
    if spec is None:
        raise ConfigError(key, "unknown key")
    typ = spec[0]
    if typ is bool:
        t = text.strip().lower()
        if t in ("1", "true", "on", "yes"):
            return True
        if t in ("0", "false", "off", "no"):
            return False
        raise ConfigError(key, "must be true or false, got %r" % (text,))
    if typ is int:
        try:
            n = int(text.strip())
        except ValueError:
            raise ConfigError(key, "must be an integer, got %r" % (text,)) from None
        return validate(key, n)
    return validate(key, text)


class Config:
    """Validated settings backed by one JSON file (``path``; None keeps them in RAM only)."""

    def __init__(self, path=None, values=None):
        self.path = path
        self._v = defaults()
        if values:
            for k in values:
                self._v[k] = validate(k, values[k])

    def get(self, key):
        if key not in self._v:
            raise ConfigError(key, "unknown key")
        return self._v[key]

    def __getitem__(self, key):
        return self.get(key)

    def set(self, key, value):
        """Validate, store and persist one value.  Returns True if it applies without reboot."""
        self.update({key: value})
        return is_live(key)

    def update(self, changes):
        """Validate every change first (all or nothing), then persist once.

        Returns the keys whose new value needs a reboot to take effect.
        """
        checked = {}
        for k in changes:
            checked[k] = validate(k, changes[k])
        old = self._v
        new = dict(old)
        new.update(checked)
        self._v = new
        try:
            self.save()
        except OSError:
            self._v = old  # not on flash: do not pretend it is set
            raise
        return [k for k in checked if not is_live(k) and old[k] != checked[k]]

    def save(self):
        """Write the file atomically (tmp + rename); readers see the old or the new file."""
        if self.path is None:
            return
        fsutil.atomic_write(self.path, self.to_json().encode())

    def to_json(self):
        """The whole configuration as JSON text, one key per line, secrets included."""
        keys = sorted(self._v)
        parts = []
        for k in keys:
            parts.append("  %s: %s" % (json.dumps(k), json.dumps(self._v[k])))
        return "{\n" + ",\n".join(parts) + "\n}\n"

    def redacted(self):
        """A dict safe to print or log: secret values set are replaced by "***"."""
        out = {}
        for k in self._v:
            v = self._v[k]
            out[k] = _REDACTED if (is_secret(k) and v != "") else v
        return out

    def __repr__(self):
        return "Config(%r)" % (self.redacted(),)

    __str__ = __repr__


def load(path):
    """Defaults merged with the JSON file at ``path`` (missing file: all defaults).

    A file cut between write and rename on a FAT volume is read back from
    ``path.tmp``.  Bad JSON, a non-object, unknown keys and bad values raise
    ConfigError (the key, or "file" for the file as a whole).
    """
    data = fsutil.read_bytes(path, _MAX_FILE + 1)
    if data is None:
        data = fsutil.read_bytes(path + fsutil.TMP_SUFFIX, _MAX_FILE + 1)
    if data is None:
        return Config(path)
    if len(data) > _MAX_FILE:
        raise ConfigError("file", "%s is larger than %d bytes" % (path, _MAX_FILE))
    try:
        obj = json.loads(data)
    except ValueError:
        raise ConfigError("file", "%s is not valid JSON" % path) from None
    if not isinstance(obj, dict):
        raise ConfigError("file", "%s must hold one JSON object" % path)
    return Config(path, obj)
