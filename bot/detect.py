"""Detection: does a post report a current attack in a region, and why (a pure function).

One Aho-Corasick pass over the folded text finds every lexicon term and every place form.
Posts with no attack or all-clear word leave right there; the rest go through these steps
(README.md, "How detection works", says the same for operators):

1. vetoes: past events, court cases, statistics, instructions, speculation and denials void
   the words of their sentence; drills and fireworks their sentence and a short lead before
   it; controlled blasts and thunder every explosion word; civil drone news the drone words
   of its sentence; a figurative complement, a simile, a negation or a quoted title one word;
2. kinds: what is left, where something happens: an air-defence verb («сбиты») beside a
   weapon, «ПВО» where it works, a generic drone word beside an attack, flight or warning
   word, «обстрел» beside another kind, «громко» before a place;
3. places: a name must be capitalised (or a hashtag, or a long lower-case Cyrillic form); a
   weak name («Мирный», «Владимир») needs a cue; an adjective («Туапсинский») needs a noun
   like «НПЗ» or «район»; quoted names and names next to «улица», «ФК», «море» do not count;
   a launch site («з Бєлгородщини») gives way to the target;
4. regions: a name of several regions is settled by the other places in the post, a region
   name, the strongest kind of name, then population (four times larger); the rest stay
   unresolved. Regions come from the sentences that report the event (never from an
   all-clear beside it), or from the whole post when those name no place.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import ahocorasick

from bot.counts import CountReader
from bot.gazetteer import ADJECTIVE, MODES, NAME, SHORT, WEAK, Gazetteer, PlaceForm
from bot.lexicon import Lexicon, Term
from bot.models import Detection, Evidence, Kind
from bot.text import fold

__all__ = ["Detector"]

# Telegram posts hold at most 4,096 characters (captions 1,024); longer text is read only
# this far, so that no input can make detection slow.
MAX_TEXT_LENGTH = 16_384
NOTHING = Detection()  # immutable: shared by every post without an attack word
KIND_ORDER = (Kind.EXPLOSION, Kind.DRONE, Kind.MISSILE, Kind.AIR_DEFENSE)
WEAPON_CATEGORIES = frozenset({"drone", "missile", "air_defense"})
STRONG_KIND_CATEGORIES = frozenset({"explosion", "drone", "missile", "air_defense"})
POST_VETOES_VOID_ALL = frozenset({"drill", "fireworks"})
POST_VETOES_VOID_EXPLOSIONS = frozenset({"controlled", "weather"})
SENTENCE_VETO_DRONES_ONLY = "civil_drone"
# A town at least this many times larger than the other candidates wins an ambiguity.
POPULATION_DOMINANCE = 4
# A village (under SMALL_PLACE) of another region gives way to a city or region
# (LARGE_PLACE and up) named elsewhere in the post.
SMALL_PLACE = 10_000
LARGE_PLACE = 100_000
REGION_SIZE = 10**9
# Lower-case Cyrillic names still count when they are this long (chat posts skip capitals).
LOWERCASE_NAME_MIN_LENGTH = 5
LOWERCASE_MIN_POPULATION = 50_000
ANCHOR_LOOKAHEAD = 3  # «в Россошанском и Борисоглебском районах»: words between name and noun
CONJUNCTIONS = frozenset({"и", "і", "та", "й", "and"})
FIGURATIVE_WINDOW = 4  # tokens after an explosion word that may make it figurative
QUOTED_MAX_WORDS = 5  # a quoted title: «Взрыв», «Бомба замедленного действия»
LEAD_MAX_WORDS = 4  # «Хлопки в центре!» before «Это салют»
ADJECTIVE_ENDINGS = ("ий", "ый", "ого", "ом", "ой", "ая", "ую", "ое", "ые", "их")
DISTRICT_NOUNS = ("район", "округ", "district")
RULE_OF_MODE = {NAME: "name", SHORT: "short_name", WEAK: "weak_name", ADJECTIVE: "adjective"}
# «Громко в Таганроге», «у нас громко»: words that may follow the slang «громко».
LOUD_PLACE_WORDS = frozenset({"в", "во", "у", "над", "на", "под", "около", "in", "over"})
# «взрывов не было», «без взрывов», «не слышно взрывов», "no explosions".
NEGATIONS_AFTER = frozenset({"нет", "немає", "немае"})
NEGATIONS_BEFORE = frozenset({"без", "нет", "немає", "no", "ни", "жодних", "никаких"})
NOT_SEEN = frozenset(
    {
        "было",
        "слышно",
        "слышали",
        "зафиксировано",
        "зафиксированы",
        "подтвердились",
        "подтверждаются",
        "було",
        "чути",
        "чули",
        "зафіксовано",
        "heard",
        "reported",
    }
)
VETO_DENIED_BY = frozenset({"не", "ні", "not", "за"})
# «взрыва удалось избежать», «предотвратили взрыв»
AVERTED = ("избеж", "предотвра", "уникн", "запобі", "avert", "avoid", "prevent")
# Words that may stand between an explosion word and «не было»: «взрывов в Липецке сегодня
# утром не было».
BETWEEN_NEGATION = frozenset(
    {"в", "во", "на", "над", "у", "сегодня", "утром", "днем", "вечером", "ночью", "вчера",
     "сьогодні", "вранці", "вночі", "today", "this", "morning", "tonight"}
)  # fmt: skip
NEGATION_WORDS = (
    " не ",
    " нет",
    " немає",
    " без ",
    " no ",
    " ни ",
    " жодних",
    " никаких",
    " избеж",
    " предотвра",
    " уникн",
    " запобі",
    " avert",
    " avoid",
    " prevent",
)
NO_VETOES: frozenset[str] = frozenset()
NO_SENTENCES: frozenset[int] = frozenset()
AIR_DEFENSE_NOUNS = frozenset({"air_defense"})
MAX_ABBREVIATION = 3
ABBREVIATIONS = frozenset({"г", "ул", "пос", "пгт", "ст", "д", "им", "обл", "р-н", "с", "х", "м"})

TOKEN_RE = re.compile(r"\w[\w'-]*")
# A heading to a place after a word: «Дроны на Москву», «ПВО над Курском».
HEADING_RE = re.compile(
    r"\w*\s+(?:(?:курсом|курс|летит|летят|летять|летить|движется|рухається|рухаються|heading)\s+)?"
    r"(?:у напрямку|в направлении|в сторону|в бік|на|в|у|до|над|on|towards?|over|above)"
    r"\s+[A-ZА-ЯЁІЇЄҐ]"
)
WORD_TAIL_RE = re.compile(r"[\w'-]*")
# The word before a position, found by matching the reversed text before it.
REVERSED_WORD_RE = re.compile(r"\W*([\w'-]*\w)")
WORD_REACH = 80  # characters looked back for the word before a match
DIGITS_RE = re.compile(r"\d+")
MONTHS = {
    **dict.fromkeys(("января", "січня", "january", "jan"), 1),
    **dict.fromkeys(("февраля", "лютого", "february", "feb"), 2),
    **dict.fromkeys(("марта", "березня", "march", "mar"), 3),
    **dict.fromkeys(("апреля", "квітня", "april", "apr"), 4),
    **dict.fromkeys(("мая", "травня", "may"), 5),
    **dict.fromkeys(("июня", "червня", "june", "jun"), 6),
    **dict.fromkeys(("июля", "липня", "july", "jul"), 7),
    **dict.fromkeys(("августа", "серпня", "august", "aug"), 8),
    **dict.fromkeys(("сентября", "вересня", "september", "sep"), 9),
    **dict.fromkeys(("октября", "жовтня", "october", "oct"), 10),
    **dict.fromkeys(("ноября", "листопада", "november", "nov"), 11),
    **dict.fromkeys(("декабря", "грудня", "december", "dec"), 12),
}
ENGLISH_MONTHS = [m for m in MONTHS if m.isascii()]
MONTH_BEFORE_RE = re.compile(r"(?<!\w)(" + "|".join(ENGLISH_MONTHS) + r")\.?\s+$")
MONTH_AFTER_RE = re.compile(r"\s+(" + "|".join(MONTHS) + r")(?!\w)(?:\s+((?:19|20)\d\d)(?!\d))?")
# A named date («10 октября») this many days before the post is a past event.
PAST_DATE_DAYS = 2
HASHTAG_RE = re.compile(r"#(\w+)")
CAMEL_RE = re.compile(r"[A-ZА-ЯЁІЇЄҐ][a-zа-яёіїєґ']*|[a-zа-яёіїєґ']+|\d+")
# Everything but letters, digits, apostrophes and 💥 separates words for matching.
SEPARATOR_RE = re.compile(r"[^\w' 💥]")
# A sentence ends at a newline, or at . ! ? … before a capital, digit or symbol (group 1).
SENTENCE_END_RE = re.compile(r"[.!?…]+\s+(?=(\S))|\n\s*")
QUOTE_MARKS = ("«", "“", '"')
QUOTE_RE = re.compile(r"«[^«»]*»|“[^“”]*”|\"[^\"]*\"")

KIND_OF_CATEGORY = {
    "explosion": Kind.EXPLOSION,
    "explosion_weak": Kind.EXPLOSION,
    "explosion_loud": Kind.EXPLOSION,
    "drone": Kind.DRONE,
    "missile": Kind.MISSILE,
    "air_defense": Kind.AIR_DEFENSE,
    "ad_action": Kind.AIR_DEFENSE,
    "target": Kind.DRONE,
}


@dataclass(frozen=True)
class _Entry:
    """What an automaton key stands for (shared by every key with the same meaning)."""

    terms: tuple[Term, ...]
    places: tuple[PlaceForm, ...]

    @cached_property
    def weak(self) -> bool:
        """Return True when some place form here is a weak name."""
        return any(form.mode == WEAK for form in self.places)

    @cached_property
    def lower_case_name_ok(self) -> bool:
        """Return True when a lower-case match may be a region or a large town («курск»).

        Villages are left out: their forms meet common words («окнам» is also «Окни»).
        """
        return any(
            form.mode in (NAME, SHORT)
            and (form.place.kind == "region" or form.place.population >= LOWERCASE_MIN_POPULATION)
            for form in self.places
        )

    @cached_property
    def lower_case_ok(self) -> tuple[bool, bool]:
        """Return whether a lower-case match may count: (as an adjective, as a long name)."""
        return (
            any(form.mode == ADJECTIVE for form in self.places),
            any(form.mode in (NAME, SHORT) for form in self.places),
        )


@dataclass(slots=True)
class _Hit:
    """A term found in the text."""

    category: str
    start: int
    end: int
    sentence: int


@dataclass(slots=True)
class _PlaceHit:
    """A place form found in the text, with the regions it may stand for."""

    start: int
    end: int
    sentence: int
    forms: tuple[PlaceForm, ...]
    rule: str
    district: bool = False  # «в Киевском районе»: may be a district of a city named elsewhere
    source: bool = False  # «з Бєлгородщини», "launched from": where the attack came from
    regions: tuple[str, ...] = ()


class _Text:
    """The folded text of one post, its sentences and quotes; words found on demand."""

    def __init__(self, original: str, folded: str) -> None:
        self.original = original
        self.folded = folded
        self.sentence_starts = [0]
        for match in SENTENCE_END_RE.finditer(original):
            following = match.group(1)
            if following is None or (
                (following.isupper() or not following.isalpha())
                and not self._after_abbreviation(match.start())
            ):
                self.sentence_starts.append(match.end())
        self.quotes = (
            [
                (m.start(), m.end())
                for m in QUOTE_RE.finditer(folded)
                if len(TOKEN_RE.findall(m.group())) <= QUOTED_MAX_WORDS
            ]
            if any(mark in folded for mark in QUOTE_MARKS)
            else []
        )

    def _after_abbreviation(self, dot: int) -> bool:
        """Return True when the dot closes an abbreviation such as «г.» or «ул.»."""
        folded = self.folded
        tail = folded[max(0, dot - MAX_ABBREVIATION - 1) : dot]
        if len(tail) > MAX_ABBREVIATION and tail.isalpha():
            return False  # a long word ends the sentence (the common case, checked in C)
        start = dot
        while start > 0 and (folded[start - 1].isalpha() or folded[start - 1] == "-"):
            start -= 1
            if dot - start > MAX_ABBREVIATION:
                return False  # a long word ends the sentence
        return folded[start:dot] in ABBREVIATIONS

    def is_lead(self, sentence: int) -> bool:
        """Return True for a question or a short line that the next sentence explains."""
        start = self.sentence_starts[sentence]
        end = (
            self.sentence_starts[sentence + 1]
            if sentence + 1 < len(self.sentence_starts)
            else len(self.folded)
        )
        text = self.folded[start:end].rstrip()
        return text.endswith("?") or len(TOKEN_RE.findall(text)) <= LEAD_MAX_WORDS

    def sentence_of(self, position: int) -> int:
        """Return the index of the sentence holding a position."""
        return bisect.bisect_right(self.sentence_starts, position) - 1

    def word_before(self, position: int) -> str:
        """Return the word just before a position ('' at the start of the text)."""
        window = self.folded[max(0, position - WORD_REACH) : position][::-1]
        match = REVERSED_WORD_RE.match(window)
        return match.group(1)[::-1] if match else ""

    def alone_on_line(self, start: int, end: int) -> bool:
        """Return True when a word stands on its line with nothing but symbols around it."""
        line_start = self.original.rfind("\n", 0, start) + 1
        line_end = self.original.find("\n", end)
        line = (
            self.original[line_start:start]
            + self.original[end : len(self.original) if line_end < 0 else line_end]
        )
        return not any(ch.isalnum() for ch in line)

    def heads_for(self, position: int) -> bool:
        """Return True before a heading to a place, as in «Дроны на Москву»."""
        match = HEADING_RE.match(self.original, position)
        return match is not None

    def words_after(self, position: int, count: int) -> list[str]:
        """Return up to `count` words after a position, within its sentence."""
        sentence = self.sentence_of(position)
        limit = (
            self.sentence_starts[sentence + 1]
            if sentence + 1 < len(self.sentence_starts)
            else len(self.folded)
        )
        words: list[str] = []
        search = TOKEN_RE.search
        while len(words) < count:
            match = search(self.folded, position, limit)
            if match is None:
                break
            words.append(match.group())
            position = match.end()
        return words

    def in_quotes(self, start: int, end: int) -> bool:
        """Return True when a span lies inside a short quotation."""
        return any(q_start < start and end < q_end for q_start, q_end in self.quotes)


class Detector:
    """Decide whether posts report a current attack, and where; deterministic, no I/O."""

    def __init__(
        self, lexicon: Lexicon, gazetteer: Gazetteer, counts: CountReader | None = None
    ) -> None:
        self.lexicon = lexicon
        self.counts = counts
        self.gazetteer = gazetteer
        self._anchor = lexicon.token_sets["anchor"]
        self._street = lexicon.token_sets["street"]
        self._cue = lexicon.token_sets["cue"]
        self._source = lexicon.token_sets["source"]
        self._figurative = lexicon.token_sets["figurative_next"]
        self._civil_next = lexicon.token_sets["civil_next"]
        self._simile = lexicon.token_sets["simile_before"]
        self._weapon_name = lexicon.token_sets["weapon_name"]
        self._entries, self._automaton = _build_automaton(lexicon, gazetteer)
        self._trigger_entries = frozenset(
            index
            for index, entry in enumerate(self._entries)
            if any(term.trigger for term in entry.terms)
        )

    # ------------------------------------------------------------------ matching

    def _matches(self, folded: str) -> list[tuple[int, int]]:
        """Return (last index, packed value) of every key standing as whole words."""
        if "'s" in folded:  # "Kharkiv's": the possessive is not part of the name
            folded = folded.replace("'s", " s")
        return list(self._automaton.iter(" " + SEPARATOR_RE.sub(" ", folded) + " "))

    def _scan(
        self, folded: str, matches: list[tuple[int, int]]
    ) -> tuple[list[tuple[int, int, Term]], list[tuple[int, int, _Entry]]]:
        """Split matches into terms and place forms with their spans in the folded text."""
        terms: list[tuple[int, int, Term]] = []
        places: list[tuple[int, int, _Entry]] = []
        seen: set[tuple[int, str]] = set()
        entries = self._entries
        for last, value in matches:
            # The key is " word " (or " word" for a prefix, or a bare symbol such as 💥):
            # see _build_automaton. `last` indexes the text padded with one space in front.
            length, trailing, entry = value & 0xFF, (value >> 8) & 1, entries[value >> 10]
            leading = (value >> 9) & 1
            start, end = last - length + leading, last - trailing
            if entry.terms:
                # A prefix term's evidence is the whole word: «Беспилотники», not «Беспилотн».
                tail = None if trailing else WORD_TAIL_RE.match(folded, end)
                word_end = tail.end() if tail else end
                for term in entry.terms:
                    if (start, term.category) not in seen:  # one hit a word and category
                        seen.add((start, term.category))
                        terms.append((start, word_end if term.prefix else end, term))
            if entry.places:
                places.append((start, end, entry))
        return terms, places

    def detect(self, text: str, date: datetime | None = None) -> Detection:
        """Return what the post reports; `date` (the post's own) dates «в 2023 году» as past."""
        if len(text) > MAX_TEXT_LENGTH:
            text = text[:MAX_TEXT_LENGTH]  # spans stay valid: they index the same prefix
        folded = fold(text)
        matches = self._matches(folded)
        triggers = self._trigger_entries
        if not any(value >> 10 in triggers for _, value in matches):
            return NOTHING  # no attack or all-clear word: the common case, kept cheap
        raw_terms, raw_places = self._scan(folded, matches)
        doc = _Text(text, folded)
        hits: list[_Hit] = []
        near: dict[str, set[int]] = {}  # "street" → sentences where a street word stands
        sentence_of = doc.sentence_of
        for start, end, term in raw_terms:
            if term.group == "near":
                near.setdefault(term.reason, set()).add(sentence_of(start))
            else:
                hits.append(_Hit(term.category, start, end, sentence_of(start)))
        probe = " " + folded
        if any(word in probe for word in NEGATION_WORDS):  # a cheap gate; _negated decides
            near["negation"] = {-1}  # somewhere: _negated looks at the words themselves
        rejected: set[str] = set()
        evidence: list[Evidence] = []
        post_vetoes: dict[str, set[int]] = {}  # reason → sentences it stands in
        sentence_vetoes: dict[int, set[str]] = {}
        for hit in hits:
            if not hit.category.startswith("veto_"):
                continue
            group, _, veto = hit.category.partition(":")
            if group == "veto_post":
                if doc.word_before(hit.start) in VETO_DENIED_BY:
                    continue  # «это уже не салют», «приняли их за салют»
                post_vetoes.setdefault(veto, set()).add(hit.sentence)
            else:
                sentence_vetoes.setdefault(hit.sentence, set()).add(veto)
            evidence.append(self._evidence(doc, hit, f"veto:{veto}"))
        if date is not None:
            for position in _past_dates(folded, date):
                sentence_vetoes.setdefault(doc.sentence_of(position), set()).add("past")

        threat_sentences = {h.sentence for h in hits if h.category == "threat"}
        for hit in hits:
            if hit.category == "all_clear_verb" and hit.sentence in threat_sentences:
                hit.category = "all_clear"  # «режим опасности отменён»
        # Sentences naming a capitalised place: a veto does not reach across into them.
        placed = (
            {sentence_of(start) for start, _, _ in raw_places if text[start].isupper()}
            if post_vetoes
            else NO_SENTENCES
        )
        kind_hits: list[_Hit] = []
        clear_hits: list[_Hit] = []
        for hit in hits:
            if hit.category not in KIND_OF_CATEGORY and hit.category != "all_clear":
                continue
            reason = self._veto_reason(
                doc,
                hit,
                self._scoped(doc, hit, post_vetoes, placed) if post_vetoes else NO_VETOES,
                sentence_vetoes.get(hit.sentence, set()),
                near,
            )
            if reason:
                rejected.add(reason)
            elif hit.category == "all_clear":
                clear_hits.append(hit)
            else:
                kind_hits.append(hit)
        kind_hits = self._settle_kinds(doc, kind_hits, near.get("ad_activity", NO_SENTENCES))
        if not kind_hits and not clear_hits:
            return Detection(evidence=tuple(evidence), rejected=tuple(sorted(rejected)))

        place_hits = self._places(doc, raw_places, near)
        self._resolve(place_hits)
        clear_sentences = {h.sentence for h in clear_hits}
        alert_sentences = {h.sentence for h in kind_hits} - clear_sentences
        # An alert's regions come from its own sentences, not from an all-clear beside it.
        event_sentences = alert_sentences or clear_sentences
        quiet = {h.sentence for h in hits if h.category == "quiet"} - event_sentences
        located = [p for p in place_hits if p.regions and not p.source]
        if located:  # the target, not the launch site, when the post names both
            place_hits = [p for p in place_hits if not p.source]
        chosen = [p for p in place_hits if p.sentence in event_sentences and p.regions]
        if not chosen:
            chosen = [p for p in place_hits if p.sentence not in quiet and p.regions]
        elif all(_size(p) < SMALL_PLACE for p in chosen):
            # «Севастополь, внимание! … стрельба в районе Любимовки»: a village of another
            # region is a local name the gazetteer does not know; the city named is the place.
            large = [
                p
                for p in place_hits
                if p.regions and p not in chosen and p.sentence not in quiet
                and _size(p) >= LARGE_PLACE
            ]  # fmt: skip
            named = {r for p in large for r in p.regions}
            if large and not named & {r for p in chosen for r in p.regions}:
                chosen = large
        regions = _unique(region for p in chosen for region in p.regions)

        alert_hits = [h for h in kind_hits if h.sentence not in clear_sentences]
        all_clear = bool(clear_hits) and not alert_hits
        used = kind_hits if all_clear else alert_hits
        found = {KIND_OF_CATEGORY[h.category] for h in used}
        kinds = tuple(k.value for k in KIND_ORDER if k in found)

        evidence += [
            self._evidence(doc, h, f"term:{h.category}", KIND_OF_CATEGORY[h.category])
            for h in kind_hits
        ]
        evidence += [self._evidence(doc, h, "term:all_clear") for h in clear_hits]
        evidence += [
            _place_evidence(text, place, region)
            for place in place_hits
            for region in place.regions or ("",)
        ]
        if kinds and not all_clear and self.counts is not None:
            evidence += self.counts.counts(text, evidence)  # «восемь беспилотников»
        if kinds and not all_clear:
            evidence += self._follow_up(doc, hits, used, evidence)
        evidence.sort(key=lambda e: (e.start, e.rule))
        if kinds and not regions:
            rejected.add("no_region")
            if any(h.category == "national" for h in hits):
                rejected.add("national_summary")  # no region borrowed from the channel
        if regions and not all_clear:
            rejected.clear()  # what voided some terms does not void the report that is left
        score = (
            min(1.0, 0.35 * len({h.category for h in used}) + 0.2 * len(chosen)) if kinds else 0.0
        )
        return Detection(
            kinds=kinds,
            regions=regions,
            evidence=tuple(evidence),
            all_clear=all_clear,
            score=round(score, 2),
            rejected=tuple(sorted(rejected)),
        )

    def places(self, text: str) -> tuple[Evidence, ...]:
        """Return the places a text names, each with its region, whatever else it says.

        The same rules as in `detect` decide what counts as a place; a place named as the
        source of an attack («с территории Курской области») is left out. For posts that
        name a place but no kind («на Краснодар»), and for channel titles.
        """
        text = text[:MAX_TEXT_LENGTH]
        folded = fold(text)
        raw_terms, raw_places = self._scan(folded, self._matches(folded))
        if not raw_places:
            return ()
        doc = _Text(text, folded)
        near: dict[str, set[int]] = {}
        for start, _, term in raw_terms:
            if term.group == "near":
                near.setdefault(term.reason, set()).add(doc.sentence_of(start))
        hits = self._places(doc, raw_places, near)
        self._resolve(hits)
        return tuple(
            _place_evidence(text, hit, region)
            for hit in hits
            if not hit.source
            for region in hit.regions
        )

    @staticmethod
    def _follow_up(
        doc: _Text, hits: list[_Hit], used: list[_Hit], evidence: list[Evidence]
    ) -> list[Evidence]:
        """Return a "follow_up" evidence for a report that sums up an attack.

        A follow-up looks back («ночью», «по предварительным данным»), says what was shot
        down or counts («сбиты 8 БПЛА»), and warns of nothing («угроза», «опасность») in
        the sentence that looks back.
        """
        warned = {h.sentence for h in hits if h.category == "threat"}
        looking_back = [h for h in hits if h.category == "retrospective"]
        if not looking_back or looking_back[0].sentence in warned:
            return []
        shot_down = any(h.category == "ad_action" for h in used)
        if not (shot_down or any(e.rule == "count" for e in evidence)):
            return []
        return [Detector._evidence(doc, looking_back[0], "follow_up")]

    # ------------------------------------------------------------------ kinds

    def _veto_reason(
        self,
        doc: _Text,
        hit: _Hit,
        post: AbstractSet[str],
        sentence: set[str],
        near: dict[str, set[int]],
    ) -> str | None:
        explosion = hit.category in ("explosion", "explosion_weak", "explosion_loud")
        if post & POST_VETOES_VOID_ALL:
            return sorted(post & POST_VETOES_VOID_ALL)[0]
        if explosion and post & POST_VETOES_VOID_EXPLOSIONS:
            return sorted(post & POST_VETOES_VOID_EXPLOSIONS)[0]
        general = sentence - {SENTENCE_VETO_DRONES_ONLY}
        if general:
            return sorted(general)[0]
        if hit.category == "drone" and SENTENCE_VETO_DRONES_ONLY in sentence:
            return SENTENCE_VETO_DRONES_ONLY
        if near.get("negation") and self._negated(doc, hit):
            return "negated"
        if hit.category == "drone" and "drone_event" not in near and not doc.heads_for(hit.end):
            return "no_event"
        if doc.word_before(hit.start) in self._simile:
            return "figurative"
        if hit.category == "explosion_loud":
            following = doc.words_after(hit.end, 1)
            if following and following[0] not in LOUD_PLACE_WORDS:
                return "figurative"  # «громко отметили», «громко заявил»
        if (
            doc.quotes
            and doc.in_quotes(hit.start, hit.end)
            and hit.category != "drone"
            and doc.folded[hit.start : hit.end] not in self._weapon_name  # «Искандер»
        ):
            return "quoted"  # a title or a name: трек «Взрыв», ФК «Ракета»
        if (
            explosion
            and hit.sentence in near.get("figurative_next", ())
            and any(t in self._figurative for t in doc.words_after(hit.end, FIGURATIVE_WINDOW))
        ):
            return "figurative"
        if (
            hit.category == "drone"
            and hit.sentence in near.get("civil_next", ())
            and any(t in self._civil_next for t in doc.words_after(hit.end, 1))
        ):
            return SENTENCE_VETO_DRONES_ONLY
        return None

    @staticmethod
    def _scoped(
        doc: _Text, hit: _Hit, vetoes: dict[str, set[int]], placed: AbstractSet[int]
    ) -> set[str]:
        """Return the drill, fireworks... vetoes that reach a term.

        Drills and fireworks reach the terms of their own sentence; of the sentence just
        before when that one is a question or a short line («Хлопки в центре? Это салют»);
        and of the sentence just after when that one names no place of its own («Салют в
        21:30. Не пугайтесь хлопков!»). Controlled blasts and thunder void every explosion
        word of the post.
        """
        lead = doc.is_lead(hit.sentence)
        follows = hit.sentence not in placed
        return {
            reason
            for reason, sentences in vetoes.items()
            if reason in POST_VETOES_VOID_EXPLOSIONS  # sappers, thunder: the whole post
            or hit.sentence in sentences
            or (lead and hit.sentence + 1 in sentences)
            or (follows and hit.sentence - 1 in sentences)
        }

    @staticmethod
    def _negated(doc: _Text, hit: _Hit) -> bool:
        """Return True for «взрывов не было», «без взрывов», «взрыва удалось избежать»."""
        after = doc.words_after(hit.end, 8)
        skip = 0
        while skip < len(after) - 1 and after[skip] in BETWEEN_NEGATION:
            # «в Липецке»: a preposition and its word, or a time word
            skip += 2 if after[skip] in LOUD_PLACE_WORDS else 1
        rest = after[skip:]
        if rest and (
            rest[0] in NEGATIONS_AFTER
            or (rest[0] == "не" and rest[1:] and rest[1] in NOT_SEEN)
            or rest[0].startswith(AVERTED)
            or (
                rest[0] in ("удалось", "вдалося", "was")
                and rest[1:]
                and rest[1].startswith(AVERTED)
            )
        ):
            return True
        before = doc.word_before(hit.start)
        if before in NEGATIONS_BEFORE or before.startswith(AVERTED):
            return True
        return before in NOT_SEEN and doc.word_before(hit.start - len(before) - 1) in ("не", "not")

    @staticmethod
    def _settle_kinds(doc: _Text, hits: list[_Hit], active: AbstractSet[int]) -> list[_Hit]:
        """Keep the kind words that report something happening.

        An air-defence verb («сбиты») counts beside a weapon word; «ПВО» counts where it
        works («работает ПВО») or beside another kind, not in «День войск ПВО»; «обстрел»
        counts beside another kind. A terse line («ПВО над Курском», «Таганрог: ПВО!») counts.
        A target («ЦІЛЬ») counts alone on its line or heading to a place («Ціль на Харків»).
        """
        weapon_sentences = {h.sentence for h in hits if h.category in WEAPON_CATEGORIES}
        kept = [h for h in hits if h.category != "ad_action" or h.sentence in weapon_sentences]
        other_kinds = {h.sentence for h in kept if h.category not in AIR_DEFENSE_NOUNS}
        kept = [
            h
            for h in kept
            if h.category != "air_defense"
            or h.sentence in other_kinds
            or h.sentence in active
            or doc.heads_for(h.end)  # «ПВО над Курском»
            or doc.is_lead(h.sentence)  # «Таганрог: ПВО!»
        ]
        kept = [
            h
            for h in kept
            if h.category != "target" or doc.alone_on_line(h.start, h.end) or doc.heads_for(h.end)
        ]
        strong = any(h.category in STRONG_KIND_CATEGORIES for h in kept)
        return [h for h in kept if h.category != "explosion_weak" or strong]

    # ------------------------------------------------------------------ places

    def _places(
        self, doc: _Text, raw: Sequence[tuple[int, int, _Entry]], near: dict[str, set[int]]
    ) -> list[_PlaceHit]:
        # Longest match wins: «Ростове-на-Дону» over «Ростове», «Красном Сулине» over «Сулине».
        taken: list[tuple[int, int]] = []
        hits: list[_PlaceHit] = []
        for start, end, entry in sorted(raw, key=lambda item: (-(item[1] - item[0]), item[0])):
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            accepted, district = self._accept(doc, start, end, entry, near)
            if accepted:
                taken.append((start, end))
                rule = "place:" + RULE_OF_MODE[accepted[0].mode]
                source = "source" in near and doc.word_before(start) in self._source
                hits.append(
                    _PlaceHit(start, end, doc.sentence_of(start), accepted, rule, district, source)
                )
        hits.extend(self._elliptical(doc, raw, hits, taken))
        hits.extend(self._hashtags(doc, taken))
        hits.sort(key=lambda h: h.start)
        return hits

    @staticmethod
    def _elliptical(
        doc: _Text,
        raw: Sequence[tuple[int, int, _Entry]],
        hits: list[_PlaceHit],
        taken: list[tuple[int, int]],
    ) -> list[_PlaceHit]:
        """Return region adjectives whose noun is left out after a listed one.

        «над Воронежской областью уничтожены 9 БПЛА, над Белгородской — 5»: the second
        adjective counts in a sentence that names a region in full.
        """
        listed = {
            h.sentence
            for h in hits
            if h.rule in ("place:adjective", "place:name")
            and any(f.place.kind == "region" and f.mode in (ADJECTIVE, NAME) for f in h.forms)
        }
        if not listed:
            return []
        found = []
        for start, end, entry in raw:
            sentence = doc.sentence_of(start)
            if sentence not in listed or not doc.original[start].isupper():
                continue
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            rest = doc.original[end:].lstrip(" ")
            following = doc.words_after(end, 1)
            if rest[:1].isalpha() and not (following and following[0] in CONJUNCTIONS):
                continue  # «Белгородская трасса»: a noun follows, nothing is left out
            forms = tuple(
                f for f in entry.places if f.mode == ADJECTIVE and f.place.kind == "region"
            )
            if forms:
                taken.append((start, end))
                found.append(_PlaceHit(start, end, sentence, forms, "place:adjective"))
        return found

    def _accept(
        self,
        doc: _Text,
        start: int,
        end: int,
        entry: _Entry,
        near: dict[str, set[int]],
    ) -> tuple[tuple[PlaceForm, ...], bool]:
        """Return the forms that count here, and whether they name a district («районе»)."""
        first = doc.original[start]
        capital = first.isupper() or (start > 0 and doc.original[start - 1] == "#")
        lower_name = False
        if not capital:
            # Cheap checks first: most lower-case matches are common words («новый»).
            adjective, name = entry.lower_case_ok
            lower_name = (
                name
                and end - start >= LOWERCASE_NAME_MIN_LENGTH
                and _cyrillic(first)
                and entry.lower_case_name_ok
            )
            if not (adjective or lower_name):
                return (), False
        if doc.quotes and doc.in_quotes(start, end):
            return (), False
        before = after = anchor = ""
        if "street" in near or "anchor" in near:
            following = doc.words_after(end, 1)
            after = following[0] if following else ""
            if after in CONJUNCTIONS or after.endswith(ADJECTIVE_ENDINGS):
                following = doc.words_after(end, ANCHOR_LOOKAHEAD + 1)
            if "street" in near:
                before = doc.word_before(start)
                if before in self._street or after in self._street:
                    return (), False
                if before == "of" and doc.folded[max(0, start - 8) : start].endswith("sea of "):
                    return (), False  # "the Sea of Azov"
            if "anchor" in near:
                anchor = self._anchor_after(following)
        anchored = bool(anchor)
        district = anchor.startswith(DISTRICT_NOUNS)
        cue = False
        if entry.weak:
            cue = (before or doc.word_before(start)) in self._cue
        accepted = []
        for form in entry.places:
            if form.mode == ADJECTIVE:
                ok = anchored
            elif form.mode == WEAK:  # SHORT counts as a name
                ok = capital and (cue or anchored or self._headline(doc, start, end))
            else:
                ok = capital or lower_name
            if ok:
                accepted.append(form)
        if anchored and any(form.mode == ADJECTIVE for form in accepted):
            # «Курская АЭС» is Kursk's, not the stanitsa Курская's.
            accepted = [form for form in accepted if form.mode != WEAK]
        accepted.sort(key=_mode_rank)  # strongest first
        return tuple(accepted), district

    def _anchor_after(self, words: Sequence[str]) -> str:
        """Return the noun («район», «НПЗ») that an adjectival name stands before, or ''.

        «Туапсинский нефтеперерабатывающий завод», «в Россошанском и Борисоглебском районах»:
        adjectives and conjunctions may come between.
        """
        for word in words:
            if word in self._anchor:
                return word
            if not (word in CONJUNCTIONS or word.endswith(ADJECTIVE_ENDINGS)):
                return ""
        return ""

    @staticmethod
    def _headline(doc: _Text, start: int, end: int) -> bool:
        """Return True for a name opening a line, then punctuation or emoji («Энгельс 💥»)."""
        line_start = doc.original.rfind("\n", 0, start) + 1
        if any(ch.isalnum() for ch in doc.original[line_start:start]):
            return False
        rest = doc.original[end:].lstrip(" ")
        return not rest or not (rest[0].isalnum())

    def _hashtags(self, doc: _Text, taken: list[tuple[int, int]]) -> list[_PlaceHit]:
        hits = []
        for match in HASHTAG_RE.finditer(doc.original):
            start, end = match.span()
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            parts = CAMEL_RE.findall(match.group(1))
            for key in {fold("-".join(parts)), fold(" ".join(parts))}:
                forms = tuple(
                    f for f in self.gazetteer.forms.get(key, ()) if f.mode in (NAME, SHORT)
                )
                if forms:
                    hits.append(
                        _PlaceHit(start, end, doc.sentence_of(start), forms, "place:hashtag")
                    )
                    break
        return hits

    def _resolve(self, hits: list[_PlaceHit]) -> None:
        """Give each place hit its region, settling names shared by several regions.

        In order: the only region; the region of another place in the post; the only region
        named by the strongest kind of form (a full name beats a short or weak one); a region
        whose place is four times larger than the others'. A district («в Киевском районе») is
        settled by context alone, and not at all when the post names a town elsewhere.
        """
        context: set[str] = set()
        for hit in hits:
            regions = {form.place.region for form in hit.forms}
            if len(regions) == 1 and not hit.district:
                hit.regions = tuple(regions)
                context |= regions
        for hit in hits:
            if hit.regions:
                continue
            regions = {form.place.region for form in hit.forms}
            in_context = regions & context
            if hit.district:
                if len(in_context) == 1 or (not context and len(regions) == 1):
                    hit.regions = tuple(in_context or regions)
                continue
            if len(in_context) == 1:
                hit.regions = tuple(in_context)
                continue
            whole = {form.place.region for form in hit.forms if form.place.kind == "region"}
            if len(whole) == 1:  # «Крым» the region, not the village Крым near Rostov
                hit.regions = tuple(whole)
                continue
            strongest = min((form.mode for form in hit.forms), key=MODES.index)
            best = {form.place.region for form in hit.forms if form.mode == strongest}
            if len(best) == 1:
                hit.regions = tuple(best)
                continue
            largest: dict[str, int] = {}
            for form in hit.forms:
                region = form.place.region
                largest[region] = max(largest.get(region, 0), form.place.population)
            ranked = sorted(largest.items(), key=lambda item: -item[1])
            if ranked[0][1] >= POPULATION_DOMINANCE * max(ranked[1][1], 1):
                hit.regions = (ranked[0][0],)

    @staticmethod
    def _evidence(doc: _Text, hit: _Hit, rule: str, kind: Kind | None = None) -> Evidence:
        return Evidence(
            rule=rule,
            text=doc.original[hit.start : hit.end],
            start=hit.start,
            end=hit.end,
            kind=kind.value if kind else None,
        )


def _key(text: str) -> str:
    return SEPARATOR_RE.sub(" ", fold(text)).strip()


def _build_automaton(lexicon: Lexicon, gazetteer: Gazetteer) -> tuple[list[_Entry], Any]:
    """Build one automaton over every term and place form, keyed as whole words.

    Keys are " form " (a whole word) or " term" (a word start) over text whose separators
    are all spaces, so matches inside words never come up. Each key stores one int: the
    key's length, whether it starts and ends in a space, and the index of its shared _Entry.
    """
    # Keys that may be shared: lexicon terms, and place forms whose hyphens become spaces.
    shared: dict[str, tuple[list[Term], tuple[PlaceForm, ...]]] = {}
    for raw, terms in lexicon.terms.items():
        word = _key(raw)
        for term in terms:
            if not any(ch.isalnum() for ch in word):
                key = word  # 💥 needs no spaces around it
            else:
                key = " " + word + ("" if term.prefix else " ")
            shared.setdefault(key, ([], ()))[0].append(term)
    for raw, forms in gazetteer.forms.items():
        if "-" in raw:
            key = " " + raw.replace("-", " ") + " "
            terms, known = shared.get(key, ([], ()))
            shared[key] = (terms, known + forms)
    entries: list[_Entry] = []
    index: dict[_Entry, int] = {}
    automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)

    def add(key: str, entry: _Entry) -> None:
        if entry not in index:
            index[entry] = len(entries)
            entries.append(entry)
        if len(key) > 0xFF:
            raise ValueError(f"lexicon or gazetteer key too long: {key!r}")
        flags = (key.startswith(" ") << 9) | (key.endswith(" ") << 8)
        automaton.add_word(key, (index[entry] << 10) | flags | len(key))

    for raw, forms in gazetteer.forms.items():
        if "-" not in raw:
            key = " " + raw + " "
            if key in shared:
                terms, known = shared[key]
                shared[key] = (terms, known + forms)
            else:
                add(key, _Entry((), forms))
    for key, (terms, forms) in shared.items():
        add(key, _Entry(tuple(dict.fromkeys(terms)), forms))
    automaton.make_automaton()
    return entries, automaton


def _place_evidence(text: str, hit: _PlaceHit, region: str) -> Evidence:
    """Return the evidence of a place hit in one of its regions ("" when unresolved)."""
    return Evidence(
        rule=hit.rule if hit.regions else "place:ambiguous",
        text=text[hit.start : hit.end],
        start=hit.start,
        end=hit.end,
        region=region or None,
        place=_place_name(hit.forms, region),
    )


def _place_name(forms: Sequence[PlaceForm], region: str) -> str:
    for form in sorted(forms, key=lambda f: (MODES.index(f.mode), -f.place.population)):
        if not region or form.place.region == region:
            return form.place.ru
    return forms[0].place.ru


MODE_RANK = {mode: rank for rank, mode in enumerate(MODES)}


def _mode_rank(form: PlaceForm) -> int:
    return MODE_RANK[form.mode]


def _past_dates(folded: str, date: datetime) -> Iterable[int]:
    """Yield the positions of dates before the post's own: «в 2023 году», «10 октября».

    A day and month without a year is this year's, or last year's when it would fall
    after the post; it is past when more than PAST_DATE_DAYS before the post. English
    dates may put the month first ("on May 26").
    """
    # Digit runs first, then a look at what follows each: far cheaper than a regex with
    # look-behinds run over the whole text.
    for number in DIGITS_RE.finditer(folded):
        digits = number.group()
        if len(digits) == 4:
            if 1950 <= int(digits) < date.year:
                yield number.start()
            continue
        if len(digits) > 2:
            continue
        month = MONTH_AFTER_RE.match(folded, number.end())
        if month is not None:
            name, year = month.group(1), month.group(2)
        else:
            before = MONTH_BEFORE_RE.search(folded, max(0, number.start() - 12), number.start())
            if before is None:
                continue
            name, year = before.group(1), None
        named = _named_date(int(digits), MONTHS[name], int(year) if year else None, date)
        if named is not None and (date - named).days > PAST_DATE_DAYS:
            yield number.start()


def _named_date(day: int, month: int, year: int | None, post: datetime) -> datetime | None:
    """Return the date a day and month name (and maybe a year) mean for a post, or None."""
    try:
        named = post.replace(year=year or post.year, month=month, day=day)
        if named > post and year is None:
            named = named.replace(year=post.year - 1)
    except ValueError:
        return None  # «31 февраля»
    return named


def _size(hit: _PlaceHit) -> int:
    """Return the population of a place hit's largest form in its regions (regions: huge)."""
    sizes = [
        REGION_SIZE if form.place.kind == "region" else form.place.population
        for form in hit.forms
        if form.place.region in hit.regions
    ]
    return max(sizes, default=0)


def _cyrillic(ch: str) -> bool:
    return "а" <= ch.lower() <= "я" or ch in "ёіїєґЁІЇЄҐ"


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return tuple(seen)
