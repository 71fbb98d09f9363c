"""Incident grouping: the reports of one attack wave in one region become one incident.

A report joins the active incident of each watched region it names; a report that names
no place joins the incidents holding a near-duplicate of it (a forward, or a copy that says
enough; see bot/similarity.py). A region has at most one active incident at a time. An
incident closes after `quiet_gap` without reports (time is the posts' own dates, so replay
and live agree) or when all-clears have ended every threat kind it has (drones, missiles;
any all-clear ends an incident with neither). A later report starts a new incident, except
a follow-up that sums the attack up (evidence "follow_up": «ночью над Липецком сбиты 8
БПЛА»): within `FOLLOW_UP_WINDOW` of the wave's last report it joins the region's last
incident, which stays closed. A report older than `quiet_gap` before the newest post seen
(catch-up after downtime) starts an incident that is closed at once.

A forward or copy of another channel's earlier post in the incident is not independent; a
report within `echo_window` of another channel's is an echo (see bot/incident.py for what
that weighs). An edit places its post again: a post that no longer reports leaves its
incidents, and an incident left with no reports is retracted.

Ids are stable: the region, the date of the post that started the incident, and a short
hash of that post (and of its edit, when an edit started it).

Pure: no I/O, no clock. The caller persists what `place` reports as changed, and hands in
closed incidents an edited post belongs to.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import islice

from bot.channels import DEFAULT_SETTINGS, ChannelSettings
from bot.context import CONTEXT_WINDOW, VOIDS_NOTHING
from bot.counts import largest_counts
from bot.incident import Incident, Independence, Member, Role, Status, Via
from bot.models import Detection, Evidence, Post, PostKey
from bot.similarity import NearDuplicateIndex, Shingles, shingles

__all__ = [
    "FOLLOW_UP_WINDOW",
    "QUIET_GAP",
    "Grouper",
    "GroupingSettings",
    "Placement",
    "incident_id",
    "role_of",
]

QUIET_GAP = timedelta(hours=3)
# A follow-up («ночью над городом сбиты 8 БПЛА», posted in the morning) joins the region's
# last incident when its wave ended no longer ago than this, even after an all-clear.
FOLLOW_UP_WINDOW = timedelta(hours=6)
ECHO_WINDOW = timedelta(seconds=60)
ECHO_LOOKBACK = 20  # the latest members checked for an echo
# A regionless post joins an incident through a near-duplicate only when it says enough to
# be a copy: «Работает ПВО!» matches every wave's «Работает ПВО!». Forwards always may.
NEAR_DUPLICATE_MIN_SHINGLES = 24  # about 28 characters of words
# Reports of an incident kept in the near-duplicate index, the latest ones: copies follow
# their original within minutes, and memory stays bounded however long a wave lasts.
INDEXED_PER_INCIDENT = 300
KNOWN_CLOSED = 1000  # closed incidents kept in memory, so each has one object


@dataclass(frozen=True, slots=True)
class GroupingSettings:
    """How reports become incidents (INCIDENT_QUIET_HOURS, CONTEXT_MINUTES)."""

    quiet_gap: timedelta = QUIET_GAP
    context_window: timedelta = CONTEXT_WINDOW


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


def incident_id(region: str, post: Post) -> str:
    """Return the stable id of the incident a post starts in a region."""
    seed = f"{post.channel_id}/{post.id}/{region}"
    if post.edit_date is not None:
        seed += f"/{post.edit_date.timestamp():.0f}"
    digest = hashlib.blake2b(seed.encode(), digest_size=3).hexdigest()
    return f"{region}-{post.date:%Y%m%d-%H%M}-{digest}"


def role_of(detection: Detection) -> Role | None:
    """Return what a post's detection makes it: a report, an all-clear, or nothing."""
    if set(detection.rejected) - VOIDS_NOTHING:
        return None
    if detection.all_clear:
        return Role.ALL_CLEAR
    return Role.REPORT if detection.kinds else None


class Grouper:
    """Group reports into incidents; holds the active incidents and a few closed ones."""

    def __init__(
        self, quiet_gap: timedelta = QUIET_GAP, echo_window: timedelta = ECHO_WINDOW
    ) -> None:
        self.quiet_gap = quiet_gap
        self.echo_window = echo_window
        self.active: dict[str, Incident] = {}
        self.now: datetime | None = None  # the newest post date seen: "now" for grouping
        self._by_region: dict[str, str] = {}
        self._posts: dict[PostKey, set[str]] = {}  # post → active incidents holding it
        self._index: NearDuplicateIndex[PostKey] = NearDuplicateIndex()
        self._indexed: dict[str, deque[PostKey]] = {}  # incident → its posts in the index
        self._ended: dict[str, Incident] = {}  # region → its last closed incident
        self._closed: OrderedDict[str, Incident] = OrderedDict()  # id → closed incident

    # ------------------------------------------------------------------ state

    def restore(self, incidents: Iterable[Incident], texts: dict[PostKey, str]) -> None:
        """Take back incidents persisted earlier (shingles from the posts' texts).

        Active incidents come back in full; closed ones as the region's last incident, for
        follow-ups.
        """
        for incident in incidents:
            if incident.status is Status.CLOSED:
                self._remember_closed(incident)
                continue
            if incident.status is not Status.ACTIVE:
                continue
            self._activate(incident)
            for member in incident.reports[-INDEXED_PER_INCIDENT:]:
                if member.key in texts:
                    self._index_post(incident.id, member.key, shingles(texts[member.key]))
            if self.now is None or incident.last_report > self.now:
                self.now = incident.last_report

    def adopt(self, incident: Incident) -> Incident:
        """Return the object held for this incident's id, holding the given one if none.

        The caller loads closed incidents from the database for edits; one object per id
        keeps memory and the database from drifting apart.
        """
        held = self.active.get(incident.id) or self._closed.get(incident.id)
        if held is not None:
            return held
        if incident.status is not Status.ACTIVE:
            self._remember_closed(incident)
        return incident

    def holds(self, key: PostKey) -> bool:
        """Return True when the post is a member of an active incident."""
        return key in self._posts

    def _remember_closed(self, incident: Incident) -> None:
        self._closed[incident.id] = incident
        self._closed.move_to_end(incident.id)
        while len(self._closed) > KNOWN_CLOSED:
            self._closed.popitem(last=False)
        if incident.status is not Status.CLOSED:
            return
        last = self._ended.get(incident.region)
        if last is None or incident.last_live_report >= last.last_live_report:
            self._ended[incident.region] = incident

    def _activate(self, incident: Incident) -> None:
        self.active[incident.id] = incident
        self._by_region[incident.region] = incident.id
        for member in incident.members.values():
            self._posts.setdefault(member.key, set()).add(incident.id)

    def _index_post(self, incident: str, key: PostKey, signature: Shingles) -> None:
        """Index a report for near-duplicates, keeping each incident's latest few only."""
        if not signature.hashes:
            return
        self._index.add(key, signature)
        indexed = self._indexed.setdefault(incident, deque())
        indexed.append(key)
        if len(indexed) > INDEXED_PER_INCIDENT:
            self._index.remove(indexed.popleft())

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
        if self.active.pop(incident.id, None) is not None:
            if self._by_region.get(incident.region) == incident.id:
                del self._by_region[incident.region]
            for key in incident.members:
                self._untrack(incident.id, key)
            for key in self._indexed.pop(incident.id, ()):
                self._index.remove(key)
        if self._ended.get(incident.region) is incident:
            del self._ended[incident.region]
        self._remember_closed(incident)
        out.changed[incident.id] = incident
        out.events.append((incident.id, "retracted" if status is Status.RETRACTED else "closed"))

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
        for loaded in earlier:
            incident = self.adopt(loaded)
            holding[incident.id] = incident
        role = role_of(detection)
        signature = shingles(post.text) if role is Role.REPORT else None
        targets, via = self._targets(post, detection, watched, role, holding, signature, out)

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
                elif target is not None:
                    self._leave(target, key, out)  # a closed incident's report, now an all-clear
                continue
            if target is None:
                target = self._start(region, post, out)
            member = self._member(target, post, detection.kinds, counts, channel, via[region])
            self._judge(target, member, signature)
            self._join(target, member, out, signature)
            if target.status is Status.ACTIVE and post.date + self.quiet_gap <= (
                self.now or post.date
            ):
                self._deactivate(target, Status.CLOSED, "quiet", out)  # a late report
            out.incidents.append(target.id)
            regions.append(region)
        out.regions = tuple(regions)
        return out

    def _targets(
        self,
        post: Post,
        detection: Detection,
        watched: Sequence[str],
        role: Role | None,
        holding: dict[str, Incident],
        signature: Shingles | None,
        out: Placement,
    ) -> tuple[dict[str, Incident | None], dict[str, Via]]:
        """Return the incident a post belongs to in each region (None: a new one)."""
        targets: dict[str, Incident | None] = {}
        via: dict[str, Via] = {}
        if role is None:
            return targets, via
        key = (post.channel_id, post.id)
        follow_up = role is Role.REPORT and any(e.rule == "follow_up" for e in detection.evidence)
        for region in watched:
            kept = next((i for i in holding.values() if i.region == region), None)
            if kept is not None:
                targets[region], via[region] = kept, Via.REGION
            elif (joinable := self._joinable(region, post.date)) is not None:
                targets[region], via[region] = joinable, Via.REGION
            elif follow_up and (ended := self._followed(region, post.date)) is not None:
                targets[region], via[region] = ended, Via.FOLLOW_UP
            else:
                targets[region], via[region] = None, Via.REGION
        if role is not Role.REPORT or detection.regions:
            return targets, via
        for incident in holding.values():  # an edited copy keeps the incident it copied
            member = incident.members.get(key)
            if member is not None and member.via is Via.NEAR_DUPLICATE:
                targets[incident.region], via[incident.region] = incident, Via.NEAR_DUPLICATE
        if not self._may_copy(post, signature):
            return targets, via
        evidence = []
        for incident, match, score in self._near_duplicates(key, signature):
            if incident.region in targets:
                continue
            targets[incident.region], via[incident.region] = incident, Via.NEAR_DUPLICATE
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
        return targets, via

    def _start(self, region: str, post: Post, out: Placement) -> Incident:
        """Start an incident in a region with this post (an unused id, even after edits)."""
        base = incident_id(region, post)
        new_id, suffix = base, 1
        while new_id in self.active or new_id in self._closed:
            suffix += 1
            new_id = f"{base}-{suffix}"
        incident = Incident(new_id, region, post.date, post.date)
        if region in self._by_region:  # a late report beside the region's live incident
            self.active[incident.id] = incident
        else:
            self._activate(incident)
        out.events.append((incident.id, "created"))
        return incident

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

    def _followed(self, region: str, date: datetime) -> Incident | None:
        """Return the region's last closed incident if a follow-up of `date` sums it up."""
        last = self._ended.get(region)
        if last is None or last.status is not Status.CLOSED:
            return None
        wave_end = last.last_live_report
        if wave_end <= date <= wave_end + FOLLOW_UP_WINDOW:
            return last
        return None

    @staticmethod
    def _may_copy(post: Post, signature: Shingles | None) -> bool:
        """Return True when a regionless post says enough to be placed by what it copies."""
        if signature is None:
            return False
        return bool(post.forwarded_from) or len(signature.hashes) >= NEAR_DUPLICATE_MIN_SHINGLES

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
        via: Via,
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
        return Member(
            post.channel_id,
            post.id,
            post.date,
            Role.REPORT,
            kinds,
            counts,
            via=Via.FIRST if incident.stats.reports == 0 else via,
            trust=channel.trust,
            official=channel.official,
            forwarded=bool(post.forwarded_from),
        )

    def _judge(
        self,
        incident: Incident,
        member: Member,
        signature: Shingles | None,
        others_before: bool | None = None,
    ) -> None:
        """Say whether a report is a forward, a copy, an echo or an original.

        Only another channel's earlier report in the incident makes a post less than
        original: the first report of an incident is original whatever it is.
        `others_before` says whether another channel reported earlier; by default, whether
        any other channel reported at all (reports mostly come in order).
        """
        member.independence = Independence.ORIGINAL
        member.similar_to = member.similarity = None
        if others_before is None:
            others_before = any(c != member.channel_id for c in incident.stats.channels)
        if not others_before:
            return
        if member.forwarded:
            member.independence = Independence.FORWARD
            return

        def earlier(key: PostKey) -> bool:
            other = incident.members.get(key)
            return (
                other is not None
                and other.role is Role.REPORT
                and other.channel_id != member.channel_id
                and other.date <= member.date
                and key != member.key
            )

        if signature is not None:
            candidates = [key for key in self._index.candidates(signature) if earlier(key)]
            copied = self._index.matches(signature, candidates)
            if copied:
                member.independence = Independence.COPY
                member.similar_to, member.similarity = copied[0][0], round(copied[0][1], 3)
                return
        recent = islice(reversed(incident.members.values()), ECHO_LOOKBACK)
        if any(
            earlier(other.key) and member.date - other.date <= self.echo_window for other in recent
        ):
            member.independence = Independence.ECHO

    def _join(
        self, incident: Incident, member: Member, out: Placement, signature: Shingles | None
    ) -> None:
        is_new = member.key not in incident.members
        incident.add(member)
        if incident.status is Status.ACTIVE:
            self._posts.setdefault(member.key, set()).add(incident.id)
            if signature is not None:
                self._index_post(incident.id, member.key, signature)
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
        if incident.stats.reports == 0:
            if incident.status is not Status.RETRACTED:
                self._deactivate(incident, Status.RETRACTED, "retracted", out)
            return
        self._rejudge(incident, out)

    def _rejudge(self, incident: Incident, out: Placement) -> None:
        """Judge the remaining reports again after one left (a copy may now be original)."""
        channels: set[int] = set()
        for member in incident.reports:
            before = (member.independence, member.similar_to)
            others_before = bool(channels - {member.channel_id})
            self._judge(incident, member, self._index.get(member.key), others_before)
            channels.add(member.channel_id)
            if (member.independence, member.similar_to) != before:
                out.saved.append((incident.id, member))
        incident.changed()

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
            trust=channel.trust,
            official=channel.official,
        )
        incident.add(member)
        self._posts.setdefault(member.key, set()).add(incident.id)
        out.changed[incident.id] = incident
        out.saved.append((incident.id, member))
        out.events.append((incident.id, "all_clear"))
        if incident.stats.reports == 0:  # its only report was edited into this all-clear
            self._deactivate(incident, Status.RETRACTED, "retracted", out)
        elif incident.ended_by_all_clear:
            self._deactivate(incident, Status.CLOSED, "all_clear", out)
