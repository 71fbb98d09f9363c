"""The detection lexicon: terms for kinds, all-clears, vetoes and place cues (bot/data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from bot.text import fold

__all__ = ["Lexicon", "Term"]

LEXICON_FILE = "lexicon.tsv"
TYPO_MIN_LENGTH = 6

# Categories matched in the text itself (through the automaton).
KIND_CATEGORIES = (
    "explosion",
    "explosion_weak",
    "explosion_loud",
    "drone",
    "missile",
    "air_defense",
    "ad_action",
    "target",
)
MATCHED_CATEGORIES = (
    *KIND_CATEGORIES,
    "all_clear",
    "all_clear_verb",
    "threat",
    "quiet",
    "national",
    "retrospective",
)
MATCHED_PREFIXES = ("veto_post:", "veto_sentence:")
# Categories checked against the words around a match.
TOKEN_CATEGORIES = (
    "anchor",
    "street",
    "cue",
    "source",
    "figurative_next",
    "civil_next",
    "simile_before",
    "drone_event",
    "ad_activity",
    "continuation",
    "weapon_name",
)
GATED_CATEGORIES = (
    "anchor",
    "street",
    "source",
    "figurative_next",
    "civil_next",
    "drone_event",
    "ad_activity",
)
MATCH_TYPES = ("prefix", "word", "typo")


@dataclass(frozen=True, slots=True)
class Term:
    """A lexicon term as matched in text."""

    category: str  # e.g. "drone", "all_clear", "veto_sentence:past"
    prefix: bool  # True: the word may go on after the term
    group: str = field(init=False)  # "veto_sentence" for "veto_sentence:past"
    reason: str = field(init=False)  # "past" for "veto_sentence:past", else ""
    trigger: bool = field(init=False)  # a kind or an all-clear: worth a closer look

    def __post_init__(self) -> None:
        group, _, reason = self.category.partition(":")
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "reason", reason)
        trigger = self.category in KIND_CATEGORIES or self.category.startswith("all_clear")
        object.__setattr__(self, "trigger", trigger)


@dataclass(frozen=True, slots=True)
class TokenSet:
    """Words, or word beginnings, that a neighbouring token is checked against."""

    words: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and (token in self.words or token.startswith(self.prefixes))


@dataclass(slots=True)
class Lexicon:
    """Terms matched in text, and word sets consulted around matches."""

    terms: dict[str, list[Term]] = field(default_factory=dict)
    token_sets: dict[str, TokenSet] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> Lexicon:
        """Read lexicon.tsv; raise ValueError naming the line of a malformed rule."""
        path = path or Path(str(resources.files("bot") / "data" / LEXICON_FILE))
        lexicon = cls()
        token_words: dict[str, set[str]] = {}
        token_prefixes: dict[str, set[str]] = {}
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                line = line.rstrip("\n")
                if not line.strip() or line.startswith("#"):
                    continue
                fields = line.split("\t")
                if len(fields) != 3 or fields[1] not in MATCH_TYPES:
                    raise ValueError(f"{path}:{number}: expected 'category<TAB>match<TAB>terms'")
                category, match, raw_terms = fields
                known = category in MATCHED_CATEGORIES or category in TOKEN_CATEGORIES
                if not known and not category.startswith(MATCHED_PREFIXES):
                    raise ValueError(f"{path}:{number}: unknown category {category!r}")
                terms = [fold(term) for term in raw_terms.split("|") if term]
                if category in TOKEN_CATEGORIES:
                    target = token_prefixes if match == "prefix" else token_words
                    target.setdefault(category, set()).update(terms)
                    if category not in GATED_CATEGORIES:
                        continue
                    # Also matched, so that words around a match are read only when one
                    # of these stands somewhere in the post.
                    category = f"near:{category}"
                for term in terms:
                    lexicon._add(term, Term(category, prefix=match == "prefix"))
                    if match == "typo" and len(term) >= TYPO_MIN_LENGTH:
                        for variant in _typo_variants(term):
                            lexicon._add(variant, Term(category, prefix=False))
        for category in TOKEN_CATEGORIES:
            lexicon.token_sets[category] = TokenSet(
                frozenset(token_words.get(category, ())),
                tuple(sorted(token_prefixes.get(category, ()))),
            )
        return lexicon

    def _add(self, key: str, term: Term) -> None:
        bucket = self.terms.setdefault(key, [])
        if term not in bucket:
            bucket.append(term)


def _typo_variants(word: str) -> set[str]:
    """Return the word with one letter dropped or two neighbouring letters swapped."""
    variants = {word[:i] + word[i + 1 :] for i in range(1, len(word))}
    variants |= {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(1, len(word) - 1)}
    variants.discard(word)
    return variants
