"""Delivery through a real HTTP server standing in for the Bot API (tests/fakes/botapi.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from bot.alerts import AlertTexts
from bot.app import open_delivery, open_pipeline
from bot.delivery import AlertViews, Deliverer, RateLimiter
from bot.detect import Detector
from bot.gazetteer import Gazetteer
from bot.logging_setup import configure_logging
from bot.models import Post, Subscriber
from bot.pipeline import Pipeline
from storage.alerts import OutboxRepo, SubscriberRepo
from storage.db import Database
from storage.incidents import IncidentRepo
from tests.conftest import FakeClock
from tests.fakes.botapi import FakeBotApi

DATE = datetime(2025, 3, 4, 2, 0, tzinfo=UTC)
TOKEN = "123456:TEST-token"
ZONE = ZoneInfo("Europe/Moscow")
FAST = RateLimiter(global_per_second=200, chat_spacing=0.0, group_spacing=0.0)


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    with FakeBotApi(TOKEN, enforce_limits=False) as server:
        yield server


@dataclass
class Service:
    """A pipeline that plans alerts, and a deliverer, over one database."""

    db: Database
    pipeline: Pipeline
    deliverer: Deliverer
    subscribers: SubscriberRepo
    outbox: OutboxRepo
    texts: AlertTexts
    views: AlertViews

    async def subscribe(self, chat: int, **settings: object) -> None:
        async with self.db.transaction():
            await self.subscribers.save(Subscriber(chat, **settings), DATE)  # type: ignore[arg-type]

    async def post(self, channel: int, id_: int, minutes: float, text: str) -> None:
        await self.pipeline.process(Post(channel, id_, DATE + timedelta(minutes=minutes), text))


@pytest.fixture
async def service(
    tmp_path: Path, detector: Detector, clock: FakeClock, api: FakeBotApi
) -> AsyncIterator[Service]:
    async with (
        open_pipeline(tmp_path / "s.db", ["RU-ROS", "RU-KDA"], detector=detector, clock=clock) as (
            db,
            pipeline,
        ),
        open_delivery(db, TOKEN, api.url, ZONE, clock=clock, limiter=FAST, edit_spacing=0.0) as (
            notifier,
            deliverer,
        ),
    ):
        pipeline.notifier = notifier
        yield Service(
            db,
            pipeline,
            deliverer,
            notifier.subscribers,
            notifier.outbox,
            notifier.texts,
            notifier.views,
        )


async def current_text(service: Service, incident_id: str, lang: str) -> str:
    incident = await IncidentRepo(service.db).get(incident_id)
    assert incident is not None
    return service.texts.alert(await service.views.view(incident), lang)


async def test_one_alert_per_chat_with_exact_content(service: Service, api: FakeBotApi) -> None:
    await service.subscribe(1, language="ru")
    await service.subscribe(2, language="en")
    await service.subscribe(3, regions=("RU-KDA",))  # another region: nothing
    await service.subscribe(4, muted_until=DATE + timedelta(hours=1))  # muted: nothing
    await service.post(10, 1, 0, "Взрывы в Таганроге, работает ПВО")
    await service.deliverer.drain()
    [incident] = {row.incident_id for row in await service.outbox.rows()}
    assert [m.text for m in api.messages(1)] == [await current_text(service, incident, "ru")]
    english = api.messages(2)
    assert len(english) == 1 and "Taganrog" in english[0].text
    assert api.messages(1)[0].parse_mode == "HTML"
    assert api.messages(3) == [] and api.messages(4) == []


async def test_alert_is_edited_as_the_incident_grows(service: Service, api: FakeBotApi) -> None:
    await service.subscribe(1)
    await service.post(10, 1, 0, "Взрывы в Таганроге")
    await service.deliverer.drain()
    [alert] = api.messages(1)
    assert "не подтверждено" in alert.text
    await service.post(11, 1, 5, "В Таганроге слышны взрывы, жители напуганы")
    await service.deliverer.drain()
    [alert] = api.messages(1)  # still one message: edited, no ring
    assert len(alert.edits) == 1 and "каналов: 2, независимых: 2" in alert.text
    await service.post(12, 1, 9, "Над Таганрогом сбиты беспилотники")  # a new kind: escalation
    await service.deliverer.drain()
    alert, notice = api.messages(1)
    assert notice.reply_to_message_id == alert.message_id
    assert notice.text.startswith("⚠️ <b>Ростовская область</b>: Новое: беспилотники")
    assert "Беспилотники" in alert.text or "беспилотники" in alert.text
    await service.post(10, 2, 30, "Отбой воздушной тревоги в Таганроге")
    await service.deliverer.drain()
    assert "Завершено: отбой" in api.messages(1)[0].text
    assert len(api.messages(1)) == 2  # the closing edit rings nobody


async def test_edits_are_coalesced(
    tmp_path: Path, detector: Detector, clock: FakeClock, api: FakeBotApi
) -> None:
    async with (
        open_pipeline(tmp_path / "s.db", ["RU-ROS"], detector=detector, clock=clock) as (
            db,
            pipeline,
        ),
        open_delivery(db, TOKEN, api.url, ZONE, clock=clock, limiter=FAST) as (notifier, sender),
    ):
        pipeline.notifier = notifier
        async with db.transaction():
            await notifier.subscribers.save(Subscriber(1), DATE)
        await pipeline.process(Post(10, 1, DATE, "Взрывы в Таганроге"))
        await sender.drain()
        for n in range(2, 6):
            await pipeline.process(Post(10 + n, 1, DATE, "Таганрог: снова взрывы"))
        await sender.drain(timeout=0.5)  # the next edit is a minute away
        [alert] = api.messages(1)
        assert alert.edits == []
        [row] = await notifier.outbox.rows()
        assert row.state == "pending" and row.next_try >= time.time() + 50


async def test_crash_mid_fan_out_sends_each_chat_one_message(
    service: Service, api: FakeBotApi
) -> None:
    chats = list(range(100, 130))
    for chat in chats:
        await service.subscribe(chat)
    service.deliverer.limiter = RateLimiter(global_per_second=50, chat_spacing=0.0)
    await service.post(10, 1, 0, "Взрывы в Таганроге")
    task = asyncio.create_task(service.deliverer.run())
    while len(api.all_messages()) < 8:
        await asyncio.sleep(0.005)
    task.cancel()  # the process dies mid fan-out
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 8 <= len(api.all_messages()) < len(chats)
    async with open_delivery(service.db, TOKEN, api.url, ZONE, limiter=FAST) as (_, restarted):
        await restarted.drain()
    assert {chat: len(api.messages(chat)) for chat in chats} == dict.fromkeys(chats, 1)


async def test_429_is_obeyed(service: Service, api: FakeBotApi) -> None:
    await service.subscribe(1)
    api.fail_next("sendMessage", 1, error_code=429, retry_after=1)
    started = time.monotonic()
    await service.post(10, 1, 0, "Взрывы в Таганроге")
    await service.deliverer.drain()
    assert len(api.messages(1)) == 1
    assert time.monotonic() - started >= 1.0
    sends = [r for r in api.requests if r.method == "sendMessage"]
    assert len(sends) == 2 and sends[1].time - sends[0].time >= 1.0


async def test_server_errors_are_retried(service: Service, api: FakeBotApi) -> None:
    await service.subscribe(1)
    api.fail_next("sendMessage", 1, error_code=502, description="Bad Gateway")
    await service.post(10, 1, 0, "Взрывы в Таганроге")
    await service.deliverer.drain(timeout=10)
    assert len(api.messages(1)) == 1


async def test_blocked_and_missing_chats_are_deactivated(
    service: Service, api: FakeBotApi
) -> None:
    for chat in (1, 2, 3):
        await service.subscribe(chat)
    api.block(1, "blocked")
    api.forget_chat(2)
    api.add_chat(3)
    await service.post(10, 1, 0, "Взрывы в Таганроге")
    await service.deliverer.drain()
    assert len(api.messages(3)) == 1
    for chat, reason in ((1, "blocked"), (2, "chat not found")):
        subscriber = await service.subscribers.get(chat)
        assert subscriber is not None and not subscriber.active
        assert reason in (await service.subscribers.deactivated_reason(chat) or "")
    states = {row.chat_id: row.state for row in await service.outbox.rows()}
    assert states == {1: "dropped", 2: "dropped", 3: "sent"}


async def test_a_deleted_alert_is_sent_again(service: Service, api: FakeBotApi) -> None:
    await service.subscribe(1)
    await service.post(10, 1, 0, "Взрывы в Таганроге")
    await service.deliverer.drain()
    [alert] = api.messages(1)
    deleted = httpx.post(
        f"{api.bot_url}/deleteMessage", json={"chat_id": 1, "message_id": alert.message_id}
    )
    assert deleted.json()["ok"]
    await service.post(11, 1, 5, "Таганрог: снова взрывы")
    await service.deliverer.drain()
    [fresh] = api.messages(1)
    assert fresh.message_id != alert.message_id and "каналов: 2" in fresh.text


async def test_malformed_request_is_given_up(service: Service, api: FakeBotApi) -> None:
    await service.subscribe(1)
    api.fail_next(
        "sendMessage", 1, error_code=400, description="Bad Request: can't parse entities"
    )
    await service.post(10, 1, 0, "Взрывы в Таганроге")
    await service.deliverer.drain()
    [row] = await service.outbox.rows()
    assert row.state == "failed" and api.messages(1) == []


async def test_the_token_never_reaches_a_log_line(
    service: Service, api: FakeBotApi, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("DEBUG", "text")
        await service.subscribe(1)
        api.fail_next("sendMessage", 1, error_code=500)
        await service.post(10, 1, 0, "Взрывы в Таганроге")
        await service.deliverer.drain(timeout=10)
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    err = capsys.readouterr().err
    assert "sendMessage" in err or "sent" in err  # something was logged
    assert "TEST-token" not in err


async def test_limits_are_kept_against_a_strict_server(
    tmp_path: Path, detector: Detector, clock: FakeClock, gazetteer: Gazetteer
) -> None:
    with FakeBotApi(TOKEN, global_per_second=10, chat_per_second=1) as strict:
        async with (
            open_pipeline(tmp_path / "s.db", ["RU-ROS"], detector=detector, clock=clock) as (
                db,
                pipeline,
            ),
            open_delivery(
                db,
                TOKEN,
                strict.url,
                ZONE,
                clock=clock,
                limiter=RateLimiter(global_per_second=9.5),
                edit_spacing=0.0,
            ) as (notifier, sender),
        ):
            pipeline.notifier = notifier
            async with db.transaction():
                for chat in range(1, 21):
                    await notifier.subscribers.save(Subscriber(chat), DATE)
            await pipeline.process(Post(10, 1, DATE, "Взрывы в Таганроге"))
            await sender.drain()
        assert strict.count_429 == 0
        assert len(strict.all_messages()) == 20


async def test_two_delivery_loops_never_send_a_message_twice(
    service: Service, api: FakeBotApi
) -> None:
    for chat in range(1, 11):
        await service.subscribe(chat)
    await service.post(10, 1, 0, "Взрывы в Таганроге")
    async with open_delivery(service.db, TOKEN, api.url, ZONE, limiter=FAST) as (_, other):
        await asyncio.gather(service.deliverer.drain(), other.drain())
    assert all(len(api.messages(chat)) == 1 for chat in range(1, 11))


async def test_retracted_before_sending_rings_nobody(service: Service, api: FakeBotApi) -> None:
    await service.subscribe(1)
    post = Post(10, 1, DATE, "Взрывы в Таганроге")
    await service.pipeline.process(post)
    edit = replace(post, text="Таганрог: учения", edit_date=DATE + timedelta(minutes=1))
    await service.pipeline.process(edit)  # retracted before the loop ran
    await service.deliverer.drain()
    assert api.messages(1) == []
    assert {row.state for row in await service.outbox.rows()} == {"dropped"}


async def test_notices_respect_mute_and_a_withdrawn_alert(
    service: Service, api: FakeBotApi
) -> None:
    await service.subscribe(1)
    await service.subscribe(2)
    await service.post(10, 1, 0, "Взрывы в Таганроге")
    await service.deliverer.drain()
    await service.subscribe(2, muted_until=DATE + timedelta(days=1))
    await service.post(11, 1, 5, "Над Таганрогом сбиты беспилотники")  # escalation
    await service.deliverer.drain()
    assert len(api.messages(1)) == 2  # alert and notice
    assert len(api.messages(2)) == 1  # muted: the alert is edited, nothing rings


async def test_counts_ring_when_doubled_since_the_last_ring(
    service: Service, api: FakeBotApi
) -> None:
    await service.subscribe(1)
    await service.post(10, 1, 0, "Над Таганрогом сбиты 4 беспилотника")
    await service.deliverer.drain()
    await service.post(11, 1, 1, "Над Таганрогом сбиты 7 беспилотников")  # silent
    await service.deliverer.drain()
    assert len(api.messages(1)) == 1
    await service.post(12, 1, 2, "Над Таганрогом сбиты 9 беспилотников")  # 9 ≥ 2 × 4
    await service.deliverer.drain()
    notices = api.messages(1)[1:]
    assert len(notices) == 1 and "до 9" in notices[0].text


async def test_an_outage_loses_nothing(service: Service, api: FakeBotApi) -> None:
    await service.subscribe(1)
    api.fail_next("sendMessage", 3, error_code=503, description="Service Unavailable")
    await service.post(10, 1, 0, "Взрывы в Таганроге")
    async with service.db.transaction():
        await service.db.conn.execute("UPDATE outbox SET attempts = 40")  # a long outage
    await service.deliverer.drain(timeout=1.0)
    [row] = await service.outbox.rows()
    assert row.state == "pending"  # still waiting for Telegram, not given up


async def test_a_refused_token_keeps_every_alert(
    service: Service, api: FakeBotApi, tmp_path: Path
) -> None:
    await service.subscribe(1)
    await service.post(10, 1, 0, "Взрывы в Таганроге")
    async with open_delivery(service.db, "123456:WRONG-token", api.url, ZONE) as (_, wrong):
        await wrong.drain(timeout=1.0)
    [row] = await service.outbox.rows()
    assert row.state == "pending" and row.attempts == 0  # kept for when the token works
    async with service.db.transaction():
        await service.db.conn.execute("UPDATE outbox SET next_try = 0")  # a minute later
    await service.deliverer.drain()
    assert len(api.messages(1)) == 1


async def test_a_new_alert_goes_before_edits_already_booked(
    service: Service, api: FakeBotApi
) -> None:
    for chat in range(1, 7):
        await service.subscribe(chat, regions=("RU-ROS",))
    await service.subscribe(7, regions=("RU-KDA",))
    await service.post(10, 1, 0, "Взрывы в Таганроге")
    await service.deliverer.drain()
    service.deliverer.limiter = RateLimiter(global_per_second=3, chat_spacing=0.0)
    await service.post(11, 1, 5, "Таганрог: снова взрывы")  # six edits to make
    task = asyncio.create_task(service.deliverer.run())
    while not api.calls("editMessageText"):
        await asyncio.sleep(0.01)
    await service.post(12, 1, 6, "Взрывы в Краснодаре")  # a new alert for chat 7
    while len(api.calls("editMessageText")) < 6 or not api.messages(7):
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    order = [int(r.params["chat_id"]) for r in api.requests if r.method != "getMe"]
    edits_after = order[order.index(7) + 1 :]
    assert len(edits_after) >= 3  # it did not wait for the edits booked before it


async def test_a_group_that_became_a_supergroup_gets_its_alert_there(
    service: Service, api: FakeBotApi
) -> None:
    await service.subscribe(-42, kind="group", language="en")
    api.fail_next(
        "sendMessage",
        error_code=400,
        description="Bad Request: group chat was upgraded to a supergroup chat",
        migrate_to_chat_id=-1001234567,
    )
    await service.post(10, 1, 0, "Взрывы в Таганроге")
    await service.deliverer.drain()
    [alert] = api.messages(-1001234567)
    assert "Taganrog" in alert.text  # the settings moved with the chat
    moved = await service.subscribers.get(-1001234567)
    assert moved is not None and moved.kind == "supergroup" and moved.language == "en"
    old = await service.subscribers.get(-42)
    assert old is None or not old.active


@pytest.mark.parametrize("suppress", [False, True])
async def test_late_alerts_are_marked_or_held_back(
    tmp_path: Path, detector: Detector, clock: FakeClock, api: FakeBotApi, suppress: bool
) -> None:
    async with (
        open_pipeline(tmp_path / "s.db", ["RU-ROS"], detector=detector, clock=clock) as (
            db,
            pipeline,
        ),
        open_delivery(
            db,
            TOKEN,
            api.url,
            ZONE,
            clock=clock,
            limiter=FAST,
            edit_spacing=0.0,
            late_after=timedelta(minutes=10),
            suppress_late=suppress,
        ) as (notifier, deliverer),
    ):
        pipeline.notifier = notifier
        async with db.transaction():
            await notifier.subscribers.save(Subscriber(1), DATE)
        # Caught up 30 minutes after it was posted: late.
        clock.now = DATE + timedelta(minutes=30)
        await pipeline.process(Post(10, 1, DATE, "Взрывы в Таганроге"))
        await deliverer.drain()
        if suppress:
            assert api.messages(1) == []
        else:
            [late] = api.messages(1)
            assert "Запоздалое оповещение" in late.text
        # A report received as it is posted: the alert is current.
        clock.now = DATE + timedelta(minutes=31)
        await pipeline.process(Post(11, 1, clock.now, "Снова взрывы в Таганроге"))
        await deliverer.drain()
        [message] = api.messages(1)
        assert "Запоздалое" not in message.text and "Таганрог" in message.text
