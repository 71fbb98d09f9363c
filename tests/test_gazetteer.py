"""The gazetteer: every region, names in three languages, operators' region names."""

from __future__ import annotations

import pytest

from bot.errors import RegionError
from bot.gazetteer import Gazetteer


def test_every_russian_and_ukrainian_subdivision_is_there(gazetteer: Gazetteer) -> None:
    codes = set(gazetteer.regions)
    assert len([c for c in codes if c.startswith("RU-")]) == 83
    assert len([c for c in codes if c.startswith("UA-")]) == 27
    assert gazetteer.regions["RU-KDA"].name("en") == "Krasnodar Krai"
    assert gazetteer.regions["UA-63"].name("uk") == "Харківська область"


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("RU-KDA", "RU-KDA"),
        ("ru-ros", "RU-ROS"),
        ("Краснодарский край", "RU-KDA"),
        ("Krasnodar Krai", "RU-KDA"),
        ("Кубань", "RU-KDA"),
        ("Ростовской области", "RU-ROS"),
        ("Ростовщина", "RU-ROS"),
        ("Оренбуржье", "RU-ORE"),
        ("Белгородчина", "RU-BEL"),
        ("Харківська область", "UA-63"),
        ("Kharkiv Oblast", "UA-63"),
        ("Таганрог", "RU-ROS"),
    ],
)
def test_region_names_resolve(gazetteer: Gazetteer, name: str, code: str) -> None:
    assert gazetteer.resolve_region(name) == code


def test_unknown_and_ambiguous_names_are_refused(gazetteer: Gazetteer) -> None:
    with pytest.raises(RegionError, match="unknown region"):
        gazetteer.resolve_region("Атлантида")
    with pytest.raises(RegionError, match="ambiguous region .*RU-"):
        gazetteer.resolve_region("Мирный")


def test_settlements_have_their_region(gazetteer: Gazetteer) -> None:
    forms = gazetteer.forms
    assert {f.place.region for f in forms["таганроге"]} == {"RU-ROS"}
    assert {f.place.region for f in forms["афипском"]} == {"RU-KDA"}
    assert {f.place.region for f in forms["новошахтинська"]} == {"RU-ROS"}
