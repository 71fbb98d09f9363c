"""The one path every post takes: store → detect → complete from context → group → plan
alerts, for live and replay alike."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from bot.channels import DEFAULT_SETTINGS, ChannelBook, ChannelSettings
from bot.context import ChannelContext, Report
from bot.delivery import Notifier
from bot.detect import Detector
from bot.group import FOLLOW_UP_WINDOW, Grouper, GroupingSettings, Placement, role_of
from bot.incident import Incident, Member, Role, Status
from bot.metrics import Metrics
from bot.models import Detection, Post, PostKey
from storage.detections import DetectionRepo
from storage.incidents import IncidentRepo
from storage.posts import PostChange, PostRepo

__all__ = ["Outcome", "Pipeline"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the pipeline made of one post."""

    post: Post
    change: PostChange
    detection: Detection  # with what the channel's context and near-duplicates added
    regions: tuple[str, ...]  # the watched regions it was grouped under
    incidents: tuple[str, ...] = ()  # the incidents it reports, primary first
    events: tuple[tuple[str, str], ...] = ()  # (incident, what happened), for logs

    @property
    def incident(self) -> str | None:
        """Return the post's primary incident (its first region's), if flagged."""
        return self.incidents[0] if self.incidents else None

    @property
    def flagged(self) -> bool:
        """Return True when the post reports a current event in a watched region."""
        return bool(self.incidents)


@dataclass(slots=True)
class _Batch:
    """Incident changes of one batch, folded to their final state before writing."""

    incidents: dict[str, Incident] = field(default_factory=dict)
    members: dict[tuple[str, PostKey], Member | None] = field(default_factory=dict)

    def add(self, placement: Placement) -> None:
        self.incidents.update(placement.changed)
        for incident, member in placement.saved:
            self.members[(incident, member.key)] = member
        for incident, key in placement.removed:
            self.members[(incident, key)] = None


class Pipeline:
    """Run posts through storage, detection and grouping; idempotent on (channel, message)."""

    def __init__(
        self,
        detector: Detector,
        posts: PostRepo,
        detections: DetectionRepo,
        incidents: IncidentRepo,
        watch_regions: Iterable[str],
        clock: Callable[[], datetime],
        *,
        channels: ChannelBook | None = None,
        grouping: GroupingSettings | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.detector = detector
        self.posts = posts
        self.detections = detections
        self.incidents = incidents
        self.watch_regions = tuple(watch_regions)
        self._watched = frozenset(self.watch_regions)
        self.clock = clock
        self.channels = channels or ChannelBook()
        self.grouping = grouping or GroupingSettings()
        self.notifier = notifier  # None: incidents are kept, no alert is planned
        self.metrics: Metrics | None = None
        self.grouper = Grouper(self.grouping.quiet_gap)
        self.context = self._new_context()
        self._settings: dict[tuple[int, str | None], ChannelSettings] = {}
        self._stale = False  # memory may differ from the database: reload before the next batch

    def use_regions(self, regions: Iterable[str]) -> None:
        """Watch another set of regions (operators changed them); incidents are kept."""
        self.watch_regions = tuple(regions)
        self._watched = frozenset(self.watch_regions)

    def use_channels(self, settings: Iterable[ChannelSettings]) -> None:
        """Take new channel settings (the watcher resolved or an operator changed channels)."""
        self.channels = ChannelBook(settings)
        self._settings.clear()

    def _new_context(self) -> ChannelContext:
        continuation = self.detector.lexicon.token_sets["continuation"]
        return ChannelContext(continuation, self.grouping.context_window)

    async def restore(self) -> None:
        """Load the active incidents and the channels' latest reports from the database.

        The new state replaces the old one only once it is fully loaded.
        """
        grouper = Grouper(self.grouping.quiet_gap)
        context = self._new_context()
        active = await self.incidents.load_active()
        keys = {key for incident in active for key in incident.members}
        latest = await self.posts.latest_date()
        ended = await self.incidents.ended_since(latest - FOLLOW_UP_WINDOW) if latest else []
        grouper.restore([*ended, *active], await self.posts.texts(keys))
        if latest is not None:
            since = latest - self.grouping.context_window
            for channel_id, message_id, date, detection in await self.detections.since(since):
                if role_of(detection) is not None:  # what live processing remembers too
                    context.remember(Report.of(Post(channel_id, message_id, date, ""), detection))
        self.grouper, self.context = grouper, context
        self._stale = False
        log.info("restored %d active incident(s)", len(active))

    async def process(self, post: Post) -> Outcome | None:
        """Process one post; return None when it was already processed with the same text."""
        return (await self.process_many([post]))[0]

    async def process_many(
        self, posts: Sequence[Post], *, report_repeats: bool = False
    ) -> list[Outcome | None]:
        """Process posts in arrival order, with a few queries for the whole batch.

        Live posts come one at a time, replayed ones in batches; both take this path. A
        post already processed with the same text gives None, or with `report_repeats` its
        stored outcome (replay into an existing database). The posts, their verdicts and
        the incidents they change are stored together or not at all; when a batch fails
        or is cancelled, the in-memory state is reloaded from the database before the next.
        """
        if self._stale:
            await self.restore()
        done = False
        try:
            outcomes = await self._process_many(posts, report_repeats)
            done = True
            return outcomes
        finally:
            self._stale = not done

    async def close_quiet(self, now: datetime) -> list[str]:
        """Close incidents quiet since `quiet_gap` before `now`; return their ids."""
        if self._stale:
            await self.restore()
        done = False
        try:
            # Inside the lock: a batch of posts being processed must not see it half done.
            async with self.posts.db.savepoint("close_quiet"):
                placement = self.grouper.close_quiet(now)
                batch = _Batch()
                batch.add(placement)
                await self._save_incidents(batch)
            done = True
            return list(placement.changed)
        finally:
            self._stale = not done

    async def _process_many(
        self, posts: Sequence[Post], report_repeats: bool
    ) -> list[Outcome | None]:
        now = self.clock()
        outcomes: list[Outcome | None] = []
        stored: list[Post] = []
        verdicts: list[tuple[int, int, Detection, bool]] = []
        batch = _Batch()
        async with self.posts.db.savepoint("process"):
            changes = await self.posts.classify(posts)
            for post, change in zip(posts, changes, strict=True):
                if change is PostChange.UNCHANGED:
                    if report_repeats:
                        outcomes.append(await self._stored_outcome(post))
                    else:
                        log.debug("post %s/%s already processed", post.channel_id, post.id)
                        outcomes.append(None)
                    continue
                outcome = await self._one(post, change, batch)
                outcomes.append(outcome)
                stored.append(post)
                verdicts.append((post.channel_id, post.id, outcome.detection, outcome.flagged))
                _log(outcome)
            if stored:
                await self.posts.save(stored, now)
                await self.detections.save(verdicts, now)
                await self._save_incidents(batch)
        if self.metrics is not None:  # counted once stored
            done = [o for o in outcomes if o is not None and o.change is not PostChange.UNCHANGED]
            self.metrics.posts += len(stored)
            self.metrics.flagged += sum(outcome.flagged for outcome in done)
            self.metrics.incidents += sum(
                event == "created" for outcome in done for _, event in outcome.events
            )
        return outcomes

    async def _one(self, post: Post, change: PostChange, batch: _Batch) -> Outcome:
        key = (post.channel_id, post.id)
        settings = self._channel(post)
        detection = self.detector.detect(post.text, post.date)
        replied = None
        if post.reply_to is not None and not detection.regions:
            replied = await self._report(post.channel_id, post.reply_to)
        detection = self.context.complete(
            post,
            detection,
            replied=replied,
            home_region=settings.home_region,
            places=lambda: self.detector.places(post.text),
        )
        watched = tuple(r for r in detection.regions if r in self._watched)

        earlier: list[Incident] = []
        if change is PostChange.EDITED:
            earlier = [
                incident
                for incident in await self.incidents.holding(*key)
                if incident.id not in self.grouper.active
            ]
        placement = Placement()
        # Reports of unwatched regions only need placing when an edit takes them out.
        groupable = role_of(detection) is not None and (watched or not detection.regions)
        if groupable or earlier or self.grouper.holds(key):
            placement = self.grouper.place(post, detection, watched, settings, earlier=earlier)
        batch.add(placement)
        if placement.evidence:  # a copy of a report that names its place
            detection = replace(
                detection,
                regions=tuple(dict.fromkeys((*detection.regions, *placement.regions))),
                evidence=(*detection.evidence, *placement.evidence),
                rejected=(),
            )
        report = Report.of(post, detection)
        role = role_of(detection)  # near-duplicate evidence may have made it a report
        if role is None:
            self.context.forget(*key)
        else:
            self.context.remember(report)
        reported = role is Role.REPORT
        return Outcome(
            post,
            change,
            detection,
            placement.regions if reported else (),
            tuple(placement.incidents) if reported else (),
            tuple(placement.events),
        )

    async def _report(self, channel_id: int, post_id: int) -> Report | None:
        """Return the report a post replies to, from memory or from the database."""
        report = self.context.get(channel_id, post_id)
        if report is not None:
            return report
        stored = await self.detections.get(channel_id, post_id)
        if stored is None or role_of(stored.detection) is None:
            return None
        post = await self.posts.get(channel_id, post_id)
        return Report.of(post, stored.detection) if post is not None else None

    def _channel(self, post: Post) -> ChannelSettings:
        """Return the channel's settings, with a home region taken from its title if unset."""
        cache_key = (post.channel_id, post.channel_title)
        settings = self._settings.get(cache_key)
        if settings is not None:
            return settings
        settings = self.channels.get(post.channel_id, post.channel_username) or DEFAULT_SETTINGS
        if settings.home_region is None and settings.home_from_title and post.channel_title:
            named = {e.region for e in self.detector.places(post.channel_title) if e.region}
            if len(named) == 1:
                settings = replace(settings, home_region=named.pop())
        self._settings[cache_key] = settings
        return settings

    async def _stored_outcome(self, post: Post) -> Outcome:
        """Return the outcome stored for a post processed before (replay into a database)."""
        stored = await self.detections.get(post.channel_id, post.id)
        detection = stored.detection if stored else Detection()
        holding = await self.incidents.holding(post.channel_id, post.id)
        reports = [
            incident
            for incident in holding
            if incident.status is not Status.RETRACTED
            and incident.members[(post.channel_id, post.id)].role is Role.REPORT
        ]
        order = {region: n for n, region in enumerate(detection.regions)}
        reports.sort(key=lambda i: order.get(i.region, len(order)))
        return Outcome(
            post,
            PostChange.UNCHANGED,
            detection,
            tuple(i.region for i in reports),
            tuple(i.id for i in reports),
        )

    async def _save_incidents(self, batch: _Batch) -> None:
        if not batch.incidents and not batch.members:
            return
        saved = [(i, m) for (i, _), m in batch.members.items() if m is not None]
        removed = [(i, key) for (i, key), m in batch.members.items() if m is None]
        await self.incidents.save(batch.incidents.values(), saved, removed, self.clock())
        if self.notifier is not None:
            await self.notifier.plan(batch.incidents.values())


def _log(outcome: Outcome) -> None:
    post, detection = outcome.post, outcome.detection
    if outcome.flagged:
        log.info(
            "post %s/%s (%s) flagged: kinds=%s regions=%s incidents=%s",
            post.channel_id,
            post.id,
            outcome.change,
            ",".join(detection.kinds),
            ",".join(outcome.regions),
            ",".join(outcome.incidents),
        )
    elif detection.kinds or detection.all_clear:
        log.info(
            "post %s/%s (%s) not flagged: kinds=%s regions=%s all_clear=%s rejected=%s",
            post.channel_id,
            post.id,
            outcome.change,
            ",".join(detection.kinds),
            ",".join(detection.regions),
            detection.all_clear,
            ",".join(detection.rejected),
        )
    else:
        log.info("post %s/%s (%s) not flagged: no attack terms", post.channel_id, post.id,
                 outcome.change)  # fmt: skip
    for incident, event in outcome.events:
        log.info("incident %s %s (post %s/%s)", incident, event, post.channel_id, post.id)
