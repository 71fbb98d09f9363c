"""The update poller against a fake Bot API: offsets, restarts, conflicts, errors, bad updates.

The poller runs as in the service (tests/chat_harness.py); its waits go through an injected
sleep that records them, so back-offs of 30 or 60 seconds take a few milliseconds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.detect import Detector
from bot.poller import (
    CONFLICT_PAUSE,
    FAILED_UPDATE_PAUSE,
    FAILED_UPDATE_TRIES,
    RETRY_BASE,
    UNAUTHORIZED_PAUSE,
)
from tests.chat_harness import (
    GROUP,
    OPERATOR,
    OPERATOR_COMMANDS,
    TOKEN,
    USER,
    ChatBot,
    message,
    open_bot,
    until,
)
from tests.conftest import FakeClock
from tests.fakes.botapi import FakeBotApi

STARTED = (
    "Вы подписаны на оповещения. Регионы: все наблюдаемые.\n"
    "Выбрать регионы: /regions · тишина: /mute 2h · отписаться: /stop"
)
HELP_START = "Я присылаю оповещения"
WATCHED = "Watched regions (2):\n• RU-KDA Krasnodar Krai\n• RU-ROS Rostov Oblast"
SUBSCRIBER_COMMANDS = [
    "start",
    "stop",
    "regions",
    "mute",
    "unmute",
    "lang",
    "status",
    "digest",
    "help",
]


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    with FakeBotApi(TOKEN, enforce_limits=False) as server:
        yield server


def errors(caplog: pytest.LogCaptureFixture, level: int = logging.ERROR) -> list[str]:
    """Return the poller's log lines at `level`."""
    return [
        r.getMessage() for r in caplog.records if r.name == "bot.poller" and r.levelno == level
    ]


async def arm_database_fault(bot: ChatBot) -> None:
    """Make every audit insert fail until `disarm_database_fault`: a database hiccup.

    A SQLite trigger in the test's own database file: the poller's transaction fails
    the way it would on a full disk or a broken file, with nothing in the code mocked.
    """
    async with bot.db.transaction():
        await bot.db.conn.execute("CREATE TABLE test_fault (armed INTEGER NOT NULL)")
        await bot.db.conn.execute("INSERT INTO test_fault VALUES (1)")
        await bot.db.conn.execute(
            "CREATE TRIGGER test_fault_audit BEFORE INSERT ON audit"
            " WHEN (SELECT armed FROM test_fault) = 1"
            " BEGIN SELECT RAISE(ABORT, 'simulated disk fault'); END"
        )


async def disarm_database_fault(bot: ChatBot) -> None:
    """Let audit inserts succeed again."""
    async with bot.db.transaction():
        await bot.db.conn.execute("UPDATE test_fault SET armed = 0")


# --- the command menu ----------------------------------------------------------------------


async def test_the_menu_is_set_for_everyone_and_for_each_operator(
    tmp_path: Path, api: FakeBotApi, detector: Detector, clock: FakeClock
) -> None:
    operators = (OPERATOR, 8)
    async with open_bot(tmp_path / "s.db", api, detector, clock, operators=operators) as bot:
        await bot.settle()
    default = api.my_commands()
    assert [c["command"] for c in default] == SUBSCRIBER_COMMANDS
    assert default[0] == {"command": "start", "description": "Подписаться на оповещения"}
    for language, first in (("uk", "Підписатися на сповіщення"), ("en", "Subscribe to alerts")):
        commands = api.my_commands(language_code=language)
        assert [c["command"] for c in commands] == SUBSCRIBER_COMMANDS
        assert commands[0]["description"] == first
    for operator in operators:
        full = api.my_commands({"type": "chat", "chat_id": operator})
        assert [c["command"] for c in full] == SUBSCRIBER_COMMANDS + OPERATOR_COMMANDS
        assert {"command": "fp", "description": "Mark a false positive: /fp ID [note]"} in full
    assert api.my_commands({"type": "chat", "chat_id": USER}) == []


async def test_a_menu_that_cannot_be_set_does_not_stop_the_commands(
    tmp_path: Path,
    api: FakeBotApi,
    detector: Detector,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api.fail_next("setMyCommands", error_code=400, description="Bad Request: BOT_COMMAND_INVALID")
    async with open_bot(tmp_path / "s.db", api, detector, clock) as bot:
        assert await bot.say("/start") == STARTED
    assert errors(caplog, logging.WARNING) == [
        "the default command menu was not set: setMyCommands: Bad Request: BOT_COMMAND_INVALID"
    ]


# --- polling -------------------------------------------------------------------------------


async def test_get_updates_long_polls_for_the_three_kinds_of_update_read(
    api: FakeBotApi, tmp_path: Path, detector: Detector, clock: FakeClock
) -> None:
    async with open_bot(tmp_path / "s.db", api, detector, clock) as bot:
        await bot.say("/start")
        await until(lambda: api.polls_waiting == 1)
    params = api.calls("getUpdates")[0].params
    assert params["allowed_updates"] == ["message", "edited_message", "callback_query"]
    assert params["timeout"] == 1 and params["offset"] == 0


async def test_the_offset_persists_across_a_restart(
    tmp_path: Path, api: FakeBotApi, detector: Detector, clock: FakeClock
) -> None:
    path = tmp_path / "skywatch.db"
    start = message("/start")
    async with open_bot(path, api, detector, clock) as first:
        start_id = api.inject_update({"message": start})
        await first.settle()
        assert first.texts() == [STARTED]
        await first.say("/pause", chat=OPERATOR)
        await first.say("/unwatch RU-ROS", chat=OPERATOR)
        offset = await first.offset()
        assert offset is not None and int(offset) == start_id + 6  # 3 commands, 3 pings
    polls = len(api.calls("getUpdates"))

    # Telegram sends again what a dead instance never confirmed.
    api.inject_update({"update_id": start_id, "message": start})
    async with open_bot(path, api, detector, clock) as second:
        await second.settle()
        assert second.texts() == [STARTED]  # not handled twice: no «already subscribed»
        after = [c.params["offset"] for c in api.calls("getUpdates")[polls:] if c.status == 200]
        assert after[0] == int(offset)
        # What operators changed came back with it.
        assert second.notifier.paused
        assert second.pipeline.watch_regions == ("RU-KDA",)
        assert await second.say("/start") == "Вы уже подписаны. Регионы: все наблюдаемые."


async def test_a_conflict_with_another_instance_is_logged_clearly_and_polling_goes_on(
    tmp_path: Path,
    api: FakeBotApi,
    detector: Detector,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with open_bot(tmp_path / "s.db", api, detector, clock) as bot:
        await until(lambda: api.polls_waiting == 1)
        # Another instance polls with the same token: Telegram ends our waiting poll.
        other = httpx.post(f"{api.bot_url}/getUpdates", json={"timeout": 0}, timeout=5)
        assert other.json() == {"ok": True, "result": []}
        await until(lambda: CONFLICT_PAUSE in bot.sleeps)
        assert 409 in [c.status for c in api.calls("getUpdates")]
        assert await bot.say("/start") == STARTED
    [logged] = errors(caplog)
    assert "409 Conflict" in logged and "another process is reading this bot's updates" in logged
    assert "stop the other instance or delete its webhook" in logged


async def test_a_409_answer_is_waited_out_each_time(
    tmp_path: Path,
    api: FakeBotApi,
    detector: Detector,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api.fail_next("getUpdates", 2, error_code=409, description="Conflict: can't use getUpdates")
    async with open_bot(tmp_path / "s.db", api, detector, clock) as bot:
        assert await bot.say("/start") == STARTED
    assert bot.sleeps[:2] == [CONFLICT_PAUSE, CONFLICT_PAUSE]
    assert len(errors(caplog)) == 2


async def test_get_updates_failures_are_retried(
    tmp_path: Path,
    api: FakeBotApi,
    detector: Detector,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api.fail_next("getUpdates", 2, error_code=502, description="Bad Gateway")
    async with open_bot(tmp_path / "s.db", api, detector, clock) as bot:
        assert await bot.say("/start") == STARTED
        assert bot.sleeps == [RETRY_BASE, 2 * RETRY_BASE]  # doubled while it lasts
        api.fail_next("getUpdates", error_code=429, retry_after=7)
        api.fail_next("getUpdates", error_code=401, description="Unauthorized")
        api.fail_next("getUpdates", error_code=502, description="Bad Gateway")
        assert await bot.say("/stop") == "Вы отписаны. Вернуться: /start"  # ends the poll
        await until(lambda: len(bot.sleeps) == 5)
        assert await bot.say("/start") == STARTED
    assert bot.sleeps == [RETRY_BASE, 2 * RETRY_BASE, 7.0, UNAUTHORIZED_PAUSE, RETRY_BASE]
    assert errors(caplog) == ["the Bot API refuses BOT_TOKEN (or BOT_API_URL is wrong)"]
    warnings = errors(caplog, logging.WARNING)
    assert warnings[0] == "getUpdates failed (getUpdates: Bad Gateway); retrying in 1 s"
    assert all(TOKEN not in line for line in caplog.messages)


async def test_get_me_is_retried_before_polling(
    tmp_path: Path, api: FakeBotApi, detector: Detector, clock: FakeClock
) -> None:
    api.fail_next("getMe", 2, error_code=500)
    async with open_bot(tmp_path / "s.db", api, detector, clock) as bot:
        assert await bot.say("/start@skywatch_test_bot") == STARTED  # it knows its name
        assert bot.sleeps == [RETRY_BASE, 2 * RETRY_BASE]


# --- replies -------------------------------------------------------------------------------


@pytest.fixture
def bot_path(tmp_path: Path) -> Path:
    return tmp_path / "skywatch.db"


async def test_a_reply_that_cannot_be_sent_loses_nothing_else(
    bot_path: Path,
    api: FakeBotApi,
    detector: Detector,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with open_bot(bot_path, api, detector, clock) as bot:
        api.fail_next("sendMessage", error_code=500)
        assert await bot.ask("/start") == []
        subscriber = await bot.subscriber()
        assert subscriber is not None and subscriber.active  # committed before the reply
        api.block(GROUP)
        assert await bot.ask("/start", chat=GROUP, user=USER) == []
        assert await bot.say("/start") == "Вы уже подписаны. Регионы: все наблюдаемые."
    warnings = errors(caplog, logging.WARNING)
    assert warnings == [
        f"reply to chat {USER} failed: sendMessage: Internal Server Error",
        f"reply to chat {GROUP} failed: sendMessage: Forbidden: bot was blocked by the user",
    ]


async def test_a_button_press_whose_answer_fails_still_acts(
    bot_path: Path,
    api: FakeBotApi,
    detector: Detector,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with open_bot(bot_path, api, detector, clock) as bot:
        await bot.say("/start")
        await bot.say("/regions")
        board = api.messages(USER)[-1]
        api.fail_next(
            "answerCallbackQuery", error_code=400, description="Bad Request: query is too old"
        )
        callback_id = bot.press("rg:t:RU-ROS", board.message_id)
        await bot.settle()
        subscriber = await bot.subscriber()
        assert subscriber is not None and subscriber.regions == ("RU-KDA",)
        assert len(api.messages(USER)[-1].edits) == 1
    assert errors(caplog, logging.WARNING) == [
        f"callback {callback_id} not answered: answerCallbackQuery: Bad Request: query is too old"
    ]


# --- bad updates ---------------------------------------------------------------------------

JUNK: list[dict[str, Any]] = [
    {},
    {"message": "not a message"},
    {"message": None},
    {"message": {}},
    {"message": {"chat": "42", "from": {"id": 42}, "text": "/start"}},
    {"message": {"chat": {"id": "42"}, "from": {"id": 42}, "text": "/start"}},
    {"message": {"chat": {"id": 42.0}, "from": {"id": 42}, "text": "/start"}},
    {"message": {"chat": {"id": 42, "type": "private"}, "text": "/start"}},  # no sender
    {"message": {"chat": {"id": 42, "type": "private"}, "from": {"id": True}, "text": "/start"}},
    {"message": {"chat": {"id": 42, "type": "private"}, "from": "42", "text": "/start"}},
    {
        "message": {
            "chat": {"id": 42, "type": 5},
            "from": {"id": 42, "language_code": 7},
            "text": ["/start"],
            "message_id": "x",
        }
    },
    {"message": {"chat": {"id": 42, "type": "private"}, "from": {"id": 42}, "photo": [{}]}},
    {"edited_message": []},
    {"callback_query": "x"},
    {"callback_query": {"id": 5, "from": {"id": 42}, "data": {"a": 1}}},
    {"callback_query": {"id": "q1", "from": {"id": 42}, "data": "rg:t:RU-KDA"}},  # no message
    {
        "callback_query": {
            "id": "q2",
            "from": {"id": 42},
            "message": {"message_id": None, "chat": {"id": 42}},
            "data": None,
        }
    },
    {"channel_post": {"chat": {"id": -1001, "type": "channel"}, "text": "/start"}},
    {"my_chat_member": {"chat": {"id": GROUP, "type": "supergroup"}}},
    {"message": {"chat": {"id": 2**70, "type": "private"}, "from": {"id": 2**70}, "text": "/x"}},
]


async def test_malformed_updates_never_stop_the_poller(
    bot_path: Path,
    api: FakeBotApi,
    detector: Detector,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with open_bot(bot_path, api, detector, clock) as bot:
        ids = [api.inject_update(update) for update in JUNK]
        assert (await bot.say("/help")).startswith(HELP_START)
        assert await bot.say("/start") == STARTED
        offset = await bot.offset()
        assert offset is not None and int(offset) > ids[-1]
        # Only the press that names its chat could be answered.
        assert [c.params for c in api.calls("answerCallbackQuery")] == [
            {"callback_query_id": "q2"}
        ]
        assert await bot.query("SELECT chat_id FROM subscribers") == [(USER,)]
    # The last one (a chat id SQLite cannot store) failed its transaction: logged, retried,
    # then skipped so that it holds up nothing.
    assert FAILED_UPDATE_PAUSE in bot.sleeps
    assert set(errors(caplog)) == {
        f"update {ids[-1]} could not be handled; retrying",
        f"update {ids[-1]} skipped after {FAILED_UPDATE_TRIES} failures",
    }


async def test_an_update_whose_transaction_fails_is_read_again(
    bot_path: Path,
    api: FakeBotApi,
    detector: Detector,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with open_bot(bot_path, api, detector, clock) as bot:
        await arm_database_fault(bot)

        async def recover(seconds: float) -> None:
            if seconds == FAILED_UPDATE_PAUSE:
                await disarm_database_fault(bot)

        bot.on_sleep = recover
        update_id = bot.send("/watched", chat=OPERATOR)
        await until(lambda: bool(bot.texts(OPERATOR)))
        assert bot.texts(OPERATOR) == [WATCHED]
        assert bot.sleeps == [FAILED_UPDATE_PAUSE]
        assert [a.command for a in await bot.audit()] == ["watched"]
    [logged] = [r for r in caplog.records if r.name == "bot.poller"]
    assert logged.getMessage() == f"update {update_id} could not be handled; retrying"
    assert logged.exc_info is not None


async def test_an_update_whose_transaction_fails_is_not_skipped_by_the_next(
    bot_path: Path, api: FakeBotApi, detector: Detector, clock: FakeClock
) -> None:
    async with open_bot(bot_path, api, detector, clock, start=False) as bot:
        await arm_database_fault(bot)

        async def recover(seconds: float) -> None:
            if seconds == FAILED_UPDATE_PAUSE:
                await disarm_database_fault(bot)

        bot.on_sleep = recover
        bot.send("/watched", chat=OPERATOR)  # fails once
        bot.send("/help")  # in the same getUpdates batch
        bot.start()
        await bot.settle()
        assert bot.texts()[0].startswith(HELP_START)
        assert bot.texts(OPERATOR) == [WATCHED]
