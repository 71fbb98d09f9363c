"""Near-duplicate posts: shingles of the text that is left after the noise, and an index.

Copies and light rewrites of one report are found by the Jaccard similarity of the posts'
character 5-gram shingles, taken from the text with links, mentions, hashtags, numbers,
emoji, punctuation and channel signatures removed. Two posts are near-duplicates at
`NEAR_DUPLICATE_JACCARD` (0.5) or above. On the dev corpus, copies and forwards score
1.0 and a light rewrite («атака БПЛА» → «атака беспилотников») 0.62, while templated
official posts about different events («В Туапсе в результате атаки БПЛА…» against «В
Славянском районе…») stay at 0.39 or below.

Candidates are found with bottom-k MinHash: each post is indexed under its `SKETCH_SIZE`
smallest shingle hashes, the k minima of one hash function. Two posts with Jaccard J
share a given minimum with probability J, so a post at J ≥ 0.5 is missed with
probability about 0.5⁸ (0.4%). Candidates are then compared exactly, at most
`CANDIDATES_PER_MINIMUM` of the latest under each minimum, so a text repeated a thousand
times costs no more than one repeated eight times. Hashes are CRC-32, so the same posts
give the same answers in every process.
"""

from __future__ import annotations

import heapq
import re
import zlib
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Generic, TypeVar

from bot.text import fold

__all__ = [
    "NEAR_DUPLICATE_JACCARD",
    "NearDuplicateIndex",
    "Shingles",
    "jaccard",
    "normalize",
    "shingles",
]

NEAR_DUPLICATE_JACCARD = 0.5
SHINGLE_SIZE = 5  # characters
SKETCH_SIZE = 8  # minima a post is indexed under
# Posts compared for each minimum, the latest first: a text repeated a thousand times
# («Работает ПВО!») must not make every post compare against all of its copies.
CANDIDATES_PER_MINIMUM = 8
SIGNATURE_MAX_WORDS = 12  # a trailing line longer than this is content, not a signature
# Only the beginning of a long post is shingled: copies and rewrites share their opening,
# and the cost of a post (and of comparing two) stays bounded.
SHINGLED_CHARACTERS = 320

K = TypeVar("K", bound=Hashable)

_LINK_RE = re.compile(r"(?:https?://|www\.|t\.me/)\S*|@\w+|#\w+|\d+")
_WORD_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
_SIGNATURE_RE = re.compile(
    r"@\w|t\.me/|https?://|подпис|підпис|subscribe|прислать новость|надіслати новину"
    r"|предложить новость|запропонувати новину|наш канал|our channel"
)


def normalize(text: str) -> str:
    """Return the words a near-duplicate is judged on, lower-cased and space-separated.

    Trailing signature lines («Подписаться на SHOT», «@astrapress») go first, then links,
    mentions, hashtags and numbers; what is left is the words, without emoji or punctuation.
    """
    lines = fold(text).strip().splitlines()
    while len(lines) > 1 and _is_signature(lines[-1]):
        lines.pop()
    body = _LINK_RE.sub(" ", "\n".join(lines))
    return " ".join(_WORD_RE.findall(body))


def _is_signature(line: str) -> bool:
    words = line.split()
    return not words or (len(words) <= SIGNATURE_MAX_WORDS and bool(_SIGNATURE_RE.search(line)))


@dataclass(frozen=True, slots=True)
class Shingles:
    """The shingle hashes of one post, and the few minima it is indexed under."""

    hashes: frozenset[int]
    sketch: tuple[int, ...]


def shingles(text: str) -> Shingles:
    """Return the character 5-gram shingle hashes of a post's normalised text (its start)."""
    words = normalize(text)[:SHINGLED_CHARACTERS]
    if not words:
        return Shingles(frozenset(), ())
    if len(words) <= SHINGLE_SIZE:
        grams = {words}
    else:
        grams = {words[i : i + SHINGLE_SIZE] for i in range(len(words) - SHINGLE_SIZE + 1)}
    hashes = frozenset(zlib.crc32(gram.encode()) for gram in grams)
    return Shingles(hashes, tuple(heapq.nsmallest(SKETCH_SIZE, hashes)))


def jaccard(a: Shingles, b: Shingles) -> float:
    """Return the Jaccard similarity of two shingle sets (0.0 when either is empty)."""
    if not a.hashes or not b.hashes:
        return 0.0
    common = len(a.hashes & b.hashes)
    return common / (len(a.hashes) + len(b.hashes) - common)


class NearDuplicateIndex(Generic[K]):
    """Find near-duplicates among the posts added, without comparing against all of them."""

    def __init__(self, threshold: float = NEAR_DUPLICATE_JACCARD) -> None:
        self.threshold = threshold
        self._shingles: dict[K, Shingles] = {}
        self._buckets: dict[int, dict[K, None]] = {}  # insertion-ordered: latest last

    def __len__(self) -> int:
        return len(self._shingles)

    def add(self, key: K, value: Shingles) -> None:
        """Index a post's shingles under `key` (replacing what the key held)."""
        self.remove(key)
        if not value.hashes:
            return
        self._shingles[key] = value
        for minimum in value.sketch:
            self._buckets.setdefault(minimum, {})[key] = None

    def remove(self, key: K) -> None:
        """Forget a post; a key that is not indexed is ignored."""
        value = self._shingles.pop(key, None)
        if value is None:
            return
        for minimum in value.sketch:
            bucket = self._buckets.get(minimum)
            if bucket is not None:
                bucket.pop(key, None)
                if not bucket:
                    del self._buckets[minimum]

    def candidates(self, value: Shingles) -> set[K]:
        """Return the posts that share a minimum with `value` (the latest few per minimum)."""
        found: set[K] = set()
        for minimum in value.sketch:
            bucket = self._buckets.get(minimum)
            if bucket:
                found.update(islice(reversed(bucket), CANDIDATES_PER_MINIMUM))
        return found

    def get(self, key: K) -> Shingles | None:
        """Return the shingles indexed under a key, or None."""
        return self._shingles.get(key)

    def matches(self, value: Shingles, keys: Iterable[K]) -> list[tuple[K, float]]:
        """Return those of `keys` at or above the threshold, most similar first."""
        found = []
        size = len(value.hashes)
        for key in keys:
            indexed = self._shingles.get(key)
            if indexed is None:
                continue
            small, large = sorted((size, len(indexed.hashes)))
            if small < large * self.threshold:
                continue  # sizes alone keep the Jaccard similarity below the threshold
            score = jaccard(value, indexed)
            if score >= self.threshold:
                found.append((key, score))
        found.sort(key=lambda item: (-item[1], repr(item[0])))
        return found

    def similar(self, value: Shingles) -> list[tuple[K, float]]:
        """Return the indexed posts at or above the threshold, most similar first.

        Of posts sharing a minimum, only the latest `CANDIDATES_PER_MINIMUM` are compared.
        """
        return self.matches(value, self.candidates(value))
