"""Alert texts: exact content, three languages, escaping, Telegram's length limit."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.alerts import MAX_MESSAGE, AlertTexts, AlertView, escalations
from bot.gazetteer import Gazetteer

FIRST = datetime(2025, 3, 3, 20, 5, tzinfo=UTC)  # 23:05 in Moscow

VIEW = AlertView(
    incident_id="RU-KDA-20250303-2005-abcdef",
    region="RU-KDA",
    kinds=("explosion", "drone", "air_defense"),
    counts={"drone": 8},
    first_report=FIRST,
    last_report=FIRST + timedelta(minutes=43),
    status="active",
    closed_reason=None,
    channels=3,
    independent=2,
    official=False,
    places=("Краснодар", "Афипский"),
    links=("https://t.me/krd_now/1", "https://t.me/shot/2"),
    excerpt="Взрывы в Краснодаре <b>не тег</b> & всё",
)


@pytest.fixture(scope="module")
def texts(gazetteer: Gazetteer) -> AlertTexts:
    return AlertTexts.load(gazetteer, ZoneInfo("Europe/Moscow"))


def test_russian_alert_reads_exactly(texts: AlertTexts) -> None:
    assert texts.alert(VIEW, "ru") == (
        "💥🛩🛡 <b>Взрывы, беспилотники (до 8), работа ПВО</b>\n"
        "📍 Краснодарский край: Краснодар, Афипский\n"
        "🕐 первое сообщение 23:05 (MSK), последнее 23:48\n"
        "✅ подтверждено · каналов: 3, независимых: 2\n"
        '🔗 Источники: <a href="https://t.me/krd_now/1">1</a> · '
        '<a href="https://t.me/shot/2">2</a>\n'
        "\n"
        "<i>«Взрывы в Краснодаре &lt;b&gt;не тег&lt;/b&gt; &amp; всё»</i>"
    )


def test_other_languages_name_places_their_way(texts: AlertTexts) -> None:
    english = texts.alert(VIEW, "en")
    assert "Explosions, drones (up to 8), air defence" in english
    assert "Krasnodar Krai: Krasnodar" in english
    ukrainian = texts.alert(VIEW, "uk")
    assert "Вибухи, безпілотники (до 8)" in ukrainian and "Краснодарський край" in ukrainian


def test_unconfirmed_official_closed_and_retracted(texts: AlertTexts) -> None:
    single = replace(VIEW, channels=1, independent=1)
    assert "не подтверждено" in texts.alert(single, "ru")
    assert "подтверждено официально" in texts.alert(replace(single, official=True), "ru")
    closed = texts.alert(replace(VIEW, status="closed", closed_reason="all_clear"), "ru")
    assert "Завершено: отбой" in closed
    retracted = texts.alert(replace(VIEW, status="retracted"), "ru")
    assert retracted.startswith("💥🛩🛡 <s><b>") and "Отозвано" in retracted


def test_never_over_the_limit_and_only_telegram_links(texts: AlertTexts) -> None:
    huge = replace(
        VIEW,
        excerpt="Взрыв " * 5000,
        places=tuple(f"Место{n}" for n in range(50)),
        links=(*(f"https://t.me/c/{n}" for n in range(20)), "javascript:alert(1)"),
    )
    text = texts.alert(huge, "ru")
    assert len(text) <= MAX_MESSAGE
    assert text.count("<a href") == 5 and "javascript" not in text


def test_escalations(texts: AlertTexts) -> None:
    told = (("explosion",), {"drone": 4}, False)
    found = escalations(*told, VIEW)
    assert [(e.reason, e.kind, e.count) for e in found] == [
        ("kind", "drone", None),
        ("kind", "air_defense", None),
    ]
    told = (("explosion", "drone", "air_defense"), {"drone": 4}, False)
    assert [(e.reason, e.count) for e in escalations(*told, VIEW)] == [("count", 8)]
    assert escalations(("explosion", "drone", "air_defense"), {"drone": 5}, False, VIEW) == []
    official = escalations(VIEW.kinds, dict(VIEW.counts), False, replace(VIEW, official=True))
    assert [e.reason for e in official] == ["official"]
    notice = texts.notice(VIEW, found, "ru")
    assert notice == "⚠️ <b>Краснодарский край</b>: Новое: беспилотники (до 8), работа ПВО"
