"""tlog.config: defaults, validation naming the key, atomic persistence, redaction."""

import json
import os

import pytest

from atmq.errors import ConfigError
from tlog import config as C


def write(path, obj):
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)


def test_missing_file_gives_defaults(tmp_path):
    cfg = C.load(str(tmp_path / "cfg.json"))
    assert cfg.get("mqtt_port") == 8883
    assert cfg.get("payload_format") == "json"
    assert cfg["mqtt_qos"] == 1
    assert not (tmp_path / "cfg.json").exists()  # loading writes nothing


def test_every_default_is_valid_and_every_key_documented():
    doc = open(os.path.join(os.path.dirname(C.__file__), "CONFIG.md")).read()
    for key, value in C.defaults().items():
        assert C.validate(key, value) == value
        assert "`%s`" % key in doc, key


def test_file_values_merge_with_defaults(tmp_path):
    p = tmp_path / "cfg.json"
    write(p, {"mqtt_host": "broker.example.net", "mqtt_port": 1883, "mqtt_tls": False})
    cfg = C.load(str(p))
    assert (cfg.get("mqtt_host"), cfg.get("mqtt_port"), cfg.get("mqtt_tls")) == (
        "broker.example.net", 1883, False)
    assert cfg.get("interval_moving_s") == 1


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("mqtt_port", 0, "out of range"),
        ("mqtt_port", "1883", "integer"),
        ("mqtt_port", True, "integer"),
        ("mqtt_tls", 1, "true or false"),
        ("payload_format", "xml", "one of"),
        ("gnss_source", "GPS", "one of"),
        ("mqtt_qos", 3, "out of range"),
        ("mqtt_keepalive_s", 64801, "out of range"),
        ("batch_max_bytes", 10241, "out of range"),
        ("sim_pin", "12a4", "not allowed"),
        ("sim_pin", "12", "4 to 8"),
        ("apn", 'inter"net', "not allowed"),
        ("mqtt_password", "line\nbreak", "not allowed"),
        ("topic_prefix", "fleet/+/x", "not allowed"),
        ("topic_prefix", "/fleet", "'/'"),
        ("device_id", "car 1", "not allowed"),
        ("device_id", "x" * 33, "length"),
        ("tls_ca", "../ca.pem", "not allowed"),
    ],
)
def test_bad_values_name_the_key(tmp_path, key, value, words):
    p = tmp_path / "cfg.json"
    write(p, {key: value})
    with pytest.raises(ConfigError) as ei:
        C.load(str(p))
    assert ei.value.key == key
    assert key in str(ei.value) and words in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_unknown_key_is_refused(tmp_path):
    p = tmp_path / "cfg.json"
    write(p, {"mqtt_port": 1883, "mqtt_pasword": "typo"})
    with pytest.raises(ConfigError) as ei:
        C.load(str(p))
    assert ei.value.key == "mqtt_pasword" and "unknown" in str(ei.value)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "x" * 9000])
def test_bad_file_is_refused(tmp_path, text):
    p = tmp_path / "cfg.json"
    write(p, text)
    with pytest.raises(ConfigError) as ei:
        C.load(str(p))
    assert ei.value.key == "file"


def test_set_validates_persists_and_reports_live(tmp_path):
    p = tmp_path / "cfg.json"
    cfg = C.load(str(p))
    assert cfg.set("interval_moving_s", 2) is True  # applies without reboot
    assert cfg.set("mqtt_host", "10.0.0.1") is False  # needs a reconnect/reboot
    with pytest.raises(ConfigError):
        cfg.set("interval_moving_s", 0)
    assert cfg.get("interval_moving_s") == 2  # a refused set changes nothing
    again = C.load(str(p))
    assert again.get("interval_moving_s") == 2 and again.get("mqtt_host") == "10.0.0.1"
    assert not (tmp_path / "cfg.json.tmp").exists()


def test_update_is_all_or_nothing(tmp_path):
    p = tmp_path / "cfg.json"
    cfg = C.load(str(p))
    with pytest.raises(ConfigError) as ei:
        cfg.update({"mqtt_port": 1883, "obd_uart": 7})
    assert ei.value.key == "obd_uart"
    assert cfg.get("mqtt_port") == 8883
    assert not p.exists()
    assert cfg.update({"mqtt_port": 1883, "interval_moving_s": 3}) == ["mqtt_port"]


def test_a_cut_before_rename_keeps_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "cfg.json"
    cfg = C.load(str(p))
    cfg.set("apn", "old.apn")

    def no_rename(a, b):
        raise OSError(5, "EIO")

    monkeypatch.setattr(os, "rename", no_rename)
    monkeypatch.setattr(os, "remove", lambda path: None)
    with pytest.raises(OSError):
        cfg.set("apn", "new.apn")
    monkeypatch.undo()
    assert cfg.get("apn") == "old.apn"  # not pretended
    assert C.load(str(p)).get("apn") == "old.apn"


def test_only_tmp_left_after_a_cut_on_fat(tmp_path):
    p = tmp_path / "cfg.json"
    (tmp_path / "cfg.json.tmp").write_text(json.dumps({"apn": "from.tmp"}))
    assert C.load(str(p)).get("apn") == "from.tmp"


SECRETS = {
    "mqtt_password": "hunter2-mqtt",
    "apn_pass": "apn-secret-9",
    "sim_pin": "4321",
    "tls_key": "client-key.pem",
    "ota_key": "fleet-key-0123456789",
}


def test_redacted_hides_every_secret(tmp_path):
    p = tmp_path / "cfg.json"
    write(p, dict(SECRETS, mqtt_user="alice"))
    cfg = C.load(str(p))
    red = cfg.redacted()
    for k, v in SECRETS.items():
        assert cfg.get(k) == v
        assert red[k] == "***"
        assert v not in repr(cfg) and v not in str(cfg) and v not in json.dumps(red)
    assert red["mqtt_user"] == "alice"
    assert C.Config().redacted()["mqtt_password"] == ""  # unset stays visibly unset
    assert {k for k in C.SCHEMA if C.is_secret(k)} == set(SECRETS) | {"cmd_key"}


def test_errors_do_not_echo_secret_values_of_other_keys(tmp_path):
    p = tmp_path / "cfg.json"
    write(p, dict(SECRETS, mqtt_port=-1))
    with pytest.raises(ConfigError) as ei:
        C.load(str(p))
    for v in SECRETS.values():
        assert v not in str(ei.value)


def test_parse_text_for_console_commands():
    assert C.parse_text("mqtt_tls", "off") is False
    assert C.parse_text("mqtt_port", " 1883 ") == 1883
    assert C.parse_text("payload_format", "freematics") == "freematics"
    with pytest.raises(ConfigError, match="mqtt_port"):
        C.parse_text("mqtt_port", "abc")
    with pytest.raises(ConfigError, match="unknown"):
        C.parse_text("nope", "1")


def test_cross_checks_read_only_the_keys_they_name():
    """Config.check hands check_all the _CROSS keys alone (no copy of the whole config):
    every rule, with every modem variant, must find what it reads there."""
    from atmq import limits

    v = C.defaults()
    v.update(mqtt_host="broker.example.net", mqtt_user="u", mqtt_password="p")
    sub = {k: v[k] for k in C._CROSS}
    for variant in [None] + sorted(limits.LIMITS):
        C.check_all(sub, variant)  # a KeyError here: a rule reads a key not in _CROSS
    cfg = C.Config(None, {"mqtt_host": "h"})
    try:
        cfg.update({"spool_max_segments": 256, "spool_max_bytes": 16384})
        raise AssertionError("a spool geometry below one record per segment was accepted")
    except C.ConfigError as e:
        assert e.key == "spool_max_segments"
    assert cfg.get("spool_max_segments") == 16  # nothing changed


def test_a_set_whose_write_fails_leaves_ram_and_flash_on_the_old_values(tmp_path, monkeypatch):
    """update's rollback at every step where the write can fail: a MemoryError at each line
    of the file (a fresh device: no config.json yet, so a torn config.json.tmp is what the
    next boot reads) and a rename refused twice (the old config.json removed first): the
    set is refused, RAM keeps the old values and so does what the next boot loads."""
    change = {"mqtt_keepalive_s": 90, "interval_moving_s": 7}
    lines = len(C.Config(None).to_json().splitlines())
    real_dumps = json.dumps
    for step in range(2 * (lines - 2)):  # two json.dumps per key line
        path = str(tmp_path / ("m%d.json" % step))
        cfg = C.Config(path, {"mqtt_keepalive_s": 30})
        calls = [0]

        def dumps(obj, *a, _step=step, _calls=calls, **kw):
            _calls[0] += 1
            if _calls[0] == _step + 1:
                raise MemoryError
            return real_dumps(obj, *a, **kw)
        monkeypatch.setattr(C.json, "dumps", dumps)
        with pytest.raises(MemoryError):
            cfg.update(change)
        monkeypatch.setattr(C.json, "dumps", real_dumps)
        assert cfg.get("mqtt_keepalive_s") == 30 and cfg.get("interval_moving_s") == 1
        again = C.load(path)  # what the next boot runs on
        assert again.get("mqtt_keepalive_s") == 30 and again.get("interval_moving_s") == 1, step
    # the flash refuses every rename: _commit removed config.json before its second try
    path = str(tmp_path / "r.json")
    cfg = C.Config(path, {"mqtt_keepalive_s": 30})
    cfg.save()

    def refuse(src, dst):
        raise OSError(5, "EIO")
    monkeypatch.setattr(C.fsutil.os, "rename", refuse)
    with pytest.raises(OSError):
        cfg.update(change)
    monkeypatch.undo()
    assert cfg.get("mqtt_keepalive_s") == 30
    again = C.load(path)
    assert again.get("mqtt_keepalive_s") == 30 and again.get("interval_moving_s") == 1


def test_schema_names_every_table_row_in_order():
    """SCHEMA is a literal (frozen in flash, no heap: issue 11): the table's keys, in order."""
    assert C.SCHEMA == tuple(row[0] for row in C._TABLE)
    assert len(set(C.SCHEMA)) == len(C.SCHEMA)


def test_only_values_off_their_default_are_held_and_the_file_has_every_key(tmp_path):
    """Config holds the values that differ from the defaults (issue 11: a dict of every key
    was a 472-byte block for the whole boot); get, values, redacted and the file still
    say every key, in the same order as before."""
    path = str(tmp_path / "config.json")
    c = C.Config(path, {"mqtt_host": "h.example", "batch_max_records": 32, "mqtt_tls": True,
                        "mqtt_password": "pw"})
    assert sorted(c._v) == ["mqtt_host", "mqtt_password"]  # the others are their defaults
    assert c.get("batch_max_records") == 32 and c.get("mqtt_tls") is True
    assert list(c.values()) == list(C.SCHEMA) and list(c.redacted()) == list(C.SCHEMA)
    assert c.redacted()["mqtt_password"] == "***"
    c.set("batch_max_records", 8)
    assert c._v["batch_max_records"] == 8
    c.set("batch_max_records", 32)  # back to its default: not held
    assert "batch_max_records" not in c._v and c.get("batch_max_records") == 32
    text = open(path).read()
    assert sorted(json.loads(text)) == sorted(C.SCHEMA)
    d = C.load(path)
    assert d.values() == c.values() and sorted(d._v) == ["mqtt_host", "mqtt_password"]
    with pytest.raises(ConfigError, match="unknown key"):
        c.get("mqtt_hots")
