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


async def test_new_repeat_edit(tmp_path: Path) -> None:
    async with Database(tmp_path / "sky.db") as db:
        repo = PostRepo(db)
        assert await repo.classify([POST]) == [PostChange.NEW]
        await repo.save([POST], NOW)
        # A reaction bumps the edit date but not the text: not an edit.
        assert await repo.classify([POST, replace(POST, edit_date=NOW)]) == [
            PostChange.UNCHANGED,
            PostChange.UNCHANGED,
        ]
        edited = replace(POST, text="Взрывы в Краснодаре, работает ПВО", edit_date=NOW)
        assert await repo.classify([edited]) == [PostChange.EDITED]
        await repo.save([edited], NOW)
        stored = await repo.get(1, 10)
        assert stored is not None and stored.text == edited.text
        assert stored.edit_date == NOW
        assert await repo.count() == 1
        assert await repo.get(1, 11) is None


async def test_repeats_within_one_batch(tmp_path: Path) -> None:
    other = replace(POST, id=11)
    edited = replace(POST, text="новый текст")
    async with Database(tmp_path / "sky.db") as db:
        changes = await PostRepo(db).classify([POST, other, POST, edited])
    assert changes == [PostChange.NEW, PostChange.NEW, PostChange.UNCHANGED, PostChange.EDITED]


async def test_large_batches_are_split(tmp_path: Path) -> None:
    posts = [replace(POST, id=i) for i in range(12_000)]
    async with Database(tmp_path / "sky.db") as db:
        repo = PostRepo(db)
        await repo.save(posts[::2], NOW)
        changes = await repo.classify(posts)
    assert changes.count(PostChange.UNCHANGED) == 6_000
    assert changes.count(PostChange.NEW) == 6_000


async def test_an_older_copy_never_replaces_an_edit(tmp_path: Path) -> None:
    edited = replace(POST, text="Взрывы в Краснодаре, работает ПВО", edit_date=NOW)
    async with Database(tmp_path / "sky.db") as db:
        repo = PostRepo(db)
        await repo.save([edited], NOW)
        # The original, unedited copy (another export, a late catch-up) is stale.
        assert await repo.classify([POST]) == [PostChange.UNCHANGED]
        assert await repo.classify([POST, edited]) == [PostChange.UNCHANGED, PostChange.UNCHANGED]
