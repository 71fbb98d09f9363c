"""PostRepo: posts stored once per (channel_id, message_id), updated when edited."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from bot.models import Post
from storage.db import Database

__all__ = ["PostChange", "PostRepo"]


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

    async def upsert(self, post: Post, now: datetime) -> PostChange:
        """Store a post; report whether it is new, an edit of its text, or a repeat."""
        conn = self.db.conn
        cursor = await conn.execute(
            "INSERT INTO posts (channel_id, message_id, date, edit_date, text, forwarded_from,"
            " grouped_id, reply_to, link, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (channel_id, message_id) DO NOTHING",
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
            ),
        )
        if cursor.rowcount == 1:
            return PostChange.NEW
        # Reactions and view counts also bump the edit date: only new text is an edit.
        cursor = await conn.execute(
            "UPDATE posts SET text = ?, edit_date = ? WHERE channel_id = ? AND message_id = ?"
            " AND text IS NOT ?",
            (post.text, _ts(post.edit_date), post.channel_id, post.id, post.text),
        )
        return PostChange.EDITED if cursor.rowcount == 1 else PostChange.UNCHANGED

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

    async def count(self) -> int:
        """Return the number of stored posts."""
        async with self.db.conn.execute("SELECT count(*) FROM posts") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0
