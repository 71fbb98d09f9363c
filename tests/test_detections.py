"""DetectionRepo: verdicts stored with their evidence and read back whole."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.detect import Detector
from bot.models import Post
from storage.db import Database
from storage.detections import DetectionRepo
from storage.posts import PostRepo

NOW = datetime(2025, 3, 4, tzinfo=UTC)


async def test_detection_round_trip(tmp_path: Path, detector: Detector) -> None:
    post = Post(channel_id=1, id=10, date=NOW, text="Взрывы над Таганрогом, работает ПВО")
    detection = detector.detect(post.text, post.date)
    async with Database(tmp_path / "sky.db") as db:
        await PostRepo(db).save([post], NOW)
        repo = DetectionRepo(db)
        await repo.save([(1, 10, detection, True)], NOW)
        stored = await repo.get(1, 10)
        assert stored is not None
        assert stored.flagged
        assert stored.detection == detection
        assert await repo.count_flagged() == 1
