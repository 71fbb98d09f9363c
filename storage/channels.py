"""ChannelRepo and StateRepo: the channels the watcher follows, and the service's own facts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.channels import NO_HOME, ChannelRef, ChannelSettings, WatchedChannel
from storage.db import Database

__all__ = ["ChannelRepo", "StateRepo"]

_COLUMNS = (
    "ref, source, state, channel_id, access_hash, username, title, home, trust, official,"
    " joined, last_message_id, last_post_at, last_error, last_error_at"
)


def _ts(value: datetime) -> int:
    return int(value.timestamp())


def _dt(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None


def _home(settings: ChannelSettings) -> str | None:
    if settings.home_region:
        return settings.home_region
    return None if settings.home_from_title else NO_HOME


def _channel(row: Sequence[Any]) -> WatchedChannel:
    ref, home = row[0], row[7]
    username = row[5]
    named = (
        ChannelRef(username=ref[1:]) if ref.startswith("@") else ChannelRef(channel_id=int(ref))
    )
    settings = ChannelSettings(
        ChannelRef(username=username or named.username, channel_id=row[3] or named.channel_id),
        home_region=home if home and home != NO_HOME else None,
        home_from_title=home != NO_HOME,
        trust=row[8],
        official=bool(row[9]),
    )
    return WatchedChannel(
        ref=ref,
        source=row[1],
        state=row[2],
        settings=settings,
        channel_id=row[3],
        access_hash=row[4],
        username=username,
        title=row[6],
        joined=bool(row[10]),
        last_message_id=row[11],
        last_post_at=_dt(row[12]),
        last_error=row[13],
        last_error_at=_dt(row[14]),
    )


class ChannelRepo:
    """Channels table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def seed(self, configured: Iterable[ChannelSettings], now: datetime) -> list[str]:
        """Add CHANNELS entries not known yet; refresh the settings of those it added before.

        A channel an operator removed stays removed, and one an operator added keeps the
        operator's settings. Return the refs added.
        """
        added = []
        for settings in configured:
            ref = str(settings.ref)
            cursor = await self.db.conn.execute(
                "INSERT INTO channels (ref, source, state, home, trust, official, added_at,"
                " updated_at) VALUES (?, 'config', 'pending', ?, ?, ?, ?, ?)"
                " ON CONFLICT (ref) DO NOTHING",
                (ref, _home(settings), settings.trust, int(settings.official), _ts(now), _ts(now)),
            )
            if cursor.rowcount:
                added.append(ref)
                continue
            await self.db.conn.execute(
                "UPDATE channels SET home = ?, trust = ?, official = ?, updated_at = ?"
                " WHERE ref = ? AND source = 'config' AND state != 'removed'",
                (_home(settings), settings.trust, int(settings.official), _ts(now), ref),
            )
        return added

    async def add(self, settings: ChannelSettings, now: datetime) -> WatchedChannel:
        """Add a channel for an operator (again, if it was removed); return it as stored."""
        ref = str(settings.ref)
        await self.db.conn.execute(
            "INSERT INTO channels (ref, source, state, home, trust, official, added_at,"
            " updated_at) VALUES (?, 'operator', 'pending', ?, ?, ?, ?, ?)"
            " ON CONFLICT (ref) DO UPDATE SET source = 'operator',"
            " state = CASE WHEN state IN ('removed', 'failed') THEN 'pending' ELSE state END,"
            # Back after a removal: start at its newest post, not replay what was missed.
            " last_message_id = CASE WHEN state = 'removed' THEN NULL ELSE last_message_id END,"
            " home = excluded.home, trust = excluded.trust, official = excluded.official,"
            " updated_at = excluded.updated_at",
            (ref, _home(settings), settings.trust, int(settings.official), _ts(now), _ts(now)),
        )
        found = await self.get(ref)
        assert found is not None
        return found

    async def remove(self, ref: str, now: datetime) -> bool:
        """Stop following a channel; return False when no such channel is followed."""
        cursor = await self.db.conn.execute(
            "UPDATE channels SET state = 'removed', updated_at = ?"
            " WHERE ref = ? AND state != 'removed'",
            (_ts(now), ref),
        )
        return bool(cursor.rowcount)

    async def get(self, ref: str) -> WatchedChannel | None:
        """Return one channel by its ref, or None."""
        rows = await self._select("WHERE ref = ?", (ref,))
        return rows[0] if rows else None

    async def find(self, channel_id: int) -> WatchedChannel | None:
        """Return the followed channel with this Telegram id, or None."""
        rows = await self._select("WHERE channel_id = ? AND state != 'removed'", (channel_id,))
        return rows[0] if rows else None

    async def all(self, *states: str) -> list[WatchedChannel]:
        """Return every channel (in the given states), by when they were added, then ref."""
        if not states:
            return await self._select("", ())
        marks = ", ".join("?" for _ in states)
        return await self._select(f"WHERE state IN ({marks})", states)

    async def joined_count(self) -> int:
        """Return how many followed channels the account has joined."""
        rows = await self.db.conn.execute_fetchall(
            "SELECT count(*) FROM channels WHERE joined = 1 AND state = 'active'"
        )
        return int(next(iter(rows))[0])

    async def resolved(
        self,
        ref: str,
        channel_id: int,
        access_hash: int | None,
        username: str | None,
        title: str,
        joined: bool,
        now: datetime,
    ) -> None:
        """Record what a channel resolved to; it is followed from now on."""
        await self.db.conn.execute(
            "UPDATE channels SET state = 'active', channel_id = ?, access_hash = ?,"
            " username = ?, title = ?, joined = ?, last_error = NULL, updated_at = ?"
            " WHERE ref = ?",
            (channel_id, access_hash, username, title, int(joined), _ts(now), ref),
        )

    async def failed(self, ref: str, error: str, now: datetime, *, retry: bool = False) -> None:
        """Record why a channel cannot be followed (left pending when `retry`)."""
        await self.db.conn.execute(
            "UPDATE channels SET state = ?, last_error = ?, last_error_at = ?, updated_at = ?"
            " WHERE ref = ? AND state != 'removed'",
            ("pending" if retry else "failed", error, _ts(now), _ts(now), ref),
        )

    async def error(self, channel_id: int, error: str | None, now: datetime) -> None:
        """Record a followed channel's latest error (None clears it)."""
        await self.db.conn.execute(
            "UPDATE channels SET last_error = ?, last_error_at = ?, updated_at = ?"
            " WHERE channel_id = ? AND state = 'active'",
            (error, _ts(now) if error else None, _ts(now), channel_id),
        )

    async def advance(
        self, channel_id: int, message_id: int, post_date: datetime | None, now: datetime
    ) -> None:
        """Move a channel's read marker forward (never back) to a processed message."""
        await self.db.conn.execute(
            "UPDATE channels SET last_message_id = ?,"
            " last_post_at = coalesce(?, last_post_at), updated_at = ?"
            " WHERE channel_id = ? AND state != 'removed'"
            " AND (last_message_id IS NULL OR last_message_id < ?)",
            (
                message_id,
                _ts(post_date) if post_date else None,
                _ts(now),
                channel_id,
                message_id,
            ),
        )

    async def post_failed(
        self, channel_id: int, message_id: int, error: str, now: datetime, max_attempts: int
    ) -> int:
        """Count a failed attempt to process a post; return the attempts so far.

        At `max_attempts` the post is given up: kept for review, no longer retried.
        """
        await self.db.conn.execute(
            "INSERT INTO watch_failures (channel_id, message_id, attempts, error, given_up,"
            " first_at, last_at) VALUES (?, ?, 1, ?, 0, ?, ?)"
            " ON CONFLICT (channel_id, message_id) DO UPDATE SET attempts = attempts + 1,"
            " error = excluded.error, last_at = excluded.last_at",
            (channel_id, message_id, error[:500], _ts(now), _ts(now)),
        )
        await self.db.conn.execute(
            "UPDATE watch_failures SET given_up = 1"
            " WHERE channel_id = ? AND message_id = ? AND attempts >= ?",
            (channel_id, message_id, max_attempts),
        )
        rows = await self.db.conn.execute_fetchall(
            "SELECT attempts FROM watch_failures WHERE channel_id = ? AND message_id = ?",
            (channel_id, message_id),
        )
        return int(next(iter(rows))[0])

    async def post_recovered(self, channel_id: int, message_id: int) -> None:
        """Forget a failure: the post was processed after all."""
        await self.db.conn.execute(
            "DELETE FROM watch_failures WHERE channel_id = ? AND message_id = ?",
            (channel_id, message_id),
        )

    async def failed_posts(self) -> dict[int, list[int]]:
        """Return the posts to process again (not given up), by channel."""
        rows = await self.db.conn.execute_fetchall(
            "SELECT channel_id, message_id FROM watch_failures WHERE given_up = 0"
            " ORDER BY channel_id, message_id"
        )
        found: dict[int, list[int]] = {}
        for channel_id, message_id in rows:
            found.setdefault(channel_id, []).append(message_id)
        return found

    async def _select(self, where: str, params: Sequence[Any]) -> list[WatchedChannel]:
        rows = await self.db.conn.execute_fetchall(
            f"SELECT {_COLUMNS} FROM channels {where} ORDER BY added_at, ref", params
        )
        return [_channel(row) for row in rows]


class StateRepo:
    """Service facts kept across restarts (key → text)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, key: str) -> str | None:
        """Return a stored value, or None."""
        rows = list(
            await self.db.conn.execute_fetchall(
                "SELECT value FROM service_state WHERE key = ?", (key,)
            )
        )
        return str(rows[0][0]) if rows else None

    async def set(self, key: str, value: str, now: datetime) -> None:
        """Store a value."""
        await self.db.conn.execute(
            "INSERT INTO service_state (key, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at",
            (key, value, _ts(now)),
        )
