"""ReviewRepo: read-only queries over incidents, their posts, deliveries and false positives."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.errors import StorageError
from storage.db import Database

__all__ = [
    "ChannelCount",
    "ChannelName",
    "Delivery",
    "FalsePositiveMark",
    "IncidentFilter",
    "IncidentSummary",
    "ReviewPost",
    "ReviewRepo",
    "RuleCount",
    "open_read_only",
]

EXAMPLES_PER_RULE = 3  # most frequent matched texts shown with each rule
LINK_PREFIX = "https://t.me/"

_INCIDENT_COLUMNS = (
    "i.id, i.region, i.status, i.closed_reason, i.first_report, i.last_report, i.kinds,"
    " i.counts, i.posts, i.channels, i.independent, i.confidence, i.official,"
    " f.user_id, f.note, f.marked_at"
)
# Evidence that names another region is about another incident of the same post.
_EVIDENCE_OF_INCIDENT = (
    "(json_extract(e.value, '$.region') IS NULL OR json_extract(e.value, '$.region') = i.region)"
)


def _dt(value: int) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


@asynccontextmanager
async def open_read_only(path: str | Path) -> AsyncIterator[Database]:
    """Open an existing database for reading; never create, migrate or write it."""
    file = Path(path)
    if not file.is_file():
        raise StorageError(f"no database at {file} (give --db PATH or set DATABASE_PATH)")
    async with Database(file, read_only=True) as db:
        yield db


@dataclass(frozen=True, slots=True)
class IncidentFilter:
    """Which incidents to review; None everywhere means every incident."""

    since: datetime | None = None  # incidents still reported at or after this
    until: datetime | None = None  # incidents first reported at or before this
    region: str | None = None
    kind: str | None = None
    channel_ids: tuple[int, ...] | None = None  # a report or all-clear from one of these
    false_positive: bool | None = None  # True: marked only; False: unmarked only


@dataclass(frozen=True, slots=True)
class FalsePositiveMark:
    """An operator's false-positive mark on an incident."""

    user_id: int
    note: str
    marked_at: datetime


@dataclass(frozen=True, slots=True)
class IncidentSummary:
    """One incident's stored aggregates and its false-positive mark."""

    id: str
    region: str
    status: str
    closed_reason: str | None
    first_report: datetime
    last_report: datetime
    kinds: tuple[str, ...]
    counts: dict[str, int]
    posts: int
    channels: int
    independent: int
    confidence: float
    official: bool
    false_positive: FalsePositiveMark | None


@dataclass(frozen=True, slots=True)
class ReviewPost:
    """One post of an incident: how it joined, its text and the evidence that flagged it."""

    channel_id: int
    message_id: int
    date: datetime
    role: str  # report | all_clear
    via: str  # first | region | near_duplicate | follow_up
    independence: str  # original | echo | copy | forward
    similar_to: str | None  # "channel_id/message_id" of the post it copies
    similarity: float | None
    kinds: tuple[str, ...]
    link: str | None
    text: str
    evidence: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox row of an incident: an alert (seq 0) or a notice in one chat."""

    chat_id: int
    seq: int
    state: str
    attempts: int
    version: int
    sent_version: int | None
    message_id: int | None
    notice: str | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ChannelName:
    """What is known of a channel's name (from `channels`, else from its posts' links)."""

    username: str | None
    title: str | None


@dataclass(frozen=True, slots=True)
class RuleCount:
    """How often an evidence rule fired in false positives, against all incidents."""

    rule: str
    fp_incidents: int
    fp_posts: int
    incidents: int  # every selected incident whose reports it fired in
    examples: tuple[tuple[str, int], ...]  # most frequent matched texts in false positives


@dataclass(frozen=True, slots=True)
class ChannelCount:
    """How often a channel reported false positives, against all incidents."""

    channel_id: int
    fp_incidents: int
    fp_started: int  # false positives whose first report is this channel's
    fp_posts: int
    incidents: int


def _where(selected: IncidentFilter) -> tuple[str, list[Any]]:
    """Return the WHERE clause over incidents `i` (left-joined to false_positives `f`)."""
    clauses: list[str] = []
    params: list[Any] = []
    if selected.since is not None:
        clauses.append("i.last_report >= ?")
        params.append(math.ceil(selected.since.timestamp()))
    if selected.until is not None:
        clauses.append("i.first_report <= ?")
        params.append(math.floor(selected.until.timestamp()))
    if selected.region is not None:
        clauses.append("i.region = ?")
        params.append(selected.region)
    if selected.kind is not None:
        clauses.append("EXISTS (SELECT 1 FROM json_each(i.kinds) k WHERE k.value = ?)")
        params.append(selected.kind)
    if selected.channel_ids is not None:
        ids = list(selected.channel_ids)
        clauses.append(
            "EXISTS (SELECT 1 FROM incident_posts c WHERE c.incident_id = i.id"
            f" AND c.channel_id IN ({_marks(ids) or 'NULL'}))"
        )
        params += ids
    if selected.false_positive is not None:
        clauses.append(
            "f.incident_id IS NOT NULL" if selected.false_positive else "f.incident_id IS NULL"
        )
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _summary(row: Sequence[Any]) -> IncidentSummary:
    mark = FalsePositiveMark(row[13], row[14], _dt(row[15])) if row[13] is not None else None
    return IncidentSummary(
        id=row[0],
        region=row[1],
        status=row[2],
        closed_reason=row[3],
        first_report=_dt(row[4]),
        last_report=_dt(row[5]),
        kinds=tuple(json.loads(row[6])),
        counts=dict(json.loads(row[7])),
        posts=row[8],
        channels=row[9],
        independent=row[10],
        confidence=row[11],
        official=bool(row[12]),
        false_positive=mark,
    )


class ReviewRepo:
    """Read-only views over incidents, incident_posts, posts, detections, outbox and channels."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self.db.conn.execute_fetchall(sql, params))

    async def incidents(
        self, selected: IncidentFilter, limit: int | None = None
    ) -> list[IncidentSummary]:
        """Return the selected incidents, newest first report first."""
        where, params = _where(selected)
        rows = await self._fetch(
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents i"
            f" LEFT JOIN false_positives f ON f.incident_id = i.id {where}"
            " ORDER BY i.first_report DESC, i.id LIMIT ?",
            (*params, -1 if limit is None else limit),
        )
        return [_summary(row) for row in rows]

    async def count(self, selected: IncidentFilter) -> int:
        """Return how many incidents the filter selects."""
        where, params = _where(selected)
        rows = await self._fetch(
            "SELECT count(*) FROM incidents i"
            f" LEFT JOIN false_positives f ON f.incident_id = i.id {where}",
            params,
        )
        return int(rows[0][0])

    async def incident(self, incident_id: str) -> IncidentSummary | None:
        """Return one incident, or None."""
        rows = await self._fetch(
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents i"
            " LEFT JOIN false_positives f ON f.incident_id = i.id WHERE i.id = ?",
            (incident_id,),
        )
        return _summary(rows[0]) if rows else None

    async def posts_of(self, incident_id: str) -> list[ReviewPost]:
        """Return an incident's posts with text, link and evidence, oldest first."""
        rows = await self._fetch(
            "SELECT m.channel_id, m.message_id, m.date, m.role, m.via, m.independence,"
            " m.similar_to, m.similarity, m.kinds, p.link, coalesce(p.text, ''),"
            " coalesce(d.evidence, '[]') FROM incident_posts m"
            " LEFT JOIN posts p USING (channel_id, message_id)"
            " LEFT JOIN detections d USING (channel_id, message_id)"
            " WHERE m.incident_id = ? ORDER BY m.date, m.channel_id, m.message_id",
            (incident_id,),
        )
        return [
            ReviewPost(
                channel_id=row[0],
                message_id=row[1],
                date=_dt(row[2]),
                role=row[3],
                via=row[4],
                independence=row[5],
                similar_to=row[6],
                similarity=row[7],
                kinds=tuple(json.loads(row[8])),
                link=row[9],
                text=row[10],
                evidence=tuple(json.loads(row[11])),
            )
            for row in rows
        ]

    async def deliveries_of(self, incident_id: str) -> list[Delivery]:
        """Return an incident's outbox rows (its delivery history), by chat and seq."""
        rows = await self._fetch(
            "SELECT chat_id, seq, state, attempts, version, sent_version, message_id, notice,"
            " last_error, created_at, updated_at FROM outbox WHERE incident_id = ?"
            " ORDER BY chat_id, seq",
            (incident_id,),
        )
        return [
            Delivery(
                chat_id=row[0],
                seq=row[1],
                state=row[2],
                attempts=row[3],
                version=row[4],
                sent_version=row[5],
                message_id=row[6],
                notice=row[7],
                last_error=row[8],
                created_at=_dt(row[9]),
                updated_at=_dt(row[10]),
            )
            for row in rows
        ]

    async def channel_ids(self, username: str) -> tuple[int, ...]:
        """Return the ids of the channel with this username (channels table, then post links)."""
        name = username.lower()
        rows = await self._fetch(
            "SELECT DISTINCT channel_id FROM channels WHERE channel_id IS NOT NULL"
            " AND (ref = ? OR lower(username) = ?) ORDER BY channel_id",
            (f"@{name}", name),
        )
        if not rows:
            # Replayed exports fill `posts` but not `channels`: their links name the channel.
            rows = await self._fetch(
                "SELECT DISTINCT channel_id FROM posts WHERE lower(link) LIKE ? ESCAPE '\\'"
                " ORDER BY channel_id",
                (LINK_PREFIX + name.replace("_", "\\_") + "/%",),
            )
        return tuple(row[0] for row in rows)

    async def channel_names(self, channel_ids: Iterable[int]) -> dict[int, ChannelName]:
        """Return the username and title known for each channel that has either."""
        ids = sorted(set(channel_ids))
        if not ids:
            return {}
        names: dict[int, ChannelName] = {}
        # A removed channel keeps its row; the live one, or the newest, names it.
        rows = await self._fetch(
            "SELECT channel_id, username, title FROM channels"
            f" WHERE channel_id IN ({_marks(ids)})"
            " ORDER BY state = 'removed' DESC, updated_at",
            ids,
        )
        for channel_id, username, title in rows:
            names[channel_id] = ChannelName(username, title)
        missing = [i for i in ids if i not in names or names[i].username is None]
        if missing:
            rows = await self._fetch(
                "SELECT channel_id, max(link) FROM posts"
                f" WHERE channel_id IN ({_marks(missing)}) AND link LIKE ? GROUP BY channel_id",
                (*missing, LINK_PREFIX + "%"),
            )
            for channel_id, link in rows:
                username = link[len(LINK_PREFIX) :].split("/", 1)[0]
                known = names.get(channel_id)
                names[channel_id] = ChannelName(username, known.title if known else None)
        return names

    async def false_positive_rules(self, selected: IncidentFilter) -> list[RuleCount]:
        """Count evidence rules in false positives' reports, against every selected incident."""
        where, params = _where(selected)
        joins = (
            " FROM incidents i LEFT JOIN false_positives f ON f.incident_id = i.id"
            " JOIN incident_posts m ON m.incident_id = i.id AND m.role = 'report'"
            " JOIN detections d ON d.channel_id = m.channel_id AND d.message_id = m.message_id"
            " JOIN json_each(d.evidence) e"
        )
        extra = ("AND " if where else "WHERE ") + _EVIDENCE_OF_INCIDENT
        rows = await self._fetch(
            "SELECT json_extract(e.value, '$.rule') AS rule,"
            " count(DISTINCT CASE WHEN f.incident_id IS NOT NULL THEN i.id END),"
            " count(DISTINCT CASE WHEN f.incident_id IS NOT NULL"
            " THEN m.channel_id || '/' || m.message_id END),"
            f" count(DISTINCT i.id){joins} {where} {extra}"
            " GROUP BY rule HAVING count(f.incident_id) > 0",
            params,
        )
        texts = await self._fetch(
            "SELECT json_extract(e.value, '$.rule'), json_extract(e.value, '$.text'), count(*)"
            f"{joins} {where} {extra} AND f.incident_id IS NOT NULL GROUP BY 1, 2",
            params,
        )
        examples: dict[str, Counter[str]] = {}
        for rule, text, times in texts:
            # SQLite's lower() folds ASCII only; «Взрывы» and «взрывы» are one example.
            examples.setdefault(rule, Counter())[" ".join(str(text).split()).casefold()] += times
        found = [
            RuleCount(
                rule=str(rule),
                fp_incidents=fp_incidents,
                fp_posts=fp_posts,
                incidents=incidents,
                examples=tuple(examples.get(rule, Counter()).most_common(EXAMPLES_PER_RULE)),
            )
            for rule, fp_incidents, fp_posts, incidents in rows
        ]
        return sorted(found, key=lambda r: (-r.fp_incidents, -r.fp_posts, r.rule))

    async def false_positive_channels(self, selected: IncidentFilter) -> list[ChannelCount]:
        """Count each channel's reports in false positives, against every selected incident."""
        where, params = _where(selected)
        rows = await self._fetch(
            "SELECT m.channel_id,"
            " count(DISTINCT CASE WHEN f.incident_id IS NOT NULL THEN i.id END),"
            " count(DISTINCT CASE WHEN f.incident_id IS NOT NULL AND m.via = 'first'"
            " THEN i.id END),"
            " count(CASE WHEN f.incident_id IS NOT NULL THEN 1 END),"
            " count(DISTINCT i.id)"
            " FROM incidents i LEFT JOIN false_positives f ON f.incident_id = i.id"
            " JOIN incident_posts m ON m.incident_id = i.id AND m.role = 'report'"
            f" {where} GROUP BY m.channel_id HAVING count(f.incident_id) > 0",
            params,
        )
        found = [ChannelCount(*row) for row in rows]
        return sorted(
            found, key=lambda c: (-c.fp_incidents, -c.fp_started, -c.fp_posts, c.channel_id)
        )
