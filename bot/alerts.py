"""Alert texts: what a subscriber reads about an incident, in Russian, Ukrainian or English.

Pure: an AlertView in (gathered by the delivery side), HTML out. Every piece of text that
comes from a post or a name is escaped; the result never exceeds Telegram's 4,096
characters. `escalations` says what deserves a new message (a ring) rather than a silent
edit: a new kind, a count at least doubled, the first official confirmation.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

from bot.detect import KIND_ORDER
from bot.gazetteer import Gazetteer
from bot.phrases import LANGUAGES, Phrases

__all__ = [
    "LANGUAGES",
    "MAX_MESSAGE",
    "AlertTexts",
    "AlertView",
    "Escalation",
    "escalations",
]

MAX_MESSAGE = 4096  # Telegram's limit, in characters of visible text
MAX_LINKS = 5
MAX_PLACES = 8
EXCERPT_LENGTH = 200
TEXTS_FILE = "alert_texts.tsv"
ICONS = {"explosion": "💥", "drone": "🛩", "missile": "🚀", "air_defense": "🛡"}


@dataclass(frozen=True, slots=True)
class AlertView:
    """Everything an alert says about an incident, in neutral form."""

    incident_id: str
    region: str
    kinds: tuple[str, ...]
    counts: Mapping[str, int]
    first_report: datetime
    last_report: datetime
    status: str  # active | closed | retracted
    closed_reason: str | None
    channels: int
    independent: int
    official: bool
    places: tuple[str, ...] = ()  # Russian names, as the detector reports them
    links: tuple[str, ...] = ()  # https://t.me/<channel>/<id>, first reports first
    excerpt: str = ""  # the first report's text
    late: bool = False  # every report reached us long after it was posted (catch-up)
    false_positive: bool = False  # an operator marked it so

    @property
    def confirmed(self) -> bool:
        """Return True once a second independent channel or an official one reported it."""
        return self.official or self.independent >= 2


@dataclass(frozen=True, slots=True)
class Escalation:
    """Why an incident deserves a new message: a new kind, a bigger count, confirmation."""

    reason: str  # "kind", "count" or "official"
    kind: str | None = None
    count: int | None = None


def escalations(
    told_kinds: Sequence[str],
    told_counts: Mapping[str, int],
    told_official: bool,
    view: AlertView,
) -> list[Escalation]:
    """Return what is new enough in an incident to ring again, against what was told."""
    found = [Escalation("kind", kind) for kind in view.kinds if kind not in told_kinds]
    for kind, count in view.counts.items():
        before = told_counts.get(kind)
        if before and count >= 2 * before and kind in told_kinds:
            found.append(Escalation("count", kind, count))
    if view.official and not told_official:
        found.append(Escalation("official"))
    return found


class AlertTexts:
    """Render alerts and notices from the phrase table and the gazetteer's names."""

    def __init__(self, phrases: Phrases, gazetteer: Gazetteer, zone: tzinfo) -> None:
        self.phrases = phrases
        self.gazetteer = gazetteer
        self.zone = zone
        self._places = {(place.region, place.ru): place for place in gazetteer.places if place.ru}

    @classmethod
    def load(cls, gazetteer: Gazetteer, zone: tzinfo, path: Path | None = None) -> AlertTexts:
        """Read bot/data/alert_texts.tsv (or `path`)."""
        phrases = Phrases.read(path) if path else Phrases.load("bot", TEXTS_FILE)
        return cls(phrases, gazetteer, zone)

    def phrase(self, key: str, lang: str, **values: object) -> str:
        """Return a phrase in a language (Russian when the language is unknown)."""
        return self.phrases(key, lang, **values)

    def region_name(self, code: str, lang: str) -> str:
        """Return a region's name in a language, or its code."""
        region = self.gazetteer.regions.get(code)
        return region.name(lang if lang in LANGUAGES else "ru") if region else code

    def place_name(self, ru_name: str, region: str, lang: str) -> str:
        """Return a place's name in a language (the Russian one when no other is known)."""
        place = self._places.get((region, ru_name))
        if place is None or lang not in LANGUAGES or lang == "ru":
            return ru_name
        return str(getattr(place, lang) or ru_name)

    def what(self, view: AlertView, lang: str, kinds: Sequence[str] | None = None) -> str:
        """Return the kinds reported, with the largest counts: «взрывы (до 8), беспилотники»."""
        parts = []
        for kind in kinds if kinds is not None else view.kinds:
            part = self.phrase(f"kind.{kind}", lang)
            if view.counts.get(kind):
                part += f" ({self.phrase('count', lang, n=view.counts[kind])})"
            parts.append(part)
        return ", ".join(parts)

    def alert(self, view: AlertView, lang: str) -> str:
        """Return the alert's HTML text for a subscriber's language."""
        esc = html.escape
        kinds = [k.value for k in KIND_ORDER if k.value in view.kinds]
        icons = "".join(ICONS[k] for k in kinds) or "⚠️"
        what = esc(self.what(view, lang, kinds)) or "—"
        what = what[:1].upper() + what[1:]
        title = f"<b>{what}</b>"
        if view.status == "retracted" or view.false_positive:
            title = f"<s>{title}</s>"
        places = [self.place_name(p, view.region, lang) for p in view.places[:MAX_PLACES]]
        where = esc(self.region_name(view.region, lang))
        if places:
            where += ": " + esc(", ".join(dict.fromkeys(places)))
        local_first = view.first_report.astimezone(self.zone)
        local_last = view.last_report.astimezone(self.zone)
        when = self.phrase(
            "first_report", lang, time=f"{local_first:%H:%M}", zone=local_first.tzname()
        )
        if local_last - local_first >= _MINUTE:
            when += ", " + self.phrase("last_report", lang, time=f"{local_last:%H:%M}")
        if view.official:
            sure = "✅ " + self.phrase("official", lang)
        elif view.confirmed:
            sure = "✅ " + self.phrase("confirmed", lang)
        else:
            sure = "❔ " + self.phrase("unconfirmed", lang)
        channels = self.phrase("channels", lang, count=view.channels, independent=view.independent)
        lines = [
            f"{icons} {title}",
            f"📍 {where}",
            f"🕐 {esc(when)}",
            f"{esc(sure)} · {esc(channels)}",
        ]
        if view.late:
            lines.insert(1, f"⏳ {esc(self.phrase('late', lang))}")
        if view.false_positive:
            lines.append(f"❌ {esc(self.phrase('false_positive', lang))}")
        elif view.status == "retracted":
            lines.append(f"❌ {esc(self.phrase('retracted', lang))}")
        elif view.status == "closed":
            key = "closed.all_clear" if view.closed_reason == "all_clear" else "closed.quiet"
            lines.append(f"⏹ {esc(self.phrase(key, lang))}")
        links = [link for link in view.links if link.startswith("https://t.me/")][:MAX_LINKS]
        if links:
            anchors = " · ".join(
                f'<a href="{esc(link, quote=True)}">{n}</a>' for n, link in enumerate(links, 1)
            )
            lines.append(f"🔗 {esc(self.phrase('sources', lang))}: {anchors}")
        text = "\n".join(lines)
        excerpt = " ".join(view.excerpt.split())
        room = MAX_MESSAGE - len(_visible(text)) - 4
        if excerpt and room > 20:
            if len(excerpt) > min(EXCERPT_LENGTH, room):
                excerpt = excerpt[: min(EXCERPT_LENGTH, room) - 1] + "…"
            text += f"\n\n<i>«{esc(excerpt)}»</i>"
        return text

    def brief(
        self,
        region: str,
        kinds: Sequence[str],
        first: datetime,
        last: datetime,
        lang: str,
    ) -> str:
        """Return one line about an incident: «• 04.03 05:30–06:10 Краснодарский край: взрывы»."""
        what = ", ".join(self.phrase(f"kind.{kind}", lang) for kind in kinds)
        start = first.astimezone(self.zone)
        end = last.astimezone(self.zone)
        return f"• {start:%d.%m %H:%M}–{end:%H:%M} {self.region_name(region, lang)}: {what}"

    def notice(self, view: AlertView, found: Sequence[Escalation], lang: str) -> str:
        """Return a short escalation notice (sent as a reply to the alert)."""
        parts = []
        new_kinds = [e.kind for e in found if e.reason == "kind" and e.kind]
        if new_kinds:
            parts.append(self.phrase("notice.kind", lang, what=self.what(view, lang, new_kinds)))
        bigger = [e.kind for e in found if e.reason == "count" and e.kind]
        if bigger:
            parts.append(self.phrase("notice.count", lang, what=self.what(view, lang, bigger)))
        if any(e.reason == "official" for e in found):
            parts.append(self.phrase("notice.official", lang))
        region = self.region_name(view.region, lang)
        return f"⚠️ <b>{html.escape(region)}</b>: " + html.escape("; ".join(parts))


_MINUTE = timedelta(minutes=1)


def _visible(text: str) -> str:
    """Return the text a reader sees in an HTML message (tags dropped, entities read)."""
    out, inside = [], False
    for ch in text:
        if ch == "<":
            inside = True
        elif ch == ">":
            inside = False
        elif not inside:
            out.append(ch)
    return html.unescape("".join(out))
