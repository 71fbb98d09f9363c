"""`python -m bot review` over a real database filled by the pipeline and the delivery loop."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.app import open_delivery, open_pipeline
from bot.channels import ChannelRef, ChannelSettings
from bot.delivery import RateLimiter
from bot.detect import Detector
from bot.errors import RegionError, SkywatchError, StorageError
from bot.models import Post, Subscriber
from bot.review import ReviewError, add_review_parser, cmd_review, render_table, run_review
from storage.channels import ChannelRepo
from storage.db import Database
from storage.incidents import IncidentRepo
from storage.review import IncidentFilter, ReviewRepo, open_read_only
from tests.conftest import FakeClock
from tests.fakes.botapi import FakeBotApi

DATE = datetime(2025, 3, 4, 2, 0, tzinfo=UTC)
TOKEN = "123456:REVIEW-token"
FAST = RateLimiter(global_per_second=200, chat_spacing=0.0, group_spacing=0.0)
WIDTH = 120
TAGANROG = 10  # has a public username: its posts carry links
KUBAN = 11  # known from the channels table only
ANONYMOUS = 12  # neither


@dataclass(frozen=True)
class Built:
    """A database holding three incidents, two of them marked false positives."""

    path: Path
    ros: str  # RU-ROS, 03-04 02:00–02:05: explosion and air defence, two channels
    kda: str  # RU-KDA, 03-05 02:00–02:03: drones, two channels; a false positive
    ros_later: str  # RU-ROS, 03-06 02:00: «бахнуло 💥» from one channel; a false positive


async def build(path: Path, detector: Detector, clock: FakeClock) -> Built:
    """Run posts through the pipeline and deliver their alerts; mark two false positives."""
    with FakeBotApi(TOKEN, enforce_limits=False) as api:
        async with (
            open_pipeline(path, ["RU-ROS", "RU-KDA"], detector=detector, clock=clock) as (
                db,
                pipeline,
            ),
            open_delivery(
                db,
                TOKEN,
                api.url,
                ZoneInfo("Europe/Moscow"),
                clock=clock,
                limiter=FAST,
                edit_spacing=0.0,
            ) as (notifier, deliverer),
        ):
            pipeline.notifier = notifier
            async with db.transaction():
                for chat in (1, 2):
                    await notifier.subscribers.save(Subscriber(chat), DATE)
                channels = ChannelRepo(db)
                await channels.add(ChannelSettings(ChannelRef(username="kuban_ops")), DATE)
                await channels.resolved(
                    "@kuban_ops", KUBAN, None, "Kuban_Ops", "Оперштаб Кубани", True, DATE
                )
            api.block(2, "blocked")

            async def post(channel: int, id_: int, minutes: int, text: str) -> str:
                username = "taganrog_news" if channel == TAGANROG else None
                date = DATE + timedelta(minutes=minutes)
                outcome = await pipeline.process(
                    Post(channel, id_, date, text, channel_username=username)
                )
                assert outcome is not None and outcome.flagged, text
                await deliverer.drain()
                assert outcome.incident is not None
                return outcome.incident

            ros = await post(TAGANROG, 1, 0, "Взрывы в Таганроге, работает ПВО")
            assert await post(ANONYMOUS, 1, 5, "В Таганроге слышны взрывы, жители напуганы") == ros
            kda = await post(KUBAN, 1, 24 * 60, "Беспилотники над Краснодаром, работает ПВО")
            assert await post(TAGANROG, 2, 24 * 60 + 3, "Краснодар: беспилотники, ПВО") == kda
            ros_later = await post(ANONYMOUS, 2, 48 * 60, "Таганрог: снова бахнуло 💥")
            assert len({ros, kda, ros_later}) == 3

            incidents = IncidentRepo(db)
            async with db.transaction():
                await incidents.mark_false_positive(kda, 99, "учения", DATE + timedelta(days=1))
                await incidents.mark_false_positive(ros_later, 99, "", DATE + timedelta(days=2))
    return Built(path, ros, kda, ros_later)


@pytest.fixture
async def built(tmp_path: Path, detector: Detector, clock: FakeClock) -> Built:
    """Return the database of three incidents, closed."""
    return await build(tmp_path / "s.db", detector, clock)


def parse(*argv: str) -> argparse.Namespace:
    """Parse `review` options as the CLI will, through add_review_parser."""
    parser = argparse.ArgumentParser(prog="python -m bot")
    add_review_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["review", *argv])


async def review(
    built: Built, *argv: str, now: datetime = DATE + timedelta(days=3), width: int = WIDTH
) -> str:
    """Run the command over the built database; return what it printed."""
    out = io.StringIO()
    assert await run_review(parse("--db", str(built.path), *argv), out, now=now, width=width) == 0
    return out.getvalue()


async def listed(built: Built, *argv: str, **extra: datetime) -> list[str]:
    """Return the ids of the incidents a filtered review lists (through JSON lines)."""
    out = await review(built, *argv, "--format", "jsonl", **extra)  # type: ignore[arg-type]
    return [json.loads(line)["id"] for line in out.splitlines()]


# --- the incident list ---------------------------------------------------------------------


async def test_table_lists_every_incident_newest_first(built: Built) -> None:
    out = await review(built)
    lines = out.splitlines()
    assert lines[0].split() == [
        "INCIDENT",
        "FIRST",
        "(UTC)",
        "LAST",
        "KINDS",
        "REPORTS",
        "CH",
        "IND",
        "CONF",
        "STATUS",
        "MARK",
    ]
    assert [line.split()[0] for line in lines[1:4]] == [built.ros_later, built.kda, built.ros]
    kda = lines[2]
    assert "03-05 02:00  02:03" in kda and "drone" in kda and "FP учения" in kda
    assert lines[3].split()[5:8] == ["2", "2", "2"]  # reports, channels, independent
    assert lines[-1] == "3 incidents, newest first"
    assert all(len(line) <= WIDTH for line in lines)


async def test_time_range_overlaps_the_incident(built: Built) -> None:
    assert await listed(built, "--since", "2025-03-04T02:03") == [
        built.ros_later,
        built.kda,
        built.ros,
    ]  # still reported at 02:05
    assert await listed(built, "--since", "2025-03-04T02:06") == [built.ros_later, built.kda]
    assert await listed(built, "--until", "2025-03-04T02:03") == [built.ros]
    # A bare --until date takes in that whole day; a bare --since starts at its midnight.
    assert await listed(built, "--since", "2025-03-05", "--until", "2025-03-05") == [built.kda]
    # An offset is honoured: 05:00 in Moscow is 02:00 UTC.
    assert await listed(built, "--until", "2025-03-05T05:00+03:00") == [built.kda, built.ros]
    now = DATE + timedelta(days=2, hours=1)
    assert await listed(built, "--since", "2h", now=now) == [built.ros_later]
    assert await listed(built, "--since", "25h", now=now) == [built.ros_later, built.kda]
    assert await listed(built, "--since", "1d", now=now) == [built.ros_later]
    assert await listed(built, "--until", "2d", now=now) == [built.ros]


async def test_region_by_code_or_name(built: Built) -> None:
    assert await listed(built, "--region", "RU-KDA") == [built.kda]
    assert await listed(built, "--region", "Ростовская область") == [built.ros_later, built.ros]
    assert await listed(built, "--region", "krasnodar krai") == [built.kda]
    with pytest.raises(RegionError, match="unknown region 'Нарния'"):
        await review(built, "--region", "Нарния")


async def test_kind(built: Built) -> None:
    assert await listed(built, "--kind", "drone") == [built.kda]
    assert await listed(built, "--kind", "air_defense") == [built.kda, built.ros]
    assert await listed(built, "--kind", "explosion", "--region", "RU-ROS") == [
        built.ros_later,
        built.ros,
    ]
    assert await review(built, "--kind", "missile") == "No incidents match.\n"
    with pytest.raises(SystemExit):
        parse("--kind", "tornado")


async def test_channel_by_username_or_id(built: Built) -> None:
    # Known from the channels table (the username is stored as Telegram spells it).
    assert await listed(built, "--channel", "@Kuban_Ops") == [built.kda]
    # Known only from its posts' links (replayed exports fill no channels table).
    assert await listed(built, "--channel", "t.me/taganrog_news") == [built.kda, built.ros]
    assert await listed(built, "--channel", str(ANONYMOUS)) == [built.ros_later, built.ros]
    assert await listed(built, "--channel", f"-100{ANONYMOUS}") == [built.ros_later, built.ros]
    assert await listed(built, "--channel", "777") == []
    with pytest.raises(ReviewError, match="no channel @nobody_here"):
        await review(built, "--channel", "@nobody_here")


async def test_false_positive_mark(built: Built) -> None:
    assert await listed(built, "--fp") == [built.ros_later, built.kda]
    assert await listed(built, "--no-fp") == [built.ros]
    assert await listed(built, "--no-fp", "--region", "RU-KDA") == []
    with pytest.raises(SystemExit):
        parse("--fp", "--no-fp")


async def test_limit_keeps_the_newest(built: Built) -> None:
    assert await listed(built, "--limit", "2") == [built.ros_later, built.kda]
    out = await review(built, "--limit", "1")
    assert out.splitlines()[-1] == "1 of 3 incidents, newest first"
    with pytest.raises(SystemExit):
        parse("--limit", "0")


async def test_incident_list_as_csv_and_jsonl(built: Built) -> None:
    rows = list(csv.DictReader(io.StringIO(await review(built, "--format", "csv"))))
    objects = [
        json.loads(line) for line in (await review(built, "--format", "jsonl")).splitlines()
    ]
    assert [row["id"] for row in rows] == [o["id"] for o in objects]
    by_id = {row["id"]: row for row in rows}
    kda = by_id[built.kda]
    assert kda["kinds"] == "drone;air_defense" and kda["region"] == "RU-KDA"
    assert kda["false_positive"] == "true" and kda["fp_note"] == "учения"
    assert kda["fp_user_id"] == "99" and kda["first_report"] == "2025-03-05T02:00:00+00:00"
    assert by_id[built.ros]["false_positive"] == "false" and by_id[built.ros]["fp_note"] == ""
    assert by_id[built.ros]["status"] == "closed" and by_id[built.ros]["closed_reason"] == "quiet"
    kda_json = next(o for o in objects if o["id"] == built.kda)
    assert kda_json["kinds"] == ["drone", "air_defense"]
    assert kda_json["false_positive"] == {
        "user_id": 99,
        "note": "учения",
        "marked_at": "2025-03-05T02:00:00+00:00",
    }
    assert kda_json["posts"] == 2 and kda_json["channels"] == 2
    assert datetime.fromisoformat(kda_json["last_report"]) == DATE + timedelta(days=1, minutes=3)


# --- one incident --------------------------------------------------------------------------


async def test_one_incident_with_posts_evidence_and_deliveries(built: Built) -> None:
    out = await review(built, "--incident", built.kda)
    assert out.startswith(f"Incident {built.kda}\n")
    assert "false positive  marked by 99 at 2025-03-05 02:00 UTC: учения" in out
    assert "status          closed (quiet)" in out
    assert "reported        2025-03-05 02:00 – 02:03 UTC" in out
    posts, deliveries = out.split("\nPosts (2)\n")[1].split("Delivery (1 message)\n")
    first, second = posts.strip().split("\n\n")
    assert "@Kuban_Ops/1 «Оперштаб Кубани»  report · first · original" in first
    assert "Беспилотники над Краснодаром, работает ПВО" in first
    assert [line.split()[:2] for line in first.splitlines()[3:]] == [
        ["term:drone", "Беспилотники"],
        ["place:name", "Краснодаром"],
        ["term:air_defense", "ПВО"],
    ]
    assert "RU-KDA · Краснодар" in first
    assert "@taganrog_news/2" in second and "https://t.me/taganrog_news/2" in second
    # Chat 2 blocked the bot at the first incident: it was no longer a subscriber for this one.
    [header, sent] = deliveries.strip("\n").splitlines()
    assert header.split()[:3] == ["CHAT", "SEQ", "STATE"]
    assert sent.split()[:5] == ["1", "0", "sent", "0", "2"]  # chat, seq, state, tries, message

    history = (await review(built, "--incident", built.ros)).split("Delivery (2 messages)\n")[1]
    chats = {line.split()[0]: line for line in history.splitlines()[1:]}
    assert chats["1"].split()[:3] == ["1", "0", "sent"]
    assert chats["2"].split()[:3] == ["2", "0", "dropped"] and "blocked" in chats["2"]


async def test_one_incident_as_jsonl_and_csv(built: Built) -> None:
    lines = (await review(built, "--incident", built.ros, "--format", "jsonl")).splitlines()
    posts = [json.loads(line) for line in lines]
    assert [(p["channel_id"], p["id"]) for p in posts] == [(TAGANROG, 1), (ANONYMOUS, 1)]
    first = posts[0]
    assert first["incident"] == built.ros and first["channel"] == "taganrog_news"
    assert first["link"] == "https://t.me/taganrog_news/1" and first["via"] == "first"
    assert first["text"] == "Взрывы в Таганроге, работает ПВО"
    assert {
        "rule": "place:name",
        "text": "Таганроге",
        "span": [9, 18],
        "region": "RU-ROS",
        "place": "Таганрог",
    } in first["evidence"]
    assert posts[1]["channel"] is None and posts[1]["link"] is None

    rows = list(
        csv.DictReader(
            io.StringIO(await review(built, "--incident", built.ros, "--format", "csv"))
        )
    )
    assert [row["id"] for row in rows] == ["1", "1"]
    assert rows[0]["rules"] == "place:name;term:air_defense;term:explosion"
    assert json.loads(rows[0]["evidence"]) == first["evidence"]
    assert rows[0]["kinds"] == "explosion;air_defense" and rows[1]["link"] == ""

    args = ("--incident", built.ros, "--deliveries", "--format")
    history = [json.loads(line) for line in (await review(built, *args, "jsonl")).splitlines()]
    assert [(d["chat_id"], d["seq"], d["state"]) for d in history] == [
        (1, 0, "sent"),
        (2, 0, "dropped"),
    ]
    assert history[0]["message_id"] is not None and history[0]["last_error"] is None
    assert "blocked" in history[1]["last_error"]
    table = list(csv.DictReader(io.StringIO(await review(built, *args, "csv"))))
    assert [row["state"] for row in table] == ["sent", "dropped"]
    assert table[1]["message_id"] == ""


async def test_unknown_incident_and_conflicting_options(built: Built) -> None:
    with pytest.raises(ReviewError, match="no incident 'RU-XXX'"):
        await review(built, "--incident", "RU-XXX")
    with pytest.raises(ReviewError, match="drop --region, --fp/--no-fp"):
        await review(built, "--incident", built.ros, "--region", "RU-ROS", "--fp")
    with pytest.raises(ReviewError, match="--deliveries needs --incident"):
        await review(built, "--deliveries", "--format", "jsonl")
    with pytest.raises(ReviewError, match="--deliveries needs"):
        await review(built, "--incident", built.ros, "--deliveries")
    with pytest.raises(ReviewError, match="drop --fp"):
        await review(built, "--fp-summary", "--no-fp")
    with pytest.raises(SystemExit):
        parse("--incident", built.ros, "--fp-summary")


# --- false positives -----------------------------------------------------------------------


async def test_false_positive_summary_by_rule_and_channel(built: Built) -> None:
    lines = (await review(built, "--fp-summary", "--format", "jsonl")).splitlines()
    objects = [json.loads(line) for line in lines]
    rules = {o["rule"]: o for o in objects if o["by"] == "rule"}
    counts = {
        rule: (o["fp_incidents"], o["fp_posts"], o["incidents"]) for rule, o in rules.items()
    }
    assert counts == {
        "place:name": (2, 3, 3),  # every report names its place
        "term:drone": (1, 2, 1),
        "term:air_defense": (1, 2, 2),  # also in the true RU-ROS incident
        "term:explosion": (1, 1, 2),
    }
    assert list(rules)[0] == "place:name"  # most false positives first
    examples = {e["text"]: e["count"] for e in rules["term:drone"]["examples"]}
    assert examples == {"беспилотники": 2}  # «Беспилотники» and «беспилотники» are one
    assert {"text": "бахнуло", "count": 1} in rules["term:explosion"]["examples"]

    channels = {o["channel_id"]: o for o in objects if o["by"] == "channel"}
    assert {
        channel: (o["fp_incidents"], o["fp_started"], o["fp_posts"], o["incidents"])
        for channel, o in channels.items()
    } == {
        KUBAN: (1, 1, 1, 1),
        ANONYMOUS: (1, 1, 1, 2),
        TAGANROG: (1, 0, 1, 2),
    }
    assert (channels[KUBAN]["username"], channels[KUBAN]["title"]) == (
        "Kuban_Ops",
        "Оперштаб Кубани",
    )
    assert channels[TAGANROG]["username"] == "taganrog_news"
    assert channels[ANONYMOUS]["username"] is None


async def test_false_positive_summary_table_csv_and_filters(built: Built) -> None:
    out = await review(built, "--fp-summary")
    assert out.startswith("False positives: 2 of 3 selected incidents (67%)\n")
    rule_lines = out.split("By evidence rule")[1].split("By channel")[0].splitlines()
    drone = next(line for line in rule_lines if line.startswith("term:drone"))
    assert drone.split()[1:5] == ["1", "2", "1", "100%"] and "«беспилотники» ×2" in drone
    channel_lines = out.split("By channel")[1].splitlines()
    kuban = next(line for line in channel_lines if line.startswith("@Kuban_Ops"))
    assert "Оперштаб Кубани" in kuban and kuban.split()[-5:] == ["1", "1", "1", "1", "100%"]

    rows = list(
        csv.DictReader(io.StringIO(await review(built, "--fp-summary", "--format", "csv")))
    )
    keyed = {(row["by"], row["key"]): row for row in rows}
    assert keyed[("rule", "term:air_defense")]["incidents"] == "2"
    assert keyed[("channel", str(TAGANROG))]["username"] == "taganrog_news"
    assert keyed[("channel", str(TAGANROG))]["fp_started"] == "0"

    kda_only = await review(built, "--fp-summary", "--region", "RU-KDA")
    assert kda_only.startswith("False positives: 1 of 1 selected incident (100%)\n")
    assert "term:explosion" not in kda_only
    nothing = await review(built, "--fp-summary", "--until", "2025-03-04")
    assert nothing == "False positives: 0 of 1 selected incident (0%)\n"


# --- the database --------------------------------------------------------------------------


async def test_a_missing_database_is_an_error_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "skywatch.db"
    out = io.StringIO()
    with pytest.raises(StorageError, match="no database at .*skywatch.db"):
        await run_review(parse("--db", str(missing)), out, width=WIDTH)
    assert not missing.parent.exists() and out.getvalue() == ""


async def test_an_older_or_foreign_database_is_not_migrated(tmp_path: Path) -> None:
    older = tmp_path / "older.db"
    with sqlite3.connect(older) as conn:
        conn.execute("PRAGMA user_version = 3")
    conn.close()
    with pytest.raises(StorageError, match="has schema 3.*start the service once"):
        await run_review(parse("--db", str(older)), io.StringIO(), width=WIDTH)
    with sqlite3.connect(older) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    conn.close()
    foreign = tmp_path / "notes.txt"
    foreign.write_text("not a database at all, just some words " * 50, encoding="utf-8")
    with pytest.raises(StorageError, match="cannot open database"):
        await run_review(parse("--db", str(foreign)), io.StringIO(), width=WIDTH)


async def test_review_cannot_write(built: Built) -> None:
    async with open_read_only(built.path) as db:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await db.conn.execute("DELETE FROM false_positives")
        assert await ReviewRepo(db).count(IncidentFilter(false_positive=True)) == 2


async def test_the_database_defaults_to_database_path(
    built: Built, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("WATCH_REGIONS", "CHANNELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_PATH", str(built.path))
    out = io.StringIO()
    assert await run_review(parse("--no-fp", "--format", "jsonl"), out, width=WIDTH) == 0
    assert [json.loads(line)["id"] for line in out.getvalue().splitlines()] == [built.ros]


# --- options and layout --------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["yesterday", "2025-13-01", "24x", "-3d", "2025-03-04T25:00"])
def test_bad_dates_are_refused_by_the_parser(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(f"--since={bad}")
    assert exited.value.code == 2
    assert f"{bad!r} is not a date" in capsys.readouterr().err


async def test_since_after_until_is_refused(built: Built) -> None:
    with pytest.raises(ReviewError, match=r"--since \(2025-03-06 00:00:00 UTC\) is after"):
        await review(built, "--since", "2025-03-06", "--until", "2025-03-05")
    assert issubclass(ReviewError, SkywatchError)  # the CLI maps it to exit status 2


async def test_narrow_terminals_clip_text_and_drop_minor_columns(built: Built) -> None:
    for view in ((), ("--incident", built.ros), ("--incident", built.kda), ("--fp-summary",)):
        out = await review(built, *view, width=80)
        assert all(len(line) <= 80 for line in out.splitlines()), out
    listing = (await review(built, width=80)).splitlines()
    assert listing[0].split() == ["INCIDENT", "FIRST", "(UTC)", "KINDS", "REPORTS", "CH"] + [
        "STATUS",
        "MARK",
    ]  # IND, CONF and LAST go first
    assert listing[2].split()[0] == built.kda  # ids are never cut
    wide = (await review(built, width=200)).splitlines()
    assert "explosion,air_defense" in wide[3] and "IND" in wide[0]
    # With no width given, the terminal's (or the fallback when not a tty) is used.
    out = io.StringIO()
    assert await run_review(parse("--db", str(built.path)), out) == 0
    assert built.ros in out.getvalue()


def test_render_table_counts_wide_characters() -> None:
    lines = render_table(
        ["A", "TEXT"], [["1", "💥💥💥💥💥 взрывы " * 3], ["22", "short"]], 40, shrink=(1,)
    )
    assert lines[0] == "A   TEXT"
    assert lines[1].startswith("1   💥💥💥💥💥 взрывы 💥") and lines[1].endswith("…")
    assert sum(2 if ch == "💥" else 1 for ch in lines[1]) == 40  # emoji take two cells
    assert lines[2] == "22  short"
    right = render_table(["N", "X", "Y"], [["7", "a", "b"], ["123", "b", "c"]], 40, right=(0,))
    assert right == ["  N  X  Y", "  7  a  b", "123  b  c"]
    # Y fits beside X clipped to its floor: it stays; a wider Y would not: it goes.
    kept = render_table(["N", "X", "Y"], [["1", "x" * 60, "y" * 29]], 40, shrink=(1,), drop=(2,))
    assert kept[1] == "1  xxxxx…  " + "y" * 29
    dropped = render_table(
        ["N", "X", "Y"], [["1", "x" * 60, "y" * 30]], 40, shrink=(1,), drop=(2,)
    )
    assert dropped[0] == "N  X" and dropped[1] == "1  " + "x" * 36 + "…"


def test_cmd_review_prints_to_stdout(
    tmp_path: Path, detector: Detector, capsys: pytest.CaptureFixture[str]
) -> None:
    made = asyncio.run(build(tmp_path / "s.db", detector, FakeClock()))
    assert cmd_review(parse("--db", str(made.path), "--fp", "--format", "jsonl")) == 0
    assert [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()] == [
        made.ros_later,
        made.kda,
    ]


async def test_an_empty_database(tmp_path: Path) -> None:
    async with Database(tmp_path / "empty.db"):
        pass
    out = io.StringIO()
    assert await run_review(parse("--db", str(tmp_path / "empty.db")), out, width=WIDTH) == 0
    assert out.getvalue() == "No incidents match.\n"
    out = io.StringIO()
    args = parse("--db", str(tmp_path / "empty.db"), "--fp-summary")
    assert await run_review(args, out, width=WIDTH) == 0
    assert out.getvalue() == "False positives: 0 of 0 selected incidents (-)\n"
