"""Scheduled jobs (APScheduler 3, AsyncIOScheduler in UTC).

- close_quiet, every minute: close incidents quiet for INCIDENT_QUIET_HOURS (their alerts
  get a last edit), only while the watcher is caught up: during a catch-up the missed
  posts decide, by their own dates;
- wake_delivery, every minute: look for due outbox rows (retries whose time came);
- digests, at :00 and :30: the daily digest of each subscriber whose local hour has come
  today (within DIGEST_LATE: a restart or a skipped hour of a DST change still sends it);
- retention, daily at 02:30: delete posts older than RETENTION_DAYS that no incident holds;
- health, hourly at :05: warn operators of a disconnected watcher, a channel silent far
  longer than its longest quiet of the past week, an outbox backlog (and say when each is
  over);
- backup, daily at 03:00: online backup of the database, keeping the last BACKUP_KEEP.

Each job has its own boundary: an exception is logged and the next run comes as usual.
A job never overlaps itself (`max_instances=1`); runs missed while the process was busy
are merged into one (`coalesce`).
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.alerts import AlertTexts
from bot.channels import WatcherHealth
from bot.delivery import Deliverer
from bot.pipeline import Pipeline
from storage.alerts import OutboxRepo, SubscriberRepo
from storage.db import Database
from storage.incidents import IncidentRepo
from storage.operations import StatsRepo
from storage.posts import PostRepo

__all__ = ["JobSettings", "Jobs"]

log = logging.getLogger(__name__)

DIGEST_WINDOW = timedelta(hours=24)
DIGEST_LIMIT = 40  # incidents listed in one digest
DIGEST_SEQ = -1  # outbox seq of a digest: a standalone message
DIGEST_LATE = timedelta(hours=6)  # a digest whose hour passed this long ago waits a day
RATE_WINDOW = timedelta(days=7)  # how a channel's rhythm is measured
RATE_MIN_POSTS = 10  # fewer posts in RATE_WINDOW: too little to call a silence unusual
RATE_MIN_HISTORY = timedelta(days=2)  # a channel followed for less: no rhythm known yet
SILENCE_FACTOR = 1.5  # silent this much longer than its longest quiet of the window...
SILENCE_MIN = timedelta(hours=2)  # ...and at least this long
BACKLOG_ROWS = 200  # outbox rows waiting
BACKLOG_AGE = timedelta(minutes=10)  # or the oldest due row waiting this long
BACKUP_PREFIX = "skywatch-"
MISFIRE_GRACE = 300  # seconds a run may start late
RETENTION_CHUNK = 5000  # posts deleted per transaction


@dataclass(frozen=True, slots=True)
class JobSettings:
    """What the jobs are tuned by."""

    retention: timedelta
    backup_dir: Path
    backup_keep: int


Notify = Callable[[str], Awaitable[None]]
Health = Callable[[], Awaitable[WatcherHealth | None]]


class Jobs:
    """The service's scheduled jobs over its database, pipeline and delivery loop."""

    def __init__(
        self,
        db: Database,
        pipeline: Pipeline,
        deliverer: Deliverer,
        texts: AlertTexts,
        settings: JobSettings,
        *,
        clock: Callable[[], datetime],
        notify: Notify | None = None,
        watcher_health: Health | None = None,
        caught_up: Callable[[], bool] | None = None,
    ) -> None:
        self.db = db
        self.pipeline = pipeline
        self.deliverer = deliverer
        self.texts = texts
        self.settings = settings
        self.clock = clock
        self.notify = notify
        self.watcher_health = watcher_health
        self.caught_up = caught_up  # None: always (no watcher)
        self.subscribers = SubscriberRepo(db)
        self.incidents = IncidentRepo(db)
        self.outbox = OutboxRepo(db)
        self.posts = PostRepo(db)
        self.stats = StatsRepo(db)
        self._warned: set[str] = set()  # health problems operators were told of

    def scheduler(self) -> AsyncIOScheduler:
        """Return a scheduler (not started) holding every job."""
        scheduler = AsyncIOScheduler(timezone=UTC)
        every = {"max_instances": 1, "coalesce": True, "misfire_grace_time": MISFIRE_GRACE}
        jobs: list[tuple[str, Callable[[], Awaitable[object]], object]] = [
            ("close_quiet", self.close_quiet, IntervalTrigger(minutes=1, timezone=UTC)),
            ("wake_delivery", self.wake_delivery, IntervalTrigger(minutes=1, timezone=UTC)),
            ("digests", self.digests, CronTrigger(minute="0,30", timezone=UTC)),
            ("retention", self.retention, CronTrigger(hour=2, minute=30, timezone=UTC)),
            ("health", self.health, CronTrigger(minute=5, timezone=UTC)),
            ("backup", self.backup, CronTrigger(hour=3, minute=0, timezone=UTC)),
        ]
        for name, job, trigger in jobs:
            scheduler.add_job(self._guarded(name, job), trigger, id=name, name=name, **every)
        return scheduler

    def _guarded(
        self, name: str, job: Callable[[], Awaitable[object]]
    ) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            try:
                await job()
            except Exception:
                # The job's boundary: the next run comes as scheduled.
                log.exception("job %s failed", name)

        run.__name__ = f"job_{name}"
        return run

    # --- the jobs ------------------------------------------------------------------------

    async def close_quiet(self) -> list[str]:
        """Close incidents quiet since the quiet gap; return their ids."""
        if self.caught_up is not None and not self.caught_up():
            return []  # posts still being read back may belong to them
        async with self.db.reading():
            newest = await self.posts.latest_date()
        now = max(self.clock(), newest) if newest else self.clock()
        closed = await self.pipeline.close_quiet(now)
        for incident_id in closed:
            log.info("incident %s closed: quiet", incident_id)
        return closed

    async def wake_delivery(self) -> None:
        """Make the delivery loop look for due rows now."""
        self.deliverer.wake()

    async def digests(self) -> int:
        """Queue today's digest of each subscriber whose chosen local hour has come."""
        now = self.clock()
        local = now.astimezone(self.texts.zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)

        def due_now(hour: int | None) -> bool:
            if hour is None:
                return False
            # Wall-clock hour today, in UTC: a DST change skips or repeats one local hour.
            at = (midnight.replace(tzinfo=None) + timedelta(hours=hour)).replace(
                tzinfo=self.texts.zone
            )
            return timedelta(0) <= now - at.astimezone(UTC) <= DIGEST_LATE

        async with self.db.reading():
            due = [
                s
                for s in await self.subscribers.active()
                if due_now(s.digest_hour)
                and not (s.muted_until is not None and s.muted_until > now)
            ]
        watched = self.pipeline.watch_regions
        digest_id = f"digest-{local:%Y%m%d}"  # one a day per chat: a rerun adds nothing
        for subscriber in due:
            regions = [r for r in watched if subscriber.regions is None or r in subscriber.regions]
            text = await self._digest(regions, subscriber.regions is None, subscriber.language)
            async with self.db.transaction():
                await self.outbox.enqueue(
                    digest_id, [subscriber.chat_id], DIGEST_SEQ, 1, now, text
                )
            log.info("digest %s queued for chat %s", digest_id, subscriber.chat_id)
        if due:
            self.deliverer.wake()
        return len(due)

    async def _digest(self, regions: Sequence[str], every: bool, lang: str) -> str:
        texts = self.texts
        since = self.clock() - DIGEST_WINDOW
        named = (
            texts.phrase("digest.all_regions", lang)
            if every
            else ", ".join(texts.region_name(r, lang) for r in regions)
        )
        async with self.db.reading():
            found = [
                incident
                for incident in await self.incidents.recent(regions, DIGEST_LIMIT)
                if incident.last_report >= since
            ]
            marked = {i.id for i in found if await self.incidents.false_positive(i.id)}
        if not found:
            return html.escape(texts.phrase("digest.none", lang, regions=named))
        lines = [texts.phrase("digest.title", lang, regions=named)]
        for incident in reversed(found):  # oldest first: the day as it went
            line = texts.brief(
                incident.region,
                incident.kinds,
                incident.first_report,
                incident.last_report,
                lang,
            )
            if incident.id in marked:
                line += f" ({texts.phrase('digest.false_positive', lang)})"
            lines.append(line)
        return html.escape("\n".join(lines))

    async def retention(self) -> int:
        """Delete old posts no incident holds; return how many."""
        cutoff = self.clock() - self.settings.retention
        deleted = 0
        while True:  # in short transactions: live posts are not held up for long
            async with self.db.transaction():
                chunk = await self.posts.prune(cutoff, RETENTION_CHUNK)
            deleted += chunk
            if chunk < RETENTION_CHUNK:
                break
            await asyncio.sleep(0)
        log.info("retention: %d post(s) before %s deleted", deleted, f"{cutoff:%Y-%m-%d}")
        return deleted

    async def health(self) -> list[str]:
        """Warn operators of new problems (and say when one is over); return the problems."""
        problems = await self.problems()
        new = [p for p in problems if _key(p) not in self._warned]
        over = self._warned - {_key(p) for p in problems}
        self._warned = {_key(p) for p in problems}
        for problem in problems:
            log.warning("health: %s", problem)
        lines = [f"⚠️ {p}" for p in new] + [f"✅ over: {key}" for key in sorted(over)]
        if lines and self.notify is not None:
            await self.notify("skywatch health check:\n" + "\n".join(lines))
        return problems

    async def problems(self) -> list[str]:
        """Return what is wrong now: watcher, silent channels, outbox backlog."""
        now = self.clock()
        problems: list[str] = []
        health = await self.watcher_health() if self.watcher_health is not None else None
        if health is not None and not health.connected:
            since = f" since {health.since:%H:%M} UTC" if health.since else ""
            problems.append(f"watcher: disconnected from Telegram{since}")
        elif health is not None:  # silences mean something only while connected
            async with self.db.reading():
                rhythm = await self.posts.rhythm_since(now - RATE_WINDOW)
            for channel in health.channels:
                if channel.state != "active" or channel.channel_id is None:
                    continue
                posted, first, longest = rhythm.get(channel.channel_id, (0, now, 0.0))
                if (
                    posted < RATE_MIN_POSTS
                    or now - first < RATE_MIN_HISTORY
                    or channel.last_post_at is None
                ):
                    continue
                quiet = timedelta(seconds=longest)
                silence = now - channel.last_post_at
                if silence > max(SILENCE_MIN, SILENCE_FACTOR * quiet):
                    problems.append(
                        f"channel {channel.name}: silent for {_hours(silence)} "
                        f"(its longest quiet this week: {_hours(quiet)})"
                    )
        async with self.db.reading():
            queued = await self.stats.queued()
            due = await self.outbox.next_due()
        waited = now - datetime.fromtimestamp(due, tz=UTC) if due is not None else None
        if queued > BACKLOG_ROWS or (waited is not None and waited > BACKLOG_AGE):
            oldest = f", the oldest due {_hours(waited)} ago" if waited else ""
            problems.append(f"outbox: {queued} message(s) waiting{oldest}")
        return problems

    async def backup(self) -> Path:
        """Back the database up into the backup folder; keep the newest BACKUP_KEEP."""
        folder = self.settings.backup_dir
        folder.mkdir(parents=True, exist_ok=True)
        for partial in folder.glob(f"{BACKUP_PREFIX}*.partial"):
            partial.unlink()  # left by a backup cut short
        target = folder / f"{BACKUP_PREFIX}{self.clock():%Y%m%d-%H%M%S}.db"
        await self.db.backup(target)
        copies = sorted(folder.glob(f"{BACKUP_PREFIX}*.db"))
        for old in copies[: max(0, len(copies) - self.settings.backup_keep)]:
            old.unlink()
        log.info(
            "backup written: %s (%d kept)", target, min(len(copies), self.settings.backup_keep)
        )
        return target


def _key(problem: str) -> str:
    """Return what identifies a problem across runs (its subject, not its numbers)."""
    return problem.split(":", 1)[0]


def _hours(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes / 60:.1f} h"
