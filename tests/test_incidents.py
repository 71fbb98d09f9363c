"""IncidentRepo: incidents and members round-trip through SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.incident import Incident, Independence, Member, Role, Status, Via
from storage.db import Database
from storage.incidents import IncidentRepo

DATE = datetime(2025, 3, 4, 2, 0, tzinfo=UTC)


def member(channel: int, post: int, minutes: int = 0, **extra: object) -> Member:
    fields: dict[str, object] = {
        "role": Role.REPORT,
        "kinds": ("explosion",),
        "counts": {},
        "independence": Independence.ORIGINAL,
        "via": Via.REGION,
        **extra,
    }
    return Member(channel, post, DATE + timedelta(minutes=minutes), **fields)  # type: ignore[arg-type]


async def test_round_trip_and_queries(tmp_path: Path) -> None:
    async with Database(tmp_path / "s.db") as db:
        repo = IncidentRepo(db)
        first = member(1, 10, via=Via.FIRST, counts={"explosion": 5})
        copy = member(2, 20, 3, independence=Independence.COPY, similar_to=(1, 10), similarity=0.9)
        clear = member(1, 11, 30, role=Role.ALL_CLEAR, kinds=(), official=True, trust=2.0)
        incident = Incident("RU-ROS-x", "RU-ROS", DATE, DATE)
        for m in (first, copy, clear):
            incident.add(m)
        other = Incident("RU-KDA-y", "RU-KDA", DATE, DATE, status=Status.CLOSED)
        other.add(member(1, 10))
        async with db.transaction():
            await repo.save(
                [incident, other],
                [("RU-ROS-x", m) for m in (first, copy, clear)]
                + [("RU-KDA-y", other.members[(1, 10)])],
                [],
                DATE,
            )

        loaded = await repo.get("RU-ROS-x")
        assert loaded is not None
        assert loaded.members == incident.members
        assert (loaded.first_report, loaded.last_report) == (DATE, DATE + timedelta(minutes=3))
        assert loaded.cleared == {"drone", "missile"}  # an all-clear naming no kind
        assert loaded.counts == {"explosion": 5}
        assert [i.id for i in await repo.load_active()] == ["RU-ROS-x"]
        assert {i.id for i in await repo.holding(1, 10)} == {"RU-ROS-x", "RU-KDA-y"}
        assert await repo.count() == 2 and await repo.count(Status.CLOSED) == 1

        async with db.transaction():
            await repo.save([incident], [], [("RU-ROS-x", (2, 20))], DATE)
        loaded = await repo.get("RU-ROS-x")
        assert loaded is not None and (2, 20) not in loaded.members
        async with db.conn.execute(
            "SELECT posts, channels, independent, official FROM incidents WHERE id = 'RU-ROS-x'"
        ) as cursor:
            assert await cursor.fetchone() == (2, 2, 1, 0)  # stored from the saved object
        assert await repo.get("missing") is None
