"""Counts next to kind words, in digits or words, in three languages."""

from __future__ import annotations

import pytest

from bot.counts import largest_counts
from bot.detect import Detector


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Таганрог: подписчики насчитали от пяти до восьми взрывов", {"explosion": 8}),
        ("В Таганроге местные пишут о 6–7 хлопках", {"explosion": 7}),
        ("Над Краснодаром ПВО сбила как минимум восемь беспилотников", {"drone": 8}),
        ("Над Краснодарским краем уничтожены 19 украинских беспилотников", {"drone": 19}),
        ("Над Ростовом сбиты двадцать пять БПЛА и 2 ракеты", {"drone": 25, "missile": 2}),
        ("Taganrog: residents report 5–8 blasts", {"explosion": 8}),
        ("A dozen drones shot down over Taganrog", {"drone": 12}),
        ("Харків: ще один вибух", {"explosion": 1}),
        ("Десятки дронов атакуют Белгород", {"drone": 20}),
        ("В 23:40 взрывы в Краснодаре", {}),  # a time, not a count
        ("Взрывы в Краснодаре: 12 над городом", {}),  # after the word, not a count
    ],
)
def test_counts(detector: Detector, text: str, expected: dict[str, int]) -> None:
    detection = detector.detect(text)
    assert detection.kinds
    assert largest_counts(detection.evidence) == expected


def test_count_is_evidence(detector: Detector) -> None:
    detection = detector.detect("Над Белгородом сбиты три ракеты")
    counts = [e for e in detection.evidence if e.rule == "count"]
    assert [(e.text, e.kind, e.count) for e in counts] == [("три ракеты", "missile", 3)]
    assert counts[0].as_dict()["count"] == 3
