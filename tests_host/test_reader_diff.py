"""The reader against the plain reference reader on CPython: 10 M bytes of AT-like and
random traffic in CI (three seeds, every chunking 1..512), the unix port reads another 10 M
(tests_device/test_reader_diff_device.py); ``DIFF_BYTES=N`` for more.  The reference is
checked to catch a difference: a reader that deviates in one rule fails here."""

import os

import difftest
import pytest
import refreader

BUDGET = int(os.environ.get("DIFF_BYTES") or 0) or 10_000_000


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reader_matches_reference_on_cpython(seed):
    cases, n = difftest.run(seed, BUDGET // 3)
    assert cases > 100 and n >= BUDGET // 3


def _mutants():
    split = refreader.split_args
    byte = refreader.RefReader._byte

    def fewer_args(line, m):
        return split(line, m)[: m - 1]

    def keep_nul(self, c):
        if c == 0:
            return None
        return byte(self, c)

    def space_kept(self, c):
        self.eat_space = False
        return byte(self, c)

    def world_engine_only(self, k):  # the reference misses the event gate and the seen word
        self.evn[2] = 1 if k == 3 else 0
        self.seen[0] = (0, 6, 2, 7)[k]

    return [("split_args", fewer_args, refreader), ("_byte", keep_nul, refreader.RefReader),
            ("_byte", space_kept, refreader.RefReader),
            ("set_world", world_engine_only, difftest.Pair)]


@pytest.mark.parametrize("i", range(4))
def test_the_differential_test_can_fail(monkeypatch, i):
    name, fn, where = _mutants()[i]
    monkeypatch.setattr(where, name, fn)
    with pytest.raises(AssertionError):
        difftest.run(1, 300_000)
