"""tlog.ota + boot.py on MicroPython: offer checks, chunks, resume, verify, switch, probation,
rollback, the image path through a file partition, and power cuts at every block write of
the switch and of the rollback (littlefs on a RAM block device, as the spool's test)."""

import binascii
import hashlib
import json
import os

import boot
import tlogfs
from tlog import ota as ota_mod
from tlog import otastore
from tlog.config import Config

KEY = "0123456789abcdef-fleet"
OLD = {"atmq/a.py": b"A = 1\n", "tlog/b.py": b"B = 1\n"}
NEW = {"atmq/a.py": b"A = 2\n", "tlog/b.py": b"B = 2\n", "tlog/c.py": b"C = 2\n" * 50}


def hexsha(d):
    return binascii.hexlify(hashlib.sha256(d).digest()).decode()


def bundle(files, v="1.1.0", **over):
    """(offer message, stream) of a files bundle, built as tools/ota.py builds it."""
    names = sorted(files)
    man = {"fmt": ota_mod.FORMAT, "v": over.get("v", v), "board": over.get("board", "unix"),
           "arch": over.get("arch", ota_mod.device_arch()),
           "files": [[p, len(files[p]), hexsha(files[p])] for p in names]}
    mj = json.dumps(man).encode()
    stream = len(mj).to_bytes(4, "big") + mj + b"".join(files[p] for p in names)
    hdr = {"fmt": ota_mod.FORMAT, "kind": "files", "v": v, "board": "unix",
           "arch": ota_mod.device_arch(), "mpy": ota_mod.device_mpy(), "min_from": "0",
           "size": len(stream), "sha256": hexsha(stream),
           "unpacked": sum(len(files[p]) for p in names), "force": False}
    hdr.update(over)
    return offer(hdr), stream


def offer(hdr, key=KEY):
    hb = json.dumps(hdr).encode()
    return b"OFFER " + binascii.hexlify(ota_mod.hmac_sha256(key.encode(), hb)) + b" " + hb


def chunk(sid, off, data, enc="bin", crc=None):
    c = binascii.crc32(data) & 0xFFFFFFFF if crc is None else crc
    if enc == "b64":
        return b"B %s %d %08x " % (sid.encode(), off, c) + binascii.b2a_base64(data)[:-1]
    return b"C %s %d %08x " % (sid.encode(), off, c) + data


class Spool:
    def __init__(self, used=0):
        self.used = used

    def depth_bytes(self):
        return self.used


class Uplink:
    sent = 0


class Client:
    def __init__(self):
        self.pubs = []
        self.up = True
        self.published = 0

    def isconnected(self):
        return self.up

    async def publish(self, topic, payload, qos=1, retain=False):
        self.pubs.append((topic, bytes(payload)))


class Ctx:
    def __init__(self, used=0, **cfg):
        vals = {"ota_key": KEY, "spool_max_bytes": 65536}
        vals.update(cfg)
        self.cfg = Config(None, vals)
        self.spool = Spool(used)
        self.uplink = Uplink()
        self.client = None
        self.reboots = 0

    async def reboot(self):
        self.reboots += 1


class Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


async def _nosleep(ms):
    pass


def make(root, ctx=None, enc="bin", clock=None):
    o = ota_mod.Ota(ctx or Ctx(), root, "unix", enc, 1024, 512, clock=clock or Clock(),
                    sleep=_nosleep)
    o.bind("tlog/dev/")
    return o


def texts(o):
    return [t for t, _p in o._out]


def install(root, files):
    for p in files:
        d = root + "/lib/" + p
        _mk(d[: d.rfind("/")])
        tlogfs.write(d, files[p])


def _mk(path):
    from tlog import fsutil

    fsutil.makedirs(path)


def tree(root):
    out = {}
    for pkg in ("atmq", "tlog"):
        d = root + "/lib/" + pkg
        if otastore.isdir(d):
            for n in os.listdir(d):
                out[pkg + "/" + n] = tlogfs.read(d + "/" + n)
    return out


async def send_all(o, msg, stream, step=300, enc="bin"):
    await o.handle(o.topic, msg)
    sid = o.sid
    for off in range(0, len(stream), step):
        await o.handle(o.topic, chunk(sid, off, stream[off : off + step], enc))


def test_hmac_matches_rfc4231():
    got = ota_mod.hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert binascii.hexlify(got) == (b"5bdcc146bf60754e6a042426089575c7"
                                     b"5a003f089d2739839dec58b964ec3843")
    long_key = b"\xaa" * 131  # longer than the block: hashed first (RFC 4231 case 6)
    got = ota_mod.hmac_sha256(long_key, b"Test Using Larger Than Block-Size Key - Hash Key First")
    assert binascii.hexlify(got)[:16] == b"60e431591ee0b67f"


async def test_refusals_touch_nothing():
    root = tlogfs.tmpdir("otaref")
    o = make(root)
    good, stream = bundle(NEW)
    cases = [
        (offer({"v": "1.1.0"}, key="another-fleet-key-x"), "bad signature"),
        (bundle(NEW, board="lilygo-t-a7670")[0], "wrong board"),
        (bundle(NEW, arch="armv7m")[0], "wrong arch"),
        (bundle(NEW, mpy=99)[0], ".mpy version"),
        (bundle(NEW, v="0.1.0")[0], "not newer"),
        (bundle(NEW, v="0.0.9", force=True)[0], None),  # forced: accepted (then replaced)
        (bundle(NEW, min_from="0.2.0")[0], "older than"),
        (bundle(NEW, unpacked=1 << 40)[0], "bytes of flash"),
        (good[:-3], "bad signature"),
        (b"OFFER zz {}", "bad signature"),
        (b"HELLO", "unknown message"),
    ]
    for msg, want in cases:
        o._out = []
        await o.handle(o.topic, msg)
        t = texts(o)
        if want is None:
            assert t and t[-1].startswith("receiving 0 %"), t
            continue
        assert len(t) == 1 and t[0].startswith("refused: ") and want in t[0], (want, t)
    # spool nearly full: refused, and the transfer in progress is kept
    o2 = make(tlogfs.tmpdir("otaref2"), Ctx(used=40000, ota_spool_max_pct=50))
    await o2.handle(o2.topic, good)
    assert "spool nearly full" in texts(o2)[-1]
    assert o2.hdr is None
    # no key: OTA is off
    o3 = make(tlogfs.tmpdir("otaref3"), Ctx(ota_key=""))
    await o3.handle(o3.topic, good)
    assert "OTA is off" in texts(o3)[-1]
    # not our topic
    assert not await o.handle(b"tlog/dev/cmd", good)
    tlogfs.rmtree(root)


async def test_chunks_gap_crc_duplicate_and_resume_after_reboot():
    root = tlogfs.tmpdir("otachunk")
    clock = Clock()
    o = make(root, clock=clock)
    msg, stream = bundle(NEW)
    await o.handle(o.topic, msg)
    sid = o.sid
    assert o.recv == 0 and texts(o)[-1].startswith("receiving 0 % | sid=" + sid)
    await o.handle(o.topic, chunk(sid, 0, stream[:200]))
    await o.handle(o.topic, chunk(sid, 400, stream[400:600]))  # gap: asks for 200
    assert o.recv == 200 and "offset=200 " in texts(o)[-1]
    await o.handle(o.topic, chunk(sid, 200, stream[200:400], crc=1))  # corrupted
    assert o.recv == 200 and o.bad_chunks == 1
    await o.handle(o.topic, chunk(sid, 0, stream[:200]))  # duplicate: dropped
    await o.handle(o.topic, chunk("deadbeef", 200, stream[200:400]))  # another bundle
    assert o.recv == 200
    await o.handle(o.topic, chunk(sid, 200, stream[200:400], "b64"))  # text form (SM)
    assert o.recv == 400
    # power cut: a new Ota on the same flash resumes from the staged size
    o = make(root, clock=clock)
    assert o.state == "receiving" and o.recv == 400 and o.sid == sid
    assert o.state_text().startswith("receiving")
    o._out = []
    await o.handle(o.topic, msg)  # the host offers again: told where to go on from
    assert "offset=400 " in texts(o)[-1]
    for off in range(400, len(stream), 500):
        await o.handle(o.topic, chunk(sid, off, stream[off : off + 500]))
    assert o.recv == len(stream) and o._verify
    assert texts(o)[-1].startswith("receiving 100 %")
    tlogfs.rmtree(root)


async def test_bad_hash_is_refused_and_nothing_switched():
    root = tlogfs.tmpdir("otabad")
    install(root, OLD)
    o = make(root)
    msg, stream = bundle(NEW)
    bad = bytearray(stream)
    bad[-5] ^= 1  # a flipped bit the per-chunk CRC did not see (computed over bad data)
    await send_all(o, msg, bytes(bad))
    assert not await o.finish()
    assert "bad hash" in texts(o)[-1]
    assert not otastore.isdir(root + "/lib.new") and boot.read_json(root + "/ota/switch") is None
    assert boot.recover(root) == "none" and tree(root) == OLD
    # a manifest entry whose file hash is wrong (the bundle hash itself signed as is)
    files = dict(NEW)
    msg, stream = bundle(files)
    man_len = int.from_bytes(stream[:4], "big")
    man = json.loads(stream[4 : 4 + man_len])
    man["files"][0][2] = "0" * 64
    mj = json.dumps(man).encode()
    stream2 = len(mj).to_bytes(4, "big") + mj + stream[4 + man_len :]
    hdr = json.loads(msg.split(b" ", 2)[2])
    hdr["size"] = len(stream2)
    hdr["sha256"] = hexsha(stream2)
    await send_all(o, offer(hdr), stream2)
    assert not await o.finish()
    assert "bad hash for atmq/a.py" in texts(o)[-1], texts(o)
    assert tree(root) == OLD
    tlogfs.rmtree(root)


async def test_update_switch_probation_confirm():
    root = tlogfs.tmpdir("otaok")
    install(root, OLD)
    ctx = Ctx(ota_probation_s=60, ota_max_boots=3)
    o = make(root, ctx)
    msg, stream = bundle(NEW)
    await send_all(o, msg, stream)
    assert await o.finish()
    assert texts(o)[-1] == "verified | sid=%s v=1.1.0" % o.sid
    assert not os.listdir(root + "/lib.new") == []
    assert boot.recover(root) == "switched"
    assert tree(root) == NEW
    assert boot.read_json(root + "/ota/probation")["boots"] == 1
    assert tree_of(root + "/lib.old") == OLD
    # the new version runs: on probation until telemetry is delivered
    o = make(root, ctx)
    o.version = "1.1.0"  # the running version (tlog.version of the new tree)
    o._start_probation()
    assert texts(o)[-1].startswith("switched | v=1.1.0 from=0.1.0")
    assert o._probation_check(True) is None
    ctx.uplink.sent = 3
    assert o._probation_check(True) == "confirm"
    o.confirm()
    assert texts(o)[-1].startswith("confirmed | v=1.1.0")
    assert boot.read_json(root + "/ota/probation") is None
    assert not otastore.isdir(root + "/lib.old")
    assert boot.recover(root) == "none" and tree(root) == NEW
    # an offer now is refused as not newer, and a probation refuses offers
    tlogfs.rmtree(root)


def tree_of(d):
    out = {}
    for pkg in os.listdir(d):
        for n in os.listdir(d + "/" + pkg):
            out[pkg + "/" + n] = tlogfs.read(d + "/" + pkg + "/" + n)
    return out


async def test_probation_timeout_and_crash_count_roll_back():
    root = tlogfs.tmpdir("otarb")
    install(root, OLD)
    ctx = Ctx(ota_probation_s=30, ota_max_boots=2)
    clock = Clock()
    o = make(root, ctx, clock=clock)
    msg, stream = bundle(NEW)
    await send_all(o, msg, stream)
    assert await o.finish()
    assert boot.recover(root) == "switched"
    o = make(root, ctx, clock=clock)
    o.version = "1.1.0"
    o._start_probation()
    await o.handle(o.topic, bundle(NEW, v="1.2.0")[0])
    assert "on probation" in texts(o)[-1]
    clock.t = 31000
    why = o._probation_check(False)
    assert why == "no MQTT connection within 30 s", why
    await o.give_up(why)
    assert ctx.reboots == 1
    assert boot.recover(root) == "rolled back"
    assert tree(root) == OLD
    res = boot.read_json(root + "/ota/result")
    assert res["text"] == "rolled back: no MQTT connection within 30 s" and res["v"] == "0.1.0"
    o = make(root, ctx)  # the old version publishes the result once connected
    assert o.result["text"].startswith("rolled back")
    # crashes: boots counted by boot.py, rollback after max_boots without confirmation
    o.result = None
    boot.remove_marker(root + "/ota/result")
    o = make(root, ctx)
    await send_all(o, msg, stream)
    assert await o.finish()
    assert boot.recover(root) == "switched"  # boot 1
    assert boot.recover(root) == "probation"  # boot 2 (first crash)
    assert tree(root) == NEW
    assert boot.recover(root) == "rolled back"  # boot 3: 2 boots without confirmation
    assert tree(root) == OLD
    assert "not confirmed after 2 boots" in boot.read_json(root + "/ota/result")["text"]
    tlogfs.rmtree(root)


async def test_probation_of_a_version_that_did_not_start():
    root = tlogfs.tmpdir("otanot")
    install(root, OLD)
    _mk(root + "/ota")
    boot.write_json(root + "/ota/probation", {"v": "9.9.9", "from": "0.1.0", "sid": "x",
                                              "boots": 1})
    o = make(root)
    o._start_probation()
    assert o.probation is None and o.result["text"] == "rolled back: running 0.1.0, not 9.9.9"
    tlogfs.rmtree(root)


async def test_image_through_a_file_partition():
    root = tlogfs.tmpdir("otaimg")
    part = root + "/ota/part"
    _mk(part)
    tlogfs.write(part + "/size", b"32768")
    image = bytes((i * 7) & 0xFF for i in range(9000))
    hdr = {"fmt": ota_mod.FORMAT, "kind": "image", "v": "1.1.0", "board": "unix",
           "arch": ota_mod.device_arch(), "mpy": None, "min_from": "0", "size": len(image),
           "sha256": hexsha(image), "force": False}
    ctx = Ctx()
    o = make(root, ctx)
    await o.handle(o.topic, offer(hdr))
    sid = o.sid
    for off in range(0, 5000, 1000):  # across a 4 KiB block boundary, then a power cut
        await o.handle(o.topic, chunk(sid, off, image[off : off + 1000]))
    o = make(root, ctx)
    assert o.recv == 5000 and o.image.written == 5000
    for off in range(5000, len(image), 700):
        await o.handle(o.topic, chunk(sid, off, image[off : off + 700]))
    assert await o.finish()
    p1 = otastore.FilePartition(part, "ota_1", 32768)
    assert p1.booted() == "ota_1"
    assert tlogfs.read(p1.path)[: len(image)] == image
    assert boot.recover(root) == "switched"
    pr = boot.read_json(root + "/ota/probation")
    assert pr["kind"] == "image" and pr["old_part"] == "ota_0"
    # rollback: boot.py points the boot back at the old partition
    boot.write_json(root + "/ota/rollback", {"why": "test"})
    assert boot.recover(root) == "rolled back, reset"
    assert p1.booted() == "ota_0"
    tlogfs.rmtree(root)


# ---- power cuts at every block write (littlefs on a RAM block device) ---------------------

class CutFlash(tlogfs.RamFlash):
    """RamFlash where an erase is a step of its own: the power can go after any erase or
    program, and nothing at all reaches the chip after the cut (tlogfs.RamFlash lets the
    erase that follows the last accepted write through, which a chip without power cannot
    do: littlefs, still running on the dead chip, erases blocks it wrongly believes stale)."""

    def ioctl(self, op, arg):
        if op == 6:
            self.writes += 1
            if 0 <= self.cut_after < self.writes:
                return 0
        return tlogfs.RamFlash.ioctl(self, op, arg)


SMALL_OLD = {"atmq/a.py": b"A = 1\n" * 30, "tlog/b.py": b"B = 1\n" * 30}
SMALL_NEW = {"atmq/a.py": b"A = 2\n" * 40, "tlog/b.py": b"B = 2\n" * 20}


def _prepare(point):
    """A flash with the old tree in /lib and the new one staged with its switch marker."""
    base = CutFlash(blocks=96)
    tlogfs.mount(base, point, fresh=True)
    try:
        install(point, SMALL_OLD)
        for p in SMALL_NEW:
            d = point + "/lib.new/" + p
            _mk(d[: d.rfind("/")])
            tlogfs.write(d, SMALL_NEW[p])
        _mk(point + "/ota")
        boot.write_json(point + "/ota/switch", {"v": "1.1.0", "from": "0.1.0", "sid": "s1",
                                               "kind": "files", "max_boots": 3})
    finally:
        tlogfs.umount(point)
    return bytes(base.data)


def _cut_everywhere(image, point, action, check):
    """Run ``action`` with the power cut after k block erases/writes, for every k; then boot
    (``boot.recover`` with full power) and ``check`` the result."""
    probe = CutFlash(blocks=96, image=image)
    tlogfs.mount(probe, point)
    try:
        start = probe.writes
        action(point)
        needed = probe.writes - start
    finally:
        tlogfs.umount(point)
    assert needed > 3
    for k in range(needed + 1):
        dev = CutFlash(blocks=96, image=image)
        tlogfs.mount(dev, point)
        try:
            dev.cut_after = dev.writes + k
            try:
                action(point)
            except OSError:
                pass  # littlefs noticed the dead chip: what is on flash must still be whole
        finally:
            tlogfs.umount(point)
        dev.cut_after = -1
        tlogfs.mount(dev, point)  # power back: boot.py runs first
        try:
            boot.recover(point)
            check(point, k)
        finally:
            tlogfs.umount(point)
    return needed


def test_power_cut_at_every_block_write_of_the_switch():
    point = "/lfsota1"
    image = _prepare(point)

    def check(root, k):
        t = tree(root)
        assert t == SMALL_NEW, (k, sorted(t))  # the marker was there: always forward
        pr = boot.read_json(root + "/ota/probation")
        assert pr is not None and pr["v"] == "1.1.0", (k, pr)
        assert boot.read_json(root + "/ota/switch") is None, k
        assert tree_of(root + "/lib.old") == SMALL_OLD, k

    n = _cut_everywhere(image, point, boot.recover, check)
    print("switch: power cut at each of %d block writes" % n)


def test_power_cut_at_every_block_write_of_the_rollback():
    point = "/lfsota2"
    base = CutFlash(blocks=96, image=_prepare(point))
    tlogfs.mount(base, point)
    try:
        boot.recover(point)  # switched: new tree on probation
        boot.write_json(point + "/ota/rollback", {"why": "no telemetry"})
    finally:
        tlogfs.umount(point)
    image = bytes(base.data)

    def check(root, k):
        assert tree(root) == SMALL_OLD, k
        assert boot.read_json(root + "/ota/probation") is None, k
        assert boot.read_json(root + "/ota/rollback") is None, k
        assert boot.read_json(root + "/ota/result")["text"] == "rolled back: no telemetry", k
        assert not otastore.isdir(root + "/lib.bad"), k

    n = _cut_everywhere(image, point, boot.recover, check)
    print("rollback: power cut at each of %d block writes" % n)


def test_power_cut_before_the_marker_keeps_the_old_version():
    """Cut while the app stages the tree (no switch marker yet): boot changes nothing."""
    point = "/lfsota3"
    base = CutFlash(blocks=96)
    tlogfs.mount(base, point, fresh=True)
    try:
        install(point, SMALL_OLD)
        _mk(point + "/lib.new/atmq")
        tlogfs.write(point + "/lib.new/atmq/a.py", b"half")
        assert boot.recover(point) == "none"
        assert tree(point) == SMALL_OLD
    finally:
        tlogfs.umount(point)
