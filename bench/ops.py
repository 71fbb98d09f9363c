"""Benchmark the operations jobs on a large database file; prints the numbers.

Run by hand: `make bench` or `.venv/bin/python bench/ops.py [--history N]`.

A database file is filled with `--history` old posts (a third of them in closed
incidents, as bench/group.py does). Then, with a writer committing a post every 30 ms
alongside (a live stream), it measures:
- the online backup (one step, its own connection), and the writer's commits meanwhile;
- retention: deleting the posts older than 30 days that no incident holds;
- the health job's checks (rhythm of every channel, outbox), and a /metrics render.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.group import fill_history  # noqa: E402
from bot.app import load_detector, open_delivery, open_pipeline  # noqa: E402
from bot.channels import DEFAULT_SETTINGS, WatchedChannel  # noqa: E402
from bot.jobs import Jobs, JobSettings  # noqa: E402
from bot.metrics import Metrics  # noqa: E402
from bot.models import Post  # noqa: E402
from bot.watcher import WatcherHealth  # noqa: E402
from storage.db import Database  # noqa: E402

TOKEN = "123456:BENCH"
WRITE_EVERY = 0.03  # seconds between the live writer's commits


async def main(history: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ops.db"
        async with Database(path):
            pass  # the schema
        started = time.perf_counter()
        fill_history(path, history)
        print(f"filled {history:,} posts in {time.perf_counter() - started:.1f} s "
              f"({path.stat().st_size / 2**20:.0f} MB)")  # fmt: skip
        now = datetime(2026, 1, 1, tzinfo=UTC)
        async with (
            open_pipeline(path, ["RU-KDA"], detector=load_detector(), clock=lambda: now) as (
                db,
                pipeline,
            ),
            open_delivery(db, TOKEN, "http://127.0.0.1:9", ZoneInfo("Europe/Moscow")) as (
                _,
                deliverer,
            ),
        ):
            channels = tuple(
                WatchedChannel(f"{n}", "config", "active", DEFAULT_SETTINGS, channel_id=n,
                               last_post_at=now - timedelta(hours=1))
                for n in range(1_500_000_000, 1_500_000_040)
            )  # fmt: skip

            async def health() -> WatcherHealth:
                return WatcherHealth(True, True, now, channels)

            jobs = Jobs(
                db,
                pipeline,
                deliverer,
                deliverer.texts,
                JobSettings(timedelta(days=30), Path(tmp) / "backups", 3),
                clock=lambda: now,
                watcher_health=health,
            )
            commits = 0
            writing = True

            async def writer() -> None:
                nonlocal commits
                message = 10_000_000
                while writing:
                    message += 1
                    await pipeline.process(Post(1_600_000_000, message, now, f"Новость {message}"))
                    commits += 1
                    await asyncio.sleep(WRITE_EVERY)

            task = asyncio.create_task(writer())
            await asyncio.sleep(0.5)
            before = commits
            started = time.perf_counter()
            target = await jobs.backup()
            took = time.perf_counter() - started
            during = commits - before
            writing = False
            await task
            with sqlite3.connect(target) as copy:
                check = copy.execute("PRAGMA integrity_check").fetchone()[0]
            size = target.stat().st_size / 2**20
            print(f"backup: {took:.2f} s, {size:.0f} MB, integrity {check}; "
                  f"the live writer committed {during} posts meanwhile")  # fmt: skip

            started = time.perf_counter()
            deleted = await jobs.retention()
            print(f"retention: {deleted:,} posts deleted in {time.perf_counter() - started:.2f} s")

            started = time.perf_counter()
            problems = await jobs.problems()
            took = (time.perf_counter() - started) * 1000
            print(f"health checks ({len(channels)} channels): {took:.0f} ms, "
                  f"{len(problems)} problem(s)")  # fmt: skip

            metrics = Metrics()

            async def queued() -> float:
                async with db.reading():
                    return float(await jobs.stats.queued())

            metrics.gauges["skywatch_outbox_messages"] = queued
            started = time.perf_counter()
            for _ in range(100):
                await metrics.render()
            print(f"/metrics render: {(time.perf_counter() - started) * 10:.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=300_000)
    asyncio.run(main(parser.parse_args().history))
