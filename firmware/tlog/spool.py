"""Store-and-forward spool: records survive reboots, network and broker loss; none lost silently.

Owns the spool folder on flash.  Records (opaque byte strings, 1..max_record
bytes) are staged in a preallocated RAM buffer and written to numbered segment
files (``0000002a.seg``) in frames::

    0xA5 | len u16 LE | crc32(payload) u32 LE | payload | 0x5A (commit)

A power cut at any byte leaves a frame that fails one of these checks (short
header, length past the end of the file, missing commit byte, CRC mismatch);
on open the torn tail of the last segment is cut off (the valid prefix is
copied and renamed over the segment) and counted in ``repaired``.  A bad frame
in the middle of a segment (bit rot) is skipped by searching for the next
valid frame, and counted in ``corrupt``.

Delivery is at-least-once: ``peek_batch`` returns the oldest records without
removing them, ``ack`` removes them after the broker confirmed them (MQTT QoS 1
PUBACK).  The read position (segment, offset, index) is persisted in a small
sealed cursor file written atomically (tmp + rename), so a reboot in the middle
of a drain re-sends at most the batch that was not acknowledged.

Bounded: at most ``max_bytes`` of segments and ``max_segments`` files.  Only
when a write would exceed that is the oldest segment deleted; its unacknowledged
records are added to ``dropped``, which is persisted with the cursor.

Every record not kept is in ``dropped``, with its reason in ``drops``: ``full``
(the oldest segment made room), ``ram`` (flash failing and the RAM stage full),
``lost`` (gone from flash: a segment deleted from outside, an unreadable entry,
a torn or rotten frame, records staged in RAM at a power cut).  ``lost`` is
found on open: every record ever appended is acknowledged, dropped or still
here, so ``appended - acked - dropped - depth`` (from the persisted counters,
saved at least once per segment) is what went missing.  An entry that cannot
be read (a directory where a segment was, EISDIR, EIO) is renamed aside
(``.bad``) and counted in ``set_aside``; the spool opens without it.
``appended`` never goes backwards across a kill.

Sequence numbers: with ``seq_of`` (payload -> its seq, or -1) the spool keeps
``max_seq``, the highest seq it has held: read from every frame during the
open scan, from each append, and persisted with the cursor (so it survives
the segments being acknowledged and deleted).  The app passes it to
``SeqNo`` as the floor, so a lost lease file never restarts the numbering
below records the broker has already seen or is about to see.

RAM: one staging buffer (``ram_bytes``), one batch buffer (``batch_max_bytes``)
and a few small headers, all allocated once.  Segments are never read whole.
"""

import binascii
import os
import struct

from atmq.compat import const

from . import fsutil

_FORMAT_VERSION = const(1)  # = tlog.records.FORMAT_VERSION
_MAGIC = const(0xA5)
_COMMIT = const(0x5A)
_HDR = const(7)  # magic, len u16, crc32 u32
_OVH = const(8)  # header + commit byte
_CHUNK = const(64)  # resync search window
_MAXLEN = const(0xFFFF)
_SEG_EXT = const(".seg")
_CURSOR = const("cursor")

# _segs entries: [segno, size in bytes, valid frames]
_NO = const(0)
_SIZE = const(1)
_COUNT = const(2)


class Batch:
    """The records returned by ``Spool.peek_batch``: payloads packed in one reused buffer.

    ``len(batch)`` records; ``batch.payload(i)`` is a memoryview into the
    buffer (valid until the next ``peek_batch``); iterating yields them oldest
    first.  ``nbytes`` is the sum of the payload lengths.  The buffer is the batch's own
    (``own``) or, for a peek ``into`` a caller's buffer, the end of that one.
    """

    def __init__(self, max_records, max_bytes):
        self.buf = bytearray(max_bytes)
        self.own = self.mv = memoryview(self.buf)
        self.offs = [0] * (max_records + 1)
        self.count = 0
        self.nbytes = 0
        # Position just past each record (segment, offset, index): where ``ack`` moves to.
        self.end_segs = [0] * max_records
        self.end_offs = [0] * max_records
        self.end_idxs = [0] * max_records

    def __len__(self):
        return self.count

    def payload(self, i):
        if i < 0 or i >= self.count:
            raise IndexError("batch index out of range")
        return self.mv[self.offs[i] : self.offs[i + 1]]

    def __iter__(self):
        for i in range(self.count):
            yield self.mv[self.offs[i] : self.offs[i + 1]]


class Spool:
    """Bounded, crash-safe FIFO of byte records on flash with at-least-once delivery."""

    def __init__(
        self,
        root,
        max_bytes=262144,
        max_segments=16,
        batch_max_records=32,
        batch_max_bytes=4096,
        ram_bytes=2048,
        flush_records=1,
        max_record=1024,
        seq_of=None,
    ):
        if max_segments < 2:
            raise ValueError("spool max_segments must be >= 2 (one to fill, one to drain)")
        if batch_max_records < 1 or batch_max_bytes < 16:
            raise ValueError("spool batch_max_records >= 1 and batch_max_bytes >= 16 required")
        max_record = min(max_record, batch_max_bytes, _MAXLEN)
        self._seg_bytes = max_bytes // max_segments
        if self._seg_bytes < max_record + _OVH:
            raise ValueError(
                "spool max_bytes/max_segments = %d B per segment: too small for a %d B record"
                % (self._seg_bytes, max_record)
            )
        if ram_bytes < max_record + _OVH:
            raise ValueError("spool ram_bytes must hold one record (>= %d)" % (max_record + _OVH))
        self.root = root.rstrip("/") if len(root) > 1 else root
        self.max_bytes = max_bytes
        self.max_segments = max_segments
        self.max_record = max_record
        self.flush_records = max(1, flush_records)
        self._batch = Batch(batch_max_records, batch_max_bytes)
        self._stage = bytearray(ram_bytes)
        self._stage_mv = memoryview(self._stage)
        self._stage_len = 0
        self._stage_n = 0
        self._hdr = bytearray(_HDR)
        self._one = bytearray(1)
        self._chunk = bytearray(_CHUNK)
        self._segs = []
        self._total = 0
        self._next_segno = 0
        self._appendable = False  # last segment accepts appends (clean tail, no write error)
        self._foff = 0  # start of the frame found by _next_frame
        self._skipped = False  # _next_frame had to skip bytes
        self._cur = [0, 0, 0]  # segno, byte offset, frame index: first unacknowledged record
        self.dropped = 0
        self.appended = 0
        self.acked = 0
        self.repaired = 0
        self.corrupt = 0
        self.flash_errors = 0
        self.set_aside = 0  # unreadable entries renamed to .bad since this open
        self.drop_full = 0
        self.drop_ram = 0
        self.drop_lost = 0
        self._saved = (0x7FFFFFFF, 0, 0)  # (newest segment, its records, staged) at the last save
        self._seq_of = seq_of
        self.max_seq = -1  # highest record seq held (seq_of), -1: none / unknown
        self._open()

    # ---- paths and small state ----------------------------------------------------------

    def _path(self, segno):
        return "%s/%08x%s" % (self.root, segno, _SEG_EXT)

    def _save_cursor(self):
        """Persist cursor and counters.  A flash error is counted, not raised: the RAM
        state stays right, and after a reboot the old cursor only means a resend."""
        c = self._cur
        segs = self._segs
        body = b"%d %d %d %d %d %d %d %d %d %d %d %d %d %d %d" % (
            c[0],
            c[1],
            c[2],
            self.dropped,
            self.appended,
            self.acked,
            self.repaired,
            self.corrupt,
            self.max_seq + 1,  # never negative: an older reader rejects negative fields
            self.drop_full,
            self.drop_ram,
            self.drop_lost,
            # what flash held at this save: the newest segment (+1), its records, staged
            segs[-1][_NO] + 1 if segs else 0,
            segs[-1][_COUNT] if segs else 0,
            self._stage_n,
        )
        try:
            fsutil.atomic_write(self.root + "/" + _CURSOR, fsutil.seal(body))
            return True
        except OSError:
            self.flash_errors += 1
            return False

    def _load_cursor(self):
        main, tmp = fsutil.read_sealed(self.root + "/" + _CURSOR)
        # The committed file is never ahead of reality; a complete .tmp (cut before the
        # rename) is the newer state.  Either is safe: at worst a batch is sent again.
        body = main if main is not None else tmp
        if body is None:
            return False
        try:
            v = [int(x) for x in body.split()]
        except ValueError:
            return False
        if len(v) < 8 or min(v) < 0:
            return False
        self._cur = [v[0], v[1], v[2]]
        self.dropped, self.appended, self.acked, self.repaired, self.corrupt = v[3:8]
        if len(v) > 8:  # a cursor written before max_seq was kept has 8 fields
            self.max_seq = max(self.max_seq, v[8] - 1)
        if len(v) > 11:  # drop reasons (older cursors: only the total)
            self.drop_full, self.drop_ram, self.drop_lost = v[9:12]
        if len(v) > 14:
            self._saved = (v[12] - 1, v[13], v[14])
        return True

    # ---- open: scan, repair, place the cursor -----------------------------------------

    def _open(self):
        fsutil.makedirs(self.root)
        have_cursor = self._load_cursor()
        nos = []
        for name in os.listdir(self.root):
            if name.endswith(_SEG_EXT + fsutil.TMP_SUFFIX):
                fsutil.remove_quiet(self.root + "/" + name)  # an interrupted repair copy
            elif name.endswith(_SEG_EXT) and len(name) == 8 + len(_SEG_EXT):
                try:
                    nos.append(int(name[:8], 16))
                except ValueError:
                    pass
        nos.sort()
        cur = self._cur
        last = nos[-1] if nos else -1
        for no in nos:
            path = self._path(no)
            if have_cursor and no < cur[0]:
                fsutil.remove_quiet(path)  # fully acknowledged; its deletion was cut short
                continue
            size = fsutil.size(path)
            try:
                count, end, middle = self._scan(path, size)
            except OSError:  # a directory in its place (EISDIR), EIO: set aside, go on
                self._set_aside(path)
                continue
            self.corrupt += middle
            if end < size:
                if no == last:
                    self._repair(path, end)
                    self.repaired += 1
                    size = end
                else:
                    self.corrupt += 1  # garbage after the last frame of an older segment
            if size <= 0:
                fsutil.remove_quiet(path)
                continue
            self._segs.append([no, size, count])
            self._total += size
        self._appendable = bool(self._segs) and self._segs[-1][_NO] == last
        self._next_segno = max(last, cur[0] if have_cursor else -1) + 1
        if self._segs:
            first = self._segs[0]
            if cur[0] != first[_NO]:
                cur[0], cur[1], cur[2] = first[_NO], 0, 0
            elif cur[1] > first[_SIZE] or cur[2] > first[_COUNT]:
                cur[1], cur[2] = 0, 0  # inconsistent cursor: resend rather than skip
        else:
            cur[0], cur[1], cur[2] = self._next_segno, 0, 0
        # every record appended was acknowledged, dropped or is still here: the rest is lost
        lost = self._missing()
        if lost > 0:
            self._dropped_lost(lost)
            self._save_cursor()
        held = self.acked + self.dropped + self.depth()
        if held > self.appended:
            self.appended = held  # never backwards: records flushed after the last save

    def _missing(self):
        """Records the last saved counters say were on flash and that are not here now.

        At a save, appended = acked + dropped + records in segments up to the newest
        (``hi``, holding ``in_hi``) + staged; records written after it (more in ``hi``,
        later segments) must not hide a loss, so only what existed then is counted.
        """
        hi, in_hi, staged = self._saved
        c = self._cur
        found = self.acked + self.dropped + staged
        for seg in self._segs:
            no = seg[_NO]
            if no > hi or no < c[0]:
                continue
            n = min(seg[_COUNT], in_hi) if no == hi else seg[_COUNT]
            if no == c[0]:
                n -= c[2]
            if n > 0:
                found += n
        return self.appended - found

    def _dropped_lost(self, n):
        self.dropped += n
        self.drop_lost += n

    def _set_aside(self, path):
        """An entry that cannot be read as a segment: renamed to .bad (kept for a look,
        never read again), removed if it cannot be renamed."""
        self.set_aside += 1
        try:
            os.rename(path, path + ".bad")
        except OSError:
            fsutil.remove_quiet(path)

    def _scan(self, path, size):
        """Valid frames in a segment: (count, end of the last valid frame, corrupt regions)."""
        count = end = middle = 0
        with open(path, "rb") as f:
            off = 0
            while True:
                n = self._next_frame(f, off, size, 0, self.max_record)
                if n <= 0:
                    break
                if self._skipped:
                    middle += 1
                if self._seq_of is not None:  # the payload is in the batch buffer at 0
                    q = self._seq_of(self._batch.own[:n])
                    if q > self.max_seq:
                        self.max_seq = q
                count += 1
                off = end = self._foff + n + _OVH
        return count, end, middle

    def _repair(self, path, end):
        """Cut a torn tail: copy the valid prefix to path.tmp and rename it over the segment."""
        if end == 0:
            fsutil.remove_quiet(path)
            return
        tmp = path + fsutil.TMP_SUFFIX
        buf = self._batch.own
        step = len(buf)
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            left = end
            while left > 0:
                k = src.readinto(buf[: min(step, left)])
                if not k:
                    break
                dst.write(buf[:k])
                left -= k
            dst.flush()
        try:
            os.rename(tmp, path)
        except OSError:
            fsutil.remove_quiet(path)
            os.rename(tmp, path)

    # ---- frame reader ---------------------------------------------------------------------

    def _next_frame(self, f, off, end, dst, room, mv=None):
        """Find the first valid frame at or after ``off`` that ends by ``end``.

        Its payload is read into the batch buffer at ``dst``.  Returns the payload
        length (frame start in ``_foff``), 0 when there is none, or -1 when the frame
        at ``_foff`` is longer than ``room`` (left for the next batch).  ``_skipped``
        tells whether bytes before it had to be skipped.
        """
        hdr = self._hdr
        if mv is None:
            mv = self._batch.own
        self._skipped = False
        while off + _OVH <= end:
            f.seek(off)
            if f.readinto(hdr) == _HDR and hdr[0] == _MAGIC:
                n = hdr[1] | (hdr[2] << 8)
                if 0 < n <= self.max_record and off + n + _OVH <= end:
                    if n > room:
                        self._foff = off
                        return -1
                    if f.readinto(mv[dst : dst + n]) == n and f.readinto(self._one) == 1:
                        crc = struct.unpack_from("<I", hdr, 3)[0]
                        if (
                            self._one[0] == _COMMIT
                            and binascii.crc32(mv[dst : dst + n]) & 0xFFFFFFFF == crc
                        ):
                            self._foff = off
                            return n
            self._skipped = True
            off = self._find_magic(f, off + 1, end)
        return 0

    def _find_magic(self, f, off, end):
        """Offset of the next magic byte at or after ``off`` (``end`` if none)."""
        chunk = self._chunk
        while off < end:
            f.seek(off)
            k = f.readinto(chunk)
            if not k:
                return end
            i = chunk.find(b"\xa5", 0, k)
            if i >= 0:
                return off + i
            off += k
        return end

    # ---- writing ----------------------------------------------------------------------------

    def append(self, payload):
        """Queue one record (bytes-like, 1..max_record bytes); written per ``flush_records``."""
        n = len(payload)
        if n < 1 or n > self.max_record:
            raise ValueError("spool record of %d bytes: must be 1..%d" % (n, self.max_record))
        need = n + _OVH
        if self._stage_len + need > len(self._stage):
            self.flush()
            while self._stage_len + need > len(self._stage):
                self._drop_staged()  # flash is failing: RAM is full, oldest goes
        if self._seq_of is not None:
            q = self._seq_of(payload)
            if q > self.max_seq:
                self.max_seq = q
        st = self._stage
        p = self._stage_len
        st[p] = _MAGIC
        struct.pack_into("<HI", st, p + 1, n, binascii.crc32(payload) & 0xFFFFFFFF)
        st[p + _HDR : p + _HDR + n] = payload
        st[p + _HDR + n] = _COMMIT
        self._stage_len = p + need
        self._stage_n += 1
        self.appended += 1
        if self._stage_n >= self.flush_records:
            self.flush()

    def _drop_staged(self):
        st = self._stage
        k = (st[1] | (st[2] << 8)) + _OVH
        rest = self._stage_len - k
        st[0:rest] = bytes(self._stage_mv[k : self._stage_len])  # rare path
        self._stage_len = rest
        self._stage_n -= 1
        self.dropped += 1
        self.drop_ram += 1

    def flush(self):
        """Write the staged records to flash.  Returns how many were written.

        On a flash error the records that did not reach flash stay staged (retried by
        the next flush) and ``flash_errors`` counts it; the segment is closed for
        appends so a partial frame can never sit before newer records.
        """
        if not self._stage_len:
            return 0
        st = self._stage
        p = 0
        written = 0
        try:
            while p < self._stage_len:
                if not self._appendable:
                    self._new_segment()
                seg = self._segs[-1]
                q = p
                k = 0
                while q < self._stage_len:
                    flen = (st[q + 1] | (st[q + 2] << 8)) + _OVH
                    if seg[_SIZE] + (q - p) + flen > self._seg_bytes:
                        break
                    q += flen
                    k += 1
                if k == 0:
                    self._appendable = False  # segment full: roll over
                    continue
                self._make_room(q - p)
                self._write(seg, p, q, k)
                p = q
                written += k
        except OSError:
            self.flash_errors += 1
            written += self._after_write_error(p)
            return written
        self._stage_len = 0
        self._stage_n = 0
        return written

    def _write(self, seg, p, q, k):
        with open(self._path(seg[_NO]), "ab") as f:
            f.write(self._stage_mv[p:q])
            f.flush()
        seg[_SIZE] += q - p
        seg[_COUNT] += k
        self._total += q - p

    def _after_write_error(self, p):
        """Keep what did not reach flash staged; count what did (a rescan of the segment)."""
        self._appendable = False
        done = 0
        if self._segs:
            seg = self._segs[-1]
            path = self._path(seg[_NO])
            size = fsutil.size(path)
            if size > seg[_SIZE]:
                count, end, _ = self._scan(path, size)
                done = count - seg[_COUNT]
                self._total += size - seg[_SIZE]
                seg[_SIZE] = size
                seg[_COUNT] = count
            elif size < 0 and seg[_SIZE] == 0:
                self._segs.pop()  # never created
        st = self._stage
        for _ in range(done):
            p += (st[p + 1] | (st[p + 2] << 8)) + _OVH
        rest = self._stage_len - p
        if p:
            st[0:rest] = bytes(self._stage_mv[p : self._stage_len])  # rare path: copy is fine
        self._stage_len = rest
        n = 0
        q = 0
        while q < rest:
            q += (st[q + 1] | (st[q + 2] << 8)) + _OVH
            n += 1
        self._stage_n = n
        return done

    def _new_segment(self):
        self._make_room(0, True)
        no = self._next_segno
        self._next_segno = no + 1
        self._segs.append([no, 0, 0])
        if len(self._segs) == 1:
            c = self._cur
            c[0], c[1], c[2] = no, 0, 0
        self._appendable = True
        # the counters on flash at least once per segment: a segment deleted from outside
        # is then found missing on open (appended - acked - dropped - depth)
        self._save_cursor()

    def _make_room(self, nbytes, new_segment=False):
        """Delete oldest segments until ``nbytes`` more (and maybe one more file) fit."""
        segs = self._segs
        extra = 1 if new_segment else 0
        while segs and (
            self._total + nbytes > self.max_bytes or len(segs) + extra > self.max_segments
        ):
            if not new_segment and len(segs) == 1:
                break  # the segment being written is never dropped
            self._drop_oldest()

    def _drop_oldest(self):
        seg = self._segs.pop(0)
        c = self._cur
        lost = seg[_COUNT]
        if c[0] == seg[_NO]:
            lost -= c[2]
        elif c[0] > seg[_NO]:
            lost = 0
        self.dropped += lost
        self.drop_full += lost
        nxt = self._segs[0][_NO] if self._segs else self._next_segno
        if c[0] <= seg[_NO]:
            c[0], c[1], c[2] = nxt, 0, 0
        self._total -= seg[_SIZE]
        if not self._segs:
            self._appendable = False
        self._save_cursor()  # persist the count (and the cursor) before the data goes
        fsutil.remove_quiet(self._path(seg[_NO]))

    # ---- reading and acknowledging ----------------------------------------------------

    def peek_batch(self, max_records=0, max_bytes=0, after=None, into=None):
        """The oldest unacknowledged records, chronological, not removed (see ``ack``).

        Flushes staged records first.  At most ``max_records`` records and
        ``max_bytes`` payload bytes (0 or more than configured: the configured
        batch limits).  Returns the spool's reused ``Batch``; an empty batch means
        nothing is waiting.  ``after``: a batch
        still in flight (not acknowledged): the records that follow it, so a second
        batch can go out before the first one's result (``ack`` them in order).

        ``into``: a memoryview the payloads are read into instead of the batch's own
        buffer (``max_bytes`` of it at most, 0: all of it), left packed at its end: the
        uplink encodes a batch into the front of the same buffer, each record read
        before its bytes can be overwritten (``records.encode_batch``'s ``tail``), so
        its payload buffer and the packed batch are one block (issue 11).
        """
        self.flush()
        b = self._batch
        cap_n = len(b.offs) - 1
        if into is None:
            b.mv = b.own
        else:
            b.mv = into
        cap_b = len(b.mv)
        if max_records <= 0 or max_records > cap_n:
            max_records = cap_n
        if max_bytes <= 0 or max_bytes > cap_b:
            max_bytes = cap_b
        c = self._cur
        b.count = 0
        b.nbytes = 0
        segno, off, idx = c[0], c[1], c[2]
        if after is not None and after.count:
            k = after.count - 1
            es, eo = after.end_segs[k], after.end_offs[k]
            if es > segno or (es == segno and eo > off):  # else dropped meanwhile: cursor
                segno, off, idx = es, eo, after.end_idxs[k]
        for seg in self._segs:
            if seg[_NO] < segno:
                continue
            if seg[_NO] > segno:
                segno, off, idx = seg[_NO], 0, 0
            if idx >= seg[_COUNT]:
                continue
            if b.count >= max_records:
                break
            full = False
            try:
                f = open(self._path(segno), "rb")
            except OSError:  # deleted or replaced from outside while running
                self._dropped_lost(seg[_COUNT] - idx)
                seg[_COUNT] = idx
                continue
            with f:
                while b.count < max_records and idx < seg[_COUNT]:
                    n = self._next_frame(f, off, seg[_SIZE], b.nbytes, max_bytes - b.nbytes, b.mv)
                    if n < 0:
                        full = True
                        break
                    if n == 0:
                        # frames went bad since the scan: none left here, counted as lost
                        self._dropped_lost(seg[_COUNT] - idx)
                        seg[_COUNT] = idx
                        break
                    off = self._foff + n + _OVH
                    idx += 1
                    i = b.count
                    b.end_segs[i] = segno
                    b.end_offs[i] = off
                    b.end_idxs[i] = idx
                    b.nbytes += n
                    b.count = i + 1
                    b.offs[i + 1] = b.nbytes
            if full or b.count >= max_records:
                break
        if into is not None:
            n = b.nbytes
            end = len(into)
            if n < end:  # (a memmove: the two ranges may overlap)
                into[end - n : end] = into[:n]
            # (none read: no view kept, it would keep the caller's buffer from being freed)
            b.mv = into[end - n : end] if n else b.own
        return b

    def unlend(self):
        """Forget the caller's buffer the last ``peek_batch(into=)`` read into: a view of it
        kept here would keep it on the heap after its owner let it go (tlog.uplink's resize
        and closed second session).  The batch's positions stay (``ack`` works); its
        payloads are not valid any more."""
        b = self._batch
        b.mv = b.own

    def ack(self, batch, count=-1):
        """Remove the first ``count`` records of ``batch`` (all: -1) after the broker confirmed
        them.  Returns how many were removed.

        Records of the batch that were dropped meanwhile (spool full) are not
        counted again; acknowledging the same batch twice does nothing.
        """
        c = self._cur
        if count < 0 or count > batch.count:
            count = batch.count
        batch.count = 0
        if count == 0:
            return 0
        es = batch.end_segs[count - 1]
        eo = batch.end_offs[count - 1]
        ei = batch.end_idxs[count - 1]
        if es < c[0] or (es == c[0] and eo <= c[1]):
            return 0
        n = 0
        for seg in self._segs:
            no = seg[_NO]
            if no < c[0]:
                continue
            if no == es:
                n += ei - (c[2] if no == c[0] else 0)
                break
            n += seg[_COUNT] - (c[2] if no == c[0] else 0)
        c[0], c[1], c[2] = es, eo, ei
        self.acked += n
        gone = []
        segs = self._segs
        # A consumed segment goes, unless it is the one still being appended to.
        while segs and (
            segs[0][_NO] < c[0] or (segs[0][_NO] == c[0] and c[2] >= segs[0][_COUNT])
        ):
            if segs[0][_NO] == c[0]:
                if len(segs) == 1 and self._appendable:
                    break
                nxt = segs[1][_NO] if len(segs) > 1 else self._next_segno
                c[0], c[1], c[2] = nxt, 0, 0
            seg = segs.pop(0)
            self._total -= seg[_SIZE]
            gone.append(seg[_NO])
        if not segs:
            self._appendable = False
        self._save_cursor()  # the cursor moves first: a cut before the deletes is harmless
        for no in gone:
            fsutil.remove_quiet(self._path(no))
        return n

    # ---- status -----------------------------------------------------------------------------

    def depth(self):
        """Unacknowledged records (flash + staged)."""
        n = self._stage_n
        c = self._cur
        for seg in self._segs:
            if seg[_NO] >= c[0]:
                n += seg[_COUNT] - (c[2] if seg[_NO] == c[0] else 0)
        return n

    def flash_used(self):
        """Bytes of segment files on flash (what ``max_bytes`` bounds)."""
        return self._total

    def depth_bytes(self):
        """Bytes (frames, with their 8 B overhead) not yet acknowledged, flash + staged."""
        return self._total - self._cur[1] + self._stage_len

    def stats(self):
        return {
            "depth": self.depth(),
            "depth_bytes": self.depth_bytes(),
            "staged": self._stage_n,
            "dropped": self.dropped,
            "appended": self.appended,
            "acked": self.acked,
            "segments": len(self._segs),
            "flash_bytes": self._total,
            "repaired": self.repaired,
            "corrupt": self.corrupt,
            "flash_errors": self.flash_errors,
            "max_seq": self.max_seq,
            "drops": {"full": self.drop_full, "ram": self.drop_ram, "lost": self.drop_lost},
            "set_aside": self.set_aside,
        }

    def close(self):
        """Flush staged records and persist the counters (standby, shutdown)."""
        self.flush()
        self._save_cursor()


def record_seq(payload):
    """The seq of a packed ``tlog.records`` record (-1 for anything else): format
    version byte, flags byte, then seq as u32 LE (``records.pack_into``)."""
    if len(payload) < 10 or payload[0] != _FORMAT_VERSION:
        return -1
    return payload[2] | (payload[3] << 8) | (payload[4] << 16) | (payload[5] << 24)


def from_config(root, cfg, record_max=128, lent=False):
    """A Spool sized from a ``tlog.config.Config``.

    The batch buffer holds packed records (``record_max`` bytes at most each, the
    packed form is <= records.PACKED_MAX), at most ``batch_max_records`` of them
    and never more bytes than one publish may carry; the encoded batch is cut to
    ``batch_max_bytes`` by ``records.encode_batch`` and acknowledged partially.
    ``lent``: the reader peeks ``into`` its own buffer (tlog.uplink): the batch's own
    buffer only holds one record (the scan and repair at open), not a whole batch.
    """
    n = cfg.get("batch_max_records")
    if lent:
        n = 1  # (the end positions are still one per record: the batch's lists)
    return Spool(
        root,
        max_bytes=cfg.get("spool_max_bytes"),
        max_segments=cfg.get("spool_max_segments"),
        batch_max_records=cfg.get("batch_max_records"),
        batch_max_bytes=max(record_max, min(n * record_max, cfg.get("batch_max_bytes"))),
        # staging sized from spool_flush_records (read at boot; a larger live value flushes
        # when the staging is full), one record more so that a failed flash write keeps a
        # record staged while the next one comes: 272 bytes by default, was a 2 KB floor
        ram_bytes=(max(1, cfg.get("spool_flush_records")) + 1) * (record_max + _OVH),
        flush_records=cfg.get("spool_flush_records"),
        max_record=record_max,
        seq_of=record_seq,
    )
