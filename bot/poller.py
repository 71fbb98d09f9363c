"""The update poller: long-polls getUpdates and hands each update to the dispatcher.

The offset is stored (`service_state`, "bot.update_offset") in the same transaction as
what the update's command changed, so after a restart no update is handled twice and none
is skipped; replies are sent after that commit (a crash in between loses a reply, never
doubles a change). Replies share the delivery loop's rate limiter, so commands and alerts
together stay within Telegram's limits.

A 409 means another process reads this bot's updates (a second instance, or a webhook):
it is logged as an error every time and polling retries slowly, so that the instance
left running takes over once the other stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from bot.botapi import (
    BotApi,
    BotApiError,
    Conflict,
    MessageNotModified,
    RetryAfter,
    TransientError,
    Unauthorized,
)
from bot.delivery import RateLimiter
from bot.phrases import Phrases
from bot.updates import Incoming, incoming
from handlers.operators import OPERATOR_MENU
from handlers.router import Dispatcher, Reply, Result, Router
from storage.channels import StateRepo
from storage.db import Database

__all__ = ["OFFSET_KEY", "Poller", "publish_menu"]

log = logging.getLogger(__name__)

OFFSET_KEY = "bot.update_offset"
POLL_TIMEOUT = 25.0  # seconds a getUpdates call waits for an update
CONFLICT_PAUSE = 30.0  # seconds between tries while another instance polls
UNAUTHORIZED_PAUSE = 60.0
RETRY_BASE = 1.0  # seconds after a network error, doubled up to RETRY_MAX
RETRY_MAX = 60.0
FAILED_UPDATE_PAUSE = 5.0  # seconds before an update whose transaction failed is retried
FAILED_UPDATE_TRIES = 5  # then it is skipped (logged with its id), so others are not held
ADMIN_TTL = 300.0  # seconds a group admin answer is trusted
MAX_ADMIN_ANSWERS = 10_000


class Poller:
    """Read updates until cancelled; each is handled once, its replies sent after commit."""

    def __init__(
        self,
        api: BotApi,
        db: Database,
        dispatcher: Dispatcher,
        clock: Callable[[], datetime],
        *,
        limiter: RateLimiter | None = None,
        poll_timeout: float = POLL_TIMEOUT,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.api = api
        self.db = db
        self.dispatcher = dispatcher
        self.clock = clock
        self.limiter = limiter or RateLimiter()
        self.poll_timeout = poll_timeout
        self.sleep = sleep
        self.state = StateRepo(db)
        self._failures: dict[int, int] = {}  # update id → failed transactions
        self._admins: dict[tuple[int, int], tuple[float, bool]] = {}  # (chat, user) → until, is

    async def run(self) -> None:
        """Learn the bot's username, publish the command menu, then poll until cancelled."""
        await self._introduce()
        async with self.db.reading():
            stored = await self.state.get(OFFSET_KEY)
        offset = int(stored) if stored else 0
        backoff = RETRY_BASE
        while True:
            try:
                updates = await self.api.get_updates(offset, self.poll_timeout)
            except Conflict:
                log.error(
                    "another process is reading this bot's updates (409 Conflict): stop the "
                    "other instance or delete its webhook; retrying in %.0f s",
                    CONFLICT_PAUSE,
                )
                await self.sleep(CONFLICT_PAUSE)
                continue
            except Unauthorized:
                log.error("the Bot API refuses BOT_TOKEN (or BOT_API_URL is wrong)")
                await self.sleep(UNAUTHORIZED_PAUSE)
                continue
            except RetryAfter as err:
                await self.sleep(err.retry_after)
                continue
            except (TransientError, BotApiError) as err:
                log.warning("getUpdates failed (%s); retrying in %.0f s", err, backoff)
                await self.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX)
                continue
            backoff = RETRY_BASE
            for raw in updates:
                handled = await self._one(raw, offset)
                if handled is None:
                    break  # poll again from the update that failed: none after it first
                offset = handled

    async def _one(self, raw: object, offset: int) -> int | None:
        """Handle one update; return the offset to poll from next, None if it failed."""
        update = incoming(raw)
        if update is None:
            log.warning("an update without update_id was skipped")
            return offset
        if update.update_id < offset:
            return offset  # already handled (Telegram repeats until confirmed)
        update = await self._with_admin(update)
        try:
            async with self.db.transaction():
                result = await self.dispatcher.handle(update)
                await self.state.set(OFFSET_KEY, str(update.update_id + 1), self.clock())
        except Exception:
            # The transaction failed (the database, not the command: the dispatcher owns
            # command errors). The update is read again at the next poll, before any later
            # one; one that keeps failing is skipped, so that it cannot hold up the rest.
            tries = self._failures.get(update.update_id, 0) + 1
            self._failures[update.update_id] = tries
            if tries < FAILED_UPDATE_TRIES:
                log.exception("update %s could not be handled; retrying", update.update_id)
                await self.sleep(FAILED_UPDATE_PAUSE)
                return None
            log.exception("update %s skipped after %d failures", update.update_id, tries)
            return await self._skip(update.update_id)
        self._failures.pop(update.update_id, None)
        for apply in result.after_commit:
            try:
                apply()
            except Exception:
                log.exception("applying update %s failed", update.update_id)
        await self._answer(update, result)
        await self._send(update, result.replies)
        return update.update_id + 1

    async def _with_admin(self, update: Incoming) -> Incoming:
        """Ask Telegram, before the transaction, whether a group's sender administers it.

        Only for what may change the group's subscription (a command or a button); an
        answer is remembered for ADMIN_TTL. Unknown (None) when Telegram cannot say.
        """
        if update.chat_type not in ("group", "supergroup") or update.chat_id is None:
            return update
        if update.user_id is None or not (
            update.kind == "callback" or update.text.startswith("/")
        ):
            return update
        key = (update.chat_id, update.user_id)
        now = time.monotonic()
        known = self._admins.get(key)
        if known is None or known[0] < now:
            try:
                admin = await self.api.chat_admin(*key)
            except BotApiError as err:
                log.warning("chat %s: cannot tell whether user %s is an admin: %s", *key, err)
                return update
            if len(self._admins) > MAX_ADMIN_ANSWERS:
                self._admins.clear()
            known = self._admins[key] = (now + ADMIN_TTL, admin)
        return replace(update, admin=known[1])

    async def _skip(self, update_id: int) -> int | None:
        """Store the offset past an update that cannot be handled."""
        try:
            async with self.db.transaction():
                await self.state.set(OFFSET_KEY, str(update_id + 1), self.clock())
        except Exception:
            log.exception("the offset past update %s could not be stored", update_id)
            await self.sleep(FAILED_UPDATE_PAUSE)
            return None
        self._failures.pop(update_id, None)
        return update_id + 1

    async def _introduce(self) -> None:
        """Ask for the bot's username (commands may be addressed to it), then set the menu."""
        backoff = RETRY_BASE
        while True:
            try:
                me = await self.api.get_me()
                break
            except RetryAfter as err:
                await self.sleep(err.retry_after)
            except BotApiError as err:
                log.warning("getMe failed (%s); retrying in %.0f s", err, backoff)
                await self.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX)
        self.dispatcher.bot_username = str(me.get("username") or "")
        services = self.dispatcher.services
        await publish_menu(
            self.api, self.dispatcher.router, services.phrases, services.operator_ids
        )
        log.info("reading commands as @%s", self.dispatcher.bot_username)

    async def _answer(self, update: Incoming, result: Result) -> None:
        if update.callback_id is None or result.callback_answer is None:
            return
        try:
            await self.api.answer_callback_query(update.callback_id, result.callback_answer)
        except BotApiError as err:
            log.warning("callback %s not answered: %s", update.callback_id, err)

    async def _send(self, update: Incoming, replies: Iterable[Reply]) -> None:
        for reply in replies:
            chat_id = reply.chat_id if reply.chat_id is not None else update.chat_id
            if chat_id is None:
                continue
            group = chat_id < 0
            for attempt in range(2):
                await self.limiter.admit(chat_id, group)
                try:
                    if reply.edit is not None:
                        await self.api.edit_message_text(
                            chat_id, reply.edit, reply.text, keyboard=reply.keyboard
                        )
                    else:
                        await self.api.send_message(chat_id, reply.text, keyboard=reply.keyboard)
                    break
                except RetryAfter as err:
                    self.limiter.pause(err.retry_after)
                    if attempt:
                        log.warning("reply to chat %s dropped after a 429", chat_id)
                except MessageNotModified:
                    break  # a button pressed twice: the message already says it
                except BotApiError as err:
                    log.warning("reply to chat %s failed: %s", chat_id, err)
                    break
                finally:
                    self.limiter.done(chat_id)


async def publish_menu(
    api: BotApi, router: Router, phrases: Phrases, operator_ids: Iterable[int]
) -> None:
    """Set the command menu: subscribers' commands in each language, all for operators.

    Best effort: a failure is logged, and commands work without a menu.
    """
    everyone = [c for c in router.commands.values() if not c.operator]
    full = [(c.name, phrases(c.menu, "en")) for c in everyone] + [
        (c.name, OPERATOR_MENU[c.name]) for c in router.commands.values() if c.operator
    ]
    menus: list[tuple[str, list[tuple[str, str]], dict[str, Any]]] = [
        ("default", [(c.name, phrases(c.menu, "ru")) for c in everyone], {}),
        *(
            (language, [(c.name, phrases(c.menu, language)) for c in everyone],
             {"language": language})
            for language in ("uk", "en")
        ),
        # Telegram refuses a chat that never opened the bot: the others still get theirs.
        *((f"operator {chat_id}", full, {"chat_id": chat_id}) for chat_id in operator_ids),
    ]  # fmt: skip
    for name, commands, scope in menus:
        try:
            await api.set_my_commands(commands, **scope)
        except BotApiError as err:
            log.warning("the %s command menu was not set: %s", name, err)
