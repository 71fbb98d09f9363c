"""Bot API updates as small dataclasses: the only shape of chat input handlers see."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Incoming", "incoming"]


@dataclass(frozen=True, slots=True)
class Incoming:
    """One update: a message, an edited message or a button press (else kind "other")."""

    update_id: int
    kind: str  # message | edited | callback | other
    chat_id: int | None = None
    chat_type: str | None = None  # private | group | supergroup | channel
    user_id: int | None = None
    language: str | None = None  # the user's Telegram language code
    text: str = ""
    message_id: int | None = None  # the message, or the one whose button was pressed
    callback_id: str | None = None
    data: str | None = None  # a button's callback data
    admin: bool | None = None  # in a group: whether the sender administers it (if asked)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def incoming(raw: Any) -> Incoming | None:
    """Read a getUpdates item; None when it has no update_id. Never raises."""
    update = _dict(raw)
    update_id = _int(update.get("update_id"))
    if update_id is None:
        return None
    for key, kind in (("message", "message"), ("edited_message", "edited")):
        if key in update:
            message = _dict(update[key])
            chat = _dict(message.get("chat"))
            sender = _dict(message.get("from"))
            return Incoming(
                update_id,
                kind,
                chat_id=_int(chat.get("id")),
                chat_type=_str(chat.get("type")),
                user_id=_int(sender.get("id")),
                language=_str(sender.get("language_code")),
                text=_str(message.get("text")) or "",
                message_id=_int(message.get("message_id")),
            )
    if "callback_query" in update:
        query = _dict(update["callback_query"])
        message = _dict(query.get("message"))
        chat = _dict(message.get("chat"))
        sender = _dict(query.get("from"))
        return Incoming(
            update_id,
            "callback",
            chat_id=_int(chat.get("id")),
            chat_type=_str(chat.get("type")),
            user_id=_int(sender.get("id")),
            language=_str(sender.get("language_code")),
            message_id=_int(message.get("message_id")),
            callback_id=_str(query.get("id")),
            data=_str(query.get("data")),
        )
    return Incoming(update_id, "other")
