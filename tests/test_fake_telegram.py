"""The fake Telegram: a real TelegramClient over it behaves as over Telegram's servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from telethon import TelegramClient, errors, events, functions, types, utils
from telethon.sessions import MemorySession, StringSession

from tests.conftest import FakeClock
from tests.fakes import telegram as fake_module
from tests.fakes.telegram import FakeTelegram, shorten_telethon_delays

CHANNEL = 1001  # the user is a member
OTHER = 1002  # the user has not joined
CHANNEL_NAME = "kyiv_alerts"
OTHER_NAME = "lviv_alerts"
MARKED = utils.get_peer_id(types.PeerChannel(CHANNEL))  # -1000000001001, as events give it
EVENT_TIMEOUT = 2.0  # seconds; events normally arrive within milliseconds
POLL = 0.001

GetHistory = functions.messages.GetHistoryRequest
GetChannelDifference = functions.updates.GetChannelDifferenceRequest
JoinChannel = functions.channels.JoinChannelRequest
MakeClient = Callable[..., TelegramClient]


class Inbox:
    """Collect the events one event builder gives a client, in arrival order."""

    def __init__(self, client: TelegramClient, builder: Any) -> None:
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        client.add_event_handler(self._on_event, builder)

    async def _on_event(self, event: Any) -> None:
        self.events.put_nowait(event)

    async def next(self) -> Any:
        """Return the next event, failing the test if none comes."""
        return await asyncio.wait_for(self.events.get(), EVENT_TIMEOUT)

    def empty(self) -> bool:
        """Return True if no event is waiting."""
        return self.events.empty()


async def until(condition: Callable[[], object]) -> None:
    """Wait until a condition holds (the client works in its own tasks)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + EVENT_TIMEOUT
    while not condition():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(POLL)


@pytest.fixture(autouse=True)
def fast_telethon(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorten Telethon's 0.5 s waits for gaps and albums."""
    shorten_telethon_delays(monkeypatch)


@pytest.fixture
def telegram(clock: FakeClock) -> FakeTelegram:
    """Return a Telegram with a channel the user follows and one it does not."""
    fake = FakeTelegram(clock=clock)
    fake.add_channel(CHANNEL, CHANNEL_NAME, "Kyiv alerts", member=True)
    fake.add_channel(OTHER, OTHER_NAME, "Lviv alerts")
    return fake


@pytest.fixture
async def make_client(telegram: FakeTelegram) -> AsyncIterator[MakeClient]:
    """Return a maker of clients over the fake; every one is disconnected at the end."""
    made: list[TelegramClient] = []

    def make(session: Any = None, **kwargs: Any) -> TelegramClient:
        client = telegram.client(session, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.disconnect()


@pytest.fixture
async def client(make_client: MakeClient) -> TelegramClient:
    """Return a connected client that raises flood waits instead of sleeping."""
    connected = make_client(flood_sleep_threshold=0)
    await connected.connect()
    return connected


async def history(client: TelegramClient, channel: Any, **params: Any) -> list[int]:
    """Call messages.getHistory directly; return the ids it answers, in its order."""
    request = GetHistory(
        peer=channel,
        offset_id=params.get("offset_id", 0),
        offset_date=params.get("offset_date"),
        add_offset=params.get("add_offset", 0),
        limit=params.get("limit", 5),
        max_id=params.get("max_id", 0),
        min_id=params.get("min_id", 0),
        hash=0,
    )
    result = await client(request)
    return [m.id for m in result.messages]


# --- connecting and entities -----------------------------------------------------------------


async def test_connect_logs_in_without_network(
    telegram: FakeTelegram, client: TelegramClient
) -> None:
    assert client.is_connected()
    assert await client.is_user_authorized()
    me = await client.get_me()
    assert me.id == 777000
    assert me.is_self
    # The init request arrives wrapped in InvokeWithLayer(InitConnection(...)); kept unwrapped.
    assert isinstance(telegram.requests[0], functions.help.GetConfigRequest)
    assert telegram.requests_of(functions.updates.GetStateRequest)


async def test_get_entity_by_username_then_by_id(
    telegram: FakeTelegram, client: TelegramClient
) -> None:
    channel = await client.get_entity("@Lviv_Alerts")  # usernames are case-insensitive
    assert isinstance(channel, types.Channel)
    assert (channel.id, channel.username, channel.title) == (OTHER, OTHER_NAME, "Lviv alerts")
    assert channel.broadcast
    assert channel.left  # not joined
    for ref in (OTHER, utils.get_peer_id(channel), types.PeerChannel(OTHER)):
        again = await client.get_entity(ref)  # from the session's cache, checked by Telegram
        assert again.id == OTHER
    assert len(telegram.requests_of(functions.contacts.ResolveUsernameRequest)) == 1
    asked = telegram.requests_of(functions.channels.GetChannelsRequest)
    assert asked[0].id == [types.InputChannel(OTHER, channel.access_hash)]


async def test_unknown_or_invalid_username(client: TelegramClient) -> None:
    with pytest.raises(ValueError, match="nobody_here") as caught:
        await client.get_entity("@nobody_here")
    assert isinstance(caught.value.__cause__, errors.UsernameNotOccupiedError)
    with pytest.raises(errors.UsernameNotOccupiedError):
        await client(functions.contacts.ResolveUsernameRequest("nobody_here"))
    with pytest.raises(errors.UsernameInvalidError):
        await client(functions.contacts.ResolveUsernameRequest("no"))


async def test_an_id_never_seen_cannot_be_resolved(
    telegram: FakeTelegram, client: TelegramClient
) -> None:
    # Telethon tries access_hash 0, which Telegram refuses to users (CHANNEL_INVALID).
    with pytest.raises(ValueError, match="Could not find the input entity"):
        await client.get_entity(types.PeerChannel(OTHER))
    with pytest.raises(errors.ChannelInvalidError):
        await client(functions.channels.GetChannelsRequest([types.InputChannel(OTHER, 1)]))


async def test_join_marks_the_user_a_member(
    telegram: FakeTelegram, client: TelegramClient
) -> None:
    channel = await client.get_entity(f"@{OTHER_NAME}")
    result = await client(JoinChannel(channel))
    assert isinstance(result, types.Updates)
    assert [c.left for c in result.chats] == [False]
    assert not (await client.get_entity(OTHER)).left
    assert not telegram.channel(OTHER).left
    full = await client(functions.channels.GetFullChannelRequest(channel))
    assert full.full_chat.id == OTHER


# --- live updates ------------------------------------------------------------------------------


async def test_new_post_reaches_a_member_only(
    telegram: FakeTelegram, client: TelegramClient
) -> None:
    inbox = Inbox(client, events.NewMessage)
    telegram.publish(OTHER, "not a member: never pushed")
    message_id = telegram.publish(CHANNEL, "Shahed drones over Kyiv")
    event = await inbox.next()
    assert (event.chat_id, event.id, event.raw_text) == (
        MARKED,
        message_id,
        "Shahed drones over Kyiv",
    )
    assert event.is_channel
    assert event.message.post
    assert inbox.empty()
    assert len(telegram.pushed) == 1
    assert telegram.pushed[0].chats[0].id == CHANNEL


async def test_edit_and_reaction_are_message_edits(
    telegram: FakeTelegram, client: TelegramClient, clock: FakeClock
) -> None:
    new = Inbox(client, events.NewMessage)
    edited = Inbox(client, events.MessageEdited)
    message_id = telegram.publish(CHANNEL, "Explosions in Kyiv")
    assert (await new.next()).id == message_id
    clock.now += timedelta(minutes=2)
    telegram.edit(CHANNEL, message_id, "Explosions in Kyiv: air defence at work")
    edit = await edited.next()
    assert (edit.id, edit.raw_text) == (message_id, "Explosions in Kyiv: air defence at work")
    assert edit.message.edit_date == clock.now
    telegram.react(CHANNEL, message_id)
    reaction = await edited.next()
    assert reaction.raw_text == edit.raw_text
    assert reaction.message.edit_date == edit.message.edit_date
    assert reaction.message.reactions.results[0].count == 1
    assert new.empty()


async def test_an_album_is_one_album_event(telegram: FakeTelegram, client: TelegramClient) -> None:
    albums = Inbox(client, events.Album)
    parts = Inbox(client, events.NewMessage)
    ids = telegram.publish_album(CHANNEL, "Debris in Obolon", 3, caption_index=1)
    event = await albums.next()
    assert [m.id for m in event.messages] == ids
    assert event.text == "Debris in Obolon"
    assert all(m.photo is not None for m in event.messages)
    seen = [await parts.next() for _ in ids]
    assert [e.id for e in seen] == ids
    assert {e.message.grouped_id for e in seen} == {event.grouped_id}
    assert len(telegram.pushed) == 1  # one Updates, as Telegram sends an album
    assert albums.empty()


async def test_offline_posts_are_not_pushed_but_are_in_the_history(
    telegram: FakeTelegram, client: TelegramClient
) -> None:
    inbox = Inbox(client, events.NewMessage)
    first = telegram.publish(CHANNEL, "first")
    assert (await inbox.next()).id == first
    telegram.offline = True
    telegram.publish(CHANNEL, "missed one")
    telegram.publish(CHANNEL, "missed two")
    assert len(telegram.pushed) == 1
    telegram.offline = False
    await client.disconnect()
    await client.connect()
    found = client.iter_messages(MARKED, min_id=first, reverse=True, wait_time=0)
    assert [m.raw_text async for m in found] == ["missed one", "missed two"]
    assert inbox.empty()


async def test_a_pts_gap_is_filled_by_get_channel_difference(
    telegram: FakeTelegram, client: TelegramClient
) -> None:
    inbox = Inbox(client, events.NewMessage)
    telegram.publish(CHANNEL, "one")  # the channel's pts: 1 at creation, 2 now
    assert (await inbox.next()).raw_text == "one"
    telegram.offline = True
    telegram.publish(CHANNEL, "two")
    telegram.publish(CHANNEL, "three")
    telegram.offline = False
    telegram.publish(CHANNEL, "four")  # pts 5 after 2: Telethon sees the gap
    assert [(await inbox.next()).raw_text for _ in range(3)] == ["two", "three", "four"]
    assert [r.pts for r in telegram.requests_of(GetChannelDifference)] == [2]


async def test_a_long_gap_is_fetched_in_slices(
    telegram: FakeTelegram, client: TelegramClient
) -> None:
    inbox = Inbox(client, events.NewMessage)
    telegram.publish(CHANNEL, "live")
    await inbox.next()
    telegram.offline = True
    for n in range(150):
        telegram.publish(CHANNEL, f"missed {n}")
    telegram.offline = False
    telegram.publish(CHANNEL, "live again")
    texts = [(await inbox.next()).raw_text for _ in range(151)]
    assert texts == [f"missed {n}" for n in range(150)] + ["live again"]
    # Telethon asks for 100 at a time; the first answer is not final.
    assert [r.pts for r in telegram.requests_of(GetChannelDifference)] == [2, 102]


async def test_a_gap_too_long_is_not_filled(
    telegram: FakeTelegram, client: TelegramClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake_module, "CHANNEL_UPDATES_KEPT", 5)
    inbox = Inbox(client, events.NewMessage)
    telegram.publish(CHANNEL, "live")
    await inbox.next()
    telegram.offline = True
    for n in range(10):
        telegram.publish(CHANNEL, f"lost {n}")
    telegram.offline = False
    telegram.publish(CHANNEL, "gap")  # channelDifferenceTooLong: Telethon just moves on
    await until(lambda: telegram.requests_of(GetChannelDifference))
    telegram.publish(CHANNEL, "after")
    assert (await inbox.next()).raw_text == "after"
    assert inbox.empty()


async def test_no_pushes_without_updates(telegram: FakeTelegram, make_client: MakeClient) -> None:
    client = make_client(receive_updates=False)
    await client.connect()
    inbox = Inbox(client, events.NewMessage)
    telegram.publish(CHANNEL, "unseen")
    assert telegram.pushed == []
    await client.set_receive_updates(True)  # a request without InvokeWithoutUpdates
    telegram.publish(CHANNEL, "seen")
    assert (await inbox.next()).raw_text == "seen"


# --- history -----------------------------------------------------------------------------------


async def test_iter_messages_after_a_marker_both_ways(
    telegram: FakeTelegram, client: TelegramClient
) -> None:
    ids = [telegram.publish(CHANNEL, f"post {n}") for n in range(1, 13)]
    assert ids == list(range(1, 13))
    channel = await client.get_entity(f"@{CHANNEL_NAME}")

    async def read(**params: Any) -> list[int]:
        # Without a limit Telethon sleeps 1 s between requests (wait_time) unless told not to.
        return [m.id async for m in client.iter_messages(channel, wait_time=0, **params)]

    assert await read(min_id=4) == list(range(12, 4, -1))
    assert await read(min_id=4, reverse=True) == list(range(5, 13))
    assert await read(min_id=4, limit=3) == [12, 11, 10]
    assert await read(min_id=4, limit=3, reverse=True) == [5, 6, 7]
    assert await read(min_id=12) == []
    assert await read(min_id=12, reverse=True) == []
    assert await read(limit=2) == [12, 11]


async def test_iter_messages_across_many_requests(
    telegram: FakeTelegram, client: TelegramClient
) -> None:
    for n in range(250):
        telegram.publish(CHANNEL, f"post {n}")
    peer = types.InputPeerChannel(CHANNEL, telegram.channel(CHANNEL).access_hash)
    forward = [m.id async for m in client.iter_messages(peer, min_id=20, wait_time=0)]
    assert forward == list(range(250, 20, -1))
    backward = client.iter_messages(peer, min_id=20, reverse=True, wait_time=0)
    assert [m.id async for m in backward] == list(range(21, 251))
    some = [m.id async for m in client.iter_messages(peer, min_id=20, limit=150, reverse=True)]
    assert some == list(range(21, 171))
    assert all(r.limit <= 100 for r in telegram.requests_of(GetHistory))
    assert len(await history(client, peer, limit=500)) == 100  # Telegram's largest page


async def test_get_history_pages_as_telegram_does(
    telegram: FakeTelegram, client: TelegramClient, clock: FakeClock
) -> None:
    start = clock.now
    for n in range(60):
        telegram.publish(CHANNEL, f"post {n + 1}", date=start + timedelta(minutes=n))
    channel = await client.get_entity(f"@{CHANNEL_NAME}")
    assert await history(client, channel) == [60, 59, 58, 57, 56]
    assert await history(client, channel, offset_id=50) == [49, 48, 47, 46, 45]
    assert await history(client, channel, offset_id=50, add_offset=-5) == [54, 53, 52, 51, 50]
    assert await history(client, channel, offset_id=50, add_offset=-3) == [52, 51, 50, 49, 48]
    assert await history(client, channel, offset_id=58, add_offset=-5) == [60, 59, 58]
    assert await history(client, channel, offset_id=1, add_offset=-5) == [5, 4, 3, 2, 1]
    assert await history(client, channel, offset_id=1000) == [60, 59, 58, 57, 56]
    at_50 = start + timedelta(minutes=49)  # the date of post 50
    assert await history(client, channel, offset_date=at_50) == [49, 48, 47, 46, 45]
    # max_id and min_id filter the page after it is cut: they do not move it.
    assert await history(client, channel, max_id=58) == [57, 56]
    assert await history(client, channel, min_id=57) == [60, 59, 58]
    assert await history(client, channel, min_id=10) == [60, 59, 58, 57, 56]
    assert len(await history(client, channel, limit=0)) == 20  # "limit 0": Telegram's default
    result = await client(GetHistory(channel, 0, None, 0, 1, 0, 0, 0))
    assert isinstance(result, types.messages.ChannelMessages)
    assert (result.count, result.pts) == (60, 61)


async def test_get_messages_by_id(
    telegram: FakeTelegram, client: TelegramClient, clock: FakeClock
) -> None:
    first = telegram.publish(CHANNEL, "Missile launch from Crimea")
    second = telegram.publish(
        CHANNEL, "Heading north", reply_to=first, forwarded_from="Air Force", media=True
    )
    channel = await client.get_entity(f"@{CHANNEL_NAME}")
    found = await client.get_messages(channel, ids=[second, 99, first])
    assert [m.id if m else None for m in found] == [second, None, first]
    message = found[0]
    assert message.raw_text == "Heading north"
    assert message.chat_id == MARKED
    assert message.post
    assert message.date == clock.now
    assert message.edit_date is None
    assert message.reply_to.reply_to_msg_id == first
    assert message.fwd_from.from_name == "Air Force"
    assert isinstance(message.media, types.MessageMediaPhoto)
    assert found[2].media is None
    assert (await client.get_messages(channel, ids=first)).raw_text == "Missile launch from Crimea"


# --- failures ----------------------------------------------------------------------------------


async def test_flood_wait_raises_when_not_slept_through(
    telegram: FakeTelegram, client: TelegramClient
) -> None:
    telegram.publish(CHANNEL, "post")
    channel = await client.get_entity(f"@{CHANNEL_NAME}")
    telegram.flood_wait(GetHistory, 30)
    with pytest.raises(errors.FloodWaitError) as caught:
        await client.get_messages(channel, limit=1)
    assert caught.value.seconds == 30
    assert isinstance(caught.value.request, GetHistory)
    # Telethon remembers the wait and refuses the same request early, without sending it.
    with pytest.raises(errors.FloodWaitError):
        await client.get_messages(channel, limit=1)
    assert len(telegram.requests_of(GetHistory)) == 1


async def test_scripted_errors(telegram: FakeTelegram, client: TelegramClient) -> None:
    channel = await client.get_entity(f"@{OTHER_NAME}")
    telegram.fail(JoinChannel, errors.ChannelsTooMuchError(request=None))
    with pytest.raises(errors.ChannelsTooMuchError) as caught:
        await client(JoinChannel(channel))
    assert isinstance(caught.value.request, JoinChannel)
    assert telegram.channel(OTHER).left  # a failed join joins nothing
    await client(JoinChannel(channel))
    assert not telegram.channel(OTHER).left
    telegram.fail(GetHistory, errors.ChannelPrivateError(request=None), times=2)
    for _ in range(2):
        with pytest.raises(errors.ChannelPrivateError):
            await client.get_messages(channel, limit=1)
    assert await client.get_messages(channel, limit=1) == []


async def test_an_unanswered_request_is_named(client: TelegramClient) -> None:
    channel = await client.get_entity(f"@{CHANNEL_NAME}")
    with pytest.raises(NotImplementedError, match="SendMessageRequest"):
        await client(functions.messages.SendMessageRequest(channel, "hello"))


async def test_drop_then_reconnect(telegram: FakeTelegram, client: TelegramClient) -> None:
    inbox = Inbox(client, events.NewMessage)
    channel = await client.get_entity(f"@{CHANNEL_NAME}")
    telegram.publish(CHANNEL, "before")
    assert (await inbox.next()).raw_text == "before"
    telegram.stall(GetHistory)  # a request in flight when the connection goes
    pending = asyncio.ensure_future(client.get_messages(channel, limit=1))
    await until(lambda: telegram.requests_of(GetHistory))
    disconnected = client.disconnected
    telegram.drop()
    with pytest.raises(ConnectionError):
        await pending
    with pytest.raises(ConnectionError):
        await disconnected
    assert not client.is_connected()
    with pytest.raises(ConnectionError):
        await client.get_messages(channel, limit=1)
    telegram.publish(CHANNEL, "while down")  # nobody to push it to
    await client.disconnect()
    await client.connect()
    assert client.is_connected()
    telegram.publish(CHANNEL, "after")
    # The new post's pts shows the gap; Telethon fetches what it missed first.
    assert [(await inbox.next()).raw_text for _ in range(2)] == ["while down", "after"]


async def test_unreachable_and_logged_out(telegram: FakeTelegram, make_client: MakeClient) -> None:
    telegram.reachable = False
    client = make_client()
    with pytest.raises(ConnectionError):
        await client.connect()
    assert not client.is_connected()
    telegram.reachable = True
    telegram.authorized = False
    await client.connect()
    assert not await client.is_user_authorized()
    assert await client.get_me() is None


# --- restarts ----------------------------------------------------------------------------------


async def test_restart_over_the_same_session(
    telegram: FakeTelegram, make_client: MakeClient, tmp_path: Path
) -> None:
    for session in (MemorySession(), str(tmp_path / "watcher.session")):
        first = make_client(session)
        await first.connect()
        await first.get_entity(f"@{CHANNEL_NAME}")
        key = first.session.auth_key.key
        await first.disconnect()
        second = make_client(session)
        await second.connect()
        assert second.session.auth_key.key == key
        assert (await second.get_entity(CHANNEL)).username == CHANNEL_NAME  # cached id
        inbox = Inbox(second, events.NewMessage)
        telegram.publish(CHANNEL, "after the restart")
        assert (await inbox.next()).raw_text == "after the restart"
        await second.disconnect()
    assert len(telegram.requests_of(functions.contacts.ResolveUsernameRequest)) == 2


async def test_a_string_session_keeps_no_entities(
    telegram: FakeTelegram, make_client: MakeClient
) -> None:
    first = make_client(StringSession())
    await first.connect()
    channel = await first.get_entity(f"@{CHANNEL_NAME}")
    saved = first.session.save()
    await first.disconnect()
    second = make_client(StringSession(saved))
    await second.connect()
    assert await second.is_user_authorized()
    with pytest.raises(ValueError, match="Could not find the input entity"):
        await second.get_entity(types.PeerChannel(CHANNEL))
    telegram.publish(CHANNEL, "read by the stored access hash")
    peer = types.InputPeerChannel(CHANNEL, channel.access_hash)
    assert [m.raw_text for m in await second.get_messages(peer, limit=1)] == [
        "read by the stored access hash"
    ]


async def test_attach_a_client_built_elsewhere(telegram: FakeTelegram) -> None:
    client = TelegramClient(
        MemorySession(), 12345, "f" * 32, flood_sleep_threshold=0, auto_reconnect=False
    )
    telegram.attach(client)
    try:
        await client.connect()
        inbox = Inbox(client, events.NewMessage)
        telegram.publish(CHANNEL, "to a client from elsewhere")
        assert (await inbox.next()).raw_text == "to a client from elsewhere"
        with pytest.raises(RuntimeError):
            telegram.attach(client)
    finally:
        await client.disconnect()
