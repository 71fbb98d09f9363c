"""The composition root: the only place that builds the database, repositories and pipeline."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from pathlib import Path
from typing import Any

from bot.alerts import AlertTexts
from bot.botapi import BotApi
from bot.channels import ChannelBook, ChannelSettings
from bot.config import Config
from bot.counts import CountReader
from bot.delivery import EDIT_SPACING, AlertViews, Deliverer, Notifier, RateLimiter
from bot.detect import Detector
from bot.errors import ConfigError
from bot.gazetteer import Gazetteer
from bot.group import GroupingSettings
from bot.lexicon import Lexicon
from bot.operators import OperatorNotices
from bot.pipeline import Pipeline
from bot.watcher import Watcher, open_client
from storage.alerts import OutboxRepo, SubscriberRepo
from storage.channels import ChannelRepo
from storage.db import Database
from storage.detections import DetectionRepo
from storage.incidents import IncidentRepo
from storage.posts import PostRepo

__all__ = [
    "load_detector",
    "load_gazetteer",
    "open_delivery",
    "open_pipeline",
    "run_service",
    "utc_now",
]

log = logging.getLogger(__name__)


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
    late_after: timedelta | None = None,
    suppress_late: bool = False,
) -> AsyncIterator[tuple[Notifier, Deliverer]]:
    """Open a Bot API client and wire the alert planner and the delivery loop over `db`.

    With `late_after`, an alert whose reports were all received later than that after
    posting is marked late (or, with `suppress_late`, not sent).
    """
    async with BotApi(bot_token, bot_api_url) as api:
        views = AlertViews(IncidentRepo(db), late_after)
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
            suppress_late=suppress_late,
        )
        yield notifier, deliverer


async def run_service(
    config: Config,
    *,
    stop: asyncio.Event | None = None,
    attach: Callable[[Any], object] | None = None,
) -> None:
    """Run the service until SIGTERM or SIGINT (or `stop` is set).

    The watcher feeds the pipeline, the pipeline plans alerts, the delivery loop sends
    them. On stop the watcher stops first (a batch cut short is rolled back and read
    again at the next start), then delivery finishes the requests it has made.
    `attach` is given the Telegram client before it connects (tests put an in-memory
    Telegram under it). Raise LoginRequired when the Telegram session is not logged in.
    """
    stop = stop or asyncio.Event()
    async with open_pipeline(
        config.database_path,
        config.watch_regions,
        channels=config.channels,
        grouping=config.grouping,
    ) as (db, pipeline):
        async with db.transaction():
            added = await ChannelRepo(db).seed(config.channels, utc_now())
        if added:
            log.info("channels added from CHANNELS: %s", ", ".join(added))
        async with (
            open_delivery(
                db,
                config.bot_token.value,
                config.bot_api_url,
                config.alert_zone,
                late_after=config.late_after,
                suppress_late=config.late_alerts == "suppress",
            ) as (notifier, deliverer),
            open_client(
                _require(config.telegram_api_id),
                config.telegram_api_hash.value,
                config.session_path,
                config.telegram_session.value,
            ) as client,
        ):
            if attach is not None:
                attach(client)
            pipeline.notifier = notifier
            operators = OperatorNotices(deliverer.api, config.operator_ids)
            watcher = Watcher(
                client,
                db,
                pipeline.process_many,
                clock=utc_now,
                max_age=config.catchup_max_age,
                max_posts=config.catchup_max_posts,
                notify=operators.tell,
                on_channels=lambda channels: pipeline.use_channels(c.settings for c in channels),
            )
            await _until_stopped(stop, watcher.run(), deliverer.run())


def _require(api_id: int | None) -> int:
    if api_id is None:
        raise ConfigError(["TELEGRAM_API_ID is missing (get it at my.telegram.org)"])
    return api_id


async def _until_stopped(stop: asyncio.Event, *jobs: Coroutine[Any, Any, None]) -> None:
    """Run jobs until a signal or `stop`; cancel them in order; re-raise a job's failure."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(job) for job in jobs]
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            log.info("stopping")
    finally:
        stopper.cancel()
        for sig in signals:
            with suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        for task in tasks:  # in order: stop reading posts before stopping delivery
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
