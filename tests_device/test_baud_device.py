"""atmq.baud transcripts on the MicroPython unix port (baud_cases.py), chunk sizes 1 and
seeded random, through the real Engine and ReplayModem."""

import os

import asyncio
import baud_cases
from atxreplay import Seeded


def _all(chunk):
    names = sorted(n for n in os.listdir(baud_cases.TRANSCRIPTS[:-1]) if n.endswith(".atx"))
    for name in names:
        try:
            asyncio.run(baud_cases.run(baud_cases.TRANSCRIPTS + name, chunk))
        except Exception as e:
            raise AssertionError("%s (chunk %r): %r" % (name, chunk, e)) from None
    if len(names) < 9:
        raise AssertionError("only %d baud transcripts found" % len(names))


def test_baud_transcripts_chunk_1():
    _all(1)


def test_baud_transcripts_random_chunks():
    _all(Seeded(13, seed=5))
