"""Service messages to operators: blind windows, channels that cannot be followed.

Best effort: each operator's private chat gets the message, retried a few times on 429 and
server errors; a failure is logged and never stops the caller. Alerts to subscribers go
through the outbox instead, where nothing may be lost.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable, Iterable

from bot.botapi import BotApi, BotApiError, RetryAfter, TransientError

__all__ = ["OperatorNotices"]

log = logging.getLogger(__name__)

TRIES = 4
RETRY_BASE = 2.0  # seconds, doubled at each try after a server error
MAX_NOTICE = 4000  # characters: under Telegram's 4,096 after escaping the usual text


class OperatorNotices:
    """Tell every operator something in their private chat with the bot."""

    def __init__(
        self,
        api: BotApi,
        operator_ids: Iterable[int],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.api = api
        self.operator_ids = tuple(sorted(operator_ids))
        self.sleep = sleep

    async def tell(self, text: str) -> None:
        """Send a plain-text message to each operator (escaped, cut to fit)."""
        if len(text) > MAX_NOTICE:
            text = text[: MAX_NOTICE - 1] + "…"
        body = html.escape(text, quote=False)
        for chat_id in self.operator_ids:
            await self._send(chat_id, body)

    async def _send(self, chat_id: int, body: str) -> None:
        for attempt in range(TRIES):
            try:
                await self.api.send_message(chat_id, body)
                return
            except RetryAfter as err:
                await self.sleep(err.retry_after)
            except TransientError:
                await self.sleep(RETRY_BASE * 2**attempt)
            except BotApiError as err:
                log.warning("operator %s was not told (%s): %s", chat_id, err, body[:80])
                return
        log.warning("operator %s was not told after %d tries: %s", chat_id, TRIES, body[:80])
