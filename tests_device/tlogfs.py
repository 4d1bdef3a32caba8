"""File helpers for the tlog device tests: temp folders, copies, and a littlefs RAM disk.

MicroPython has no tempfile/shutil, so these are the few lines the tests need.
``RamFlash`` is a block device for ``os.VfsLfs2`` that can "lose power": after
``cut_after`` block writes every further write is ignored, which is what a
flash chip does when the supply goes away mid-operation.
"""

import os


def _isdir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def rmtree(path):
    if not _isdir(path):
        try:
            os.remove(path)
        except OSError:
            pass
        return
    for name in os.listdir(path):
        rmtree(path + "/" + name)
    os.rmdir(path)


def tmpdir(tag):
    base = "/tmp/tlogdev-%s-%s" % (tag, "".join("%02x" % b for b in os.urandom(4)))
    rmtree(base)
    os.mkdir(base)
    return base


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def copytree(src, dst):
    os.mkdir(dst)
    for name in os.listdir(src):
        write(dst + "/" + name, read(src + "/" + name))


def seg_files(path):
    return sorted(n for n in os.listdir(path) if n.endswith(".seg"))


class RamFlash:
    """A littlefs block device in RAM (ioctl 4/5/6), with a power-cut switch."""

    def __init__(self, blocks=64, block_size=512, image=None):
        self.block_size = block_size
        self.blocks = blocks
        self.data = bytearray(image) if image else bytearray(b"\xff" * (blocks * block_size))
        self.writes = 0
        self.cut_after = -1  # block writes accepted before the "power cut"; -1: never

    def readblocks(self, n, buf, off=0):
        a = n * self.block_size + off
        buf[:] = self.data[a : a + len(buf)]

    def writeblocks(self, n, buf, off=None):
        if off is None:  # a plain erase-and-program of whole blocks (no extended interface)
            off = 0
        self.writes += 1
        if 0 <= self.cut_after < self.writes:
            return  # power gone: nothing reaches the chip
        a = n * self.block_size + off
        self.data[a : a + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.blocks
        if op == 5:  # block size
            return self.block_size
        if op == 6:  # erase
            if 0 <= self.cut_after < self.writes:
                return 0
            a = arg * self.block_size
            self.data[a : a + self.block_size] = b"\xff" * self.block_size
            return 0
        return 0


def mount(bdev, point, fresh=False):
    if fresh:
        os.VfsLfs2.mkfs(bdev)  # type: ignore
    os.mount(os.VfsLfs2(bdev), point)  # type: ignore


def umount(point):
    try:
        os.umount(point)  # type: ignore
    except OSError:
        pass
