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
"""

from array import array

from .compat import micropython


class Inbox:
    def __init__(self, slots=4, topic_max=128, payload_max=2048):
        self.topic_max = topic_max
        self.payload_max = payload_max
        self._topics = [bytearray(topic_max) for _ in range(slots)]
        self._payloads = [bytearray(payload_max) for _ in range(slots)]
        self._tlen = array("H", bytes(2 * slots))
        self._plen = array("H", bytes(2 * slots))
        self._slots = slots
        self._r = 0  # oldest committed slot
        self._n = 0  # committed slots
        self._w = -1  # slot being written, -1 when none
        self._held = False  # the oldest slot is being read (get() without release())
        self._want_t = 0
        self._want_p = 0
        self.topic_fill = 0  # bytes received so far for the slot being written
        self.payload_fill = 0
        self.received = 0
        self.oversize = 0
        self.overwritten = 0
        self.torn = 0

    # ---- writer side (URC handlers, inside the reader) ----

    @micropython.native
    def start(self, topic_len, payload_len):
        """Reserve a slot for a message of the given total lengths; -1 if it cannot be kept."""
        if self._w >= 0:  # previous message never ended: the modem restarted it
            self.torn += 1
            self._w = -1
        if topic_len > self.topic_max or payload_len > self.payload_max or topic_len < 0:
            self.oversize += 1
            return -1
        if self._n == self._slots:
            self.overwritten += 1
            if self._held:  # never pull the slot out from under its reader
                return -1
            self._r = (self._r + 1) % self._slots
            self._n -= 1
        w = (self._r + self._n) % self._slots
        self._w = w
        self._want_t = topic_len
        self._want_p = payload_len
        self.topic_fill = 0
        self.payload_fill = 0
        return w

    def writing(self):
        return self._w

    @micropython.native
    def next_slot(self):
        """The slot the next ``start`` takes without overwriting anything, or -1 (full, or a
        message is being written).  Only ``start``/``commit`` move it (``release`` frees a
        slot but leaves it): a driver may fill it before it calls ``start``."""
        if self._w >= 0 or self._n == self._slots:
            return -1
        return (self._r + self._n) % self._slots

    @micropython.native
    def topic_buf(self, slot):
        return self._topics[slot]

    @micropython.native
    def payload_buf(self, slot):
        return self._payloads[slot]

    @micropython.native
    def commit(self):
        """End of message: keep it if every announced byte arrived; returns the slot or -1."""
        w = self._w
        if w < 0:
            return -1
        self._w = -1
        if self.topic_fill != self._want_t or self.payload_fill != self._want_p:
            self.torn += 1
            return -1
        self._tlen[w] = self.topic_fill
        self._plen[w] = self.payload_fill
        self._n += 1
        self.received += 1
        return w

    @micropython.native
    def abandon(self):
        if self._w >= 0:
            self._w = -1
            self.torn += 1

    # ---- reader side (the application) ----

    def __len__(self):
        return self._n

    @micropython.native
    def get(self):
        """Slot of the oldest message, or -1; valid until ``release``."""
        if self._n == 0:
            return -1
        self._held = True
        return self._r

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

    @micropython.native
    def release(self):
        self._held = False
        if self._n:
            self._r = (self._r + 1) % self._slots
            self._n -= 1
