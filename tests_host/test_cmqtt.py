"""CMQTT driver: every transcript replay at chunk sizes 1, 2, 3, 7 and seeded random,
plus input validation that must refuse before a byte is written."""

import asyncio
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "tests_device"))
import cmqtt_cases as C  # noqa: E402  # pyright: ignore[reportMissingImports]

CHUNKS = [1, 2, 3, 7, "random"]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("name", C.NAMES)
def test_replay(name, chunk):
    asyncio.run(C.run_case(name, chunk))
