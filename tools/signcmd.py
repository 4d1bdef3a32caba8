#!/usr/bin/env python3
"""Sign a telelogger command with the device's ``cmd_key`` (HMAC-SHA256), for link keys.

    python3 tools/signcmd.py --key-file van-07.key --dev van-07 \\
        '{"id":1,"cmd":"set","values":{"mqtt_host":"mqtt2.example.net"}}'
    python3 tools/signcmd.py --key 0011...eeff --dev van-07 --ctr 42 '{"id":2,"cmd":"reboot"}'
    python3 tools/signcmd.py --new-key            # a fresh 256-bit key for cmd_key

Prints the signed JSON, ready to publish on ``<prefix>/<dev>/cmd`` (e.g.
``mosquitto_pub -t tlog/van-07/cmd -m "$(python3 tools/signcmd.py ...)"``).  The
device accepts it once: ``ctr`` must be above every counter it accepted before
(default: milliseconds since 1970, which grows by itself).  The format is in
firmware/tlog/auth.py; the README's *Security model* says when it is needed.
Standard library only.
"""

import argparse
import hashlib
import hmac
import json
import os
import sys
import time


def sign_command(obj, key_hex, dev, ctr):
    """The signed payload (bytes) of a command dict: ``dev`` and ``ctr`` added, the MAC last."""
    if not isinstance(obj, dict):
        raise ValueError("a command is a JSON object")
    body = dict(obj)
    body.pop("mac", None)
    body["dev"] = dev
    body["ctr"] = int(ctr)
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=True)
    if "\\" in text:
        raise ValueError("the device refuses backslashes (JSON escapes) in commands: use plain"
                         " ASCII values")
    signed = text[:-1].encode()  # the object without its closing brace
    mac = hmac.new(bytes.fromhex(key_hex), signed, hashlib.sha256).hexdigest()
    return signed + b',"mac":"' + mac.encode() + b'"}'


def _key(args):
    if args.key_file:
        with open(args.key_file) as f:
            return f.read().strip()
    if args.key:
        return args.key
    env = os.environ.get("TLOG_CMD_KEY")
    if env:
        return env
    raise SystemExit("signcmd: give --key-file, --key or TLOG_CMD_KEY (the device's cmd_key)")


def main(argv=None):
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=doc.split("\n\n", 1)[-1])
    ap.add_argument("command", nargs="?", help="the command as JSON (an object with id and cmd)")
    ap.add_argument("--dev", help="the device id (config device_id, or its IMEI)")
    ap.add_argument("--key", help="cmd_key as hex (prefer --key-file: shell history)")
    ap.add_argument("--key-file", help="a file holding cmd_key as hex")
    ap.add_argument("--ctr", type=int, help="replay counter (default: ms since 1970)")
    ap.add_argument("--new-key", action="store_true", help="print a new random cmd_key")
    args = ap.parse_args(argv)
    if args.new_key:
        print(os.urandom(32).hex())
        return 0
    if not args.command or not args.dev:
        ap.error("give the command JSON and --dev")
    key = _key(args)
    try:
        raw = bytes.fromhex(key)
    except ValueError:
        raise SystemExit("signcmd: the key must be hex digits (config cmd_key)") from None
    if not 16 <= len(raw) <= 32:
        raise SystemExit("signcmd: the key must be 32 to 64 hex digits, got %d" % len(key))
    try:
        obj = json.loads(args.command)
    except ValueError as e:
        raise SystemExit("signcmd: the command is not valid JSON: %s" % e) from None
    ctr = args.ctr if args.ctr is not None else int(time.time() * 1000)
    try:
        out = sign_command(obj, key, args.dev, ctr)
    except ValueError as e:
        raise SystemExit("signcmd: %s" % e) from None
    sys.stdout.write(out.decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
