"""Scheduled jobs over a real SQLite file, a real pipeline and the fake Bot API server."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.alerts import AlertTexts
from bot.app import open_delivery, open_pipeline
from bot.channels import DEFAULT_SETTINGS, WatchedChannel
from bot.delivery import Deliverer, RateLimiter
from bot.detect import Detector
from bot.gazetteer import Gazetteer
from bot.incident import Status
from bot.jobs import Jobs, JobSettings
from bot.models import Post, Subscriber
from bot.pipeline import Pipeline
from bot.watcher import WatcherHealth
from storage.alerts import OutboxRepo, SubscriberRepo
from storage.db import Database
from storage.incidents import IncidentRepo
from tests.conftest import POST_DATE, FakeClock
from tests.fakes.botapi import FakeBotApi

TOKEN = "123456:TEST-token"
ZONE = ZoneInfo("Europe/Moscow")
FAST = RateLimiter(global_per_second=200, chat_spacing=0.0, group_spacing=0.0)


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    with FakeBotApi(TOKEN, enforce_limits=False) as server:
        yield server


@dataclass
class Rig:
    db: Database
    pipeline: Pipeline
    deliverer: Deliverer
    jobs: Jobs
    clock: FakeClock
    told: list[str] = field(default_factory=list)
    health: WatcherHealth | None = None

    async def post(self, channel: int, id_: int, text: str, minutes: float = 0) -> None:
        date = POST_DATE + timedelta(minutes=minutes)
        self.clock.now = max(self.clock.now, date)
        await self.pipeline.process(Post(channel, id_, date, text))

    async def subscribe(self, chat: int, **settings: object) -> None:
        async with self.db.transaction():
            await SubscriberRepo(self.db).save(Subscriber(chat, **settings), self.clock.now)  # type: ignore[arg-type]


@pytest.fixture
async def rig(
    tmp_path: Path, detector: Detector, clock: FakeClock, api: FakeBotApi
) -> AsyncIterator[Rig]:
    async with (
        open_pipeline(tmp_path / "j.db", ["RU-KDA", "RU-ROS"], detector=detector, clock=clock) as (
            db,
            pipeline,
        ),
        open_delivery(db, TOKEN, api.url, ZONE, clock=clock, limiter=FAST, edit_spacing=0) as (
            notifier,
            deliverer,
        ),
    ):
        pipeline.notifier = notifier
        told: list[str] = []

        async def tell(text: str) -> None:
            told.append(text)

        rig = Rig(db, pipeline, deliverer, None, clock, told)  # type: ignore[arg-type]

        async def health() -> WatcherHealth | None:
            return rig.health

        rig.jobs = Jobs(
            db,
            pipeline,
            deliverer,
            deliverer.texts,
            JobSettings(timedelta(days=30), tmp_path / "backups", 3),
            clock=clock,
            notify=tell,
            watcher_health=health,
        )
        yield rig


async def test_quiet_incidents_are_closed_and_their_alert_edited(
    rig: Rig, api: FakeBotApi
) -> None:
    await rig.subscribe(1)
    await rig.post(10, 1, "Взрывы в Краснодаре")
    await rig.deliverer.drain()
    assert await rig.jobs.close_quiet() == []  # not quiet yet
    rig.clock.now += timedelta(hours=3, minutes=1)
    [closed] = await rig.jobs.close_quiet()
    incident = await IncidentRepo(rig.db).get(closed)
    assert incident is not None and incident.status is Status.CLOSED
    await rig.deliverer.drain()
    [alert] = api.messages(1)
    assert "Завершено: новых сообщений нет" in alert.text


async def test_a_digest_goes_once_at_the_chosen_local_hour(rig: Rig, api: FakeBotApi) -> None:
    await rig.post(10, 1, "Взрывы в Краснодаре")
    await rig.post(11, 1, "Над Таганрогом сбит беспилотник", minutes=5)
    local_hour = rig.clock.now.astimezone(ZONE).hour
    await rig.subscribe(1, digest_hour=local_hour, regions=("RU-ROS",), language="uk")
    await rig.subscribe(2, digest_hour=(local_hour + 1) % 24)  # not now
    await rig.subscribe(3, digest_hour=local_hour, muted_until=rig.clock.now + timedelta(hours=1))
    await rig.deliverer.drain()  # the alerts themselves
    alerts = len(api.messages(1))
    assert await rig.jobs.digests() == 1
    assert await rig.jobs.digests() == 1  # run twice in the hour: still one message
    await rig.deliverer.drain()
    [digest] = api.messages(1)[alerts:]
    assert digest.text.startswith("🗓 Зведення за добу (Ростовська область):")
    assert "Ростовська область: безпілотники" in digest.text and "Краснодар" not in digest.text
    assert api.messages(3) == []  # muted


async def test_an_empty_digest_says_all_was_quiet(rig: Rig, api: FakeBotApi) -> None:
    await rig.subscribe(1, digest_hour=rig.clock.now.astimezone(ZONE).hour)
    await rig.jobs.digests()
    await rig.deliverer.drain()
    [digest] = api.messages(1)
    assert digest.text == "🗓 За сутки событий в ваших регионах не было (все наблюдаемые регионы)."


async def test_retention_keeps_posts_that_incidents_hold(rig: Rig) -> None:
    await rig.post(10, 1, "Взрывы в Краснодаре")  # an incident's report
    await rig.post(10, 2, "В Краснодаре открылась выставка")  # news
    rig.clock.now += timedelta(days=31)
    await rig.post(10, 3, "Новая выставка", minutes=31 * 24 * 60)  # recent news
    assert await rig.jobs.retention() == 1
    kept = await rig.pipeline.posts.texts([(10, 1), (10, 2), (10, 3)])
    assert sorted(kept) == [(10, 1), (10, 3)]


def _channel(last_post_minutes_ago: float, clock: FakeClock) -> WatchedChannel:
    return WatchedChannel(
        ref="@kuban",
        source="config",
        state="active",
        settings=DEFAULT_SETTINGS,
        channel_id=10,
        username="kuban",
        last_post_at=clock.now - timedelta(minutes=last_post_minutes_ago),
    )


async def test_health_warns_once_per_problem_and_says_when_it_is_over(rig: Rig) -> None:
    # Three days of a day-time channel: every 30 minutes from 06:00 to 20:00 UTC.
    start = POST_DATE.replace(hour=6, minute=0)
    n = 0
    for day in range(3):
        for slot in range(29):
            n += 1
            date = start + timedelta(days=day, minutes=30 * slot)
            rig.clock.now = date
            await rig.pipeline.process(Post(10, n, date, f"Новости Кубани {n}"))
    last = rig.clock.now  # 20:00 on the third day; nights are 10 h quiet
    rig.clock.now = last + timedelta(hours=8)  # 04:00: a night, not a problem
    rig.health = WatcherHealth(True, True, last, (_channel(8 * 60, rig.clock),))
    assert await rig.jobs.health() == []
    rig.clock.now = last + timedelta(hours=16)  # noon, still silent: 1.6 nights
    rig.health = WatcherHealth(True, True, last, (_channel(16 * 60, rig.clock),))
    assert await rig.jobs.health() == [
        "channel @kuban: silent for 16.0 h (its longest quiet this week: 10.0 h)"
    ]
    assert len(rig.told) == 1 and "⚠️ channel @kuban" in rig.told[0]
    await rig.jobs.health()
    assert len(rig.told) == 1  # the same problem: not told again
    # Disconnected: that is the problem; silences mean nothing then.
    rig.health = WatcherHealth(False, False, rig.clock.now, (_channel(16 * 60, rig.clock),))
    [problem] = await rig.jobs.health()
    assert problem.startswith("watcher: disconnected from Telegram since")
    assert "⚠️ watcher" in rig.told[1] and "✅ over: channel @kuban" in rig.told[1]
    rig.health = WatcherHealth(True, True, rig.clock.now, (_channel(1, rig.clock),))
    assert await rig.jobs.health() == []
    assert "✅ over: watcher" in rig.told[2]


async def test_a_new_channel_has_no_rhythm_to_break(rig: Rig) -> None:
    for n in range(12):  # one burst an hour ago
        await rig.post(10, n + 1, f"Новости {n}", minutes=n)
    rig.clock.now += timedelta(hours=3)
    rig.health = WatcherHealth(True, True, rig.clock.now, (_channel(180, rig.clock),))
    assert await rig.jobs.problems() == []


async def test_closing_waits_until_the_watcher_has_caught_up(rig: Rig) -> None:
    ready = False
    rig.jobs.caught_up = lambda: ready
    await rig.post(10, 1, "Взрывы в Краснодаре")
    rig.clock.now += timedelta(hours=4)
    assert await rig.jobs.close_quiet() == []  # missed posts may still join it
    ready = True
    assert len(await rig.jobs.close_quiet()) == 1


async def test_a_digest_comes_even_when_its_hour_is_skipped_by_dst(
    rig: Rig, api: FakeBotApi, gazetteer: Gazetteer
) -> None:
    kyiv = ZoneInfo("Europe/Kyiv")
    rig.jobs.texts = AlertTexts.load(gazetteer, kyiv)
    await rig.subscribe(1, digest_hour=3)  # 03:00 does not exist on 2025-03-30 in Kyiv
    sent = []
    hour = datetime(2025, 3, 29, 22, 0, tzinfo=UTC)
    while hour < datetime(2025, 3, 31, 6, 0, tzinfo=UTC):
        rig.clock.now = hour
        if await rig.jobs.digests():
            sent.append(f"{hour.astimezone(kyiv):%m-%d %H:%M}")
        hour += timedelta(minutes=30)
    await rig.deliverer.drain()
    assert len(api.messages(1)) == 2  # one a day, 30 and 31 March
    assert sent[0].startswith("03-30 04:") and sent[-1].startswith("03-31")


async def test_digests_go_after_alerts(rig: Rig) -> None:
    hour = rig.clock.now.astimezone(ZONE).hour
    for chat in range(100, 140):
        await rig.subscribe(chat, digest_hour=hour, regions=("RU-ROS",))
    await rig.jobs.digests()
    await rig.subscribe(1, regions=("RU-KDA",))
    await rig.post(10, 1, "Взрывы в Краснодаре", minutes=1)
    async with rig.db.transaction():
        claimed = await OutboxRepo(rig.db).claim(rig.clock.now.timestamp() + 60, 8, 30)
    assert claimed[0].seq == 0 and claimed[0].chat_id == 1


async def test_health_sees_an_outbox_backlog(rig: Rig) -> None:
    await rig.subscribe(1)
    await rig.post(10, 1, "Взрывы в Краснодаре")  # queued, never delivered
    rig.clock.now += timedelta(minutes=11)
    [problem] = await rig.jobs.problems()
    assert problem == "outbox: 1 message(s) waiting, the oldest due 11 min ago"


async def test_backups_are_whole_and_the_newest_are_kept(rig: Rig) -> None:
    await rig.post(10, 1, "Взрывы в Краснодаре")
    made = []
    for _ in range(5):
        rig.clock.now += timedelta(days=1)
        made.append(await rig.jobs.backup())
    kept = sorted((made[0].parent).glob("skywatch-*.db"))
    assert kept == made[-3:]
    with sqlite3.connect(kept[-1]) as copy:
        assert copy.execute("SELECT count(*) FROM posts").fetchone() == (1,)
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_a_failing_job_is_logged_and_the_scheduler_goes_on(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = rig.jobs.scheduler()
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {
        "close_quiet",
        "wake_delivery",
        "digests",
        "retention",
        "health",
        "backup",
    }
    assert all(job.max_instances == 1 and job.coalesce for job in jobs.values())
    await rig.db.close()  # every query now fails
    with caplog.at_level(logging.ERROR, logger="bot.jobs"):
        await jobs["retention"].func()  # does not raise
    assert "job retention failed" in caplog.text
