"""Kept for the drivers' imports: the tokenizer is part of ``atmq.reader`` now.

New code imports from ``atmq.reader``; these are the same objects, not copies.
"""

from .reader import (  # noqa: F401
    RAW_MAX,
    T_LINE,
    T_LOST,
    T_NONE,
    T_PROMPT,
    T_RAW,
    Args,
    _copy,
    head_hash,
)
