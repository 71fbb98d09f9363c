"""Benchmark grouping as history grows, and replay of the whole pipeline; prints the numbers.

Run by hand: `make bench` or `.venv/bin/python bench/group.py [--stream N] [--replay N]`.

For each history size (1,000 and 1,000,000 stored posts by default), a database file is
filled with that many posts, their verdicts, and closed incidents holding a third of them.
Then a live stream of posts goes through `Pipeline.process` one post at a time, as the
watcher will send them: every four hours an hour-long wave of reports from 40 channels over
three towns, then news, so incidents open, grow and close. Printed per post: the time in
`Grouper.place` alone, and the time of the whole `process` call (store, detect, complete,
group, persist). Flat numbers across history sizes show that grouping compares against
active incidents only.

Last, the stream is written as Telegram Desktop exports and replayed into a fresh database
file: the throughput of the whole pipeline, parsing included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import load_detector, open_pipeline  # noqa: E402
from bot.models import Post  # noqa: E402
from bot.replay import replay  # noqa: E402
from storage.db import Database  # noqa: E402

SEED = 20250304
CHANNELS = 40
WATCH = ["RU-KDA", "RU-ROS", "RU-BEL", "RU-KRS", "RU-BRY"]
HISTORY_START = datetime(2024, 1, 1, tzinfo=UTC)
STREAM_START = datetime(2025, 3, 1, tzinfo=UTC)
POSTS_PER_INCIDENT = 20
POST_SPACING_SECONDS = 36
CYCLE_POSTS = 400  # four hours of posts
WAVE_POSTS = 100  # the first hour of each cycle is a wave
INSERT_CHUNK = 50_000

TOWNS = [
    ("Краснодаре", "Краснодар"),
    ("Таганроге", "Таганрог"),
    ("Белгороде", "Белгород"),
    ("Курске", "Курск"),
    ("Брянске", "Брянск"),
    ("Новороссийске", "Новороссийск"),
    ("Шахтах", "Шахты"),
    ("Воронеже", "Воронеж"),
]
REPORTS = [
    "⚡️Взрывы в {loc} — жители слышат работу ПВО.",
    "{nom}: над городом сбиты {n} беспилотников, обломки упали на частный дом.",
    "Громко в {loc}! Подписчики пишут о серии хлопков со стороны промзоны.",
    "Беспилотная опасность: в {loc} объявлена тревога, работает ПВО.",
    "{nom} 💥 Місцеві пишуть про вибухи та роботу ППО.",
    "Ещё взрывы!",
    "Работает ПВО!",
]
NEWS = [
    "В {loc} открыли новый сквер у набережной, работы заняли полгода.",
    "Синоптики обещают в {loc} до +18 и небольшой дождь к вечеру.",
    "Цены на бензин в {loc} выросли на рубль за месяц, подсчитали аналитики.",
    "В {loc} прошёл фестиваль дронов: школьники соревновались в гонках FPV.",
    "Доброе утро! Сегодня в {loc} солнечно, ветер северо-восточный.",
]


def stream(total: int, first_id: int) -> list[Post]:
    """Return `total` posts: every four hours an hour-long wave over three towns, then news.

    The waves end (three quiet hours close their incidents), so closing, follow-ups and
    new incidents are all exercised, as on real nights.
    """
    rng = random.Random(SEED)
    posts = []
    ids = [first_id] * CHANNELS
    wave: list[tuple[str, str]] = []
    for number in range(total):
        if number % CYCLE_POSTS == 0:
            wave = rng.sample(TOWNS, 3)
        date = STREAM_START + timedelta(seconds=number * POST_SPACING_SECONDS)
        channel = rng.randrange(CHANNELS)
        ids[channel] += 1
        in_wave = number % CYCLE_POSTS < WAVE_POSTS
        loc, nom = rng.choice(wave) if in_wave else rng.choice(TOWNS)
        template = rng.choice(REPORTS if in_wave and rng.random() < 0.7 else NEWS)
        text = template.format(loc=loc, nom=nom, n=rng.randint(2, 12))
        title = f"Канал {channel}"
        posts.append(Post(1_500_000_000 + channel, ids[channel], date, text, channel_title=title))
    return posts


def fill_history(path: Path, count: int) -> int:
    """Store `count` old posts with verdicts and closed incidents; return the last id used."""
    per_channel = count // CHANNELS + 1
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = OFF")
    rng = random.Random(SEED)
    stamp = int(HISTORY_START.timestamp())
    evidence = json.dumps([{"rule": "term:explosion", "text": "Взрывы", "span": [0, 6]}])
    for chunk_start in range(0, count, INSERT_CHUNK):
        posts, verdicts, incidents, members = [], [], [], []
        for number in range(chunk_start, min(count, chunk_start + INSERT_CHUNK)):
            channel = 1_500_000_000 + number % CHANNELS
            message = number // CHANNELS + 1
            date = stamp + number * 30
            loc, _ = TOWNS[number % len(TOWNS)]
            flagged = number % 3 == 0
            text = f"Взрывы в {loc}" if flagged else f"Новости: в {loc} открыли сквер {number}"
            posts.append((channel, message, date, None, text, None, None, None, None, date))
            verdicts.append(
                (channel, message, int(flagged), int(flagged), 0, '["explosion"]' if flagged
                 else "[]", '["RU-KDA"]' if flagged else "[]", 0.5, "[]",
                 evidence if flagged else "[]", date)
            )  # fmt: skip
            if flagged:
                incident = f"RU-KDA-hist-{number // (3 * POSTS_PER_INCIDENT)}"
                if number % (3 * POSTS_PER_INCIDENT) == 0:
                    incidents.append(
                        (incident, "RU-KDA", "closed", "quiet", date, date + 3600,
                         '["explosion"]', "{}", "[]", POSTS_PER_INCIDENT, 5, 4,
                         0.9, 0, date, date)
                    )  # fmt: skip
                members.append(
                    (incident, channel, message, date, "report", '["explosion"]', "{}",
                     rng.choice(["original", "copy", "echo"]), "region", None, None, 1.0, 0, 0)
                )  # fmt: skip
        connection.executemany("INSERT INTO posts VALUES (?,?,?,?,?,?,?,?,?,?)", posts)
        connection.executemany("INSERT INTO detections VALUES (?,?,?,?,?,?,?,?,?,?,?)", verdicts)
        connection.executemany(
            "INSERT INTO incidents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", incidents
        )
        connection.executemany(
            "INSERT INTO incident_posts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", members
        )
        connection.commit()
    connection.close()
    return per_channel


def percentile(values: list[float], share: float) -> float:
    """Return the value below which `share` of the values fall."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure(path: Path, history: int, total: int) -> dict[str, Any]:
    """Fill the history, then time each post of the live stream."""
    async with Database(path):
        pass  # create the schema
    started = time.perf_counter()
    last_id = fill_history(path, history)
    fill = time.perf_counter() - started
    place_times: list[float] = []
    process_times: list[float] = []
    report_times: list[float] = []
    async with open_pipeline(path, WATCH) as (_, pipeline):
        grouper = pipeline.grouper
        place: Callable[..., Any] = grouper.place

        def timed_place(*args: Any, **kwargs: Any) -> Any:
            begun = time.perf_counter()
            try:
                return place(*args, **kwargs)
            finally:
                place_times.append(time.perf_counter() - begun)

        grouper.place = timed_place  # type: ignore[method-assign]
        incidents = 0
        for post in stream(total, last_id):
            begun = time.perf_counter()
            outcome = await pipeline.process(post)
            elapsed = time.perf_counter() - begun
            process_times.append(elapsed)
            if outcome is not None and outcome.flagged:
                report_times.append(elapsed)
        incidents = await pipeline.incidents.count()
    return {
        "history": history,
        "fill": fill,
        "place": place_times,
        "process": process_times,
        "reports": report_times,
        "incidents": incidents,
    }


def write_exports(posts: list[Post], folder: Path) -> None:
    """Write posts as one Telegram Desktop export per channel."""
    channels: dict[int, list[dict[str, object]]] = {}
    for post in posts:
        channels.setdefault(post.channel_id, []).append(
            {
                "id": post.id,
                "type": "message",
                "date": post.date.strftime("%Y-%m-%dT%H:%M:%S"),
                "date_unixtime": str(int(post.date.timestamp())),
                "text": post.text,
            }
        )
    for channel_id, messages in channels.items():
        path = folder / str(channel_id) / "result.json"
        path.parent.mkdir(parents=True)
        document = {"name": "Канал", "type": "public_channel", "id": channel_id}
        document["messages"] = messages
        path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")


def main() -> None:
    """Print grouping cost per post at each history size, then replay throughput."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stream", type=int, default=3000, help="live posts timed per size")
    parser.add_argument("--history", default="1000,1000000", help="stored posts, comma-separated")
    parser.add_argument("--replay", type=int, default=20_000, help="posts replayed")
    args = parser.parse_args()

    started = time.perf_counter()
    load_detector()
    print(f"detector load: {time.perf_counter() - started:.2f} s")
    print(
        f"{'stored posts':>12} | {'fill':>6} | {'place µs mean/p99':>18} |"
        f" {'process µs mean/p50/p99':>24} | {'flagged µs p50/p99':>18} | incidents"
    )
    for history in (int(part) for part in args.history.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(measure(Path(tmp) / "g.db", history, args.stream))
        place = [t * 1e6 for t in result["place"]]
        process = [t * 1e6 for t in result["process"]]
        reports = [t * 1e6 for t in result["reports"]]
        print(
            f"{history:>12,} | {result['fill']:5.1f}s |"
            f" {statistics.mean(place):8.0f} / {percentile(place, 0.99):7.0f} |"
            f" {statistics.mean(process):7.0f} / {percentile(process, 0.5):6.0f} /"
            f" {percentile(process, 0.99):7.0f} |"
            f" {percentile(reports, 0.5):8.0f} / {percentile(reports, 0.99):7.0f} |"
            f" {result['incidents']:,} ({len(place)} placed)"
        )

    posts = stream(args.replay, 0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "export"
        write_exports(posts, folder)
        started = time.perf_counter()
        result = asyncio.run(replay([folder], WATCH, Path(tmp) / "r.db"))
        elapsed = time.perf_counter() - started
    print(
        f"replay of {result.posts:,} posts into a database file: "
        f"{result.posts / elapsed:,.0f} posts/s ({result.flagged:,} flagged; parsing, "
        "detection, context, grouping and storage)"
    )


if __name__ == "__main__":
    main()
