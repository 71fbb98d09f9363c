"""Near-duplicates: copies and light rewrites match, different events do not."""

from __future__ import annotations

from bot.similarity import NearDuplicateIndex, jaccard, normalize, shingles

OFFICIAL = (
    "В Туапсе в результате атаки БПЛА произошло возгорание на территории НПЗ. "
    "Площадь пожара — 200 кв. м. Пострадавших нет."
)
REWRITE = (
    "В Туапсе в результате атаки беспилотников произошло возгорание на территории НПЗ. "
    "Площадь пожара — 200 кв. м. Пострадавших нет."
)
TEMPLATE = (  # the same channel's template, another event
    "В Славянском районе отражена атака БПЛА. В результате падения обломков произошло "
    "возгорание на территории НПЗ. Пострадавших нет."
)


def test_normalize_drops_noise_and_signatures() -> None:
    text = (
        "⚡️Взрывы в Краснодаре — 5 хлопков! https://t.me/x/1 #Краснодар @shot\n\n"
        "Подписаться | @shot_news"
    )
    assert normalize(text) == "взрывы в краснодаре хлопков"


def test_copy_with_another_signature_is_identical() -> None:
    copy = OFFICIAL + "\n\n👉 Прислать новость | Наш канал @krd"
    assert jaccard(shingles(OFFICIAL), shingles(copy)) == 1.0


def test_light_rewrite_matches_and_template_does_not() -> None:
    assert jaccard(shingles(OFFICIAL), shingles(REWRITE)) >= 0.5
    assert jaccard(shingles(OFFICIAL), shingles(TEMPLATE)) < 0.5


def test_short_and_empty_texts() -> None:
    assert jaccard(shingles("💥💥💥"), shingles("💥")) == 0.0  # nothing left to compare
    assert jaccard(shingles("Харків"), shingles("Харків!")) == 1.0


def test_index_finds_adds_and_forgets() -> None:
    index: NearDuplicateIndex[str] = NearDuplicateIndex()
    index.add("a", shingles(OFFICIAL))
    index.add("b", shingles(TEMPLATE))
    found = index.similar(shingles(REWRITE))
    assert [key for key, _ in found] == ["a"]
    index.remove("a")
    assert index.similar(shingles(REWRITE)) == []
    assert len(index) == 1
    index.remove("missing")  # ignored
