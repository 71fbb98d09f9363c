"""Domain dataclasses shared by every stage: Post, Evidence, Detection."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = ["Detection", "Evidence", "Kind", "Post", "PostKey", "Subscriber"]

PostKey = tuple[int, int]  # (channel_id, message id): a post's identity


class Kind(StrEnum):
    """What a post reports."""

    EXPLOSION = "explosion"
    DRONE = "drone"
    MISSILE = "missile"
    AIR_DEFENSE = "air_defense"


@dataclass(frozen=True, slots=True)
class Post:
    """One channel post, as the pipeline sees it (text flattened, dates in UTC)."""

    channel_id: int
    id: int
    date: datetime
    text: str
    edit_date: datetime | None = None
    forwarded_from: str | None = None
    grouped_id: int | None = None
    reply_to: int | None = None
    channel_username: str | None = None
    channel_title: str | None = None

    @property
    def link(self) -> str | None:
        """Return the public t.me link of the post, if the channel has a username."""
        if not self.channel_username:
            return None
        return f"https://t.me/{self.channel_username}/{self.id}"


@dataclass(frozen=True, slots=True)
class Evidence:
    """One matched span of a post and the rule that used it."""

    rule: str
    text: str
    start: int
    end: int
    kind: str | None = None
    region: str | None = None
    place: str | None = None
    count: int | None = None  # for rule "count": the number reported

    def as_dict(self) -> dict[str, object]:
        """Return the evidence as a JSON-ready dict, leaving out empty fields."""
        out: dict[str, object] = {
            "rule": self.rule,
            "text": self.text,
            "span": [self.start, self.end],
        }
        if self.kind:
            out["kind"] = self.kind
        if self.region:
            out["region"] = self.region
        if self.place:
            out["place"] = self.place
        if self.count is not None:
            out["count"] = self.count
        return out


@dataclass(frozen=True, slots=True)
class Detection:
    """The verdict on one post: what it reports, where, and why."""

    kinds: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    all_clear: bool = False
    score: float = 0.0
    # Why a post that mentions an attack was not flagged (e.g. "past_event", "drill").
    rejected: tuple[str, ...] = field(default=())

    @property
    def alert(self) -> bool:
        """Return True when the post reports a current event in at least one region."""
        return bool(self.kinds and self.regions) and not (self.all_clear or self.rejected)


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A chat that receives alerts: its regions (None: every watched one), language, mute."""

    chat_id: int
    kind: str = "private"  # private | group | supergroup | channel
    language: str = "ru"  # ru | uk | en
    regions: tuple[str, ...] | None = None
    muted_until: datetime | None = None
    active: bool = True
    digest_hour: int | None = None  # local hour of the daily digest; None: no digest

    def wants(self, region: str, now: datetime) -> bool:
        """Return True when an alert in the region should reach this chat now."""
        if not self.active or (self.muted_until is not None and self.muted_until > now):
            return False
        return self.regions is None or region in self.regions
