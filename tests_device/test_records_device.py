"""tlog.records on the MicroPython unix port: same bytes as on CPython, no allocation per digit."""

import json

from tlog import records as R

TS = 1795305598  # 2026-11-21T23:59:58Z

EXPECTED_FREEMATICS = (
    b"van-07#0:7,11:211126,10:23595800,A:-33.8688000,B:151.2093000,C:58.1,D:54.3,E:0,F:9,"
    b"12:1,10C:2150,10D:54,105:-12,24:1247,81:-83,82:-45,20:0.02;-0.01;1.00*1F"
)


def full_record(seq=7):
    r = R.Record()
    r.seq = seq
    r.set_time(TS, R.TS_GNSS)
    r.set_fix(-338688000, 1512093000, 581, 5432, 35960, 9, 14)
    r.add_obd(0x0C, 2150)
    r.add_obd(0x0D, 54)
    r.add_obd(0x05, -12)
    r.batt_mv = 12467
    r.rssi_dbm = -83
    r.temp_dc = -45
    r.acc_mg = (15, -5, 1004)
    return r


def packed(r):
    buf = bytearray(R.PACKED_MAX)
    return bytes(buf[: R.pack_into(r, buf)])


def test_pack_roundtrip():
    data = packed(full_record())
    q = R.Record()
    assert q.unpack(data) == len(data)
    assert (q.seq, q.ts, q.ts_src, q.lat_e7, q.lon_e7, q.alt_dm) == (
        7, TS, R.TS_GNSS, -338688000, 1512093000, 581)
    assert (q.speed_ckmh, q.course_cdeg, q.sats, q.hdop_x10) == (5432, 35960, 9, 14)
    assert (q.batt_mv, q.rssi_dbm, q.temp_dc, tuple(q.acc_mg)) == (12467, -83, -45,
                                                                   (15, -5, 1004))
    assert [q.obd(p) for p in (0x0C, 0x0D, 0x05)] == [2150, 54, -12]


def test_freematics_bytes_and_checksum():
    out = bytearray(600)
    n, k = R.encode_batch([packed(full_record())], "freematics", b"van-07", out)
    assert k == 1
    assert bytes(out[:n]) == EXPECTED_FREEMATICS
    body = bytes(out[: n - 3])
    assert "%02X" % (sum(body) & 0xFF) == bytes(out[n - 2 : n]).decode()


def test_json_parses_back():
    out = bytearray(1024)
    n, k = R.encode_batch([packed(full_record(1)), packed(full_record(2))], "json", "van-07",
                          out)
    arr = json.loads(bytes(out[:n]))
    assert k == 2 and [o["seq"] for o in arr] == [1, 2]
    assert arr[0]["fix"]["lat_e7"] == -338688000 and arr[0]["obd"]["0C"] == 2150
    assert arr[0]["ts_src"] == "gnss" and arr[0]["dev"] == "van-07"


def test_bad_value_named():
    try:
        R.Record().set_fix(0, 1800000001)
    except ValueError as e:
        assert "lon_e7" in str(e)
    else:
        raise AssertionError("no error")


def test_encode_into_preallocated_buffer_allocates_nothing():
    import gc

    r = R.Record()
    r.seq = 12345
    r.set_time(812, R.TS_UPTIME)  # small ints only: the ESP32 would box >= 2**30
    r.batt_mv = 12000
    r.rssi_dbm = -70
    r.add_obd(0x0C, 900)
    out = bytearray(512)
    R.encode_freematics(r, out)
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(20):
        R.encode_freematics(r, out)
        R.encode_json(r, out)
    per = (gc.mem_alloc() - before) // 20
    print("alloc per freematics+json encode:", per, "B")
    assert per == 0  # digits go straight into the buffer: no str, no slices


def test_a_record_cut_short_is_a_valueerror():
    """Flags that announce parts the record does not hold: ValueError (the uplink skips an
    unreadable record on it), not MicroPython's IndexError from buf[p] past the end."""
    r = R.Record()
    for flags in (0x04, 0x08, 0x10, 0x20, 0x40, 0x80):
        try:
            r.unpack(bytes([R.FORMAT_VERSION, flags]) + bytes(8))
        except ValueError as e:
            assert "truncated" in str(e), (flags, e)
        else:
            raise AssertionError("no error for flags 0x%02x" % flags)
    try:  # two OBD PIDs announced, one there
        r.unpack(bytes([R.FORMAT_VERSION, 0x80]) + bytes(8) + b"\x02\x0c\x00\x00\x00\x00")
    except ValueError as e:
        assert "truncated" in str(e), e
    else:
        raise AssertionError("no error for a cut OBD list")
