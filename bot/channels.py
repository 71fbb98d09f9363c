"""Channels as configured: how a channel is named, and what its reports are worth.

CHANNELS lists channels separated by commas or new lines, each optionally followed by
settings in square brackets::

    @opershtab_kuban[official, home=RU-KDA, trust=2], t.me/astrapress, 1633410287[trust=0.5]

- ``home=REGION``: the region of a local or regional channel; its reports that name no
  place take it. Without it, a channel whose title names exactly one region («Оперштаб
  Кубани», «Таганрог Онлайн») takes that one; ``home=-`` turns that off.
- ``trust=W``: how much one report of the channel weighs in an incident's confidence
  (default 1; 2 for a reliable channel, 0.5 for a noisy one).
- ``official``: an official source; its report confirms an incident.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from bot.errors import RegionError

__all__ = [
    "DEFAULT_SETTINGS",
    "ChannelBook",
    "ChannelRef",
    "ChannelSettings",
    "WatchedChannel",
    "WatcherHealth",
    "parse_channel_ref",
    "parse_channels",
]

DEFAULT_TRUST = 1.0
MAX_TRUST = 10.0
NO_HOME = "-"

_ENTRY_RE = re.compile(r"([^\s\[\]]+)\s*(?:\[([^\[\]]*)\])?")
_USERNAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")
_LINK_RE = re.compile(r"^(?:https?://)?(?:www\.)?(?:t\.me|telegram\.me)/(?:s/)?([^/?#\s]+)")


@dataclass(frozen=True, slots=True)
class ChannelRef:
    """A channel as an operator names it: by username or by numeric id (no -100 prefix)."""

    username: str | None = None  # lower case, without "@"
    channel_id: int | None = None

    def __str__(self) -> str:
        return f"@{self.username}" if self.username else str(self.channel_id)


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """What the service knows about a channel beyond its posts."""

    ref: ChannelRef
    home_region: str | None = None
    home_from_title: bool = True  # False with home=-: never guess from the title
    trust: float = DEFAULT_TRUST
    official: bool = False


DEFAULT_SETTINGS = ChannelSettings(ChannelRef())


def parse_channel_ref(raw: str) -> ChannelRef:
    """Read @name, a t.me link, a bare username or a numeric id; raise ValueError if none."""
    text = raw.strip()
    link = _LINK_RE.match(text)
    if link:
        text = link.group(1)
    text = text.removeprefix("@")
    if re.fullmatch(r"-?\d+", text):
        if text.startswith("-") and not (text.startswith("-100") and len(text) > 4):
            raise ValueError(f"{raw!r} is not a channel id (a channel's is -100… or bare)")
        channel_id = int(text.removeprefix("-100"))
        if channel_id <= 0 or channel_id >= 2**63:
            raise ValueError(f"{raw!r} is not a channel id")
        return ChannelRef(channel_id=channel_id)
    if not _USERNAME_RE.fullmatch(text):
        raise ValueError(f"{raw!r} is not a channel username, t.me link or id")
    return ChannelRef(username=text.lower())


def parse_channels(
    raw: str, resolve_region: Callable[[str], str]
) -> tuple[tuple[ChannelSettings, ...], list[str]]:
    """Parse CHANNELS; return the settings and a list of problems (empty when all is well)."""
    settings: list[ChannelSettings] = []
    problems: list[str] = []
    for entry in _entries(raw):
        match = _ENTRY_RE.fullmatch(entry)
        if match is None:
            problems.append(f"CHANNELS: cannot read {entry!r} (expected @name[settings])")
            continue
        try:
            ref = parse_channel_ref(match.group(1))
            settings.append(_options(ref, match.group(2) or "", resolve_region))
        except ValueError as err:
            problems.append(f"CHANNELS: {err}")
    seen: set[ChannelRef] = set()
    for item in settings:
        if item.ref in seen:
            problems.append(f"CHANNELS: {item.ref} is listed twice")
        seen.add(item.ref)
    return tuple(settings), problems


def _entries(raw: str) -> list[str]:
    """Split on commas and new lines outside square brackets."""
    entries: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in raw:
        if ch in ",\n" and depth == 0:
            entries.append("".join(current).strip())
            current = []
            continue
        depth += {"[": 1, "]": -1}.get(ch, 0)
        current.append(ch)
    entries.append("".join(current).strip())
    return [entry for entry in entries if entry]


def _options(ref: ChannelRef, raw: str, resolve_region: Callable[[str], str]) -> ChannelSettings:
    home: str | None = None
    from_title = True
    trust = DEFAULT_TRUST
    official = False
    for option in (part.strip() for part in raw.split(",")):
        if not option:
            continue
        name, _, value = (piece.strip() for piece in option.partition("="))
        if name == "official" and not value:
            official = True
        elif name == "home" and value == NO_HOME:
            from_title = False
        elif name == "home" and value:
            try:
                home = resolve_region(value)
            except RegionError as err:
                raise ValueError(f"{ref}: home: {err}") from err
        elif name == "trust" and value:
            try:
                trust = float(value)
            except ValueError:
                trust = -1.0
            if not 0 < trust <= MAX_TRUST:
                raise ValueError(f"{ref}: trust must be a number above 0 and up to {MAX_TRUST}")
        else:
            raise ValueError(
                f"{ref}: unknown setting {option!r} (known: official, home=REGION, trust=W)"
            )
    return ChannelSettings(ref, home, from_title, trust, official)


class ChannelBook:
    """Find a post's channel settings by channel id or username."""

    def __init__(self, settings: Iterable[ChannelSettings] = ()) -> None:
        self._by_id: dict[int, ChannelSettings] = {}
        self._by_username: dict[str, ChannelSettings] = {}
        for item in settings:
            if item.ref.channel_id is not None:
                self._by_id[item.ref.channel_id] = item
            if item.ref.username:
                self._by_username[item.ref.username] = item

    def get(self, channel_id: int, username: str | None = None) -> ChannelSettings | None:
        """Return the configured settings of a channel, or None."""
        found = self._by_id.get(channel_id)
        if found is None and username:
            found = self._by_username.get(username.lower())
        return found


@dataclass(frozen=True, slots=True)
class WatchedChannel:
    """A channel the watcher follows (or tried to), as stored, with its health."""

    ref: str  # as named: "@username" or the bare id
    source: str  # config | operator
    state: str  # pending | active | failed | removed
    settings: ChannelSettings
    channel_id: int | None = None
    access_hash: int | None = None
    username: str | None = None
    title: str | None = None
    joined: bool = False
    last_message_id: int | None = None
    last_post_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None

    @property
    def name(self) -> str:
        """Return how to show the channel to a person: @username, else title, else ref."""
        if self.username:
            return f"@{self.username}"
        return self.title or self.ref


@dataclass(frozen=True, slots=True)
class WatcherHealth:
    """Whether the watcher is connected, and each channel's last post and last error."""

    connected: bool
    listening: bool  # caught up and following live posts
    since: datetime | None  # connected or disconnected since
    channels: tuple[WatchedChannel, ...]
