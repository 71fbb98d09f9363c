"""The Telegram Bot API over httpx: the few methods skywatch calls, and its errors as types.

Every failure is a BotApiError; the delivery loop decides by type::

    BotApiError
    ├── RetryAfter          429: wait `retry_after` seconds, then try again
    ├── TransientError      5xx, timeouts, network errors: retry with backoff
    ├── ChatUnavailable     403 (blocked, kicked, deactivated), 400 chat not found
    ├── ChatMigrated        400 with migrate_to_chat_id: a group became a supergroup
    ├── MessageNotModified  400 "message is not modified": the edit is already there
    ├── MessageGone         400 "message to edit not found": send a fresh message
    ├── Unauthorized        401, 404: a revoked token or a wrong BOT_API_URL; nothing can go
    ├── Conflict            409: another instance is reading this bot's updates
    └── BadRequest          any other 4xx: the request itself is wrong; never retried

The token is part of every URL. It is kept out of this module's log lines, and
`logging_setup` keeps httpx's own request lines (which carry the URL) quiet and redacted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

__all__ = [
    "BadRequest",
    "BotApi",
    "BotApiError",
    "Keyboard",
    "ChatMigrated",
    "ChatUnavailable",
    "Conflict",
    "MessageGone",
    "MessageNotModified",
    "RetryAfter",
    "SentMessage",
    "TransientError",
    "Unauthorized",
]

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0  # seconds for one call (getUpdates adds its long-poll time)
CHAT_GONE = (
    "chat not found",
    "bot was blocked",
    "bot was kicked",
    "user is deactivated",
    "not enough rights",  # a group where the bot may no longer post
    "have no rights to send",
)


class BotApiError(Exception):
    """A Bot API call failed."""

    def __init__(self, method: str, description: str, error_code: int | None = None) -> None:
        super().__init__(f"{method}: {description}")
        self.method = method
        self.description = description
        self.error_code = error_code


class RetryAfter(BotApiError):
    """Telegram asks to wait before calling again (429)."""

    def __init__(self, method: str, description: str, retry_after: float) -> None:
        super().__init__(method, description, 429)
        self.retry_after = retry_after


class TransientError(BotApiError):
    """A server error, a timeout or a network failure: worth another try."""


class ChatUnavailable(BotApiError):
    """The chat cannot receive messages: the bot was blocked or removed, or it is gone."""


class ChatMigrated(BotApiError):
    """A group became a supergroup with a new id: messages go there now."""

    def __init__(self, method: str, description: str, new_chat_id: int) -> None:
        super().__init__(method, description, 400)
        self.new_chat_id = new_chat_id


class MessageNotModified(BotApiError):
    """An edit changes nothing: the message already reads so."""


class MessageGone(BotApiError):
    """The message to edit no longer exists."""


class Unauthorized(BotApiError):
    """The Bot API refuses the token (401) or the URL is not a Bot API (404)."""


class Conflict(BotApiError):
    """Another process calls getUpdates (or a webhook is set) with this bot's token."""


class BadRequest(BotApiError):
    """The request is wrong (malformed HTML, text too long...); repeating it will not help."""


Keyboard = Sequence[Sequence[tuple[str, str]]]  # rows of (label, callback data)


def _markup(keyboard: Keyboard) -> dict[str, Any]:
    return {
        "inline_keyboard": [
            [{"text": label, "callback_data": data} for label, data in row] for row in keyboard
        ]
    }


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message Telegram accepted."""

    chat_id: int
    message_id: int


class BotApi:
    """A Bot API client: an async context manager around one httpx.AsyncClient."""

    def __init__(
        self,
        token: str,
        base_url: str = "https://api.telegram.org",
        *,
        timeout: float = REQUEST_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._prefix = f"{base_url.rstrip('/')}/bot{token}/"
        self._timeout = timeout
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> BotApi:
        self._client = httpx.AsyncClient(timeout=self._timeout, transport=self._transport)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def call(
        self, method: str, params: Mapping[str, Any], *, timeout: float | None = None
    ) -> Any:
        """Call a method; return its `result` or raise the BotApiError that fits."""
        if self._client is None:
            raise RuntimeError("BotApi is not open: use `async with BotApi(...)`")
        try:
            response = await self._client.post(
                self._prefix + method,
                json=dict(params),
                timeout=timeout if timeout is not None else self._timeout,
            )
        except httpx.TimeoutException as err:
            raise TransientError(method, "timed out") from err
        except httpx.TransportError as err:
            # The exception text may hold the URL, and so the token: keep only its type.
            raise TransientError(method, f"network error ({type(err).__name__})") from err
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code == 200 and isinstance(body, dict) and body.get("ok"):
            return body.get("result")
        raise _error(method, response.status_code, body if isinstance(body, dict) else {})

    async def send_message(
        self,
        chat_id: int,
        text: str,
        *,
        reply_to: int | None = None,
        silent: bool = False,
        keyboard: Keyboard | None = None,
    ) -> SentMessage:
        """Send an HTML message (with inline buttons); a reply to a missing one goes alone."""
        params: dict[str, Any] = {
            "chat_id": chat_id,
            "text": text,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
            "disable_notification": silent,
        }
        if keyboard is not None:
            params["reply_markup"] = _markup(keyboard)
        if reply_to is not None:
            params["reply_parameters"] = {
                "message_id": reply_to,
                "allow_sending_without_reply": True,
            }
        result = await self.call("sendMessage", params)
        return SentMessage(chat_id, int(result["message_id"]))

    async def edit_message_text(
        self, chat_id: int, message_id: int, text: str, *, keyboard: Keyboard | None = None
    ) -> None:
        """Replace a message's text (HTML) and its inline buttons (none: removed)."""
        params: dict[str, Any] = {
            "chat_id": chat_id,
            "message_id": message_id,
            "text": text,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
        }
        if keyboard is not None:
            params["reply_markup"] = _markup(keyboard)
        await self.call("editMessageText", params)

    async def get_me(self) -> dict[str, Any]:
        """Return the bot's own user (id, username)."""
        return dict(await self.call("getMe", {}))

    async def get_updates(self, offset: int, timeout: float, limit: int = 100) -> list[Any]:
        """Long-poll for updates from `offset` on; wait up to `timeout` seconds for one."""
        result = await self.call(
            "getUpdates",
            {
                "offset": offset,
                "timeout": math.ceil(timeout),  # whole seconds; 0 would poll busily
                "limit": limit,
                "allowed_updates": ["message", "edited_message", "callback_query"],
            },
            timeout=self._timeout + timeout,
        )
        return list(result) if isinstance(result, list) else []

    async def chat_admin(self, chat_id: int, user_id: int) -> bool:
        """Return True when the user is an administrator or the creator of the chat."""
        member = await self.call("getChatMember", {"chat_id": chat_id, "user_id": user_id})
        return isinstance(member, dict) and member.get("status") in ("creator", "administrator")

    async def answer_callback_query(self, callback_id: str, text: str | None = None) -> None:
        """Stop a button's spinner, showing `text` briefly if given."""
        params: dict[str, Any] = {"callback_query_id": callback_id}
        if text:
            params["text"] = text[:200]
        await self.call("answerCallbackQuery", params)

    async def set_my_commands(
        self,
        commands: Sequence[tuple[str, str]],
        *,
        chat_id: int | None = None,
        language: str | None = None,
    ) -> None:
        """Set the command menu: for everyone, or for one chat (operators), per language."""
        params: dict[str, Any] = {
            "commands": [{"command": name, "description": text} for name, text in commands],
            "scope": {"type": "chat", "chat_id": chat_id}
            if chat_id is not None
            else {"type": "default"},
        }
        if language:
            params["language_code"] = language
        await self.call("setMyCommands", params)


def _error(method: str, status: int, body: Mapping[str, Any]) -> BotApiError:
    """Turn an error response into the exception the caller acts on."""
    code = int(body.get("error_code") or status)
    description = str(body.get("description") or f"HTTP {status}")
    lowered = description.lower()
    if code == 429:
        parameters = body.get("parameters") or {}
        retry_after = float(parameters.get("retry_after") or 1)
        return RetryAfter(method, description, retry_after)
    if code >= 500:
        return TransientError(method, description, code)
    migrated = (body.get("parameters") or {}).get("migrate_to_chat_id")
    if migrated:
        return ChatMigrated(method, description, int(migrated))
    if code == 409:
        return Conflict(method, description, code)
    if code in (401, 404):
        return Unauthorized(method, description, code)
    if code == 403 or (code == 400 and any(reason in lowered for reason in CHAT_GONE)):
        return ChatUnavailable(method, description, code)
    if "message is not modified" in lowered:
        return MessageNotModified(method, description, code)
    if "message to edit not found" in lowered:
        return MessageGone(method, description, code)
    return BadRequest(method, description, code)
