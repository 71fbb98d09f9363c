"""Incidents and their member posts: what grouping builds and storage keeps.

An incident derives everything from its members: kinds, largest counts, channels,
independent channels, confidence, official confirmation, first and last report, and which
threat kinds all-clears have ended. The aggregates are kept current as posts join (O(1) a
post) and rebuilt after a post is replaced or leaves (edits are rare).

Confidence is a noisy-or over channels: a channel of trust w adds 1 - 0.5**w (0.5 at the
default trust of 1), half that for an echo, nothing for a forward or a copy; an official
channel's own report adds at least 0.9.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from bot.detect import KIND_ORDER
from bot.models import Kind, PostKey

__all__ = [
    "THREAT_KINDS",
    "Incident",
    "Independence",
    "Member",
    "Role",
    "Status",
    "Via",
]

THREAT_KINDS = frozenset({Kind.DRONE.value, Kind.MISSILE.value})
ALL_THREATS = "*"  # what an all-clear that names no kind ends
OFFICIAL_CONFIDENCE = 0.9
ECHO_SHARE = 0.5


class Status(StrEnum):
    """Where an incident stands."""

    ACTIVE = "active"
    CLOSED = "closed"
    RETRACTED = "retracted"


class Role(StrEnum):
    """What a member post does for its incident."""

    REPORT = "report"
    ALL_CLEAR = "all_clear"


class Independence(StrEnum):
    """How much a report adds to what its incident already had."""

    ORIGINAL = "original"
    ECHO = "echo"  # another channel reported it seconds before
    COPY = "copy"  # a near-duplicate of another channel's earlier post in the incident
    FORWARD = "forward"


class Via(StrEnum):
    """How a post came into its incident."""

    FIRST = "first"  # it started the incident
    REGION = "region"  # it names the incident's region
    NEAR_DUPLICATE = "near_duplicate"  # it names no place and copies a post of the incident
    FOLLOW_UP = "follow_up"  # it sums the attack up after the incident ended


@dataclass(slots=True)
class Member:
    """One post of an incident."""

    channel_id: int
    post_id: int
    date: datetime
    role: Role
    kinds: tuple[str, ...]
    counts: dict[str, int]
    independence: Independence = Independence.ORIGINAL
    via: Via = Via.REGION
    trust: float = 1.0
    official: bool = False
    forwarded: bool = False
    similar_to: PostKey | None = None
    similarity: float | None = None

    @property
    def key(self) -> PostKey:
        """Return (channel_id, post id)."""
        return (self.channel_id, self.post_id)

    @property
    def weight(self) -> float:
        """Return what this post adds to its incident's confidence."""
        if self.role is not Role.REPORT:
            return 0.0
        share = {Independence.ORIGINAL: 1.0, Independence.ECHO: ECHO_SHARE}.get(
            self.independence, 0.0
        )
        weight: float = share * (1 - 0.5**self.trust)
        return max(weight, OFFICIAL_CONFIDENCE) if self.official and share else weight


@dataclass(slots=True)
class _Stats:
    """An incident's aggregates, kept up to date as members join."""

    reports: int = 0
    kinds: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    channels: dict[int, int] = field(default_factory=dict)  # channel → reports
    originals: dict[int, int] = field(default_factory=dict)  # channel → original reports
    best: dict[int, float] = field(default_factory=dict)  # channel → best weight
    official: bool = False
    last_live: datetime | None = None  # the latest report that is not a follow-up
    reported: dict[str, datetime] = field(default_factory=dict)  # kind → latest report
    cleared: dict[str, datetime] = field(default_factory=dict)  # kind or "*" → latest all-clear

    def add(self, member: Member) -> None:
        if member.role is Role.ALL_CLEAR:
            for kind in (set(member.kinds) & THREAT_KINDS) or {ALL_THREATS}:
                self.cleared[kind] = max(self.cleared.get(kind, member.date), member.date)
            return
        channel = member.channel_id
        self.reports += 1
        self.kinds.update(member.kinds)
        for kind in member.kinds:
            self.reported[kind] = max(self.reported.get(kind, member.date), member.date)
        for kind, value in member.counts.items():
            self.counts[kind] = max(self.counts.get(kind, 0), value)
        self.channels[channel] = self.channels.get(channel, 0) + 1
        if member.independence is Independence.ORIGINAL:
            self.originals[channel] = self.originals.get(channel, 0) + 1
        self.best[channel] = max(self.best.get(channel, 0.0), member.weight)
        self.official = self.official or (member.official and member.weight > 0)
        if member.via is not Via.FOLLOW_UP and (
            self.last_live is None or member.date > self.last_live
        ):
            self.last_live = member.date


@dataclass(slots=True)
class Incident:
    """One attack wave in one region, and the posts that report it.

    Change members through `add` and `discard`, which keep the aggregates current.
    """

    id: str
    region: str
    first_report: datetime
    last_report: datetime
    status: Status = Status.ACTIVE
    closed_reason: str | None = None
    members: dict[PostKey, Member] = field(default_factory=dict)
    _stats: _Stats | None = field(default=None, repr=False, compare=False)

    def add(self, member: Member) -> None:
        """Add a member, or replace the one with the same post."""
        replaced = self.members.get(member.key)
        self.members[member.key] = member
        if replaced is not None:
            self.changed()
        else:
            if self._stats is not None:
                self._stats.add(member)
            if member.role is Role.REPORT:
                self.first_report = min(self.first_report, member.date)
                self.last_report = max(self.last_report, member.date)

    def discard(self, key: PostKey) -> Member | None:
        """Remove a post's member; return it, or None when the post was not a member."""
        member = self.members.pop(key, None)
        if member is not None:
            self.changed()
        return member

    def changed(self) -> None:
        """Rebuild the aggregates and dates after members changed in place."""
        self._stats = None
        dates = [m.date for m in self.members.values() if m.role is Role.REPORT]
        if dates:
            self.first_report, self.last_report = min(dates), max(dates)

    @property
    def stats(self) -> _Stats:
        """Return the aggregates, rebuilding them after a change that needs it."""
        if self._stats is None:
            self._stats = _Stats()
            for member in self.members.values():
                self._stats.add(member)
        return self._stats

    @property
    def reports(self) -> list[Member]:
        """Return the members that report the event, oldest first."""
        return sorted(
            (m for m in self.members.values() if m.role is Role.REPORT),
            key=lambda m: (m.date, m.channel_id, m.post_id),
        )

    @property
    def kinds(self) -> tuple[str, ...]:
        """Return every kind reported, in the usual order."""
        found = self.stats.kinds
        return tuple(k.value for k in KIND_ORDER if k.value in found)

    @property
    def counts(self) -> dict[str, int]:
        """Return the largest count reported for each kind."""
        return dict(self.stats.counts)

    @property
    def channels(self) -> int:
        """Return how many channels reported it."""
        return len(self.stats.channels)

    @property
    def independent(self) -> int:
        """Return how many channels reported it on their own (not a forward, copy or echo)."""
        return len(self.stats.originals)

    @property
    def official(self) -> bool:
        """Return True when an official channel reported it itself."""
        return self.stats.official

    @property
    def confidence(self) -> float:
        """Return the noisy-or of the channels' best weights, 0..1."""
        doubt = 1.0
        for weight in self.stats.best.values():
            doubt *= 1 - weight
        return round(1 - doubt, 3)

    @property
    def last_live_report(self) -> datetime:
        """Return the latest report that is not a follow-up (the end of the wave itself)."""
        return self.stats.last_live or self.last_report

    @property
    def cleared(self) -> set[str]:
        """Return the threat kinds whose latest all-clear came after their latest report."""
        stats = self.stats
        found = set()
        for kind in THREAT_KINDS:
            ended = max(
                (stats.cleared[k] for k in (kind, ALL_THREATS) if k in stats.cleared),
                default=None,
            )
            reported = stats.reported.get(kind)
            if ended is not None and (reported is None or ended >= reported):
                found.add(kind)
        return found

    @property
    def ended_by_all_clear(self) -> bool:
        """Return True when all-clears have ended every threat kind the incident has.

        An incident with no threat kind (explosions, air defence) ends at any all-clear
        after its last report.
        """
        threats = set(self.kinds) & THREAT_KINDS
        if threats:
            return threats <= self.cleared
        latest = max(self.stats.cleared.values(), default=None)
        return latest is not None and latest >= self.last_report
