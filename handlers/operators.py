"""Operator commands (OPERATOR_IDS only): channels, regions, pause, stats, review. English."""

from __future__ import annotations

import html
from collections import Counter
from datetime import datetime, timedelta

from bot.alerts import AlertView
from bot.channels import parse_channel_ref, parse_channels
from bot.errors import RegionError
from handlers.router import Context, Reply, Router, UsageError

__all__ = ["OPERATOR_HELP", "OPERATOR_MENU", "router"]

router = Router()

OPERATOR_HELP = """Operator commands:
/channels — followed channels and their health
/addchannel @name[official, home=RU-KDA, trust=2] — follow a channel (t.me link or id too)
/removechannel @name — stop following it
/watch REGION · /unwatch REGION · /watched — watched regions (code or name)
/pause · /resume — stop or resume alerts (posts are still processed)
/stats — the last 24 hours
/subscribers — who gets alerts
/recent [N] — the latest incidents
/why INCIDENT — each post of an incident and why it was flagged
/fp INCIDENT [note] — mark a false positive (its alerts say so)
/testalert — a sample alert, to you"""

# Descriptions in the command menu operators see (English, as their replies).
OPERATOR_MENU = {
    "channels": "Followed channels and their health",
    "addchannel": "Follow a channel: @name[settings]",
    "removechannel": "Stop following a channel",
    "watch": "Watch a region",
    "unwatch": "Stop watching a region",
    "watched": "Watched regions",
    "pause": "Pause alerts",
    "resume": "Resume alerts",
    "stats": "The last 24 hours",
    "subscribers": "Who gets alerts",
    "recent": "Latest incidents: /recent [N]",
    "why": "Why an incident was flagged: /why ID",
    "fp": "Mark a false positive: /fp ID [note]",
    "testalert": "Send me a sample alert",
}
MAX_REPLY = 3900  # characters per message, under Telegram's 4,096
RECENT_DEFAULT = 10
RECENT_MAX = 50
STATS_WINDOW = timedelta(hours=24)
WHY_EXCERPT = 160
STATE_ICONS = {"active": "🟢", "pending": "⏳", "failed": "🔴", "removed": "⚪"}


def _chunks(lines: list[str]) -> list[Reply]:
    """Split lines of HTML into replies that fit a message."""
    replies: list[Reply] = []
    current: list[str] = []
    size = 0
    for line in lines:
        line = line[:MAX_REPLY]
        if current and size + len(line) + 1 > MAX_REPLY:
            replies.append(Reply("\n".join(current)))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        replies.append(Reply("\n".join(current)))
    return replies


def _ago(now: datetime, moment: datetime | None) -> str:
    if moment is None:
        return "never"
    minutes = int((now - moment).total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} h ago"
    return f"{minutes // 1440} days ago"


def _region(ctx: Context) -> str:
    """Resolve the argument to one region code, or explain why not."""
    if not ctx.args:
        raise UsageError(f"Usage: /{ctx.command} REGION (an ISO code such as RU-KDA, or a name)")
    try:
        return ctx.services.gazetteer.resolve_region(ctx.args)
    except RegionError as err:
        raise UsageError(f"/{ctx.command}: {err}") from err


def _region_line(ctx: Context, code: str) -> str:
    return f"{code} {ctx.services.alert_texts.region_name(code, 'en')}"


# --- channels ------------------------------------------------------------------------------


@router.command("channels", operator=True)
async def cmd_channels(ctx: Context) -> list[Reply]:
    """List the channels with their health."""
    health = await ctx.services.control.watcher_health()
    channels = await ctx.services.channels.all("pending", "active", "failed")
    if health is None:
        lines = ["Watcher: not running"]
    else:
        state = "listening" if health.listening else "connected" if health.connected else "down"
        lines = [f"Watcher: {state} since {_ago(ctx.now, health.since)}"]
    if not channels:
        lines.append("No channels. Add one: /addchannel @name")
    for channel in channels:
        line = (
            f"{STATE_ICONS.get(channel.state, '?')} {html.escape(channel.name)} "
            f"({channel.state}) · last post {_ago(ctx.now, channel.last_post_at)}"
        )
        if channel.settings.official:
            line += " · official"
        if channel.last_error:
            line += f"\n    ⚠️ {html.escape(channel.last_error)}"
        lines.append(line)
    return _chunks(lines)


@router.command("addchannel", operator=True)
async def cmd_addchannel(ctx: Context) -> Reply:
    """Follow channels: @name, t.me links or ids, each with optional [settings]."""
    if not ctx.args:
        raise UsageError("Usage: /addchannel @name[official, home=RU-KDA, trust=2]")
    settings, problems = parse_channels(ctx.args, ctx.services.gazetteer.resolve_region)
    if problems:
        raise UsageError("\n".join(p.replace("CHANNELS: ", "") for p in problems))
    added = []
    for item in settings:
        channel = await ctx.services.channels.add(item, ctx.now)
        added.append(f"{channel.ref} ({channel.state})")
    ctx.after_commit.append(ctx.services.control.sync_channels)
    return Reply(html.escape(f"Added: {', '.join(added)}. Resolving now; see /channels."))


@router.command("removechannel", operator=True)
async def cmd_removechannel(ctx: Context) -> Reply:
    """Stop following a channel."""
    try:
        ref = parse_channel_ref(ctx.args)
    except ValueError as err:
        raise UsageError(f"Usage: /removechannel @name ({err})") from err
    removed = await ctx.services.channels.remove(str(ref), ctx.now)
    if not removed and ref.username is None and ref.channel_id is not None:
        found = await ctx.services.channels.find(ref.channel_id)
        removed = found is not None and await ctx.services.channels.remove(found.ref, ctx.now)
    if not removed:
        raise UsageError(f"{ref} is not followed. See /channels.")
    ctx.after_commit.append(ctx.services.control.sync_channels)
    return Reply(html.escape(f"Removed {ref}."))


# --- regions -------------------------------------------------------------------------------


async def _set_watched(ctx: Context, code: str, watched: bool) -> bool:
    changed = await ctx.services.regions.set(code, watched, ctx.now)
    regions = await ctx.services.regions.active()
    services = ctx.services

    def apply() -> None:
        services.watched = regions
        services.control.set_watched(regions)

    ctx.after_commit.append(apply)
    return changed


@router.command("watch", operator=True)
async def cmd_watch(ctx: Context) -> Reply:
    """Watch a region (code or name in Russian, Ukrainian or English)."""
    code = _region(ctx)
    changed = await _set_watched(ctx, code, True)
    verb = "Now watching" if changed else "Already watching"
    return Reply(html.escape(f"{verb} {_region_line(ctx, code)}."))


@router.command("unwatch", operator=True)
async def cmd_unwatch(ctx: Context) -> Reply:
    """Stop watching a region."""
    code = _region(ctx)
    if code not in ctx.services.watched:
        raise UsageError(f"{_region_line(ctx, code)} is not watched. See /watched.")
    await _set_watched(ctx, code, False)
    return Reply(html.escape(f"No longer watching {_region_line(ctx, code)}."))


@router.command("watched", operator=True)
async def cmd_watched(ctx: Context) -> Reply:
    """List the watched regions."""
    watched = ctx.services.watched
    if not watched:
        return Reply("No region is watched. Add one: /watch RU-KDA")
    lines = [f"Watched regions ({len(watched)}):"]
    lines += [f"• {html.escape(_region_line(ctx, code))}" for code in watched]
    return Reply("\n".join(lines))


# --- service -------------------------------------------------------------------------------

PAUSED_KEY = "alerts.paused"


async def _set_paused(ctx: Context, paused: bool) -> None:
    await ctx.services.state.set(PAUSED_KEY, "1" if paused else "0", ctx.now)
    services = ctx.services

    def apply() -> None:
        services.paused = paused
        services.control.set_paused(paused)

    ctx.after_commit.append(apply)


@router.command("pause", operator=True)
async def cmd_pause(ctx: Context) -> Reply:
    """Stop planning alerts; posts are still processed and stored."""
    if ctx.services.paused:
        return Reply("Alerts are already paused. /resume to send them again.")
    await _set_paused(ctx, True)
    return Reply(
        "Alerts paused: no new alerts, edits or notices are planned (messages already queued "
        "still go out). Posts are still processed and stored. /resume to undo."
    )


@router.command("resume", operator=True)
async def cmd_resume(ctx: Context) -> Reply:
    """Plan alerts again."""
    if not ctx.services.paused:
        return Reply("Alerts are not paused.")
    await _set_paused(ctx, False)
    return Reply("Alerts resumed. Ongoing incidents get an alert at their next report.")


@router.command("stats", operator=True)
async def cmd_stats(ctx: Context) -> Reply:
    """Show what the service did in the last 24 hours."""
    stats = await ctx.services.stats.since(ctx.now - STATS_WINDOW)
    health = await ctx.services.control.watcher_health()
    lines = [
        "Last 24 hours:",
        f"• posts: {stats.posts}, flagged: {stats.flagged}",
        f"• incidents: {stats.incidents}",
        f"• alerts sent: {stats.alerts_sent} (messages sent or edited: {stats.messages_sent})",
        f"• delivery failures: {stats.delivery_failures}",
        f"• queue now: {stats.queued}",
        f"• posts that failed to process: {stats.failed_posts}",
    ]
    if ctx.services.paused:
        lines.append("⏸ alerts are paused")
    if health is not None:
        lines.append(f"Watcher: {'connected' if health.connected else 'DISCONNECTED'}")
    return Reply("\n".join(lines))


@router.command("subscribers", operator=True)
async def cmd_subscribers(ctx: Context) -> Reply:
    """Count the subscribers: active, muted, by language and by region."""
    everyone = await ctx.services.subscribers.everyone()
    active = [s for s in everyone if s.active]
    muted = [s for s in active if s.muted_until is not None and s.muted_until > ctx.now]
    languages = Counter(s.language for s in active)
    kinds = Counter(s.kind for s in active)
    regions: Counter[str] = Counter()
    for subscriber in active:
        for code in subscriber.regions or ("all",):
            regions[code] += 1
    lines = [
        f"Subscribers: {len(active)} active ({len(muted)} muted), "
        f"{len(everyone) - len(active)} stopped or unreachable",
        "By chat: " + (", ".join(f"{k} {n}" for k, n in kinds.most_common()) or "—"),
        "By language: " + (", ".join(f"{k} {n}" for k, n in languages.most_common()) or "—"),
        "By region: " + (", ".join(f"{k} {n}" for k, n in regions.most_common()) or "—"),
    ]
    return Reply(html.escape("\n".join(lines)))


# --- review --------------------------------------------------------------------------------


@router.command("recent", operator=True)
async def cmd_recent(ctx: Context) -> list[Reply]:
    """List the latest incidents: /recent [N]."""
    count = RECENT_DEFAULT
    if ctx.args:
        if not ctx.args.isdigit() or not 1 <= int(ctx.args) <= RECENT_MAX:
            raise UsageError(f"Usage: /recent [N], N from 1 to {RECENT_MAX}")
        count = int(ctx.args)
    found = await ctx.services.incidents.recent(None, count)
    if not found:
        return [Reply("No incidents yet.")]
    lines = []
    for incident in found:
        marked = await ctx.services.incidents.false_positive(incident.id)
        lines.append(
            f"<code>{incident.id}</code> {', '.join(incident.kinds)} · "
            f"{incident.first_report:%m-%d %H:%M}–{incident.last_report:%H:%M} UTC · "
            f"{incident.stats.reports} posts, {incident.channels} channels · "
            f"{incident.status.value}{' · FALSE POSITIVE' if marked else ''}"
        )
    return _chunks(lines)


async def _incident(ctx: Context) -> str:
    incident_id = ctx.args.split(maxsplit=1)[0] if ctx.args else ""
    if not incident_id:
        raise UsageError(f"Usage: /{ctx.command} INCIDENT (an id from /recent)")
    if await ctx.services.incidents.get(incident_id) is None:
        raise UsageError(f"No incident {incident_id!r}. See /recent.")
    return incident_id


@router.command("why", operator=True)
async def cmd_why(ctx: Context) -> list[Reply]:
    """Show each post of an incident with the evidence that flagged it."""
    incident_id = await _incident(ctx)
    incident = await ctx.services.incidents.get(incident_id)
    assert incident is not None
    lines = [
        f"<b>{incident.id}</b>: {incident.region}, {', '.join(incident.kinds)}, "
        f"{incident.status.value}, confidence {incident.confidence:.2f}"
    ]
    for post in await ctx.services.review.posts_of(incident_id):
        where = post.link or f"{post.channel_id}/{post.message_id}"
        excerpt = " ".join(post.text.split())[:WHY_EXCERPT]
        lines.append(
            f"\n• {post.date:%m-%d %H:%M} UTC {html.escape(where)} — {post.role}, "
            f"joined by {post.via}, {post.independence}"
        )
        lines.append(f"  «{html.escape(excerpt)}»")
        for item in post.evidence:
            detail = "/".join(
                str(item[key]) for key in ("kind", "region", "place", "count") if item.get(key)
            )
            lines.append(
                f"  – {html.escape(str(item.get('rule')))}: "
                f"«{html.escape(str(item.get('text')))}» {html.escape(detail)}"
            )
    marked = await ctx.services.incidents.false_positive(incident_id)
    if marked is not None:
        user, note, at = marked
        lines.append(
            f"\nMarked a false positive by {user} at {at:%m-%d %H:%M} UTC: {html.escape(note)}"
        )
    return _chunks(lines)


@router.command("fp", operator=True)
async def cmd_fp(ctx: Context) -> Reply:
    """Mark an incident a false positive: /fp INCIDENT [note]; its alerts say so."""
    incident_id = await _incident(ctx)
    note = ctx.args.split(maxsplit=1)[1] if len(ctx.args.split(maxsplit=1)) > 1 else ""
    assert ctx.update.user_id is not None
    if not await ctx.services.incidents.mark_false_positive(
        incident_id, ctx.update.user_id, note, ctx.now
    ):
        return Reply(f"{incident_id} is already marked a false positive.")
    edited = await ctx.services.control.reannounce(incident_id)
    tail = " Its alerts are being edited to say so." if edited else " No alert was sent for it."
    return Reply(html.escape(f"{incident_id} marked a false positive.{tail}"))


@router.command("testalert", operator=True)
async def cmd_testalert(ctx: Context) -> Reply:
    """Send the operator a sample alert, rendered as subscribers see it."""
    region = ctx.services.watched[0] if ctx.services.watched else "RU-KDA"
    language = ctx.subscriber.language if ctx.subscriber is not None else "ru"
    view = AlertView(
        incident_id="TEST",
        region=region,
        kinds=("drone", "air_defense"),
        counts={"drone": 3},
        first_report=ctx.now - timedelta(minutes=12),
        last_report=ctx.now,
        status="active",
        closed_reason=None,
        channels=3,
        independent=2,
        official=False,
        excerpt="ТЕСТ: это пробное оповещение skywatch, а не настоящее событие.",
    )
    return Reply("🧪 TEST\n" + ctx.services.alert_texts.alert(view, language))
