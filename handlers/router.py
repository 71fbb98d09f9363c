"""Routing chat updates to command handlers: parsing, authorisation, flood control, audit.

Handlers are plain async functions `cmd_<name>(ctx) -> replies`, registered on a `Router`
with `@router.command("name", operator=...)`; `handlers/__init__.py` puts the routers
together in one place. The `Dispatcher` is the one boundary every update crosses:

- it reads `/command@bot args` from a message (NFKC-normalised, invisible characters
  dropped, at most MAX_INPUT characters), ignores commands addressed to another bot and
  edited messages, and answers anything else in a private chat with a short hint;
- it refuses operator commands to everyone not in OPERATOR_IDS with the same reply as an
  unknown command, so nobody learns which commands exist;
- it limits each user to FLOOD_COMMANDS commands in FLOOD_WINDOW seconds;
- it runs the handler in a savepoint, so a handler that fails writes nothing, and turns
  `UsageError` into a short usage reply and any other error into a logged apology;
- it writes every operator command (and every refused one) to the audit table.

Handlers return replies; the poller sends them after the update's transaction commits.
"""

from __future__ import annotations

import html
import logging
import time
import unicodedata
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bot.alerts import AlertTexts
from bot.botapi import Keyboard
from bot.channels import WatcherHealth
from bot.gazetteer import Gazetteer
from bot.models import Subscriber
from bot.phrases import LANGUAGES, Phrases
from bot.updates import Incoming
from storage.alerts import SubscriberRepo
from storage.channels import ChannelRepo, StateRepo
from storage.db import Database
from storage.incidents import IncidentRepo
from storage.operations import AuditEntry, AuditRepo, RegionRepo, StatsRepo
from storage.review import ReviewRepo

__all__ = [
    "Context",
    "Control",
    "Dispatcher",
    "Reply",
    "Result",
    "Router",
    "Services",
    "UsageError",
]

log = logging.getLogger(__name__)

MAX_INPUT = 1000  # characters of a command we read
FLOOD_COMMANDS = 12  # commands a user may send in FLOOD_WINDOW
FLOOD_WINDOW = 60.0  # seconds
MAX_TRACKED_USERS = 10_000
INVISIBLE = {"Cf", "Cc", "Co", "Cs"}  # format, control, private-use, surrogate characters
PRIVATE_ONLY = "Operator commands work only in a private chat with the bot."


class UsageError(Exception):
    """Raise in a handler when the arguments are wrong; the message is the reply."""


class Control(Protocol):
    """What commands change in the running service (implemented in bot/app.py)."""

    def set_watched(self, regions: Sequence[str]) -> None:
        """Use a new set of watched regions."""

    def set_paused(self, paused: bool) -> None:
        """Stop or resume planning alerts."""

    def sync_channels(self) -> None:
        """Ask the watcher to follow the channels as stored now."""

    async def watcher_health(self) -> WatcherHealth | None:
        """Return the watcher's health (None when no watcher runs)."""

    async def reannounce(self, incident_id: str) -> bool:
        """Edit an incident's alert to show its current state."""


@dataclass(slots=True)
class Services:
    """Everything handlers may use, handed over by the composition root."""

    db: Database
    subscribers: SubscriberRepo
    channels: ChannelRepo
    incidents: IncidentRepo
    review: ReviewRepo
    regions: RegionRepo
    audit: AuditRepo
    stats: StatsRepo
    state: StateRepo
    gazetteer: Gazetteer
    alert_texts: AlertTexts
    phrases: Phrases
    control: Control
    operator_ids: frozenset[int]
    clock: Callable[[], datetime]
    watched: tuple[str, ...] = ()  # kept current by the watch commands
    paused: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """A message to send (or a message of ours to edit) after the update is committed."""

    text: str  # HTML
    keyboard: Keyboard | None = None
    edit: int | None = None  # our message to edit instead of sending one
    chat_id: int | None = None  # default: the chat the update came from


@dataclass(slots=True)
class Result:
    """What handling one update produced."""

    replies: list[Reply] = field(default_factory=list)
    callback_answer: str | None = None  # for a button press (always answered)
    after_commit: list[Callable[[], None]] = field(default_factory=list)


@dataclass(slots=True)
class Context:
    """One command as a handler sees it."""

    update: Incoming
    command: str
    args: str
    services: Services
    language: str
    operator: bool
    now: datetime
    subscriber: Subscriber | None
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    @property
    def chat_id(self) -> int:
        """Return the chat the command came from."""
        assert self.update.chat_id is not None
        return self.update.chat_id

    def say(self, key: str, **values: object) -> str:
        """Return a subscriber phrase in the chat's language."""
        return self.services.phrases(key, self.language, **values)


Replies = Reply | Sequence[Reply] | None
Handler = Callable[[Context], Awaitable[Replies]]


@dataclass(frozen=True, slots=True)
class Command:
    """A registered command."""

    name: str
    handler: Handler
    operator: bool
    menu: str  # phrase key of its menu description


class Router:
    """Commands and button handlers of one module."""

    def __init__(self) -> None:
        self.commands: dict[str, Command] = {}
        self.callbacks: dict[str, Handler] = {}

    def command(self, name: str, *, operator: bool = False) -> Callable[[Handler], Handler]:
        """Register a handler for /name (operator-only when `operator`)."""

        def register(handler: Handler) -> Handler:
            if name in self.commands:
                raise ValueError(f"/{name} is registered twice")
            self.commands[name] = Command(name, handler, operator, f"menu.{name}")
            return handler

        return register

    def callback(self, prefix: str) -> Callable[[Handler], Handler]:
        """Register a handler for buttons whose data starts with `prefix:`."""

        def register(handler: Handler) -> Handler:
            if prefix in self.callbacks:
                raise ValueError(f"buttons {prefix!r} are registered twice")
            self.callbacks[prefix] = handler
            return handler

        return register

    def include(self, other: Router) -> None:
        """Take another module's commands and buttons."""
        for name, command in other.commands.items():
            if name in self.commands:
                raise ValueError(f"/{name} is registered twice")
            self.commands[name] = command
        for prefix, handler in other.callbacks.items():
            if prefix in self.callbacks:
                raise ValueError(f"buttons {prefix!r} are registered twice")
            self.callbacks[prefix] = handler


def clean(text: str) -> str:
    """Normalise odd Unicode: NFKC, invisible and control characters dropped (not \\n)."""
    text = unicodedata.normalize("NFKC", text).replace("\t", " ").replace("\r", " ")
    return "".join(
        ch for ch in text if ch == "\n" or unicodedata.category(ch) not in INVISIBLE
    ).strip()


def parse_command(text: str, bot_username: str) -> tuple[str, str] | None:
    """Return (command, args) of `/command[@bot] args`, or None when not for this bot."""
    if not text.startswith("/"):
        return None
    head, _, args = text.partition(" ")
    if "\n" in head:
        head, _, rest = head.partition("\n")
        args = f"{rest} {args}".strip()
    name, _, addressed = head[1:].partition("@")
    if addressed and addressed.lower() != bot_username.lower():
        return None
    return name.lower(), args.strip()


class Dispatcher:
    """Run each update through parsing, authorisation and its handler (see module doc)."""

    def __init__(
        self,
        router: Router,
        services: Services,
        bot_username: str,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.router = router
        self.services = services
        self.bot_username = bot_username
        self.monotonic = monotonic
        self._recent: dict[int, deque[float]] = {}
        self._warned: set[int] = set()

    async def handle(self, update: Incoming) -> Result:
        """Handle one update; never raises for bad input (the caller owns the transaction)."""
        result = Result()
        if update.chat_id is None or update.user_id is None:
            return result  # a channel post, a service message, an update we do not read
        if update.kind == "edited":
            log.info("edited command ignored (chat %s, user %s)", update.chat_id, update.user_id)
            return result
        if update.kind not in ("message", "callback"):
            return result
        subscriber = await self.services.subscribers.get(update.chat_id)  # read once
        language = _language(update, subscriber)
        if update.kind == "callback":
            await self._callback(update, language, subscriber, result)
            return result
        text = clean(update.text[: MAX_INPUT + 1])
        parsed = parse_command(text, self.bot_username)
        if parsed is None and (text.startswith("/") or update.chat_type != "private"):
            return result  # a command for another bot, or group chatter
        if self._flooding(update.user_id):
            if update.user_id not in self._warned:
                self._warned.add(update.user_id)
                result.replies.append(Reply(self.services.phrases("flood", language)))
            log.warning("user %s is flooding; message ignored", update.user_id)
            return result
        self._warned.discard(update.user_id)
        if len(update.text) > MAX_INPUT:
            result.replies.append(Reply(self.services.phrases("too_long", language)))
            return result
        if parsed is None:
            if update.text.strip():
                result.replies.append(Reply(self.services.phrases("not_command", language)))
            return result
        await self._command(update, *parsed, language, subscriber, result)
        return result

    def _context(
        self,
        update: Incoming,
        command: str,
        args: str,
        language: str,
        subscriber: Subscriber | None,
    ) -> Context:
        assert update.user_id is not None
        operator = update.user_id in self.services.operator_ids
        return Context(
            update,
            command,
            args,
            self.services,
            language,
            operator,
            self.services.clock(),
            subscriber,
        )

    async def _command(
        self,
        update: Incoming,
        name: str,
        args: str,
        language: str,
        subscriber: Subscriber | None,
        result: Result,
    ) -> None:
        services = self.services
        assert update.user_id is not None and update.chat_id is not None
        operator = update.user_id in services.operator_ids
        command = self.router.commands.get(name)
        if command is None or (command.operator and not operator):
            if command is not None:
                log.warning("user %s refused /%s", update.user_id, name)
                await self._audit(update, name, args, "refused", "not an operator")
            result.replies.append(Reply(services.phrases("unknown", language)))
            return
        if command.operator and update.chat_type != "private":
            # Operators' output (stats, subscribers, evidence) is not for a whole group.
            await self._audit(update, name, args, "refused", "not a private chat")
            result.replies.append(Reply(PRIVATE_ONLY))
            return
        ctx = self._context(update, name, args, "en" if command.operator else language, subscriber)
        outcome, detail = "ok", ""
        try:
            async with services.db.savepoint("command"):
                replies = await command.handler(ctx)
        except UsageError as err:
            outcome, detail = "bad_input", str(err)
            replies = Reply(html.escape(str(err)))
        except Exception as err:
            # Each command's boundary: log it, apologise, keep polling.
            log.exception("/%s failed (chat %s, user %s)", name, update.chat_id, update.user_id)
            outcome, detail = "error", type(err).__name__
            replies = Reply(services.phrases("error", ctx.language))
            ctx.after_commit.clear()
        if command.operator:
            await self._audit(update, name, args, outcome, detail)
        result.replies += _as_list(replies)
        result.after_commit += ctx.after_commit

    async def _callback(
        self, update: Incoming, language: str, subscriber: Subscriber | None, result: Result
    ) -> None:
        prefix = (update.data or "").partition(":")[0]
        handler = self.router.callbacks.get(prefix)
        result.callback_answer = ""
        if handler is None or self._flooding(update.user_id or 0):
            return
        ctx = self._context(update, prefix, update.data or "", language, subscriber)
        try:
            async with self.services.db.savepoint("button"):
                replies = await handler(ctx)
        except UsageError as err:
            result.callback_answer = str(err)
            return
        except Exception:
            log.exception("button %r failed (chat %s)", update.data, update.chat_id)
            result.callback_answer = self.services.phrases("error", language)
            return
        result.replies += _as_list(replies)
        result.after_commit += ctx.after_commit

    def _flooding(self, user_id: int) -> bool:
        now = self.monotonic()
        recent = self._recent.setdefault(user_id, deque())
        while recent and recent[0] <= now - FLOOD_WINDOW:
            recent.popleft()
        recent.append(now)
        if len(self._recent) > MAX_TRACKED_USERS:
            self._recent = {u: q for u, q in self._recent.items() if q and q[-1] > now - 60}
        return len(recent) > FLOOD_COMMANDS

    async def _audit(
        self, update: Incoming, command: str, args: str, outcome: str, detail: str
    ) -> None:
        assert update.user_id is not None and update.chat_id is not None
        await self.services.audit.record(
            AuditEntry(
                self.services.clock(),
                update.user_id,
                update.chat_id,
                command,
                args,
                outcome,
                detail,
            )
        )


def _language(update: Incoming, subscriber: Subscriber | None) -> str:
    """Return the chat's language: its subscription's, else the user's, else Russian."""
    if subscriber is not None:
        return subscriber.language
    code = (update.language or "").split("-")[0].lower()
    return code if code in LANGUAGES else "ru"


def _as_list(replies: Replies) -> list[Reply]:
    if replies is None:
        return []
    if isinstance(replies, Reply):
        return [replies]
    return list(replies)
