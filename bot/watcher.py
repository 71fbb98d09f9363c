"""The Telethon watcher: follows the channels as a Telegram user and feeds their posts in.

The only module that imports Telethon. It turns Telegram messages into `Post` and hands
them to a sink (the pipeline); it never decides anything about their content.

- **Channels** live in the database (`ChannelRepo`): named in CHANNELS or by an operator,
  each is resolved once (its id, access hash, title and username are stored, so a string
  session without an entity cache can still read it by id) and joined only if the account
  is not a member. A channel that cannot be followed is marked failed with the reason, and
  operators are told; it never stops the others.
- **Live**: new posts, edits and albums (one post per album: the caption's message) of
  followed channels are queued by Telethon's event handlers and processed one at a time, in
  arrival order. An edit that leaves the text as it was (a reaction) is dropped by the
  pipeline, which compares text.
- **Catch-up**: each channel has our own read marker, the newest message id processed. On
  start and after every reconnect, the watcher reads each channel back to its marker with
  `iter_messages(min_id=...)`, at most `max_age` back and `max_posts` posts (the newest),
  and processes what it finds in date order across channels before any queued live post.
  A channel seen for the first time starts at its newest post: history is for `replay`.
  Nothing is processed twice: the pipeline is idempotent on (channel, message id).
- **Blind windows**: the watcher notes every minute that it is caught up. After a restart
  or a lost connection, operators are told how long it was blind and what catch-up found.
- **Faults**: flood waits up to a minute are waited out; a longer one leaves the channel
  for the next sync (every 5 minutes), and while a channel's catch-up is owed its marker
  does not move. A lost connection is reconnected with backoff, then caught up. A post that
  fails to process is retried twice at once, then recorded (`watch_failures`), read again
  and retried at each sync, and given up after MAX_POST_ATTEMPTS with its ids logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import stat
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from telethon import TelegramClient, errors, events, functions, types
from telethon.sessions import StringSession

from bot.channels import WatchedChannel, WatcherHealth
from bot.errors import LoginRequired, SkywatchError
from bot.models import Post
from storage.channels import ChannelRepo, StateRepo
from storage.db import Database
from storage.posts import PostRepo

__all__ = [
    "CatchUp",
    "Watcher",
    "WatcherHealth",
    "login",
    "open_client",
    "post_of",
    "posts_of",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
Sink = Callable[[Sequence[Post]], Awaitable[Sequence[object | None]]]
Notify = Callable[[str], Awaitable[None]]

JOIN_LIMIT = 500  # channels one Telegram account may join
RECONNECT_MIN = 1.0  # seconds before the first reconnect, doubled up to RECONNECT_MAX
RECONNECT_MAX = 300.0
HEARTBEAT = 60.0  # seconds between "caught up and listening" marks
BLIND_NOTICE_AFTER = timedelta(minutes=3)  # a shorter blind window is not worth a message
# Seconds; a longer flood wait is not waited out (it would hold up every live post): the
# channel is left for the next sync.
FLOOD_WAIT_MAX = 60
FLOOD_MARGIN = 1.0  # seconds added to Telegram's flood wait
RESYNC_EVERY = 300.0  # seconds between syncs: pending channels, owed catch-ups, failed posts
CATCHUP_BATCH = 100  # posts per pipeline batch during catch-up
PROCESS_RETRIES = (0.5, 2.0)  # seconds before each retry of a post that failed to process
MAX_POST_ATTEMPTS = 5  # syncs that retry a failed post before it is given up
# An edit of a post never stored (a reaction on an old post, a caption added to a photo)
# is taken as a new post only when the post is at most this old.
EDIT_ADOPT_AGE = timedelta(hours=1)
SEEN_KEY = "watcher.seen_at"
SESSION_MODE = 0o600
DATA_DIR_MODE = 0o700


class FloodWaitTooLong(SkywatchError):
    """Raise when Telegram asks to wait longer than FLOOD_WAIT_MAX seconds."""

    def __init__(self, seconds: int, what: str) -> None:
        self.seconds = seconds
        super().__init__(f"Telegram asks to wait {seconds} s before {what}; will retry later")


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What catch-up found in one channel."""

    channel: WatchedChannel
    fetched: int = 0  # posts with text read back
    recovered: int = 0  # of them, posts not processed before
    beyond: int = 0  # messages older than the bounds, left unread (approximate: ids)
    error: str | None = None


@dataclass(slots=True)
class _Item:
    """A unit of live work: the posts of one message (or album), or an edit."""

    channel_id: int
    message_id: int  # the newest message id it covers (for the read marker)
    posts: list[Post] = field(default_factory=list)
    edit: bool = False


def post_of(message: Any, channel: WatchedChannel | None = None) -> Post | None:
    """Return the Post of a Telethon message (None without text), dates in UTC."""
    text = message.message or ""
    if not text.strip() or not isinstance(message.peer_id, types.PeerChannel):
        return None
    forwarded = None
    header = message.fwd_from
    if header is not None:
        forwarded = header.from_name or _peer_name(message) or "forward"
    reply = message.reply_to
    return Post(
        channel_id=message.peer_id.channel_id,
        id=message.id,
        date=_utc(message.date),
        text=text,
        edit_date=_utc(message.edit_date) if message.edit_date else None,
        forwarded_from=forwarded,
        grouped_id=message.grouped_id,
        reply_to=getattr(reply, "reply_to_msg_id", None),
        channel_username=channel.username if channel else None,
        channel_title=channel.title if channel else None,
    )


def posts_of(messages: Sequence[Any], channel: WatchedChannel | None = None) -> list[Post]:
    """Return the posts of messages in id order: an album is one post, its caption's."""
    posts: list[Post] = []
    albums: set[int] = set()
    ordered = sorted(messages, key=lambda m: m.id)
    for message in ordered:
        if message.grouped_id is None:
            post = post_of(message, channel)
        elif message.grouped_id in albums:
            continue
        else:
            parts = [m for m in ordered if m.grouped_id == message.grouped_id]
            post = _album_post(parts, channel)
            if post is not None:
                albums.add(message.grouped_id)
        if post is not None:
            posts.append(post)
    return posts


def _album_post(parts: Sequence[Any], channel: WatchedChannel | None) -> Post | None:
    """Return an album's post: the first part with a caption (albums have one)."""
    for part in sorted(parts, key=lambda m: m.id):
        post = post_of(part, channel)
        if post is not None:
            return post
    return None


def _peer_name(message: Any) -> str | None:
    forward = getattr(message, "forward", None)
    chat = getattr(forward, "chat", None) if forward is not None else None
    title = getattr(chat, "title", None)
    if title:
        return str(title)
    peer = message.fwd_from.from_id
    if isinstance(peer, types.PeerChannel):
        return f"channel {peer.channel_id}"
    return None


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _describe(err: BaseException, ref: str) -> str:
    """Say in a line why a channel cannot be followed."""
    if isinstance(err, ValueError) and isinstance(err.__cause__, errors.RPCError):
        err = err.__cause__  # get_entity wraps Telegram's answer in a ValueError
    if isinstance(err, errors.UsernameNotOccupiedError):
        return f"{ref}: no channel has this username"
    if isinstance(err, errors.UsernameInvalidError):
        return f"{ref}: not a valid username"
    if isinstance(err, errors.ChannelPrivateError):
        return f"{ref}: the channel is private, or has banned this account"
    if isinstance(err, errors.ChannelInvalidError):
        return f"{ref}: Telegram does not know this channel"
    if isinstance(err, errors.ChannelsTooMuchError):
        return (
            f"{ref}: this account is in too many channels (Telegram allows {JOIN_LIMIT}); "
            "remove some channels or leave others in the Telegram app"
        )
    if isinstance(err, ValueError) and ref.isdigit():
        return (
            f"{ref}: this account has never seen channel id {ref}; "
            "add it once by @username or t.me link"
        )
    return f"{ref}: {err}"


class Watcher:
    """Follow the channels live and catch up on what was missed, feeding posts to a sink."""

    def __init__(
        self,
        client: TelegramClient,
        db: Database,
        sink: Sink,
        *,
        clock: Callable[[], datetime],
        max_age: timedelta,
        max_posts: int,
        notify: Notify | None = None,
        on_channels: Callable[[Sequence[WatchedChannel]], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.db = db
        self.channels = ChannelRepo(db)
        self.state = StateRepo(db)
        self.sink = sink
        self.clock = clock
        self.max_age = max_age
        self.max_posts = max_posts
        self.notify = notify
        self.on_channels = on_channels
        self.sleep = sleep
        self.connected = False
        self.listening = False  # caught up and following live posts
        self.since: datetime | None = None
        self._following: dict[int, WatchedChannel] = {}
        self._owed: set[int] = set()  # channels whose catch-up failed: markers stay put
        self.posts = PostRepo(db)
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._sync_requested = asyncio.Event()
        self._handlers: list[tuple[Callable[[Any], Awaitable[None]], Any]] = [
            (self._on_new, events.NewMessage()),
            (self._on_edit, events.MessageEdited()),
            (self._on_album, events.Album()),
        ]

    # --- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        """Watch until cancelled: connect, sync channels, catch up, follow; reconnect on loss.

        Raise LoginRequired when the session is not logged in (nothing else would help).
        """
        for handler, builder in self._handlers:
            self.client.add_event_handler(handler, builder)
        async with self.db.reading():
            seen = await self.state.get(SEEN_KEY)
        blind_from = datetime.fromtimestamp(float(seen), tz=UTC) if seen else None
        backoff = RECONNECT_MIN
        try:
            while True:
                try:
                    await self._connect()
                    backoff = RECONNECT_MIN
                    await self.sync_channels()
                    caught = await self.catch_up()
                    await self._retry_failed()
                    await self._heartbeat()
                    await self._report_blind(blind_from, caught)
                    blind_from = None
                    await self._follow()
                except LoginRequired:
                    raise
                except (ConnectionError, OSError, EOFError, TimeoutError) as err:
                    log.warning("watcher lost its connection (%s)", err or type(err).__name__)
                except Exception:
                    # The watcher's boundary: whatever went wrong, reconnect and catch up.
                    log.exception("watcher failed; reconnecting")
                if blind_from is None:  # keep the start of an outage still being caught up
                    blind_from = self.clock()
                self._set_connected(False)
                with contextlib.suppress(Exception):
                    await self.client.disconnect()
                log.info("watcher reconnecting in %.0f s", backoff)
                await self.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX)
        finally:
            for handler, builder in self._handlers:
                self.client.remove_event_handler(handler, builder)
            if self.listening:  # only a caught-up watcher may say it saw everything
                with contextlib.suppress(Exception):
                    await self._heartbeat()
            self._set_connected(False)

    def request_sync(self) -> None:
        """Resolve and follow channels added or removed since the last sync, soon."""
        self._sync_requested.set()

    async def health(self) -> WatcherHealth:
        """Return whether the watcher is connected and each channel's state."""
        async with self.db.reading():
            channels = await self.channels.all()
        return WatcherHealth(self.connected, self.listening, self.since, tuple(channels))

    async def _connect(self) -> None:
        await self.client.connect()
        if not await self.client.is_user_authorized():
            raise LoginRequired(
                "the Telegram session is not logged in: run `python -m bot login` "
                "(or set TELEGRAM_SESSION)"
            )
        self._set_connected(True)
        log.info("watcher connected to Telegram")

    def _set_connected(self, connected: bool) -> None:
        self.listening = self.listening and connected
        if connected != self.connected or self.since is None:
            self.since = self.clock()
        self.connected = connected

    # --- channels ----------------------------------------------------------------------

    async def sync_channels(self) -> None:
        """Resolve pending channels (joining where needed) and follow the active ones."""
        self._sync_requested.clear()
        async with self.db.reading():
            pending = await self.channels.all("pending")
        problems = []
        for channel in pending:
            problem = await self._resolve(channel)
            if problem:
                problems.append(problem)
        async with self.db.reading():
            active = await self.channels.all("active")
        self._following = {c.channel_id: c for c in active if c.channel_id is not None}
        if self.on_channels is not None:
            self.on_channels(active)
        log.info("watcher follows %d channel(s)", len(self._following))
        if problems:
            await self._tell("⚠️ Some channels cannot be followed:\n" + "\n".join(problems))

    async def _resolve(self, channel: WatchedChannel) -> str | None:
        """Resolve and join one channel; return a problem to report, or None."""
        ref = channel.ref
        target: Any = ref if ref.startswith("@") else types.PeerChannel(int(ref))
        now = self.clock()
        try:
            entity = await self._flood_safe(
                lambda: self.client.get_entity(target), f"resolving {ref}"
            )
            if not isinstance(entity, types.Channel):
                return await self._fail(ref, f"{ref} is a user or a group chat, not a channel")
            async with self.db.reading():
                other = await self.channels.find(entity.id)
            if other is not None and other.ref != ref:
                return await self._fail(ref, f"{ref} is the same channel as {other.ref}")
            joined = not entity.left
            if not joined:
                async with self.db.reading():
                    count = await self.channels.joined_count()
                if count >= JOIN_LIMIT:
                    return await self._fail(
                        ref,
                        f"{ref}: this account already follows {count} joined channels, "
                        f"Telegram's limit is {JOIN_LIMIT}; remove some first",
                    )
                await self._flood_safe(
                    lambda: self.client(functions.channels.JoinChannelRequest(entity)),
                    f"joining {ref}",
                )
                joined = True
                log.info("joined channel %s (%s)", ref, entity.id)
        except FloodWaitTooLong as err:
            async with self.db.transaction():
                await self.channels.failed(ref, str(err), now, retry=True)
            log.warning("channel %s: %s", ref, err)
            return None
        except (ConnectionError, OSError):
            raise
        except (ValueError, TypeError, errors.RPCError) as err:
            return await self._fail(ref, _describe(err, ref))
        newest: int | None = None
        if channel.last_message_id is None:  # new (or back): start at its newest post
            try:
                latest = await self._flood_safe(
                    lambda: self.client.get_messages(entity, limit=1), f"reading {ref}"
                )
            except FloodWaitTooLong:
                latest = None  # the first catch-up sets the marker instead
            newest = latest[0].id if latest else (None if latest is None else 0)
        async with self.db.transaction():
            await self.channels.resolved(
                ref,
                entity.id,
                entity.access_hash,
                (entity.username or "").lower() or None,
                entity.title,
                joined,
                now,
            )
            if newest is not None:
                await self.channels.advance(entity.id, newest, None, now)
        log.info("channel %s resolved to %s (%s)", ref, entity.id, entity.title)
        return None

    async def _fail(self, ref: str, problem: str) -> str:
        async with self.db.transaction():
            await self.channels.failed(ref, problem, self.clock())
        log.warning("channel cannot be followed: %s", problem)
        return problem

    def _peer(self, channel: WatchedChannel) -> Any:
        assert channel.channel_id is not None
        if channel.access_hash is not None:
            return types.InputPeerChannel(channel.channel_id, channel.access_hash)
        return types.PeerChannel(channel.channel_id)

    # --- catch-up ----------------------------------------------------------------------

    async def catch_up(self, only: set[int] | None = None) -> list[CatchUp]:
        """Read followed channels back to their markers; process the posts in date order.

        A channel whose reading fails is owed a catch-up: until one succeeds (at a later
        sync), live posts do not move its marker, so nothing before them is skipped.
        """
        found: list[tuple[WatchedChannel, list[Post], int, int]] = []
        results: dict[int, CatchUp] = {}
        async with self.db.reading():
            current = {c.channel_id: c for c in await self.channels.all("active")}
        for channel_id in list(self._following):
            channel = current.get(channel_id)
            if channel is None or (only is not None and channel_id not in only):
                continue
            try:
                posts, newest, beyond = await self._read_back(channel)
            except (ConnectionError, OSError):
                raise
            except (FloodWaitTooLong, ValueError, errors.RPCError) as err:
                problem = _describe(err, channel.name)
                log.warning("catch-up of channel %s failed: %s", channel_id, problem)
                await self._record_error(channel_id, problem)
                self._owed.add(channel_id)
                results[channel_id] = CatchUp(channel, error=problem)
                continue
            self._owed.discard(channel_id)
            found.append((channel, posts, newest, beyond))
        everything = sorted(
            (post for _, posts, _, _ in found for post in posts),
            key=lambda p: (p.date, p.channel_id, p.id),
        )
        recovered: dict[int, int] = {}
        for start in range(0, len(everything), CATCHUP_BATCH):
            batch = everything[start : start + CATCHUP_BATCH]
            outcomes = await self._process(batch)
            for post, outcome in zip(batch, outcomes, strict=True):
                if outcome is not None:
                    recovered[post.channel_id] = recovered.get(post.channel_id, 0) + 1
            await self._advance(batch)
        for channel, posts, newest, beyond in found:
            assert channel.channel_id is not None
            # Messages without text move the marker too; a channel read the first time
            # gets one even when empty (0), so that from now on nothing of it is skipped.
            if newest or channel.last_message_id is None:
                async with self.db.transaction():
                    await self.channels.advance(channel.channel_id, newest, None, self.clock())
            results[channel.channel_id] = CatchUp(
                channel, len(posts), recovered.get(channel.channel_id, 0), beyond
            )
            if posts:
                log.info(
                    "catch-up of channel %s: %d post(s) read, %d new",
                    channel.channel_id,
                    len(posts),
                    recovered.get(channel.channel_id, 0),
                )
        return list(results.values())

    async def _read_back(self, channel: WatchedChannel) -> tuple[list[Post], int, int]:
        """Return a channel's posts after its marker, its newest message id, and how many
        messages were beyond the bounds (0 for a channel read the first time)."""
        marker = channel.last_message_id
        if marker is None:  # first time: start at the newest post, read nothing
            newest = await self._flood_safe(
                lambda: self.client.get_messages(self._peer(channel), limit=1),
                f"reading {channel.name}",
            )
            return [], (newest[0].id if newest else 0), 0
        horizon = self.clock() - self.max_age

        async def fetch() -> tuple[list[Any], int | None]:
            messages: list[Any] = []
            async for message in self.client.iter_messages(
                self._peer(channel), limit=self.max_posts, min_id=marker
            ):
                if _utc(message.date) < horizon:
                    return messages, message.id  # too old: this and earlier stay unread
                messages.append(message)
            return messages, None

        messages, too_old = await self._flood_safe(fetch, f"reading {channel.name}")
        ids = [m.id for m in messages]
        newest = max(ids) if ids else (too_old or 0)
        beyond = 0
        if too_old is not None:
            beyond = too_old - marker
        elif len(messages) >= self.max_posts:
            beyond = max(0, min(ids) - marker - 1)
        return posts_of(messages, channel), newest, beyond

    async def _report_blind(self, blind_from: datetime | None, caught: list[CatchUp]) -> None:
        """Tell operators how long the watcher was blind and what catch-up found."""
        if blind_from is None:
            return
        now = self.clock()
        blind = now - blind_from
        log.info("watcher was blind for %s; catch-up done", _duration(blind))
        if blind < BLIND_NOTICE_AFTER:
            return
        end = f"{now:%H:%M}" if now.date() == blind_from.date() else f"{now:%Y-%m-%d %H:%M}"
        lines = [
            f"⚠️ skywatch was blind for {_duration(blind)} "
            f"({blind_from:%Y-%m-%d %H:%M} – {end} UTC).",
        ]
        recovered = [c for c in caught if c.recovered]
        total = sum(c.recovered for c in caught)
        if recovered:
            lines.append(f"Catch-up recovered {total} post(s):")
            lines += [f"• {c.channel.name}: {c.recovered}" for c in recovered]
        else:
            lines.append("Catch-up found no missed posts.")
        for c in caught:
            if c.beyond:
                lines.append(
                    f"• {c.channel.name}: about {c.beyond} older message(s) were beyond "
                    f"the catch-up bounds ({_duration(self.max_age)}, {self.max_posts} posts) "
                    "and were not read"
                )
            if c.error:
                lines.append(f"• {c.error}")
        await self._tell("\n".join(lines))

    # --- live --------------------------------------------------------------------------

    async def _on_new(self, event: Any) -> None:
        message = event.message
        if message.grouped_id is not None:
            return  # the Album handler makes one post of it
        self._enqueue(message, [message], edit=False)

    async def _on_album(self, event: Any) -> None:
        messages = list(event.messages)
        if messages:
            self._enqueue(messages[0], messages, edit=False)

    async def _on_edit(self, event: Any) -> None:
        self._enqueue(event.message, [event.message], edit=True)

    def _enqueue(self, first: Any, messages: Sequence[Any], *, edit: bool) -> None:
        peer = first.peer_id
        if not isinstance(peer, types.PeerChannel):
            return
        channel = self._following.get(peer.channel_id)
        if channel is None:
            return  # not a followed channel
        if edit:
            posts = [p for p in (post_of(m, channel) for m in messages) if p is not None]
        else:
            posts = posts_of(messages, channel)
        if edit and not posts:
            return  # an edit of a message without text (an album's photo)
        self._queue.put_nowait(
            _Item(peer.channel_id, max(m.id for m in messages), posts, edit=edit)
        )

    async def _follow(self) -> None:
        """Process live posts in arrival order until the connection is lost."""
        disconnected = self.client.disconnected
        self.listening = True
        last_beat = last_sync = asyncio.get_running_loop().time()
        while True:
            getter = asyncio.ensure_future(self._queue.get())
            sync = asyncio.ensure_future(self._sync_requested.wait())
            try:
                await asyncio.wait(
                    {getter, disconnected, sync},
                    timeout=HEARTBEAT,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                sync.cancel()
                if not getter.done():
                    getter.cancel()
            if getter.done() and not getter.cancelled():
                await self._handle(getter.result())
            if disconnected.done():
                error = None if disconnected.cancelled() else disconnected.exception()
                raise ConnectionError(f"Telegram closed the connection: {error or 'no reason'}")
            now = asyncio.get_running_loop().time()
            if now - last_beat >= HEARTBEAT:
                await self._heartbeat()
                last_beat = now
            if self._sync_requested.is_set() or now - last_sync >= RESYNC_EVERY:
                await self.sync_channels()
                if self._owed:
                    await self.catch_up(set(self._owed))
                await self._retry_failed()
                last_sync = now

    async def _handle(self, item: _Item) -> None:
        posts = item.posts
        if item.edit:
            posts = await self._adoptable(posts)
        if posts:
            await self._process(posts)
        if not item.edit and item.channel_id not in self._owed:
            async with self.db.transaction():
                await self.channels.advance(
                    item.channel_id,
                    item.message_id,
                    item.posts[-1].date if item.posts else None,
                    self.clock(),
                )

    async def _adoptable(self, edits: Sequence[Post]) -> list[Post]:
        """Return the edits worth processing: of stored posts, or of recent ones.

        Reactions arrive as edits for days; one on a post never stored (published before
        the channel was followed) must not raise an alert now.
        """
        async with self.db.reading():
            stored = await self.posts.texts([(p.channel_id, p.id) for p in edits])
        horizon = self.clock() - EDIT_ADOPT_AGE
        return [p for p in edits if (p.channel_id, p.id) in stored or p.date >= horizon]

    # --- shared ------------------------------------------------------------------------

    async def _process(self, posts: Sequence[Post]) -> Sequence[object | None]:
        """Hand posts to the sink, retrying a failure twice.

        If a batch still fails, its posts go one by one, so that one bad post costs only
        itself; each post that fails is recorded, to be read again at the next sync.
        """
        for delay in (*PROCESS_RETRIES, None):
            try:
                return await self.sink(posts)
            except Exception:
                ids = _ids(posts)
                if delay is None:
                    log.warning("post(s) %s could not be processed", ids, exc_info=True)
                    break
                log.warning("post(s) %s could not be processed; retrying", ids, exc_info=True)
                await self.sleep(delay)
        if len(posts) > 1:
            outcomes: list[object | None] = []
            for post in posts:
                alone = await self._process_alone(post)
                outcomes += alone if alone is not None else [None]
            return outcomes
        await self._failed(posts[0])
        return [None]

    async def _process_alone(self, post: Post) -> Sequence[object | None] | None:
        """Process one post; return None when it failed (it is then recorded)."""
        try:
            return await self.sink([post])
        except Exception:
            log.warning("post %s could not be processed", _ids([post]), exc_info=True)
            await self._failed(post)
            return None

    async def _failed(self, post: Post) -> None:
        """Record a post that failed, to read it again and retry it at the next sync."""
        problem = f"processing failed: {_ids([post])}"
        try:
            async with self.db.transaction():
                attempts = await self.channels.post_failed(
                    post.channel_id, post.id, problem, self.clock(), MAX_POST_ATTEMPTS
                )
        except Exception:
            log.exception("post %s failed and could not be recorded", _ids([post]))
            return
        await self._record_error(post.channel_id, problem)
        if attempts >= MAX_POST_ATTEMPTS:
            log.error("post %s given up after %d attempts", _ids([post]), attempts)

    async def _retry_failed(self) -> None:
        """Read failed posts again and process them (each alone)."""
        async with self.db.reading():
            failed = await self.channels.failed_posts()
        for channel_id, ids in failed.items():
            channel = self._following.get(channel_id)
            if channel is None:
                continue
            try:
                peer = self._peer(channel)
                messages = await self._flood_safe(
                    functools.partial(self.client.get_messages, peer, ids=ids),
                    f"reading failed posts of {channel.name}",
                )
            except (FloodWaitTooLong, ValueError, errors.RPCError) as err:
                log.warning("failed posts of channel %s not read again: %s", channel_id, err)
                continue
            found = [m for m in messages if m is not None]
            posts = {post.id: post for post in posts_of(found, channel)}
            for message_id in ids:
                post = posts.get(message_id)
                if post is None or await self._process_alone(post) is not None:
                    # Done, or nothing left to process (deleted, no text, part of an album).
                    async with self.db.transaction():
                        await self.channels.post_recovered(channel_id, message_id)
                    log.info("post %s/%s processed on a retry", channel_id, message_id)

    async def _advance(self, posts: Sequence[Post]) -> None:
        newest: dict[int, Post] = {}
        for post in posts:
            if post.channel_id not in newest or post.id > newest[post.channel_id].id:
                newest[post.channel_id] = post
        async with self.db.transaction():
            for channel_id, post in newest.items():
                await self.channels.advance(channel_id, post.id, post.date, self.clock())

    async def _record_error(self, channel_id: int, problem: str) -> None:
        with contextlib.suppress(Exception):  # health is best effort
            async with self.db.transaction():
                await self.channels.error(channel_id, problem, self.clock())

    async def _heartbeat(self) -> None:
        now = self.clock()
        async with self.db.transaction():
            await self.state.set(SEEN_KEY, str(now.timestamp()), now)

    async def _flood_safe(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """Run a call, waiting out Telegram's flood waits (up to FLOOD_WAIT_MAX each)."""
        while True:
            try:
                return await call()
            except errors.FloodWaitError as err:
                if err.seconds > FLOOD_WAIT_MAX:
                    raise FloodWaitTooLong(err.seconds, what) from err
                log.warning("flood wait: %d s before %s", err.seconds, what)
                await self.sleep(err.seconds + FLOOD_MARGIN)

    async def _tell(self, text: str) -> None:
        if self.notify is None:
            return
        try:
            await self.notify(text)
        except Exception:
            log.exception("could not tell operators: %s", text.splitlines()[0])


def _ids(posts: Sequence[Post]) -> str:
    """Return posts' ids for a log line: channel/message, the first ten."""
    shown = ", ".join(f"{p.channel_id}/{p.id}" for p in posts[:10])
    return shown + (f" and {len(posts) - 10} more" if len(posts) > 10 else "")


def _duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours < 48 else f"{hours // 24} days {hours % 24} h"


# --- the client and its session --------------------------------------------------------


def _session(session_path: Path, string_session: str) -> Any:
    if string_session:
        return StringSession(string_session)
    session_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        session_path.parent.chmod(DATA_DIR_MODE)
    return str(session_path)


def _protect(session_path: Path) -> None:
    """Make the session file (the account's login) readable by its owner only."""
    for path in (session_path, session_path.with_name(session_path.name + "-journal")):
        if path.exists():
            if stat.S_IMODE(path.stat().st_mode) & 0o077:
                log.warning("%s was readable by others; now mode 0600", path)
            path.chmod(SESSION_MODE)


@contextlib.asynccontextmanager
async def open_client(
    api_id: int, api_hash: str, session_path: Path, string_session: str = ""
) -> Any:
    """Build the user client over the session file (or a string session); close on exit."""
    if not string_session:
        _protect(session_path)  # an existing file too, before it is used
    old_umask = os.umask(0o077)  # the session file is created owner-only
    try:
        client = TelegramClient(
            _session(session_path, string_session),
            api_id,
            api_hash,
            flood_sleep_threshold=0,  # the watcher waits out flood waits itself, and logs them
            auto_reconnect=False,  # the watcher reconnects itself, then catches up
            catch_up=False,  # catch-up is ours, from our own markers
        )
    finally:
        os.umask(old_umask)
    try:
        yield client
    finally:
        await client.disconnect()
        if not string_session:
            _protect(session_path)


async def login(
    api_id: int, api_hash: str, session_path: Path, *, string: bool = False
) -> str | None:
    """Log the user client in interactively (phone, code, two-step password).

    Store the session file under the data directory (mode 0600), or with `string`
    return a string session for TELEGRAM_SESSION instead.
    """
    old_umask = os.umask(0o077)
    try:
        session: Any = StringSession() if string else _session(session_path, "")
        client = TelegramClient(session, api_id, api_hash)
        await client.start()  # prompts for the phone, the code and the password
    finally:
        os.umask(old_umask)
    try:
        me = await client.get_me()
        log.info("logged in as %s", getattr(me, "username", None) or getattr(me, "id", "?"))
        return client.session.save() if string else None
    finally:
        await client.disconnect()
        if not string:
            _protect(session_path)
            mode = stat.S_IMODE(session_path.stat().st_mode)
            log.info("session stored in %s (mode %o)", session_path, mode)
