"""PostRepo: idempotent on (channel_id, message id); edits are new text, not a new flag."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bot.models import Post
from storage.db import Database
from storage.posts import PostChange, PostRepo

NOW = datetime(2025, 3, 4, tzinfo=UTC)
POST = Post(channel_id=1, id=10, date=NOW, text="Взрывы в Краснодаре", channel_username="ch")


async def test_upsert_new_repeat_edit(tmp_path: Path) -> None:
    async with Database(tmp_path / "sky.db") as db:
        repo = PostRepo(db)
        assert await repo.upsert(POST, NOW) is PostChange.NEW
        assert await repo.upsert(POST, NOW) is PostChange.UNCHANGED
        # A reaction bumps the edit date but not the text: not an edit.
        assert await repo.upsert(replace(POST, edit_date=NOW), NOW) is PostChange.UNCHANGED
        edited = replace(POST, text="Взрывы в Краснодаре, работает ПВО", edit_date=NOW)
        assert await repo.upsert(edited, NOW) is PostChange.EDITED
        stored = await repo.get(1, 10)
        assert stored is not None and stored.text == edited.text
        assert await repo.count() == 1
        assert await repo.get(1, 11) is None
