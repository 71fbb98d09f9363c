"""Incident grouping: the reports of one attack wave in one region become one incident.

A report joins the active incident of each watched region it names; a report that names
no place joins the incidents holding a near-duplicate of it (a forward or a copy, see
bot/similarity.py). A region has at most one active incident at a time. An incident
closes after `quiet_gap` without reports (time is the posts' own dates, so replay and
live agree) or when all-clears have ended every threat kind it has (drones, missiles;
any all-clear ends an incident with neither). A later report starts a new incident, except
a follow-up that sums the attack up (evidence "follow_up": «ночью над Липецком сбиты 8
БПЛА», «по предварительным данным…»): within `FOLLOW_UP_WINDOW` of the region's last
incident it joins that one, which stays closed.

Each incident keeps its posts (members) and derives the rest from them: kinds, largest
counts, channels, independent channels, confidence and official confirmation. A forward
or copy of another channel's post in the incident is not independent; a report within
`echo_window` of another channel's counts half. Confidence is a noisy-or over channels:
a channel of trust w adds 1 - 0.5**w (0.5 at the default trust of 1), half that for an
echo, nothing for a copy; an official report adds 0.9.

An edit re-places its post: a post that no longer reports leaves its incidents, and an
incident left with no reports is retracted. Ids are stable: the region, the first report's
date and a short hash of that post.

Pure: no I/O, no clock. The caller persists what `place` reports as changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import islice

from bot.channels import DEFAULT_SETTINGS, ChannelSettings
from bot.context import CONTEXT_WINDOW
from bot.counts import largest_counts
from bot.detect import KIND_ORDER
from bot.models import Detection, Evidence, Kind, Post
from bot.similarity import NearDuplicateIndex, Shingles, shingles

__all__ = [
    "CONTEXT_WINDOW",
    "FOLLOW_UP_WINDOW",
    "QUIET_GAP",
    "Grouper",
    "GroupingSettings",
    "Incident",
    "Independence",
    "Member",
    "Placement",
    "Role",
    "Status",
    "incident_id",
]

QUIET_GAP = timedelta(hours=3)
# A follow-up («ночью над городом сбиты 8 БПЛА», posted in the morning) joins the region's
# last incident when that one ended no longer ago than this, even after its all-clear.
FOLLOW_UP_WINDOW = timedelta(hours=6)
ECHO_WINDOW = timedelta(seconds=60)
THREAT_KINDS = frozenset({Kind.DRONE.value, Kind.MISSILE.value})
OFFICIAL_CONFIDENCE = 0.9
ECHO_SHARE = 0.5
ECHO_LOOKBACK = 20  # the latest members checked for an echo
# A regionless post joins an incident through a near-duplicate only when it says enough to
# be a copy: «Работает ПВО!» matches every wave's «Работает ПВО!». Forwards always may.
NEAR_DUPLICATE_MIN_SHINGLES = 24  # about 28 characters of words
VOIDS_NOTHING = frozenset({"no_region"})

PostKey = tuple[int, int]


@dataclass(frozen=True, slots=True)
class GroupingSettings:
    """How reports become incidents (INCIDENT_QUIET_HOURS, CONTEXT_MINUTES)."""

    quiet_gap: timedelta = QUIET_GAP
    context_window: timedelta = CONTEXT_WINDOW


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
    COPY = "copy"  # a near-duplicate of another channel's post in the incident
    FORWARD = "forward"


@dataclass(slots=True)
class Member:
    """One post of an incident."""

    channel_id: int
    post_id: int
    date: datetime
    role: Role
    kinds: tuple[str, ...]
    counts: dict[str, int]
    independence: Independence
    via: str  # "first", "region" or "near_duplicate"
    trust: float = 1.0
    official: bool = False
    similar_to: PostKey | None = None
    similarity: float | None = None
    shingles: Shingles | None = field(default=None, repr=False, compare=False)

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
        return max(weight, OFFICIAL_CONFIDENCE) if self.official else weight


@dataclass(slots=True)
class _Stats:
    """An incident's aggregates, kept up to date as reports join (O(1) a report)."""

    reports: int = 0
    kinds: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    channels: dict[int, int] = field(default_factory=dict)  # channel → reports
    originals: dict[int, int] = field(default_factory=dict)  # channel → original reports
    best: dict[int, float] = field(default_factory=dict)  # channel → best weight
    official: bool = False

    def add(self, member: Member) -> None:
        if member.role is not Role.REPORT:
            return
        channel = member.channel_id
        self.reports += 1
        self.kinds.update(member.kinds)
        for kind, value in member.counts.items():
            self.counts[kind] = max(self.counts.get(kind, 0), value)
        self.channels[channel] = self.channels.get(channel, 0) + 1
        if member.independence is Independence.ORIGINAL:
            self.originals[channel] = self.originals.get(channel, 0) + 1
        self.best[channel] = max(self.best.get(channel, 0.0), member.weight)
        self.official = self.official or member.official


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
    cleared: set[str] = field(default_factory=set)  # threat kinds all-clears have ended
    _stats: _Stats | None = field(default=None, repr=False, compare=False)

    def add(self, member: Member) -> None:
        """Add a member, or replace the one with the same post."""
        replaced = self.members.get(member.key)
        self.members[member.key] = member
        if replaced is not None:
            self._stats = None  # rebuilt on next use: edits are rare
            if replaced.role is Role.REPORT:
                self._redate()
        elif self._stats is not None:
            self._stats.add(member)
        if member.role is Role.REPORT and replaced is None:
            self.first_report = min(self.first_report, member.date)
            self.last_report = max(self.last_report, member.date)

    def discard(self, key: PostKey) -> Member | None:
        """Remove a post's member; return it, or None when the post was not a member."""
        member = self.members.pop(key, None)
        if member is not None:
            self._stats = None
            self._redate()
        return member

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
        """Return True when an official channel reported it."""
        return self.stats.official

    @property
    def confidence(self) -> float:
        """Return the noisy-or of the channels' best weights, 0..1."""
        doubt = 1.0
        for weight in self.stats.best.values():
            doubt *= 1 - weight
        return round(1 - doubt, 3)

    def _redate(self) -> None:
        dates = [m.date for m in self.members.values() if m.role is Role.REPORT]
        if dates:
            self.first_report, self.last_report = min(dates), max(dates)


@dataclass(slots=True)
class Placement:
    """What placing one post did: its incidents, and what the caller must persist."""

    incidents: list[str] = field(default_factory=list)  # those it reports, primary first
    regions: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()  # near-duplicate matches that placed it
    changed: dict[str, Incident] = field(default_factory=dict)
    saved: list[tuple[str, Member]] = field(default_factory=list)
    removed: list[tuple[str, PostKey]] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)  # (incident, what happened)

    def merge(self, other: Placement) -> None:
        """Add another placement's changes to these (not its incidents)."""
        self.changed.update(other.changed)
        self.saved += other.saved
        self.removed += other.removed
        self.events += other.events


def incident_id(region: str, post: Post) -> str:
    """Return the stable id of the incident a post starts in a region."""
    digest = hashlib.blake2b(
        f"{post.channel_id}/{post.id}/{region}".encode(), digest_size=3
    ).hexdigest()
    return f"{region}-{post.date:%Y%m%d-%H%M}-{digest}"


def role_of(detection: Detection) -> Role | None:
    """Return what a post's detection makes it: a report, an all-clear, or nothing."""
    if set(detection.rejected) - VOIDS_NOTHING:
        return None
    if detection.all_clear:
        return Role.ALL_CLEAR
    return Role.REPORT if detection.kinds else None


class Grouper:
    """Group reports into incidents; holds the active incidents only."""

    def __init__(
        self, quiet_gap: timedelta = QUIET_GAP, echo_window: timedelta = ECHO_WINDOW
    ) -> None:
        self.quiet_gap = quiet_gap
        self.echo_window = echo_window
        self.active: dict[str, Incident] = {}
        self._by_region: dict[str, str] = {}
        self._posts: dict[PostKey, set[str]] = {}  # post → active incidents holding it
        self._index: NearDuplicateIndex[PostKey] = NearDuplicateIndex()
        self._ended: dict[str, Incident] = {}  # region → its last closed incident
        self.now: datetime | None = None  # the latest post date seen

    # ------------------------------------------------------------------ state

    def restore(self, incidents: Iterable[Incident], texts: dict[PostKey, str]) -> None:
        """Take back incidents persisted earlier (shingles from the posts' texts).

        Active incidents come back in full; recently closed ones only as the region's last
        incident, for follow-ups.
        """
        for incident in incidents:
            if incident.status is Status.CLOSED:
                last = self._ended.get(incident.region)
                if last is None or incident.last_report >= last.last_report:
                    self._ended[incident.region] = incident
                continue
            if incident.status is not Status.ACTIVE:
                continue
            for member in incident.members.values():
                if member.shingles is None and member.key in texts:
                    member.shingles = shingles(texts[member.key])
            self._activate(incident)
            if self.now is None or incident.last_report > self.now:
                self.now = incident.last_report

    def holds(self, key: PostKey) -> bool:
        """Return True when the post is a member of an active incident."""
        return key in self._posts

    def _activate(self, incident: Incident) -> None:
        self.active[incident.id] = incident
        self._by_region[incident.region] = incident.id
        for member in incident.members.values():
            self._track(incident.id, member)

    def _track(self, incident: str, member: Member) -> None:
        self._posts.setdefault(member.key, set()).add(incident)
        if member.role is Role.REPORT and member.shingles is not None:
            self._index.add(member.key, member.shingles)

    def _untrack(self, incident: str, key: PostKey) -> None:
        holders = self._posts.get(key)
        if holders is None:
            return
        holders.discard(incident)
        if not holders:
            del self._posts[key]
            self._index.remove(key)

    def _deactivate(self, incident: Incident, status: Status, reason: str, out: Placement) -> None:
        incident.status = status
        incident.closed_reason = reason
        self.active.pop(incident.id, None)
        if self._by_region.get(incident.region) == incident.id:
            del self._by_region[incident.region]
        for key in incident.members:
            self._untrack(incident.id, key)
        if status is Status.CLOSED:
            self._ended[incident.region] = incident
        elif self._ended.get(incident.region) is incident:
            del self._ended[incident.region]
        out.changed[incident.id] = incident
        out.events.append((incident.id, reason if status is Status.CLOSED else "retracted"))

    # ------------------------------------------------------------------ time

    def close_quiet(self, now: datetime) -> Placement:
        """Close incidents with no report for `quiet_gap` before `now`."""
        out = Placement()
        if self.now is None or now > self.now:
            self.now = now
        for incident in list(self.active.values()):
            if incident.last_report + self.quiet_gap <= now:
                self._deactivate(incident, Status.CLOSED, "quiet", out)
        return out

    # ------------------------------------------------------------------ placing

    def place(
        self,
        post: Post,
        detection: Detection,
        watched: Sequence[str],
        channel: ChannelSettings = DEFAULT_SETTINGS,
        *,
        earlier: Iterable[Incident] = (),
    ) -> Placement:
        """Place a post (new or edited) in its incidents; return what changed.

        `watched` are the detection's regions that are watched. `earlier` are closed
        incidents that hold this post (an edit of an old post), loaded by the caller.
        """
        out = self.close_quiet(post.date)
        key = (post.channel_id, post.id)
        holding = {i: self.active[i] for i in self._posts.get(key, ())}
        holding.update({incident.id: incident for incident in earlier})
        role = role_of(detection)
        signature = shingles(post.text) if role is Role.REPORT else None

        targets: dict[str, Incident | None] = {}  # region → incident (None: a new one)
        via: dict[str, str] = {}
        follow_up = role is Role.REPORT and any(e.rule == "follow_up" for e in detection.evidence)
        if role is not None:
            for region in watched:
                kept = next((i for i in holding.values() if i.region == region), None)
                targets[region] = kept or self._joinable(region, post.date)
                via[region] = "region"
                if targets[region] is None and follow_up:
                    targets[region] = self._followed(region, post.date)
                    via[region] = "follow_up"
        evidence: list[Evidence] = []
        if role is Role.REPORT and not detection.regions and self._may_copy(post, signature):
            for incident, match, score in self._near_duplicates(key, signature):
                if incident.region in targets:
                    continue
                targets[incident.region] = incident
                via[incident.region] = "near_duplicate"
                evidence.append(
                    Evidence(
                        rule="near_duplicate",
                        text=f"{match[0]}/{match[1]} ({score:.2f})",
                        start=0,
                        end=0,
                        region=incident.region,
                    )
                )
        out.evidence = tuple(evidence)

        for incident in holding.values():
            if targets.get(incident.region) is not incident:
                self._leave(incident, key, out)
        if role is None:
            return out

        counts = largest_counts(detection.evidence)
        regions: list[str] = []
        for region, target in targets.items():
            if role is Role.ALL_CLEAR:
                if target is not None and target.status is Status.ACTIVE:
                    self._clear(target, post, detection, channel, out)
                continue
            if target is None:
                target = Incident(incident_id(region, post), region, post.date, post.date)
                self._activate(target)
                out.events.append((target.id, "created"))
            member = self._member(target, post, detection.kinds, counts, channel, via[region])
            member.shingles = signature
            self._judge(target, member, post, signature)
            self._join(target, member, out)
            out.incidents.append(target.id)
            regions.append(region)
        out.regions = tuple(regions)
        return out

    def _followed(self, region: str, date: datetime) -> Incident | None:
        """Return the region's last closed incident if a follow-up of `date` sums it up."""
        last = self._ended.get(region)
        if last is None or last.status is not Status.CLOSED:
            return None
        if last.last_report <= date <= last.last_report + FOLLOW_UP_WINDOW:
            return last
        return None

    @staticmethod
    def _may_copy(post: Post, signature: Shingles | None) -> bool:
        """Return True when a regionless post says enough to be placed by what it copies."""
        if signature is None:
            return False
        return bool(post.forwarded_from) or len(signature.hashes) >= NEAR_DUPLICATE_MIN_SHINGLES

    def _joinable(self, region: str, date: datetime) -> Incident | None:
        """Return the region's active incident if a report of `date` belongs to it."""
        found = self._by_region.get(region)
        if found is None:
            return None
        incident = self.active[found]
        gap = self.quiet_gap
        if incident.first_report - gap <= date <= incident.last_report + gap:
            return incident
        return None

    def _near_duplicates(
        self, key: PostKey, signature: Shingles | None
    ) -> list[tuple[Incident, PostKey, float]]:
        """Return each active incident holding a near-duplicate, with its best match."""
        if signature is None:
            return []
        found: list[tuple[Incident, PostKey, float]] = []
        seen: set[str] = set()
        for match, score in self._index.similar(signature):
            if match == key:
                continue
            for incident in sorted(self._posts.get(match, ())):
                if incident not in seen:
                    seen.add(incident)
                    found.append((self.active[incident], match, score))
        return found

    def _member(
        self,
        incident: Incident,
        post: Post,
        kinds: tuple[str, ...],
        counts: dict[str, int],
        channel: ChannelSettings,
        via: str,
    ) -> Member:
        """Return the post's member record for the incident (an edit keeps how it joined)."""
        existing = incident.members.get((post.channel_id, post.id))
        if existing is not None:
            return replace(
                existing,
                role=Role.REPORT,
                kinds=kinds,
                counts=counts,
                trust=channel.trust,
                official=channel.official,
            )
        first = incident.stats.reports == 0
        return Member(
            post.channel_id,
            post.id,
            post.date,
            Role.REPORT,
            kinds,
            counts,
            Independence.ORIGINAL,
            "first" if first else via,
            channel.trust,
            channel.official,
        )

    def _judge(
        self, incident: Incident, member: Member, post: Post, signature: Shingles | None
    ) -> None:
        """Say whether a new member is a forward, a copy, an echo or an original report.

        Only another channel's report in the incident makes a post less than original.
        """
        if member.key in incident.members or member.via == "first":
            return
        channels = incident.stats.channels
        if not channels or set(channels) == {post.channel_id}:
            return
        if post.forwarded_from:
            member.independence = Independence.FORWARD
            return
        if signature is not None:
            best: tuple[float, PostKey] | None = None
            for match in self._index.candidates(signature):
                other = incident.members.get(match)
                if other is None or other.role is not Role.REPORT or match[0] == post.channel_id:
                    continue
                score = self._index.similarity(match, signature)
                if score >= self._index.threshold and (best is None or score > best[0]):
                    best = (score, match)
            if best is not None:
                member.independence = Independence.COPY
                member.similar_to, member.similarity = best[1], round(best[0], 3)
                return
        for other in islice(reversed(incident.members.values()), ECHO_LOOKBACK):
            if (
                other.channel_id != post.channel_id
                and other.role is Role.REPORT
                and timedelta(0) <= post.date - other.date <= self.echo_window
            ):
                member.independence = Independence.ECHO
                return

    def _join(self, incident: Incident, member: Member, out: Placement) -> None:
        is_new = member.key not in incident.members
        incident.add(member)
        if incident.status is Status.ACTIVE:
            self._track(incident.id, member)
        out.changed[incident.id] = incident
        out.saved.append((incident.id, member))
        out.events.append((incident.id, "joined" if is_new else "updated"))

    def _leave(self, incident: Incident, key: PostKey, out: Placement) -> None:
        if incident.discard(key) is None:
            return
        self._untrack(incident.id, key)
        out.changed[incident.id] = incident
        out.removed.append((incident.id, key))
        out.events.append((incident.id, "left"))
        if incident.stats.reports == 0 and incident.status is not Status.RETRACTED:
            self._deactivate(incident, Status.RETRACTED, "retracted", out)

    def _clear(
        self,
        incident: Incident,
        post: Post,
        detection: Detection,
        channel: ChannelSettings,
        out: Placement,
    ) -> None:
        """Record an all-clear; close the incident once no threat kind is left."""
        member = Member(
            post.channel_id,
            post.id,
            post.date,
            Role.ALL_CLEAR,
            detection.kinds,
            {},
            Independence.ORIGINAL,
            "region",
            channel.trust,
            channel.official,
        )
        incident.add(member)
        self._track(incident.id, member)
        out.changed[incident.id] = incident
        out.saved.append((incident.id, member))
        ended = set(detection.kinds) & THREAT_KINDS or set(THREAT_KINDS)
        incident.cleared |= ended
        out.events.append((incident.id, "all_clear"))
        if set(incident.kinds) & THREAT_KINDS <= incident.cleared:
            self._deactivate(incident, Status.CLOSED, "all_clear", out)
