"""tlog.seqno on the MicroPython unix port: never reused across simulated power cuts."""

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
