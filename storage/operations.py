"""RegionRepo, AuditRepo and StatsRepo: what operators change, what they did, how it runs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from storage.db import Database

__all__ = ["AuditEntry", "AuditRepo", "RegionRepo", "Stats", "StatsRepo"]


def _ts(value: datetime) -> int:
    return int(value.timestamp())


async def _one(db: Database, sql: str, params: Sequence[Any] = ()) -> Any:
    rows = list(await db.conn.execute_fetchall(sql, params))
    return rows[0][0] if rows else None


class RegionRepo:
    """Watched regions: WATCH_REGIONS seeds them, operators change them."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def seed(self, configured: Iterable[str], now: datetime) -> list[str]:
        """Add configured regions not known yet (one an operator unwatched stays so)."""
        added = []
        for region in configured:
            cursor = await self.db.conn.execute(
                "INSERT INTO watched_regions (region, source, active, updated_at)"
                " VALUES (?, 'config', 1, ?) ON CONFLICT (region) DO NOTHING",
                (region, _ts(now)),
            )
            if cursor.rowcount:
                added.append(region)
        return added

    async def active(self) -> tuple[str, ...]:
        """Return the watched regions, by code."""
        rows = await self.db.conn.execute_fetchall(
            "SELECT region FROM watched_regions WHERE active = 1 ORDER BY region"
        )
        return tuple(str(row[0]) for row in rows)

    async def set(self, region: str, watched: bool, now: datetime) -> bool:
        """Watch or unwatch a region; return False when it already was so."""
        cursor = await self.db.conn.execute(
            "INSERT INTO watched_regions (region, source, active, updated_at)"
            " VALUES (?, 'operator', ?, ?) ON CONFLICT (region) DO UPDATE SET"
            " source = 'operator', active = excluded.active, updated_at = excluded.updated_at"
            " WHERE active != excluded.active",
            (region, int(watched), _ts(now)),
        )
        return bool(cursor.rowcount)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One operator action."""

    at: datetime
    user_id: int
    chat_id: int
    command: str
    args: str
    result: str  # ok | refused | bad_input | error
    detail: str


class AuditRepo:
    """The audit trail of operator commands."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, entry: AuditEntry) -> None:
        """Store one action."""
        await self.db.conn.execute(
            "INSERT INTO audit (at, user_id, chat_id, command, args, result, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                _ts(entry.at),
                entry.user_id,
                entry.chat_id,
                entry.command,
                entry.args[:500],
                entry.result,
                entry.detail[:500],
            ),
        )

    async def recent(self, limit: int = 100) -> list[AuditEntry]:
        """Return the latest actions, newest first."""
        rows = await self.db.conn.execute_fetchall(
            "SELECT at, user_id, chat_id, command, args, result, detail FROM audit"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            AuditEntry(datetime.fromtimestamp(r[0], tz=UTC), r[1], r[2], r[3], r[4], r[5], r[6])
            for r in rows
        ]


@dataclass(frozen=True, slots=True)
class Stats:
    """What the service did since a moment, and what is waiting now."""

    posts: int
    flagged: int
    incidents: int
    alerts_sent: int  # first messages of alerts, not edits or notices
    messages_sent: int  # alerts, notices and the latest edit of each
    delivery_failures: int  # given up or dropped
    queued: int  # messages waiting or being sent now
    failed_posts: int  # posts the watcher could not process (not given up)


class StatsRepo:
    """Counts for /stats and the health job."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def queued(self) -> int:
        """Return how many outbox messages wait or are being sent now (one indexed count)."""
        return int(
            await _one(
                self.db, "SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')"
            )
        )

    async def since(self, since: datetime) -> Stats:
        """Return the counts since `since` (wall clock), and the queue as it stands."""
        at = _ts(since)
        return Stats(
            posts=await _one(self.db, "SELECT count(*) FROM posts WHERE stored_at >= ?", (at,)),
            flagged=await _one(
                self.db,
                "SELECT count(*) FROM detections WHERE flagged = 1 AND detected_at >= ?",
                (at,),
            ),
            incidents=await _one(
                self.db, "SELECT count(*) FROM incidents WHERE created_at >= ?", (at,)
            ),
            alerts_sent=await _one(
                self.db,
                "SELECT count(*) FROM outbox WHERE seq = 0 AND message_id IS NOT NULL"
                " AND created_at >= ?",
                (at,),
            ),
            messages_sent=await _one(
                self.db,
                "SELECT count(*) FROM outbox WHERE message_id IS NOT NULL AND updated_at >= ?",
                (at,),
            ),
            delivery_failures=await _one(
                self.db,
                "SELECT count(*) FROM outbox WHERE state IN ('failed', 'dropped')"
                " AND updated_at >= ?",
                (at,),
            ),
            queued=await self.queued(),
            failed_posts=await _one(
                self.db, "SELECT count(*) FROM watch_failures WHERE given_up = 0"
            ),
        )
