"""The whole chat side over a fake Bot API: pipeline, delivery, commands and the update poller.

`open_bot` wires what `run_service` wires (minus the watcher) over a real SQLite file and a
`FakeBotApi`, starts `Poller.run()` as a task and hands back a `ChatBot` that injects
Telegram-shaped updates and reads back what the bot sent. Shared by test_commands.py and
test_poller.py.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.app import ServiceControl, open_commands, open_delivery, open_pipeline
from bot.delivery import Deliverer, Notifier, RateLimiter
from bot.detect import Detector
from bot.models import Post, Subscriber
from bot.pipeline import Pipeline
from bot.poller import OFFSET_KEY, Poller
from storage.alerts import SubscriberRepo
from storage.channels import StateRepo
from storage.db import Database
from storage.incidents import IncidentRepo
from storage.operations import AuditEntry, AuditRepo, RegionRepo
from tests.conftest import FakeClock
from tests.fakes.botapi import BOT_USER, FakeBotApi

TOKEN = "123456:TEST-token"
ZONE = ZoneInfo("Europe/Moscow")
BOT_USERNAME = str(BOT_USER["username"])
OPERATOR = 7
USER = 42  # a private chat: the chat id is the user's id
OTHER = 43
GROUP = -1001234567890  # a supergroup
WATCHED = ("RU-KDA", "RU-ROS")
# The operators' commands, in the order they are registered.
OPERATOR_COMMANDS = [
    "channels",
    "addchannel",
    "removechannel",
    "watch",
    "unwatch",
    "watched",
    "pause",
    "resume",
    "stats",
    "subscribers",
    "recent",
    "why",
    "fp",
    "testalert",
]
# Telegram's getUpdates timeout is whole seconds: BotApi sends int(timeout), so 0.2 would
# be a 0 s poll and the poller would spin. One second long-polls for real, and the fake
# answers a waiting poll as soon as an update is injected, so nothing waits for it.
POLL_TIMEOUT = 1.0
WAIT = 3.0  # seconds any expected reply may take

_message_ids = itertools.count(1000)
_sentinels = itertools.count(5_000_000)
_callback_ids = itertools.count(1)


async def until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait until `condition()` holds; fail after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def sender(user: int, language: str | None = "ru") -> dict[str, Any]:
    """Return a Telegram User object for a person."""
    person: dict[str, Any] = {"id": user, "is_bot": False, "first_name": f"User {user}"}
    if language is not None:
        person["language_code"] = language
    return person


def chat_of(chat: int, chat_type: str | None = None) -> dict[str, Any]:
    """Return a Telegram Chat object (private for a positive id, else a supergroup)."""
    kind = chat_type or ("private" if chat > 0 else "supergroup")
    found: dict[str, Any] = {"id": chat, "type": kind}
    if kind == "private":
        found["first_name"] = f"User {chat}"
    else:
        found["title"] = f"Chat {chat}"
    return found


def message(
    text: str,
    *,
    chat: int = USER,
    user: int | None = None,
    chat_type: str | None = None,
    language: str | None = "ru",
) -> dict[str, Any]:
    """Return a Telegram Message object with text (from the chat's own user by default)."""
    return {
        "message_id": next(_message_ids),
        "date": 1_741_055_400,
        "chat": chat_of(chat, chat_type),
        "from": sender(chat if user is None else user, language),
        "text": text,
    }


@dataclass
class ChatBot:
    """The running chat side of the service, and ways to talk to it."""

    api: FakeBotApi
    db: Database
    pipeline: Pipeline
    notifier: Notifier
    deliverer: Deliverer
    control: ServiceControl
    poller: Poller
    clock: FakeClock
    task: asyncio.Task[None] | None = None
    sleeps: list[float] = field(default_factory=list)  # what the poller waited for
    # The dispatcher's flood clock: each command moves it on by `tick` seconds, so only a
    # test that sets tick = 0 sees a flood.
    ticks: float = 0.0
    tick: float = 10.0
    on_sleep: Callable[[float], Awaitable[None]] | None = None
    _post_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def start(self) -> None:
        """Start polling."""
        self.task = asyncio.create_task(self.poller.run())

    async def stop(self) -> None:
        """Stop polling; fail if the poller had stopped by itself."""
        task, self.task = self.task, None
        if task is None:
            return
        crashed = task.done()
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task  # re-raises what ended the poller, if anything did
        assert not crashed, "the poller stopped by itself"

    def monotonic(self) -> float:
        """Stand in for the dispatcher's time.monotonic."""
        self.ticks += self.tick
        return self.ticks

    async def sleep(self, seconds: float) -> None:
        """Stand in for the poller's asyncio.sleep: note the wait, hardly wait."""
        self.sleeps.append(seconds)
        if self.on_sleep is not None:
            await self.on_sleep(seconds)
        await asyncio.sleep(0.01)

    # Updates in

    def send(self, text: str, *, chat: int = USER, **details: Any) -> int:
        """Inject a message; return its update id."""
        return self.api.inject_update({"message": message(text, chat=chat, **details)})

    def edit(self, text: str, *, chat: int = USER, **details: Any) -> int:
        """Inject an edited message; return its update id."""
        edited = message(text, chat=chat, **details)
        edited["edit_date"] = edited["date"] + 60
        return self.api.inject_update({"edited_message": edited})

    def press(
        self, data: str, message_id: int, *, chat: int = USER, user: int | None = None
    ) -> str:
        """Inject a button press on one of our messages; return the callback query id."""
        callback_id = f"cb{next(_callback_ids)}"
        self.api.inject_update(
            {
                "callback_query": {
                    "id": callback_id,
                    "from": sender(chat if user is None else user),
                    "message": {
                        "message_id": message_id,
                        "date": 1_741_055_400,
                        "chat": chat_of(chat),
                        "from": dict(BOT_USER),
                        "text": "…",
                    },
                    "chat_instance": "1",
                    "data": data,
                }
            }
        )
        return callback_id

    async def settle(self) -> None:
        """Wait until every update injected so far is handled and its replies are sent.

        Updates are handled in order, so once a fresh user's plain text is answered, all
        before it are done.
        """
        sentinel = next(_sentinels)
        self.send("ping", chat=sentinel, language="en")
        await until(lambda: bool(self.api.messages(sentinel)))

    # Replies out

    def texts(self, chat: int = USER) -> list[str]:
        """Return what the chat shows now, oldest first (markup parsed)."""
        return [m.visible_text for m in self.api.messages(chat)]

    async def ask(self, text: str, *, chat: int = USER, **details: Any) -> list[str]:
        """Send a message and return every new message the chat got for it."""
        before = len(self.api.messages(chat))
        self.send(text, chat=chat, **details)
        await self.settle()
        return self.texts(chat)[before:]

    async def say(self, text: str, *, chat: int = USER, **details: Any) -> str:
        """Send a message and return its one reply."""
        replies = await self.ask(text, chat=chat, **details)
        assert len(replies) == 1, replies
        return replies[0]

    # The service around the commands

    async def post(self, text: str, *, channel: int = 10, minutes: float = 0) -> None:
        """Have the pipeline process a channel post dated `minutes` after the clock."""
        date = self.clock.now + timedelta(minutes=minutes)
        await self.pipeline.process(Post(channel, next(self._post_ids), date, text))

    async def incident_ids(self) -> list[str]:
        """Return the incidents, newest first."""
        async with self.db.reading():
            return [i.id for i in await IncidentRepo(self.db).recent(None, 50)]

    async def subscriber(self, chat: int = USER) -> Subscriber | None:
        """Return a chat's subscription as stored."""
        async with self.db.reading():
            return await SubscriberRepo(self.db).get(chat)

    async def audit(self) -> list[AuditEntry]:
        """Return the audit trail, oldest first."""
        async with self.db.reading():
            return list(reversed(await AuditRepo(self.db).recent()))

    async def offset(self) -> str | None:
        """Return the stored update offset."""
        async with self.db.reading():
            return await StateRepo(self.db).get(OFFSET_KEY)

    async def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Read rows straight from the database."""
        async with self.db.reading():
            return [tuple(row) for row in await self.db.conn.execute_fetchall(sql, params)]


@asynccontextmanager
async def open_bot(
    path: Path,
    api: FakeBotApi,
    detector: Detector,
    clock: FakeClock,
    *,
    regions: Iterable[str] = WATCHED,
    operators: Iterable[int] = (OPERATOR,),
    start: bool = True,
) -> AsyncIterator[ChatBot]:
    """Run the commands over a database at `path` until the block ends.

    The regions are seeded before `open_commands` reads them, as `run_service` does.
    With `start=False` the poller is built, and polls once `bot.start()` is called.
    """
    regions = tuple(regions)
    limiter = RateLimiter(global_per_second=200, chat_spacing=0.0, group_spacing=0.0)
    async with (
        open_pipeline(path, regions, detector=detector, clock=clock) as (db, pipeline),
        open_delivery(
            db, TOKEN, api.url, ZONE, clock=clock, limiter=limiter, edit_spacing=0.0
        ) as (notifier, deliverer),
    ):
        async with db.transaction():
            await RegionRepo(db).seed(regions, clock())
        pipeline.notifier = notifier
        control = ServiceControl(pipeline, notifier)
        poller = await open_commands(
            db,
            deliverer.api,
            control,
            zone=ZONE,
            operator_ids=list(operators),
            limiter=limiter,
            clock=clock,
            poll_timeout=POLL_TIMEOUT,
        )
        bot = ChatBot(api, db, pipeline, notifier, deliverer, control, poller, clock)
        poller.sleep = bot.sleep
        poller.dispatcher.monotonic = bot.monotonic
        if start:
            bot.start()
        try:
            yield bot
        finally:
            await bot.stop()
