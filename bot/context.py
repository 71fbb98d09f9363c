"""Channel context: a post that says only half of a report takes the rest from its channel.

Monitoring channels split one report over several short posts («ЦІЛЬ», then «на
Краснодар») or reply to their own earlier post. A post with a kind but no place takes the
place of the report it replies to, else of the same channel's latest report within
`window`, else the channel's home region. A short post that holds nothing but places and
continuation words («курсом на Харків»; lexicon category `continuation`) takes the kind
the same way (never from the home region). Vetoed posts (drills, past events) take
nothing. Each borrowed kind or region is added to the post's evidence.

The context is small and bounded: the last `per_channel` reports of each channel, for at
most `max_channels` channels. Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from collections.abc import Callable, Container
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.models import Detection, Evidence, Post
from bot.text import fold

__all__ = ["CONTEXT_WINDOW", "VOIDS_NOTHING", "ChannelContext", "Report"]

CONTEXT_WINDOW = timedelta(minutes=10)
REPORTS_PER_CHANNEL = 8
MAX_CHANNELS = 5000
TERSE_MAX_WORDS = 8  # a place-only post longer than this is news, not half of a report
_WORD_RE = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")
BORROWED_SCORE = 0.5
DISTRICT_WORDS = ("район", "округ", "district")
VOIDS_NOTHING = frozenset({"no_region"})  # a rejection that still leaves a report


@dataclass(frozen=True, slots=True)
class Report:
    """What one post reported, as its channel's context keeps it."""

    channel_id: int
    id: int
    date: datetime
    kinds: tuple[str, ...]
    regions: tuple[str, ...]
    all_clear: bool = False

    @property
    def label(self) -> str:
        """Return "channel_id/id", the way evidence names the post."""
        return f"{self.channel_id}/{self.id}"

    @classmethod
    def of(cls, post: Post, detection: Detection) -> Report:
        """Return the report a post makes."""
        return cls(
            post.channel_id,
            post.id,
            post.date,
            detection.kinds,
            detection.regions,
            detection.all_clear,
        )


class ChannelContext:
    """The latest reports of each channel, and the rule that completes half reports."""

    def __init__(
        self,
        continuation: Container[str],
        window: timedelta = CONTEXT_WINDOW,
        per_channel: int = REPORTS_PER_CHANNEL,
        max_channels: int = MAX_CHANNELS,
    ) -> None:
        self.continuation = continuation
        self.window = window
        self.per_channel = per_channel
        self.max_channels = max_channels
        self._channels: OrderedDict[int, deque[Report]] = OrderedDict()

    def remember(self, report: Report) -> None:
        """Keep a report that says what or where (replacing an earlier version of it)."""
        if not (report.kinds or report.regions):
            return
        reports = self._channels.pop(report.channel_id, None)
        if reports is None:
            reports = deque(maxlen=self.per_channel)
        else:
            for old in [r for r in reports if r.id == report.id]:
                reports.remove(old)
        reports.append(report)
        self._channels[report.channel_id] = reports  # most recently used last
        while len(self._channels) > self.max_channels:
            self._channels.popitem(last=False)

    def forget(self, channel_id: int, post_id: int) -> None:
        """Drop a post that no longer reports anything (an edit took it back)."""
        reports = self._channels.get(channel_id)
        if reports:
            for old in [r for r in reports if r.id == post_id]:
                reports.remove(old)

    def get(self, channel_id: int, post_id: int) -> Report | None:
        """Return a remembered report of the channel, or None."""
        for report in self._channels.get(channel_id, ()):
            if report.id == post_id:
                return report
        return None

    def latest(self, channel_id: int, before: Post) -> Report | None:
        """Return the channel's latest report within the window before the post."""
        earliest = before.date - self.window
        for report in reversed(self._channels.get(channel_id, ())):
            if report.id != before.id and earliest <= report.date <= before.date:
                return report
        return None

    def complete(
        self,
        post: Post,
        detection: Detection,
        *,
        replied: Report | None,
        home_region: str | None,
        places: Callable[[], tuple[Evidence, ...]],
    ) -> Detection:
        """Return the detection with what the channel's context adds to a half report.

        `replied` is the report the post replies to, when known; `places` finds the
        places the post names (called only for a short post with no kind).
        """
        if set(detection.rejected) - VOIDS_NOTHING:
            return detection  # vetoed: a drill or an old story borrows nothing
        if (
            detection.regions
            and home_region
            and _districts_elsewhere(detection, home_region, post.text)
        ):
            # «Подписчики из Промышленного района…» in a city's channel: its own district,
            # not a district of the same name in another region.
            return self._home(detection, home_region)
        if detection.regions:
            return detection
        if detection.kinds or detection.all_clear:
            return self._borrow_region(post, detection, replied, home_region)
        if len(post.text.split()) > TERSE_MAX_WORDS:
            return detection
        found_source = _source(replied, self.latest(post.channel_id, post), need="kinds")
        if found_source is None:
            return detection
        source, rule = found_source
        found = places()
        if not found or not _only_places(post.text, found, self.continuation):
            return detection
        borrowed = tuple(
            Evidence(rule=rule, text=source.label, start=0, end=0, kind=kind)
            for kind in source.kinds
        )
        return Detection(
            kinds=source.kinds,
            regions=tuple(dict.fromkeys(e.region for e in found if e.region)),
            evidence=(*detection.evidence, *found, *borrowed),
            all_clear=False,
            score=BORROWED_SCORE,
        )

    @staticmethod
    def _home(detection: Detection, home_region: str) -> Detection:
        """Return the detection placed in the channel's home region."""
        borrowed = Evidence(
            rule="context:home", text="home region", start=0, end=0, region=home_region
        )
        return replace(
            detection,
            regions=(home_region,),
            evidence=(*detection.evidence, borrowed),
            rejected=(),
            score=max(detection.score, BORROWED_SCORE),
        )

    def _borrow_region(
        self,
        post: Post,
        detection: Detection,
        replied: Report | None,
        home_region: str | None,
    ) -> Detection:
        found_source = _source(replied, self.latest(post.channel_id, post), need="regions")
        if found_source is not None:
            source, rule = found_source
            regions, label = source.regions, source.label
        elif home_region:
            return self._home(detection, home_region)
        else:
            return detection
        borrowed = tuple(
            Evidence(rule=rule, text=label, start=0, end=0, region=region) for region in regions
        )
        return replace(
            detection,
            regions=regions,
            evidence=(*detection.evidence, *borrowed),
            rejected=(),
            score=max(detection.score, BORROWED_SCORE),
        )


def _districts_elsewhere(detection: Detection, home_region: str, text: str) -> bool:
    """Return True when a post's only places are districts outside the channel's region."""
    places = [e for e in detection.evidence if e.rule.startswith("place:") and e.region]

    def district(place: Evidence) -> bool:
        words = _WORD_RE.findall(fold(f"{place.text} {text[place.end : place.end + 24]}"))
        return any(word.startswith(DISTRICT_WORDS) for word in words[:3])

    return bool(places) and home_region not in detection.regions and all(map(district, places))


def _only_places(text: str, places: tuple[Evidence, ...], continuation: Container[str]) -> bool:
    """Return True when the text holds nothing but places and continuation words.

    «курсом на Харків» continues a report; «Доброе утро, Таганрог!» is a post of its own.
    """
    for place in sorted(places, key=lambda e: -e.start):
        text = text[: place.start] + " " + text[place.end :]
    return all(word in continuation for word in _WORD_RE.findall(fold(text)))


def _source(
    replied: Report | None, latest: Report | None, *, need: str
) -> tuple[Report, str] | None:
    """Return the report to borrow from and its rule: the replied-to one, else the latest."""
    for report, rule in ((replied, "context:reply"), (latest, "context:recent")):
        if report is not None and not report.all_clear and getattr(report, need):
            return report, rule
    return None
