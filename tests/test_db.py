"""The database: WAL, migrations, reopening."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest

from bot.errors import StorageError
from storage.db import Database, migrations


async def test_opens_in_wal_mode_with_schema(tmp_path: Path) -> None:
    path = tmp_path / "data" / "sky.db"
    async with Database(path) as db:
        async with db.conn.execute("PRAGMA journal_mode") as cursor:
            assert (await cursor.fetchone()) == ("wal",)
        assert await db.schema_version() == len(migrations())
    async with Database(path) as db:  # reopening applies nothing twice
        assert await db.schema_version() == len(migrations())


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sky.db"
    async with aiosqlite.connect(path) as conn:
        await conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StorageError, match="newer"):
        async with Database(path):
            pass


async def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    async with Database(tmp_path / "sky.db") as db:
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO posts (channel_id, message_id, date, text, stored_at)"
                    " VALUES (1, 1, 0, 'x', 0)"
                )
                raise RuntimeError("boom")
        async with db.conn.execute("SELECT count(*) FROM posts") as cursor:
            assert (await cursor.fetchone()) == (0,)
