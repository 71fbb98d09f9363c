"""The demo `run` gives without Telegram credentials: the bundled sample through the pipeline.

One day of nine channels (bot/data/sample, from the dev corpus) is replayed post by post,
as the watcher would feed it, into an in-memory database with one subscriber; the alerts
that subscriber would have received are printed as they read at the end of the day, with
the escalation notices that rang in between.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from importlib import resources
from pathlib import Path
from typing import TextIO

from bot.alerts import AlertTexts
from bot.app import load_detector, load_gazetteer, open_pipeline
from bot.delivery import AlertViews, Notifier
from bot.models import Subscriber
from bot.replay import load_posts
from storage.alerts import OutboxRepo, SubscriberRepo
from storage.incidents import IncidentRepo

__all__ = ["SAMPLE_REGIONS", "demo", "sample_path"]

SAMPLE_REGIONS = ("RU-KDA", "RU-ROS")
DEMO_CHAT = 1
EVERYTHING_DUE = 1e12  # a claim time after every row's next try
CLAIM_ALL = 10_000
RULE = "─" * 60


def sample_path() -> Path:
    """Return the bundled sample export."""
    return Path(str(resources.files("bot") / "data" / "sample" / "result.json"))


def plain(text: str) -> str:
    """Return an alert's HTML as terminal text: links spelled out, tags dropped."""
    text = re.sub(r'<a href="([^"]*)">([^<]*)</a>', lambda m: f"{m.group(2)} {m.group(1)}", text)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


class _PostClock:
    """The time of the post being processed: the demo runs on the posts' own dates."""

    def __init__(self) -> None:
        self.now = datetime(1970, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def demo(
    out: TextIO,
    zone: tzinfo,
    *,
    regions: Sequence[str] = SAMPLE_REGIONS,
    language: str = "ru",
    path: Path | None = None,
) -> int:
    """Replay the sample, print the alerts a subscriber would get; return how many."""
    _, posts, _ = load_posts([path or sample_path()])
    clock = _PostClock()
    texts = AlertTexts.load(load_gazetteer(), zone)
    async with open_pipeline(":memory:", regions, detector=load_detector(), clock=clock) as (
        db,
        pipeline,
    ):
        views = AlertViews(IncidentRepo(db))
        outbox = OutboxRepo(db)
        subscribers = SubscriberRepo(db)
        pipeline.notifier = Notifier(subscribers, outbox, views, texts, clock, edit_spacing=0)
        async with db.transaction():
            await subscribers.save(Subscriber(DEMO_CHAT, language=language), clock.now)
        message_ids = itertools.count(1)
        for post in posts:
            clock.now = post.date
            await pipeline.process(post)
            # Delivered at once: later reports edit the alert, or ring as a reply to it.
            async with db.transaction():
                stamp = post.date.timestamp()
                for row in await outbox.claim(EVERYTHING_DUE, CLAIM_ALL, 0.0):
                    message_id = row.message_id or next(message_ids)
                    await outbox.sent(row, message_id, row.version, stamp, stamp)
        rows = [row for row in await outbox.rows() if row.chat_id == DEMO_CHAT]
        incidents = IncidentRepo(db)
        shown = 0
        for incident_id in dict.fromkeys(row.incident_id for row in rows if row.seq == 0):
            incident = await incidents.get(incident_id)
            if incident is None:
                continue
            shown += 1
            out.write(f"{RULE}\n{plain(texts.alert(await views.view(incident), language))}\n")
            for row in sorted(rows, key=lambda r: r.seq):
                if row.incident_id == incident_id and row.seq > 0 and row.notice:
                    out.write(f"\n  ↳ rang later: {plain(row.notice)}\n")
        out.write(
            f"{RULE}\n{len(posts)} posts from the sample export, {shown} alert(s) for a "
            f"subscriber to {', '.join(regions)}.\n"
        )
        return shown
