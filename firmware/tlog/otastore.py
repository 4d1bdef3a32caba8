"""Where an OTA update is written: folders and files on flash, or the next app partition.

Owns the storage side of tlog/ota.py: free space, removing a tree, and the
small partition interface a whole-firmware image (frozen build) is written
through: ``Esp32Partition`` wraps ``esp32.Partition`` (``writeblocks`` in the
extended form with an offset, ``ioctl(6)`` erase, ``set_boot``,
``mark_app_valid_cancel_rollback``); ``FilePartition`` is the same interface
over a file, so the logic runs and is tested on the unix port.  Flash can only
be programmed after its 4 KiB block was erased: ``ImageWriter`` erases each
block the first time a write reaches it, so chunks of any size land at any
offset, and a resumed transfer (the last block partly written) continues
without erasing what is there.
"""

import os

BLOCK = 4096  # ESP32 flash erase block (esp32.Partition block size)
_DIR = 0x4000


def isdir(p):
    try:
        return os.stat(p)[0] & _DIR != 0
    except OSError:
        return False


def rmtree(p):
    """Remove a file or a folder with everything in it; missing is not an error."""
    if not isdir(p):
        try:
            os.remove(p)
        except OSError:
            pass
        return
    for name in os.listdir(p):
        rmtree(p + "/" + name)
    try:
        os.rmdir(p)
    except OSError:
        pass


def tree_bytes(p):
    """Total size of the files under ``p`` (0 when missing)."""
    if not isdir(p):
        try:
            return os.stat(p)[6]
        except OSError:
            return 0
    n = 0
    for name in os.listdir(p):
        n += tree_bytes(p + "/" + name)
    return n


def free_bytes(path):
    """Free space of the filesystem holding ``path`` (statvfs: f_bavail * f_frsize)."""
    try:
        st = os.statvfs(path or "/")  # type: ignore
    except (OSError, AttributeError):
        return -1  # unknown: the caller decides
    return st[4] * (st[1] or st[0])


class FilePartition:
    """The unix stand-in for an ESP32 app partition: ``<dir>/<label>.bin`` of ``size``
    bytes; the boot choice in ``<dir>/boot`` (also what boot.py writes on rollback)."""

    def __init__(self, folder, label, size):
        self.folder = folder
        self.label = label
        self.size = size
        self.path = "%s/%s.bin" % (folder, label)
        try:
            os.stat(self.path)
        except OSError:
            with open(self.path, "wb") as f:
                f.write(b"\xff" * size)

    def info(self):
        return (0, 0x10, 0, self.size, self.label, False)

    def ioctl(self, op, arg):
        if op == 4:
            return self.size // BLOCK
        if op == 5:
            return BLOCK
        if op == 6:  # erase one block
            with open(self.path, "r+b") as f:
                f.seek(arg * BLOCK)
                f.write(b"\xff" * BLOCK)
            return 0
        return None

    def writeblocks(self, block, buf, offset=0):
        with open(self.path, "r+b") as f:
            f.seek(block * BLOCK + offset)
            f.write(buf)

    def readblocks(self, block, buf, offset=0):
        with open(self.path, "rb") as f:
            f.seek(block * BLOCK + offset)
            f.readinto(buf)

    def set_boot(self):
        with open(self.folder + "/boot", "w") as f:
            f.write(self.label)

    def booted(self):
        try:
            with open(self.folder + "/boot") as f:
                return f.read().strip()
        except OSError:
            return None

    def mark_app_valid_cancel_rollback(self):
        with open(self.folder + "/valid", "w") as f:
            f.write(self.booted() or self.label)


class Esp32Partition:
    """``esp32.Partition`` behind the same interface (frozen-firmware boards)."""

    def __init__(self, part):
        self.part = part
        info = part.info()
        self.label = info[4]
        self.size = info[3]

    def info(self):
        return self.part.info()

    def ioctl(self, op, arg):
        return self.part.ioctl(op, arg)

    def writeblocks(self, block, buf, offset=0):
        self.part.writeblocks(block, buf, offset)

    def readblocks(self, block, buf, offset=0):
        self.part.readblocks(block, buf, offset)

    def set_boot(self):
        self.part.set_boot()

    def mark_app_valid_cancel_rollback(self):
        import esp32  # type: ignore

        esp32.Partition.mark_app_valid_cancel_rollback()


def next_partition(root):
    """(the partition an image goes to, the running one's label) or (None, None).

    ESP32: ``Partition(RUNNING).get_next_update()``; unix port: file partitions
    under ``<root>/ota/part`` when that folder exists (tests create it)."""
    try:
        import esp32  # type: ignore
    except ImportError:
        esp32 = None
    if esp32 is not None:
        try:
            run = esp32.Partition(esp32.Partition.RUNNING)  # type: ignore  # (stub: str id)
            return Esp32Partition(run.get_next_update()), run.info()[4]
        except (OSError, AttributeError):
            return None, None
    d = root + "/ota/part"
    if not isdir(d):
        return None, None
    size = 0
    try:
        with open(d + "/size") as f:
            size = int(f.read())
    except (OSError, ValueError):
        return None, None
    cur = FilePartition(d, "ota_0", size).booted() or "ota_0"
    nxt = "ota_1" if cur == "ota_0" else "ota_0"
    return FilePartition(d, nxt, size), cur


class ImageWriter:
    """Sequential writes of an image at any offset into a partition, erasing each block
    the first time a write reaches it (a resumed transfer's block was erased before)."""

    def __init__(self, part, written=0):
        self.part = part
        self.written = written  # bytes in the partition so far (the resume offset)

    def write(self, data):
        part = self.part
        pos = self.written
        n = len(data)
        if pos + n > part.size:
            raise ValueError("image larger than the partition (%d bytes)" % part.size)
        i = 0
        while i < n:
            block = pos // BLOCK
            off = pos % BLOCK
            if off == 0:
                part.ioctl(6, block)
            k = min(n - i, BLOCK - off)
            part.writeblocks(block, memoryview(data)[i : i + k], off)
            i += k
            pos += k
        self.written = pos

    def sha256(self, size):
        """SHA-256 of the first ``size`` bytes, read back from the partition."""
        import hashlib

        h = hashlib.sha256()
        buf = bytearray(1024)
        pos = 0
        while pos < size:
            k = min(1024, size - pos)
            mv = memoryview(buf)[:k]
            self.part.readblocks(pos // BLOCK, mv, pos % BLOCK)
            h.update(mv)
            pos += k
        return h.digest()
