"""PostRepo: posts stored once per (channel_id, message_id), updated when edited."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bot.models import Post
from storage.db import Database

__all__ = ["PostChange", "PostRepo"]

# SQLite allows 32,766 parameters; two a key.
MAX_KEYS_PER_QUERY = 5000


class PostChange(StrEnum):
    """What storing a post did."""

    NEW = "new"
    EDITED = "edited"
    UNCHANGED = "unchanged"


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


class PostRepo:
    """Posts table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def classify(self, posts: Sequence[Post]) -> list[PostChange]:
        """Say for each post whether it is new, an edit of its text, or a repeat.

        One query for the whole batch; a post repeated within the batch is judged against
        its earlier copy. Reactions and view counts also bump the edit date: only new text
        is an edit. A copy older than the stored version (an earlier edit date, or none
        where one is stored) is a repeat: the newest text is kept.
        """
        keys = list(dict.fromkeys((post.channel_id, post.id) for post in posts))
        known: dict[tuple[int, int], tuple[str, int | None]] = {
            (row[0], row[1]): (row[2], row[3])
            for row in await self._by_keys("channel_id, message_id, text, edit_date", keys)
        }
        changes = []
        for post in posts:
            key = (post.channel_id, post.id)
            stored = known.get(key)
            edited = _ts(post.edit_date)
            if stored is None:
                changes.append(PostChange.NEW)
            elif stored[1] is not None and (edited is None or edited < stored[1]):
                changes.append(PostChange.UNCHANGED)  # an older copy
                continue
            elif stored[0] != post.text:
                changes.append(PostChange.EDITED)
            else:
                changes.append(PostChange.UNCHANGED)
            known[key] = (post.text, edited)
        return changes

    async def save(self, posts: Sequence[Post], now: datetime) -> None:
        """Store new posts and the new text of edited ones (one statement for the batch)."""
        await self.db.conn.executemany(
            "INSERT INTO posts (channel_id, message_id, date, edit_date, text, forwarded_from,"
            " grouped_id, reply_to, link, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (channel_id, message_id) DO UPDATE SET"
            " text = excluded.text, edit_date = excluded.edit_date",
            [
                (
                    post.channel_id,
                    post.id,
                    _ts(post.date),
                    _ts(post.edit_date),
                    post.text,
                    post.forwarded_from,
                    post.grouped_id,
                    post.reply_to,
                    post.link,
                    _ts(now),
                )
                for post in posts
            ],
        )

    async def get(self, channel_id: int, message_id: int) -> Post | None:
        """Return a stored post, or None."""
        async with self.db.conn.execute(
            "SELECT channel_id, message_id, date, edit_date, text, forwarded_from, grouped_id,"
            " reply_to FROM posts WHERE channel_id = ? AND message_id = ?",
            (channel_id, message_id),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        return Post(
            channel_id=row[0],
            id=row[1],
            date=datetime.fromtimestamp(row[2], tz=UTC),
            edit_date=datetime.fromtimestamp(row[3], tz=UTC) if row[3] is not None else None,
            text=row[4],
            forwarded_from=row[5],
            grouped_id=row[6],
            reply_to=row[7],
        )

    async def texts(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], str]:
        """Return the stored text of each post that is stored."""
        rows = await self._by_keys("channel_id, message_id, text", list(keys))
        return {(row[0], row[1]): row[2] for row in rows}

    async def latest_date(self) -> datetime | None:
        """Return the date of the newest stored post, or None when there is none."""
        async with self.db.conn.execute("SELECT max(date) FROM posts") as cursor:
            row = await cursor.fetchone()
        return datetime.fromtimestamp(row[0], tz=UTC) if row and row[0] is not None else None

    async def _by_keys(self, columns: str, keys: Sequence[tuple[int, int]]) -> list[Any]:
        """Select columns of the posts with the given keys, a few thousand keys a query."""
        rows: list[Any] = []
        for chunk_start in range(0, len(keys), MAX_KEYS_PER_QUERY):
            chunk = keys[chunk_start : chunk_start + MAX_KEYS_PER_QUERY]
            values = ", ".join("(?, ?)" for _ in chunk)
            rows += await self.db.conn.execute_fetchall(
                f"SELECT {columns} FROM posts WHERE (channel_id, message_id) IN (VALUES {values})",
                [part for key in chunk for part in key],
            )
        return rows

    async def prune(self, before: datetime, limit: int) -> int:
        """Delete up to `limit` posts (and their verdicts) dated before `before` that no
        incident holds; return how many."""
        cursor = await self.db.conn.execute(
            "DELETE FROM posts WHERE (channel_id, message_id) IN ("
            " SELECT channel_id, message_id FROM posts WHERE date < ? AND NOT EXISTS ("
            " SELECT 1 FROM incident_posts m"
            " WHERE m.channel_id = posts.channel_id AND m.message_id = posts.message_id)"
            " LIMIT ?)",
            (_ts(before), limit),
        )
        return int(cursor.rowcount)

    async def rhythm_since(self, since: datetime) -> dict[int, tuple[int, datetime, float]]:
        """Return per channel, since `since`: its posts, the first one's date, and the
        longest gap in seconds between two of its posts (a night's quiet, say)."""
        rows = await self.db.conn.execute_fetchall(
            "SELECT channel_id, count(*), min(date), coalesce(max(gap), 0) FROM ("
            " SELECT channel_id, date,"
            " date - lag(date) OVER (PARTITION BY channel_id ORDER BY date) AS gap"
            " FROM posts WHERE date >= ?) GROUP BY channel_id",
            (_ts(since),),
        )
        return {
            int(row[0]): (int(row[1]), datetime.fromtimestamp(row[2], tz=UTC), float(row[3]))
            for row in rows
        }

    async def count(self) -> int:
        """Return the number of stored posts."""
        async with self.db.conn.execute("SELECT count(*) FROM posts") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0
