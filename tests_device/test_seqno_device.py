"""tlog.seqno on the MicroPython unix port: never reused across simulated power cuts."""

import os

import tlogfs

from tlog.seqno import SeqNo


def test_never_reused_across_cuts():
    d = tlogfs.tmpdir("seq")
    p = d + "/seq"
    used = []
    for boot in range(12):
        s = SeqNo(p, block=5)
        for _ in range(boot % 7):
            used.append(s.next())
    assert used == sorted(used)
    assert len(set(used)) == len(used) == sum(b % 7 for b in range(12))
    tlogfs.rmtree(d)


def test_torn_lease_recovers_from_floor():
    d = tlogfs.tmpdir("seqf")
    p = d + "/seq"
    SeqNo(p, block=5).next()
    tlogfs.write(p, b"junk")
    s = SeqNo(p, floor=99)
    assert s.recovered and s.next() == 100
    tlogfs.rmtree(d)


def test_lost_lease_resumes_above_the_spool():
    from tlog import records as R
    from tlog.config import Config
    from tlog.spool import from_config

    d = tlogfs.tmpdir("seqs")
    cfg = Config(None, {"spool_max_bytes": 16384, "spool_max_segments": 4})
    sp = from_config(d + "/spool", cfg)
    seq = SeqNo(d + "/seqno", block=16, floor=sp.max_seq)
    r = R.Record()
    buf = bytearray(R.PACKED_MAX)
    for _ in range(40):
        r.seq = seq.next()
        r.set_time(1700000000, R.TS_GNSS)
        sp.append(buf[: R.pack_into(r, buf)])
    sp.ack(sp.peek_batch())  # some delivered
    sp.close()
    os.remove(d + "/seqno")
    sp = from_config(d + "/spool", cfg)
    seq = SeqNo(d + "/seqno", block=16, floor=sp.max_seq)
    assert sp.max_seq == 39 and seq.recovered and seq.next() == 40
    tlogfs.rmtree(d)
