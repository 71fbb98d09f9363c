"""Replay of Telegram Desktop exports through the live pipeline, in arrival order."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import TextIO

from bot.app import open_delivery, open_pipeline, utc_now
from bot.channels import ChannelSettings
from bot.config import Secret
from bot.export import find_export_files, load_export, merge_posts
from bot.group import GroupingSettings
from bot.models import Post, Subscriber
from bot.pipeline import Outcome
from storage.alerts import SubscriberRepo

BATCH_SIZE = 500  # posts per round of queries; posts keep their order
PREVIEW_BATCH_SIZE = 50  # with --deliver: posts between two rounds of delivery
SUMMARY_TEXT_LENGTH = 160

__all__ = [
    "DeliveryPreview",
    "JsonlWriter",
    "ReplayResult",
    "SummaryWriter",
    "load_posts",
    "outcome_json",
    "replay",
]


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay did, in numbers (outcomes go to the caller's sink as they come)."""

    files: tuple[Path, ...]
    posts: int
    skipped: int
    processed: int
    flagged: int


def load_posts(paths: Iterable[str | Path]) -> tuple[list[Path], list[Post], int]:
    """Read every export under the paths; raise ExportError before anything is processed."""
    files = find_export_files(paths)
    exports = [export for path in files for export in load_export(path)]
    skipped = sum(export.skipped for export in exports)
    return files, merge_posts(exports), skipped


@dataclass(frozen=True, slots=True)
class DeliveryPreview:
    """Where `replay --deliver` sends the alerts the replayed posts produce."""

    bot_token: Secret
    bot_api_url: str
    chats: tuple[int, ...]
    zone: tzinfo
    language: str = "ru"


async def replay(
    paths: Sequence[str | Path],
    watch_regions: Sequence[str],
    database_path: str | Path,
    sink: Callable[[Outcome], None] | None = None,
    *,
    channels: Sequence[ChannelSettings] = (),
    grouping: GroupingSettings | None = None,
    deliver: DeliveryPreview | None = None,
) -> ReplayResult:
    """Run the exports' posts through the pipeline in one transaction (all or nothing).

    Every export is read and checked before the database is opened. Each post's outcome
    goes to `sink` in arrival order (posts the database already holds are reported, not
    stored again); none is kept here, so memory stays flat.

    With `deliver`, the chats subscribe to every watched region and receive the alerts,
    edits and notices as they would have come: posts go in small batches, each committed
    and delivered before the next (so it is no longer all or nothing).
    """
    files, posts, skipped = load_posts(paths)
    counts = [0, 0]  # processed, flagged

    def report(outcomes: Sequence[Outcome | None]) -> None:
        for outcome in outcomes:
            if outcome is None:
                continue
            counts[0] += 1
            counts[1] += outcome.flagged
            if sink is not None:
                sink(outcome)

    async with open_pipeline(
        database_path, watch_regions, channels=channels, grouping=grouping
    ) as (db, pipeline):
        if deliver is None:
            async with db.transaction():
                for start in range(0, len(posts), BATCH_SIZE):
                    batch = posts[start : start + BATCH_SIZE]
                    report(await pipeline.process_many(batch, report_repeats=True))
        else:
            async with open_delivery(
                db, deliver.bot_token.value, deliver.bot_api_url, deliver.zone, edit_spacing=0.0
            ) as (notifier, deliverer):
                pipeline.notifier = notifier
                subscribers = SubscriberRepo(db)
                async with db.transaction():
                    for chat in deliver.chats:
                        if await subscribers.get(chat) is not None:
                            continue  # a subscriber of the database keeps its settings
                        kind = "private" if chat > 0 else "group"  # groups have negative ids
                        subscriber = Subscriber(chat, kind, deliver.language)
                        await subscribers.save(subscriber, utc_now())
                for start in range(0, len(posts), PREVIEW_BATCH_SIZE):
                    batch = posts[start : start + PREVIEW_BATCH_SIZE]
                    report(await pipeline.process_many(batch, report_repeats=True))
                    await deliverer.drain()
    return ReplayResult(tuple(files), len(posts), skipped, counts[0], counts[1])


def outcome_json(outcome: Outcome) -> dict[str, object]:
    """Return the JSON object of one flagged post (the CLI's --jsonl contract)."""
    return {
        "channel_id": outcome.post.channel_id,
        "id": outcome.post.id,
        "regions": list(outcome.regions),
        "kinds": list(outcome.detection.kinds),
        "incident": outcome.incident,
        "incidents": list(outcome.incidents),
        "evidence": [e.as_dict() for e in outcome.detection.evidence],
    }


class JsonlWriter:
    """A replay sink for one JSON line per flagged post, written once the replay commits."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._lines: list[str] = []

    def __call__(self, outcome: Outcome) -> None:
        if outcome.flagged:
            self._lines.append(json.dumps(outcome_json(outcome), ensure_ascii=False) + "\n")

    def flush(self, result: ReplayResult) -> None:
        """Write what the finished replay flagged."""
        self.out.writelines(self._lines)


class SummaryWriter:
    """A replay sink for a readable summary of flagged posts: kinds, regions, text and why."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._blocks: list[str] = []

    def __call__(self, outcome: Outcome) -> None:
        if not outcome.flagged:
            return
        post = outcome.post
        text = " ".join(post.text.split())
        if len(text) > SUMMARY_TEXT_LENGTH:
            text = text[: SUMMARY_TEXT_LENGTH - 3] + "..."
        reasons = [
            f"{e.rule.split(':', 1)[-1]} «{e.text}»" + (f" → {e.region}" if e.region else "")
            for e in outcome.detection.evidence
            if e.rule.startswith(("term:", "place:", "context:", "near_duplicate"))
        ]
        self._blocks.append(
            f"{post.date:%Y-%m-%d %H:%M} UTC  {post.channel_title or post.channel_id}/{post.id}\n"
            f"  {', '.join(outcome.detection.kinds)} in {', '.join(outcome.regions)}"
            f"  [{', '.join(outcome.incidents)}]\n"
            f"  {text}\n"
            f"  why: {'; '.join(reasons)}\n\n"
        )

    def flush(self, result: ReplayResult) -> None:
        """Write the flagged posts and the totals of the finished replay."""
        self.out.writelines(self._blocks)
        self.out.write(
            f"{len(result.files)} export file(s), {result.posts} posts "
            f"({result.skipped} service or media-only messages skipped), "
            f"{result.flagged} flagged\n"
        )
