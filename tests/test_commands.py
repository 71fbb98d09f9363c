"""Chat commands end to end: updates injected into a fake Bot API, replies read back from it.

The real stack runs over a SQLite file: pipeline, delivery, dispatcher and update poller
(tests/chat_harness.py). Subscriber replies are checked in the chat's language, operator
replies in English, and every operator command against the audit trail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.detect import Detector
from bot.models import Subscriber
from handlers.operators import OPERATOR_HELP
from storage.channels import ChannelRepo
from tests.chat_harness import (
    BOT_USERNAME,
    GROUP,
    OPERATOR,
    OPERATOR_COMMANDS,
    OTHER,
    TOKEN,
    USER,
    ChatBot,
    open_bot,
)
from tests.conftest import FakeClock
from tests.fakes.botapi import FakeBotApi, FakeMessage

KRASNODAR = "Взрывы в Краснодаре, работает ПВО"
TAGANROG = "Взрывы в Таганроге, работает ПВО"

UNKNOWN = "Неизвестная команда. Список команд: /help"
NEED_START = "Сначала подпишитесь: /start"
STARTED = (
    "Вы подписаны на оповещения. Регионы: все наблюдаемые.\n"
    "Выбрать регионы: /regions · тишина: /mute 2h · отписаться: /stop"
)
MUTE_USAGE = "Укажите срок: /mute 30m, /mute 2h или /mute 1d (не больше 7 дней)."
LANG_USAGE_EN = "Choose a language: /lang ru, /lang uk or /lang en."
HELP_RU = (
    "Я присылаю оповещения о взрывах, беспилотниках, ракетах и работе ПВО в наблюдаемых "
    "регионах: одно сообщение на событие, которое дополняется по мере подтверждения.\n\n"
    "/start — подписаться\n/stop — отписаться\n/regions — выбрать регионы\n"
    "/mute 2h — тишина на время (30m, 2h, 1d)\n/unmute — снова присылать\n"
    "/lang ru|uk|en — язык\n/status — последние события\n"
    "/digest 8 — сводка за сутки в 8:00\n/help — эта справка"
)
KRASNODAR_STATUS = "• 04.03 05:30–05:30 Краснодарский край: взрывы, работа ПВО (идёт)"
NO_EVENTS = "За последние сутки событий в ваших регионах не было ({})."
PAUSED = (
    "Alerts paused: no new alerts, edits or notices are planned (messages already queued "
    "still go out). Posts are still processed and stored. /resume to undo."
)


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    with FakeBotApi(TOKEN, enforce_limits=False) as server:
        # The group's admins: they may change its subscription.
        for user in (USER, OTHER, OPERATOR, 44):
            server.set_admin(GROUP, user)
        server.set_admin(-4242, OTHER, "creator")
        yield server


@pytest.fixture
async def bot(
    tmp_path: Path, api: FakeBotApi, detector: Detector, clock: FakeClock
) -> AsyncIterator[ChatBot]:
    async with open_bot(tmp_path / "skywatch.db", api, detector, clock) as running:
        yield running


def buttons(message: FakeMessage) -> list[list[tuple[str, str]]]:
    """Return a message's inline keyboard as rows of (label, data)."""
    markup: dict[str, Any] = message.reply_markup or {}
    return [
        [(button["text"], button["callback_data"]) for button in row]
        for row in markup.get("inline_keyboard", [])
    ]


def answers(api: FakeBotApi, callback_id: str) -> list[dict[str, Any]]:
    """Return the answerCallbackQuery calls made for one button press."""
    return [
        call.params
        for call in api.calls("answerCallbackQuery")
        if call.params.get("callback_query_id") == callback_id
    ]


# --- /start, /stop -------------------------------------------------------------------------


async def test_start_subscribes_a_private_chat_and_stop_unsubscribes_it(bot: ChatBot) -> None:
    assert await bot.say("/start") == STARTED
    assert await bot.subscriber() == Subscriber(USER, kind="private", language="ru")
    assert await bot.say("/start") == "Вы уже подписаны. Регионы: все наблюдаемые."
    assert await bot.say("/lang en") == "Alert language: English."
    assert await bot.say("/stop") == "You are unsubscribed. To come back: /start"
    stopped = await bot.subscriber()
    assert stopped is not None and not stopped.active
    assert await bot.say("/stop") == "You are not subscribed. To subscribe: /start"
    # Back again: the chat keeps its settings.
    assert (await bot.say("/start")).startswith("You are subscribed to alerts.")
    assert await bot.subscriber() == Subscriber(USER, kind="private", language="en")


async def test_only_a_groups_admins_change_its_subscription(bot: ChatBot, api: FakeBotApi) -> None:
    refused = "В группе это могут только её администраторы."
    assert await bot.say("/start", chat=-777, chat_type="group", user=45) == refused
    assert await bot.subscriber(-777) is None
    api.set_admin(-777, 46)
    assert await bot.say("/start", chat=-777, chat_type="group", user=46) == STARTED
    assert await bot.say("/stop", chat=-777, chat_type="group", user=45) == refused
    assert await bot.say("/mute 2h", chat=-777, chat_type="group", user=45) == refused
    assert (await bot.say("/status", chat=-777, chat_type="group", user=45)).startswith(
        "За последние сутки"
    )  # reading is for everyone
    subscriber = await bot.subscriber(-777)
    assert subscriber is not None and subscriber.active and subscriber.muted_until is None


async def test_start_in_a_group_subscribes_the_group_in_its_members_language(
    bot: ChatBot,
) -> None:
    reply = await bot.say("/start", chat=GROUP, user=USER, language="uk")
    assert reply.startswith("Ви підписані на сповіщення. Регіони: усі, за якими стежу.")
    assert await bot.subscriber(GROUP) == Subscriber(GROUP, kind="supergroup", language="uk")
    assert await bot.subscriber(USER) is None  # the group subscribed, not its member
    reply = await bot.say("/start", chat=-4242, chat_type="group", user=OTHER, language=None)
    assert reply == STARTED  # no language_code: Russian
    assert await bot.subscriber(-4242) == Subscriber(-4242, kind="group", language="ru")


@pytest.mark.parametrize(
    ("language_code", "reply"),
    [
        ("en-GB", "You are subscribed to alerts."),
        ("uk", "Ви підписані на сповіщення."),
        ("de", "Вы подписаны на оповещения."),
    ],
)
async def test_a_new_chat_is_answered_in_its_users_telegram_language(
    bot: ChatBot, language_code: str, reply: str
) -> None:
    assert (await bot.say("/start", language=language_code)).startswith(reply)


async def test_subscriber_settings_need_a_subscription(bot: ChatBot) -> None:
    for command in ("/regions", "/mute 2h", "/unmute", "/lang en"):
        assert await bot.say(command) == NEED_START, command
    assert await bot.subscriber() is None


# --- /regions and its buttons --------------------------------------------------------------


async def test_regions_keyboard_turns_regions_on_and_off(bot: ChatBot, api: FakeBotApi) -> None:
    await bot.say("/start")
    assert await bot.say("/regions") == (
        "Регионы оповещений (✅ — включены). Нажмите, чтобы включить или выключить:"
    )
    board = api.messages(USER)[-1]
    assert buttons(board) == [
        [("✅ Краснодарский край", "rg:t:RU-KDA")],
        [("✅ Ростовская область", "rg:t:RU-ROS")],
        [("Все регионы", "rg:all"), ("Готово", "rg:done")],
    ]

    async def press(data: str) -> tuple[FakeMessage, tuple[str, ...] | None]:
        callback_id = bot.press(data, board.message_id)
        await bot.settle()
        assert answers(api, callback_id) == [{"callback_query_id": callback_id}]
        subscriber = await bot.subscriber()
        assert subscriber is not None
        [shown] = [m for m in api.messages(USER) if m.message_id == board.message_id]
        return shown, subscriber.regions

    shown, regions = await press("rg:t:RU-ROS")
    assert regions == ("RU-KDA",)
    assert [row[0][0] for row in buttons(shown)[:2]] == [
        "✅ Краснодарский край",
        "▫️ Ростовская область",
    ]
    _, regions = await press("rg:t:RU-KDA")
    assert regions == ()  # nothing at all
    _, regions = await press("rg:t:RU-ROS")
    assert regions == ("RU-ROS",)
    _, regions = await press("rg:all")
    assert regions is None
    _, regions = await press("rg:all")  # pressed twice: nothing to edit, still answered
    assert regions is None
    _, regions = await press("rg:t:RU-KDA")
    assert regions == ("RU-ROS",)
    shown, regions = await press("rg:done")
    assert shown.visible_text == "Регионы оповещений: Ростовская область."
    assert shown.reply_markup is None and regions == ("RU-ROS",)
    assert len(api.messages(USER)) == 2  # every press edited the one keyboard message

    # The choice decides which alerts come.
    await bot.post(KRASNODAR)
    await bot.post(TAGANROG, channel=11)
    await bot.deliverer.drain()
    [*_, alert] = bot.texts()
    assert "Таганрог" in alert and all("Краснодар" not in text for text in bot.texts())


async def test_region_buttons_refuse_what_they_cannot_do(bot: ChatBot, api: FakeBotApi) -> None:
    await bot.say("/start")
    await bot.say("/regions")
    board = api.messages(USER)[-1]
    unwatched = bot.press("rg:t:RU-BEL", board.message_id)
    unknown = bot.press("zz:whatever", board.message_id)
    await bot.settle()
    assert answers(api, unwatched) == [
        {"callback_query_id": unwatched, "text": "Этот регион больше не наблюдается."}
    ]
    assert answers(api, unknown) == [{"callback_query_id": unknown}]
    await bot.say("/stop")
    stopped = bot.press("rg:t:RU-KDA", board.message_id)
    await bot.settle()
    assert answers(api, stopped) == [{"callback_query_id": stopped, "text": NEED_START}]
    subscriber = await bot.subscriber()
    assert subscriber is not None and subscriber.regions is None
    assert api.calls("editMessageText") == []


async def test_regions_keyboard_follows_the_watched_regions(bot: ChatBot) -> None:
    await bot.say("/start")
    assert await bot.say("/unwatch RU-ROS", chat=OPERATOR) == (
        "No longer watching RU-ROS Rostov Oblast."
    )
    await bot.say("/regions")
    assert buttons(bot.api.messages(USER)[-1])[0] == [("✅ Краснодарский край", "rg:t:RU-KDA")]
    assert len(buttons(bot.api.messages(USER)[-1])) == 2
    await bot.say("/unwatch Кубань", chat=OPERATOR)
    assert await bot.say("/regions") == "Сейчас сервис не следит ни за одним регионом."


# --- /mute, /unmute ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "duration"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("2", timedelta(hours=2)),  # hours unless said otherwise
        ("2ч", timedelta(hours=2)),
        ("3 год", timedelta(hours=3)),
        ("45 MIN", timedelta(minutes=45)),
        ("1d", timedelta(days=1)),
        ("７d", timedelta(days=7)),  # a full-width digit; seven days is the most
        ("9999m", timedelta(minutes=9999)),
    ],
)
async def test_mute_for_a_while(
    bot: ChatBot, clock: FakeClock, argument: str, duration: timedelta
) -> None:
    await bot.say("/start")
    muted_until = clock.now + duration
    local = muted_until.astimezone(bot.poller.dispatcher.services.alert_texts.zone)
    assert await bot.say(f"/mute {argument}") == (
        f"Оповещения выключены до {local:%d.%m %H:%M}. Включить раньше: /unmute"
    )
    subscriber = await bot.subscriber()
    assert subscriber is not None and subscriber.muted_until == muted_until


@pytest.mark.parametrize(
    "argument", ["", "0h", "0", "8d", "169h", "10081m", "2x", "-1h", "1.5h", "soon", "2h30m"]
)
async def test_mute_refuses_a_bad_duration(bot: ChatBot, argument: str) -> None:
    await bot.say("/start")
    assert await bot.say(f"/mute {argument}") == MUTE_USAGE
    subscriber = await bot.subscriber()
    assert subscriber is not None and subscriber.muted_until is None


async def test_a_muted_chat_gets_no_alert_until_unmuted(bot: ChatBot) -> None:
    await bot.say("/start")
    await bot.say("/start", chat=OTHER)
    assert await bot.say("/mute 2h") == (
        "Оповещения выключены до 04.03 07:30. Включить раньше: /unmute"
    )
    assert await bot.say("/status") == (
        "🔕 Оповещения выключены до 04.03 07:30.\n" + NO_EVENTS.format("все наблюдаемые")
    )
    await bot.post(KRASNODAR)
    await bot.deliverer.drain()
    assert len(bot.texts(OTHER)) == 2 and len(bot.texts()) == 3  # no alert here
    assert await bot.say("/unmute") == "Оповещения снова включены."
    subscriber = await bot.subscriber()
    assert subscriber is not None and subscriber.muted_until is None
    await bot.post(TAGANROG, channel=11)
    await bot.deliverer.drain()
    assert "Таганрог" in bot.texts()[-1]


# --- /lang ---------------------------------------------------------------------------------


async def test_lang_switches_replies_and_alerts(bot: ChatBot) -> None:
    await bot.say("/start")
    assert await bot.say("/lang uk") == "Мова сповіщень: українська."
    assert (await bot.say("/help")).startswith("Я надсилаю сповіщення про вибухи")
    assert await bot.say("/lang EN") == "Alert language: English."
    assert await bot.say("/lang de") == LANG_USAGE_EN
    assert await bot.say("/lang") == LANG_USAGE_EN
    assert await bot.say("/whatever") == "Unknown command. Commands: /help"
    assert await bot.say("/lang ru") == "Язык оповещений: русский."
    assert await bot.say("/lang en") == "Alert language: English."
    subscriber = await bot.subscriber()
    assert subscriber is not None and subscriber.language == "en"
    await bot.post(KRASNODAR)
    await bot.deliverer.drain()
    assert "Krasnodar" in bot.texts()[-1]


# --- /status -------------------------------------------------------------------------------


async def test_status_shows_the_latest_incidents_in_the_chats_regions(
    bot: ChatBot, api: FakeBotApi, clock: FakeClock
) -> None:
    # Anyone may ask, subscribed or not.
    assert await bot.say("/status") == NO_EVENTS.format("все наблюдаемые")
    await bot.post(KRASNODAR)
    assert await bot.say("/status") == (
        "Последние события (все наблюдаемые):\n" + KRASNODAR_STATUS
    )
    await bot.post(TAGANROG, channel=11, minutes=1)
    assert await bot.say("/status", chat=OTHER, language="en") == (
        "Latest events (every watched one):\n"
        "• 04.03 05:31–05:31 Rostov Oblast: explosions, air defence (ongoing)\n"
        "• 04.03 05:30–05:30 Krasnodar Krai: explosions, air defence (ongoing)"
    )
    # A chat that chose Rostov only does not see Krasnodar.
    await bot.say("/start")
    await bot.say("/regions")
    bot.press("rg:t:RU-KDA", api.messages(USER)[-1].message_id)
    await bot.settle()
    assert await bot.say("/status") == (
        "Последние события (Ростовская область):\n"
        "• 04.03 05:31–05:31 Ростовская область: взрывы, работа ПВО (идёт)"
    )
    clock.now += timedelta(hours=25)  # a day later: nothing recent
    assert await bot.say("/status") == NO_EVENTS.format("Ростовская область")


# --- /help and the menu --------------------------------------------------------------------


async def test_help_lists_operator_commands_to_operators_only(bot: ChatBot) -> None:
    assert await bot.say("/help") == HELP_RU
    operator_help = await bot.say("/help", chat=OPERATOR)
    assert operator_help == HELP_RU + "\n\n" + OPERATOR_HELP
    for command in OPERATOR_COMMANDS:
        assert f"/{command} " not in HELP_RU and f"/{command}\n" not in HELP_RU


# --- operators: authorisation and the audit trail ------------------------------------------

SAMPLE_ARGS = {
    "addchannel": "@kuban_news",
    "removechannel": "@kuban_news",
    "watch": "RU-BEL",
    "unwatch": "RU-KDA",
    "recent": "5",
    "why": "X",
    "fp": "X looks wrong",
}


async def test_operator_commands_are_refused_to_others_like_unknown_ones(
    bot: ChatBot, api: FakeBotApi
) -> None:
    assert await bot.say("/nosuchcommand") == UNKNOWN
    for n, command in enumerate(OPERATOR_COMMANDS):
        user = 100 + n
        text = f"/{command} {SAMPLE_ARGS.get(command, '')}".strip()
        assert await bot.say(text, chat=user) == UNKNOWN, command
    # Nor in a group, nor addressed to the bot by name.
    assert await bot.say(f"/pause@{BOT_USERNAME}", chat=GROUP, user=OTHER) == UNKNOWN
    assert not bot.notifier.paused
    assert bot.poller.dispatcher.services.watched == ("RU-KDA", "RU-ROS")
    assert await bot.query("SELECT count(*) FROM channels") == [(0,)]
    audit = await bot.audit()
    assert [(a.user_id, a.command, a.args, a.result, a.detail) for a in audit] == [
        (100 + n, command, SAMPLE_ARGS.get(command, ""), "refused", "not an operator")
        for n, command in enumerate(OPERATOR_COMMANDS)
    ] + [(OTHER, "pause", "", "refused", "not an operator")]
    assert audit[-1].chat_id == GROUP
    assert "nosuchcommand" not in {a.command for a in audit}


async def test_every_operator_command_is_audited(bot: ChatBot, clock: FakeClock) -> None:
    await bot.say("/watched", chat=OPERATOR)
    await bot.say("/watch Нарния", chat=OPERATOR)
    await bot.say("/recent abc", chat=OPERATOR)
    await bot.say("/pause", chat=OPERATOR)
    await bot.say("/start", chat=OPERATOR)  # a subscriber command: not an operator action
    await bot.say("/stats", chat=GROUP, user=OPERATOR)  # not in a group: refused
    audit = await bot.audit()
    assert [(a.user_id, a.chat_id, a.command, a.args, a.result, a.detail) for a in audit] == [
        (OPERATOR, OPERATOR, "watched", "", "ok", ""),
        (
            OPERATOR,
            OPERATOR,
            "watch",
            "Нарния",
            "bad_input",
            "/watch: unknown region 'Нарния' (use an ISO 3166-2 code such as RU-KDA)",
        ),
        (OPERATOR, OPERATOR, "recent", "abc", "bad_input", "Usage: /recent [N], N from 1 to 50"),
        (OPERATOR, OPERATOR, "pause", "", "ok", ""),
        (OPERATOR, GROUP, "stats", "", "refused", "not a private chat"),
    ]
    assert {a.at for a in audit} == {clock.now}


async def test_a_failing_command_apologises_writes_nothing_and_is_audited(
    bot: ChatBot,
) -> None:
    # A database fault, injected with a trigger: the handler's savepoint rolls back.
    async with bot.db.transaction():
        await bot.db.conn.execute(
            "CREATE TRIGGER test_fault AFTER INSERT ON channels"
            " BEGIN SELECT RAISE(ABORT, 'simulated disk fault'); END"
        )
    assert await bot.say("/addchannel @kuban_news", chat=OPERATOR) == (
        "Something went wrong. Please try again later."
    )
    assert await bot.query("SELECT count(*) FROM channels") == [(0,)]
    [entry] = await bot.audit()
    assert (entry.command, entry.args, entry.result, entry.detail) == (
        "addchannel",
        "@kuban_news",
        "error",
        "IntegrityError",
    )
    assert await bot.say("/watched", chat=OPERATOR) == (
        "Watched regions (2):\n• RU-KDA Krasnodar Krai\n• RU-ROS Rostov Oblast"
    )


# --- operators: channels -------------------------------------------------------------------


async def test_channels_are_added_listed_and_removed(bot: ChatBot) -> None:
    op = OPERATOR
    assert await bot.say("/channels", chat=op) == (
        "Watcher: not running\nNo channels. Add one: /addchannel @name"
    )
    assert await bot.say(
        "/addchannel @Kuban_News[official, home=Кубань], t.me/astrapress", chat=op
    ) == ("Added: @kuban_news (pending), @astrapress (pending). Resolving now; see /channels.")
    assert await bot.say("/addchannel -1001633410287[trust=0.5]", chat=op) == (
        "Added: 1633410287 (pending). Resolving now; see /channels."
    )
    listed = await bot.say("/channels", chat=op)
    assert listed.splitlines()[0] == "Watcher: not running"
    assert sorted(listed.splitlines()[1:]) == [
        "⏳ 1633410287 (pending) · last post never",
        "⏳ @astrapress (pending) · last post never",
        "⏳ @kuban_news (pending) · last post never · official",
    ]
    async with bot.db.reading():
        kuban = await ChannelRepo(bot.db).get("@kuban_news")
        numbered = await ChannelRepo(bot.db).get("1633410287")
    assert kuban is not None and kuban.source == "operator"
    assert kuban.settings.official and kuban.settings.home_region == "RU-KDA"
    assert numbered is not None and numbered.settings.trust == 0.5

    assert await bot.say("/removechannel https://t.me/kuban_news", chat=op) == (
        "Removed @kuban_news."
    )
    assert await bot.say("/removechannel -1001633410287", chat=op) == "Removed 1633410287."
    assert await bot.say("/removechannel @kuban_news", chat=op) == (
        "@kuban_news is not followed. See /channels."
    )
    assert (await bot.say("/channels", chat=op)).splitlines()[1:] == [
        "⏳ @astrapress (pending) · last post never"
    ]
    states = await bot.query("SELECT ref, state FROM channels ORDER BY ref")
    assert states == [
        ("1633410287", "removed"),
        ("@astrapress", "pending"),
        ("@kuban_news", "removed"),
    ]


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("/addchannel", "Usage: /addchannel @name[official, home=RU-KDA, trust=2]"),
        ("/addchannel @x", "'@x' is not a channel username, t.me link or id"),
        (
            "/addchannel @kuban_news[home=Нарния]",
            "@kuban_news: home: unknown region 'Нарния' (use an ISO 3166-2 code such as RU-KDA)",
        ),
        (
            "/addchannel @kuban_news[trust=99]",
            "@kuban_news: trust must be a number above 0 and up to 10.0",
        ),
        ("/addchannel @kuban_news, @kuban_news", "@kuban_news is listed twice"),
        (
            "/removechannel",
            "Usage: /removechannel @name ('' is not a channel username, t.me link or id)",
        ),
        ("/removechannel @abc_def", "@abc_def is not followed. See /channels."),
    ],
)
async def test_channel_commands_explain_bad_arguments(
    bot: ChatBot, command: str, reply: str
) -> None:
    assert await bot.say(command, chat=OPERATOR) == reply
    assert await bot.query("SELECT count(*) FROM channels") == [(0,)]
    [entry] = await bot.audit()
    assert entry.result == "bad_input" and entry.detail == reply


# --- operators: regions --------------------------------------------------------------------


async def test_watch_and_unwatch_by_code_or_name_in_three_languages(
    tmp_path: Path, api: FakeBotApi, detector: Detector, clock: FakeClock
) -> None:
    async with open_bot(tmp_path / "s.db", api, detector, clock, regions=["RU-KDA"]) as bot:
        op = OPERATOR
        await bot.say("/start")
        await bot.post(TAGANROG)  # not watched yet: no incident
        assert await bot.incident_ids() == []

        assert await bot.say("/watch Ростовская область", chat=op) == (
            "Now watching RU-ROS Rostov Oblast."
        )
        assert await bot.say("/watch Ростовська область", chat=op) == (
            "Already watching RU-ROS Rostov Oblast."
        )
        assert await bot.say("/watch ru-ros", chat=op) == "Already watching RU-ROS Rostov Oblast."
        assert await bot.say("/watched", chat=op) == (
            "Watched regions (2):\n• RU-KDA Krasnodar Krai\n• RU-ROS Rostov Oblast"
        )
        assert list(bot.pipeline.watch_regions) == ["RU-KDA", "RU-ROS"]
        await bot.post(TAGANROG, channel=11, minutes=1)
        await bot.deliverer.drain()
        assert "Таганрог" in bot.texts()[-1]

        assert await bot.say("/unwatch Rostov Oblast", chat=op) == (
            "No longer watching RU-ROS Rostov Oblast."
        )
        assert await bot.say("/unwatch ростовская область", chat=op) == (
            "RU-ROS Rostov Oblast is not watched. See /watched."
        )
        assert list(bot.pipeline.watch_regions) == ["RU-KDA"]
        assert await bot.say("/unwatch Krasnodar Krai", chat=op) == (
            "No longer watching RU-KDA Krasnodar Krai."
        )
        assert await bot.say("/watched", chat=op) == (
            "No region is watched. Add one: /watch RU-KDA"
        )
        assert await bot.say("/watch Краснодарський край", chat=op) == (
            "Now watching RU-KDA Krasnodar Krai."
        )
        assert await bot.query(
            "SELECT region, source, active FROM watched_regions ORDER BY region"
        ) == [("RU-KDA", "operator", 1), ("RU-ROS", "operator", 0)]


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("/watch", "Usage: /watch REGION (an ISO code such as RU-KDA, or a name)"),
        ("/unwatch", "Usage: /unwatch REGION (an ISO code such as RU-KDA, or a name)"),
        (
            "/watch Нарния",
            "/watch: unknown region 'Нарния' (use an ISO 3166-2 code such as RU-KDA)",
        ),
        (
            "/unwatch Atlantis",
            "/unwatch: unknown region 'Atlantis' (use an ISO 3166-2 code such as RU-KDA)",
        ),
        (
            "/watch Троицк",
            "/watch: ambiguous region 'Троицк': could be RU-CHE (Челябинская область), "
            "RU-MOW (Москва), RU-OMS (Омская область)",
        ),
    ],
)
async def test_watch_explains_an_unknown_or_ambiguous_region(
    bot: ChatBot, command: str, reply: str
) -> None:
    assert await bot.say(command, chat=OPERATOR) == reply
    assert bot.poller.dispatcher.services.watched == ("RU-KDA", "RU-ROS")
    [entry] = await bot.audit()
    assert entry.result == "bad_input"


@pytest.mark.parametrize("command", ["/why <incident>", "/watch R&D", "/fp <id> note"])
async def test_a_bad_argument_with_markup_characters_still_gets_a_reply(
    bot: ChatBot, command: str
) -> None:
    [reply] = await bot.ask(command, chat=OPERATOR)
    assert command.split()[1] in reply


# --- operators: pause, stats, subscribers --------------------------------------------------


async def test_pause_stops_alerts_but_posts_are_still_stored(
    bot: ChatBot, api: FakeBotApi
) -> None:
    await bot.say("/start")
    assert await bot.say("/pause", chat=OPERATOR) == PAUSED
    assert bot.notifier.paused
    assert await bot.say("/pause", chat=OPERATOR) == (
        "Alerts are already paused. /resume to send them again."
    )
    await bot.post(KRASNODAR)
    await bot.deliverer.drain()
    assert len(bot.texts()) == 1  # only the /start reply
    assert await bot.query("SELECT count(*) FROM posts") == [(1,)]
    assert await bot.query("SELECT count(*) FROM outbox") == [(0,)]
    assert len(await bot.incident_ids()) == 1
    assert await bot.say("/status") == (
        "⏸ Оповещения временно приостановлены оператором.\n"
        "Последние события (все наблюдаемые):\n" + KRASNODAR_STATUS
    )
    assert (await bot.say("/stats", chat=OPERATOR)).endswith("⏸ alerts are paused")

    assert await bot.say("/resume", chat=OPERATOR) == (
        "Alerts resumed. Ongoing incidents get an alert at their next report."
    )
    assert not bot.notifier.paused
    assert await bot.say("/resume", chat=OPERATOR) == "Alerts are not paused."
    await bot.post("Снова взрывы в Краснодаре", channel=11, minutes=1)
    await bot.deliverer.drain()
    assert "Краснодар" in bot.texts()[-1] and len(bot.texts()) == 3


async def test_stats_counts_the_last_24_hours(bot: ChatBot, api: FakeBotApi) -> None:
    await bot.say("/start")
    await bot.say("/start", chat=OTHER)
    api.block(OTHER)  # its alert fails
    await bot.post(KRASNODAR)
    await bot.post("Доброе утро, сегодня солнечно и тепло", channel=11)
    await bot.deliverer.drain()
    await bot.post(TAGANROG, channel=12, minutes=1)  # queued, not sent yet
    assert await bot.say("/stats", chat=OPERATOR) == (
        "Last 24 hours:\n"
        "• posts: 3, flagged: 2\n"
        "• incidents: 2\n"
        "• alerts sent: 1 (messages sent or edited: 1)\n"
        "• delivery failures: 1\n"
        "• queue now: 1\n"
        "• posts that failed to process: 0"
    )


async def test_subscribers_are_counted(bot: ChatBot, api: FakeBotApi) -> None:
    assert await bot.say("/subscribers", chat=OPERATOR) == (
        "Subscribers: 0 active (0 muted), 0 stopped or unreachable\n"
        "By chat: —\nBy language: —\nBy region: —"
    )
    await bot.say("/start")
    await bot.say("/regions")
    bot.press("rg:t:RU-KDA", api.messages(USER)[-1].message_id)
    await bot.say("/start", chat=OTHER, language="uk")
    await bot.say("/mute 1d", chat=OTHER)
    await bot.say("/start", chat=GROUP, user=44, language="uk")
    await bot.say("/start", chat=45)
    await bot.say("/stop", chat=45)
    assert await bot.say("/subscribers", chat=OPERATOR) == (
        "Subscribers: 3 active (1 muted), 1 stopped or unreachable\n"
        "By chat: private 2, supergroup 1\n"
        "By language: uk 2, ru 1\n"
        "By region: all 2, RU-ROS 1"
    )


# --- operators: review ---------------------------------------------------------------------


async def test_recent_lists_the_latest_incidents(bot: ChatBot) -> None:
    op = OPERATOR
    assert await bot.say("/recent", chat=op) == "No incidents yet."
    await bot.post(KRASNODAR)
    await bot.post(TAGANROG, channel=11, minutes=1)
    rostov, krasnodar = await bot.incident_ids()
    assert await bot.say("/recent", chat=op) == (
        f"{rostov} explosion, air_defense · 03-04 02:31–02:31 UTC · 1 posts, 1 channels · "
        f"active\n"
        f"{krasnodar} explosion, air_defense · 03-04 02:30–02:30 UTC · 1 posts, 1 channels · "
        "active"
    )
    assert bot.api.messages(op)[-1].text.startswith(f"<code>{rostov}</code>")
    assert (await bot.say("/recent 1", chat=op)).startswith(rostov)
    assert len((await bot.say("/recent 1", chat=op)).splitlines()) == 1
    assert len((await bot.say("/recent 50", chat=op)).splitlines()) == 2
    for bad in ("0", "51", "abc", "-1", "2 3"):
        assert await bot.say(f"/recent {bad}", chat=op) == "Usage: /recent [N], N from 1 to 50"


async def test_why_shows_each_post_and_its_evidence(bot: ChatBot) -> None:
    await bot.post(KRASNODAR)
    await bot.post("В Краснодаре снова слышны взрывы <срочно> & громко", channel=11, minutes=2)
    [incident] = await bot.incident_ids()
    why = await bot.say(f"/why {incident}", chat=OPERATOR)  # markup in a post is escaped
    lines = why.splitlines()
    assert lines[0].startswith(f"{incident}: RU-KDA, explosion, air_defense, active, confidence")
    assert "• 03-04 02:30 UTC 10/1 — report, joined by first, original" in lines
    assert "  «Взрывы в Краснодаре, работает ПВО»" in lines
    assert "  – term:explosion: «Взрывы» explosion" in lines
    assert "  – place:name: «Краснодаре» RU-KDA/Краснодар" in lines
    assert "  – term:air_defense: «ПВО» air_defense" in lines
    assert "  «В Краснодаре снова слышны взрывы <срочно> & громко»" in lines
    assert any(line.startswith("• 03-04 02:32 UTC 11/2 — report") for line in lines)
    assert "false positive" not in why
    assert await bot.say("/why", chat=OPERATOR) == "Usage: /why INCIDENT (an id from /recent)"
    assert await bot.say("/why nope", chat=OPERATOR) == "No incident 'nope'. See /recent."


async def test_fp_marks_a_false_positive_and_edits_its_alerts(
    bot: ChatBot, api: FakeBotApi, clock: FakeClock
) -> None:
    await bot.say("/start")
    await bot.say("/start", chat=OTHER, language="en")
    await bot.post(KRASNODAR)
    await bot.deliverer.drain()
    [incident] = await bot.incident_ids()
    before = {chat: api.messages(chat)[-1] for chat in (USER, OTHER)}
    assert "Ложная тревога" not in before[USER].text

    assert await bot.say(f"/fp {incident} учения, не атака", chat=OPERATOR) == (
        f"{incident} marked a false positive. Its alerts are being edited to say so."
    )
    assert await bot.query("SELECT incident_id, user_id, note FROM false_positives") == [
        (incident, OPERATOR, "учения, не атака")
    ]
    await bot.deliverer.drain()
    for chat, words in ((USER, "Ложная тревога"), (OTHER, "False alarm")):
        [alert] = [m for m in api.messages(chat) if m.message_id == before[chat].message_id]
        assert words in alert.text and alert.edits == [before[chat].text]
    assert len(api.messages(USER)) == 2  # edited, not sent again

    assert await bot.say(f"/fp {incident}", chat=OPERATOR) == (
        f"{incident} is already marked a false positive."
    )
    why = await bot.say(f"/why {incident}", chat=OPERATOR)
    assert why.endswith(
        f"Marked a false positive by {OPERATOR} at 03-04 02:30 UTC: учения, не атака"
    )
    assert (await bot.say("/recent", chat=OPERATOR)).endswith("active · FALSE POSITIVE")
    assert [(a.command, a.args, a.result) for a in await bot.audit()][0] == (
        "fp",
        f"{incident} учения, не атака",
        "ok",
    )


async def test_fp_of_an_incident_nobody_was_alerted_to(bot: ChatBot) -> None:
    await bot.say("/pause", chat=OPERATOR)
    await bot.post(KRASNODAR)
    [incident] = await bot.incident_ids()
    assert await bot.say(f"/fp {incident}", chat=OPERATOR) == (
        f"{incident} marked a false positive. No alert was sent for it."
    )
    assert await bot.query("SELECT note FROM false_positives") == [("",)]
    assert await bot.say("/fp", chat=OPERATOR) == "Usage: /fp INCIDENT (an id from /recent)"
    assert await bot.say("/fp nope note", chat=OPERATOR) == "No incident 'nope'. See /recent."
    assert [a.result for a in await bot.audit()] == ["ok", "ok", "bad_input", "bad_input"]


async def test_status_does_not_present_a_false_positive_as_an_event(bot: ChatBot) -> None:
    await bot.say("/start")
    await bot.post(KRASNODAR)
    [incident] = await bot.incident_ids()
    await bot.say(f"/fp {incident}", chat=OPERATOR)
    status = await bot.say("/status")
    assert KRASNODAR_STATUS not in status.splitlines()


async def test_why_shows_a_false_positive_note_with_markup_characters(bot: ChatBot) -> None:
    await bot.post(KRASNODAR)
    [incident] = await bot.incident_ids()
    await bot.say(f"/fp {incident} учения & проверка <ПВО>", chat=OPERATOR)
    [why] = await bot.ask(f"/why {incident}", chat=OPERATOR)
    assert why.endswith(": учения & проверка <ПВО>")


async def test_testalert_sends_the_operator_a_sample_alert(bot: ChatBot) -> None:
    sample = await bot.say("/testalert", chat=OPERATOR)
    assert sample.splitlines()[:3] == [
        "🧪 TEST",
        "🛩🛡 Беспилотники (до 3), работа ПВО",
        "📍 Краснодарский край",
    ]
    assert "«ТЕСТ: это пробное оповещение skywatch, а не настоящее событие.»" in sample
    await bot.say("/start", chat=OPERATOR)
    await bot.say("/lang en", chat=OPERATOR)
    assert "Krasnodar Krai" in await bot.say("/testalert", chat=OPERATOR)
    assert await bot.query("SELECT count(*) FROM outbox") == [(0,)]  # nobody else got it


# --- bad input -----------------------------------------------------------------------------


async def test_unknown_commands_and_plain_text(bot: ChatBot) -> None:
    assert await bot.say("/foo") == UNKNOWN
    assert await bot.say("/foo bar baz", language="en") == "Unknown command. Commands: /help"
    assert await bot.say("/") == UNKNOWN
    assert await bot.say("привет") == "Я понимаю только команды. Список: /help"
    assert await bot.ask("привет всем", chat=GROUP, user=OTHER) == []  # groups: not to us
    assert await bot.ask("   ") == []  # nothing to answer
    assert await bot.ask("", chat=USER) == []


async def test_over_long_input_is_refused_unread(bot: ChatBot) -> None:
    assert await bot.say("/start " + "x" * 1000) == "Слишком длинное сообщение."
    assert await bot.subscriber() is None
    # In the chat's language, not in operators' English: the command is not read at all.
    too_long = await bot.say("/addchannel @kuban_news" + " " * 990, chat=OPERATOR)
    assert too_long == "Слишком длинное сообщение."
    assert await bot.audit() == []
    # At the limit it is read (and trailing space dropped).
    assert await bot.say("/start" + " " * 994) == STARTED
    long_name = "я" * 990
    assert await bot.say(f"/watch {long_name}", chat=OPERATOR) == (
        f"/watch: unknown region '{long_name}' (use an ISO 3166-2 code such as RU-KDA)"
    )
    [entry] = await bot.audit()
    assert entry.args == long_name[:500] and entry.detail.startswith("/watch: unknown region")


async def test_commands_that_take_no_arguments_ignore_them(bot: ChatBot) -> None:
    assert await bot.say("/help me please") == HELP_RU
    assert await bot.say("/status now") == NO_EVENTS.format("все наблюдаемые")
    assert (await bot.say("/stats today", chat=OPERATOR)).startswith("Last 24 hours:")
    assert (await bot.say("/watched all", chat=OPERATOR)).startswith("Watched regions (2):")
    assert await bot.say("/pause now", chat=OPERATOR) == PAUSED
    [entry, *_] = [a for a in await bot.audit() if a.command == "pause"]
    assert entry.args == "now"


async def test_odd_unicode_is_normalised(bot: ChatBot) -> None:
    assert await bot.say("/st\u200bart") == STARTED  # a zero-width space inside
    assert await bot.say("\uff0flang en") == "Alert language: English."  # a full-width slash
    assert await bot.say("/\uff2c\uff21\uff2e\uff27 uk") == "Мова сповіщень: українська."
    assert await bot.say("\u202e/lang\u00a0ru") == "Язык оповещений: русский."  # RTL mark, NBSP
    assert await bot.say("/he\x00lp\u2060") == HELP_RU  # NUL and a word joiner
    assert (await bot.say("/mute \uff12\uff48")).startswith("Оповещения выключены до 04.03 07:30")
    assert await bot.say("/lang e\u0301n") == "Выберите язык: /lang ru, /lang uk или /lang en."
    assert await bot.say("/lang 🇬🇧") == "Выберите язык: /lang ru, /lang uk или /lang en."
    assert await bot.say("/lang <b>en</b> &amp;") == (
        "Выберите язык: /lang ru, /lang uk или /lang en."
    )
    assert await bot.say("/\U0001f600") == UNKNOWN
    assert await bot.say("/watch\nRostov Oblast", chat=OPERATOR) == (
        "Already watching RU-ROS Rostov Oblast."
    )


async def test_commands_addressed_to_another_bot_are_ignored(bot: ChatBot) -> None:
    assert await bot.ask("/start@otherbot") == []  # in a private chat too
    assert await bot.ask("/start@otherbot", chat=GROUP, user=OTHER) == []
    assert await bot.ask("/stats@otherbot", chat=GROUP, user=OPERATOR) == []
    assert await bot.subscriber(GROUP) is None and await bot.subscriber() is None
    assert await bot.say(f"/start@{BOT_USERNAME}", chat=GROUP, user=OTHER) == STARTED
    assert await bot.say("/status@SkyWatch_Test_Bot", chat=GROUP, user=OTHER) == (
        NO_EVENTS.format("все наблюдаемые")
    )
    assert await bot.say(f"/watch@{BOT_USERNAME} RU-BEL", chat=OPERATOR, user=OPERATOR) == (
        "Now watching RU-BEL Belgorod Oblast."
    )
    # Operators' commands are for a private chat: their output is not for a whole group.
    assert await bot.say(f"/stats@{BOT_USERNAME}", chat=GROUP, user=OPERATOR) == (
        "Operator commands work only in a private chat with the bot."
    )
    assert [(a.command, a.result) for a in await bot.audit()] == [
        ("watch", "ok"),
        ("stats", "refused"),
    ]


async def test_edited_commands_are_ignored(bot: ChatBot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="handlers.router")
    await bot.say("/start")
    bot.edit("/stop")
    bot.edit("/pause", chat=OPERATOR)
    await bot.settle()
    subscriber = await bot.subscriber()
    assert subscriber is not None and subscriber.active
    assert len(bot.texts()) == 1 and bot.texts(OPERATOR) == []
    assert not bot.notifier.paused and await bot.audit() == []
    assert f"edited command ignored (chat {USER}, user {USER})" in caplog.messages


async def test_a_user_who_floods_commands_is_rate_limited(bot: ChatBot) -> None:
    bot.tick = 0.0  # every command in the same instant
    for _ in range(12):
        assert await bot.say("/status") == NO_EVENTS.format("все наблюдаемые")
    assert await bot.say("/status") == "Слишком много команд подряд. Подождите минуту."
    assert await bot.ask("/status") == []  # warned once, then ignored
    assert await bot.ask("/start") == []
    assert await bot.subscriber() is None
    # Others are not held back.
    assert await bot.say("/status", chat=OTHER) == NO_EVENTS.format("все наблюдаемые")
    bot.ticks += 61  # a minute later
    assert await bot.say("/start") == STARTED


async def test_button_presses_count_towards_the_flood_limit(bot: ChatBot, api: FakeBotApi) -> None:
    await bot.say("/start")
    await bot.say("/regions")
    board = api.messages(USER)[-1]
    bot.tick = 0.0
    pressed = [bot.press("rg:t:RU-ROS", board.message_id) for _ in range(14)]
    await bot.settle()
    # Every press is answered (no spinner left), but only the first ones act.
    assert all(len(answers(api, callback_id)) == 1 for callback_id in pressed)
    assert len(api.calls("editMessageText")) == 10  # 2 commands + 10 presses = 12


async def test_long_group_chatter_is_not_answered(bot: ChatBot) -> None:
    assert await bot.ask("x" * 1500, chat=GROUP, user=OTHER) == []
    assert await bot.ask("/start@otherbot " + "x" * 1500, chat=GROUP, user=OTHER) == []


async def test_a_user_flooding_over_long_messages_is_rate_limited_too(bot: ChatBot) -> None:
    bot.tick = 0.0
    for _ in range(30):
        bot.send("x" * 1500)
    await bot.settle()
    assert len(bot.texts()) <= 13  # as for commands: 12, then one warning


async def test_a_user_flooding_plain_text_is_rate_limited(bot: ChatBot) -> None:
    bot.tick = 0.0
    for n in range(30):
        bot.send(f"spam {n}")
    await bot.settle()
    assert bot.texts() == ["Я понимаю только команды. Список: /help"] * 12 + [
        "Слишком много команд подряд. Подождите минуту."
    ]
