"""What the configuration's error messages need and the boot does not (imported on error).

Owns the "did you mean" for a typo'd key (an edit distance over the schema's
names) and the wording of each string class's allowed characters.  Kept apart
from tlog.config so none of it takes RAM unless an error is being reported.
"""

CLASS_TEXT = {
    "id": "A-Z a-z 0-9 _ - .",
    "file": "A-Z a-z 0-9 _ - .",
    "host": "A-Z a-z 0-9 . - :",
    "digits": "0-9",
    "hex": "hex digits",
    "text": 'printable ASCII without " and \\',
    "topic": 'printable ASCII without + # " \\',
}


def distance(a, b):
    """Edit distance (insert, delete, replace, swap of neighbours)."""
    prev2 = None
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if (prev2 is not None and i > 1 and j > 1 and a[i - 1] == b[j - 2]
                    and a[i - 2] == b[j - 1]):
                d = min(d, prev2[j - 2] + 1)
            cur[j] = d
        prev2, prev = prev, cur
    return prev[len(b)]


def suggest(key, names):
    """The name in ``names`` closest to a typo'd ``key`` (at most 2 edits), or None."""
    if not isinstance(key, str) or len(key) > 40:
        return None
    best = None
    best_d = 3
    for k in names:
        d = distance(key.lower(), k)
        if d < best_d:
            best, best_d = k, d
    return best
