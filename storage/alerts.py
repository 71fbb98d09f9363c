"""SubscriberRepo and OutboxRepo: who receives alerts, and every alert message's state."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.models import Subscriber
from storage.db import Database

__all__ = ["AlertState", "OutboxRepo", "OutboxRow", "SubscriberRepo"]

_SUBSCRIBER_COLUMNS = "chat_id, kind, language, regions, muted_until, active, digest_hour"
_ROW_COLUMNS = (
    "incident_id, chat_id, seq, state, notice, version, sent_version, message_id, attempts,"
    " next_try, edited_at, created_at"
)


async def _fetch(db: Database, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    return list(await db.conn.execute_fetchall(sql, params))


def _ts(value: datetime) -> int:
    return int(value.timestamp())


def _subscriber(row: Sequence[Any]) -> Subscriber:
    return Subscriber(
        chat_id=row[0],
        kind=row[1],
        language=row[2],
        regions=tuple(json.loads(row[3])) if row[3] is not None else None,
        muted_until=datetime.fromtimestamp(row[4], tz=UTC) if row[4] is not None else None,
        active=bool(row[5]),
        digest_hour=row[6],
    )


class SubscriberRepo:
    """Subscribers table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(self, subscriber: Subscriber, now: datetime) -> None:
        """Store a subscriber (insert or replace its settings)."""
        regions = json.dumps(list(subscriber.regions)) if subscriber.regions is not None else None
        muted = _ts(subscriber.muted_until) if subscriber.muted_until else None
        await self.db.conn.execute(
            "INSERT INTO subscribers (chat_id, kind, language, regions, muted_until, active,"
            " digest_hour, deactivated, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)"
            " ON CONFLICT (chat_id) DO UPDATE SET kind = excluded.kind,"
            " language = excluded.language, regions = excluded.regions,"
            " muted_until = excluded.muted_until, active = excluded.active,"
            " digest_hour = excluded.digest_hour,"
            " deactivated = NULL, updated_at = excluded.updated_at",
            (
                subscriber.chat_id,
                subscriber.kind,
                subscriber.language,
                regions,
                muted,
                int(subscriber.active),
                subscriber.digest_hour,
                _ts(now),
                _ts(now),
            ),
        )

    async def get(self, chat_id: int) -> Subscriber | None:
        """Return one subscriber, or None."""
        rows = await _fetch(
            self.db, f"SELECT {_SUBSCRIBER_COLUMNS} FROM subscribers WHERE chat_id = ?", (chat_id,)
        )
        return _subscriber(rows[0]) if rows else None

    async def everyone(self) -> list[Subscriber]:
        """Return every subscriber, active or not."""
        rows = await _fetch(
            self.db, f"SELECT {_SUBSCRIBER_COLUMNS} FROM subscribers ORDER BY chat_id"
        )
        return [_subscriber(row) for row in rows]

    async def active(self) -> list[Subscriber]:
        """Return every active subscriber."""
        rows = await _fetch(
            self.db,
            f"SELECT {_SUBSCRIBER_COLUMNS} FROM subscribers WHERE active = 1 ORDER BY chat_id",
        )
        return [_subscriber(row) for row in rows]

    async def deactivate(self, chat_id: int, reason: str, now: datetime) -> None:
        """Stop delivering to a chat (blocked, kicked, gone), keeping why."""
        await self.db.conn.execute(
            "UPDATE subscribers SET active = 0, deactivated = ?, updated_at = ? WHERE chat_id = ?",
            (reason, _ts(now), chat_id),
        )

    async def migrate(self, old_chat_id: int, new_chat_id: int, now: datetime) -> None:
        """Move a group's subscription to its supergroup's new id (keeping its settings)."""
        await self.db.conn.execute(
            "UPDATE OR IGNORE subscribers SET chat_id = ?, kind = 'supergroup', updated_at = ?"
            " WHERE chat_id = ?",
            (new_chat_id, _ts(now), old_chat_id),
        )
        await self.deactivate(old_chat_id, f"migrated to {new_chat_id}", now)

    async def deactivated_reason(self, chat_id: int) -> str | None:
        """Return why delivery to a chat stopped, or None."""
        rows = await _fetch(
            self.db, "SELECT deactivated FROM subscribers WHERE chat_id = ?", (chat_id,)
        )
        return rows[0][0] if rows else None


@dataclass(frozen=True, slots=True)
class AlertState:
    """What subscribers have been told of an incident."""

    incident_id: str
    kinds: tuple[str, ...]
    counts: dict[str, int]
    official: bool
    version: int
    notices: int


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One alert message to deliver: the alert itself (seq 0) or a notice replying to it."""

    incident_id: str
    chat_id: int
    seq: int
    state: str
    notice: str | None
    version: int
    sent_version: int | None
    message_id: int | None
    attempts: int
    next_try: float
    edited_at: float | None
    created_at: float  # when it was planned

    @property
    def is_new(self) -> bool:
        """Return True when the message has not been sent yet."""
        return self.message_id is None


def _row(row: Sequence[Any]) -> OutboxRow:
    return OutboxRow(*row)


class OutboxRepo:
    """The alert_state and outbox tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def state(self, incident_id: str) -> AlertState | None:
        """Return what subscribers were told of an incident, or None if nothing yet."""
        rows = await _fetch(
            self.db,
            "SELECT incident_id, kinds, counts, official, version, notices FROM alert_state"
            " WHERE incident_id = ?",
            (incident_id,),
        )
        if not rows:
            return None
        row = rows[0]
        return AlertState(
            row[0], tuple(json.loads(row[1])), dict(json.loads(row[2])), bool(row[3]), row[4],
            row[5],
        )  # fmt: skip

    async def save_state(self, state: AlertState, now: datetime) -> None:
        """Store what subscribers are told of an incident."""
        await self.db.conn.execute(
            "INSERT OR REPLACE INTO alert_state (incident_id, kinds, counts, official, version,"
            " notices, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                state.incident_id,
                json.dumps(list(state.kinds)),
                json.dumps(state.counts, sort_keys=True),
                int(state.official),
                state.version,
                state.notices,
                _ts(now),
            ),
        )

    async def enqueue(
        self,
        incident_id: str,
        chat_ids: Sequence[int],
        seq: int,
        version: int,
        now: datetime,
        notice: str | None = None,
    ) -> None:
        """Add a message for each chat; a row that exists already is left alone."""
        stamp = now.timestamp()
        await self.db.conn.executemany(
            "INSERT OR IGNORE INTO outbox (incident_id, chat_id, seq, state, notice, version,"
            " next_try, created_at, updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
            [
                (incident_id, chat, seq, notice, version, stamp, int(stamp), int(stamp))
                for chat in chat_ids
            ],
        )

    async def alert_chats(self, incident_id: str) -> list[int]:
        """Return the chats whose alert of the incident is out (and not given up)."""
        rows = await _fetch(
            self.db,
            "SELECT chat_id FROM outbox WHERE incident_id = ? AND seq = 0"
            " AND message_id IS NOT NULL AND state IN ('pending', 'sending', 'sent')"
            " ORDER BY chat_id",
            (incident_id,),
        )
        return [row[0] for row in rows]

    async def bump(self, incident_id: str, version: int, now: datetime, spacing: float) -> None:
        """Ask for the alert to show `version`: an edit no sooner than `spacing` after the last."""
        stamp = now.timestamp()
        await self.db.conn.execute(
            "UPDATE outbox SET version = ?, updated_at = ?,"
            " state = CASE WHEN state = 'sending' THEN 'sending' ELSE 'pending' END,"
            " next_try = max(?, coalesce(edited_at + ?, 0), next_try * (state = 'pending'))"
            " WHERE incident_id = ? AND seq = 0 AND state IN ('pending', 'sending', 'sent')",
            (version, int(stamp), stamp, spacing, incident_id),
        )

    async def drop_unsent(self, incident_id: str, reason: str, now: datetime) -> None:
        """Drop an incident's messages not sent yet (it was retracted before they went)."""
        await self.db.conn.execute(
            "UPDATE outbox SET state = 'dropped', last_error = ?, updated_at = ?"
            " WHERE incident_id = ? AND state = 'pending' AND message_id IS NULL",
            (reason, _ts(now), incident_id),
        )

    async def claim(self, now: float, limit: int, lease: float) -> list[OutboxRow]:
        """Claim due messages for `lease` seconds: new alerts, then notices, then edits.

        A claimed row is this loop's alone; one whose lease ran out (its loop died mid-call)
        is due again.
        """
        rows = await _fetch(
            self.db,
            f"SELECT {_ROW_COLUMNS} FROM outbox WHERE (state = 'pending' AND next_try <= ?)"
            " OR (state = 'sending' AND lease_until <= ?)"
            # New alerts first, then notices, then edits; digests (seq < 0) last.
            " ORDER BY (message_id IS NOT NULL) + (seq > 0) * 0.5 + (seq < 0) * 2, next_try,"
            " incident_id,"
            " chat_id, seq LIMIT ?",
            (now, now, limit),
        )
        claimed = [_row(row) for row in rows]
        await self.db.conn.executemany(
            "UPDATE outbox SET state = 'sending', lease_until = ?"
            " WHERE incident_id = ? AND chat_id = ? AND seq = ?",
            [(now + lease, r.incident_id, r.chat_id, r.seq) for r in claimed],
        )
        return claimed

    async def alert_row(self, incident_id: str, chat_id: int) -> tuple[str, int | None] | None:
        """Return the state and message id of an incident's alert in a chat, or None."""
        rows = await _fetch(
            self.db,
            "SELECT state, message_id FROM outbox WHERE incident_id = ? AND chat_id = ?"
            " AND seq = 0",
            (incident_id, chat_id),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    async def next_due(self) -> float | None:
        """Return when the next message is due (or a claim runs out), or None."""
        rows = await _fetch(
            self.db,
            "SELECT min(at) FROM (SELECT min(next_try) AS at FROM outbox WHERE state = 'pending'"
            " UNION ALL SELECT min(lease_until) FROM outbox WHERE state = 'sending')",
        )
        return rows[0][0] if rows and rows[0][0] is not None else None

    async def sent(
        self, row: OutboxRow, message_id: int, version: int, now: float, next_edit: float
    ) -> None:
        """Record a message Telegram accepted (or an edit it made), showing `version`.

        If the incident changed meanwhile, the row stays pending for an edit at `next_edit`.
        """
        await self.db.conn.execute(
            "UPDATE outbox SET message_id = ?, sent_version = ?, attempts = 0, last_error = NULL,"
            " edited_at = ?, updated_at = ?, lease_until = NULL,"
            " state = CASE WHEN version > ? THEN 'pending' ELSE 'sent' END,"
            " next_try = CASE WHEN version > ? THEN ? ELSE next_try END"
            " WHERE incident_id = ? AND chat_id = ? AND seq = ? AND state != 'dropped'",
            (
                message_id,
                version,
                now,
                int(now),
                version,
                version,
                next_edit,
                row.incident_id,
                row.chat_id,
                row.seq,
            ),
        )

    async def retry(
        self, row: OutboxRow, at: float, error: str, *, lost: bool = False, counts: bool = True
    ) -> None:
        """Try a message again at `at`.

        `lost`: the message to edit is gone, send it anew; `counts`: the try counts as an
        attempt (waiting for something else does not).
        """
        await self.db.conn.execute(
            "UPDATE outbox SET attempts = attempts + ?, next_try = ?, last_error = ?,"
            " updated_at = ?, lease_until = NULL,"
            " state = CASE WHEN state = 'sending' THEN 'pending' ELSE state END,"
            " message_id = CASE WHEN ? THEN NULL ELSE message_id END"
            " WHERE incident_id = ? AND chat_id = ? AND seq = ?",
            (int(counts), at, error, int(at), lost, row.incident_id, row.chat_id, row.seq),
        )

    async def migrate(self, old_chat_id: int, new_chat_id: int, now: float) -> None:
        """Send a group's unsent and live messages to its supergroup instead, as new ones.

        Messages in the old group cannot be edited from the new one: the alerts still
        waiting or still changing are sent afresh there.
        """
        await self.db.conn.execute(
            "UPDATE OR IGNORE outbox SET chat_id = ?, message_id = NULL, state = 'pending',"
            " lease_until = NULL, next_try = ?, updated_at = ?"
            " WHERE chat_id = ? AND state IN ('pending', 'sending')",
            (new_chat_id, now, int(now), old_chat_id),
        )
        await self.drop_chat(old_chat_id, f"migrated to {new_chat_id}", now)

    async def drop(self, row: OutboxRow, error: str, now: float) -> None:
        """Drop one message (a notice whose alert was given up)."""
        await self.db.conn.execute(
            "UPDATE outbox SET state = 'dropped', last_error = ?, updated_at = ?,"
            " lease_until = NULL WHERE incident_id = ? AND chat_id = ? AND seq = ?",
            (error, int(now), row.incident_id, row.chat_id, row.seq),
        )

    async def fail(self, row: OutboxRow, error: str, now: float) -> None:
        """Give a message up (the request itself is wrong, or tries ran out)."""
        await self.db.conn.execute(
            "UPDATE outbox SET state = 'failed', last_error = ?, updated_at = ?,"
            " lease_until = NULL WHERE incident_id = ? AND chat_id = ? AND seq = ?",
            (error, int(now), row.incident_id, row.chat_id, row.seq),
        )

    async def drop_chat(self, chat_id: int, error: str, now: float) -> None:
        """Drop every pending message to a chat that cannot receive them."""
        await self.db.conn.execute(
            "UPDATE outbox SET state = 'dropped', last_error = ?, updated_at = ?,"
            " lease_until = NULL WHERE chat_id = ? AND state IN ('pending', 'sending')",
            (error, int(now), chat_id),
        )

    async def rows(self, incident_id: str | None = None) -> list[OutboxRow]:
        """Return outbox rows (of one incident), for review and tests."""
        where, params = ("WHERE incident_id = ?", (incident_id,)) if incident_id else ("", ())
        rows = await _fetch(
            self.db,
            f"SELECT {_ROW_COLUMNS} FROM outbox {where} ORDER BY incident_id, chat_id, seq",
            params,
        )
        return [_row(row) for row in rows]
