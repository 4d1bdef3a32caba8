"""Small crash-safe file helpers shared by the data layer (spool cursor, seqno lease, config).

Owns: the "write tmp + rename" atomic replace, reading a file back from either
its name or the ``.tmp`` left by a cut between write and rename, and the CRC
line that lets a reader tell a complete small file from a torn one.  Flash is
littlefs on the ESP32 (rename replaces atomically) and a plain folder on the
unix port and CPython.  MicroPython's ``os`` has no ``fsync``: ``flush`` and
``close`` are what commit data there; CPython's ``fsync`` is used when present.
"""

import binascii
import os

TMP_SUFFIX = ".tmp"


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def size(path):
    """File size in bytes, or -1 when the file does not exist."""
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def free_bytes(path):
    """Free bytes on the file system holding ``path`` (statvfs), or -1 when unknown."""
    statvfs = getattr(os, "statvfs", None)
    if statvfs is None:
        return -1
    try:
        st = statvfs(path or "/")
    except OSError:
        return -1
    return st[0] * st[4]  # f_bsize * f_bavail (MicroPython returns a plain tuple)


def remove_quiet(path):
    """Remove a file; a missing file is not an error (idempotent cleanup after a crash)."""
    try:
        os.remove(path)
    except OSError:
        pass


def makedirs(path):
    """Create ``path`` and missing parents (MicroPython's os has no makedirs)."""
    if not path or exists(path):
        return
    i = path.rfind("/")
    if i > 0:
        makedirs(path[:i])
    try:
        os.mkdir(path)
    except OSError:
        if not exists(path):
            raise


def _sync(f):
    f.flush()
    fsync = getattr(os, "fsync", None)  # CPython only; MicroPython commits on close
    if fsync is not None:
        fsync(f.fileno())


def _commit(tmp, path):
    """Rename the written ``tmp`` over ``path`` (a file system that refuses to rename over
    an existing file gets it removed first: the old copy is gone only once the new is whole)."""
    try:
        os.rename(tmp, path)
    except OSError:
        remove_quiet(path)
        os.rename(tmp, path)


def atomic_write(path, data):
    """Replace ``path`` with ``data`` (bytes, or an iterable of bytes chunks) so a reader
    sees the old or the new file, never a mix.

    Writes ``path.tmp``, closes it, then renames it over ``path``.  Where rename
    refuses to replace (FAT), the old file is removed first; a cut in that
    window leaves only ``path.tmp``, which ``read_checked`` also accepts.
    """
    tmp = path + TMP_SUFFIX
    with open(tmp, "wb") as f:
        if isinstance(data, (bytes, bytearray, memoryview)):
            f.write(data)
        else:  # an iterable of chunks: no one big buffer in RAM
            for chunk in data:
                f.write(chunk)
        _sync(f)
    _commit(tmp, path)


def atomic_write_parts(path, parts):
    """``atomic_write`` of the concatenated ``parts`` (bytes), sealed like ``seal`` does,
    written piece by piece: the whole file is never one buffer in RAM."""
    tmp = path + TMP_SUFFIX
    crc = 0
    with open(tmp, "wb") as f:
        for part in parts:
            crc = binascii.crc32(part, crc)
            f.write(part)
        f.write(b"\n%08x\n" % (crc & 0xFFFFFFFF))
        _sync(f)
    _commit(tmp, path)


def sealed_crc(path):
    """The CRC on the last line of a sealed file (the body not checked: 10 bytes read), or -1."""
    n = size(path)
    if n < 10:
        return -1
    try:
        with open(path, "rb") as f:
            f.seek(n - 10)
            tail = f.read(10)
        if tail[0:1] != b"\n" or tail[9:10] != b"\n":
            return -1
        return int(tail[1:9], 16)
    except (OSError, ValueError):
        return -1


def seal(body):
    """``body`` (bytes, no newline) + a CRC32 line: the on-flash form of small state files."""
    return b"%s\n%08x\n" % (body, binascii.crc32(body) & 0xFFFFFFFF)


def unseal(data):
    """The body of a sealed file, or None if it is torn or corrupt."""
    if data is None or len(data) < 10 or data[-1:] != b"\n":
        return None
    i = data.rfind(b"\n", 0, len(data) - 1)
    if i < 0:
        return None
    body = data[:i]
    try:
        crc = int(data[i + 1 : len(data) - 1], 16)
    except ValueError:
        return None
    if crc != binascii.crc32(body) & 0xFFFFFFFF:
        return None
    return body


def read_bytes(path, limit=4096):
    """Up to ``limit`` bytes of a file, or None when it does not exist or cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return None


def read_sealed(path):
    """The bodies found in ``path`` and ``path.tmp`` that pass their CRC: (main, tmp).

    Either may be None.  The caller decides which one wins (the cursor prefers
    the committed main file, the seqno lease takes the higher one).
    """
    return unseal(read_bytes(path)), unseal(read_bytes(path + TMP_SUFFIX))
