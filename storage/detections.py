"""DetectionRepo: the detector's verdict on each post, with its evidence."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.models import Detection, Evidence
from storage.db import Database

__all__ = ["DetectionRepo", "StoredDetection"]


@dataclass(frozen=True, slots=True)
class StoredDetection:
    """A stored verdict, as read back for review."""

    channel_id: int
    message_id: int
    flagged: bool
    detection: Detection


def _json(values: Sequence[object]) -> str:
    """Return a JSON array; most posts have nothing to say, so skip the encoder then."""
    return json.dumps(list(values), ensure_ascii=False) if values else "[]"


class DetectionRepo:
    """Detections table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(self, rows: Sequence[tuple[int, int, Detection, bool]], now: datetime) -> None:
        """Store verdicts, replacing older ones: (channel_id, message_id, detection, flagged)."""
        await self.db.conn.executemany(
            "INSERT OR REPLACE INTO detections (channel_id, message_id, alert, flagged, all_clear,"
            " kinds, regions, score, rejected, evidence, detected_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    channel_id,
                    message_id,
                    int(detection.alert),
                    int(flagged),
                    int(detection.all_clear),
                    _json(detection.kinds),
                    _json(detection.regions),
                    detection.score,
                    _json(detection.rejected),
                    _json([e.as_dict() for e in detection.evidence]),
                    int(now.timestamp()),
                )
                for channel_id, message_id, detection, flagged in rows
            ],
        )

    async def get(self, channel_id: int, message_id: int) -> StoredDetection | None:
        """Return the stored verdict on a post, or None."""
        async with self.db.conn.execute(
            "SELECT flagged, all_clear, kinds, regions, score, rejected, evidence FROM detections"
            " WHERE channel_id = ? AND message_id = ?",
            (channel_id, message_id),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        return StoredDetection(channel_id, message_id, bool(row[0]), _detection(row[1:]))

    async def since(self, since: datetime) -> list[tuple[int, int, datetime, Detection]]:
        """Return the verdicts on posts dated `since` or later, oldest first."""
        rows = await self.db.conn.execute_fetchall(
            "SELECT d.channel_id, d.message_id, p.date, d.all_clear, d.kinds, d.regions,"
            " d.score, d.rejected, d.evidence FROM posts p JOIN detections d"
            " ON d.channel_id = p.channel_id AND d.message_id = p.message_id"
            " WHERE p.date >= ? ORDER BY p.date, d.channel_id, d.message_id",
            (int(since.timestamp()),),
        )
        return [
            (row[0], row[1], datetime.fromtimestamp(row[2], tz=UTC), _detection(row[3:]))
            for row in rows
        ]

    async def count_flagged(self) -> int:
        """Return the number of flagged posts."""
        async with self.db.conn.execute(
            "SELECT count(*) FROM detections WHERE flagged = 1"
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0


def _detection(row: Sequence[Any]) -> Detection:
    """Build a Detection from (all_clear, kinds, regions, score, rejected, evidence) columns."""
    evidence = tuple(
        Evidence(
            rule=item["rule"],
            text=item["text"],
            start=item["span"][0],
            end=item["span"][1],
            kind=item.get("kind"),
            region=item.get("region"),
            place=item.get("place"),
            count=item.get("count"),
        )
        for item in json.loads(row[5])
    )
    return Detection(
        kinds=tuple(json.loads(row[1])),
        regions=tuple(json.loads(row[2])),
        evidence=evidence,
        all_clear=bool(row[0]),
        score=row[3],
        rejected=tuple(json.loads(row[4])),
    )
