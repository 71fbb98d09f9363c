"""IncidentRepo: incidents and their member posts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.incident import Incident, Independence, Member, Role, Status, Via
from bot.models import PostKey
from storage.db import Database

__all__ = ["IncidentRepo"]

_INCIDENT_COLUMNS = "id, region, status, closed_reason, first_report, last_report"
_MEMBER_COLUMNS = (
    "incident_id, channel_id, message_id, date, role, kinds, counts, independence, via,"
    " similar_to, similarity, trust, official, forwarded"
)


def _ts(value: datetime) -> int:
    return int(value.timestamp())


def _dt(value: int) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def _key_text(key: PostKey | None) -> str | None:
    return f"{key[0]}/{key[1]}" if key else None


def _key_of(text: str | None) -> PostKey | None:
    if not text:
        return None
    channel, _, post = text.partition("/")
    return (int(channel), int(post))


class IncidentRepo:
    """Incidents and incident_posts tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(
        self,
        incidents: Iterable[Incident],
        saved: Sequence[tuple[str, Member]],
        removed: Sequence[tuple[str, PostKey]],
        now: datetime,
    ) -> None:
        """Write incidents' current state, the members added or changed, and those gone."""
        stamp = _ts(now)
        await self.db.conn.executemany(
            "INSERT INTO incidents (id, region, status, closed_reason, first_report,"
            " last_report, kinds, counts, cleared, posts, channels, independent, confidence,"
            " official, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET status = excluded.status,"
            " closed_reason = excluded.closed_reason, first_report = excluded.first_report,"
            " last_report = excluded.last_report, kinds = excluded.kinds,"
            " counts = excluded.counts, cleared = excluded.cleared, posts = excluded.posts,"
            " channels = excluded.channels, independent = excluded.independent,"
            " confidence = excluded.confidence, official = excluded.official,"
            " updated_at = excluded.updated_at",
            [
                (
                    incident.id,
                    incident.region,
                    incident.status.value,
                    incident.closed_reason,
                    _ts(incident.first_report),
                    _ts(incident.last_report),
                    json.dumps(list(incident.kinds)),
                    json.dumps(incident.counts, sort_keys=True),
                    json.dumps(sorted(incident.cleared)),
                    incident.stats.reports,
                    incident.channels,
                    incident.independent,
                    incident.confidence,
                    int(incident.official),
                    stamp,
                    stamp,
                )
                for incident in incidents
            ],
        )
        await self.db.conn.executemany(
            "DELETE FROM incident_posts WHERE incident_id = ? AND channel_id = ?"
            " AND message_id = ?",
            [(incident, key[0], key[1]) for incident, key in removed],
        )
        await self.db.conn.executemany(
            f"INSERT OR REPLACE INTO incident_posts ({_MEMBER_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    incident,
                    m.channel_id,
                    m.post_id,
                    _ts(m.date),
                    m.role.value,
                    json.dumps(list(m.kinds)),
                    json.dumps(m.counts, sort_keys=True),
                    m.independence.value,
                    m.via.value,
                    _key_text(m.similar_to),
                    m.similarity,
                    m.trust,
                    int(m.official),
                    int(m.forwarded),
                )
                for incident, m in saved
            ],
        )

    async def load_active(self) -> list[Incident]:
        """Return the active incidents with their members."""
        return await self._load("WHERE status = 'active'", ())

    async def ended_since(self, since: datetime) -> list[Incident]:
        """Return the closed incidents whose last report is at `since` or later."""
        return await self._load(
            "WHERE last_report >= ? AND status = 'closed'", (int(since.timestamp()),)
        )

    async def holding(self, channel_id: int, message_id: int) -> list[Incident]:
        """Return every incident (active or not) that holds the post."""
        return await self._load(
            "WHERE id IN (SELECT incident_id FROM incident_posts"
            " WHERE channel_id = ? AND message_id = ?)",
            (channel_id, message_id),
        )

    async def get(self, incident_id: str) -> Incident | None:
        """Return one incident with its members, or None."""
        found = await self._load("WHERE id = ?", (incident_id,))
        return found[0] if found else None

    async def reports_of(self, incident_id: str, limit: int) -> list[tuple[str | None, str, str]]:
        """Return (link, text, evidence JSON) of an incident's first reports, oldest first."""
        rows = await self.db.conn.execute_fetchall(
            "SELECT p.link, p.text, coalesce(d.evidence, '[]') FROM incident_posts m"
            " JOIN posts p USING (channel_id, message_id)"
            " LEFT JOIN detections d USING (channel_id, message_id)"
            " WHERE m.incident_id = ? AND m.role = 'report'"
            " ORDER BY m.date, m.channel_id, m.message_id LIMIT ?",
            (incident_id, limit),
        )
        return [(row[0], row[1], row[2]) for row in rows]

    async def recent(
        self, regions: Sequence[str] | None = None, limit: int = 10
    ) -> list[Incident]:
        """Return the latest incidents (in the given regions), newest first, retracted left out."""
        where = "status != 'retracted'"
        params: list[Any] = []
        if regions is not None:
            where += f" AND region IN ({', '.join('?' for _ in regions)})"
            params += list(regions)
        found = await self._load(
            f"WHERE id IN (SELECT id FROM incidents WHERE {where}"
            " ORDER BY last_report DESC LIMIT ?)",
            (*params, limit),
        )
        return sorted(found, key=lambda i: (i.last_report, i.id), reverse=True)

    async def mark_false_positive(
        self, incident_id: str, user_id: int, note: str, now: datetime
    ) -> bool:
        """Record an operator's false-positive mark; return False if it was marked already."""
        cursor = await self.db.conn.execute(
            "INSERT INTO false_positives (incident_id, user_id, note, marked_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (incident_id) DO NOTHING",
            (incident_id, user_id, note[:500], _ts(now)),
        )
        return bool(cursor.rowcount)

    async def false_positive(self, incident_id: str) -> tuple[int, str, datetime] | None:
        """Return who marked an incident a false positive, the note and when; or None."""
        rows = list(
            await self.db.conn.execute_fetchall(
                "SELECT user_id, note, marked_at FROM false_positives WHERE incident_id = ?",
                (incident_id,),
            )
        )
        if not rows:
            return None
        return int(rows[0][0]), str(rows[0][1]), datetime.fromtimestamp(rows[0][2], tz=UTC)

    async def receipt_delay(self, incident_id: str) -> float | None:
        """Return how many seconds after posting its most promptly received report arrived."""
        rows = list(
            await self.db.conn.execute_fetchall(
                "SELECT min(p.stored_at - p.date) FROM incident_posts m"
                " JOIN posts p USING (channel_id, message_id)"
                " WHERE m.incident_id = ? AND m.role = 'report'",
                (incident_id,),
            )
        )
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    async def count(self, status: Status | None = None) -> int:
        """Return the number of incidents (with the given status)."""
        query = "SELECT count(*) FROM incidents"
        params: tuple[Any, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            params = (status.value,)
        async with self.db.conn.execute(query, params) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def _load(self, where: str, params: tuple[Any, ...]) -> list[Incident]:
        rows = await self.db.conn.execute_fetchall(
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents {where} ORDER BY first_report, id",
            params,
        )
        incidents = {
            row[0]: Incident(
                id=row[0],
                region=row[1],
                status=Status(row[2]),
                closed_reason=row[3],
                first_report=_dt(row[4]),
                last_report=_dt(row[5]),
            )
            for row in rows
        }
        if not incidents:
            return []
        ids = list(incidents)
        marks = ", ".join("?" for _ in ids)
        members = await self.db.conn.execute_fetchall(
            f"SELECT {_MEMBER_COLUMNS} FROM incident_posts WHERE incident_id IN ({marks})",
            ids,
        )
        for row in members:
            member = Member(
                channel_id=row[1],
                post_id=row[2],
                date=_dt(row[3]),
                role=Role(row[4]),
                kinds=tuple(json.loads(row[5])),
                counts=dict(json.loads(row[6])),
                independence=Independence(row[7]),
                via=Via(row[8]),
                similar_to=_key_of(row[9]),
                similarity=row[10],
                trust=row[11],
                official=bool(row[12]),
                forwarded=bool(row[13]),
            )
            incidents[row[0]].add(member)
        return list(incidents.values())
