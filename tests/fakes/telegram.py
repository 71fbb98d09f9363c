"""A fake Telegram for a real Telethon client: public channels, their posts, one logged-in user.

Only the network sender is replaced. `client._sender` (normally an `MTProtoSender`) becomes a
`_FakeSender` that answers each TL request as Telegram's servers would and pushes updates into
the client's updates queue, as the real receive loop does. Everything above it is Telethon's own
code: `_call` with its flood-wait handling, the session's entity cache, the update loop with its
`MessageBox` (per-channel pts, gaps, getChannelDifference) and the event builders::

    telegram = FakeTelegram()
    telegram.add_channel(1001, "kyiv_news", "Kyiv news", member=True)
    client = telegram.client(flood_sleep_threshold=0)
    await client.connect()
    client.add_event_handler(handler, events.NewMessage)
    telegram.publish(1001, "Drone over Kyiv")  # the handler gets it: chat_id -1000000001001
    ...
    await client.disconnect()

Everything travels as bytes, as on the wire: each request is serialized and read back (that copy
is what `requests` keeps and what the fake answers), and each result or update is serialized and
parsed by Telethon (a result by the request's own `read_result`). A shape Telegram could not send
fails here, and nothing a client does to the objects it gets can change the fake's state.

Telethon's own pacing stays: it waits 0.5 s before filling a pts gap and before delivering an
album, and iter_messages without a limit sleeps 1 s between requests (wait_time). In tests, call
`shorten_telethon_delays(monkeypatch)` and pass `wait_time=0`.

Requests answered: the connection's init (InvokeWithLayer(InitConnection(help.GetConfig))),
help.GetConfig, users.GetUsers, updates.GetState, updates.GetDifference,
updates.GetChannelDifference, contacts.ResolveUsername, channels.GetChannels,
channels.GetFullChannel, channels.JoinChannel, channels.GetMessages, messages.GetHistory and
Ping. Anything else raises NotImplementedError naming the request.
"""

from __future__ import annotations

import asyncio
import copy
import random
import re
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from telethon import TelegramClient, errors, functions, types, utils
from telethon._updates import messagebox
from telethon.crypto import AuthKey
from telethon.events import album
from telethon.extensions import BinaryReader
from telethon.network import MTProtoSender
from telethon.sessions import MemorySession, Session
from telethon.tl.tlobject import TLObject, TLRequest

__all__ = ["FakeTelegram", "shorten_telethon_delays"]

DEFAULT_SELF_ID = 777000
API_ID = 1
API_HASH = "0" * 32
FIRST_CHANNEL_PTS = 1  # a channel's pts once created; each post, edit or reaction adds one
ACCOUNT_PTS = 1  # no private chats here, so the account's own pts never moves
HISTORY_DEFAULT_LIMIT = 20  # what getHistory returns for limit 0
HISTORY_MAX_LIMIT = 100
CHANNEL_DIFF_MAX_LIMIT = 100_000
# A pts further behind than this gets channelDifferenceTooLong: Telegram keeps about this many
# updates per channel ("usually updates older than latestPts - 100000", its docs say).
CHANNEL_UPDATES_KEPT = 100_000
MESSAGE_LENGTH_MAX = 4096
CAPTION_LENGTH_MAX = 1024
ALBUM_SIZES = range(2, 11)  # a media group has 2 to 10 items
REACTION = "\N{THUMBS UP SIGN}"
DC_ID = 2
DC_IP = "149.154.167.51"
DC_PORT = 443
AUTH_KEY_BYTES = 256
GROUPED_ID_BASE = 13_570_000_000_000_000  # album ids are large 64-bit numbers, as Telegram's
PHOTO_ID_BASE = 5_100_000_000_000_000_000
# Telegram's own rule: a letter first, letters, digits and single underscores, no underscore
# last; 4 to 32 characters (4 only for collectible names, but those exist).
USERNAME_RE = re.compile(r"^[A-Za-z](?:(?!__)[A-Za-z0-9_]){2,30}[A-Za-z0-9]$")
VECTOR = 0x1CB5C415
BOOL_TRUE = 0x997275B5
BOOL_FALSE = 0xBC799737
# Wrappers a client puts around a query; InvokeWithoutUpdates among them, checked apart.
WRAPPERS = (
    functions.InvokeWithLayerRequest,
    functions.InitConnectionRequest,
    functions.InvokeWithoutUpdatesRequest,
    functions.InvokeAfterMsgRequest,
    functions.InvokeAfterMsgsRequest,
)
NO_LOGIN_NEEDED = (functions.help.GetConfigRequest, functions.PingRequest)
CONNECTION_LOST = "Connection to Telegram lost (FakeTelegram.drop)"
CONNECTION_REFUSED = "Connection to Telegram failed 5 time(s) (FakeTelegram.reachable is False)"

RequestType = type[TLRequest]


class _RpcFailure(Exception):
    """An RPC error as Telegram sends it: a code and an UPPER_CASE message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


def _bad_request(message: str) -> _RpcFailure:
    return _RpcFailure(400, message)


class _Stall:
    """The answer to a request Telegram never answers."""


STALL = _Stall()

# What the fake answers: a serialized result, an error for the caller, or nothing at all.
_Answer = bytes | BaseException | _Stall
_Script = Callable[[TLRequest], BaseException | _Stall]


@dataclass(frozen=True, slots=True)
class _Event:
    """One step of a channel's pts: a new message, or an edit (a reaction is one too)."""

    pts: int
    message_id: int
    new: bool


@dataclass
class _Channel:
    """A broadcast channel as the server keeps it."""

    id: int
    access_hash: int
    username: str | None
    title: str
    member: bool
    date: datetime
    pts: int = FIRST_CHANNEL_PTS
    last_id: int = 0
    messages: dict[int, types.Message] = field(default_factory=dict)
    events: list[_Event] = field(default_factory=list)

    def as_tl(self) -> types.Channel:
        """Return the Channel object Telegram sends the logged-in user."""
        return types.Channel(
            id=self.id,
            title=self.title,
            photo=types.ChatPhotoEmpty(),
            date=self.date,
            broadcast=True,
            left=not self.member,
            access_hash=self.access_hash,
            username=self.username,
        )

    @property
    def peer(self) -> types.PeerChannel:
        """Return the channel's Peer."""
        return types.PeerChannel(self.id)

    def step(self, message_id: int, *, new: bool) -> int:
        """Advance the channel's pts by one for a message or an edit; return the new pts."""
        self.pts += 1
        self.events.append(_Event(self.pts, message_id, new))
        return self.pts


def _hash_for(kind: str, entity_id: int) -> int:
    """Return a fixed random access hash, the same for an entity in every FakeTelegram."""
    return random.Random(f"{kind}:{entity_id}").getrandbits(63)


def _serialize(value: Any) -> bytes:
    """Return the bytes Telegram sends for a result: a TL object, a vector of them, a Bool."""
    if isinstance(value, bool):
        return struct.pack("<I", BOOL_TRUE if value else BOOL_FALSE)
    if isinstance(value, list):
        return struct.pack("<Ii", VECTOR, len(value)) + b"".join(_serialize(v) for v in value)
    if isinstance(value, TLObject):
        return bytes(value)
    raise TypeError(f"FakeTelegram cannot serialize {type(value).__name__}")


def _from_wire(data: bytes) -> Any:
    """Read one TL object back from its bytes."""
    with BinaryReader(data) as reader:
        return reader.tgread_object()


def _unwrap(request: TLRequest) -> tuple[TLRequest, bool]:
    """Return the query inside the connection wrappers, and whether it asked for no updates."""
    without_updates = False
    while isinstance(request, WRAPPERS):
        without_updates |= isinstance(request, functions.InvokeWithoutUpdatesRequest)
        request = request.query
    return request, without_updates


def _rpc_error(code: int, message: str, request: TLRequest) -> BaseException:
    """Return the exception Telethon makes of an RPC error answering `request`."""
    error: BaseException = errors.rpc_message_to_error(types.RpcError(code, message), request)
    return error


def _fresh_error(error: BaseException, request: TLRequest) -> BaseException:
    """Return a new copy of a scripted error, tied to the request as Telethon ties its own."""
    if isinstance(error, errors.RPCError):
        rebuild, args = error.__reduce__()[:2]  # (class, (request, *captures))
        return rebuild(request, *args[1:])  # type: ignore[no-any-return]
    try:
        return copy.copy(error)
    except TypeError:
        return error


def _aware(value: datetime, what: str) -> datetime:
    """Return a date as Telegram stores it: UTC, whole seconds; refuse a naive one."""
    if value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware, got {value!r}")
    return value.astimezone(UTC).replace(microsecond=0)


def shorten_telethon_delays(monkeypatch: pytest.MonkeyPatch, seconds: float = 0.01) -> None:
    """Shorten Telethon's fixed 0.5 s waits (a pts gap's grace, an album's assembly) for tests."""
    monkeypatch.setattr(messagebox, "POSSIBLE_GAP_TIMEOUT", seconds)
    monkeypatch.setattr(album, "_HACK_DELAY", seconds)


class _FakeSender:
    """Stand in for Telethon's MTProtoSender: requests go to a FakeTelegram, updates come back.

    Has what TelegramClient uses of a sender: connect(connection), disconnect(),
    is_connected(), send(request, ordered), disconnected, auth_key, _connection,
    _transport_connected() and _keepalive_ping(ping_id).
    """

    def __init__(
        self, telegram: FakeTelegram, updates_queue: asyncio.Queue[Any], auth_key: Any
    ) -> None:
        self._telegram = telegram
        self._updates_queue = updates_queue  # the name MTProtoSender._store_own_updates uses
        self.auth_key = auth_key or AuthKey(None)
        self._connection: Any = None
        self._user_connected = False
        self._disconnected_future: asyncio.Future[None] | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        # Telegram subscribes a connection to updates with its first query not wrapped in
        # InvokeWithoutUpdates; a new connection starts unsubscribed.
        self.subscribed = False

    def __repr__(self) -> str:
        state = "connected" if self._user_connected else "disconnected"
        return f"<_FakeSender {state}, {len(self._pending)} pending>"

    async def connect(self, connection: Any) -> bool:
        """Connect; return False if already connected, as MTProtoSender does."""
        if self._user_connected:
            return False
        if not self._telegram.reachable:
            raise ConnectionError(CONNECTION_REFUSED)
        if not self.auth_key:
            # A first connection makes an authorization key, as the real handshake would.
            self.auth_key.key = random.randbytes(AUTH_KEY_BYTES)
        self._connection = connection
        self._user_connected = True
        self.subscribed = False
        if self._disconnected.done():
            self._disconnected_future = asyncio.get_running_loop().create_future()
        return True

    async def disconnect(self) -> None:
        """Disconnect on the user's request: pending requests are cancelled."""
        if self._connection is None:
            return  # already disconnected, by the user or by a lost connection
        self._close(None)

    def lose_connection(self, error: BaseException) -> None:
        """End the connection as a failed reconnection does: pending requests get `error`."""
        if self._connection is not None:
            self._close(error)

    def _close(self, error: BaseException | None) -> None:
        self._user_connected = False
        self._connection = None
        self.subscribed = False
        for future in self._pending:
            if future.done():
                continue
            if error is None:
                future.cancel()
            else:
                future.set_exception(error)
        self._pending.clear()
        if not self._disconnected.done():
            if error is None:
                self._disconnected.set_result(None)
            else:
                self._disconnected.set_exception(error)

    def is_connected(self) -> bool:
        """Return True between connect() and a disconnection."""
        return self._user_connected

    def _transport_connected(self) -> bool:
        return self._user_connected and self._connection is not None

    def _keepalive_ping(self, ping_id: int) -> None:
        """Send a keep-alive ping; its pong is of no interest to anyone."""
        if not self._user_connected:
            raise ConnectionError("Cannot send requests while disconnected")
        self._telegram._answer(self, functions.PingRequest(ping_id))

    @property
    def disconnected(self) -> asyncio.Future[None]:
        """Return a future that completes when the connection ends (shielded, as the real one)."""
        return asyncio.shield(self._disconnected)

    @property
    def _disconnected(self) -> asyncio.Future[None]:
        if self._disconnected_future is None:
            self._disconnected_future = asyncio.get_running_loop().create_future()
            self._disconnected_future.set_result(None)
        return self._disconnected_future

    def send(self, request: Any, ordered: bool = False) -> Any:
        """Send a request (or a list of them); return the future of its result (or a list)."""
        if not self._user_connected:
            raise ConnectionError("Cannot send requests while disconnected")
        if utils.is_list_like(request):
            return [self._send_one(r) for r in request]
        return self._send_one(request)

    def _send_one(self, request: TLRequest) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        answer = self._telegram._answer(self, request)  # the server's state at arrival
        self._pending.add(future)
        if not isinstance(answer, _Stall):
            # The answer arrives later, as from the network, never inside send().
            loop.call_soon(self._deliver, future, request, answer)
        return future

    def _deliver(self, future: asyncio.Future[Any], request: TLRequest, answer: _Answer) -> None:
        self._pending.discard(future)
        if future.done():
            return  # cancelled by the caller, or failed when the connection closed
        if isinstance(answer, BaseException):
            future.set_exception(answer)
            return
        assert isinstance(answer, bytes)
        with BinaryReader(answer) as reader:
            result = request.read_result(reader)
        # The real sender queues Updates a request returns (a join's, say) so the MessageBox
        # sees their pts without dispatching them; reuse that very code.
        MTProtoSender._store_own_updates(self, result)
        future.set_result(result)

    def push(self, data: bytes) -> None:
        """Receive serialized Updates, as the receive loop hands them to the client."""
        self._updates_queue.put_nowait(_from_wire(data))


class FakeTelegram:
    """An in-memory Telegram: public channels with their messages, one logged-in user.

    Script it from the test: `add_channel`, `publish`, `publish_album`, `edit`, `react`;
    failures with `flood_wait`, `fail`, `stall`, `drop`, and the `offline`, `reachable` and
    `authorized` switches. Read back `requests` (every TL request received, unwrapped) and
    `pushed` (every Updates sent to a client).
    """

    def __init__(
        self, *, self_id: int = DEFAULT_SELF_ID, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.self_id = self_id
        self._clock = clock or (lambda: datetime.now(UTC))
        self.offline = False  # while True, posts and edits are stored but pushed to nobody
        self.reachable = True  # while False, connect() fails as with no network
        self.authorized = True  # while False, the session is not logged in
        self.requests: list[TLRequest] = []
        self.pushed: list[types.Updates] = []
        self._channels: dict[int, _Channel] = {}
        self._senders: list[_FakeSender] = []
        self._scripts: dict[RequestType, deque[_Script]] = {}
        self._albums = 0
        self._photos = 0
        self._handlers: dict[RequestType, Callable[[Any], Any]] = {
            functions.help.GetConfigRequest: self._get_config,
            functions.PingRequest: self._ping,
            functions.users.GetUsersRequest: self._get_users,
            functions.updates.GetStateRequest: self._get_state,
            functions.updates.GetDifferenceRequest: self._get_difference,
            functions.updates.GetChannelDifferenceRequest: self._get_channel_difference,
            functions.contacts.ResolveUsernameRequest: self._resolve_username,
            functions.channels.GetChannelsRequest: self._get_channels,
            functions.channels.GetFullChannelRequest: self._get_full_channel,
            functions.channels.JoinChannelRequest: self._join_channel,
            functions.channels.GetMessagesRequest: self._get_channel_messages,
            functions.messages.GetHistoryRequest: self._get_history,
        }

    def __repr__(self) -> str:
        return f"<FakeTelegram {len(self._channels)} channel(s), {len(self.requests)} request(s)>"

    # --- clients -------------------------------------------------------------------------

    def client(self, session: Session | str | None = None, **kwargs: Any) -> TelegramClient:
        """Return a real TelegramClient whose network sender is this fake.

        `session` is what TelegramClient takes (a Session, or a path for a SQLite session);
        None makes a MemorySession. Call again over the same session to restart.
        """
        client = TelegramClient(
            MemorySession() if session is None else session, API_ID, API_HASH, **kwargs
        )
        return self.attach(client)

    def attach(self, client: TelegramClient) -> TelegramClient:
        """Make a TelegramClient built elsewhere talk to this fake; call before connect()."""
        if client.is_connected():
            raise RuntimeError("attach() a client before it connects")
        sender = _FakeSender(self, client._updates_queue, client.session.auth_key)
        client._sender = sender
        self._senders.append(sender)
        return client

    def drop(self, *, error: BaseException | None = None) -> None:
        """Lose every client's connection, as when reconnecting fails.

        Each sender's `disconnected` future completes with `error` (by default a
        ConnectionError), is_connected() turns False and pending requests fail with it; the
        client may then disconnect() and connect() again.
        """
        for sender in self._senders:
            sender.lose_connection(error or ConnectionError(CONNECTION_LOST))

    # --- scripted failures ---------------------------------------------------------------

    def flood_wait(self, request: RequestType, seconds: int, times: int = 1) -> None:
        """Make the next `times` requests of this class fail with FLOOD_WAIT_<seconds>."""
        if seconds < 0:
            raise ValueError(f"seconds must be at least 0, got {seconds}")

        def flood(sent: TLRequest) -> BaseException:
            return _rpc_error(420, f"FLOOD_WAIT_{seconds}", sent)

        self._script(request, flood, times)

    def fail(self, request: RequestType, error: Exception, times: int = 1) -> None:
        """Make the next `times` requests of this class raise `error` (a fresh copy each)."""
        self._script(request, lambda sent: _fresh_error(error, sent), times)

    def stall(self, request: RequestType, times: int = 1) -> None:
        """Leave the next `times` requests of this class unanswered until the connection ends."""
        self._script(request, lambda sent: STALL, times)

    def _script(self, request: RequestType, script: _Script, times: int) -> None:
        if not (isinstance(request, type) and issubclass(request, TLRequest)):
            raise TypeError(f"expected a TL request class, got {request!r}")
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        self._scripts.setdefault(request, deque()).extend([script] * times)

    # --- channels and posts --------------------------------------------------------------

    def add_channel(
        self, channel_id: int, username: str | None, title: str, *, member: bool = False
    ) -> None:
        """Create a public broadcast channel; `member` says whether the user has joined it."""
        if channel_id <= 0:
            raise ValueError(f"channel ids are positive (no -100 prefix), got {channel_id}")
        if channel_id in self._channels:
            raise ValueError(f"channel {channel_id} exists already")
        if username is not None:
            if not USERNAME_RE.match(username):
                raise ValueError(f"{username!r} is not a username Telegram accepts")
            if self._by_username(username) is not None:
                raise ValueError(f"username {username!r} is taken")
        self._channels[channel_id] = _Channel(
            id=channel_id,
            access_hash=_hash_for("channel", channel_id),
            username=username,
            title=title,
            member=member,
            date=self._now(),
        )

    def channel(self, channel_id: int) -> types.Channel:
        """Return the channel as Telegram would send it now."""
        return self._channel(channel_id).as_tl()

    def messages(self, channel_id: int) -> list[types.Message]:
        """Return copies of a channel's messages, oldest first."""
        channel = self._channel(channel_id)
        return [_from_wire(bytes(m)) for _, m in sorted(channel.messages.items())]

    def publish(
        self,
        channel_id: int,
        text: str,
        *,
        date: datetime | None = None,
        reply_to: int | None = None,
        forwarded_from: str | None = None,
        media: bool = False,
        grouped_id: int | None = None,
    ) -> int:
        """Post to a channel and push it to connected members; return the message id."""
        channel = self._channel(channel_id)
        message, pts = self._post(
            channel,
            text,
            date=date,
            reply_to=reply_to,
            forwarded_from=forwarded_from,
            media=media,
            grouped_id=grouped_id,
        )
        self._push(channel, [types.UpdateNewChannelMessage(message, pts, 1)])
        return int(message.id)

    def publish_album(
        self,
        channel_id: int,
        caption: str,
        photos: int = 3,
        *,
        caption_index: int = 0,
        date: datetime | None = None,
    ) -> list[int]:
        """Post an album (photos sharing a grouped_id, one captioned) in one Updates."""
        if photos not in ALBUM_SIZES:
            raise ValueError(f"an album has 2 to 10 items, got {photos}")
        if not 0 <= caption_index < photos:
            raise ValueError(f"caption_index {caption_index} is outside the album")
        channel = self._channel(channel_id)
        self._albums += 1
        grouped_id = GROUPED_ID_BASE + self._albums
        updates = []
        for index in range(photos):
            message, pts = self._post(
                channel,
                caption if index == caption_index else "",
                date=date,
                media=True,
                grouped_id=grouped_id,
            )
            updates.append(types.UpdateNewChannelMessage(message, pts, 1))
        self._push(channel, updates)
        return [int(update.message.id) for update in updates]

    def edit(
        self, channel_id: int, message_id: int, text: str, *, edit_date: datetime | None = None
    ) -> None:
        """Change a post's text and edit_date; push UpdateEditChannelMessage."""
        channel = self._channel(channel_id)
        message = self._message(channel, message_id)
        if text == message.message:
            raise ValueError("MESSAGE_NOT_MODIFIED: the text is the same (see react())")
        self._check_length(text, media=message.media is not None)
        message.message = text
        message.edit_date = self._now() if edit_date is None else _aware(edit_date, "edit_date")
        pts = channel.step(message_id, new=False)
        self._push(channel, [types.UpdateEditChannelMessage(message, pts, 1)])

    def react(self, channel_id: int, message_id: int) -> None:
        """Add a reaction: push UpdateEditChannelMessage with text and edit_date unchanged."""
        channel = self._channel(channel_id)
        message = self._message(channel, message_id)
        count = message.reactions.results[0].count if message.reactions else 0
        message.reactions = types.MessageReactions(
            results=[types.ReactionCount(types.ReactionEmoji(REACTION), count + 1)]
        )
        pts = channel.step(message_id, new=False)
        self._push(channel, [types.UpdateEditChannelMessage(message, pts, 1)])

    def requests_of(self, request: RequestType) -> list[Any]:
        """Return the requests of one class received so far, oldest first."""
        return [r for r in self.requests if isinstance(r, request)]

    # --- the server side -----------------------------------------------------------------

    def _now(self) -> datetime:
        return _aware(self._clock(), "the clock's time")

    def _channel(self, channel_id: int) -> _Channel:
        try:
            return self._channels[channel_id]
        except KeyError:
            raise ValueError(f"no channel {channel_id}: add_channel() it first") from None

    def _message(self, channel: _Channel, message_id: int) -> types.Message:
        try:
            return channel.messages[message_id]
        except KeyError:
            raise ValueError(f"channel {channel.id} has no message {message_id}") from None

    def _by_username(self, username: str) -> _Channel | None:
        wanted = username.lower()
        return next(
            (c for c in self._channels.values() if (c.username or "").lower() == wanted), None
        )

    @staticmethod
    def _check_length(text: str, *, media: bool) -> None:
        limit = CAPTION_LENGTH_MAX if media else MESSAGE_LENGTH_MAX
        if len(text) > limit:
            what = "caption" if media else "message"
            raise ValueError(f"a {what} has at most {limit} characters, got {len(text)}")

    def _post(
        self,
        channel: _Channel,
        text: str,
        *,
        date: datetime | None,
        reply_to: int | None = None,
        forwarded_from: str | None = None,
        media: bool = False,
        grouped_id: int | None = None,
    ) -> tuple[types.Message, int]:
        """Store a new post and step the channel's pts; return the message and its pts."""
        self._check_length(text, media=media)
        if reply_to is not None:
            self._message(channel, reply_to)  # Telegram replies only to a message that exists
        when = self._now() if date is None else _aware(date, "date")
        channel.last_id += 1
        message = types.Message(
            id=channel.last_id,
            peer_id=channel.peer,
            date=when,
            message=text,
            post=True,
            fwd_from=(
                types.MessageFwdHeader(date=when, from_name=forwarded_from)
                if forwarded_from is not None
                else None
            ),
            reply_to=(
                types.MessageReplyHeader(reply_to_msg_id=reply_to)
                if reply_to is not None
                else None
            ),
            media=types.MessageMediaPhoto(photo=self._photo(when)) if media else None,
            views=1,
            forwards=0,
            grouped_id=grouped_id,
        )
        channel.messages[message.id] = message
        return message, channel.step(message.id, new=True)

    def _photo(self, date: datetime) -> types.Photo:
        self._photos += 1
        photo_id = PHOTO_ID_BASE + self._photos
        return types.Photo(
            id=photo_id,
            access_hash=_hash_for("photo", photo_id),
            file_reference=b"\x01" + photo_id.to_bytes(8, "little"),
            date=date,
            sizes=[types.PhotoSize("m", 320, 240, 14_000), types.PhotoSize("x", 800, 600, 61_000)],
            dc_id=DC_ID,
        )

    def _push(self, channel: _Channel, updates: list[Any]) -> None:
        """Send Updates to every connected, subscribed client, unless offline or not a member."""
        if self.offline or not channel.member:
            return
        pushed = types.Updates(
            updates=updates, users=[], chats=[channel.as_tl()], date=self._now(), seq=0
        )
        data = bytes(pushed)
        for sender in self._senders:
            if sender.is_connected() and sender.subscribed:
                self.pushed.append(_from_wire(data))
                sender.push(data)

    def _answer(self, sender: _FakeSender, request: TLRequest) -> _Answer:
        """Receive a request from a client; return its answer, serialized."""
        query, without_updates = _unwrap(_from_wire(bytes(request)))
        self.requests.append(query)
        if not without_updates and not isinstance(query, functions.PingRequest):
            sender.subscribed = True
        scripts = self._scripts.get(type(query))
        if scripts:
            return scripts.popleft()(request)
        handler = self._handlers.get(type(query))
        if handler is None:
            raise NotImplementedError(
                f"FakeTelegram does not answer {type(query).__name__}: add a handler to "
                "tests/fakes/telegram.py if the code under test needs it"
            )
        try:
            if not self.authorized and not isinstance(query, NO_LOGIN_NEEDED):
                raise _RpcFailure(401, "AUTH_KEY_UNREGISTERED")
            return _serialize(handler(query))
        except _RpcFailure as failure:
            return _rpc_error(failure.code, failure.message, request)

    def _input_channel(self, peer: Any) -> _Channel:
        """Return the channel an InputChannel or InputPeerChannel names; check its hash."""
        if not isinstance(peer, types.InputChannel | types.InputPeerChannel):
            if isinstance(peer, types.InputChannelEmpty):
                raise _bad_request("CHANNEL_INVALID")
            raise NotImplementedError(f"FakeTelegram does not take {type(peer).__name__}")
        channel = self._channels.get(peer.channel_id)
        if channel is None or channel.access_hash != peer.access_hash:
            raise _bad_request("CHANNEL_INVALID")
        return channel

    def _self_user(self) -> types.User:
        return types.User(
            id=self.self_id,
            is_self=True,
            access_hash=_hash_for("user", self.self_id),
            first_name="Skywatch",
            last_name="Test",
            username="skywatch_test_user",
            phone="15550000000",
            status=types.UserStatusRecently(),
        )

    def _channel_messages(
        self, channel: _Channel, messages: Sequence[types.TypeMessage], count: int
    ) -> types.messages.ChannelMessages:
        return types.messages.ChannelMessages(
            pts=channel.pts,
            count=count,
            messages=list(messages),
            topics=[],
            chats=[channel.as_tl()],
            users=[],
        )

    # --- request handlers ----------------------------------------------------------------

    def _get_config(self, query: functions.help.GetConfigRequest) -> types.Config:
        now = self._now()
        return types.Config(
            date=now,
            expires=now + timedelta(hours=1),
            test_mode=False,
            this_dc=DC_ID,
            dc_options=[types.DcOption(id=DC_ID, ip_address=DC_IP, port=DC_PORT)],
            dc_txt_domain_name="apv3.stel.com",
            chat_size_max=200,
            megagroup_size_max=200_000,
            forwarded_count_max=100,
            online_update_period_ms=210_000,
            offline_blur_timeout_ms=5_000,
            offline_idle_timeout_ms=30_000,
            online_cloud_timeout_ms=300_000,
            notify_cloud_delay_ms=30_000,
            notify_default_delay_ms=1_500,
            push_chat_period_ms=60_000,
            push_chat_limit=2,
            edit_time_limit=172_800,
            revoke_time_limit=2_147_483_647,
            revoke_pm_time_limit=2_147_483_647,
            rating_e_decay=2_419_200,
            stickers_recent_limit=200,
            channels_read_media_period=604_800,
            call_receive_timeout_ms=20_000,
            call_ring_timeout_ms=90_000,
            call_connect_timeout_ms=30_000,
            call_packet_timeout_ms=10_000,
            me_url_prefix="https://t.me/",
            caption_length_max=CAPTION_LENGTH_MAX,
            message_length_max=MESSAGE_LENGTH_MAX,
            webfile_dc_id=4,
        )

    def _ping(self, query: functions.PingRequest) -> types.Pong:
        return types.Pong(msg_id=0, ping_id=query.ping_id)

    def _get_users(self, query: functions.users.GetUsersRequest) -> list[types.User]:
        # Only the user itself exists here; Telegram leaves out users it cannot give.
        own_hash = _hash_for("user", self.self_id)
        return [
            self._self_user()
            for wanted in query.id
            if isinstance(wanted, types.InputUserSelf)
            or (
                isinstance(wanted, types.InputUser)
                and wanted.user_id == self.self_id
                and wanted.access_hash == own_hash
            )
        ]

    def _get_state(self, query: functions.updates.GetStateRequest) -> types.updates.State:
        return types.updates.State(pts=ACCOUNT_PTS, qts=0, date=self._now(), seq=0, unread_count=0)

    def _get_difference(
        self, query: functions.updates.GetDifferenceRequest
    ) -> types.updates.DifferenceEmpty:
        # No private chats, and channel news is left to getChannelDifference.
        return types.updates.DifferenceEmpty(date=self._now(), seq=0)

    def _get_channel_difference(
        self, query: functions.updates.GetChannelDifferenceRequest
    ) -> types.updates.TypeChannelDifference:
        channel = self._input_channel(query.channel)
        if not isinstance(query.filter, types.ChannelMessagesFilterEmpty):
            raise NotImplementedError(f"FakeTelegram does not filter by {query.filter}")
        if query.pts <= 0:
            raise _bad_request("PERSISTENT_TIMESTAMP_EMPTY")
        if query.pts > channel.pts:
            raise _bad_request("PERSISTENT_TIMESTAMP_INVALID")
        if query.pts == channel.pts:
            return types.updates.ChannelDifferenceEmpty(pts=channel.pts, final=True)
        newest_first = sorted(channel.messages.values(), key=lambda m: m.id, reverse=True)
        if channel.pts - query.pts > CHANNEL_UPDATES_KEPT:
            dialog = types.Dialog(
                peer=channel.peer,
                top_message=channel.last_id,
                read_inbox_max_id=channel.last_id,
                read_outbox_max_id=0,
                unread_count=0,
                unread_mentions_count=0,
                unread_reactions_count=0,
                unread_poll_votes_count=0,
                notify_settings=types.PeerNotifySettings(),
                pts=channel.pts,
            )
            return types.updates.ChannelDifferenceTooLong(
                dialog=dialog,
                messages=newest_first[: min(query.limit, HISTORY_MAX_LIMIT)],
                chats=[channel.as_tl()],
                users=[],
                final=True,
            )
        limit = min(max(query.limit, 1), CHANNEL_DIFF_MAX_LIMIT)
        since = [event for event in channel.events if event.pts > query.pts]
        batch = since[:limit]
        new_ids = sorted({event.message_id for event in batch if event.new})
        edits = {event.message_id: event for event in batch if not event.new}  # the last one
        return types.updates.ChannelDifference(
            pts=batch[-1].pts,
            new_messages=[channel.messages[i] for i in new_ids],
            other_updates=[
                types.UpdateEditChannelMessage(channel.messages[i], event.pts, 1)
                for i, event in sorted(edits.items())
                if i not in new_ids
            ],
            chats=[channel.as_tl()],
            users=[],
            final=len(batch) == len(since),
        )

    def _resolve_username(
        self, query: functions.contacts.ResolveUsernameRequest
    ) -> types.contacts.ResolvedPeer:
        if not USERNAME_RE.match(query.username):
            raise _bad_request("USERNAME_INVALID")
        channel = self._by_username(query.username)
        if channel is None:
            raise _bad_request("USERNAME_NOT_OCCUPIED")
        return types.contacts.ResolvedPeer(peer=channel.peer, chats=[channel.as_tl()], users=[])

    def _get_channels(self, query: functions.channels.GetChannelsRequest) -> types.messages.Chats:
        return types.messages.Chats([self._input_channel(c).as_tl() for c in query.id])

    def _get_full_channel(
        self, query: functions.channels.GetFullChannelRequest
    ) -> types.messages.ChatFull:
        channel = self._input_channel(query.channel)
        full = types.ChannelFull(
            id=channel.id,
            about="",
            read_inbox_max_id=channel.last_id,
            read_outbox_max_id=0,
            unread_count=0,
            chat_photo=types.PhotoEmpty(id=0),
            notify_settings=types.PeerNotifySettings(),
            bot_info=[],
            pts=channel.pts,
            participants_count=1 if channel.member else 0,
        )
        return types.messages.ChatFull(full_chat=full, chats=[channel.as_tl()], users=[])

    def _join_channel(self, query: functions.channels.JoinChannelRequest) -> types.Updates:
        channel = self._input_channel(query.channel)
        joined = not channel.member
        channel.member = True
        return types.Updates(
            updates=[types.UpdateChannel(channel.id)] if joined else [],
            users=[],
            chats=[channel.as_tl()],
            date=self._now(),
            seq=0,
        )

    def _get_channel_messages(
        self, query: functions.channels.GetMessagesRequest
    ) -> types.messages.ChannelMessages:
        channel = self._input_channel(query.channel)
        if not query.id:
            raise _bad_request("MESSAGE_IDS_EMPTY")
        found: list[types.TypeMessage] = []
        for wanted in query.id:
            if not isinstance(wanted, types.InputMessageID):
                raise NotImplementedError(f"FakeTelegram does not take {type(wanted).__name__}")
            message = channel.messages.get(wanted.id)
            found.append(message or types.MessageEmpty(id=wanted.id, peer_id=channel.peer))
        return self._channel_messages(channel, found, len(found))

    def _get_history(
        self, query: functions.messages.GetHistoryRequest
    ) -> types.messages.ChannelMessages:
        if isinstance(query.peer, types.InputPeerEmpty):
            raise _bad_request("PEER_ID_INVALID")
        if not isinstance(query.peer, types.InputPeerChannel):
            raise NotImplementedError(
                f"FakeTelegram has channels only, not {type(query.peer).__name__}"
            )
        channel = self._input_channel(query.peer)
        limit = query.limit if query.limit > 0 else HISTORY_DEFAULT_LIMIT
        limit = min(limit, HISTORY_MAX_LIMIT)
        # As https://core.telegram.org/api/offsets describes: newest first; the window
        # starts after offset_id (or offset_date), moved by add_offset, and is `limit` long;
        # max_id and min_id then filter what the window holds.
        newest_first = sorted(channel.messages.values(), key=lambda m: m.id, reverse=True)
        start = 0
        if query.offset_id:
            start = sum(1 for m in newest_first if m.id >= query.offset_id)
        elif query.offset_date is not None and query.offset_date.timestamp() > 0:
            start = next(
                (i for i, m in enumerate(newest_first) if m.date < query.offset_date),
                len(newest_first),
            )
        start += query.add_offset
        window = newest_first[max(start, 0) : max(start + limit, 0)]
        if query.max_id:
            window = [m for m in window if m.id < query.max_id]
        if query.min_id:
            window = [m for m in window if m.id > query.min_id]
        return self._channel_messages(channel, window, len(newest_first))
