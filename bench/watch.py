"""Benchmark the watcher's catch-up and live path over the in-memory Telegram; prints numbers.

Run by hand: `make bench` or `.venv/bin/python bench/watch.py [--channels N] [--posts N]`.

A real TelegramClient runs over tests/fakes/telegram.py (requests serialised and parsed as
on the wire, no network latency), feeding a real pipeline over a SQLite file. First every
channel gets one post and a read marker; then, with the service down, each channel gets
`--posts` posts (a third of them reports); the watcher starts again and catches up.
Printed: the catch-up's wall time and posts per second, including Telegram requests,
detection, grouping and storage. Then live posts are published one at a time, each after
the previous was processed: the time from publish to processed, p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import load_detector, open_pipeline  # noqa: E402
from bot.channels import parse_channels  # noqa: E402
from bot.models import Post  # noqa: E402
from bot.watcher import Watcher, open_client  # noqa: E402
from storage.channels import ChannelRepo  # noqa: E402
from tests.fakes.telegram import FakeTelegram  # noqa: E402

SEED = 20250304
FIRST_ID = 10_000
TEXTS = [
    "Взрывы в {town}, работает ПВО",
    "Над {town} сбит беспилотник",
    "В {town} открылась новая библиотека",
    "Погода в {town}: дождь и ветер",
    "Жители {town} сообщают о громких звуках, работает ПВО",
    "В {town} прошёл городской фестиваль",
]
TOWNS = ["Краснодаре", "Таганроге", "Белгороде", "Курске", "Брянске", "Новороссийске"]


class Clock:
    """Wall time that can jump ahead (the service's downtime)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(tz=UTC).replace(microsecond=0) + self.offset


async def main(channels: int, posts: int, live: int) -> None:
    rng = random.Random(SEED)
    clock = Clock()
    telegram = FakeTelegram(clock=clock)
    ids = [FIRST_ID + n for n in range(channels)]
    for channel_id in ids:
        telegram.add_channel(channel_id, f"bench_channel_{channel_id}", "Новости", member=True)
    processed: dict[tuple[int, int], float] = {}
    settings = ", ".join(f"@bench_channel_{channel_id}" for channel_id in ids)
    parsed, _ = parse_channels(settings, lambda name: name)

    with tempfile.TemporaryDirectory() as tmp:
        async with open_pipeline(
            Path(tmp) / "watch.db", ["RU-KDA", "RU-ROS", "RU-BEL"], detector=load_detector()
        ) as (db, pipeline):

            async def sink(batch: list[Post]) -> list[object | None]:
                outcomes = await pipeline.process_many(batch)
                now = time.perf_counter()
                for post in batch:
                    processed[(post.channel_id, post.id)] = now
                return list(outcomes)

            async def nothing(_: str) -> None:
                return None

            async with db.transaction():
                await ChannelRepo(db).seed(parsed, clock())

            async def watching(action: Callable[[Watcher], Awaitable[None]]) -> None:
                async with open_client(1, "0" * 32, Path(tmp) / "bench.session") as client:
                    telegram.attach(client)
                    watcher = Watcher(
                        client,
                        db,
                        sink,  # type: ignore[arg-type]
                        clock=clock,
                        max_age=timedelta(hours=24),
                        max_posts=posts + 10,
                        notify=nothing,
                    )
                    task = asyncio.create_task(watcher.run())
                    while not watcher.listening:
                        await asyncio.sleep(0.001)
                    await action(watcher)
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

            async def idle(_: Watcher) -> None:
                return None

            await watching(idle)
            telegram.offline = True
            for n in range(posts):
                clock.offset += timedelta(seconds=3)
                for channel_id in ids:
                    text = rng.choice(TEXTS).format(town=rng.choice(TOWNS)) + f" #{n}"
                    telegram.publish(channel_id, text)
            telegram.offline = False
            total = posts * channels

            started = time.perf_counter()

            await watching(idle)
            elapsed = time.perf_counter() - started
            print(
                f"catch-up: {total:,} posts from {channels} channels in {elapsed:.2f} s "
                f"= {total / elapsed:,.0f} posts/s (connect, read back, detect, group, store)"
            )

            latencies: list[float] = []

            async def follow(_: Watcher) -> None:
                for n in range(live):
                    channel_id = rng.choice(ids)
                    text = rng.choice(TEXTS).format(town=rng.choice(TOWNS)) + f" live {n}"
                    sent = time.perf_counter()
                    message_id = telegram.publish(channel_id, text)
                    while (channel_id, message_id) not in processed:
                        await asyncio.sleep(0.0005)
                    latencies.append((processed[(channel_id, message_id)] - sent) * 1000)

            await watching(follow)
            cuts = statistics.quantiles(latencies, n=100)
            print(
                f"live: {live} posts, publish → processed p50 {cuts[49]:.1f} ms, "
                f"p99 {cuts[98]:.1f} ms (Telethon's update handling included)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--posts", type=int, default=250, help="posts per channel missed")
    parser.add_argument("--live", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main(args.channels, args.posts, args.live))
