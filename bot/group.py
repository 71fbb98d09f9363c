"""Incident grouping: the reports of one attack wave in one region become one incident.

A report joins the active incident of each watched region it names; a report that names
no place joins the incidents holding a near-duplicate of it (a forward or a copy, see
bot/similarity.py). A region has at most one active incident at a time. An incident
closes after `quiet_gap` without reports (time is the posts' own dates, so replay and
live agree) or when all-clears have ended every threat kind it has (drones, missiles;
any all-clear ends an incident with neither). A later report starts a new incident.

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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from bot.channels import DEFAULT_SETTINGS, ChannelSettings
from bot.context import CONTEXT_WINDOW
from bot.counts import largest_counts
from bot.detect import KIND_ORDER
from bot.models import Detection, Evidence, Kind, Post
from bot.similarity import NearDuplicateIndex, Shingles, jaccard, shingles

__all__ = [
    "CONTEXT_WINDOW",
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
ECHO_WINDOW = timedelta(seconds=60)
THREAT_KINDS = frozenset({Kind.DRONE.value, Kind.MISSILE.value})
OFFICIAL_CONFIDENCE = 0.9
ECHO_SHARE = 0.5
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
class Incident:
    """One attack wave in one region, and the posts that report it."""

    id: str
    region: str
    first_report: datetime
    last_report: datetime
    status: Status = Status.ACTIVE
    closed_reason: str | None = None
    members: dict[PostKey, Member] = field(default_factory=dict)
    cleared: set[str] = field(default_factory=set)  # threat kinds all-clears have ended

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
        found = {kind for m in self.members.values() if m.role is Role.REPORT for kind in m.kinds}
        return tuple(k.value for k in KIND_ORDER if k.value in found)

    @property
    def counts(self) -> dict[str, int]:
        """Return the largest count reported for each kind."""
        largest: dict[str, int] = {}
        for member in self.reports:
            for kind, value in member.counts.items():
                largest[kind] = max(largest.get(kind, 0), value)
        return largest

    @property
    def channels(self) -> int:
        """Return how many channels reported it."""
        return len({m.channel_id for m in self.reports})

    @property
    def independent(self) -> int:
        """Return how many channels reported it on their own (not a forward, copy or echo)."""
        return len({m.channel_id for m in self.reports if m.independence is Independence.ORIGINAL})

    @property
    def official(self) -> bool:
        """Return True when an official channel reported it."""
        return any(m.official for m in self.reports)

    @property
    def confidence(self) -> float:
        """Return the noisy-or of the channels' best weights, 0..1."""
        best: dict[int, float] = {}
        for member in self.reports:
            best[member.channel_id] = max(best.get(member.channel_id, 0.0), member.weight)
        doubt = 1.0
        for weight in best.values():
            doubt *= 1 - weight
        return round(1 - doubt, 3)

    def _redate(self) -> None:
        reports = self.reports
        if reports:
            self.first_report = reports[0].date
            self.last_report = max(m.date for m in reports)


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
        self.now: datetime | None = None  # the latest post date seen

    # ------------------------------------------------------------------ state

    def restore(self, incidents: Iterable[Incident], texts: dict[PostKey, str]) -> None:
        """Take back the active incidents persisted earlier (shingles from the posts' texts)."""
        for incident in incidents:
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
        counts = largest_counts(detection.evidence)
        signature = shingles(post.text) if role is Role.REPORT else None

        targets: dict[str, Incident | None] = {}  # region → incident (None: a new one)
        via: dict[str, str] = {}
        if role is not None:
            for region in watched:
                kept = next((i for i in holding.values() if i.region == region), None)
                targets[region] = kept or self._joinable(region, post.date)
                via[region] = "region"
        evidence: list[Evidence] = []
        if role is Role.REPORT and not detection.regions and signature is not None:
            for incident, match, score in self._near_duplicates(key, signature):
                if incident.region not in targets:
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
            member = self._member(
                target, post, detection.kinds, counts, channel, signature, via[region]
            )
            self._join(target, member, out)
            out.incidents.append(target.id)
            regions.append(region)
        out.regions = tuple(regions)
        return out

    def _joinable(self, region: str, date: datetime) -> Incident | None:
        """Return the region's active incident if a report of `date` belongs to it."""
        incident_id_ = self._by_region.get(region)
        if incident_id_ is None:
            return None
        incident = self.active[incident_id_]
        gap = self.quiet_gap
        if incident.first_report - gap <= date <= incident.last_report + gap:
            return incident
        return None

    def _near_duplicates(
        self, key: PostKey, signature: Shingles
    ) -> list[tuple[Incident, PostKey, float]]:
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
        signature: Shingles | None,
        via: str,
    ) -> Member:
        """Return the post's member record for the incident, judging its independence."""
        key = (post.channel_id, post.id)
        existing = incident.members.get(key)
        if existing is not None:  # an edit keeps how it joined and what it copied
            existing.role, existing.kinds, existing.counts = Role.REPORT, kinds, counts
            existing.shingles = signature
            existing.trust, existing.official = channel.trust, channel.official
            return existing
        member = Member(
            post.channel_id,
            post.id,
            post.date,
            Role.REPORT,
            kinds,
            counts,
            Independence.ORIGINAL,
            via if incident.reports else "first",
            channel.trust,
            channel.official,
            shingles=signature,
        )
        others = [
            m
            for m in incident.reports
            if m.channel_id != post.channel_id and m.date <= post.date and m.key != key
        ]
        if not others:
            return member
        if post.forwarded_from:
            member.independence = Independence.FORWARD
            return member
        best: tuple[float, PostKey] | None = None
        if signature is not None:
            for other in others:
                if other.shingles is None:
                    continue
                score = jaccard(signature, other.shingles)
                if score >= self._index.threshold and (best is None or score > best[0]):
                    best = (score, other.key)
        if best is not None:
            member.independence = Independence.COPY
            member.similarity, member.similar_to = round(best[0], 3), best[1]
        elif any(post.date - m.date <= self.echo_window for m in others):
            member.independence = Independence.ECHO
        return member

    def _join(self, incident: Incident, member: Member, out: Placement) -> None:
        is_new = member.key not in incident.members
        incident.members[member.key] = member
        incident._redate()
        if incident.status is Status.ACTIVE:
            self._track(incident.id, member)
        out.changed[incident.id] = incident
        out.saved.append((incident.id, member))
        out.events.append((incident.id, "joined" if is_new else "updated"))

    def _leave(self, incident: Incident, key: PostKey, out: Placement) -> None:
        if incident.members.pop(key, None) is None:
            return
        self._untrack(incident.id, key)
        out.changed[incident.id] = incident
        out.removed.append((incident.id, key))
        out.events.append((incident.id, "left"))
        if incident.reports:
            incident._redate()
        elif incident.status is not Status.RETRACTED:
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
        incident.members[member.key] = member
        self._posts.setdefault(member.key, set()).add(incident.id)
        out.changed[incident.id] = incident
        out.saved.append((incident.id, member))
        ended = set(detection.kinds) & THREAT_KINDS or set(THREAT_KINDS)
        incident.cleared |= ended
        out.events.append((incident.id, "all_clear"))
        if set(incident.kinds) & THREAT_KINDS <= incident.cleared:
            self._deactivate(incident, Status.CLOSED, "all_clear", out)
