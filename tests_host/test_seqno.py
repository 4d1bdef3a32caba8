"""tlog.seqno: monotonic across reboots, never reused after a power cut, lease recovery."""

import os

import pytest

from tlog import fsutil
from tlog.seqno import SeqNo


def test_counts_from_zero_and_leases_in_blocks(tmp_path):
    p = str(tmp_path / "seq")
    s = SeqNo(p, block=10)
    assert [s.next() for _ in range(25)] == list(range(25))
    assert s.lease_end == 30
    assert s.peek() == 25


def test_clean_and_unclean_reboots_never_reuse(tmp_path):
    p = str(tmp_path / "seq")
    used = []
    for boot in range(20):
        s = SeqNo(p, block=8)
        used.extend(s.next() for _ in range(boot % 11))  # power cut anywhere in a block
    assert used == sorted(set(used))  # strictly increasing, no duplicate
    assert len(used) == sum(b % 11 for b in range(20))


def test_one_flash_write_per_block(tmp_path, monkeypatch):
    writes = []
    real = fsutil.atomic_write

    def counting(path, data):
        writes.append(data)
        real(path, data)

    monkeypatch.setattr(fsutil, "atomic_write", counting)
    s = SeqNo(str(tmp_path / "seq"), block=16)
    for _ in range(64):
        s.next()
    assert len(writes) == 4


def test_a_failed_lease_write_does_not_stop_numbering(tmp_path, monkeypatch):
    p = str(tmp_path / "seq")
    s = SeqNo(p, block=4)
    s.next()

    def failing(path, data):
        raise OSError(28, "ENOSPC")

    monkeypatch.setattr(fsutil, "atomic_write", failing)
    for _ in range(3):
        s.next()  # inside the lease: no write needed
    assert s.next() == 4 and s.lease_errors == 1  # from RAM: a record still gets a number
    monkeypatch.undo()
    # after a reboot the lease on flash says 4; the spool's highest seq (the record that
    # took 4 went there) is the floor, so 4 is not handed out twice
    assert SeqNo(p, floor=4).next() == 5


def test_torn_lease_file_falls_back_to_tmp_or_floor(tmp_path):
    p = tmp_path / "seq"
    s = SeqNo(str(p), block=100)
    s.next()
    good = p.read_bytes()
    assert fsutil.unseal(good) == b"100"
    # cut between writing the new lease to .tmp and the rename: .tmp holds the newer lease
    (tmp_path / "seq.tmp").write_bytes(fsutil.seal(b"200"))
    p.write_bytes(good[:3])  # and the main file torn
    s = SeqNo(str(p))
    assert s.next() == 200 and not s.recovered
    # both torn: resume above what the caller still sees (e.g. the newest spooled seq)
    p.write_bytes(b"garbage")
    (tmp_path / "seq.tmp").write_bytes(b"20")
    s = SeqNo(str(p), floor=4711)
    assert s.recovered and s.next() == 4712


def test_floor_wins_over_an_older_lease(tmp_path):
    p = str(tmp_path / "seq")
    SeqNo(p, block=10).next()
    assert SeqNo(p, floor=50).next() == 51


def test_bad_block():
    with pytest.raises(ValueError, match="block"):
        SeqNo("/nonexistent/seq", block=0)


def test_missing_file_with_a_floor_is_recovered(tmp_path):
    s = SeqNo(str(tmp_path / "seq"), floor=41)
    assert s.recovered and s.next() == 42
    s = SeqNo(str(tmp_path / "fresh"))
    assert not s.recovered and s.next() == 0  # a first boot is not a recovery


# ---- lost lease file: the spool's highest seq is the floor (as tlog.app wires it) ----------


def _spool(path):
    from tlog.config import Config
    from tlog.spool import from_config

    return from_config(str(path), Config(None, {"spool_max_bytes": 16384,
                                                "spool_max_segments": 4}))


def _packed(seq):
    from tlog import records as R

    r = R.Record()
    r.seq = seq
    r.set_time(1700000000 + seq, R.TS_GNSS)
    buf = bytearray(R.PACKED_MAX)
    return bytes(buf[: R.pack_into(r, buf)])


def _boot(tmp_path):
    sp = _spool(tmp_path / "spool")
    return sp, SeqNo(str(tmp_path / "seqno"), block=16, floor=sp.max_seq)


@pytest.mark.parametrize("acked", [0, 40, 100])
def test_lost_seqno_file_numbering_resumes_above_every_spooled_record(tmp_path, acked):
    sp, seq = _boot(tmp_path)
    for _ in range(100):
        sp.append(_packed(seq.next()))
    n = 0
    while n < acked:  # some or all delivered (and their segments deleted)
        b = sp.peek_batch(max_records=min(8, acked - n))
        n += sp.ack(b)
    sp.close()
    os.remove(str(tmp_path / "seqno"))  # the lease file is lost (flash fault, reflash)
    sp, seq = _boot(tmp_path)
    assert sp.max_seq == 99 and seq.recovered
    assert seq.next() == 100  # above every record made (0..99): the broker drops none


def test_clean_close_continues_without_a_gap(tmp_path):
    """A clean stop leases exactly up to the next number: the restart goes on from there
    (RECORDS.md: only a power cut leaves a gap)."""
    p = str(tmp_path / "seqno")
    s = SeqNo(p, block=64)
    assert [s.next() for _ in range(61)] == list(range(61))
    s.close()
    again = SeqNo(p, block=64)
    assert again.next() == 61 and not again.recovered
    cut = SeqNo(p, block=64)  # no close: a power cut skips the rest of the block
    assert cut.next() == 61 + 64
