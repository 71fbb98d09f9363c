"""`python -m bot review`: incidents, their posts and why they were flagged, from the database.

Three views, each as a terminal table, CSV or JSON lines: a filtered list of incidents; one
incident with its posts, evidence and delivery history; and a summary of false positives by
evidence rule and by channel. The database is only read: a missing file is an error, never
created, and an older schema is not migrated.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import re
import shutil
import sys
import textwrap
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from bot.app import load_gazetteer
from bot.channels import ChannelRef, parse_channel_ref
from bot.config import load_config
from bot.errors import SkywatchError
from bot.models import Kind
from storage.alerts import AlertState, OutboxRepo
from storage.review import (
    ChannelCount,
    ChannelName,
    Delivery,
    IncidentFilter,
    IncidentSummary,
    ReviewPost,
    ReviewRepo,
    RuleCount,
    open_read_only,
)

__all__ = [
    "FORMATS",
    "ReviewError",
    "add_review_parser",
    "channel_json",
    "clip",
    "cmd_review",
    "delivery_json",
    "incident_json",
    "parse_moment",
    "post_json",
    "render_table",
    "rule_json",
    "run_review",
]

FORMATS = ("table", "csv", "jsonl")
KINDS = tuple(kind.value for kind in Kind)
DEFAULT_WIDTH = 120  # when the output is not a terminal (COLUMNS overrides)
MIN_WIDTH = 40  # never lay a table out narrower than this
MIN_COLUMN = 6  # a shrunk column keeps at least this many cells (or its header's)
POST_TEXT_LINES = 3  # lines of a post's text in the one-incident view
GAP = "  "  # between table columns
INDENT = "  "
RELATIVE_RE = re.compile(r"^(\d+)\s*([mhdw])$")
RELATIVE_UNITS = {
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}

Moment = datetime | date | timedelta  # an instant, a whole UTC day, or a time ago


class ReviewError(SkywatchError):
    """Raise when review options conflict or name nothing the database knows."""


# --- options -------------------------------------------------------------------------------


def parse_moment(raw: str) -> Moment:
    """Read an ISO date or date-time (UTC unless it says otherwise) or an age like 24h or 7d."""
    text = raw.strip()
    relative = RELATIVE_RE.match(text.lower())
    if relative:
        return int(relative.group(1)) * RELATIVE_UNITS[relative.group(2)]
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a date: use 2025-03-04, 2025-03-04T02:30 (UTC),"
            " 2025-03-04T05:30+03:00, or an age such as 90m, 24h, 7d, 2w"
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _channel_ref(raw: str) -> ChannelRef:
    try:
        return parse_channel_ref(raw)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number of at least 1")
    return int(raw)


def add_review_parser(commands: argparse._SubParsersAction[Any]) -> None:
    """Add the `review` command and its options to the CLI's subcommands."""
    review = commands.add_parser(
        "review",
        help="review incidents, their posts and evidence, deliveries and false positives",
        description="Review what skywatch decided, from its database (read only).",
    )
    review.add_argument(
        "--db", type=Path, metavar="PATH", help="the database to read (default: DATABASE_PATH)"
    )
    review.add_argument(
        "--since",
        type=parse_moment,
        metavar="WHEN",
        help="incidents still reported at or after WHEN: an ISO date or time (UTC unless an"
        " offset is given) or an age such as 24h or 7d",
    )
    review.add_argument(
        "--until",
        type=parse_moment,
        metavar="WHEN",
        help="incidents first reported at or before WHEN (a bare date includes that whole day)",
    )
    review.add_argument("--region", help="an ISO 3166-2 code or a region name")
    review.add_argument("--kind", choices=KINDS, help="incidents that report this kind")
    review.add_argument(
        "--channel",
        type=_channel_ref,
        metavar="CHANNEL",
        help="incidents a channel reported (@username, t.me link or channel id)",
    )
    marked = review.add_mutually_exclusive_group()
    marked.add_argument(
        "--fp",
        dest="fp",
        action="store_const",
        const=True,
        help="only incidents marked false positives",
    )
    marked.add_argument(
        "--no-fp",
        dest="fp",
        action="store_const",
        const=False,
        help="only incidents not marked false positives",
    )
    view = review.add_mutually_exclusive_group()
    view.add_argument(
        "--incident",
        metavar="ID",
        help="one incident in detail: its posts, their evidence, its delivery history",
    )
    view.add_argument(
        "--fp-summary",
        action="store_true",
        help="false positives counted by evidence rule and by channel (to tune rules)",
    )
    review.add_argument(
        "--deliveries",
        action="store_true",
        help="with --incident and csv or jsonl: write its outbox rows instead of its posts",
    )
    review.add_argument("--format", choices=FORMATS, default="table", help="default: table")
    review.add_argument(
        "--limit", type=_positive, metavar="N", help="at most N incidents, the newest"
    )


def _at(moment: Moment, now: datetime, *, end: bool) -> datetime:
    """Return the instant an option names; a bare date is its first (or last) second."""
    if isinstance(moment, timedelta):
        return now - moment
    if isinstance(moment, datetime):
        return moment
    start = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    return start + timedelta(days=1, seconds=-1) if end else start


def _check(args: argparse.Namespace) -> None:
    """Refuse option combinations that would silently mean nothing."""
    filters = [
        name
        for name, value in (
            ("--since", args.since),
            ("--until", args.until),
            ("--region", args.region),
            ("--kind", args.kind),
            ("--channel", args.channel),
            ("--limit", args.limit),
        )
        if value is not None
    ]
    if args.incident is not None and (filters or args.fp is not None):
        shown = ", ".join(filters + (["--fp/--no-fp"] if args.fp is not None else []))
        raise ReviewError(f"--incident shows one incident; drop {shown}")
    if args.fp_summary and args.fp is not None:
        raise ReviewError("--fp-summary counts false positives only; drop --fp/--no-fp")
    if args.fp_summary and args.limit is not None:
        raise ReviewError("--fp-summary counts every selected incident; drop --limit")
    if args.deliveries and (args.incident is None or args.format == "table"):
        raise ReviewError("--deliveries needs --incident and --format csv or jsonl")


def _resolve_region(name: str) -> str:
    """Resolve a region name; the gazetteer takes seconds to load, so only when one is named."""
    return load_gazetteer().resolve_region(name)


def _database_path(args: argparse.Namespace) -> Path:
    if args.db is not None:
        return Path(args.db)
    config = load_config(resolve_region=_resolve_region, require_watch=False)
    return config.database_path


async def _filter(args: argparse.Namespace, repo: ReviewRepo, now: datetime) -> IncidentFilter:
    since = _at(args.since, now, end=False) if args.since is not None else None
    until = _at(args.until, now, end=True) if args.until is not None else None
    if since is not None and until is not None and since > until:
        raise ReviewError(
            f"--since ({since:%Y-%m-%d %H:%M:%S} UTC) is after --until"
            f" ({until:%Y-%m-%d %H:%M:%S} UTC)"
        )
    channel_ids: tuple[int, ...] | None = None
    ref: ChannelRef | None = args.channel
    if ref is not None:
        if ref.channel_id is not None:
            channel_ids = (ref.channel_id,)
        else:
            assert ref.username is not None
            channel_ids = await repo.channel_ids(ref.username)
            if not channel_ids:
                raise ReviewError(
                    f"no channel @{ref.username} in this database (give its numeric id)"
                )
    return IncidentFilter(
        since=since,
        until=until,
        region=_resolve_region(args.region) if args.region is not None else None,
        kind=args.kind,
        channel_ids=channel_ids,
        false_positive=args.fp,
    )


# --- tables --------------------------------------------------------------------------------


def _cell_width(text: str) -> int:
    """Return how many terminal cells a string takes (wide characters two, marks none)."""
    width = 0
    for ch in text:
        if unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _one_line(text: str) -> str:
    return " ".join(text.split())


def clip(text: str, width: int) -> str:
    """Return the text cut to `width` terminal cells, ending in … when cut."""
    if _cell_width(text) <= width:
        return text
    kept: list[str] = []
    used = 0
    for ch in text:
        size = _cell_width(ch)
        if used + size > width - 1:
            break
        kept.append(ch)
        used += size
    return "".join(kept) + "…"


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int,
    *,
    shrink: Sequence[int] = (),
    drop: Sequence[int] = (),
    right: Sequence[int] = (),
    indent: str = "",
) -> list[str]:
    """Lay rows out in aligned columns within `width`.

    Too wide a table first loses the `drop` columns, in order, until it would fit with the
    `shrink` columns at their narrowest; then the `shrink` columns are clipped, in order.
    """
    rows = [[_one_line(cell) for cell in row] for row in rows]
    widths = [
        max([_cell_width(header)] + [_cell_width(row[i]) for row in rows])
        for i, header in enumerate(headers)
    ]
    floors = {i: max(MIN_COLUMN, _cell_width(headers[i])) for i in shrink}
    budget = max(width, MIN_WIDTH) - len(indent)

    def excess(kept: Sequence[int], sizes: Sequence[int]) -> int:
        return sum(sizes[i] for i in kept) + len(GAP) * (len(kept) - 1) - budget

    narrowest = [min(size, floors.get(i, size)) for i, size in enumerate(widths)]
    kept = list(range(len(headers)))
    for i in drop:
        if excess(kept, narrowest) <= 0:
            break
        kept.remove(i)
    for i in shrink:
        over = excess(kept, widths)
        if over <= 0:
            break
        if i in kept:
            widths[i] -= min(over, max(widths[i] - floors[i], 0))
    # Still too wide (a very narrow terminal): the lines wrap.

    def line(cells: Sequence[str]) -> str:
        parts = []
        for i in kept:
            cell = clip(cells[i], widths[i])
            pad = " " * (widths[i] - _cell_width(cell))
            parts.append(pad + cell if i in right else cell + pad)
        return (indent + GAP.join(parts)).rstrip()

    return [line(headers), *(line(row) for row in rows)]


def _terminal_width() -> int:
    """Return the terminal's width, or DEFAULT_WIDTH when output goes elsewhere."""
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def _minute(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M}"


def _short(at: datetime) -> str:
    """Return a time without its year, for tables whose rows name it elsewhere."""
    return f"{at:%m-%d %H:%M}"


def _span(first: datetime, last: datetime) -> tuple[str, str]:
    """Return first and last report times, the last without the date when it is the same."""
    if first.date() == last.date():
        return _short(first), f"{last:%H:%M}"
    return _short(first), _short(last)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _status(incident: IncidentSummary) -> str:
    """Return the status in a word: active, closed (quiet), all-clear or retracted."""
    if incident.status == "closed" and incident.closed_reason == "all_clear":
        return "all-clear"
    return incident.status


def _channel_label(channel_id: int, names: dict[int, ChannelName]) -> str:
    name = names.get(channel_id)
    return f"@{name.username}" if name is not None and name.username else str(channel_id)


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


# --- the incident list ---------------------------------------------------------------------

INCIDENT_FIELDS = (
    "id",
    "region",
    "status",
    "closed_reason",
    "first_report",
    "last_report",
    "kinds",
    "counts",
    "posts",
    "channels",
    "independent",
    "confidence",
    "official",
    "false_positive",
    "fp_user_id",
    "fp_note",
    "fp_marked_at",
)


def incident_json(incident: IncidentSummary) -> dict[str, Any]:
    """Return one incident as a JSON-ready object."""
    mark = incident.false_positive
    return {
        "id": incident.id,
        "region": incident.region,
        "status": incident.status,
        "closed_reason": incident.closed_reason,
        "first_report": incident.first_report.isoformat(),
        "last_report": incident.last_report.isoformat(),
        "kinds": list(incident.kinds),
        "counts": incident.counts,
        "posts": incident.posts,
        "channels": incident.channels,
        "independent": incident.independent,
        "confidence": round(incident.confidence, 3),
        "official": incident.official,
        "false_positive": None
        if mark is None
        else {"user_id": mark.user_id, "note": mark.note, "marked_at": mark.marked_at.isoformat()},
    }


def _incident_csv_record(incident: IncidentSummary) -> dict[str, Any]:
    """Return one incident flattened for CSV: the mark in columns of its own."""
    record = incident_json(incident)
    mark = record.pop("false_positive") or {}
    record["false_positive"] = bool(mark)
    record.update({f"fp_{key}": value for key, value in mark.items()})
    return record


def _incident_table(
    incidents: Sequence[IncidentSummary], total: int, width: int, out: TextIO
) -> None:
    if not incidents:
        out.write("No incidents match.\n")
        return
    rows = []
    for incident in incidents:
        first, last = _span(incident.first_report, incident.last_report)
        mark = incident.false_positive
        rows.append(
            [
                incident.id,
                first,
                last,
                ",".join(incident.kinds),
                str(incident.posts),
                str(incident.channels),
                str(incident.independent),
                f"{incident.confidence:.2f}",
                _status(incident),
                "" if mark is None else f"FP {mark.note}".rstrip(),
            ]
        )
    # Every incident id opens with its region and the date of its first report.
    headers = ["INCIDENT", "FIRST (UTC)", "LAST", "KINDS", "REPORTS", "CH", "IND", "CONF"]
    headers += ["STATUS", "MARK"]
    for line in render_table(
        headers, rows, width, shrink=(9, 3), drop=(6, 7, 2, 5), right=(4, 5, 6, 7)
    ):
        out.write(line + "\n")
    shown = f"{len(incidents)} of {total}" if total > len(incidents) else str(total)
    out.write(f"\n{shown} incident{'s' if total != 1 else ''}, newest first\n")


# --- one incident --------------------------------------------------------------------------

POST_FIELDS = (
    "incident",
    "channel_id",
    "id",
    "channel",
    "date",
    "role",
    "via",
    "independence",
    "similar_to",
    "similarity",
    "kinds",
    "link",
    "text",
    "rules",
    "evidence",
)
DELIVERY_FIELDS = (
    "incident",
    "chat_id",
    "seq",
    "state",
    "attempts",
    "version",
    "sent_version",
    "message_id",
    "notice",
    "last_error",
    "created_at",
    "updated_at",
)


def post_json(incident_id: str, post: ReviewPost, names: dict[int, ChannelName]) -> dict[str, Any]:
    """Return one post of an incident as a JSON-ready object (ids as in replay's --jsonl)."""
    name = names.get(post.channel_id)
    return {
        "incident": incident_id,
        "channel_id": post.channel_id,
        "id": post.message_id,
        "channel": name.username if name else None,
        "date": post.date.isoformat(),
        "role": post.role,
        "via": post.via,
        "independence": post.independence,
        "similar_to": post.similar_to,
        "similarity": post.similarity,
        "kinds": list(post.kinds),
        "link": post.link,
        "text": post.text,
        "evidence": list(post.evidence),
    }


def delivery_json(incident_id: str, row: Delivery) -> dict[str, Any]:
    """Return one outbox row of an incident as a JSON-ready object."""
    return {
        "incident": incident_id,
        "chat_id": row.chat_id,
        "seq": row.seq,
        "state": row.state,
        "attempts": row.attempts,
        "version": row.version,
        "sent_version": row.sent_version,
        "message_id": row.message_id,
        "notice": row.notice,
        "last_error": row.last_error,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _csv_value(value: Any) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ";".join(value)
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return value


def _evidence_detail(item: dict[str, Any]) -> str:
    return " · ".join(
        str(item[key]) for key in ("kind", "region", "place", "count") if item.get(key)
    )


@dataclass(frozen=True, slots=True)
class _Detail:
    incident: IncidentSummary
    posts: list[ReviewPost]
    deliveries: list[Delivery]
    alert: AlertState | None
    names: dict[int, ChannelName]


def _detail_table(detail: _Detail, width: int, out: TextIO) -> None:
    incident = detail.incident
    first, last = incident.first_report, incident.last_report
    counts = ", ".join(f"{kind} {n}" for kind, n in sorted(incident.counts.items()))
    facts = [
        ("region", incident.region),
        ("kinds", ", ".join(incident.kinds) + (f" (counts: {counts})" if counts else "")),
        (
            "status",
            incident.status + (f" ({incident.closed_reason})" if incident.closed_reason else ""),
        ),
        (
            "reported",
            f"{_minute(first)} – "
            + (f"{last:%H:%M}" if first.date() == last.date() else _minute(last))
            + " UTC",
        ),
        (
            "reports",
            f"{incident.posts} from {_plural(incident.channels, 'channel')},"
            f" {incident.independent} independent;"
            f" official: {'yes' if incident.official else 'no'}",
        ),
        ("confidence", f"{incident.confidence:.2f}"),
    ]
    if detail.alert is not None:
        facts.append(
            (
                "alert",
                f"version {detail.alert.version}, {_plural(detail.alert.notices, 'notice')};"
                f" told: {', '.join(detail.alert.kinds)}",
            )
        )
    mark = incident.false_positive
    facts.append(
        (
            "false positive",
            "no"
            if mark is None
            else f"marked by {mark.user_id} at {_minute(mark.marked_at)} UTC"
            + (f": {mark.note}" if mark.note else ""),
        )
    )
    out.write(f"Incident {incident.id}\n")
    label = max(len(fact) for fact, _ in facts)
    for fact, value in facts:
        out.write(
            f"{INDENT}{fact.ljust(label)}  {clip(value, max(width, MIN_WIDTH) - label - 4)}\n"
        )

    out.write(f"\nPosts ({len(detail.posts)})\n")
    inner = max(width, MIN_WIDTH) - 2 * len(INDENT)
    for number, post in enumerate(detail.posts, 1):
        name = detail.names.get(post.channel_id)
        where = f"{_channel_label(post.channel_id, detail.names)}/{post.message_id}"
        if name is not None and name.title:
            where += f" «{name.title}»"
        how = f"{post.role} · {post.via} · {post.independence}"
        if post.similar_to:
            similarity = f" {post.similarity:.2f}" if post.similarity is not None else ""
            how += f" of {post.similar_to}{similarity}"
        heading = f"{INDENT}[{number}] {_minute(post.date)} UTC  {where}  {how}"
        out.write(clip(heading, max(width, MIN_WIDTH)) + "\n")
        if post.link:
            out.write(f"{INDENT * 2}{post.link}\n")
        wrapped = textwrap.wrap(
            _one_line(post.text) or "(no text stored)",
            width=max(inner, MIN_COLUMN),
            max_lines=POST_TEXT_LINES,
            placeholder=" …",
        )
        for line in wrapped:
            out.write(f"{INDENT * 2}{line}\n")
        if post.evidence:
            rows = [
                [str(item.get("rule", "")), str(item.get("text", "")), _evidence_detail(item)]
                for item in post.evidence
            ]
            for line in render_table(
                ["RULE", "MATCHED", "DETAIL"], rows, width, shrink=(1, 2), indent=INDENT * 2
            ):
                out.write(line + "\n")
        else:
            out.write(f"{INDENT * 2}(no evidence stored)\n")
        out.write("\n")

    out.write(f"Delivery ({_plural(len(detail.deliveries), 'message')})\n")
    if not detail.deliveries:
        out.write(f"{INDENT}no alert was queued for it\n")
        return
    rows = [
        [
            str(row.chat_id),
            str(row.seq),
            row.state,
            str(row.attempts),
            "" if row.message_id is None else str(row.message_id),
            f"{'-' if row.sent_version is None else row.sent_version}/{row.version}",
            _short(row.created_at),
            _short(row.updated_at),
            " · ".join(part for part in (row.notice, row.last_error) if part),
        ]
        for row in detail.deliveries
    ]
    headers = ["CHAT", "SEQ", "STATE", "TRIES", "MESSAGE", "SHOWN", "CREATED (UTC)", "UPDATED"]
    for line in render_table(
        [*headers, "NOTICE / ERROR"],
        rows,
        width,
        shrink=(8,),
        drop=(5, 3, 6, 4),
        right=(0, 1, 3, 4),
        indent=INDENT,
    ):
        out.write(line + "\n")


# --- false positives -----------------------------------------------------------------------

SUMMARY_FIELDS = (
    "by",
    "key",
    "username",
    "title",
    "fp_incidents",
    "fp_started",
    "fp_posts",
    "incidents",
    "examples",
)


def rule_json(rule: RuleCount) -> dict[str, Any]:
    """Return one rule's false-positive counts as a JSON-ready object."""
    return {
        "by": "rule",
        "rule": rule.rule,
        "fp_incidents": rule.fp_incidents,
        "fp_posts": rule.fp_posts,
        "incidents": rule.incidents,
        "examples": [{"text": text, "count": count} for text, count in rule.examples],
    }


def channel_json(channel: ChannelCount, names: dict[int, ChannelName]) -> dict[str, Any]:
    """Return one channel's false-positive counts as a JSON-ready object."""
    name = names.get(channel.channel_id)
    return {
        "by": "channel",
        "channel_id": channel.channel_id,
        "username": name.username if name else None,
        "title": name.title if name else None,
        "fp_incidents": channel.fp_incidents,
        "fp_started": channel.fp_started,
        "fp_posts": channel.fp_posts,
        "incidents": channel.incidents,
    }


def _examples(rule: RuleCount) -> str:
    return "  ".join(f"«{text}» ×{count}" for text, count in rule.examples)


@dataclass(frozen=True, slots=True)
class _Summary:
    marked: int
    total: int
    rules: list[RuleCount]
    channels: list[ChannelCount]
    names: dict[int, ChannelName]


def _summary_table(summary: _Summary, width: int, out: TextIO) -> None:
    out.write(
        f"False positives: {summary.marked} of {_plural(summary.total, 'selected incident')}"
        f" ({_share(summary.marked, summary.total)})\n"
    )
    if not summary.marked:
        return
    out.write(
        "\nBy evidence rule, in the reports of the selected incidents\n"
        "(FP: false positives it fired in; ALL: incidents it fired in; SHARE: FP of ALL)\n"
    )
    rows = [
        [
            rule.rule,
            str(rule.fp_incidents),
            str(rule.fp_posts),
            str(rule.incidents),
            _share(rule.fp_incidents, rule.incidents),
            _examples(rule),
        ]
        for rule in summary.rules
    ]
    headers = ["RULE", "FP", "FP POSTS", "ALL", "SHARE", "MOST MATCHED IN FP"]
    for line in render_table(headers, rows, width, shrink=(5, 0), drop=(2,), right=(1, 2, 3, 4)):
        out.write(line + "\n")
    out.write(
        "\nBy channel, in the reports of the selected incidents\n"
        "(FP: false positives it reported; STARTED: those it reported first)\n"
    )
    rows = []
    for channel in summary.channels:
        name = summary.names.get(channel.channel_id)
        rows.append(
            [
                _channel_label(channel.channel_id, summary.names),
                (name.title or "") if name else "",
                str(channel.fp_incidents),
                str(channel.fp_started),
                str(channel.fp_posts),
                str(channel.incidents),
                _share(channel.fp_incidents, channel.incidents),
            ]
        )
    headers = ["CHANNEL", "TITLE", "FP", "STARTED", "FP POSTS", "ALL", "SHARE"]
    for line in render_table(
        headers, rows, width, shrink=(1, 0), drop=(4, 3), right=(2, 3, 4, 5, 6)
    ):
        out.write(line + "\n")


# --- the command ---------------------------------------------------------------------------


def _write_records(
    records: Sequence[dict[str, Any]], fields: Sequence[str], fmt: str, out: TextIO
) -> None:
    """Write JSON-ready records as JSON lines, or as CSV with a header row."""
    if fmt == "jsonl":
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fields)
    for record in records:
        writer.writerow([_csv_value(record.get(name)) for name in fields])


async def _review_incident(
    repo: ReviewRepo, args: argparse.Namespace, width: int, out: TextIO
) -> None:
    incident = await repo.incident(args.incident)
    if incident is None:
        raise ReviewError(f"no incident {args.incident!r} (list them with `python -m bot review`)")
    posts = await repo.posts_of(incident.id)
    deliveries = await repo.deliveries_of(incident.id)
    names = await repo.channel_names(post.channel_id for post in posts)
    if args.format == "table":
        alert = await OutboxRepo(repo.db).state(incident.id)
        _detail_table(_Detail(incident, posts, deliveries, alert, names), width, out)
    elif args.deliveries:
        records = [delivery_json(incident.id, row) for row in deliveries]
        _write_records(records, DELIVERY_FIELDS, args.format, out)
    else:
        records = [post_json(incident.id, post, names) for post in posts]
        if args.format == "csv":
            for record in records:
                record["rules"] = sorted({str(item.get("rule")) for item in record["evidence"]})
        _write_records(records, POST_FIELDS, args.format, out)


async def _review_summary(
    repo: ReviewRepo, selected: IncidentFilter, args: argparse.Namespace, width: int, out: TextIO
) -> None:
    marked = await repo.count(replace(selected, false_positive=True))
    total = await repo.count(selected)
    rules = await repo.false_positive_rules(selected)
    channels = await repo.false_positive_channels(selected)
    names = await repo.channel_names(channel.channel_id for channel in channels)
    if args.format == "table":
        _summary_table(_Summary(marked, total, rules, channels, names), width, out)
        return
    records = [rule_json(rule) for rule in rules]
    records += [channel_json(channel, names) for channel in channels]
    if args.format == "csv":
        for record in records:
            record["key"] = record.get("rule") or record.get("channel_id")
            examples = record.get("examples") or []
            record["examples"] = "; ".join(f"{e['text']} ×{e['count']}" for e in examples)
    _write_records(records, SUMMARY_FIELDS, args.format, out)


async def run_review(
    args: argparse.Namespace,
    out: TextIO,
    *,
    now: datetime | None = None,
    width: int | None = None,
) -> int:
    """Print the review the options ask for; raise SkywatchError on bad input."""
    _check(args)
    path = _database_path(args)
    now = now or datetime.now(tz=UTC)
    columns = width or _terminal_width()
    async with open_read_only(path) as db:
        repo = ReviewRepo(db)
        if args.incident is not None:
            await _review_incident(repo, args, columns, out)
            return 0
        selected = await _filter(args, repo, now)
        if args.fp_summary:
            await _review_summary(repo, selected, args, columns, out)
            return 0
        incidents = await repo.incidents(selected, args.limit)
        if args.format == "table":
            _incident_table(incidents, await repo.count(selected), columns, out)
        else:
            flat = _incident_csv_record if args.format == "csv" else incident_json
            _write_records([flat(i) for i in incidents], INCIDENT_FIELDS, args.format, out)
    return 0


def cmd_review(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run `python -m bot review` to stdout; return the exit status."""
    return asyncio.run(run_review(args, out or sys.stdout))
