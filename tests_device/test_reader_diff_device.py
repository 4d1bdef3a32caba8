"""The reader against the plain reference reader on MicroPython: 10 M bytes of AT-like and
random traffic in CI (three seeds, every chunking 1..512); ``DIFF_BYTES=N`` for more."""

import os

import difftest

_SEEDS = (11, 12, 13)


def _budget():
    try:
        return int(os.getenv("DIFF_BYTES") or 0) or 10_000_000
    except (AttributeError, ValueError):
        return 10_000_000


def test_reader_matches_reference_on_micropython():
    total = 0
    per = _budget() // len(_SEEDS)
    for seed in _SEEDS:
        cases, n = difftest.run(seed, per)
        assert cases > 100
        total += n
    print("diff bytes", total)
    assert total >= _budget()
