"""Counts a post reports: «от пяти до восьми взрывов», «5–8 blasts», «сбиты 12 БПЛА».

A count is the number that stands right before a kind's word the detector found (at most
one adjective between: «19 украинских беспилотников»), in digits or words, in Russian,
Ukrainian or English (bot/data/numbers.tsv). A range counts as its upper end, and tens
and units add up («двадцать пять»). Times («в 23:40 взрывы»), years and numbers after
the word («12 над краем») are not counts. Pure: text in, evidence out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bot.models import Evidence, Kind
from bot.text import fold

__all__ = ["CountReader", "largest_counts"]

NUMBERS_FILE = "numbers.tsv"
COUNTED_KINDS = frozenset({Kind.EXPLOSION.value, Kind.DRONE.value, Kind.MISSILE.value})
LOOKBACK = 48  # characters before a kind's word where its count may stand
MAX_COUNT = 1000  # larger numbers before a kind's word are years, sums or ids, not counts
RANGE_WORDS = frozenset({"до", "или", "либо", "або", "чи", "to", "or", "и", "і", "та", "-"})
ADJECTIVE_ENDINGS = (
    "ых", "их", "ые", "ие", "ый", "ий", "ая", "яя", "ое", "ее", "ую",  # Russian
    "іх", "і",  # Ukrainian plural adjectives
    "ian", "an", "ed", "ese",  # English: Russian, Ukrainian, guided, Chinese
)  # fmt: skip
_TOKEN_RE = re.compile(r"\d+|[^\W\d_]+(?:'[^\W\d_]+)*|[-–—]")
_SENTENCE_BREAK_RE = re.compile(r"[.!?;\n]")


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    start: int
    end: int


class CountReader:
    """Read the counts a post reports next to its kind words."""

    def __init__(self, words: Mapping[str, int]) -> None:
        self.words = dict(words)

    @classmethod
    def load(cls, path: Path | None = None) -> CountReader:
        """Read number words from bot/data/numbers.tsv (or `path`)."""
        path = path or Path(str(resources.files("bot") / "data" / NUMBERS_FILE))
        words: dict[str, int] = {}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            try:
                value, forms = line.split("\t")
                for form in forms.split("|"):
                    words[fold(form.strip())] = int(value)
            except ValueError as err:
                raise ValueError(f"{path}:{number}: expected 'value<TAB>forms'") from err
        return cls(words)

    def counts(self, text: str, evidence: Iterable[Evidence]) -> list[Evidence]:
        """Return one "count" evidence per kind word that has a count before it."""
        found = []
        for item in evidence:
            if item.kind not in COUNTED_KINDS or not item.rule.startswith("term:"):
                continue
            window_start = max(0, item.start - LOOKBACK)
            window = text[window_start : item.start]
            breaks = list(_SENTENCE_BREAK_RE.finditer(window))
            if breaks:
                window_start += breaks[-1].end()
                window = window[breaks[-1].end() :]
            tokens = [  # fold keeps offsets, so the window is folded once
                _Token(m.group(), window_start + m.start(), window_start + m.end())
                for m in _TOKEN_RE.finditer(fold(window))
            ]
            read = self._read_back(text, tokens)
            if read is not None:
                value, start = read
                found.append(
                    Evidence(
                        rule="count",
                        text=text[start : item.end],
                        start=start,
                        end=item.end,
                        kind=item.kind,
                        count=value,
                    )
                )
        return found

    def _read_back(self, text: str, tokens: list[_Token]) -> tuple[int, int] | None:
        """Return the largest number in the run that ends the tokens, and where it starts."""
        if tokens and self._value(text, tokens[-1]) is None and _adjective(tokens[-1].text):
            tokens = tokens[:-1]  # «19 украинских беспилотников»
        groups: list[int] = []
        current: list[int] = []
        start = None
        for token in reversed(tokens):
            value = self._value(text, token)
            if value is not None:
                current.append(value)
                start = token.start
            elif token.text in RANGE_WORDS or token.text in ("–", "—"):
                if not current:
                    break
                groups.append(_add_up(current))
                current = []
            else:
                break
        if current:
            groups.append(_add_up(current))
        groups = [value for value in groups if 0 < value <= MAX_COUNT]
        if not groups or start is None:
            return None
        return max(groups), start

    def _value(self, text: str, token: _Token) -> int | None:
        if token.text.isdigit():
            if text[token.start - 1 : token.start] in (":", ".", ",") or text[
                token.end : token.end + 1
            ] in (":", ".", ","):
                return None  # a time, a date or a decimal
            return int(token.text) if len(token.text) <= 4 else None
        return self.words.get(token.text)


def _adjective(word: str) -> bool:
    return len(word) > 3 and word.endswith(ADJECTIVE_ENDINGS)


def _add_up(values: list[int]) -> int:
    """Add tens and units read right to left («двадцать пять» → [5, 20] → 25)."""
    if len(values) == 2 and values[0] < 10 <= values[1] and values[1] % 10 == 0:
        return values[0] + values[1]
    return max(values)


def largest_counts(evidence: Iterable[Evidence]) -> dict[str, int]:
    """Return the largest count reported for each kind in the evidence."""
    largest: dict[str, int] = {}
    for item in evidence:
        if item.rule == "count" and item.kind and item.count:
            largest[item.kind] = max(largest.get(item.kind, 0), item.count)
    return largest
