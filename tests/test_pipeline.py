"""The pipeline: each post once, edits re-detected, only watched regions flagged."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.app import open_pipeline
from bot.channels import ChannelRef, ChannelSettings
from bot.detect import Detector
from bot.group import incident_id
from bot.incident import Status
from bot.models import Post
from bot.pipeline import Pipeline
from storage.db import Database
from storage.detections import DetectionRepo
from storage.incidents import IncidentRepo
from tests.conftest import FakeClock

DATE = datetime(2025, 3, 4, 2, 0, tzinfo=UTC)


@pytest.fixture
async def wired(
    tmp_path: Path, detector: Detector, clock: FakeClock
) -> AsyncIterator[tuple[Database, Pipeline]]:
    """Return a database file and a pipeline watching RU-ROS."""
    async with open_pipeline(tmp_path / "s.db", ["RU-ROS"], detector=detector, clock=clock) as (
        db,
        pipeline,
    ):
        yield db, pipeline


async def test_process_once_then_edit(wired: tuple[Database, Pipeline]) -> None:
    db, pipeline = wired
    post = Post(channel_id=5, id=1, date=DATE, text="Таганрог: новости")
    first = await pipeline.process(post)
    assert first is not None and not first.flagged
    assert await pipeline.process(post) is None
    edited = replace(post, text="Таганрог: взрывы, работает ПВО", edit_date=DATE)
    second = await pipeline.process(edited)
    assert second is not None and second.flagged
    assert second.regions == ("RU-ROS",)
    assert second.incident == incident_id("RU-ROS", edited)  # stable: region, date, hash
    stored = await DetectionRepo(db).get(5, 1)
    assert stored is not None and stored.flagged


async def test_unwatched_region_is_detected_but_not_flagged(
    wired: tuple[Database, Pipeline],
) -> None:
    db, pipeline = wired
    outcome = await pipeline.process(Post(channel_id=5, id=2, date=DATE, text="Взрывы в Курске"))
    assert outcome is not None
    assert outcome.detection.alert and outcome.detection.regions == ("RU-KRS",)
    assert not outcome.flagged and outcome.regions == ()
    stored = await DetectionRepo(db).get(5, 2)
    assert stored is not None and not stored.flagged and stored.detection.alert


class FailingDetectionRepo(DetectionRepo):
    """Stands in for a crash between storing posts and storing their verdicts."""

    async def save(self, rows: object, now: datetime) -> None:
        raise RuntimeError("crash")


async def test_posts_and_verdicts_are_stored_together(wired: tuple[Database, Pipeline]) -> None:
    db, pipeline = wired
    post = Post(channel_id=5, id=3, date=DATE, text="Взрывы в Таганроге")
    pipeline.detections = FailingDetectionRepo(db)
    with pytest.raises(RuntimeError):
        await pipeline.process(post)
    pipeline.detections = DetectionRepo(db)
    outcome = await pipeline.process(post)  # not lost: processed on the next try
    assert outcome is not None and outcome.flagged


async def test_split_report_borrows_kind_and_place_from_its_channel(
    tmp_path: Path, detector: Detector, clock: FakeClock
) -> None:
    def at(minutes: int, id_: int, text: str, **extra: object) -> Post:
        return Post(7, id_, DATE + timedelta(minutes=minutes), text, **extra)  # type: ignore[arg-type]

    async with open_pipeline(tmp_path / "s.db", ["RU-KRS"], detector=detector, clock=clock) as (
        _,
        pipeline,
    ):
        kind_only = await pipeline.process(at(0, 1, "Шахеды!"))
        assert kind_only is not None and not kind_only.flagged  # no place yet, no home region
        place_only = await pipeline.process(at(1, 2, "Курсом на Курск"))
        assert place_only is not None and place_only.flagged
        assert place_only.detection.kinds == ("drone",)
        assert place_only.regions == ("RU-KRS",)
        assert any(
            e.rule == "context:recent" and e.text == "7/1" for e in place_only.detection.evidence
        )
        more = await pipeline.process(at(3, 3, "Ещё взрывы"))  # a kind: the place of 7/2
        assert more is not None and more.incident == place_only.incident
        reply = await pipeline.process(at(40, 4, "Сбиты два беспилотника", reply_to=2))
        assert reply is not None and reply.incident == place_only.incident
        assert any(e.rule == "context:reply" for e in reply.detection.evidence)
        news = await pipeline.process(at(5, 5, "Доброе утро, Курск!"))
        assert news is not None and not news.flagged  # not a continuation


async def test_home_region_from_the_channel_title(
    wired: tuple[Database, Pipeline],
) -> None:
    _, pipeline = wired
    text = "Громко!!! Работает ПВО, во дворах сработали сигнализации машин"
    post = Post(9, 1, DATE, text, channel_title="Таганрог Онлайн")
    outcome = await pipeline.process(post)
    assert outcome is not None and outcome.flagged and outcome.regions == ("RU-ROS",)
    assert any(e.rule == "context:home" for e in outcome.detection.evidence)
    elsewhere = Post(10, 1, DATE, "Слышны взрывы", channel_title="Новости 24")
    outcome = await pipeline.process(elsewhere)
    assert outcome is not None and not outcome.flagged  # no place, no home, no copy
    copy = Post(10, 2, DATE, text, channel_title="Новости 24")
    outcome = await pipeline.process(copy)
    assert outcome is not None and outcome.regions == ("RU-ROS",)  # a copy of 9/1
    short = Post(11, 1, DATE, "Работает ПВО!", channel_title="Новости 24")
    outcome = await pipeline.process(short)
    assert outcome is not None and not outcome.flagged  # too short to say what it copies


async def test_configured_channel_settings(
    tmp_path: Path, detector: Detector, clock: FakeClock
) -> None:
    settings = ChannelSettings(
        ChannelRef(username="tg_local"), home_region="RU-ROS", official=True
    )
    async with open_pipeline(
        tmp_path / "s.db", ["RU-ROS"], detector=detector, clock=clock, channels=[settings]
    ) as (_, pipeline):
        post = Post(11, 1, DATE, "Работает ПВО, сбиты беспилотники", channel_username="TG_local")
        outcome = await pipeline.process(post)
        assert outcome is not None and outcome.flagged
        incident = pipeline.grouper.active[outcome.incidents[0]]
        assert incident.official


async def test_grouping_survives_a_restart(
    tmp_path: Path, detector: Detector, clock: FakeClock
) -> None:
    path = tmp_path / "s.db"
    async with open_pipeline(path, ["RU-ROS"], detector=detector, clock=clock) as (_, pipeline):
        first = await pipeline.process(Post(1, 1, DATE, "Взрывы в Таганроге"))
        await pipeline.process(Post(1, 2, DATE + timedelta(minutes=1), "Работает ПВО!"))
    assert first is not None
    async with open_pipeline(path, ["RU-ROS"], detector=detector, clock=clock) as (db, pipeline):
        assert list(pipeline.grouper.active) == [first.incident]
        later = await pipeline.process(
            Post(2, 1, DATE + timedelta(minutes=30), "Над Таганрогом сбиты беспилотники")
        )
        assert later is not None and later.incident == first.incident
        # the channel's context came back too: a kind-only post takes 1/2's place
        more = await pipeline.process(Post(1, 3, DATE + timedelta(minutes=5), "Ещё взрывы"))
        assert more is not None and more.incident == first.incident
        incident = await IncidentRepo(db).get(first.incident or "")
        assert incident is not None and len(incident.members) == 4


async def test_edit_of_a_closed_incident_after_restart_retracts_it(
    tmp_path: Path, detector: Detector, clock: FakeClock
) -> None:
    path = tmp_path / "s.db"
    post = Post(1, 1, DATE, "Взрывы в Таганроге")
    async with open_pipeline(path, ["RU-ROS"], detector=detector, clock=clock) as (_, pipeline):
        first = await pipeline.process(post)
        await pipeline.process(Post(2, 1, DATE + timedelta(hours=5), "Взрывы в Таганроге"))
    assert first is not None and first.incident is not None
    async with open_pipeline(path, ["RU-ROS"], detector=detector, clock=clock) as (db, pipeline):
        repo = IncidentRepo(db)
        closed = await repo.get(first.incident)
        assert closed is not None and closed.status is Status.CLOSED
        edit = replace(post, text="Таганрог: хорошая погода", edit_date=DATE + timedelta(hours=6))
        outcome = await pipeline.process(edit)
        assert outcome is not None and not outcome.flagged
        assert (first.incident, "retracted") in outcome.events
        retracted = await repo.get(first.incident)
        assert retracted is not None and retracted.status is Status.RETRACTED
        assert retracted.members == {}


async def test_failed_batch_leaves_memory_as_the_database(
    wired: tuple[Database, Pipeline],
) -> None:
    db, pipeline = wired
    pipeline.detections = FailingDetectionRepo(db)
    with pytest.raises(RuntimeError):
        await pipeline.process(Post(5, 9, DATE, "Взрывы в Таганроге"))
    pipeline.detections = DetectionRepo(db)
    # memory is reloaded before the next batch: the incident of the failed one is gone
    outcome = await pipeline.process(Post(5, 10, DATE, "Доброе утро"))
    assert outcome is not None and pipeline.grouper.active == {}
    outcome = await pipeline.process(Post(5, 9, DATE, "Взрывы в Таганроге"))
    assert outcome is not None and outcome.flagged
    assert await IncidentRepo(db).count() == 1


async def test_close_quiet_persists(wired: tuple[Database, Pipeline]) -> None:
    db, pipeline = wired
    outcome = await pipeline.process(Post(5, 10, DATE, "Взрывы в Таганроге"))
    assert outcome is not None
    assert await pipeline.close_quiet(DATE + timedelta(hours=1)) == []
    assert await pipeline.close_quiet(DATE + timedelta(hours=3)) == [outcome.incident]
    assert await IncidentRepo(db).count(Status.CLOSED) == 1


async def test_two_edits_of_one_closed_incident_in_one_batch(
    tmp_path: Path, detector: Detector, clock: FakeClock
) -> None:
    first = Post(1, 1, DATE, "Взрывы в Белгороде")
    second = Post(2, 1, DATE + timedelta(minutes=5), "Взрывы в Белгороде")
    async with open_pipeline(tmp_path / "s.db", ["RU-BEL"], detector=detector, clock=clock) as (
        db,
        pipeline,
    ):
        outcome = await pipeline.process(first)
        await pipeline.process(second)
        await pipeline.close_quiet(DATE + timedelta(hours=4))
        later = DATE + timedelta(hours=5)
        await pipeline.process_many(
            [
                replace(first, text="Учения в Белгороде", edit_date=later),
                replace(second, text="Учения в Белгороде", edit_date=later),
            ]
        )
        assert outcome is not None and outcome.incident is not None
        incident = await IncidentRepo(db).get(outcome.incident)
        assert incident is not None and incident.status is Status.RETRACTED
        assert incident.members == {}


class FailingIncidentRepo(IncidentRepo):
    """Stands in for a disk that fills up while incidents are written."""

    async def save(self, *args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("disk full")


async def test_a_failed_close_is_retried(wired: tuple[Database, Pipeline]) -> None:
    db, pipeline = wired
    outcome = await pipeline.process(Post(5, 11, DATE, "Взрывы в Таганроге"))
    assert outcome is not None
    pipeline.incidents = FailingIncidentRepo(db)
    with pytest.raises(sqlite3.OperationalError):
        await pipeline.close_quiet(DATE + timedelta(hours=4))
    pipeline.incidents = IncidentRepo(db)
    assert await pipeline.close_quiet(DATE + timedelta(hours=4)) == [outcome.incident]
    assert await IncidentRepo(db).count(Status.CLOSED) == 1
