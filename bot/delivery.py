"""Alert delivery: plan messages into the SQLite outbox, then send them within Telegram's limits.

Planning (`Notifier.plan`) runs inside the pipeline's transaction, so an incident change and
the messages it calls for are stored together. A new incident gets one outbox row per
subscriber that wants its region and is not muted (seq 0: the alert). Later changes ask
for an edit of that message, no sooner than a minute after the last one (edits coalesce);
an escalation (a new kind, a count at least doubled, the first official confirmation) also
adds a short notice (seq 1, 2...) that replies to the alert and rings. The last edit shows
the incident closed or retracted.

Delivery (`Deliverer`) takes due rows (new alerts first, then notices, then edits) and
sends them through `BotApi`, at most `global_per_second` messages a second in all, one a
second per chat and `group_per_minute` a minute per group. A 429 pauses all sending for the
`retry_after` given; 5xx and timeouts retry with exponential backoff and jitter; a blocked,
kicked or deactivated chat (403) or "chat not found" deactivates the subscriber; "message is
not modified" is success; "message to edit not found" sends a fresh message.

Every result is committed as soon as Telegram answers. The one window where a crash can
still double a message is between Telegram accepting a new message (or notice) and that
commit: a few milliseconds per message. Telegram offers no idempotency key, so a message
whose answer was lost is sent again rather than risk losing it. Edits cannot double.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial

from bot.alerts import AlertTexts, AlertView, escalations
from bot.botapi import (
    BadRequest,
    BotApi,
    BotApiError,
    ChatUnavailable,
    MessageGone,
    MessageNotModified,
    RetryAfter,
    TransientError,
)
from bot.incident import Incident, Status
from bot.models import Subscriber
from storage.alerts import AlertState, OutboxRepo, OutboxRow, SubscriberRepo
from storage.db import Database
from storage.incidents import IncidentRepo

__all__ = ["EDIT_SPACING", "AlertViews", "Deliverer", "Notifier", "RateLimiter"]

log = logging.getLogger(__name__)

EDIT_SPACING = 60.0  # seconds between two edits of one message
MAX_ATTEMPTS = 8  # tries of one message before it is given up
BACKOFF_BASE = 2.0  # seconds, doubled at each try, with ±50% jitter
BACKOFF_MAX = 300.0
GLOBAL_PER_SECOND = 29.0  # Telegram allows 30; a little under keeps clear of its windows
CHAT_SPACING = 1.05  # seconds between messages to one chat (Telegram: about one a second)
GROUP_SPACING = 3.05  # seconds between messages to one group (Telegram: 20 a minute)
IN_FLIGHT = 32  # messages scheduled at once: about a second of sending
WINDOW = 1.0  # seconds: Telegram counts requests a second (29 of 30 leave room for jitter)
MAX_TRACKED_CHATS = 100_000
FACTS_LIMIT = 50  # reports read for an alert's places, links and excerpt


class RateLimiter:
    """Keep within Telegram's limits: all chats, each chat, each group.

    `reserve` books evenly spaced slots ahead, so a fan-out flows without bursts. `admit`
    then checks, just before each request, the requests actually made in the last second:
    a slot that comes late (a busy event loop) never crowds the next ones into one second.
    """

    def __init__(
        self,
        global_per_second: float = GLOBAL_PER_SECOND,
        chat_spacing: float = CHAT_SPACING,
        group_spacing: float = GROUP_SPACING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.global_per_second = global_per_second
        self.global_spacing = 1.0 / global_per_second
        self.chat_spacing = chat_spacing
        self.group_spacing = group_spacing
        self.clock = clock
        self._next_global = 0.0
        self._next_chat: dict[int, float] = {}
        self._paused_until = 0.0
        self._made: deque[float] = deque()  # when the requests of the last second were made
        self._last_made: dict[int, float] = {}

    def reserve(self, chat_id: int, group: bool) -> float:
        """Book the next slot for a chat; return how many seconds to wait for it."""
        now = self.clock()
        at = max(now, self._next_global, self._next_chat.get(chat_id, 0.0))
        self._next_global = at + self.global_spacing
        self._next_chat[chat_id] = at + (self.group_spacing if group else self.chat_spacing)
        return at - now

    async def admit(self, chat_id: int, group: bool) -> None:
        """Wait until a request to the chat keeps every limit, then count it as made."""
        spacing = self.group_spacing if group else self.chat_spacing
        while True:
            now = self.clock()
            while self._made and self._made[0] <= now - WINDOW:
                self._made.popleft()
            wait = max(
                self._paused_until - now,  # a 429
                self._last_made.get(chat_id, -spacing) + spacing - now,
                (self._made[0] + WINDOW - now) if len(self._made) >= self.global_per_second else 0,
            )
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        self._made.append(now)
        self._last_made[chat_id] = now
        if len(self._last_made) > MAX_TRACKED_CHATS:
            self._last_made = {c: t for c, t in self._last_made.items() if t > now - WINDOW * 60}

    def pause(self, seconds: float) -> None:
        """Hold every send for `seconds` (Telegram said 429)."""
        self._paused_until = max(self._paused_until, self.clock() + seconds)
        self._next_global = max(self._next_global, self._paused_until)


@dataclass(slots=True)
class AlertViews:
    """Gather what an alert shows about an incident from the database."""

    incidents: IncidentRepo
    _cache: dict[tuple[str, int], AlertView] = field(default_factory=dict)

    async def view(self, incident: Incident) -> AlertView:
        """Return the view of an incident as it stands."""
        places: list[str] = []
        links: list[str] = []
        excerpt = ""
        for link, text, evidence in await self.incidents.reports_of(incident.id, FACTS_LIMIT):
            excerpt = excerpt or text
            if link and link not in links:
                links.append(link)
            for item in json.loads(evidence):
                if item.get("region") == incident.region and item.get("place"):
                    places.append(item["place"])
        return AlertView(
            incident_id=incident.id,
            region=incident.region,
            kinds=incident.kinds,
            counts=incident.counts,
            first_report=incident.first_report,
            last_report=incident.last_report,
            status=incident.status.value,
            closed_reason=incident.closed_reason,
            channels=incident.channels,
            independent=incident.independent,
            official=incident.official,
            places=tuple(dict.fromkeys(places)),
            links=tuple(links),
            excerpt=excerpt,
        )

    async def current(self, incident_id: str, version: int) -> AlertView | None:
        """Return the view for an outbox version (cached: one fan-out renders it once)."""
        key = (incident_id, version)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        incident = await self.incidents.get(incident_id)
        if incident is None:
            return None
        view = await self.view(incident)
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[key] = view
        return view


class Notifier:
    """Plan the messages that incident changes call for (inside the caller's transaction)."""

    def __init__(
        self,
        subscribers: SubscriberRepo,
        outbox: OutboxRepo,
        views: AlertViews,
        texts: AlertTexts,
        clock: Callable[[], datetime],
        on_planned: Callable[[], None] | None = None,
        edit_spacing: float = EDIT_SPACING,
    ) -> None:
        self.subscribers = subscribers
        self.edit_spacing = edit_spacing
        self.outbox = outbox
        self.views = views
        self.texts = texts
        self.clock = clock
        self.on_planned = on_planned

    async def plan(self, incidents: Iterable[Incident]) -> int:
        """Queue new alerts, edits and notices for changed incidents; return rows touched."""
        now = self.clock()
        touched = 0
        everyone: list[Subscriber] | None = None
        for incident in incidents:
            state = await self.outbox.state(incident.id)
            if state is None:
                if incident.status is Status.RETRACTED or not incident.stats.reports:
                    continue
                if everyone is None:
                    everyone = await self.subscribers.active()
                chats = [s.chat_id for s in everyone if s.wants(incident.region, now)]
                await self.outbox.enqueue(incident.id, chats, 0, 1, now)
                await self.outbox.save_state(
                    AlertState(incident.id, incident.kinds, incident.counts,
                               incident.official, 1, 0),
                    now,
                )  # fmt: skip
                log.info("incident %s: alert queued for %d chat(s)", incident.id, len(chats))
                touched += len(chats)
                continue
            touched += await self._update(incident, state, now)
        if touched and self.on_planned is not None:
            self.on_planned()
        return touched

    async def _update(self, incident: Incident, state: AlertState, now: datetime) -> int:
        """Ask for an edit of an incident's alert, and a notice when it escalates."""
        view = await self.views.view(incident)
        # Only a live incident rings again: a morning tally of a finished night edits.
        found = (
            escalations(state.kinds, state.counts, state.official, view)
            if incident.status is Status.ACTIVE
            else []
        )
        version = state.version + 1
        notices = state.notices
        chats = await self.outbox.alert_chats(incident.id)
        if found and chats:
            notices += 1
            languages = {s.chat_id: s.language for s in await self.subscribers.active()}
            by_language: dict[str, list[int]] = {}
            for chat in chats:
                by_language.setdefault(languages.get(chat, "ru"), []).append(chat)
            for lang, group in by_language.items():
                text = self.texts.notice(view, found, lang)
                await self.outbox.enqueue(incident.id, group, notices, version, now, text)
            log.info(
                "incident %s escalates (%s): notice %d for %d chat(s)",
                incident.id,
                ", ".join(e.reason for e in found),
                notices,
                len(chats),
            )
        await self.outbox.bump(incident.id, version, now, self.edit_spacing)
        await self.outbox.save_state(
            replace(
                state,
                kinds=tuple(dict.fromkeys((*state.kinds, *incident.kinds))),
                counts={**state.counts, **incident.counts},
                official=state.official or incident.official,
                version=version,
                notices=notices,
            ),
            now,
        )
        return len(chats)


class Deliverer:
    """Send due outbox messages within Telegram's limits, until stopped."""

    def __init__(
        self,
        api: BotApi,
        db: Database,
        outbox: OutboxRepo,
        subscribers: SubscriberRepo,
        views: AlertViews,
        texts: AlertTexts,
        *,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.time,
        wall_clock: Callable[[], datetime] | None = None,
        edit_spacing: float = EDIT_SPACING,
    ) -> None:
        self.api = api
        self.edit_spacing = edit_spacing
        self.db = db
        self.outbox = outbox
        self.subscribers = subscribers
        self.views = views
        self.texts = texts
        self.limiter = limiter or RateLimiter()
        self.clock = clock
        self.wall_clock = wall_clock
        self._wake = asyncio.Event()
        self._inflight: dict[tuple[str, int, int], asyncio.Task[None]] = {}
        self._sending: set[tuple[str, int, int]] = set()  # past their slot: the call is made
        self._chats: dict[int, Subscriber] = {}
        self.sent = 0  # messages and edits Telegram accepted since start
        self._warm = False

    def wake(self) -> None:
        """Look for due messages now (called when new ones are planned)."""
        self._wake.set()

    async def _warm_up(self) -> None:
        """Open the connection with a getMe before the first message.

        A fan-out's first requests would otherwise each open a connection, and the slowest
        handshake lands its message next to later ones: more than 30 in one second.
        """
        if self._warm:
            return
        self._warm = True
        with suppress(TransientError, RetryAfter):
            await self.api.call("getMe", {})

    async def run(self) -> None:
        """Deliver until cancelled; messages in flight are finished or left in the outbox."""
        await self._warm_up()
        try:
            while True:
                await self.dispatch()
                await self._sleep()
        finally:
            # Messages waiting for their slot stay in the outbox; requests already made
            # are finished and recorded, so a stop never leaves an answer unrecorded.
            for key, task in self._inflight.items():
                if key not in self._sending:
                    task.cancel()
            await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    async def drain(self, timeout: float = 60.0) -> None:
        """Deliver until nothing is due or in flight (replay previews, tests)."""
        await self._warm_up()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.dispatch()
            if self._inflight:
                await asyncio.wait(list(self._inflight.values()))
                continue
            async with self.db.reading():
                upcoming = await self.outbox.next_due()
            if upcoming is None or upcoming > self.clock() + (deadline - time.monotonic()):
                return
            await asyncio.sleep(max(0.0, upcoming - self.clock()))

    async def dispatch(self) -> int:
        """Schedule due messages up to IN_FLIGHT at once; return how many were scheduled."""
        self._wake.clear()
        room = IN_FLIGHT - len(self._inflight)
        if room <= 0:
            return 0
        async with self.db.reading():
            rows = await self.outbox.due(self.clock(), room + len(self._inflight))
        scheduled = 0
        for row in rows:
            key = (row.incident_id, row.chat_id, row.seq)
            if key in self._inflight:
                continue
            subscriber = await self._subscriber(row.chat_id)
            group = subscriber is not None and subscriber.kind in ("group", "supergroup")
            delay = self.limiter.reserve(row.chat_id, group)
            task = asyncio.create_task(self._deliver(row, delay, subscriber))
            self._inflight[key] = task
            task.add_done_callback(partial(self._done, key))
            scheduled += 1
            if scheduled >= room:
                break
        return scheduled

    def _done(self, key: tuple[str, int, int], _: asyncio.Task[None]) -> None:
        self._inflight.pop(key, None)
        self._wake.set()

    async def _sleep(self) -> None:
        async with self.db.reading():
            upcoming = await self.outbox.next_due()
        timeout = None if upcoming is None else max(0.0, upcoming - self.clock())
        if self._inflight:
            timeout = 1.0 if timeout is None else min(timeout, 1.0)
        with suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _subscriber(self, chat_id: int) -> Subscriber | None:
        subscriber = self._chats.get(chat_id)
        if subscriber is None:
            async with self.db.reading():
                subscriber = await self.subscribers.get(chat_id)
            if subscriber is not None:
                self._chats[chat_id] = subscriber
        return subscriber

    async def _deliver(self, row: OutboxRow, delay: float, subscriber: Subscriber | None) -> None:
        """Send or edit one message, then record what Telegram said."""
        if delay > 0:
            await asyncio.sleep(delay)
        group = subscriber is not None and subscriber.kind in ("group", "supergroup")
        await self.limiter.admit(row.chat_id, group)
        key = (row.incident_id, row.chat_id, row.seq)
        self._sending.add(key)
        try:
            await self._attempt(row, subscriber)
        except Exception:
            # The delivery boundary: one message's failure never stops the loop.
            log.exception(
                "incident %s chat %s: delivery failed unexpectedly", row.incident_id, row.chat_id
            )
            async with self.db.transaction():
                await self.outbox.retry(row, self.clock() + BACKOFF_MAX, "unexpected error")
        finally:
            self._sending.discard(key)

    async def _attempt(self, row: OutboxRow, subscriber: Subscriber | None) -> None:
        lang = subscriber.language if subscriber else "ru"
        version = row.version
        if row.seq == 0:
            async with self.db.reading():
                view = await self.views.current(row.incident_id, version)
            if view is None:
                async with self.db.transaction():
                    await self.outbox.fail(row, "incident not found", self.clock())
                return
            text = self.texts.alert(view, lang)
        else:
            text = row.notice or ""
        reply_to = None
        if row.seq > 0:
            async with self.db.reading():
                alert = await self.outbox.alert_message(row.incident_id, row.chat_id)
            if alert is None:  # the alert is not out yet: the notice waits for it
                async with self.db.transaction():
                    await self.outbox.retry(row, self.clock() + 1.0, "waiting for the alert")
                return
            reply_to = alert
        try:
            if row.is_new:
                sent = await self.api.send_message(row.chat_id, text, reply_to=reply_to)
                message_id = sent.message_id
            else:
                assert row.message_id is not None
                await self.api.edit_message_text(row.chat_id, row.message_id, text)
                message_id = row.message_id
        except MessageNotModified:
            message_id = row.message_id or 0
        except BotApiError as err:
            await self._failed(row, err)
            return
        async with self.db.transaction():
            now = self.clock()
            await self.outbox.sent(row, message_id, version, now, now + self.edit_spacing)
        self.sent += 1
        log.info(
            "incident %s chat %s: %s (message %s, version %s)",
            row.incident_id,
            row.chat_id,
            "sent" if row.is_new else "edited",
            message_id,
            version,
        )

    async def _failed(self, row: OutboxRow, err: BotApiError) -> None:
        """Decide what a failed call means for the message and the chat."""
        now = self.clock()
        ids = (row.incident_id, row.chat_id, err)
        async with self.db.transaction():
            if isinstance(err, RetryAfter):
                self.limiter.pause(err.retry_after)
                await self.outbox.retry(row, now + err.retry_after, str(err))
                log.warning("incident %s chat %s: rate limited: %s", *ids)
            elif isinstance(err, MessageGone):
                await self.outbox.retry(row, now, str(err), lost=True)
                log.warning("incident %s chat %s: message gone, sending anew: %s", *ids)
            elif isinstance(err, ChatUnavailable):
                stamp = self.wall_clock() if self.wall_clock else datetime.fromtimestamp(now, UTC)
                await self.subscribers.deactivate(row.chat_id, err.description, stamp)
                await self.outbox.drop_chat(row.chat_id, err.description, now)
                self._chats.pop(row.chat_id, None)
                log.warning("incident %s chat %s: subscriber deactivated: %s", *ids)
            elif isinstance(err, TransientError) and row.attempts + 1 < MAX_ATTEMPTS:
                backoff = min(BACKOFF_MAX, BACKOFF_BASE * 2**row.attempts)
                await self.outbox.retry(row, now + backoff * random.uniform(0.5, 1.5), str(err))
                log.warning("incident %s chat %s: will retry: %s", *ids)
            else:
                await self.outbox.fail(row, str(err), now)
                level = logging.ERROR if isinstance(err, BadRequest | TransientError) else 30
                log.log(level, "incident %s chat %s: given up: %s", *ids)
