"""Authenticated remote commands: HMAC-SHA256 with the device key, a counter against replay.

Owns the signature check and the replay counter on flash.  A signed command is
the command's JSON object with two more members, the last one the MAC::

    {"id":7,"cmd":"set","values":{...},"dev":"van-07","ctr":1733230000123,"mac":"<64 hex>"}

``mac`` = HMAC-SHA256(key = bytes.fromhex(cmd_key), the payload's bytes before
``,"mac":"``), so no JSON canonical form is needed: the device checks the exact
bytes that were signed (tools/signcmd.py makes them).  ``dev`` must be this
device's id (a command signed for one device does nothing on another) and
``ctr`` must be above the highest counter accepted so far; the new counter is
on flash (sealed, tmp + rename) before the command runs, so neither a replay
nor a reboot reuses it.  MicroPython has ``hashlib.sha256`` but no ``hmac``:
HMAC (RFC 2104) is the few lines below.
"""

import hashlib

from . import fsutil

MAC_HEX = 64
_SUFFIX = b',"mac":"'
_BLOCK = 64  # SHA-256 block size


def hmac_sha256(key, msg):
    """RFC 2104 HMAC with SHA-256 (bytes)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = bytes(key) + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def _hex(b):
    return "".join("%02x" % x for x in b)


def _unhex(text):
    return bytes(int(text[i : i + 2], 16) for i in range(0, len(text), 2))


def sign(key_hex, body):
    """The MAC (hex) of ``body`` (bytes: the JSON object without its closing brace)."""
    return _hex(hmac_sha256(_unhex(key_hex), body))


def signed_part(payload):
    """(the signed bytes, the MAC text) of a signed payload, or None when it carries no
    MAC at its end (the form sign_command makes)."""
    p = bytes(payload).rstrip()
    i = p.rfind(_SUFFIX)
    if i < 0 or not p.endswith(b'"}') or len(p) - i - len(_SUFFIX) - 2 != MAC_HEX:
        return None
    return p[:i], p[i + len(_SUFFIX) : len(p) - 2].decode()


def equal(a, b):
    """Compare without an early exit (no timing hint of how many characters matched)."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= ord(a[i]) ^ ord(b[i])
    return d == 0


class Auth:
    """Checks signed commands for one device; ``path`` holds the highest counter accepted."""

    def __init__(self, path, key_hex):
        self.path = path
        self.key_hex = key_hex
        self.accepted = 0
        self.refused = 0
        main, tmp = fsutil.read_sealed(path)
        last = -1
        for body in (main, tmp):
            if body is not None:
                try:
                    last = max(last, int(body))
                except ValueError:
                    pass
        self.last_ctr = last

    def check(self, payload, msg, dev):
        """None when the signed ``payload`` (parsed into ``msg``) may run; else the reason.

        The counter is persisted first: a flash error refuses the command (a counter
        that is not on flash could be replayed after a reboot).
        """
        why = self._why(payload, msg, dev)
        if why is not None:
            self.refused += 1
            return why
        ctr = msg["ctr"]
        try:
            fsutil.atomic_write(self.path, fsutil.seal(b"%d" % ctr))
        except OSError as e:
            self.refused += 1
            return "replay counter not stored (%s): refused" % e
        self.last_ctr = ctr
        self.accepted += 1
        return None

    def _why(self, payload, msg, dev):
        if not self.key_hex:
            return "no cmd_key on this device: link keys are set locally only"
        part = signed_part(payload)
        if part is None:
            return 'the MAC must be the last member: ,"mac":"<64 hex>"}'
        body, mac = part
        if not equal(sign(self.key_hex, body), mac.lower()):
            return "bad MAC"
        if msg.get("dev") != dev:
            return '"dev" is not this device'
        ctr = msg.get("ctr")
        if not isinstance(ctr, int) or isinstance(ctr, bool) or ctr < 0:
            return '"ctr" must be a non-negative integer'
        if ctr <= self.last_ctr:
            return "replayed: ctr %d is not above %d" % (ctr, self.last_ctr)
        return None
