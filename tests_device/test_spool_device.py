"""tlog.spool on the MicroPython unix port: the host test's core checks, plus real littlefs.

A folder under /tmp stands for flash (no fsync: flush + close); the littlefs
tests mount ``os.VfsLfs2`` on a RAM block device and cut its power after every
possible number of block writes during an append.
"""

import tlogfs

from tlog.spool import Spool

SMALL = {
    "max_bytes": 2048,
    "max_segments": 4,
    "batch_max_records": 4,
    "batch_max_bytes": 256,
    "max_record": 64,
}


def rec(i):
    return b"record-%04d" % i


def open_spool(path, **kw):
    args = dict(SMALL)
    args.update(kw)
    return Spool(path, **args)


def payloads(batch):
    return [bytes(p) for p in batch]


def drain(sp):
    out = []
    for _ in range(10000):
        b = sp.peek_batch()
        if not len(b):
            return out
        out.extend(payloads(b))
        sp.ack(b)
    raise AssertionError("drain did not finish")


def test_append_peek_ack_in_order():
    d = tlogfs.tmpdir("order")
    sp = open_spool(d)
    for i in range(10):
        sp.append(rec(i))
    assert payloads(sp.peek_batch()) == [rec(i) for i in range(4)]
    assert payloads(sp.peek_batch()) == [rec(i) for i in range(4)]
    assert sp.ack(sp.peek_batch()) == 4
    assert drain(sp) == [rec(i) for i in range(4, 10)]
    st = sp.stats()
    assert (st["depth"], st["appended"], st["acked"], st["dropped"]) == (0, 10, 10, 0)
    tlogfs.rmtree(d)


def test_reboot_mid_drain_resends_only_unacked_batch():
    d = tlogfs.tmpdir("reboot")
    sp = open_spool(d)
    for i in range(10):
        sp.append(rec(i))
    sp.ack(sp.peek_batch())
    assert payloads(sp.peek_batch()) == [rec(i) for i in range(4, 8)]
    sp = open_spool(d)  # power cut: the old object is just forgotten
    assert payloads(sp.peek_batch()) == [rec(i) for i in range(4, 8)]
    assert drain(sp) == [rec(i) for i in range(4, 10)]
    tlogfs.rmtree(d)


def test_power_cut_at_every_byte_of_a_record():
    d = tlogfs.tmpdir("cut")
    ref = d + "/ref"
    sp = open_spool(ref)
    for i in range(3):
        sp.append(rec(i))
    (seg,) = tlogfs.seg_files(ref)
    before = tlogfs.read(ref + "/" + seg)
    sp.append(rec(3))
    after = tlogfs.read(ref + "/" + seg)
    frame = after[len(before) :]
    assert len(frame) == len(rec(3)) + 8
    for cut in range(len(frame)):
        for filler in (b"", b"\xff"):
            c = d + "/c%d%s" % (cut, "f" if filler else "")
            tlogfs.copytree(ref, c)
            tlogfs.write(c + "/" + seg, before + frame[:cut] + filler * (len(frame) - cut))
            sp = open_spool(c)
            assert sp.stats()["depth"] == 3, cut
            assert tlogfs.read(c + "/" + seg) == before, cut
            sp.append(b"after-cut")
            assert drain(sp) == [rec(0), rec(1), rec(2), b"after-cut"], cut
    tlogfs.rmtree(d)


def test_full_spool_drops_oldest_and_counts():
    d = tlogfs.tmpdir("full")
    sp = open_spool(d)
    for i in range(400):
        sp.append(rec(i))
    st = sp.stats()
    assert st["dropped"] > 0 and st["dropped"] + st["depth"] == 400
    assert st["flash_bytes"] <= 2048 and st["segments"] <= 4
    first = st["dropped"]
    sp = open_spool(d)
    assert sp.stats()["dropped"] == first
    assert drain(sp) == [rec(i) for i in range(first, 400)]
    tlogfs.rmtree(d)


def test_corrupt_crc_in_the_middle():
    d = tlogfs.tmpdir("crc")
    sp = open_spool(d)
    for i in range(10):
        sp.append(rec(i))
    (seg,) = tlogfs.seg_files(d)
    data = bytearray(tlogfs.read(d + "/" + seg))
    data[5 * (len(rec(0)) + 8) + 10] ^= 0x01
    tlogfs.write(d + "/" + seg, data)
    sp = open_spool(d)
    assert sp.stats()["corrupt"] == 1
    assert drain(sp) == [rec(i) for i in range(10) if i != 5]
    tlogfs.rmtree(d)


def test_littlefs_spool_survives_remount():
    bdev = tlogfs.RamFlash()
    tlogfs.mount(bdev, "/lfs1", fresh=True)
    try:
        sp = open_spool("/lfs1/spool")
        for i in range(50):
            sp.append(rec(i))
        sp.ack(sp.peek_batch())
        tlogfs.umount("/lfs1")
        tlogfs.mount(bdev, "/lfs1")
        sp = open_spool("/lfs1/spool")
        assert drain(sp) == [rec(i) for i in range(4, 50)]
    finally:
        tlogfs.umount("/lfs1")


def test_littlefs_power_cut_at_every_block_write():
    """Cut power after k block writes of an append (and of the ack before it), for every k."""
    base = tlogfs.RamFlash()
    tlogfs.mount(base, "/lfs2", fresh=True)
    try:
        sp = open_spool("/lfs2/spool")
        for i in range(6):
            sp.append(rec(i))
    finally:
        tlogfs.umount("/lfs2")
    image = bytes(base.data)
    # How many block writes an ack + append take when nothing fails.
    probe = tlogfs.RamFlash(image=image)
    tlogfs.mount(probe, "/lfs2")
    try:
        sp = open_spool("/lfs2/spool")
        start = probe.writes
        sp.ack(sp.peek_batch(max_records=2))
        sp.append(rec(6))
        needed = probe.writes - start
    finally:
        tlogfs.umount("/lfs2")
    assert needed > 0
    for k in range(needed + 1):
        dev = tlogfs.RamFlash(image=image)
        tlogfs.mount(dev, "/lfs2")
        try:
            sp = open_spool("/lfs2/spool")
            dev.cut_after = dev.writes + k
            try:
                sp.ack(sp.peek_batch(max_records=2))
                sp.append(rec(6))
            except OSError:
                pass  # littlefs may notice the dead chip; the data must still be consistent
        finally:
            tlogfs.umount("/lfs2")
        dev.cut_after = -1
        tlogfs.mount(dev, "/lfs2")  # power back
        try:
            got = drain(open_spool("/lfs2/spool"))
        finally:
            tlogfs.umount("/lfs2")
        # acked or not, appended or not: never a loss of 2..5, never a duplicate, in order
        assert got in (
            [rec(i) for i in range(0, 6)],
            [rec(i) for i in range(2, 6)],
            [rec(i) for i in range(0, 7)],
            [rec(i) for i in range(2, 7)],
        ), (k, got)
