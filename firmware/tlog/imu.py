"""Accelerometer drivers for the Freematics ONE+ MEMS parts, over ``machine.I2C``.

Owned here: detecting the part and reading acceleration in mg into a caller's
3-element array, without allocating.  The anchor tries an ICM-42627 first and
falls back to an ICM-20948 (FreematicsMEMS.cpp; ICM-42627 at 0x68, WHO_AM_I
0x75 = 0x20, ``utility/ICM_42627.h``).  Both run at +-2 g (16384 LSB/g).  Any
object with ``read_mg(out) -> bool`` can feed ``motion.Motion.accel``.

Register maps (data sheets):
  ICM-42627  WHO_AM_I 0x75 (0x20); PWR_MGMT0 0x4E (accel low-noise = 0x03);
             ACCEL_CONFIG0 0x50 (FS +-2 g = 3<<5, ODR 1 kHz = 6);
             ACCEL_DATA_X1..Z0 0x1F..0x24, big-endian.
  ICM-20948  REG_BANK_SEL 0x7F; bank 0: WHO_AM_I 0x00 (0xEA), PWR_MGMT_1 0x06
             (0x80 reset, 0x01 wake + auto clock), PWR_MGMT_2 0x07 (0 = all on),
             ACCEL_XOUT_H..ZOUT_L 0x2D..0x32 big-endian; bank 2: ACCEL_CONFIG
             0x14 (FS bits 2:1, 0 = +-2 g).
"""

from atmq.compat import const, sleep_ms

_LSB_PER_G = const(16384)
ADDRESSES = (0x68, 0x69)


def _s16(hi, lo):
    v = hi << 8 | lo
    return v - 0x10000 if v & 0x8000 else v


class _Accel:
    def __init__(self, i2c, addr):
        self.i2c = i2c
        self.addr = addr
        self._raw = bytearray(6)
        self._one = bytearray(1)
        self.errors = 0

    def _w(self, reg, val):
        self._one[0] = val
        self.i2c.writeto_mem(self.addr, reg, self._one)

    def _read_raw(self, reg):
        try:
            self.i2c.readfrom_mem_into(self.addr, reg, self._raw)
            return True
        except OSError:  # NACK / bus error: count it, the caller keeps its last sample
            self.errors += 1
            return False

    def _to_mg(self, out):
        r = self._raw
        out[0] = _s16(r[0], r[1]) * 1000 // _LSB_PER_G
        out[1] = _s16(r[2], r[3]) * 1000 // _LSB_PER_G
        out[2] = _s16(r[4], r[5]) * 1000 // _LSB_PER_G
        return True


class Icm42627(_Accel):
    WHO_AM_I = 0x75
    ID = 0x20

    async def start(self):
        self._w(0x50, (3 << 5) | 6)  # ACCEL_CONFIG0: +-2 g, 1 kHz
        self._w(0x4E, 0x03)  # PWR_MGMT0: accelerometer low-noise mode, gyro off
        await sleep_ms(1)  # >= 200 us before register writes after a mode change

    def read_mg(self, out):
        return self._read_raw(0x1F) and self._to_mg(out)


class Icm20948(_Accel):
    WHO_AM_I = 0x00
    ID = 0xEA

    async def start(self):
        self._w(0x7F, 0x00)  # bank 0
        self._w(0x06, 0x80)  # device reset
        await sleep_ms(10)
        self._w(0x06, 0x01)  # wake, auto clock
        self._w(0x07, 0x00)  # accel + gyro on
        self._w(0x7F, 0x20)  # bank 2
        self._w(0x14, 0x00)  # ACCEL_CONFIG: +-2 g
        self._w(0x7F, 0x00)  # back to bank 0 for the data registers

    def read_mg(self, out):
        return self._read_raw(0x2D) and self._to_mg(out)


async def detect(i2c):
    """Probe 0x68/0x69 for an ICM-42627, then an ICM-20948; a started driver or None."""
    one = bytearray(1)
    for cls in (Icm42627, Icm20948):
        for addr in ADDRESSES:
            try:
                if cls is Icm20948:
                    one[0] = 0
                    i2c.writeto_mem(addr, 0x7F, one)  # WHO_AM_I is in bank 0
                i2c.readfrom_mem_into(addr, cls.WHO_AM_I, one)
            except OSError:
                continue
            if one[0] == cls.ID:
                dev = cls(i2c, addr)
                await dev.start()
                return dev
    return None
