"""Benchmark alert delivery through the fake Bot API server; prints the numbers.

Run by hand: `make bench` or `.venv/bin/python bench/deliver.py [--subscribers N]`.

1. Fan-out: one alert to 3,000 subscribers through the fake server enforcing Telegram's
   limits (30 messages a second in all, one a second per chat). Printed: messages a second
   achieved, as a share of the 30/s limit (target 95% or more), and the number of 429s
   (target 0).
2. Latency: posts enter the pipeline at 100 a second; every tenth starts an incident in
   one of 20 regions, each watched by its own subscriber. Printed: the time from a post
   entering `Pipeline.process` to its alert's sendMessage request reaching the server,
   p50 and p99 (target p99 50 ms or less).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import load_detector, open_delivery, open_pipeline  # noqa: E402
from bot.models import Post, Subscriber  # noqa: E402
from tests.fakes.botapi import FakeBotApi  # noqa: E402

TOKEN = "123456:BENCH-token"
ZONE = ZoneInfo("Europe/Moscow")
START = datetime(2025, 3, 1, tzinfo=UTC)
TELEGRAM_PER_SECOND = 30
POSTS_PER_SECOND = 100
TOWNS = [
    ("Краснодаре", "RU-KDA"),
    ("Таганроге", "RU-ROS"),
    ("Белгороде", "RU-BEL"),
    ("Курске", "RU-KRS"),
    ("Брянске", "RU-BRY"),
    ("Воронеже", "RU-VOR"),
    ("Липецке", "RU-LIP"),
    ("Орле", "RU-ORL"),
    ("Туле", "RU-TUL"),
    ("Калуге", "RU-KLU"),
    ("Смоленске", "RU-SMO"),
    ("Рязани", "RU-RYA"),
    ("Саратове", "RU-SAR"),
    ("Волгограде", "RU-VGG"),
    ("Самаре", "RU-SAM"),
    ("Пензе", "RU-PNZ"),
    ("Тамбове", "RU-TAM"),
    ("Оренбурге", "RU-ORE"),
    ("Ярославле", "RU-YAR"),
    ("Твери", "RU-TVE"),
]


async def fan_out(subscribers: int, folder: Path) -> tuple[float, int, int]:
    """Send one alert to every subscriber; return (messages/s, messages, 429s)."""
    with FakeBotApi(TOKEN) as server:
        async with (
            open_pipeline(folder / "fan.db", ["RU-ROS"]) as (db, pipeline),
            open_delivery(db, TOKEN, server.url, ZONE) as (notifier, deliverer),
        ):
            pipeline.notifier = notifier
            now = datetime.now(tz=UTC)
            async with db.transaction():
                for chat in range(1, subscribers + 1):
                    await notifier.subscribers.save(Subscriber(chat), now)
            await pipeline.process(Post(1, 1, START, "Взрывы в Таганроге"))
            await deliverer.drain(timeout=subscribers / 10 + 60)
        sends = [r.time for r in server.calls("sendMessage") if r.status == 200]
        elapsed = max(sends) - min(sends) if len(sends) > 1 else 0.0
        rate = (len(sends) - 1) / elapsed if elapsed else 0.0
        return rate, len(sends), server.count_429


async def latency(posts: int, folder: Path) -> list[float]:
    """Feed posts at 100 a second; return the seconds from post to its alert's request."""
    watched = [code for _, code in TOWNS]
    with FakeBotApi(TOKEN) as server:
        async with (
            open_pipeline(folder / "lat.db", watched) as (db, pipeline),
            open_delivery(db, TOKEN, server.url, ZONE) as (notifier, deliverer),
        ):
            pipeline.notifier = notifier
            now = datetime.now(tz=UTC)
            async with db.transaction():
                for chat, (_, code) in enumerate(TOWNS, 1):
                    await notifier.subscribers.save(Subscriber(chat, regions=(code,)), now)
            sender = asyncio.create_task(deliverer.run())
            started: dict[int, list[float]] = {}  # chat → when each of its alerts' posts went in
            waits: list[float] = []
            begin = time.monotonic()
            for number in range(posts):
                await asyncio.sleep(max(0.0, begin + number / POSTS_PER_SECOND - time.monotonic()))
                date = START + timedelta(minutes=20 * number)  # each report a new wave
                if number % 10 == 0:
                    town = (number // 10) % len(TOWNS)
                    text = f"Взрывы в {TOWNS[town][0]}"
                    started.setdefault(town + 1, []).append(time.monotonic())
                else:
                    text = f"Новости дня номер {number}: в городе открыли сквер"
                await pipeline.process(Post(1000 + number % 7, number + 1, date, text))
            await asyncio.sleep(2.0)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        answered: dict[int, int] = {}
        for request in server.calls("sendMessage"):  # in arrival order
            chat = int(request.params["chat_id"])
            nth = answered.get(chat, 0)
            answered[chat] = nth + 1
            waits.append(request.time - started[chat][nth])  # a chat's n-th alert, n-th post
        return waits


def main() -> None:
    """Print fan-out throughput and post-to-alert latency."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=3000)
    parser.add_argument("--posts", type=int, default=1000, help="posts in the latency run")
    args = parser.parse_args()
    load_detector()
    with tempfile.TemporaryDirectory() as tmp:
        rate, sent, limited = asyncio.run(fan_out(args.subscribers, Path(tmp)))
        print(
            f"fan-out to {args.subscribers:,} subscribers: {sent:,} messages at {rate:.1f}/s "
            f"= {rate / TELEGRAM_PER_SECOND:.1%} of Telegram's {TELEGRAM_PER_SECOND}/s "
            f"(target 95%), {limited} × 429 (target 0)"
        )
        waits = sorted(asyncio.run(latency(args.posts, Path(tmp))))
        p50 = statistics.median(waits) * 1000
        p99 = waits[min(len(waits) - 1, int(0.99 * len(waits)))] * 1000
        print(
            f"post → sendMessage at {POSTS_PER_SECOND} posts/s: p50 {p50:.1f} ms, "
            f"p99 {p99:.1f} ms over {len(waits)} alerts (target p99 50 ms)"
        )


if __name__ == "__main__":
    main()
