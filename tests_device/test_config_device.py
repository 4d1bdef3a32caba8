"""tlog.config on the MicroPython unix port: load/validate/set/redact with the real json and os."""

import tlogfs

from atmq.errors import ConfigError
from tlog import config as C


def test_defaults_valid_and_roundtrip():
    d = tlogfs.tmpdir("cfg")
    p = d + "/config.json"
    cfg = C.load(p)
    for k in C.SCHEMA:
        assert C.validate(k, cfg.get(k)) == cfg.get(k)
    assert cfg.set("mqtt_password", "pw-123") is False
    assert cfg.set("payload_format", "freematics") is True
    again = C.load(p)
    assert again.get("mqtt_password") == "pw-123"
    assert again.get("payload_format") == "freematics"
    assert again.redacted()["mqtt_password"] == "***"
    assert "pw-123" not in repr(again)
    tlogfs.rmtree(d)


def test_bad_values_name_the_key():
    d = tlogfs.tmpdir("cfgbad")
    p = d + "/config.json"
    for text, key in (
        ('{"mqtt_port": 70000}', "mqtt_port"),
        ('{"nope": 1}', "nope"),
        ('{"mqtt_tls": 1}', "mqtt_tls"),
        ('{"apn": "a\\"b"}', "apn"),
        ("{broken", "file"),
    ):
        tlogfs.write(p, text.encode())
        try:
            C.load(p)
        except ConfigError as e:
            assert e.key == key, (text, e.key)
            assert isinstance(e, ValueError)
        else:
            raise AssertionError("accepted " + text)
    tlogfs.rmtree(d)


class _RenameRefused:
    """The os module with a rename that always fails (a flash refusing every rename)."""

    def __init__(self, real):
        self._real = real

    def rename(self, a, b):
        raise OSError(5)

    def __getattr__(self, name):
        return getattr(self._real, name)


def test_a_set_whose_write_fails_keeps_the_old_values_in_ram_and_on_flash():
    from tlog import fsutil

    d = tlogfs.tmpdir("cfgfail")
    p = d + "/config.json"
    cfg = C.Config(p, {"mqtt_keepalive_s": 30})
    cfg.save()
    real = fsutil.os
    fsutil.os = _RenameRefused(real)
    try:
        cfg.update({"mqtt_keepalive_s": 90})
        raise AssertionError("a write that failed was reported as set")
    except OSError:
        pass
    finally:
        fsutil.os = real
    assert cfg.get("mqtt_keepalive_s") == 30
    assert C.load(p).get("mqtt_keepalive_s") == 30  # config.json was removed: .tmp is old
    tlogfs.rmtree(d)


def test_get_allocates_nothing_for_held_and_default_values():
    """Config holds only the values off their default (issue 11); ``get`` runs per batch,
    per publish and per sample, so a default read from the table allocates nothing, as
    the dict of every key did (a row[1:] slice was a new tuple per call)."""
    try:
        import micropython
        micropython.heap_lock  # noqa: B018 - the unix port has it; CPython has no module
    except (ImportError, AttributeError):
        return
    c = C.Config(None, {"mqtt_host": "h.example", "batch_max_records": 8})
    keys = ("mqtt_qos", "payload_format", "batch_max_records", "mqtt_host", "ota_spool_max_pct")
    want = [c.get(k) for k in keys]
    got = [None] * len(keys)
    micropython.heap_lock()
    try:
        for i in range(len(keys)):
            got[i] = c.get(keys[i])
    finally:
        micropython.heap_unlock()
    assert got == want == [1, "json", 8, "h.example", 50], got
