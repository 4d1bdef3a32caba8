"""Modem transcript replays on the MicroPython unix port: the same scenarios as
tests_host/test_modem.py (modem_scenarios.py), every transcript at chunk sizes 1 and 7
and a seeded random chunking, through the real Engine, Modem and ReplayModem."""

import os

import asyncio
import modem_scenarios
from atxreplay import Seeded


def _files():
    return sorted(n for n in os.listdir(modem_scenarios.TRANSCRIPTS[:-1]) if n.endswith(".atx"))


def _all(chunk):
    n = 0
    for name in _files():
        try:
            asyncio.run(modem_scenarios.run(modem_scenarios.TRANSCRIPTS + name, chunk))
        except Exception as e:
            raise AssertionError("%s (chunk %r): %r" % (name, chunk, e)) from None
        n += 1
    if n < 14:
        raise AssertionError("only %d modem transcripts found" % n)


def test_modem_transcripts_chunk_1():
    _all(1)


def test_modem_transcripts_chunk_7():
    _all(7)


def test_modem_transcripts_random_chunks():
    _all(Seeded(13, seed=7))


def test_cclk_and_csq_helpers():
    from atmq.modem import csq_dbm, parse_cclk

    if parse_cclk("24/01/01,02:15:00-20") != (1704093300 - 946684800, -20):
        raise AssertionError("CCLK negative zone")
    if parse_cclk("80/01/06,00:00:49+00") is not None:
        raise AssertionError("unsynced clock must be None")
    if csq_dbm(99) is not None or csq_dbm(31) != -51:
        raise AssertionError("CSQ scale")
