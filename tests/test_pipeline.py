"""The pipeline: each post once, edits re-detected, only watched regions flagged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import open_pipeline
from bot.detect import Detector
from bot.models import Post
from bot.pipeline import Pipeline
from storage.db import Database
from storage.detections import DetectionRepo
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
    assert second.incident == "RU-ROS-20250304-0200-2f858c"  # stable: region, date, hash
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
