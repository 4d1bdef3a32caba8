"""Inbox: committed messages in order, oversize and torn ones counted, the held slot safe."""

from atmq.inbox import Inbox


def put(ib, topic, payload):
    s = ib.start(len(topic), len(payload))
    if s < 0:
        return s
    ib.topic_buf(s)[: len(topic)] = topic
    ib.topic_fill = len(topic)
    ib.payload_buf(s)[: len(payload)] = payload
    ib.payload_fill = len(payload)
    return ib.commit()


def take(ib):
    s = ib.get()
    if s < 0:
        return None
    m = (bytes(ib.topic(s)), bytes(ib.payload(s)))
    ib.release()
    return m


def test_order_and_lengths():
    ib = Inbox(3, 8, 16)
    for i in range(3):
        assert put(ib, b"t/%d" % i, b"p%d" % i) >= 0
    got = [take(ib) for _ in range(4)]
    assert got == [(b"t/0", b"p0"), (b"t/1", b"p1"), (b"t/2", b"p2"), None]
    assert ib.received == 3


def test_oversize_and_torn_are_counted_not_kept():
    ib = Inbox(2, 8, 16)
    assert ib.start(9, 1) == -1 and ib.start(1, 17) == -1
    assert ib.oversize == 2
    assert ib.start(3, 4) >= 0
    ib.topic_fill = 3
    ib.payload_fill = 2  # the modem stopped mid-payload
    assert ib.commit() == -1 and ib.torn == 1
    assert take(ib) is None


def test_full_overwrites_oldest_unless_it_is_being_read():
    ib = Inbox(2, 8, 16)
    put(ib, b"a", b"1")
    put(ib, b"b", b"2")
    put(ib, b"c", b"3")  # overwrites a
    assert ib.overwritten == 1
    s = ib.get()  # the app now reads b ...
    assert bytes(ib.topic(s)) == b"b"
    assert put(ib, b"d", b"4") == -1  # ... so d is dropped instead of taking b's slot
    assert bytes(ib.topic(s)) == b"b" and ib.overwritten == 2
    ib.release()
    assert take(ib) == (b"c", b"3") and take(ib) is None
