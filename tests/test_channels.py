"""Channel settings: names, ids and links; home region, trust and official marks."""

from __future__ import annotations

import pytest

from bot.channels import (
    ChannelBook,
    ChannelRef,
    ChannelSettings,
    parse_channel_ref,
    parse_channels,
)
from bot.gazetteer import Gazetteer


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("@Astra_Press", ChannelRef(username="astra_press")),
        ("https://t.me/astrapress", ChannelRef(username="astrapress")),
        ("t.me/s/astrapress/123", ChannelRef(username="astrapress")),
        ("-1001633410287", ChannelRef(channel_id=1633410287)),
        ("1633410287", ChannelRef(channel_id=1633410287)),
    ],
)
def test_refs(raw: str, expected: ChannelRef) -> None:
    assert parse_channel_ref(raw) == expected


@pytest.mark.parametrize("raw", ["@ab", "t.me/", "-5", "два слова", "@name!"])
def test_bad_refs(raw: str) -> None:
    with pytest.raises(ValueError, match="not a channel"):
        parse_channel_ref(raw)


def test_settings(gazetteer: Gazetteer) -> None:
    channels, problems = parse_channels(
        "@opershtab_kuban[official, home=Кубань, trust=2]\n@astrapress, @local_news[home=-]",
        gazetteer.resolve_region,
    )
    assert problems == []
    assert channels == (
        ChannelSettings(ChannelRef(username="opershtab_kuban"), "RU-KDA", True, 2.0, True),
        ChannelSettings(ChannelRef(username="astrapress")),
        ChannelSettings(ChannelRef(username="local_news"), home_from_title=False),
    )
    book = ChannelBook(channels)
    assert book.get(1, "OPERSHTAB_KUBAN") == channels[0]
    assert book.get(1, None) is None


def test_problems_are_listed(gazetteer: Gazetteer) -> None:
    _, problems = parse_channels(
        "@astrapress, @astrapress, @x_channel[home=Нарния], @y_channel[trust=0], @z_channel[[",
        gazetteer.resolve_region,
    )
    assert len(problems) == 4
    assert "@astrapress is listed twice" in problems[-1]
    assert any("Нарния" in p for p in problems)
    assert any("trust must be" in p for p in problems)
    assert any("cannot read" in p for p in problems)
