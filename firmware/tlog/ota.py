"""Over-the-air update of the application over the MQTT link, with rollback (issue 15).

Owns the device side of the protocol (tools/ota.py is the host side; README "OTA"):
receiving an offer and its chunks on ``<prefix>/<id>/ota``, staging them on
flash, resuming after a reconnect or a reboot from the last good offset,
verifying the signature, the bundle hash and every file hash, then asking
boot.py to switch; under probation, confirming the new version once it reached
MQTT and delivered telemetry, or asking boot.py to roll back.  Every stage is
reported on ``<prefix>/<id>/ota/status`` (retained, plain text so the SIM800,
which publishes inside quotes, can send it too):

  idle | v=1.0.0 board=unix arch=x64 chunk=984 enc=bin
  receiving 37 % | sid=1a2b3c4d offset=12345 size=33333 chunk=984 enc=bin
  verified | sid=... v=1.1.0            (then the board reboots into boot.py's switch)
  switched | v=1.1.0 from=1.0.0 sid=... (the new version, on probation)
  confirmed | v=1.1.0 sid=...
  rolled back: <why> | v=1.0.0 sid=...
  refused: <why> | sid=...

Messages on ``/ota``:

  OFFER <hmac hex> <header JSON>   header: fmt, kind (files|image), v, board, arch,
                                   mpy, min_from, size, sha256, unpacked, force
  C <sid> <offset> <crc32 hex> <raw bytes>     a chunk (CMQTT: binary payloads)
  B <sid> <offset> <crc32 hex> <base64>        a chunk as text (SM family: the
                                   message arrives inside a quoted URC line)

The signature is HMAC-SHA256 over the header's exact bytes with ``ota_key``; the
header carries the SHA-256 of the whole bundle, whose manifest carries every
file's SHA-256, so one check of the header covers every byte.  Refusals (bad
signature, wrong board/arch/mpy version, not newer unless ``force``, too old
to update from, larger than free flash, spool nearly full, a version on
probation) touch nothing: telemetry goes on and any transfer in progress is
kept.  The bundle stream is ``<u32 BE manifest length><manifest JSON><files>``
(files kind) or the raw image (image kind: written straight into the next app
partition through tlog/otastore.py).
"""

import asyncio
import binascii
import hashlib
import json
import sys

from atmq.compat import sleep_ms, ticks_diff, ticks_ms, wait_for_ms

from . import fsutil, otastore
from .version import VERSION

FORMAT = "tlog-ota/1"
_ARCHES = ("", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
           "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")
_HDR_ROOM = 40  # "C <sid> <offset> <crc> " with room to spare
_MARGIN = 32768  # flash kept free beyond what an update needs (spool, config, littlefs)
_MAX_BUNDLE = 4 * 1024 * 1024
_HASH_STEP = 2048
_NEED_REPEAT_MS = 2000  # the same "send from offset N" is not repeated faster than this
_ACK_EVERY = 2  # chunks between progress reports (the host keeps a window of 3)
_REBOOT_WAIT_MS = 15000  # time for "verified" to reach the broker before the reboot


def device_arch():
    """The native-code arch of this MicroPython (``sys.implementation._mpy`` bits 10+)."""
    mpy = getattr(sys.implementation, "_mpy", 0)
    i = mpy >> 10
    return _ARCHES[i] if i < len(_ARCHES) else "arch%d" % i


def device_mpy():
    return getattr(sys.implementation, "_mpy", 0) & 0xFF


def hmac_sha256(key, msg):
    """HMAC-SHA256 (RFC 2104) from hashlib.sha256: MicroPython has no hmac module."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = bytes(key) + bytes(64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def same(a, b):
    """Constant-time comparison of two byte strings (no early exit on the first mismatch)."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0


def parse_version(v):
    """"1.2.3" -> (1, 2, 3); ValueError for anything else."""
    if not isinstance(v, str) or not v:
        raise ValueError("version %s is not a string" % v)
    parts = v.split(".")
    if len(parts) > 4:
        raise ValueError("version %s has more than 4 parts" % v)
    return tuple(int(p) for p in parts)


def _text(s):
    # the SIM800 publishes inside quotes: no '"', no line ends; short enough for its tx_max
    s = str(s).replace('"', "'").replace("\r", " ").replace("\n", " ")
    return s[:300]


def read_json(path):
    b = fsutil.read_bytes(path, 8192)
    if b is None:
        b = fsutil.read_bytes(path + fsutil.TMP_SUFFIX, 8192)
    if b is None:
        return None
    try:
        v = json.loads(b)
    except ValueError:
        return None
    return v if isinstance(v, dict) else None


def write_json(path, obj):
    fsutil.atomic_write(path, json.dumps(obj).encode())


def remove_marker(path):
    fsutil.remove_quiet(path)
    fsutil.remove_quiet(path + fsutil.TMP_SUFFIX)


class Refused(Exception):
    """An offer or a bundle that must not be installed; the text goes to the status topic."""


def check_header(hdr, board, arch, mpy, current, force_ok=True):
    """Refuse a header that does not fit this device: returns nothing, raises Refused."""
    if hdr.get("fmt") != FORMAT:
        raise Refused("unknown bundle format %s (want %s)" % (hdr.get("fmt"), FORMAT))
    kind = hdr.get("kind")
    if kind not in ("files", "image"):
        raise Refused("unknown bundle kind %s" % kind)
    if hdr.get("board") != board:
        raise Refused("wrong board %s (this is %s)" % (hdr.get("board"), board))
    a = hdr.get("arch")
    if a != arch and not (kind == "files" and a == "py"):
        raise Refused("wrong arch %s (this is %s)" % (a, arch))
    if kind == "files" and a != "py" and hdr.get("mpy") != mpy:
        raise Refused(".mpy version %s does not load here (this runs %d)" % (hdr.get("mpy"),
                                                                            mpy))
    size = hdr.get("size")
    if not isinstance(size, int) or size <= 0 or size > _MAX_BUNDLE:
        raise Refused("bad size %s" % size)
    sha = hdr.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise Refused("bad sha256")
    try:
        new = parse_version(hdr.get("v"))
        low = parse_version(hdr.get("min_from") or "0")
        cur = parse_version(current)
    except ValueError as e:
        raise Refused(str(e)) from None
    if cur < low:
        raise Refused("version %s is older than %s, the oldest this bundle updates"
                      % (current, hdr.get("min_from")))
    if new <= cur and not (force_ok and hdr.get("force") is True):
        raise Refused("version %s is not newer than %s (force to install it)"
                      % (hdr.get("v"), current))


def check_path(p):
    """A manifest path: relative, inside the tree, plain characters."""
    if not isinstance(p, str) or not p or p[0] == "/" or len(p) > 96:
        return False
    for part in p.split("/"):
        if part in ("", ".", ".."):
            return False
    for c in p:
        if not ("a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9" or c in "_-./"):
            return False
    return True


class Ota:
    """The OTA task's state.  ``ctx`` is the app (cfg, spool, uplink, client, reboot);
    ``root`` the flash root; ``board`` the board's name; ``enc`` "bin" or "b64" (how
    chunks can reach this modem); ``payload_max``/``line_max`` the inbox's and the AT
    reader's limits, which bound a chunk."""

    def __init__(self, ctx, root, board, enc="bin", payload_max=1024, line_max=512,
                 clock=ticks_ms, sleep=sleep_ms):
        self.ctx = ctx
        self.root = root
        self.dir = root + "/ota"
        fsutil.makedirs(self.dir)
        self.board = board
        self.enc = enc
        self.payload_max = payload_max
        self.line_max = line_max
        self.arch = device_arch()
        self.mpy = device_mpy()
        self.version = VERSION
        self._clock = clock
        self._sleep = sleep
        self._t0 = clock()
        self.topic = self.status_topic = ""
        self._out = []  # [text, is_progress] waiting for the link
        self._busy = False  # q[0] is being published
        self._wake = asyncio.Event()  # a status queued or all bytes in: the task goes now
        self._last_need = (-1, 0)
        self._since_ack = 0
        self._verify = False
        self._seen_up = False
        self.state = "idle"
        self.hdr = None
        self.sid = ""
        self.recv = 0
        self.image = None  # otastore.ImageWriter while receiving an image
        self.old_part = None
        # counters (health, tests)
        self.chunks = 0
        self.bad_chunks = 0
        self.refusals = 0
        self.last_error = None
        self._load()

    # ---- state on flash ---------------------------------------------------------------------

    def _p(self, name):
        return self.dir + "/" + name

    def _load(self):
        """Resume: a stored offer and its staged bytes; a probation; a result to publish."""
        self.probation = read_json(self._p("probation"))
        self.result = read_json(self._p("result"))
        off = read_json(self._p("offer"))
        if off is None:
            return
        try:
            hdr = json.loads(off["header"])
            self._accept(hdr, resume=True)
        except (ValueError, KeyError, TypeError, OSError, Refused) as e:
            self.last_error = e
            self._discard()

    def _accept(self, hdr, resume=False):
        self.hdr = hdr
        self.sid = hdr["sha256"][:8]
        if hdr["kind"] == "image":
            part, cur = otastore.next_partition(self.root)
            if part is None:
                raise Refused("no OTA partition on this board (a files bundle installs here)")
            if hdr["size"] > part.size:
                raise Refused("image of %d bytes is larger than partition %s (%d bytes)"
                              % (hdr["size"], part.label, part.size))
            w = 0
            if resume:
                st = read_json(self._p("written")) or {}
                w = st.get("n", 0) if st.get("sid") == self.sid else 0
            self.image = otastore.ImageWriter(part, w)
            self.old_part = cur
            self.recv = w
        else:
            self.image = None
            n = fsutil.size(self._p("stage.bin"))
            self.recv = n if resume and n > 0 else 0
        self.state = "receiving"
        if self.recv >= hdr["size"]:
            self.recv = hdr["size"]
            self._verify = True

    def _discard(self):
        """Forget the transfer in progress (refused bundle, or replaced by a new offer)."""
        self.hdr = None
        self.sid = ""
        self.recv = 0
        self.image = None
        self.state = "idle"
        self._verify = False
        for n in ("offer", "written"):
            remove_marker(self._p(n))
        fsutil.remove_quiet(self._p("stage.bin"))
        otastore.rmtree(self.root + "/lib.new")

    # ---- status ------------------------------------------------------------------------------

    def chunk_max(self):
        """The largest chunk (raw bytes) this device takes: the inbox slot (CMQTT, binary),
        or the AT reader's line as base64 (SM family: ``+SMSUB: "<topic>","<message>"``)."""
        if self.enc == "b64":
            room = self.line_max - 14 - len(self.topic) - _HDR_ROOM
            return max(0, room // 4 * 3)
        return self.payload_max - _HDR_ROOM

    def _limits(self):
        return "chunk=%d enc=%s" % (self.chunk_max(), self.enc)

    def say(self, text, progress=False):
        """Queue a status for the link (a progress report replaces a queued progress)."""
        text = _text(text)
        q = self._out
        if progress and q and q[-1][1] and not (self._busy and len(q) == 1):
            q[-1][0] = text  # (never the one being published: it would be popped unsent)
        else:
            q.append([text, progress])
        if len(q) > 8:  # the link has been down a while: keep the newest
            del q[1 if self._busy else 0]
        self._wake.set()

    def progress_text(self):
        size = self.hdr["size"] if self.hdr else 0
        pct = self.recv * 100 // size if size else 0
        return "receiving %d %% | sid=%s offset=%d size=%d %s" % (
            pct, self.sid, self.recv, size, self._limits())

    def state_text(self):
        if self.state == "receiving":
            return self.progress_text()
        return "idle | v=%s board=%s arch=%s %s" % (self.version, self.board, self.arch,
                                                    self._limits())

    def _refuse(self, why, sid=""):
        self.refusals += 1
        self.last_error = why
        self.say("refused: %s | sid=%s v=%s" % (why, sid, self.version))

    # ---- messages ----------------------------------------------------------------------------

    def bind(self, base):
        """The device's topic base (``<prefix>/<id>/``): ``ota`` and ``ota/status``."""
        self.topic = base + "ota"
        self.status_topic = base + "ota/status"

    async def handle(self, topic, payload):
        """One message from the client; True when it was ours."""
        t = topic.encode() if isinstance(topic, str) else bytes(topic)
        if t != self.topic.encode():
            return False
        try:
            if payload[:6] == b"OFFER ":
                self._offer(bytes(payload))
            elif payload[:2] in (b"C ", b"B "):
                self._chunk(payload)
            else:
                self._refuse("unknown message (OFFER, C or B expected)")
        except OSError as e:  # flash full or failing: say so, keep the transfer for a retry
            self.last_error = e
            self.say("error: flash: %s | sid=%s offset=%d" % (e, self.sid, self.recv))
        return True

    def _offer(self, payload):
        parts = payload.split(b" ", 2)
        if len(parts) != 3:
            self._refuse("malformed offer")
            return
        key = self.ctx.cfg.get("ota_key")
        if not key:
            self._refuse("no ota_key configured: OTA is off")
            return
        if len(key) < 16:
            self._refuse("ota_key is shorter than 16 characters: OTA is off")
            return
        try:
            sig = binascii.unhexlify(parts[1])
        except ValueError:
            sig = b""
        if not same(sig, hmac_sha256(key.encode(), parts[2])):
            self._refuse("bad signature")
            return
        try:
            hdr = json.loads(parts[2])
            if not isinstance(hdr, dict):
                raise ValueError
        except ValueError:
            self._refuse("header is not a JSON object")
            return
        sid = str(hdr.get("sha256", ""))[:8]
        if self.hdr is not None and sid == self.sid:  # the host resumes: say where we are
            self.say(self.progress_text(), True)
            return
        pr = self.probation
        if pr is not None:
            self._refuse("version %s is on probation" % pr.get("v"), sid)
            return
        try:
            check_header(hdr, self.board, self.arch, self.mpy, self.version)
            self._room(hdr)
        except Refused as e:
            self._refuse(str(e), sid)
            return
        self._discard()
        otastore.rmtree(self.root + "/lib.old")  # a confirmed update's leftover
        try:
            self._accept(hdr)
        except Refused as e:
            self._discard()
            self._refuse(str(e), sid)
            return
        if hdr["kind"] == "files":
            with open(self._p("stage.bin"), "wb"):
                pass
        write_json(self._p("offer"), {"header": parts[2].decode()})
        self._since_ack = 0
        self.say(self.progress_text(), True)

    def _room(self, hdr):
        """Refuse when flash or the spool cannot take this update now."""
        cfg = self.ctx.cfg
        sp = self.ctx.spool
        cap = cfg.get("spool_max_bytes")
        pct = cfg.get("ota_spool_max_pct")
        used = sp.depth_bytes()
        if used * 100 > cap * pct:
            raise Refused("spool nearly full (%d of %d bytes waiting): the backlog goes first"
                          % (used, cap))
        if hdr["kind"] != "files":
            return
        unpacked = hdr.get("unpacked")
        if not isinstance(unpacked, int) or unpacked <= 0:
            raise Refused("bad unpacked size")
        free = otastore.free_bytes(self.root or "/")
        need = hdr["size"] + unpacked + _MARGIN
        if free >= 0 and need > free:
            raise Refused("bundle needs %d bytes of flash, %d are free" % (need, free))

    def _chunk(self, payload):
        if self.hdr is None or self.state != "receiving":
            return  # no transfer: a late chunk of a finished or refused one
        parts = bytes(payload[:_HDR_ROOM + 8]).split(b" ", 4)
        if len(parts) < 5:
            self.bad_chunks += 1
            return
        try:
            off = int(parts[2])
            crc = int(parts[3], 16)
        except ValueError:
            self.bad_chunks += 1
            return
        if parts[1].decode() != self.sid:
            return  # another bundle's chunk
        start = len(parts[0]) + len(parts[1]) + len(parts[2]) + len(parts[3]) + 4
        data = memoryview(payload)[start:]
        if parts[0] == b"B":
            try:
                data = binascii.a2b_base64(bytes(data))
            except ValueError:
                data = b""
                crc = -1
        if off != self.recv:
            # a gap, or a duplicate (the host went back after losing our reports): either
            # way it learns where we are (at most every 2 s for one offset)
            self._need()
            return
        if binascii.crc32(data) & 0xFFFFFFFF != crc or not len(data):
            self.bad_chunks += 1
            self._need(True)
            return
        size = self.hdr["size"]
        if off + len(data) > size:
            self.bad_chunks += 1
            self._refuse("chunk at %d runs past the bundle's %d bytes" % (off, size), self.sid)
            return
        if self.image is not None:
            self.image.write(data)
            self.recv = self.image.written
            write_json(self._p("written"), {"sid": self.sid, "n": self.recv})
        else:
            with open(self._p("stage.bin"), "ab") as f:
                f.write(data)
            self.recv += len(data)
        self.chunks += 1
        self._since_ack += 1
        if self.recv == size:
            self._verify = True
            self.say(self.progress_text(), True)
        elif self._since_ack >= _ACK_EVERY:
            self._since_ack = 0
            self.say(self.progress_text(), True)

    def _need(self, force=False):
        """Ask the host for what is missing (not more often than every 2 s per offset)."""
        now = self._clock()
        last_off, last_t = self._last_need
        if not force and last_off == self.recv and ticks_diff(now, last_t) < _NEED_REPEAT_MS:
            return
        self._last_need = (self.recv, now)
        self.say(self.progress_text(), True)

    # ---- verify, stage, switch ---------------------------------------------------------------

    async def _hash_file(self, path, start, n, out=None):
        """SHA-256 of ``n`` bytes of ``path`` from ``start`` (copied to ``out`` if given),
        yielding between pieces so sampling and telemetry go on."""
        h = hashlib.sha256()
        buf = bytearray(_HASH_STEP)
        with open(path, "rb") as f:
            f.seek(start)
            left = n
            while left > 0:
                k = min(left, _HASH_STEP)
                mv = memoryview(buf)[:k]
                got = f.readinto(mv)
                if got != k:
                    raise Refused("staged bundle is shorter than announced")
                h.update(mv)
                if out is not None:
                    out.write(mv)
                left -= k
                await self._sleep(0)
        return h.digest()

    async def finish(self):
        """All bytes are in: verify everything, stage the tree, ask boot.py to switch."""
        self._verify = False
        hdr = self.hdr
        img = self.image
        sid = self.sid
        if hdr is None:
            return False
        try:
            want = binascii.unhexlify(hdr["sha256"])
            if img is not None:
                got = img.sha256(hdr["size"])
            else:
                got = await self._hash_file(self._p("stage.bin"), 0, hdr["size"])
            if got != want:
                raise Refused("bad hash: the bundle's SHA-256 does not match its header")
            if hdr["kind"] == "files":
                await self._unpack(hdr)
        except Refused as e:
            self._discard()
            self._refuse(str(e), sid)
            return False
        except (OSError, ValueError, KeyError, TypeError) as e:
            self._discard()
            self._refuse("bundle unusable: %s" % e, sid)
            return False
        cfg = self.ctx.cfg
        sw = {"v": hdr["v"], "from": self.version, "kind": hdr["kind"], "sid": sid,
              "probation_s": cfg.get("ota_probation_s"), "max_boots": cfg.get("ota_max_boots")}
        if hdr["kind"] == "image":
            sw["old_part"] = self.old_part
        # the transfer's files go before the switch marker: from here only boot.py acts
        for n in ("offer", "written"):
            remove_marker(self._p(n))
        fsutil.remove_quiet(self._p("stage.bin"))
        write_json(self._p("switch"), sw)
        if img is not None:
            img.part.set_boot()
        self.state = "switching"
        self.say("verified | sid=%s v=%s" % (sid, hdr["v"]))
        return True

    async def _unpack(self, hdr):
        """Manifest checks, then every file into lib.new with its own SHA-256 checked (beside
        /lib: boot.py renames trees only within one folder)."""
        stage = self._p("stage.bin")
        with open(stage, "rb") as f:
            head = f.read(4)
            if len(head) != 4:
                raise Refused("bundle too short")
            mlen = int.from_bytes(head, "big")
            if mlen <= 0 or mlen > hdr["size"] - 4:
                raise Refused("bad manifest length")
            man = json.loads(f.read(mlen))
        for k in ("v", "board", "arch"):
            if man.get(k) != hdr.get(k):
                raise Refused("manifest %s %s differs from the header's" % (k, man.get(k)))
        files = man.get("files")
        if not isinstance(files, list) or not files:
            raise Refused("manifest lists no files")
        new = self.root + "/lib.new"
        otastore.rmtree(new)
        fsutil.makedirs(new)
        pos = 4 + mlen
        total = 0
        for ent in files:
            path, n, sha = ent[0], ent[1], ent[2]
            if not check_path(path) or not isinstance(n, int) or n < 0:
                raise Refused("bad manifest entry %s" % path)
            dst = new + "/" + path
            i = dst.rfind("/")
            fsutil.makedirs(dst[:i])
            with open(dst, "wb") as out:
                got = await self._hash_file(stage, pos, n, out)
            if binascii.hexlify(got).decode() != sha:
                raise Refused("bad hash for %s" % path)
            pos += n
            total += n
        if pos != hdr["size"]:
            raise Refused("manifest covers %d of %d bytes" % (pos, hdr["size"]))
        if total != hdr.get("unpacked"):
            raise Refused("unpacked size %d differs from the header's" % total)

    # ---- probation ---------------------------------------------------------------------------

    def _start_probation(self):
        pr = self.probation
        if pr is None:
            return
        if pr.get("v") != self.version:
            # the switch did not take (cut before set_boot, or the tree was not swapped)
            write_json(self._p("result"), {
                "text": "rolled back: running %s, not %s" % (self.version, pr.get("v")),
                "v": self.version, "sid": pr.get("sid")})
            remove_marker(self._p("probation"))
            self.probation = None
            self.result = read_json(self._p("result"))
            return
        self.say("switched | v=%s from=%s sid=%s boot=%s" % (pr.get("v"), pr.get("from"),
                                                            pr.get("sid"), pr.get("boots")))

    def confirm(self):
        """The new version works: make it permanent, then drop the old tree."""
        pr = self.probation
        if pr is None:
            return
        if pr.get("kind") == "image":
            part, _cur = otastore.next_partition(self.root)
            if part is not None:
                part.mark_app_valid_cancel_rollback()
        remove_marker(self._p("probation"))  # from here the new version is the version
        self.probation = None
        otastore.rmtree(self.root + "/lib.old")
        self.say("confirmed | v=%s sid=%s" % (pr.get("v"), pr.get("sid")))

    async def give_up(self, why):
        """Probation failed: boot.py rolls back at the reboot."""
        write_json(self._p("rollback"), {"why": why})
        self.probation = None
        await self.ctx.reboot()

    def _probation_check(self, connected):
        """None, "confirm", or the reason to roll back."""
        pr = self.probation
        if pr is None:
            return None
        if connected and self.ctx.uplink.sent > 0:
            return "confirm"
        limit = pr.get("probation_s", 300)
        if ticks_diff(self._clock(), self._t0) > limit * 1000:
            if not self._seen_up:
                return "no MQTT connection within %d s" % limit
            return "no telemetry delivered within %d s" % limit
        return None

    # ---- the task ----------------------------------------------------------------------------

    async def _publish_queue(self, c):
        while self._out:
            text = self._out[0][0]
            self._busy = True
            try:
                await c.publish(self.status_topic, text.encode(), 1, True)
            finally:
                self._busy = False
            self._out.pop(0)

    async def run(self):
        """Forever: probation, verification, statuses to the broker."""
        self._start_probation()
        res = self.result
        if res is not None:
            self.say("%s | v=%s sid=%s" % (res.get("text"), res.get("v"), res.get("sid")))
        elif self.probation is None:
            self.say(self.state_text())
        result_pending = res is not None
        announced = False
        while True:
            c = self.ctx.client
            connected = c is not None and c.isconnected()
            if connected:
                self._seen_up = True
            if self._verify:
                ok = await self.finish()
                if ok:
                    await self._reboot_after_status(c)
            check = self._probation_check(connected)
            if check == "confirm":
                self.confirm()
            elif check is not None:
                await self.give_up(check)
            if connected and self.status_topic:
                if not announced and not self._out and self.probation is None:
                    self.say(self.state_text())  # (re)connected: where we are, retained
                announced = True
                try:
                    await self._publish_queue(c)
                    if result_pending:
                        result_pending = False
                        remove_marker(self._p("result"))
                except Exception as e:  # link down: the queue waits for the next "up"
                    self.last_error = e
                    await self._sleep(1000)
                    continue
            elif c is not None and not connected:
                announced = False
            if self._out and not connected:
                await self._sleep(200)  # statuses wait for the link
                continue
            self._wake.clear()
            if self._out or self._verify:
                continue
            try:
                await wait_for_ms(self._wake.wait(), 500)
            except asyncio.TimeoutError:
                pass

    async def _reboot_after_status(self, c):
        """Give "verified" a bounded time to reach the broker, then reboot into boot.py."""
        t = self._clock()
        while self._out and ticks_diff(self._clock(), t) < _REBOOT_WAIT_MS:
            if c is not None and c.isconnected():
                try:
                    await self._publish_queue(c)
                except Exception as e:
                    self.last_error = e
            await self._sleep(200)
        await self.ctx.reboot()
