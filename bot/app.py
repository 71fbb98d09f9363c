"""The composition root: the only place that builds the database, repositories and pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, tzinfo
from functools import cache
from pathlib import Path

from bot.alerts import AlertTexts
from bot.botapi import BotApi
from bot.channels import ChannelBook, ChannelSettings
from bot.counts import CountReader
from bot.delivery import EDIT_SPACING, AlertViews, Deliverer, Notifier, RateLimiter
from bot.detect import Detector
from bot.gazetteer import Gazetteer
from bot.group import GroupingSettings
from bot.lexicon import Lexicon
from bot.pipeline import Pipeline
from storage.alerts import OutboxRepo, SubscriberRepo
from storage.db import Database
from storage.detections import DetectionRepo
from storage.incidents import IncidentRepo
from storage.posts import PostRepo

__all__ = ["load_detector", "load_gazetteer", "open_delivery", "open_pipeline", "utc_now"]


def utc_now() -> datetime:
    """Return the current time, timezone-aware UTC (the production clock)."""
    return datetime.now(tz=UTC)


@cache
def load_gazetteer() -> Gazetteer:
    """Load the packaged gazetteer once per process."""
    return Gazetteer.load()


@cache
def load_detector() -> Detector:
    """Build the detector from the packaged lexicon and gazetteer once per process."""
    return Detector(Lexicon.load(), load_gazetteer(), CountReader.load())


@asynccontextmanager
async def open_pipeline(
    database_path: str | Path,
    watch_regions: Iterable[str],
    *,
    detector: Detector | None = None,
    clock: Callable[[], datetime] = utc_now,
    channels: Iterable[ChannelSettings] = (),
    grouping: GroupingSettings | None = None,
) -> AsyncIterator[tuple[Database, Pipeline]]:
    """Open the database, wire a pipeline over it and restore its state; close on exit.

    No alert is planned until `pipeline.notifier` is set (see `open_delivery`).
    """
    async with Database(database_path) as db:
        pipeline = Pipeline(
            detector or load_detector(),
            PostRepo(db),
            DetectionRepo(db),
            IncidentRepo(db),
            watch_regions,
            clock,
            channels=ChannelBook(channels),
            grouping=grouping,
        )
        await pipeline.restore()
        yield db, pipeline


@asynccontextmanager
async def open_delivery(
    db: Database,
    bot_token: str,
    bot_api_url: str,
    zone: tzinfo,
    *,
    clock: Callable[[], datetime] = utc_now,
    limiter: RateLimiter | None = None,
    edit_spacing: float = EDIT_SPACING,
) -> AsyncIterator[tuple[Notifier, Deliverer]]:
    """Open a Bot API client and wire the alert planner and the delivery loop over `db`."""
    async with BotApi(bot_token, bot_api_url) as api:
        views = AlertViews(IncidentRepo(db))
        texts = AlertTexts.load(load_gazetteer(), zone)
        deliverer = Deliverer(
            api,
            db,
            OutboxRepo(db),
            SubscriberRepo(db),
            views,
            texts,
            limiter=limiter,
            edit_spacing=edit_spacing,
        )
        notifier = Notifier(
            deliverer.subscribers,
            deliverer.outbox,
            views,
            texts,
            clock,
            on_planned=deliverer.wake,
            edit_spacing=edit_spacing,
        )
        yield notifier, deliverer
