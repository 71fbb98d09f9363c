"""Subscriber commands (anyone): subscribe, choose regions, mute, language, status, help."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import datetime, timedelta

from bot.models import Subscriber
from bot.phrases import LANGUAGES
from handlers.operators import OPERATOR_HELP
from handlers.router import Context, Reply, Router, UsageError

__all__ = ["router"]

router = Router()

MAX_MUTE = timedelta(days=7)
STATUS_WINDOW = timedelta(hours=24)
STATUS_LIMIT = 5
_DURATION = re.compile(r"^(\d{1,5})\s*([a-zа-яіїє]*)$")
_UNITS = {
    "m": 1,
    "min": 1,
    "м": 1,
    "мин": 1,
    "хв": 1,
    "h": 60,
    "ч": 60,
    "год": 60,
    "d": 1440,
    "д": 1440,
    "дн": 1440,
}
_CHAT_KINDS = {"private", "group", "supergroup", "channel"}


def _regions_text(ctx: Context, regions: tuple[str, ...] | None) -> str:
    """Return the chat's regions, named in its language (or «every watched one»)."""
    if regions is None:
        return ctx.say("all_regions")
    texts = ctx.services.alert_texts
    return ", ".join(texts.region_name(code, ctx.language) for code in regions) or "—"


def _may_change(ctx: Context) -> None:
    """Let only a group's admins change its subscription (Telegram said who they are)."""
    if ctx.update.chat_type in ("group", "supergroup") and ctx.update.admin is False:
        raise UsageError(ctx.say("admins_only"))


def _subscribed(ctx: Context) -> Subscriber:
    if ctx.subscriber is None or not ctx.subscriber.active:
        raise UsageError(ctx.say("need_start"))
    _may_change(ctx)
    return ctx.subscriber


async def _save(ctx: Context, subscriber: Subscriber) -> None:
    await ctx.services.subscribers.save(subscriber, ctx.now)


@router.command("start")
async def cmd_start(ctx: Context) -> Reply:
    """Subscribe the chat (again, keeping its settings)."""
    current = ctx.subscriber
    if current is not None and current.active:
        return Reply(
            html.escape(ctx.say("start.again", regions=_regions_text(ctx, current.regions)))
        )
    _may_change(ctx)
    kind = ctx.update.chat_type if ctx.update.chat_type in _CHAT_KINDS else "private"
    subscriber = (
        replace(current, active=True, kind=kind)
        if current is not None
        else Subscriber(ctx.chat_id, kind=kind, language=ctx.language)
    )
    await _save(ctx, subscriber)
    return Reply(html.escape(ctx.say("start", regions=_regions_text(ctx, subscriber.regions))))


@router.command("stop")
async def cmd_stop(ctx: Context) -> Reply:
    """Unsubscribe the chat (its settings are kept for a later /start)."""
    if ctx.subscriber is None or not ctx.subscriber.active:
        return Reply(html.escape(ctx.say("stop.not")))
    _may_change(ctx)
    await ctx.services.subscribers.deactivate(ctx.chat_id, "unsubscribed (/stop)", ctx.now)
    return Reply(html.escape(ctx.say("stop")))


def _keyboard(ctx: Context, regions: tuple[str, ...] | None) -> list[list[tuple[str, str]]]:
    rows = []
    for code in ctx.services.watched:
        on = regions is None or code in regions
        name = ctx.services.alert_texts.region_name(code, ctx.language)
        rows.append([(f"{'✅' if on else '▫️'} {name}", f"rg:t:{code}")])
    rows.append([(ctx.say("regions.all"), "rg:all"), (ctx.say("regions.done"), "rg:done")])
    return rows


@router.command("regions")
async def cmd_regions(ctx: Context) -> Reply:
    """Show the chat's regions as buttons to turn on and off."""
    subscriber = _subscribed(ctx)
    if not ctx.services.watched:
        return Reply(html.escape(ctx.say("regions.none")))
    return Reply(
        html.escape(ctx.say("regions.title")), keyboard=_keyboard(ctx, subscriber.regions)
    )


@router.callback("rg")
async def on_region_button(ctx: Context) -> Reply | None:
    """Turn a region on or off, choose all, or close the keyboard."""
    subscriber = _subscribed(ctx)
    message_id = ctx.update.message_id
    watched = ctx.services.watched
    _, _, rest = ctx.args.partition(":")
    action, _, code = rest.partition(":")
    regions = subscriber.regions
    if action == "done":
        text = ctx.say("regions.saved", regions=_regions_text(ctx, regions))
        return Reply(html.escape(text), edit=message_id)
    if action == "all":
        regions = None
    elif action == "t" and code in watched:
        chosen = list(watched if regions is None else regions)
        if code in chosen:
            chosen.remove(code)
        else:
            chosen.append(code)
        regions = None if set(watched) <= set(chosen) else tuple(c for c in watched if c in chosen)
    else:
        raise UsageError(ctx.say("regions.unknown"))
    await _save(ctx, replace(subscriber, regions=regions))
    return Reply(
        html.escape(ctx.say("regions.title")), keyboard=_keyboard(ctx, regions), edit=message_id
    )


def _local(ctx: Context, moment: datetime) -> str:
    return f"{moment.astimezone(ctx.services.alert_texts.zone):%d.%m %H:%M}"


@router.command("mute")
async def cmd_mute(ctx: Context) -> Reply:
    """Mute alerts for a while: /mute 30m, 2h, 1d (7 days at most)."""
    subscriber = _subscribed(ctx)
    match = _DURATION.match(ctx.args.lower().replace(" ", ""))
    if match is None:
        raise UsageError(ctx.say("mute.usage"))
    amount, unit = int(match.group(1)), match.group(2) or "h"
    if unit not in _UNITS or amount <= 0:
        raise UsageError(ctx.say("mute.usage"))
    duration = timedelta(minutes=amount * _UNITS[unit])
    if duration > MAX_MUTE:
        raise UsageError(ctx.say("mute.usage"))
    until = ctx.now + duration
    await _save(ctx, replace(subscriber, muted_until=until))
    return Reply(html.escape(ctx.say("mute", time=_local(ctx, until))))


@router.command("unmute")
async def cmd_unmute(ctx: Context) -> Reply:
    """Send alerts again."""
    subscriber = _subscribed(ctx)
    await _save(ctx, replace(subscriber, muted_until=None))
    return Reply(html.escape(ctx.say("unmute")))


@router.command("lang")
async def cmd_lang(ctx: Context) -> Reply:
    """Choose the language of alerts and replies."""
    subscriber = _subscribed(ctx)
    language = ctx.args.strip().lower()
    if language not in LANGUAGES:
        raise UsageError(ctx.say("lang.usage"))
    await _save(ctx, replace(subscriber, language=language))
    ctx.language = language
    return Reply(html.escape(ctx.say("lang")))


@router.command("status")
async def cmd_status(ctx: Context) -> Reply:
    """Show the latest incidents in the chat's regions."""
    subscriber = ctx.subscriber
    regions = subscriber.regions if subscriber is not None else None
    watched = ctx.services.watched
    wanted = [code for code in watched if regions is None or code in regions]
    texts = ctx.services.alert_texts
    since = ctx.now - STATUS_WINDOW
    found = [
        incident
        for incident in await ctx.services.incidents.recent(wanted, STATUS_LIMIT)
        if incident.last_report >= since
    ]
    lines = []
    if ctx.services.paused:
        lines.append(ctx.say("status.paused"))
    if subscriber is not None and subscriber.muted_until and subscriber.muted_until > ctx.now:
        lines.append(ctx.say("status.muted", time=_local(ctx, subscriber.muted_until)))
    named = _regions_text(ctx, regions)
    if not found:
        lines.append(ctx.say("status.none", regions=named))
        return Reply(html.escape("\n".join(lines)))
    lines.append(ctx.say("status.title", regions=named))
    for incident in found:
        state = ctx.say("status.active" if incident.status.value == "active" else "status.closed")
        if await ctx.services.incidents.false_positive(incident.id) is not None:
            state = ctx.say("status.false_positive")
        line = texts.brief(
            incident.region,
            incident.kinds,
            incident.first_report,
            incident.last_report,
            ctx.language,
        )
        lines.append(f"{line} ({state})")
    return Reply(html.escape("\n".join(lines)))


@router.command("digest")
async def cmd_digest(ctx: Context) -> Reply:
    """Choose the hour of a daily digest (local time), or turn it off: /digest 8, /digest off."""
    subscriber = _subscribed(ctx)
    argument = ctx.args.strip().lower()
    hour: int | None
    if argument in ("off", "выкл", "вимк", "0ff"):
        hour = None
    elif argument.isdigit() and 0 <= int(argument) <= 23:
        hour = int(argument)
    else:
        raise UsageError(ctx.say("digest.usage"))
    await _save(ctx, replace(subscriber, digest_hour=hour))
    if hour is None:
        return Reply(html.escape(ctx.say("digest.off")))
    zone = ctx.services.alert_texts.zone
    return Reply(html.escape(ctx.say("digest.on", hour=f"{hour:02d}:00", zone=str(zone))))


@router.command("help")
async def cmd_help(ctx: Context) -> Reply:
    """Say what the bot does; operators also get their commands."""
    text = html.escape(ctx.say("help"))
    if ctx.operator and ctx.update.chat_type == "private":
        text += "\n\n" + html.escape(OPERATOR_HELP)
    return Reply(text)
