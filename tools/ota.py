#!/usr/bin/env python3
"""Over-the-air update of the telelogger over MQTT: build, sign, send, follow (issue 15).

    python3 tools/ota.py --board freematics-one-plus --version 1.2.0 --key-file fleet.key \\
        --broker broker.example.com:8883 --tls-ca ca.pem --device 864...  [--dry-run]

Builds a bundle of the application tree the board runs from ``/lib`` (the same
``.mpy`` files deploy.py makes: ``mpy-cross -march=ARCH`` of lib/ and
firmware/tlog, with ``tlog/version.py`` set to ``--version``; main.py and
boot.py are not in it: boot.py is the rollback and stays what deploy.py put
there), or of a whole firmware image (``--image FILE``, frozen builds, written
to the next app partition).  The header (format, kind, version, board, arch,
.mpy version, oldest version it updates, size, SHA-256 of the bundle, unpacked
size, force) is signed with HMAC-SHA256 under the fleet key, which the device
holds as ``ota_key``.  It is offered on ``<prefix>/<id>/ota``; the device
answers on ``<prefix>/<id>/ota/status`` with what it takes (``chunk=N
enc=bin|b64``) and the offset it has, and the chunks follow, each with its
offset and CRC-32, a window of 3 in flight; the device's reports move the
window, a repeated offset sends again from there.  Run the same command again
after an interruption: the bundle is rebuilt bit for bit, the device
recognises it and says where to go on from (resumable, on either side).

Exit status: 0 confirmed (or ``--no-follow`` and all sent, or ``--dry-run``),
1 refused, rolled back or timed out, 2 bad arguments.
"""

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import deploy  # noqa: E402  (tools/deploy.py: the same sources and the same mpy-cross)

FORMAT = "tlog-ota/1"
WINDOW = 3  # chunks in flight (the device's inbox has 4 slots, one kept for commands)
HDR_ROOM = 40  # bytes of a chunk message before the data (device: tlog/ota.py _HDR_ROOM)
ARCHES = ("x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
          "xtensa", "xtensawin", "rv32imc", "rv64imc")


class OtaError(Exception):
    pass


# ---- building -------------------------------------------------------------------------------

def app_files(src, arch, version, mpy_cross=None):
    """[(path under /lib, bytes)] of the application, sorted; ``arch`` "py" keeps sources."""
    plan = [p for p in deploy.sources(src) if p[1].startswith("lib/")]
    if not plan:
        raise OtaError("no application sources under %s (lib/, firmware/)" % src)
    out = []
    with tempfile.TemporaryDirectory(prefix="ota-build-") as tmp:
        vfile = os.path.join(tmp, "version.py")
        with open(vfile, "w") as f:
            f.write('"""Written by tools/ota.py for this bundle."""\n\nVERSION = %s\n'
                    % json.dumps(version))
        plan = [(vfile if dev == "lib/tlog/version.mpy" else local, dev, how)
                for local, dev, how in plan]
        if "lib/tlog/version.mpy" not in [p[1] for p in plan]:
            plan.append((vfile, "lib/tlog/version.mpy", "mpy"))
        if arch == "py":
            for local, dev, _how in plan:
                with open(local, "rb") as f:
                    out.append((dev[4:-4] + ".py", f.read()))
        else:
            built = deploy.build(plan, arch, os.path.join(tmp, "out"), mpy_cross)
            for path, dev, _sha in built:
                with open(path, "rb") as f:
                    out.append((dev[4:], f.read()))
    out.sort()
    return out


def mpy_version(files):
    """The .mpy format version of the built files (byte 1 of an .mpy: 6 for v1.20+)."""
    for path, data in files:
        if path.endswith(".mpy") and data[:1] == b"M":
            return data[1]
    return None


def bundle_files(files, version, board, arch):
    """(stream bytes, manifest dict): <u32 BE manifest length><manifest JSON><file bytes>."""
    man = {"fmt": FORMAT, "v": version, "board": board, "arch": arch,
           "files": [[p, len(d), hashlib.sha256(d).hexdigest()] for p, d in files]}
    mj = json.dumps(man, separators=(",", ":"), sort_keys=True).encode()
    stream = len(mj).to_bytes(4, "big") + mj + b"".join(d for _p, d in files)
    return stream, man


def header(stream, kind, version, board, arch, min_from="0", force=False, mpy=None,
           unpacked=0, files=0):
    return {"fmt": FORMAT, "kind": kind, "v": version, "board": board, "arch": arch,
            "mpy": mpy, "min_from": min_from, "size": len(stream),
            "sha256": hashlib.sha256(stream).hexdigest(), "unpacked": unpacked,
            "files": files, "force": bool(force)}


def header_bytes(hdr):
    return json.dumps(hdr, separators=(",", ":"), sort_keys=True).encode()


def sign(key, hbytes):
    return hmac.new(key, hbytes, hashlib.sha256).hexdigest()


def offer_message(key, hdr):
    hb = header_bytes(hdr)
    return b"OFFER " + sign(key, hb).encode() + b" " + hb


def chunk_message(sid, offset, data, enc="bin"):
    crc = binascii.crc32(data) & 0xFFFFFFFF
    if enc == "b64":
        return b"B %s %d %08x " % (sid.encode(), offset, crc) + base64.b64encode(data)
    return b"C %s %d %08x " % (sid.encode(), offset, crc) + data


def unpack(stream, dest):
    """Write a files bundle's tree under ``dest`` (install a baseline; tests)."""
    n = int.from_bytes(stream[:4], "big")
    man = json.loads(stream[4:4 + n])
    pos = 4 + n
    for path, size, sha in man["files"]:
        data = stream[pos:pos + size]
        if hashlib.sha256(data).hexdigest() != sha:
            raise OtaError("bad hash for " + path)
        p = os.path.join(dest, path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        pos += size
    return man


def build(src, board, arch, version, min_from="0", force=False, image=None, mpy_cross=None):
    """(header dict, stream bytes, manifest or None) for a files bundle or an image."""
    if image:
        with open(image, "rb") as f:
            stream = f.read()
        return header(stream, "image", version, board, arch, min_from, force), stream, None
    files = app_files(src, arch, version, mpy_cross)
    stream, man = bundle_files(files, version, board, arch)
    mpy = None if arch == "py" else mpy_version(files)
    hdr = header(stream, "files", version, board, arch, min_from, force, mpy,
                 sum(len(d) for _p, d in files), len(files))
    return hdr, stream, man


# ---- the device's status line -------------------------------------------------------------

def parse_status(text):
    """"receiving 37 % | sid=ab offset=1 ..." -> ("receiving 37 %", {"sid": "ab", ...})."""
    head, _, tail = text.partition(" | ")
    kv = {k: v for k, v in re.findall(r"(\w+)=(\S*)", tail)}
    return head.strip(), kv


def chunk_size(kv, want=0):
    """The chunk size to use: the device's limit (``chunk=``), lowered to ``want``."""
    dev = int(kv.get("chunk") or 0) or 984
    return min(dev, want) if want else dev


# ---- sending --------------------------------------------------------------------------------

class Sender:
    """Offer, chunks and the device's answers over one paho connection.

    ``on_chunk(offset, message) -> message`` may alter a chunk (tests corrupt one);
    ``on_status(head, kv)`` sees every status; ``progress(offset, size)`` drives the bar.
    """

    def __init__(self, host, port, prefix, device, key, hdr, stream, chunk=0, tls_ca=None,
                 user=None, password=None, on_chunk=None, on_status=None, progress=None,
                 client_id=None, log=print):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.topic = "%s/%s/ota" % (prefix, device)
        self.status_topic = self.topic + "/status"
        self.key = key
        self.hdr = hdr
        self.stream = stream
        self.sid = hdr["sha256"][:8]
        self.want_chunk = chunk
        self.on_chunk = on_chunk
        self.on_status = on_status
        self.progress = progress
        self.log = log
        self.cond = threading.Condition()
        self.statuses = []  # (monotonic, head, kv), fresh (not retained) only
        self.history = []
        c = mqtt.Client(CallbackAPIVersion.VERSION2,
                        client_id=client_id or "tlog-ota-%d" % os.getpid())
        if user:
            c.username_pw_set(user, password)
        if tls_ca:
            c.tls_set(ca_certs=tls_ca)
        self._up = threading.Event()
        c.on_connect = lambda cl, u, f, rc, p: self._up.set()
        c.on_message = self._on_message
        self.client = c
        c.connect(host, port, keepalive=30)
        c.loop_start()
        if not self._up.wait(15):
            self.close()
            raise OtaError("cannot connect to the broker %s:%d" % (host, port))
        c.subscribe(self.status_topic, 1)

    def _on_message(self, client, userdata, m):
        try:
            text = bytes(m.payload).decode()
        except UnicodeDecodeError:
            return
        head, kv = parse_status(text)
        if m.retain:  # what the device said before we came: context, not an answer
            self.log("device status (retained): %s" % text)
            return
        with self.cond:
            self.statuses.append((time.monotonic(), head, kv))
            self.history.append(text)
            self.cond.notify_all()
        if self.on_status is not None:
            self.on_status(head, kv)

    def _next(self, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.statuses:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.statuses.pop(0)

    def _pub(self, payload):
        self.client.publish(self.topic, payload, qos=1).wait_for_publish(10)

    def offer(self):
        self._pub(offer_message(self.key, self.hdr))

    def run(self, follow=True, timeout=900.0, idle_s=5.0, reoffer_s=30.0):
        """Send until the device has every byte, then (``follow``) until it confirms or rolls
        back.  Returns the final status head ("confirmed", "rolled back: ...", ...)."""
        size = len(self.stream)
        deadline = time.monotonic() + timeout
        acked = sent_to = -1  # unknown until the device answers the offer
        chunk = enc = None
        done_sending = False
        self.offer()
        last_heard = last_offer = time.monotonic()
        while time.monotonic() < deadline:
            # send what the window allows
            if chunk and not done_sending and acked >= 0:
                while sent_to < size and sent_to < acked + WINDOW * chunk:
                    data = self.stream[sent_to:sent_to + chunk]
                    msg = chunk_message(self.sid, sent_to, data, enc or "bin")
                    if self.on_chunk is not None:
                        msg = self.on_chunk(sent_to, msg)
                    self._pub(msg)
                    sent_to += len(data)
            st = self._next(1.0)
            now = time.monotonic()
            if st is None:
                if now - last_heard > idle_s and acked >= 0 and sent_to > acked:
                    sent_to = acked  # nothing heard: the window is lost, send it again
                    last_heard = now
                if now - last_offer > reoffer_s and not done_sending:
                    self.offer()  # the device may have rebooted: it answers with its offset
                    last_offer = now
                continue
            last_heard = now
            _t, head, kv = st
            sid = kv.get("sid", "")
            if head.startswith("refused"):
                if sid in ("", self.sid):
                    return head
                continue
            if sid and sid != self.sid:
                continue
            if head.startswith("receiving") and sid == self.sid:
                off = int(kv.get("offset", "0"))
                chunk = chunk_size(kv, self.want_chunk)
                enc = kv.get("enc") or "bin"
                if off >= sent_to:
                    acked = sent_to = off
                elif off > acked:
                    acked = off
                else:  # the device repeats where it is: a gap, a resume, a reboot
                    acked = sent_to = off
                if self.progress is not None:
                    self.progress(off, size)
                done_sending = off >= size
                if done_sending and not follow:
                    return head
                last_offer = now
                continue
            if head.startswith("idle") and not done_sending:
                self.offer()  # the device lost or never got the offer
                last_offer = now
                continue
            if head.startswith(("verified", "switched")):
                done_sending = True
                if self.progress is not None:
                    self.progress(size, size)
                if not follow:
                    return head
                continue
            if head.startswith(("confirmed", "rolled back")) and done_sending:
                return head
        return "timed out"

    def close(self):
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


def bar(out=sys.stderr):
    """A progress callback: a bar on a terminal, a line per 10 % otherwise."""
    last = [-1]

    def show(off, size):
        pct = off * 100 // size if size else 100
        if out.isatty():
            n = pct // 4
            out.write("\r[%s%s] %3d %% %d/%d bytes" % ("#" * n, "." * (25 - n), pct, off, size))
            if pct == 100:
                out.write("\n")
            out.flush()
        elif pct // 10 != last[0] // 10:
            out.write("sent %d %% (%d/%d bytes)\n" % (pct, off, size))
        last[0] = pct
    return show


def read_key(args):
    if args.key_file:
        with open(args.key_file, "rb") as f:
            key = f.read().strip()
    else:
        key = os.environ.get(args.key_env, "").encode()
    if len(key) < 16:
        raise OtaError("the fleet key must have at least 16 characters (--key-file, or $%s)"
                       % args.key_env)
    return key


def plan_text(hdr, man, chunk):
    lines = ["bundle %s: %s %s for %s/%s, %d bytes (sha256 %s)" % (
        hdr["sha256"][:8], hdr["kind"], hdr["v"], hdr["board"], hdr["arch"], hdr["size"],
        hdr["sha256"])]
    if man is not None:
        lines.append("%d files, %d bytes unpacked, updates from %s on" % (
            len(man["files"]), hdr["unpacked"], hdr["min_from"]))
    for what, n in (("this run", chunk), ("SIM76xx (binary, 1 KiB inbox slots)", 984),
                    ("SIM800 (base64 in a 512-byte URC line)", 321)):
        if n:
            k = -(-hdr["size"] // n)
            lines.append("chunks of %d bytes (%s): %d publishes" % (n, what, k))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--board", required=True, help="board name the bundle is for (boards/*.json)")
    ap.add_argument("--version", required=True, help="version of the bundle, e.g. 1.2.0")
    ap.add_argument("--arch", default="xtensawin",
                    help="mpy-cross -march (default xtensawin; 'py' keeps sources)")
    ap.add_argument("--src", default=ROOT, help="tree with lib/ and firmware/ (default: this one)")
    ap.add_argument("--image", help="a whole firmware image (frozen build) instead of files")
    ap.add_argument("--min-from", default="0", help="oldest installed version it may update")
    ap.add_argument("--force", action="store_true", help="install even if not newer")
    ap.add_argument("--key-file", help="file holding the fleet key (the devices' ota_key)")
    ap.add_argument("--key-env", default="TLOG_OTA_KEY", help="or this environment variable")
    ap.add_argument("--broker", help="HOST:PORT of the MQTT broker")
    ap.add_argument("--tls-ca", help="CA file: connect with TLS")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--device", help="device id (the <id> of its topics)")
    ap.add_argument("--prefix", default="tlog", help="topic prefix (config topic_prefix)")
    ap.add_argument("--chunk", type=int, default=0, help="chunk size (default: the device's)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="give up after S seconds")
    ap.add_argument("--no-follow", action="store_true",
                    help="return once every byte is in (do not wait for the confirmation)")
    ap.add_argument("--dry-run", action="store_true", help="build, sign, print; send nothing")
    ap.add_argument("--out", help="also write the offer and the bundle to OUT.offer, OUT.bin")
    args = ap.parse_args(argv)
    try:
        if args.arch not in ARCHES and args.arch != "py":
            raise OtaError("unknown --arch %s (one of %s, py)" % (args.arch, ", ".join(ARCHES)))
        key = read_key(args)
        hdr, stream, man = build(args.src, args.board, args.arch, args.version, args.min_from,
                                 args.force, args.image)
        print(plan_text(hdr, man, args.chunk))
        if args.out:
            with open(args.out + ".offer", "wb") as f:
                f.write(offer_message(key, hdr))
            with open(args.out + ".bin", "wb") as f:
                f.write(stream)
        if args.dry_run:
            print("dry run: nothing sent")
            return 0
        if not args.broker or not args.device:
            raise OtaError("--broker and --device are needed to send (or --dry-run)")
        host, _, port = args.broker.rpartition(":")
        if not host or not port.isdigit():
            raise OtaError("--broker must be HOST:PORT, got %s" % args.broker)
        s = Sender(host, int(port), args.prefix, args.device, key, hdr, stream, args.chunk,
                   args.tls_ca, args.user, args.password, progress=bar(),
                   on_status=lambda h, kv: print("device: %s" % h))
        try:
            final = s.run(follow=not args.no_follow, timeout=args.timeout)
        finally:
            s.close()
    except (OtaError, deploy.DeployError, OSError) as e:
        print("ota: %s" % e, file=sys.stderr)
        return 2
    print("result: %s" % final)
    ok = final.startswith("confirmed") or (args.no_follow and final.startswith(
        ("receiving", "verified", "switched")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
