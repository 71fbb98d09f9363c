"""ChannelRepo and StateRepo over a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.channels import ChannelBook, ChannelRef, ChannelSettings, parse_channels
from storage.channels import ChannelRepo, StateRepo
from storage.db import Database

NOW = datetime(2025, 3, 4, 2, 0, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with Database(tmp_path / "c.db") as database:
        yield database


def configured(raw: str) -> tuple[ChannelSettings, ...]:
    settings, problems = parse_channels(raw, lambda name: name)
    assert problems == []
    return settings


async def test_channels_seeded_once_and_operator_removal_sticks(db: Database) -> None:
    repo = ChannelRepo(db)
    async with db.transaction():
        assert await repo.seed(configured("@kuban[official], 1746302195"), NOW) == [
            "@kuban",
            "1746302195",
        ]
        assert await repo.remove("@kuban", NOW)
        # CHANNELS again at the next start: the removed one stays removed, settings refresh.
        assert await repo.seed(configured("@kuban, 1746302195[trust=2]"), NOW) == []
    kuban = await repo.get("@kuban")
    assert kuban is not None and kuban.state == "removed"
    by_id = await repo.get("1746302195")
    assert by_id is not None and by_id.state == "pending" and by_id.settings.trust == 2
    assert [c.ref for c in await repo.all("pending")] == ["1746302195"]


async def test_resolved_channel_keeps_its_settings_and_marker(db: Database) -> None:
    repo = ChannelRepo(db)
    async with db.transaction():
        await repo.seed(configured("@kuban[official, home=RU-KDA, trust=2], @other[home=-]"), NOW)
        await repo.resolved("@kuban", 555, 999, "kuban", "Оперштаб Кубани", True, NOW)
        await repo.advance(555, 10, NOW, NOW)
        await repo.advance(555, 7, NOW - timedelta(hours=1), NOW)  # never back
    kuban = await repo.find(555)
    assert kuban is not None
    assert (kuban.state, kuban.access_hash, kuban.title, kuban.joined) == (
        "active",
        999,
        "Оперштаб Кубани",
        True,
    )
    assert kuban.last_message_id == 10 and kuban.last_post_at == NOW
    assert kuban.settings.official and kuban.settings.home_region == "RU-KDA"
    book = ChannelBook([kuban.settings])
    assert book.get(555) == kuban.settings and book.get(1, "Kuban") == kuban.settings
    other = await repo.get("@other")
    assert other is not None and not other.settings.home_from_title
    assert await repo.joined_count() == 1


async def test_operator_adds_back_a_failed_or_removed_channel(db: Database) -> None:
    repo = ChannelRepo(db)
    async with db.transaction():
        await repo.seed(configured("@gone"), NOW)
        await repo.failed("@gone", "@gone: no channel has this username", NOW)
        channel = await repo.add(ChannelSettings(ChannelRef(username="gone"), trust=3), NOW)
    assert (channel.state, channel.source, channel.settings.trust) == ("pending", "operator", 3)
    async with db.transaction():
        await repo.failed("@gone", "flood wait", NOW, retry=True)
    again = await repo.get("@gone")
    assert again is not None and again.state == "pending" and again.last_error == "flood wait"


async def test_channel_errors_are_health(db: Database) -> None:
    repo = ChannelRepo(db)
    async with db.transaction():
        await repo.seed(configured("@kuban"), NOW)
        await repo.resolved("@kuban", 555, None, "kuban", "Kuban", False, NOW)
        await repo.error(555, "catch-up failed", NOW)
    channel = await repo.find(555)
    assert channel is not None
    assert (channel.last_error, channel.last_error_at) == ("catch-up failed", NOW)
    async with db.transaction():
        await repo.error(555, None, NOW)
    cleared = await repo.find(555)
    assert cleared is not None and cleared.last_error is None


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    async with Database(tmp_path / "s.db") as db, db.transaction():
        await StateRepo(db).set("watcher.seen_at", "123.5", NOW)
    async with Database(tmp_path / "s.db") as db:
        assert await StateRepo(db).get("watcher.seen_at") == "123.5"
        assert await StateRepo(db).get("missing") is None
