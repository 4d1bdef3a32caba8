"""Inbound MQTT messages, assembled by the reader into preallocated slots.

A driver's URC handlers fill a slot while the modem streams a message
(``start`` with the announced lengths, raw frames copied straight into
``topic_buf(slot)``/``payload_buf(slot)``, ``commit``); the application side
takes committed messages in arrival order with ``get``/``release``.  Nothing
allocates after construction.  A message larger than the configured maximums
is dropped and counted (``oversize``), never truncated silently; when every
slot is full the oldest unread message is overwritten and counted
(``overwritten``), as mqtt_as does, so a slow consumer cannot stall the modem.
The one exception is the slot the application is reading (between ``get``
and ``release``): it is never overwritten; the incoming message is dropped
and counted in ``overwritten`` instead.

The state is one int array (``I_*`` slots of ``atmq.reader``, mirrored below):
the reader's *commit entry* (``Engine.on_commit``) ends a message that went as
announced in viper, with no Python call.
"""

from array import array

from .compat import const, micropython
from .reader import inbox_get, inbox_release

_I_READ = const(0)  # = atmq.reader.I_READ
_I_N = const(1)  # = atmq.reader.I_N
_I_WRITE = const(2)  # = atmq.reader.I_WRITE
_I_HELD = const(3)  # = atmq.reader.I_HELD
_I_WANT_T = const(4)  # = atmq.reader.I_WANT_T
_I_WANT_P = const(5)  # = atmq.reader.I_WANT_P
_I_TFILL = const(6)  # = atmq.reader.I_TFILL
_I_PFILL = const(7)  # = atmq.reader.I_PFILL
_I_RECEIVED = const(8)  # = atmq.reader.I_RECEIVED
_I_OVERSIZE = const(9)  # = atmq.reader.I_OVERSIZE
_I_OVERWRITTEN = const(10)  # = atmq.reader.I_OVERWRITTEN
_I_TORN = const(11)  # = atmq.reader.I_TORN
_I_SLOTS = const(12)  # = atmq.reader.I_SLOTS
_I_SIZE_OF = const(13)  # = atmq.reader.I_SIZE_OF


class Inbox:
    def __init__(self, slots=4, topic_max=128, payload_max=2048):
        if slots < 1:
            raise ValueError("Inbox needs at least one slot")
        self.topic_max = topic_max
        self.payload_max = payload_max
        self._topics = [bytearray(topic_max) for _ in range(slots)]
        self._payloads = [bytearray(payload_max) for _ in range(slots)]
        self._tlen = array("H", bytes(2 * slots))
        self._plen = array("H", bytes(2 * slots))
        # read index, committed count, the slot being written + 1 (0: none), the oldest slot
        # held by its reader (get() without release()), announced and received lengths of
        # the slot being written, counters
        st = self.st = array("i", bytes(4 * _I_SIZE_OF))
        st[_I_SLOTS] = slots

    # counters and the fill of the slot being written (drivers set the fills before commit)
    @property
    def received(self):
        return self.st[_I_RECEIVED]

    @property
    def oversize(self):
        return self.st[_I_OVERSIZE]

    @property
    def overwritten(self):
        return self.st[_I_OVERWRITTEN]

    @property
    def torn(self):
        return self.st[_I_TORN]

    @property
    def topic_fill(self):
        return self.st[_I_TFILL]

    @topic_fill.setter
    def topic_fill(self, n):
        self.st[_I_TFILL] = n

    @property
    def payload_fill(self):
        return self.st[_I_PFILL]

    @payload_fill.setter
    def payload_fill(self, n):
        self.st[_I_PFILL] = n

    # ---- writer side (URC handlers, inside the reader) ----

    @micropython.native
    def start(self, topic_len, payload_len):
        """Reserve a slot for a message of the given total lengths; -1 if it cannot be kept."""
        st = self.st
        if st[_I_WRITE]:  # previous message never ended: the modem restarted it
            st[_I_TORN] += 1
            st[_I_WRITE] = 0
        if topic_len > self.topic_max or payload_len > self.payload_max or topic_len < 0:
            st[_I_OVERSIZE] += 1
            return -1
        slots = st[_I_SLOTS]
        if st[_I_N] == slots:
            st[_I_OVERWRITTEN] += 1
            if st[_I_HELD]:  # never pull the slot out from under its reader
                return -1
            st[_I_READ] = (st[_I_READ] + 1) % slots
            st[_I_N] -= 1
        w = (st[_I_READ] + st[_I_N]) % slots
        st[_I_WRITE] = w + 1
        st[_I_WANT_T] = topic_len
        st[_I_WANT_P] = payload_len
        st[_I_TFILL] = 0
        st[_I_PFILL] = 0
        return w

    def writing(self):
        return self.st[_I_WRITE] - 1

    @micropython.native
    def next_slot(self):
        """The slot the next ``start`` takes without overwriting anything, or -1 (full, or a
        message is being written).  Only ``start``/``commit`` move it (``release`` frees a
        slot but leaves it): a driver may fill it before it calls ``start``."""
        st = self.st
        if st[_I_WRITE] or st[_I_N] == st[_I_SLOTS]:
            return -1
        return (st[_I_READ] + st[_I_N]) % st[_I_SLOTS]

    @micropython.native
    def topic_buf(self, slot):
        return self._topics[slot]

    @micropython.native
    def payload_buf(self, slot):
        return self._payloads[slot]

    @micropython.native
    def commit(self):
        """End of message: keep it if every announced byte arrived; returns the slot or -1."""
        st = self.st
        w = st[_I_WRITE] - 1
        if w < 0:
            return -1
        st[_I_WRITE] = 0
        if st[_I_TFILL] != st[_I_WANT_T] or st[_I_PFILL] != st[_I_WANT_P]:
            st[_I_TORN] += 1
            return -1
        self._tlen[w] = st[_I_TFILL]
        self._plen[w] = st[_I_PFILL]
        st[_I_N] += 1
        st[_I_RECEIVED] += 1
        return w

    @micropython.native
    def abandon(self):
        st = self.st
        if st[_I_WRITE]:
            st[_I_WRITE] = 0
            st[_I_TORN] += 1

    # ---- reader side (the application) ----

    def __len__(self):
        return self.st[_I_N]

    get = inbox_get  # (viper, in atmq.reader) slot of the oldest message, or -1; valid
    # until release() (= inbox_release)

    def topic(self, slot):
        return memoryview(self._topics[slot])[: self._tlen[slot]]

    def payload(self, slot):
        return memoryview(self._payloads[slot])[: self._plen[slot]]

    @micropython.native
    def topic_len(self, slot):
        return self._tlen[slot]

    @micropython.native
    def payload_len(self, slot):
        return self._plen[slot]

    release = inbox_release
