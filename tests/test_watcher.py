"""The watcher with a real TelegramClient over an in-memory Telegram (tests/fakes/telegram.py).

Telethon's own update processing and event builders turn the fake's TL updates into
events; the watcher feeds a real pipeline over a real SQLite file.
"""

from __future__ import annotations

import asyncio
import logging
import stat
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from telethon import errors, functions
from telethon.crypto import AuthKey
from telethon.sessions import StringSession

from bot.app import open_pipeline
from bot.channels import parse_channels
from bot.detect import Detector
from bot.errors import LoginRequired
from bot.models import Post
from bot.pipeline import Outcome, Pipeline
from bot.watcher import MAX_POST_ATTEMPTS, Watcher, open_client
from storage.channels import ChannelRepo
from storage.db import Database
from storage.posts import PostChange
from tests.conftest import FakeClock
from tests.fakes.telegram import FakeTelegram, shorten_telethon_delays

KUBAN = 1001  # watched, joined
ROSTOV = 1002  # watched, not joined yet
STRANGER = 1003  # joined, not watched
API_HASH = "0" * 32
WAIT = 5.0  # seconds; everything here normally happens within milliseconds

GetHistory = functions.messages.GetHistoryRequest
JoinChannel = functions.channels.JoinChannelRequest


@dataclass
class Rig:
    """A fake Telegram, a pipeline over a database, and what reached them."""

    telegram: FakeTelegram
    db: Database
    pipeline: Pipeline
    clock: FakeClock
    session: Path
    seen: list[tuple[Post, Outcome | None]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    fail_on: str | None = None  # posts containing this fail to process

    async def sink(self, posts: Sequence[Post]) -> Sequence[Outcome | None]:
        if self.fail_on and any(self.fail_on in post.text for post in posts):
            raise RuntimeError("processing failed")
        outcomes = await self.pipeline.process_many(posts)
        self.seen += zip(posts, outcomes, strict=True)
        return outcomes

    async def tell(self, text: str) -> None:
        self.notices.append(text)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)

    def processed(self, channel_id: int | None = None) -> list[Post]:
        """Return the posts the pipeline took as new or edited, in order."""
        return [
            post
            for post, outcome in self.seen
            if outcome is not None and channel_id in (None, post.channel_id)
        ]

    async def seed(self, raw: str) -> None:
        settings, problems = parse_channels(raw, lambda name: name)
        assert problems == []
        async with self.db.transaction():
            await ChannelRepo(self.db).seed(settings, self.clock())

    def publish_unseen(self, channel_id: int, text: str) -> int:
        """Publish a post while the service is not listening (nothing is pushed)."""
        self.telegram.offline = True
        try:
            return self.telegram.publish(channel_id, text)
        finally:
            self.telegram.offline = False

    async def first_run(self) -> None:
        """Run once with one quiet post, so the channels have their read markers."""
        async with self.watching():
            self.telegram.publish(KUBAN, "Утро в Краснодаре спокойное")
            await until(lambda: len(self.processed()) == 1)

    async def settled(self, watcher: Watcher) -> None:
        """Wait until every followed channel's marker is at its newest message."""

        async def markers_current() -> bool:
            for channel in (await watcher.health()).channels:
                if channel.state == "active" and channel.channel_id is not None:
                    messages = self.telegram.messages(channel.channel_id)
                    newest = max((m.id for m in messages), default=0)
                    if channel.last_message_id != newest:
                        return False
            return True

        async with asyncio.timeout(WAIT):
            while not await markers_current():
                await asyncio.sleep(0.005)

    @asynccontextmanager
    async def watching(self, string_session: str = "") -> AsyncIterator[Watcher]:
        """Run a watcher (a fresh client over the session) until the block ends."""
        async with open_client(1, API_HASH, self.session, string_session) as client:
            self.telegram.attach(client)
            watcher = Watcher(
                client,
                self.db,
                self.sink,
                clock=self.clock,
                max_age=timedelta(hours=24),
                max_posts=100,
                notify=self.tell,
                on_channels=lambda found: self.pipeline.use_channels(c.settings for c in found),
                sleep=self.sleep,
            )
            task = asyncio.create_task(watcher.run())
            try:
                await until(lambda: watcher.listening or task.done())
                if task.done():
                    task.result()
                yield watcher
                await self.settled(watcher)
            finally:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task


async def until(condition: Callable[[], bool]) -> None:
    """Wait until the condition holds (fail after WAIT seconds)."""
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.005)


@pytest.fixture
async def rig(
    tmp_path: Path, detector: Detector, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Rig]:
    shorten_telethon_delays(monkeypatch)
    clock = FakeClock(datetime.now(tz=UTC).replace(microsecond=0))
    telegram = FakeTelegram(clock=clock)
    telegram.add_channel(KUBAN, "kuban_news", "Новости Кубани", member=True)
    telegram.add_channel(ROSTOV, "rostov_online", "Ростов Онлайн")
    telegram.add_channel(STRANGER, "stranger_news", "Новости Краснодара", member=True)
    async with open_pipeline(
        tmp_path / "w.db", ["RU-KDA", "RU-ROS"], detector=detector, clock=clock
    ) as (db, pipeline):
        rig = Rig(telegram, db, pipeline, clock, tmp_path / "data" / "telegram.session")
        await rig.seed("@kuban_news, @rostov_online")
        yield rig


async def test_a_new_post_reaches_the_pipeline(rig: Rig) -> None:
    async with rig.watching():
        message_id = rig.telegram.publish(KUBAN, "Взрывы в Краснодаре, работает ПВО")
        await until(lambda: len(rig.processed()) == 1)
    [post] = rig.processed()
    assert (post.channel_id, post.id, post.link) == (
        KUBAN,
        message_id,
        f"https://t.me/kuban_news/{message_id}",
    )
    [(_, outcome)] = rig.seen
    assert outcome is not None and outcome.flagged and outcome.regions == ("RU-KDA",)
    kuban = await ChannelRepo(rig.db).find(KUBAN)
    assert kuban is not None
    assert (kuban.title, kuban.joined, kuban.last_message_id) == ("Новости Кубани", True, 1)


async def test_a_channel_is_joined_only_when_needed(rig: Rig) -> None:
    async with rig.watching():
        [join] = rig.telegram.requests_of(JoinChannel)  # Rostov; Kuban was joined already
        rig.telegram.publish(ROSTOV, "Над Таганрогом сбит беспилотник")
        await until(lambda: len(rig.processed(ROSTOV)) == 1)
    assert join.channel.channel_id == ROSTOV
    rostov = await ChannelRepo(rig.db).find(ROSTOV)
    assert rostov is not None and rostov.joined


async def test_edits_are_processed_and_reactions_are_not(rig: Rig) -> None:
    async with rig.watching():
        message_id = rig.telegram.publish(KUBAN, "Громко в Краснодаре")
        await until(lambda: len(rig.seen) == 1)
        rig.telegram.edit(KUBAN, message_id, "Взрывы в Краснодаре, сбиты два беспилотника")
        await until(lambda: len(rig.seen) == 2)
        rig.telegram.react(KUBAN, message_id)
        await until(lambda: len(rig.seen) == 3)
    outcomes = [outcome for _, outcome in rig.seen]
    assert outcomes[0] is not None and outcomes[0].change is PostChange.NEW
    assert outcomes[1] is not None and outcomes[1].change is PostChange.EDITED
    assert outcomes[1].flagged
    assert outcomes[2] is None  # same text: nothing to do
    stored = await rig.pipeline.posts.get(KUBAN, message_id)
    assert stored is not None and stored.text.startswith("Взрывы")


async def test_an_album_is_one_post_with_its_caption(rig: Rig) -> None:
    async with rig.watching():
        ids = rig.telegram.publish_album(KUBAN, "Последствия атаки БПЛА в Новороссийске", 3,
                                         caption_index=1)  # fmt: skip
        rig.telegram.publish(KUBAN, "Тихо в Краснодаре")  # after the album
        await until(lambda: len(rig.seen) == 2)
        await asyncio.sleep(0.05)  # any late album part would have come by now
    # Telethon holds album parts briefly to gather them: the album may come second.
    album, after = sorted(rig.processed(), key=lambda post: post.id)
    assert album.id == ids[1] and album.text.startswith("Последствия атаки")
    assert album.grouped_id is not None
    assert after.text == "Тихо в Краснодаре"
    kuban = await ChannelRepo(rig.db).find(KUBAN)
    assert kuban is not None and kuban.last_message_id == after.id  # never moved back


async def test_an_unwatched_channel_is_ignored(rig: Rig) -> None:
    async with rig.watching():
        rig.telegram.publish(STRANGER, "Взрывы в Краснодаре")
        rig.telegram.publish(KUBAN, "Взрывы в Краснодаре")
        await until(lambda: len(rig.seen) == 1)
        await asyncio.sleep(0.05)
    assert [post.channel_id for post, _ in rig.seen] == [KUBAN]


async def test_catch_up_after_downtime_processes_each_post_once_in_order(rig: Rig) -> None:
    async with rig.watching():
        rig.telegram.publish(KUBAN, "Утро в Краснодаре спокойное")
        rig.telegram.publish(ROSTOV, "В Ростове тихо")
        await until(lambda: len(rig.processed()) == 2)
    # Down for 20 minutes: four posts in two channels.
    rig.telegram.offline = True
    published = []
    for minute, (channel, text) in enumerate(
        [
            (ROSTOV, "Над Таганрогом работает ПВО"),
            (KUBAN, "Взрывы в Краснодаре"),
            (ROSTOV, "В Таганроге снова взрывы"),
            (KUBAN, "Сбит беспилотник над Краснодаром"),
        ]
    ):
        rig.clock.now += timedelta(minutes=5)
        published.append((channel, rig.telegram.publish(channel, text)))
        assert minute < 4
    rig.telegram.offline = False
    rig.seen.clear()
    async with rig.watching():
        pass
    keys = [(post.channel_id, post.id) for post in rig.processed()]
    assert keys == published  # once each, in date order across channels
    [notice] = rig.notices
    assert "blind for 20 min" in notice and "recovered 4 post(s)" in notice
    assert "@kuban_news: 2" in notice and "@rostov_online: 2" in notice


async def test_a_restart_with_nothing_new_processes_nothing(rig: Rig) -> None:
    async with rig.watching():
        rig.telegram.publish(KUBAN, "Взрывы в Краснодаре")
        await until(lambda: len(rig.processed()) == 1)
    rig.seen.clear()
    async with rig.watching():
        await asyncio.sleep(0.05)
    assert rig.seen == []  # nothing was even read back
    assert rig.notices == []  # a restart within a minute is not worth a message


async def test_flood_waits_are_waited_out(rig: Rig) -> None:
    await rig.first_run()
    rig.publish_unseen(KUBAN, "Взрывы в Краснодаре")
    rig.telegram.flood_wait(GetHistory, 2)
    rig.sleeps.clear()
    async with rig.watching():
        pass
    assert 3.0 in rig.sleeps  # Telegram's 2 s and a margin
    assert [post.text for post in rig.processed()][-1] == "Взрывы в Краснодаре"


async def test_a_lost_connection_is_reconnected_and_caught_up(rig: Rig) -> None:
    async with rig.watching() as watcher:
        rig.telegram.publish(KUBAN, "Утро в Краснодаре спокойное")
        await until(lambda: len(rig.processed()) == 1)
        rig.telegram.offline = True
        rig.telegram.drop()
        missed = rig.telegram.publish(KUBAN, "Взрывы в Краснодаре")
        rig.telegram.offline = False
        await until(lambda: len(rig.processed()) == 2)
        await until(lambda: watcher.listening)
        rig.telegram.publish(KUBAN, "Сбит беспилотник над Краснодаром")
        await until(lambda: len(rig.processed()) == 3)
    assert [post.id for post in rig.processed()] == [1, missed, 3]
    assert rig.sleeps[0] == 1.0  # the first reconnect's backoff


async def test_a_post_that_fails_is_retried_at_the_next_sync(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.fail_on = "BOOM"
    with caplog.at_level(logging.WARNING, logger="bot.watcher"):
        async with rig.watching() as watcher:
            bad = rig.telegram.publish(KUBAN, "BOOM: взрывы в Краснодаре")
            rig.telegram.publish(KUBAN, "Взрывы в Краснодаре")
            await until(lambda: len(rig.processed()) == 1)  # the watcher went on
            assert f"post(s) {KUBAN}/{bad} could not be processed" in caplog.text
            assert rig.sleeps[:2] == [0.5, 2.0]  # two retries at once
            kuban = await ChannelRepo(rig.db).find(KUBAN)
            assert kuban is not None and kuban.last_error == f"processing failed: {KUBAN}/{bad}"
            rig.fail_on = None  # the fault passes: the next sync reads it again
            watcher.request_sync()
            await until(lambda: len(rig.processed()) == 2)
    assert rig.processed()[-1].id == bad
    assert await ChannelRepo(rig.db).failed_posts() == {}


async def test_a_post_that_always_fails_is_given_up_and_costs_only_itself(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    await rig.first_run()
    rig.fail_on = "BOOM"
    bad = rig.publish_unseen(KUBAN, "BOOM: взрывы в Краснодаре")
    good = rig.publish_unseen(KUBAN, "Взрывы в Краснодаре")  # same catch-up batch
    with caplog.at_level(logging.ERROR, logger="bot.watcher"):
        async with rig.watching() as watcher:
            await until(lambda: good in [p.id for p in rig.processed()])
            for _ in range(MAX_POST_ATTEMPTS):
                watcher.request_sync()
                await asyncio.sleep(0.05)
            await until(lambda: "given up" in caplog.text)
    assert f"post {KUBAN}/{bad} given up after {MAX_POST_ATTEMPTS} attempts" in caplog.text
    assert await ChannelRepo(rig.db).failed_posts() == {}  # kept for review, not retried


async def test_channels_that_cannot_be_followed_are_reported(rig: Rig) -> None:
    await rig.seed("@no_such_channel, 987654")
    rig.telegram.fail(JoinChannel, errors.ChannelsTooMuchError(request=None))
    async with rig.watching() as watcher:
        health = await watcher.health()
    states = {c.ref: (c.state, c.last_error) for c in health.channels}
    assert states["@kuban_news"] == ("active", None)
    assert states["@no_such_channel"][0] == "failed"
    assert states["987654"][1] is not None and "never seen channel id" in states["987654"][1]
    assert states["@rostov_online"][1] is not None
    assert "too many channels" in states["@rostov_online"][1]
    [notice] = rig.notices
    assert "@no_such_channel" in notice and "987654" in notice and "@rostov_online" in notice
    assert health.connected and health.listening


async def test_a_string_session_reads_channels_by_their_stored_id(rig: Rig) -> None:
    await rig.first_run()
    rig.publish_unseen(KUBAN, "Взрывы в Краснодаре")
    # A string session keeps no entity cache: the access hash comes from our table.
    session = StringSession()
    session.set_dc(2, "149.154.167.51", 443)
    session.auth_key = AuthKey(bytes(256))
    async with rig.watching(string_session=session.save()):
        pass
    assert rig.processed()[-1].text == "Взрывы в Краснодаре"


async def test_a_logged_out_session_stops_the_watcher(rig: Rig) -> None:
    rig.telegram.authorized = False
    with pytest.raises(LoginRequired, match="python -m bot login"):
        async with rig.watching():
            pass


async def test_the_session_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "telegram.session"
    async with open_client(1, API_HASH, path) as client:
        assert not client.is_connected()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


async def test_a_failed_catch_up_holds_the_marker_until_it_succeeds(rig: Rig) -> None:
    await rig.first_run()
    missed = rig.publish_unseen(KUBAN, "Взрывы в Краснодаре")
    rig.telegram.flood_wait(GetHistory, 120)  # longer than the watcher waits
    async with rig.watching() as watcher:
        kuban = await ChannelRepo(rig.db).find(KUBAN)
        assert kuban is not None and kuban.last_error is not None
        assert "wait 120 s" in kuban.last_error
        live = rig.telegram.publish(KUBAN, "Сбит беспилотник над Краснодаром")
        await until(lambda: live in [p.id for p in rig.processed()])
        kuban = await ChannelRepo(rig.db).find(KUBAN)
        assert kuban is not None and kuban.last_message_id == 1  # the missed post is owed
        watcher.client._flood_waited_requests.clear()  # as if the two minutes had passed
        watcher.request_sync()
        await until(lambda: missed in [p.id for p in rig.processed()])
    assert [p.id for p in rig.processed(KUBAN)] == [1, live, missed]


async def test_reactions_on_posts_never_seen_raise_nothing(rig: Rig) -> None:
    old = rig.telegram.publish(KUBAN, "Взрывы в Краснодаре")  # before skywatch followed it
    rig.clock.now += timedelta(hours=3)
    async with rig.watching():
        rig.telegram.react(KUBAN, old)
        photo = rig.telegram.publish(KUBAN, "", media=True)  # a photo, no caption yet
        rig.telegram.edit(KUBAN, photo, "Последствия атаки БПЛА в Краснодаре")
        await until(lambda: len(rig.processed()) == 1)
        await asyncio.sleep(0.05)
    assert [p.id for p in rig.processed()] == [photo]  # the fresh caption, not the old post


async def test_a_channel_added_while_running_is_caught_up_after_downtime(rig: Rig) -> None:
    rig.telegram.add_channel(1004, "yeysk_news", "Ейск Новости", member=True)
    rig.telegram.publish(1004, "Старая новость")  # history: not read
    async with rig.watching() as watcher:
        await rig.seed("@yeysk_news")
        watcher.request_sync()
        await until(lambda: 1004 in watcher._following)
    missed = rig.publish_unseen(1004, "Взрывы в Ейске")
    async with rig.watching():
        pass
    assert [p.id for p in rig.processed(1004)] == [missed]


async def test_a_blip_during_catch_up_keeps_the_blind_window(rig: Rig) -> None:
    await rig.first_run()
    rig.clock.now += timedelta(minutes=40)
    rig.publish_unseen(KUBAN, "Взрывы в Краснодаре")
    rig.telegram.fail(GetHistory, ConnectionError("connection reset"))
    async with rig.watching():
        pass
    [notice] = rig.notices
    assert "blind for 40 min" in notice and "@kuban_news: 1" in notice


async def test_an_existing_session_file_is_made_private_before_use(tmp_path: Path) -> None:
    path = tmp_path / "telegram.session"
    async with open_client(1, API_HASH, path):
        pass
    path.chmod(0o644)
    async with open_client(1, API_HASH, path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
