"""Replay of Telegram Desktop exports through the live pipeline, in arrival order."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bot.app import open_pipeline
from bot.export import find_export_files, load_export, merge_posts
from bot.models import Post
from bot.pipeline import Outcome

__all__ = ["ReplayResult", "load_posts", "replay", "write_jsonl", "write_summary"]


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """Everything a replay produced."""

    files: tuple[Path, ...]
    posts: int
    skipped: int
    outcomes: tuple[Outcome, ...]

    @property
    def flagged(self) -> list[Outcome]:
        """Return the outcomes of flagged posts, in arrival order."""
        return [o for o in self.outcomes if o.flagged]


def load_posts(paths: Iterable[str | Path]) -> tuple[list[Path], list[Post], int]:
    """Read every export under the paths; raise ExportError before anything is processed."""
    files = find_export_files(paths)
    exports = [export for path in files for export in load_export(path)]
    skipped = sum(export.skipped for export in exports)
    return files, merge_posts(exports), skipped


async def replay(
    paths: Sequence[str | Path], watch_regions: Sequence[str], database_path: str | Path
) -> ReplayResult:
    """Run the exports' posts through the pipeline in one transaction (all or nothing)."""
    files, posts, skipped = load_posts(paths)
    outcomes: list[Outcome] = []
    async with open_pipeline(database_path, watch_regions) as (db, pipeline), db.transaction():
        for post in posts:
            outcome = await pipeline.process(post)
            if outcome is not None:
                outcomes.append(outcome)
    return ReplayResult(tuple(files), len(posts), skipped, tuple(outcomes))


def outcome_json(outcome: Outcome) -> dict[str, object]:
    """Return the JSON object of one flagged post (the CLI's --jsonl contract)."""
    return {
        "channel_id": outcome.post.channel_id,
        "id": outcome.post.id,
        "regions": list(outcome.regions),
        "kinds": list(outcome.detection.kinds),
        "incident": outcome.incident,
        "evidence": [e.as_dict() for e in outcome.detection.evidence],
    }


def write_jsonl(result: ReplayResult, out: TextIO) -> None:
    """Write one JSON line per flagged post."""
    for outcome in result.flagged:
        out.write(json.dumps(outcome_json(outcome), ensure_ascii=False) + "\n")


def write_summary(result: ReplayResult, out: TextIO) -> None:
    """Write a readable summary: each flagged post with its kinds, regions and evidence."""
    flagged = result.flagged
    for outcome in flagged:
        post = outcome.post
        text = " ".join(post.text.split())
        if len(text) > 160:
            text = text[:157] + "..."
        out.write(
            f"{post.date:%Y-%m-%d %H:%M} UTC  {post.channel_title or post.channel_id}/{post.id}\n"
            f"  {', '.join(outcome.detection.kinds)} in {', '.join(outcome.regions)}\n"
            f"  {text}\n"
        )
        reasons = [
            f"{e.rule.split(':', 1)[1]} «{e.text}»" + (f" → {e.region}" if e.region else "")
            for e in outcome.detection.evidence
            if e.rule.startswith(("term:", "place:"))
        ]
        out.write(f"  why: {'; '.join(reasons)}\n\n")
    out.write(
        f"{len(result.files)} export file(s), {result.posts} posts "
        f"({result.skipped} service or media-only messages skipped), "
        f"{len(flagged)} flagged\n"
    )
