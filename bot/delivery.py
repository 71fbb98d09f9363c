"""Alert delivery: plan messages into the SQLite outbox, then send them within Telegram's limits.

Planning (`Notifier.plan`) runs inside the pipeline's transaction, so an incident change and
the messages it calls for are stored together. A new incident gets one outbox row per
subscriber that wants its region and is not muted (seq 0: the alert). Later changes ask
for an edit of that message, no sooner than a minute after the last one (edits coalesce);
an escalation (a new kind, a count at least doubled, the first official confirmation) also
adds a short notice (seq 1, 2...) that replies to the alert and rings. The last edit shows
the incident closed or retracted.

Delivery (`Deliverer`) takes due rows (new alerts first, then notices, then edits) and
sends them through `BotApi`: at most 29 messages a second in all, one a second per chat and
one every 3 seconds per group. A 429 pauses all sending for the `retry_after` given; 5xx
and timeouts retry with exponential backoff and jitter, without limit; 401/404 pause and
keep everything; a blocked, kicked or deactivated chat (403) or "chat not found"
deactivates the subscriber; "message is not modified" is success; "message to edit not
found" sends a fresh message.

An incident whose every report reached us long after it was posted (catch-up after
downtime) is late: its alert says so, or with `suppress_late` it is not sent unless a
report arrives in time.

Rows are claimed (state "sending", with a lease) in a transaction before they are sent, so
two loops never send one message twice, and every answer is committed as soon as it comes.
A message is sent twice only when a send's outcome is lost: the process dies between
Telegram accepting it and that commit, an answer times out after Telegram acted, or the
commit fails. It is then sent again (after its lease runs out, for a crash): Telegram offers
no idempotency key, and a repeated alert is better than a lost one. Edits cannot double.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial

from bot.alerts import LANGUAGES, AlertTexts, AlertView, escalations
from bot.botapi import (
    BotApi,
    BotApiError,
    ChatMigrated,
    ChatUnavailable,
    MessageGone,
    MessageNotModified,
    RetryAfter,
    TransientError,
    Unauthorized,
)
from bot.incident import Incident, Status
from bot.metrics import Metrics
from bot.models import Subscriber
from storage.alerts import AlertState, OutboxRepo, OutboxRow, SubscriberRepo
from storage.db import Database
from storage.incidents import IncidentRepo

__all__ = ["EDIT_SPACING", "AlertViews", "Deliverer", "Notifier", "RateLimiter"]

log = logging.getLogger(__name__)

EDIT_SPACING = 60.0  # seconds between two edits of one message
MAX_ATTEMPTS = 8  # tries after an unexpected error before a message is given up
BACKOFF_BASE = 2.0  # seconds, doubled at each try, with ±50% jitter
BACKOFF_MAX = 300.0
GLOBAL_PER_SECOND = 29.0  # Telegram allows 30; a little under keeps clear of its windows
CHAT_SPACING = 1.05  # seconds between messages to one chat (Telegram: about one a second)
GROUP_SPACING = 3.05  # seconds between messages to one group (Telegram: 20 a minute)
IN_FLIGHT = 32  # messages scheduled at once: about a second of sending
DISPATCH_BATCH = 8  # claim when at least this many places are free (or none is busy)
WINDOW = 1.0  # seconds: Telegram counts the requests of each second
MAX_TRACKED_CHATS = 100_000
LEASE = 300.0  # seconds a claimed message is this loop's; then it is due again
LOOP_TICK = 0.05  # shortest sleep of the loop when something is due
LOOP_RETRY = 5.0  # seconds before the loop tries again after an unexpected error
SUBSCRIBER_TTL = 30.0  # seconds a chat's settings are trusted without reading them again
UNAUTHORIZED_PAUSE = 60.0

RowKey = tuple[str, int, int]  # (incident, chat, seq)
FACTS_LIMIT = 50  # reports read for an alert's places, links and excerpt


class RateLimiter:
    """Keep within Telegram's limits: all chats, each chat, each group.

    `reserve` books evenly spaced slots ahead, so a fan-out flows without bursts. `admit`
    then decides, just before each request, from the requests actually made: those still
    in flight and those answered within the last second all count, since a request may
    reach Telegram any time between being made and being answered (a stalled event loop
    sends several at once). `done` marks a request answered.
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
        self._answered: deque[float] = deque()  # answers of the last second
        self._in_flight = 0
        self._chat_busy: set[int] = set()
        self._chat_answered: dict[int, float] = {}

    def reserve(self, chat_id: int, group: bool, *, urgent: bool = False) -> float:
        """Book the next slot for a chat; return how many seconds to wait for it.

        An urgent message (a new alert) books nothing: it goes straight to `admit`, ahead
        of the edits and notices booked before it.
        """
        now = self.clock()
        if urgent:
            return 0.0
        at = max(now, self._next_global, self._next_chat.get(chat_id, 0.0))
        self._next_global = at + self.global_spacing
        self._next_chat[chat_id] = at + (self.group_spacing if group else self.chat_spacing)
        if len(self._next_chat) > MAX_TRACKED_CHATS:
            self._next_chat = {c: t for c, t in self._next_chat.items() if t > now}
        return at - now

    async def admit(self, chat_id: int, group: bool) -> None:
        """Wait until a request to the chat keeps every limit, then count it as made."""
        spacing = self.group_spacing if group else self.chat_spacing
        while True:
            now = self.clock()
            while self._answered and self._answered[0] <= now - WINDOW:
                self._answered.popleft()
            crowded = self._in_flight + len(self._answered) >= self.global_per_second
            chat_wait = self._chat_answered.get(chat_id, -spacing) + spacing - now
            if chat_id in self._chat_busy:
                chat_wait = max(chat_wait, LOOP_TICK)
            wait = max(
                self._paused_until - now,  # a 429
                chat_wait,
                (self._answered[0] + WINDOW - now) if crowded and self._answered else 0.0,
                LOOP_TICK if crowded and not self._answered else 0.0,
            )
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        self._in_flight += 1
        self._chat_busy.add(chat_id)

    def done(self, chat_id: int) -> None:
        """Count a request as answered now."""
        now = self.clock()
        self._in_flight = max(0, self._in_flight - 1)
        self._chat_busy.discard(chat_id)
        self._answered.append(now)
        self._chat_answered[chat_id] = now
        if len(self._chat_answered) > MAX_TRACKED_CHATS:
            self._chat_answered = {
                c: t for c, t in self._chat_answered.items() if t > now - 60 * WINDOW
            }

    def pause(self, seconds: float) -> None:
        """Hold every send for `seconds` (Telegram said 429)."""
        self._paused_until = max(self._paused_until, self.clock() + seconds)
        self._next_global = max(self._next_global, self._paused_until)


@dataclass(slots=True)
class AlertViews:
    """Gather what an alert shows about an incident from the database."""

    incidents: IncidentRepo
    late_after: timedelta | None = None  # None: never late (replay previews)
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
            late=await self.late(incident.id),
            false_positive=await self.incidents.false_positive(incident.id) is not None,
        )

    async def late(self, incident_id: str) -> bool:
        """Return True when every report of an incident was received late."""
        if self.late_after is None:
            return False
        delay = await self.incidents.receipt_delay(incident_id)
        return delay is not None and delay > self.late_after.total_seconds()

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
        suppress_late: bool = False,
    ) -> None:
        self.subscribers = subscribers
        self.suppress_late = suppress_late
        self.paused = False  # operators paused alerts: nothing is planned
        self.edit_spacing = edit_spacing
        self.outbox = outbox
        self.views = views
        self.texts = texts
        self.clock = clock
        self.on_planned = on_planned

    async def plan(self, incidents: Iterable[Incident]) -> int:
        """Queue new alerts, edits and notices for changed incidents; return rows touched."""
        if self.paused:
            return 0
        now = self.clock()
        touched = 0
        loaded: list[Subscriber] = []

        async def everyone() -> list[Subscriber]:
            """Read the active subscribers once for the whole plan."""
            if not loaded:
                loaded.extend(await self.subscribers.active())
            return loaded

        for incident in incidents:
            state = await self.outbox.state(incident.id)
            if state is None:
                if incident.status is Status.RETRACTED or not incident.stats.reports:
                    continue
                if self.suppress_late and await self.views.late(incident.id):
                    # Nothing is stored: a report that arrives in time still raises it.
                    log.info("incident %s: late alert suppressed", incident.id)
                    continue
                chats = [s.chat_id for s in await everyone() if s.wants(incident.region, now)]
                await self.outbox.enqueue(incident.id, chats, 0, 1, now)
                await self.outbox.save_state(
                    AlertState(incident.id, incident.kinds, incident.counts,
                               incident.official, 1, 0),
                    now,
                )  # fmt: skip
                log.info("incident %s: alert queued for %d chat(s)", incident.id, len(chats))
                touched += len(chats)
                continue
            touched += await self._update(incident, state, now, everyone)
        if touched and self.on_planned is not None:
            self.on_planned()
        return touched

    async def _update(
        self,
        incident: Incident,
        state: AlertState,
        now: datetime,
        everyone: Callable[[], Awaitable[list[Subscriber]]],
    ) -> int:
        """Ask for an edit of an incident's alert, and a notice when it escalates."""
        version = state.version + 1
        if incident.status is Status.RETRACTED:
            # Never ring for something withdrawn: unsent messages go; sent ones are edited.
            await self.outbox.drop_unsent(incident.id, "incident retracted", now)
        view = await self.views.view(incident)
        # Only a live incident rings again: a morning tally of a finished night edits.
        found = (
            escalations(state.kinds, state.counts, state.official, view)
            if incident.status is Status.ACTIVE and not view.false_positive
            else []
        )
        rung = state
        chats: list[int] = []
        if found:
            subscribers = {s.chat_id: s for s in await everyone()}
            chats = [
                chat
                for chat in await self.outbox.alert_chats(incident.id)
                if chat in subscribers and subscribers[chat].wants(incident.region, now)
            ]
            by_language: dict[str, list[int]] = {}
            for chat in chats:
                by_language.setdefault(subscribers[chat].language, []).append(chat)
            notice = state.notices + 1
            for lang, group in by_language.items():
                text = self.texts.notice(view, found, lang)
                await self.outbox.enqueue(incident.id, group, notice, version, now, text)
            # What rang is the baseline of the next escalation (silent edits are not).
            rung = replace(
                state,
                kinds=tuple(dict.fromkeys((*state.kinds, *incident.kinds))),
                counts={
                    kind: max(state.counts.get(kind, 0), incident.counts.get(kind, 0))
                    for kind in {*state.counts, *incident.counts}
                },
                official=state.official or incident.official,
                notices=notice,
            )
            log.info(
                "incident %s escalates (%s): notice %d for %d chat(s)",
                incident.id,
                ", ".join(e.reason for e in found),
                notice,
                len(chats),
            )
        await self.outbox.bump(incident.id, version, now, self.edit_spacing)
        await self.outbox.save_state(replace(rung, version=version), now)
        log.info("incident %s: alert edit queued (version %d)", incident.id, version)
        return len(chats) + 1

    async def reannounce(self, incident_id: str) -> bool:
        """Edit an incident's alert to show what it says now (a false-positive mark).

        Return False when no alert was planned for it.
        """
        state = await self.outbox.state(incident_id)
        if state is None:
            return False
        now = self.clock()
        version = state.version + 1
        await self.outbox.drop_unsent(incident_id, "withdrawn by an operator", now)
        await self.outbox.bump(incident_id, version, now, 0.0)
        await self.outbox.save_state(replace(state, version=version), now)
        if self.on_planned is not None:
            self.on_planned()
        return True


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
        edit_spacing: float = EDIT_SPACING,
    ) -> None:
        self.api = api
        self.db = db
        self.outbox = outbox
        self.subscribers = subscribers
        self.views = views
        self.texts = texts
        self.limiter = limiter or RateLimiter()
        self.clock = clock
        self.edit_spacing = edit_spacing
        self._wake = asyncio.Event()
        self._inflight: dict[RowKey, tuple[OutboxRow, asyncio.Task[None]]] = {}
        self._sending: set[RowKey] = set()  # past their slot: the call is made
        self._chats: dict[int, tuple[float, Subscriber | None]] = {}  # chat → (loaded, it)
        self.metrics: Metrics | None = None
        self._warm = False

    def wake(self) -> None:
        """Look for due messages now (called when new ones are planned)."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled; messages in flight are finished or left in the outbox."""
        await self._warm_up()
        try:
            while True:
                try:
                    await self.dispatch()
                    await self._sleep()
                except Exception:
                    # The loop's boundary: a database hiccup must not end delivery.
                    log.exception("delivery loop failed; trying again shortly")
                    await asyncio.sleep(LOOP_RETRY)
        finally:
            await self._stop()

    async def drain(self, timeout: float = 60.0) -> None:
        """Deliver until nothing is due or in flight (replay previews, tests)."""
        await self._warm_up()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                await self.dispatch()
                if self._inflight:
                    await asyncio.wait([task for _, task in self._inflight.values()])
                    continue
                async with self.db.reading():
                    upcoming = await self.outbox.next_due()
                if upcoming is None or upcoming > self.clock() + (deadline - time.monotonic()):
                    return
                await asyncio.sleep(max(0.0, upcoming - self.clock()))
        finally:
            await self._stop()

    async def _stop(self) -> None:
        """Finish requests already made; hand back claims still waiting for their slot."""
        waiting = [row for key, (row, _) in self._inflight.items() if key not in self._sending]
        for key, (_, task) in self._inflight.items():
            if key not in self._sending:
                task.cancel()
        await asyncio.gather(
            *(task for _, task in self._inflight.values()), return_exceptions=True
        )
        if waiting:
            with suppress(Exception):  # the loop stops anyway; the claims then run out
                async with self.db.transaction():
                    for row in waiting:
                        await self.outbox.retry(row, self.clock(), "stopped", counts=False)

    async def _warm_up(self) -> None:
        """Open the connection with a getMe before the first message.

        A fan-out's first requests would otherwise each open a connection, and the slowest
        handshake lands its message next to later ones: more than 30 in one second.
        """
        if self._warm:
            return
        self._warm = True
        with suppress(BotApiError):
            await self.api.call("getMe", {})

    async def dispatch(self) -> int:
        """Claim due messages up to IN_FLIGHT at once and schedule them; return how many."""
        self._wake.clear()
        room = IN_FLIGHT - len(self._inflight)
        if room <= 0 or (room < DISPATCH_BATCH and self._inflight):
            return 0  # claim in batches: a transaction per message would slow the loop
        async with self.db.transaction():
            rows = await self.outbox.claim(self.clock(), room, LEASE)
        # No await from here on: every claimed row gets its task, or a cancellation could
        # strand claims until their lease runs out.
        for row in rows:
            key = (row.incident_id, row.chat_id, row.seq)
            task = asyncio.create_task(self._deliver(row))
            self._inflight[key] = (row, task)
            task.add_done_callback(partial(self._done, key))
        return len(rows)

    def _done(self, key: RowKey, _: asyncio.Task[None]) -> None:
        """Forget a finished message and look for more."""
        self._inflight.pop(key, None)
        self._wake.set()

    async def _sleep(self) -> None:
        """Wait for new messages, the next due one, or a finished one."""
        async with self.db.reading():
            upcoming = await self.outbox.next_due()
        timeout = None if upcoming is None else max(LOOP_TICK, upcoming - self.clock())
        with suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _subscriber(self, chat_id: int) -> Subscriber | None:
        """Return a chat's settings, read again when older than SUBSCRIBER_TTL."""
        loaded = self._chats.get(chat_id)
        now = time.monotonic()
        if loaded is not None and now - loaded[0] < SUBSCRIBER_TTL:
            return loaded[1]
        async with self.db.reading():
            subscriber = await self.subscribers.get(chat_id)
        if len(self._chats) > MAX_TRACKED_CHATS:
            self._chats.clear()
        self._chats[chat_id] = (now, subscriber)
        return subscriber

    async def _deliver(self, row: OutboxRow) -> None:
        """Wait for the message's slot, send or edit it, then record what Telegram said."""
        key = (row.incident_id, row.chat_id, row.seq)
        try:
            subscriber = await self._subscriber(row.chat_id)
            urgent = row.is_new and row.seq == 0
            delay = self.limiter.reserve(row.chat_id, _is_group(subscriber), urgent=urgent)
            if delay > 0:
                await asyncio.sleep(delay)
            reply_to = await self._notice_ready(row) if row.seq > 0 else None
            if row.seq > 0 and reply_to is None:
                return
            text = await self._text(row, subscriber)
            if text is None:
                return
            # Nothing may wait between admission and the call: a request admitted now but
            # made later would crowd the next second.
            await self.limiter.admit(row.chat_id, _is_group(subscriber))
            self._sending.add(key)
            await self._attempt(row, text, reply_to)
        except Exception:
            # The delivery boundary: one message's failure never stops the loop.
            log.exception(
                "incident %s chat %s: delivery failed unexpectedly", row.incident_id, row.chat_id
            )
            async with self.db.transaction():
                if row.attempts + 1 >= MAX_ATTEMPTS:
                    await self.outbox.fail(row, "unexpected error", self.clock())
                else:
                    await self.outbox.retry(row, self.clock() + BACKOFF_MAX, "unexpected error")
        finally:
            self._sending.discard(key)

    async def _notice_ready(self, row: OutboxRow) -> int | None:
        """Return the alert message a notice replies to; None (handled) if it cannot go yet."""
        async with self.db.reading():
            alert = await self.outbox.alert_row(row.incident_id, row.chat_id)
        async with self.db.transaction():
            if alert is None or alert[0] in ("failed", "dropped"):
                await self.outbox.drop(row, "the alert was not delivered", self.clock())
                return None
            if alert[1] is None:  # the alert is not out yet: the notice waits, uncounted
                await self.outbox.retry(
                    row, self.clock() + 1.0, "waiting for the alert", counts=False
                )
                return None
        return alert[1]

    async def _text(self, row: OutboxRow, subscriber: Subscriber | None) -> str | None:
        """Return the message's text; None (recorded) when its incident is gone."""
        if row.seq != 0:  # a notice, or a standalone message (a digest)
            return row.notice or ""
        async with self.db.reading():
            view = await self.views.current(row.incident_id, row.version)
        if view is None:
            async with self.db.transaction():
                await self.outbox.fail(row, "incident not found", self.clock())
            return None
        return self.texts.alert(view, _language(subscriber))

    async def _attempt(self, row: OutboxRow, text: str, reply_to: int | None) -> None:
        """Make the one call for a message (admitted by the limiter) and record its outcome."""
        try:
            try:
                if row.is_new:
                    sent = await self.api.send_message(row.chat_id, text, reply_to=reply_to)
                    message_id = sent.message_id
                else:
                    assert row.message_id is not None
                    await self.api.edit_message_text(row.chat_id, row.message_id, text)
                    message_id = row.message_id
            finally:
                self.limiter.done(row.chat_id)  # answered (or failed): it reached Telegram
        except MessageNotModified:
            message_id = row.message_id or 0
        except BotApiError as err:
            await self._failed(row, err)
            return
        async with self.db.transaction():
            now = self.clock()
            await self.outbox.sent(row, message_id, row.version, now, now + self.edit_spacing)
        if self.metrics is not None:
            outcome = "edited" if not row.is_new else "sent" if row.seq == 0 else "other"
            self.metrics.alert(outcome)
            if row.is_new and row.seq == 0:  # from planned, retries and outages included
                self.metrics.latency(max(0.0, now - row.created_at))
        log.info(
            "incident %s chat %s: %s (message %s, version %s)",
            row.incident_id,
            row.chat_id,
            "sent" if row.is_new else "edited",
            message_id,
            row.version,
        )

    async def _failed(self, row: OutboxRow, err: BotApiError) -> None:
        """Decide what a failed call means for the message and the chat."""
        if self.metrics is not None:
            self.metrics.alert(f"error_{type(err).__name__}")
        now = self.clock()
        where = (row.incident_id, row.chat_id)
        async with self.db.transaction():
            if isinstance(err, RetryAfter):
                self.limiter.pause(err.retry_after)
                await self.outbox.retry(row, now + err.retry_after, str(err))
                log.warning("incident %s chat %s: rate limited: %s", *where, err)
            elif isinstance(err, Unauthorized):
                # A revoked token or a wrong BOT_API_URL: nothing can go; keep everything.
                self.limiter.pause(UNAUTHORIZED_PAUSE)
                await self.outbox.retry(row, now + UNAUTHORIZED_PAUSE, str(err), counts=False)
                log.error("incident %s chat %s: the Bot API refuses us: %s", *where, err)
            elif isinstance(err, MessageGone):
                await self.outbox.retry(row, now, str(err), lost=True)
                log.warning("incident %s chat %s: message gone, sending anew: %s", *where, err)
            elif isinstance(err, ChatMigrated):
                stamp = datetime.fromtimestamp(now, UTC)
                await self.subscribers.migrate(row.chat_id, err.new_chat_id, stamp)
                await self.outbox.migrate(row.chat_id, err.new_chat_id, now)
                self._chats.pop(row.chat_id, None)
                log.warning("incident %s chat %s: moved to %s", *where, err.new_chat_id)
            elif isinstance(err, ChatUnavailable):
                stamp = datetime.fromtimestamp(now, UTC)
                await self.subscribers.deactivate(row.chat_id, err.description, stamp)
                await self.outbox.drop_chat(row.chat_id, err.description, now)
                self._chats.pop(row.chat_id, None)
                log.warning("incident %s chat %s: subscriber deactivated: %s", *where, err)
            elif isinstance(err, TransientError):
                # No limit on tries: an outage of any length loses no alert.
                backoff = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** min(row.attempts, 16))
                await self.outbox.retry(row, now + backoff * random.uniform(0.5, 1.5), str(err))
                log.warning("incident %s chat %s: will retry: %s", *where, err)
            else:
                await self.outbox.fail(row, str(err), now)
                log.error("incident %s chat %s: given up: %s", *where, err)


def _is_group(subscriber: Subscriber | None) -> bool:
    """Return True for chats under the per-minute group limit (groups and channels)."""
    return subscriber is not None and subscriber.kind in ("group", "supergroup", "channel")


def _language(subscriber: Subscriber | None) -> str:
    """Return a subscriber's language (Russian when unknown)."""
    return subscriber.language if subscriber and subscriber.language in LANGUAGES else "ru"
