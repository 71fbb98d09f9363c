"""Read Telegram Desktop "Export chat history" JSON into Posts."""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.errors import ExportError
from bot.models import Post

__all__ = ["ChannelExport", "find_export_files", "flatten_text", "load_export", "merge_posts"]

EXPORT_FILENAME = "result.json"
# Bot API style ids carry this prefix for channels; the pipeline uses the bare id.
CHANNEL_ID_PREFIX = 1_000_000_000_000
MAX_ID = 2**63 - 1  # SQLite INTEGER


@dataclass(frozen=True, slots=True)
class ChannelExport:
    """One channel's exported history."""

    path: Path
    channel_id: int
    title: str
    posts: tuple[Post, ...]
    skipped: int


def find_export_files(paths: Iterable[str | Path]) -> list[Path]:
    """Return every result.json under the given files or directories, sorted."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(path.rglob(EXPORT_FILENAME)))
        else:
            raise ExportError(path, "no such file or directory")
    if not found:
        raise ExportError(", ".join(map(str, paths)), f"no {EXPORT_FILENAME} found")
    return sorted(set(found))


def flatten_text(value: Any) -> str:
    """Return the plain text of an export `text` field (a string or a list of parts)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts: list[str] = []
        for part in value:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise ValueError(f"text part of unexpected type {type(part).__name__}")
        return "".join(parts)
    raise ValueError(f"text of unexpected type {type(value).__name__}")


def _bare_channel_id(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError(f"channel id {raw!r} is not a number")
    value = int(raw)
    if value < 0:
        value = -value
        if value > CHANNEL_ID_PREFIX:
            value -= CHANNEL_ID_PREFIX
    if not 0 < value <= MAX_ID:
        raise ValueError(f"channel id {raw!r} is out of range")
    return value


def _utc(raw: object, field: str) -> datetime:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError(f"{field} {raw!r} is not a unix time")
    return datetime.fromtimestamp(int(raw), tz=UTC)


def _channels(document: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(document, dict):
        raise ValueError("top level is not a JSON object")
    if "messages" in document:
        yield document
    elif isinstance(document.get("chats"), dict):
        # A full-account export holds every chat under chats.list.
        for chat in document["chats"].get("list", []):
            if isinstance(chat, dict) and "messages" in chat:
                yield chat
    else:
        raise ValueError('no "messages" list (is this a Telegram Desktop JSON export?)')


def _post(channel_id: int, title: str, message: dict[str, Any]) -> Post | None:
    if message.get("type") != "message":
        return None
    message_id = message.get("id")
    if isinstance(message_id, bool) or not isinstance(message_id, int):
        raise ValueError(f"message id {message_id!r} is not an integer")
    if not 0 < message_id <= MAX_ID:
        raise ValueError(f"message id {message_id} is out of range")
    where = f"message {message_id}"
    if "date_unixtime" not in message:
        raise ValueError(f'{where}: no "date_unixtime"')
    try:
        text = flatten_text(message.get("text")).strip()
        date = _utc(message["date_unixtime"], "date_unixtime")
        edited = message.get("edited_unixtime")
        edit_date = _utc(edited, "edited_unixtime") if edited is not None else None
    except (ValueError, OverflowError, OSError) as err:
        raise ValueError(f"{where}: {err}") from err
    if not text:
        return None  # media-only post: nothing to read
    forwarded = message.get("forwarded_from")
    reply_to = message.get("reply_to_message_id")
    return Post(
        channel_id=channel_id,
        id=message_id,
        date=date,
        text=text,
        edit_date=edit_date,
        forwarded_from=str(forwarded) if forwarded else None,
        reply_to=reply_to
        if isinstance(reply_to, int) and not isinstance(reply_to, bool)
        else None,
        channel_title=title,
    )


def load_export(path: str | Path) -> list[ChannelExport]:
    """Parse one export file; raise ExportError naming the file and the problem."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            document = json.load(handle)
    except OSError as err:
        raise ExportError(path, f"cannot read: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise ExportError(path, f"not UTF-8 text: {err}") from err
    except json.JSONDecodeError as err:
        raise ExportError(path, f"not valid JSON: {err}") from err
    exports: list[ChannelExport] = []
    try:
        for chat in _channels(document):
            channel_id = _bare_channel_id(chat.get("id"))
            title = str(chat.get("name") or "")
            messages = chat["messages"]
            if not isinstance(messages, list):
                raise ValueError('"messages" is not a list')
            posts: list[Post] = []
            skipped = 0
            for message in messages:
                if not isinstance(message, dict):
                    raise ValueError("a message is not a JSON object")
                post = _post(channel_id, title, message)
                if post is None:
                    skipped += 1
                else:
                    posts.append(post)
            exports.append(ChannelExport(path, channel_id, title, tuple(posts), skipped))
    except ValueError as err:
        raise ExportError(path, str(err)) from err
    return exports


def merge_posts(exports: Sequence[ChannelExport]) -> list[Post]:
    """Merge channels' posts into one stream in the order they would have arrived live."""

    def key(post: Post) -> tuple[datetime, int, int, datetime]:
        # The same post in two exports: the older version first, so the edit wins.
        return (post.date, post.channel_id, post.id, post.edit_date or post.date)

    streams = [sorted(export.posts, key=key) for export in exports]
    return list(heapq.merge(*streams, key=key))
