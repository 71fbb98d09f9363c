"""The one path every post takes: store → detect → (group) → decide, for live and replay alike."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.detect import Detector
from bot.models import Detection, Post
from storage.detections import DetectionRepo
from storage.posts import PostChange, PostRepo

__all__ = ["Outcome", "Pipeline"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the pipeline made of one post."""

    post: Post
    change: PostChange
    detection: Detection
    regions: tuple[str, ...]  # the detection's regions that are watched
    incident: str | None

    @property
    def flagged(self) -> bool:
        """Return True when the post reports a current event in a watched region."""
        return self.incident is not None


def post_incident_id(post: Post) -> str:
    """Return the per-post incident id used until incidents are grouped."""
    return f"post-{post.channel_id}-{post.id}"


class Pipeline:
    """Run posts through storage and detection; idempotent on (channel_id, message id)."""

    def __init__(
        self,
        detector: Detector,
        posts: PostRepo,
        detections: DetectionRepo,
        watch_regions: Iterable[str],
        clock: Callable[[], datetime],
    ) -> None:
        self.detector = detector
        self.posts = posts
        self.detections = detections
        self.watch_regions = tuple(watch_regions)
        self._watched = frozenset(self.watch_regions)
        self.clock = clock

    async def process(self, post: Post) -> Outcome | None:
        """Process one post; return None when it was already processed with the same text."""
        return (await self.process_many([post]))[0]

    async def process_many(
        self, posts: Sequence[Post], *, report_repeats: bool = False
    ) -> list[Outcome | None]:
        """Process posts in arrival order, with a few queries for the whole batch.

        Live posts come one at a time, replayed ones in batches; both take this path. A
        post already processed with the same text gives None, or with `report_repeats` an
        outcome that is reported but not stored again (replay into an existing database).
        The posts and their verdicts are stored together or not at all.
        """
        now = self.clock()
        outcomes: list[Outcome | None] = []
        stored: list[Post] = []
        verdicts: list[tuple[int, int, Detection, bool]] = []
        async with self.posts.db.savepoint("process"):
            changes = await self.posts.classify(posts)
            for post, change in zip(posts, changes, strict=True):
                if change is PostChange.UNCHANGED and not report_repeats:
                    log.debug("post %s/%s already processed", post.channel_id, post.id)
                    outcomes.append(None)
                    continue
                detection = self.detector.detect(post.text, post.date)
                regions = tuple(r for r in detection.regions if r in self._watched)
                flagged = detection.alert and bool(regions)
                incident = post_incident_id(post) if flagged else None
                outcomes.append(Outcome(post, change, detection, regions, incident))
                if change is PostChange.UNCHANGED:
                    continue
                stored.append(post)
                verdicts.append((post.channel_id, post.id, detection, flagged))
                self._log(post, change, detection, regions, flagged)
            if stored:
                await self.posts.save(stored, now)
                await self.detections.save(verdicts, now)
        return outcomes

    @staticmethod
    def _log(
        post: Post,
        change: PostChange,
        detection: Detection,
        regions: tuple[str, ...],
        flagged: bool,
    ) -> None:
        if flagged:
            log.info(
                "post %s/%s (%s) flagged: kinds=%s regions=%s",
                post.channel_id,
                post.id,
                change,
                ",".join(detection.kinds),
                ",".join(regions),
            )
        elif detection.kinds or detection.all_clear:
            log.info(
                "post %s/%s (%s) not flagged: kinds=%s regions=%s all_clear=%s rejected=%s",
                post.channel_id,
                post.id,
                change,
                ",".join(detection.kinds),
                ",".join(detection.regions),
                detection.all_clear,
                ",".join(detection.rejected),
            )
