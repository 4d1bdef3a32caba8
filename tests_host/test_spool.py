"""tlog.spool on CPython: order, at-least-once across reboots, power cuts at every byte, bounds."""

import os
import shutil

import pytest

from tlog import spool as spool_mod
from tlog.spool import Spool

SMALL = dict(
    max_bytes=2048, max_segments=4, batch_max_records=4, batch_max_bytes=256, max_record=64
)


def rec(i):
    return b"record-%04d" % i


def open_spool(path, **kw):
    args = dict(SMALL)
    args.update(kw)
    return Spool(str(path), **args)


def payloads(batch):
    return [bytes(p) for p in batch]


def drain(sp, limit=10000):
    out = []
    for _ in range(limit):
        b = sp.peek_batch()
        if not len(b):
            return out
        out.extend(payloads(b))
        sp.ack(b)
    raise AssertionError("drain did not finish")


def seg_files(path):
    return sorted(n for n in os.listdir(path) if n.endswith(".seg"))


def test_append_peek_ack_in_order(tmp_path):
    sp = open_spool(tmp_path)
    for i in range(10):
        sp.append(rec(i))
    b = sp.peek_batch()
    assert payloads(b) == [rec(i) for i in range(4)]
    # peek without ack: the same records again
    assert payloads(sp.peek_batch()) == [rec(i) for i in range(4)]
    assert sp.ack(sp.peek_batch()) == 4
    assert payloads(sp.peek_batch(max_records=2)) == [rec(4), rec(5)]
    assert sp.stats()["depth"] == 6
    assert drain(sp) == [rec(i) for i in range(4, 10)]
    st = sp.stats()
    assert (st["depth"], st["appended"], st["acked"], st["dropped"]) == (0, 10, 10, 0)
    assert len(sp.peek_batch()) == 0


def test_batch_respects_max_bytes(tmp_path):
    sp = open_spool(tmp_path)
    for i in range(4):
        sp.append(bytes([65 + i]) * 40)
    b = sp.peek_batch(max_bytes=100)
    assert payloads(b) == [b"A" * 40, b"B" * 40]
    assert b.nbytes == 80
    sp.ack(b)
    assert payloads(sp.peek_batch(max_bytes=100)) == [b"C" * 40, b"D" * 40]


def test_ack_twice_is_harmless(tmp_path):
    sp = open_spool(tmp_path)
    for i in range(6):
        sp.append(rec(i))
    b = sp.peek_batch()
    assert sp.ack(b) == 4
    b.count = 4  # a stale copy of the same batch
    assert sp.ack(b) == 0
    assert sp.ack(b) == 0
    assert drain(sp) == [rec(4), rec(5)]


def test_partial_ack_removes_only_the_published_prefix(tmp_path):
    sp = open_spool(tmp_path)
    for i in range(30):
        sp.append(rec(i))
    b = sp.peek_batch()
    assert sp.ack(b, 3) == 3
    assert payloads(sp.peek_batch()) == [rec(i) for i in range(3, 7)]
    sp = open_spool(tmp_path)  # and the cursor was persisted at the prefix
    b = sp.peek_batch()
    assert payloads(b) == [rec(i) for i in range(3, 7)]
    assert sp.ack(b, 1) == 1
    assert drain(sp) == [rec(i) for i in range(4, 30)]


def test_reboot_mid_drain_resends_only_unacked_batch(tmp_path):
    sp = open_spool(tmp_path)
    for i in range(10):
        sp.append(rec(i))
    sp.ack(sp.peek_batch())  # 0..3 confirmed
    assert payloads(sp.peek_batch()) == [rec(i) for i in range(4, 8)]  # in flight, no PUBACK
    del sp  # power cut: no close()
    sp = open_spool(tmp_path)
    assert payloads(sp.peek_batch()) == [rec(i) for i in range(4, 8)]
    assert drain(sp) == [rec(i) for i in range(4, 10)]
    assert sp.stats()["acked"] == 10


def test_survives_reboot_and_keeps_appending(tmp_path):
    sp = open_spool(tmp_path)
    for i in range(30):
        sp.append(rec(i))
    sp.close()
    sp = open_spool(tmp_path)
    for i in range(30, 60):
        sp.append(rec(i))
    assert sp.stats()["segments"] > 1  # rolled over
    assert drain(sp) == [rec(i) for i in range(60)]
    assert seg_files(tmp_path) == seg_files(tmp_path)[-1:]  # consumed segments deleted


def _frame_len(payload):
    return len(payload) + 8


def _reference_dir(tmp_path, n_before):
    """A spool folder holding n_before committed records, and the one-segment file's bytes."""
    ref = tmp_path / "ref"
    sp = open_spool(ref)
    for i in range(n_before):
        sp.append(rec(i))
    sp.close()
    (seg,) = seg_files(ref)
    before = (ref / seg).read_bytes()
    sp = open_spool(ref)
    sp.append(rec(n_before))
    after = (ref / seg).read_bytes()
    assert after[: len(before)] == before
    assert len(after) - len(before) == _frame_len(rec(n_before))
    return ref, seg, before, after


@pytest.mark.parametrize("filler", [b"", b"\xff", b"\x00"])
def test_power_cut_at_every_byte_of_a_record(tmp_path, filler):
    """Cut the last record's write at every byte (optionally with erased/zeroed flash after it).

    Earlier records must all survive, the torn one must be gone, opening must not
    raise, and the spool must accept and deliver new records afterwards.
    """
    n_before = 3
    ref, seg, before, after = _reference_dir(tmp_path, n_before)
    frame = after[len(before) :]
    for cut in range(len(frame)):
        d = tmp_path / ("cut%d" % cut)
        shutil.copytree(ref, d)
        torn = before + frame[:cut]
        if filler:
            torn += filler * (len(frame) - cut)  # the rest of the page, never programmed
        (d / seg).write_bytes(torn)
        sp = open_spool(d)
        st = sp.stats()
        assert st["depth"] == n_before, cut
        assert st["repaired"] == (1 if len(torn) > len(before) else 0), cut
        assert (d / seg).read_bytes() == before, cut  # torn tail cut off on flash
        sp.append(b"after-cut")
        got = drain(sp)
        assert got == [rec(i) for i in range(n_before)] + [b"after-cut"], cut
    # and the uncut file holds all four
    sp = open_spool(ref)
    assert drain(sp) == [rec(i) for i in range(n_before + 1)]


def test_power_cut_mid_drain_at_every_byte(tmp_path):
    """A torn append while a drain is under way: acked records stay acked."""
    ref, seg, before, after = _reference_dir(tmp_path, 6)
    sp = open_spool(ref)
    sp.ack(sp.peek_batch(max_records=2))
    del sp
    frame = after[len(before) :]
    for cut in range(0, len(frame), 3):
        d = tmp_path / ("m%d" % cut)
        shutil.copytree(ref, d)
        (d / seg).write_bytes(before + frame[:cut])
        sp = open_spool(d)
        assert drain(sp) == [rec(i) for i in range(2, 6)], cut


class _FailingFile:
    """A segment file that accepts ``budget`` bytes and then fails like a dying flash."""

    def __init__(self, path, budget):
        self._f = open(path, "ab")
        self._budget = budget

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def write(self, data):
        data = bytes(data)
        if len(data) > self._budget:
            self._f.write(data[: self._budget])
            self._budget = 0
            raise OSError(28, "ENOSPC")
        self._budget -= len(data)
        return self._f.write(data)

    def flush(self):
        self._f.flush()


def test_write_error_keeps_records_staged_and_loses_none(tmp_path, monkeypatch):
    sp = open_spool(tmp_path, flush_records=4, ram_bytes=512)
    for i in range(3):
        sp.append(rec(i))
    assert sp.stats()["staged"] == 3
    frame = _frame_len(rec(0))
    real_open = open

    def failing_open(path, mode="r"):
        if mode == "ab":
            return _FailingFile(path, frame + 5)  # 1 frame + 5 bytes of the second
        return real_open(path, mode)

    monkeypatch.setattr(spool_mod, "open", failing_open, raising=False)
    sp.append(rec(3))  # triggers the flush that fails
    st = sp.stats()
    assert st["flash_errors"] == 1
    assert st["staged"] == 3  # rec 1..3 still in RAM; rec 0 reached flash
    monkeypatch.undo()
    assert drain(sp) == [rec(i) for i in range(4)]
    # and after a reboot nothing is duplicated or lost
    sp = open_spool(tmp_path)
    assert drain(sp) == []


def test_full_spool_drops_oldest_and_counts_persistently(tmp_path):
    sp = open_spool(tmp_path)  # 4 segments of 512 B; a frame is 19 B
    total = 400
    for i in range(total):
        sp.append(rec(i))
    st = sp.stats()
    assert st["flash_bytes"] <= 2048
    assert st["segments"] <= 4
    assert st["dropped"] > 0
    assert st["dropped"] + st["depth"] == total
    first_kept = st["dropped"]
    sp = open_spool(tmp_path)
    assert sp.stats()["dropped"] == first_kept  # persisted
    assert drain(sp) == [rec(i) for i in range(first_kept, total)]


def test_drop_of_an_in_flight_batch_is_not_counted_twice(tmp_path):
    sp = open_spool(tmp_path)
    for i in range(10):
        sp.append(rec(i))
    b = sp.peek_batch()
    assert payloads(b) == [rec(i) for i in range(4)]
    for i in range(10, 400):  # network down: spool wraps, the peeked records are dropped
        sp.append(rec(i))
    dropped = sp.stats()["dropped"]
    assert sp.ack(b) == 0  # the late PUBACK of records already dropped
    st = sp.stats()
    assert st["acked"] == 0 and st["dropped"] == dropped
    assert drain(sp) == [rec(i) for i in range(dropped, 400)]


def test_corrupt_crc_in_the_middle_skips_only_that_record(tmp_path):
    sp = open_spool(tmp_path)
    for i in range(10):
        sp.append(rec(i))
    sp.close()
    (seg,) = seg_files(tmp_path)
    data = bytearray((tmp_path / seg).read_bytes())
    frame = _frame_len(rec(0))
    data[5 * frame + 7 + 3] ^= 0x01  # one bit of record 5's payload
    (tmp_path / seg).write_bytes(bytes(data))
    sp = open_spool(tmp_path)
    assert sp.stats()["corrupt"] == 1
    assert sp.stats()["repaired"] == 0
    assert drain(sp) == [rec(i) for i in range(10) if i != 5]


def test_corrupt_length_in_the_middle_resyncs(tmp_path):
    sp = open_spool(tmp_path)
    for i in range(8):
        sp.append(rec(i))
    sp.close()
    (seg,) = seg_files(tmp_path)
    data = bytearray((tmp_path / seg).read_bytes())
    frame = _frame_len(rec(0))
    data[2 * frame + 1] = 0xFF  # record 2 claims 255+ bytes
    (tmp_path / seg).write_bytes(bytes(data))
    sp = open_spool(tmp_path)
    assert drain(sp) == [rec(i) for i in range(8) if i != 2]


def test_torn_cursor_file_resends_rather_than_skips(tmp_path):
    sp = open_spool(tmp_path)
    for i in range(6):
        sp.append(rec(i))
    sp.ack(sp.peek_batch())
    cur = tmp_path / "cursor"
    cur.write_bytes(cur.read_bytes()[:5])
    sp = open_spool(tmp_path)
    assert drain(sp) == [rec(i) for i in range(6)]  # at-least-once: all again


def test_cut_between_cursor_write_and_segment_delete(tmp_path):
    sp = open_spool(tmp_path)
    for i in range(60):
        sp.append(rec(i))
    backup = {n: (tmp_path / n).read_bytes() for n in seg_files(tmp_path)}
    assert len(backup) > 1
    got = []
    for _ in range(8):  # consume the first segment(s)
        b = sp.peek_batch()
        got.extend(payloads(b))
        sp.ack(b)
    for n, data in backup.items():  # the deletes "did not happen"
        (tmp_path / n).write_bytes(data)
    sp = open_spool(tmp_path)
    assert got + drain(sp) == [rec(i) for i in range(60)]


def test_staged_records_are_delivered_and_flushed_on_peek(tmp_path):
    sp = open_spool(tmp_path, flush_records=8)
    for i in range(3):
        sp.append(rec(i))
    assert seg_files(tmp_path) == []  # still in RAM
    assert payloads(sp.peek_batch()) == [rec(0), rec(1), rec(2)]
    assert sp.stats()["staged"] == 0


def test_bad_arguments_name_the_problem(tmp_path):
    sp = open_spool(tmp_path)
    with pytest.raises(ValueError, match="1..64"):
        sp.append(b"x" * 65)
    with pytest.raises(ValueError, match="1..64"):
        sp.append(b"")
    with pytest.raises(ValueError, match="max_segments"):
        Spool(str(tmp_path / "b"), max_segments=1)
    assert drain(sp) == []


def test_cursor_write_error_on_ack_means_resend_not_loss(tmp_path, monkeypatch):
    from tlog import fsutil

    sp = open_spool(tmp_path)
    for i in range(6):
        sp.append(rec(i))
    b = sp.peek_batch()

    def failing(path, data):
        raise OSError(5, "EIO")

    monkeypatch.setattr(fsutil, "atomic_write", failing)
    assert sp.ack(b) == 4  # the broker has them; RAM moves on
    assert sp.stats()["flash_errors"] == 1
    assert payloads(sp.peek_batch()) == [rec(4), rec(5)]
    monkeypatch.undo()
    sp = open_spool(tmp_path)  # reboot before any later cursor write: sent again
    assert drain(sp) == [rec(i) for i in range(6)]


def test_from_config_sizes_the_spool(tmp_path):
    from tlog import records as R
    from tlog.config import Config
    from tlog.spool import from_config

    cfg = Config(None, {"spool_max_bytes": 65536, "spool_max_segments": 8,
                        "batch_max_records": 10, "spool_flush_records": 3})
    sp = from_config(str(tmp_path), cfg)
    assert sp.max_record >= R.PACKED_MAX
    assert (sp.max_bytes, sp.max_segments, sp.flush_records) == (65536, 8, 3)
    for i in range(25):
        sp.append(b"%d" % i)
    assert sp.stats()["staged"] == 1  # 24 flushed in threes
    assert len(sp.peek_batch()) == 10


def test_three_hours_offline_at_1hz_loses_nothing(tmp_path):
    """10800 records of a typical packed size across many segments, one reboot, then a drain."""
    sp = Spool(str(tmp_path), max_bytes=1 << 20, max_segments=16, batch_max_records=32,
               batch_max_bytes=4096, max_record=128)
    body = b"x" * 52
    for i in range(10800):
        sp.append(b"%08d" % i + body)
        if i == 5000:
            sp = Spool(str(tmp_path), max_bytes=1 << 20, max_segments=16,
                       batch_max_records=32, batch_max_bytes=4096, max_record=128)
    st = sp.stats()
    assert st["dropped"] == 0 and st["depth"] == 10800 and st["segments"] > 8
    got = drain(sp)
    assert len(got) == 10800
    assert all(int(p[:8]) == i for i, p in enumerate(got))
    assert sp.stats()["segments"] == 1


# ---- the highest seq held (the SeqNo floor) -----------------------------------------------


def packed_rec(seq, ts=1700000000):
    from tlog import records as R

    r = R.Record()
    r.seq = seq
    r.set_time(ts, R.TS_GNSS)
    buf = bytearray(R.PACKED_MAX)
    return bytes(buf[: R.pack_into(r, buf)])


def seq_spool(path):
    from tlog.config import Config
    from tlog.spool import from_config

    cfg = Config(None, {"spool_max_bytes": 16384, "spool_max_segments": 4,
                        "batch_max_records": 8})
    return from_config(str(path), cfg)


def test_record_seq_reads_the_packed_form():
    from tlog.spool import record_seq

    assert record_seq(packed_rec(0)) == 0
    assert record_seq(packed_rec(0xFFFFFFFF)) == 0xFFFFFFFF
    assert record_seq(packed_rec(70000)) == 70000
    assert record_seq(b"record-0001") == -1  # not a packed record
    assert record_seq(b"\x01\x00\x05") == -1  # too short


def test_max_seq_from_appends_and_from_the_open_scan(tmp_path):
    sp = seq_spool(tmp_path)
    assert sp.max_seq == -1
    for s in (5, 9, 7):  # not necessarily in order (a clock or lease oddity)
        sp.append(packed_rec(s))
    assert sp.max_seq == 9 and sp.stats()["max_seq"] == 9
    sp.flush()
    (tmp_path / "cursor").unlink(missing_ok=True)  # only the segments left
    assert seq_spool(tmp_path).max_seq == 9  # from the scan


def test_max_seq_survives_the_records_being_acked_and_deleted(tmp_path):
    sp = seq_spool(tmp_path)
    for s in range(300):  # several segments
        sp.append(packed_rec(s))
    while len(sp.peek_batch()):
        sp.ack(sp.peek_batch())
    assert sp.depth() == 0
    sp.close()
    sp = seq_spool(tmp_path)
    assert sp.max_seq == 299 and sp.depth() == 0


def test_cursor_without_max_seq_is_still_read(tmp_path):
    from tlog import fsutil

    sp = seq_spool(tmp_path)
    for s in range(6):
        sp.append(packed_rec(s))
    b = sp.peek_batch(max_records=2)
    sp.ack(b)
    cur = tmp_path / "cursor"
    body = fsutil.unseal(cur.read_bytes())
    assert body is not None
    fields = body.split()
    assert len(fields) == 15  # + drop reasons (full, ram, lost), what flash held at the save
    cur.write_bytes(fsutil.seal(b" ".join(fields[:8])))  # an older firmware's cursor
    sp = seq_spool(tmp_path)
    assert sp.depth() == 4 and sp.max_seq == 5  # the records still tell it


def test_plain_spool_keeps_no_max_seq(tmp_path):
    sp = open_spool(tmp_path)
    sp.append(b"\x01\x00\xff\xff\xff\x7f....")  # looks like a record; no seq_of given
    assert sp.max_seq == -1


def test_peek_into_a_callers_buffer_leaves_the_records_at_its_end(tmp_path):
    """``peek_batch(into=)`` (the uplink's payload buffer, issue 11): at most ``max_bytes``
    of records read, left packed at the end of ``into``; the same positions to ack; the
    next plain peek reads into the batch's own buffer again."""
    sp = Spool(str(tmp_path), max_bytes=16384, max_segments=4, batch_max_records=8,
               batch_max_bytes=128)
    for i in range(6):
        sp.append(rec(i))
    out = bytearray(b"\xee" * 200)
    b = sp.peek_batch(0, 3 * len(rec(0)) + 2, None, memoryview(out))
    assert [bytes(p) for p in b] == [rec(i) for i in range(3)]
    assert bytes(out[200 - b.nbytes:]) == b"".join(rec(i) for i in range(3))
    assert sp.ack(b, 2) == 2
    b = sp.peek_batch(2)
    assert [bytes(p) for p in b] == [rec(2), rec(3)] and b.mv.obj is b.buf
