"""Configuration: validated once, every problem named, secrets masked."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.channels import ChannelRef, ChannelSettings
from bot.config import load_config
from bot.errors import ConfigError
from bot.gazetteer import Gazetteer
from bot.group import GroupingSettings

GOOD = {
    "TELEGRAM_API_ID": "12345",
    "TELEGRAM_API_HASH": "0123456789abcdef0123456789abcdef",
    "BOT_TOKEN": "123456:ABC-secret_token",
    "OPERATOR_IDS": "1, 2",
    "WATCH_REGIONS": "RU-KDA, Ростовская область, Belgorod Oblast, Харківська область",
    "CHANNELS": "@shot, https://t.me/astrapress,\n"
    "-1001746302195[official, home=Краснодарский край, trust=2]",
}


def test_valid_environment(gazetteer: Gazetteer) -> None:
    config = load_config(GOOD, resolve_region=gazetteer.resolve_region, require_live=True)
    assert config.watch_regions == ("RU-KDA", "RU-ROS", "RU-BEL", "UA-63")
    assert config.operator_ids == frozenset({1, 2})
    assert config.channels == (
        ChannelSettings(ChannelRef(username="shot")),
        ChannelSettings(ChannelRef(username="astrapress")),
        ChannelSettings(
            ChannelRef(channel_id=1746302195), home_region="RU-KDA", trust=2.0, official=True
        ),
    )
    assert config.grouping == GroupingSettings()
    assert config.bot_api_url == "https://api.telegram.org"
    assert config.database_path == Path("data/skywatch.db")
    assert "secret" not in repr(config)
    assert config.bot_token.value == "123456:ABC-secret_token"


def test_every_problem_is_listed(gazetteer: Gazetteer) -> None:
    env = {
        "TELEGRAM_API_ID": "abc",
        "BOT_TOKEN": "nocolon",
        "OPERATOR_IDS": "1,x",
        "WATCH_REGIONS": "RU-KDA,Атлантида",
        "LOG_LEVEL": "LOUD",
        "LOG_FORMAT": "xml",
        "BOT_API_URL": "ftp://x",
        "CHANNELS": "@okay_1[home=Атлантида], @fine_1[trust=99], not a channel!, @xxxxx[loud]",
        "INCIDENT_QUIET_HOURS": "0",
        "CONTEXT_MINUTES": "ten",
        "ALERT_TIMEZONE": "Mars/Olympus_Mons",
    }
    with pytest.raises(ConfigError) as caught:
        load_config(env, resolve_region=gazetteer.resolve_region, require_live=True)
    text = str(caught.value)
    for name in (
        "TELEGRAM_API_ID",
        "TELEGRAM_API_HASH",
        "BOT_TOKEN",
        "OPERATOR_IDS",
        "WATCH_REGIONS",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "BOT_API_URL",
        "CHANNELS",
        "INCIDENT_QUIET_HOURS",
        "CONTEXT_MINUTES",
        "ALERT_TIMEZONE",
    ):
        assert name in text
    assert "Атлантида" in text
    assert "@fine_1: trust must be" in text
    assert "cannot read 'not a channel!'" in text
    assert "unknown setting 'loud'" in text
    assert len(caught.value.problems) == 15


def test_grouping_settings_are_read(gazetteer: Gazetteer) -> None:
    env = {"WATCH_REGIONS": "RU-ROS", "INCIDENT_QUIET_HOURS": "1.5", "CONTEXT_MINUTES": "4"}
    config = load_config(env, resolve_region=gazetteer.resolve_region)
    assert config.grouping == GroupingSettings(timedelta(hours=1.5), timedelta(minutes=4))


def test_replay_needs_only_regions(gazetteer: Gazetteer) -> None:
    config = load_config({"WATCH_REGIONS": "RU-ROS"}, resolve_region=gazetteer.resolve_region)
    assert config.watch_regions == ("RU-ROS",)
    with pytest.raises(ConfigError, match="WATCH_REGIONS is missing"):
        load_config({}, resolve_region=gazetteer.resolve_region)


def test_dotenv_file_is_read_and_environment_wins(
    tmp_path: Path, gazetteer: Gazetteer, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("WATCH_REGIONS=RU-KDA\nLOG_LEVEL=DEBUG\n", encoding="utf-8")
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    monkeypatch.delenv("WATCH_REGIONS", raising=False)
    config = load_config(resolve_region=gazetteer.resolve_region, env_file=env_file)
    assert config.watch_regions == ("RU-KDA",)
    assert config.log_level == "ERROR"
