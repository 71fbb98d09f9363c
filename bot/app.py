"""The composition root: the only place that builds the database, repositories and pipeline."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.alerts import AlertTexts
from bot.botapi import BotApi
from bot.channels import ChannelBook, ChannelSettings, WatcherHealth
from bot.config import Config
from bot.counts import CountReader
from bot.delivery import EDIT_SPACING, AlertViews, Deliverer, Notifier, RateLimiter
from bot.detect import Detector
from bot.errors import ConfigError
from bot.gazetteer import Gazetteer
from bot.group import GroupingSettings
from bot.jobs import Jobs, JobSettings
from bot.lexicon import Lexicon
from bot.metrics import HealthServer, Metrics
from bot.operators import OperatorNotices
from bot.phrases import Phrases
from bot.pipeline import Pipeline
from bot.poller import POLL_TIMEOUT, Poller
from handlers import build_router
from handlers.operators import PAUSED_KEY
from handlers.router import Control, Dispatcher, Services
from storage.alerts import OutboxRepo, SubscriberRepo
from storage.channels import ChannelRepo, StateRepo
from storage.db import Database
from storage.detections import DetectionRepo
from storage.incidents import IncidentRepo
from storage.operations import AuditRepo, RegionRepo, StatsRepo
from storage.posts import PostRepo
from storage.review import ReviewRepo

if TYPE_CHECKING:  # Telethon is loaded only by `run` and `login`: replay and eval stay light
    from bot.watcher import Watcher

__all__ = [
    "load_detector",
    "load_gazetteer",
    "open_delivery",
    "open_commands",
    "open_pipeline",
    "ServiceControl",
    "run_service",
    "utc_now",
]

log = logging.getLogger(__name__)

COMMAND_TEXTS = "texts.tsv"  # handlers/data: subscriber replies in ru/uk/en


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
    from bot.watcher import Watcher, open_client  # lazily: see TYPE_CHECKING above

    stop = stop or asyncio.Event()
    async with open_pipeline(
        config.database_path,
        config.watch_regions,
        channels=config.channels,
        grouping=config.grouping,
    ) as (db, pipeline):
        async with db.transaction():
            added = await ChannelRepo(db).seed(config.channels, utc_now())
            regions = await RegionRepo(db).seed(config.watch_regions, utc_now())
        if added:
            log.info("channels added from CHANNELS: %s", ", ".join(added))
        if regions:
            log.info("regions added from WATCH_REGIONS: %s", ", ".join(regions))
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
            control = ServiceControl(pipeline, notifier, watcher)
            poller = await open_commands(
                db,
                deliverer.api,
                control,
                zone=config.alert_zone,
                operator_ids=config.operator_ids,
                limiter=deliverer.limiter,
            )
            metrics = _metrics(db, pipeline, deliverer, watcher)
            jobs = Jobs(
                db,
                pipeline,
                deliverer,
                deliverer.texts,
                JobSettings(config.retention, config.data_dir / "backups", config.backup_keep),
                clock=utc_now,
                notify=operators.tell,
                watcher_health=watcher.health,
                caught_up=lambda: watcher.listening,
            )
            async with _health_server(config, metrics, db, watcher):
                scheduler = jobs.scheduler()
                scheduler.start()
                try:
                    # In this order: no job starts once stopping, then the first to stop
                    # is what reads new work.
                    await _until_stopped(
                        stop, poller.run, watcher.run, deliverer.run, first=scheduler.pause
                    )
                finally:
                    scheduler.shutdown(wait=False)


def _metrics(db: Database, pipeline: Pipeline, deliverer: Deliverer, watcher: Watcher) -> Metrics:
    """Count what the pipeline and delivery do; read the outbox and watcher when scraped."""
    metrics = Metrics()
    pipeline.metrics = deliverer.metrics = metrics
    stats = StatsRepo(db)

    async def queued() -> float:
        async with db.reading():
            return float(await stats.queued())

    async def connected() -> float:
        return float(watcher.connected)

    metrics.gauges["skywatch_outbox_messages"] = queued
    metrics.gauges["skywatch_watcher_connected"] = connected
    return metrics


class ServiceControl:
    """What operator commands change in the running service (see handlers.router.Control)."""

    def __init__(
        self, pipeline: Pipeline, notifier: Notifier, watcher: Watcher | None = None
    ) -> None:
        self.pipeline = pipeline
        self.notifier = notifier
        self.watcher = watcher

    def set_watched(self, regions: Sequence[str]) -> None:
        """Use a new set of watched regions."""
        self.pipeline.use_regions(regions)
        log.info("watched regions: %s", ", ".join(regions) or "none")

    def set_paused(self, paused: bool) -> None:
        """Stop or resume planning alerts."""
        self.notifier.paused = paused
        log.info("alerts %s", "paused" if paused else "resumed")

    def sync_channels(self) -> None:
        """Ask the watcher to follow the channels as stored now."""
        if self.watcher is not None:
            self.watcher.request_sync()

    async def watcher_health(self) -> WatcherHealth | None:
        """Return the watcher's health (None when no watcher runs)."""
        return await self.watcher.health() if self.watcher is not None else None

    async def reannounce(self, incident_id: str) -> bool:
        """Edit an incident's alert to show its current state."""
        return await self.notifier.reannounce(incident_id)


async def open_commands(
    db: Database,
    api: BotApi,
    control: Control,
    *,
    zone: tzinfo,
    operator_ids: Iterable[int],
    limiter: RateLimiter | None = None,
    clock: Callable[[], datetime] = utc_now,
    poll_timeout: float = POLL_TIMEOUT,
) -> Poller:
    """Wire the chat commands over `db`: the dispatcher and the update poller.

    The watched regions and the pause flag are read from the database, and the control
    is told them, so that what operators set survives a restart.
    """
    async with db.reading():
        watched = await RegionRepo(db).active()
        paused = await StateRepo(db).get(PAUSED_KEY) == "1"
    control.set_watched(watched)
    control.set_paused(paused)
    services = Services(
        db=db,
        subscribers=SubscriberRepo(db),
        channels=ChannelRepo(db),
        incidents=IncidentRepo(db),
        review=ReviewRepo(db),
        regions=RegionRepo(db),
        audit=AuditRepo(db),
        stats=StatsRepo(db),
        state=StateRepo(db),
        gazetteer=load_gazetteer(),
        alert_texts=AlertTexts.load(load_gazetteer(), zone),
        phrases=Phrases.load("handlers", COMMAND_TEXTS),
        control=control,
        operator_ids=frozenset(operator_ids),
        clock=clock,
        watched=watched,
        paused=paused,
    )
    dispatcher = Dispatcher(build_router(), services, bot_username="")
    return Poller(api, db, dispatcher, clock, limiter=limiter, poll_timeout=poll_timeout)


@asynccontextmanager
async def _health_server(
    config: Config, metrics: Metrics, db: Database, watcher: Watcher
) -> AsyncIterator[HealthServer | None]:
    """Serve /healthz and /metrics while the service runs (unless HEALTH_PORT=0)."""
    if not config.health_port:
        yield None
        return

    async def check() -> dict[str, object]:
        try:
            async with db.reading() as conn:
                await conn.execute_fetchall("SELECT 1")
        except Exception as err:
            return {"status": "error", "database": f"unavailable: {type(err).__name__}"}
        return {
            "status": "ok",
            "database": "ok",
            "watcher": "listening"
            if watcher.listening
            else "connected"
            if watcher.connected
            else "disconnected",
        }

    try:
        server = await HealthServer(metrics, check, config.health_host, config.health_port).open()
    except OSError as err:
        # The service matters more than its health endpoint: run without it, loudly.
        log.error(
            "no /healthz or /metrics: cannot listen on %s:%s (%s); set HEALTH_HOST and "
            "HEALTH_PORT, or HEALTH_PORT=0",
            config.health_host,
            config.health_port,
            err,
        )
        yield None
        return
    try:
        yield server
    finally:
        await server.close()


def _require(api_id: int | None) -> int:
    if api_id is None:
        raise ConfigError(["TELEGRAM_API_ID is missing (get it at my.telegram.org)"])
    return api_id


async def _until_stopped(
    stop: asyncio.Event,
    *jobs: Callable[[], Coroutine[Any, Any, None]],
    first: Callable[[], object] | None = None,
) -> None:
    """Run jobs until a signal or `stop`; cancel them in order; re-raise a job's failure.

    `first` is called before anything is cancelled (the scheduler pauses).
    """
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(job()) for job in jobs]
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            log.info("stopping")
    finally:
        stopper.cancel()
        if first is not None:
            first()
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
