"""Measure detection and grouping against labelled exports.

Flags: precision, recall and F1 over (post, region) pairs in watched regions. Incidents:
B-cubed precision, recall and F1 over the correctly flagged (post, region) pairs that have a
labelled incident, comparing the post's incident in that region with the label's, and the
ratio of predicted to true incidents among them. A post naming two regions is two items, so
each of its incidents is judged; labels give one incident per region with `incidents`
(aligned with `regions`), or one `incident` for the first region.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from bot.channels import ChannelSettings
from bot.errors import ExportError
from bot.group import GroupingSettings
from bot.models import PostKey
from bot.pipeline import Outcome
from bot.replay import replay

__all__ = [
    "Evaluation",
    "Grouping",
    "Label",
    "b_cubed",
    "evaluate",
    "load_labels",
    "load_watch",
    "write_report",
]

Item = TypeVar("Item", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Label:
    """The truth about one post."""

    channel_id: int
    id: int
    alert: bool
    kinds: tuple[str, ...]
    regions: tuple[str, ...]
    incident: str | None = None
    incidents: tuple[str, ...] = ()

    def incident_in(self, region: str) -> str | None:
        """Return the labelled incident of the post in a region, if any."""
        if self.incidents and len(self.incidents) == len(self.regions):
            return dict(zip(self.regions, self.incidents, strict=True)).get(region)
        if self.regions and region == self.regions[0]:
            return self.incident
        return None


@dataclass(frozen=True, slots=True)
class Grouping:
    """B-cubed scores of incidents over correctly flagged (post, region) pairs."""

    posts: int
    predicted: int  # distinct predicted incidents among those posts
    true: int  # distinct labelled incidents among them
    precision: float
    recall: float
    split: tuple[tuple[str, tuple[str, ...]], ...] = ()  # true incident → predicted ones
    merged: tuple[tuple[str, tuple[str, ...]], ...] = ()  # predicted incident → true ones

    @property
    def f1(self) -> float:
        """Return the harmonic mean of B-cubed precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def ratio(self) -> float:
        """Return predicted incidents per true incident (1.0 is right)."""
        return self.predicted / self.true if self.true else 1.0


def b_cubed(pairs: Mapping[Item, tuple[str, str]]) -> Grouping:
    """Score predicted against true clusters; `pairs` maps each item to (predicted, true)."""
    predicted: dict[str, set[Item]] = {}
    true: dict[str, set[Item]] = {}
    for key, (guess, truth) in pairs.items():
        predicted.setdefault(guess, set()).add(key)
        true.setdefault(truth, set()).add(key)
    precision = recall = 0.0
    for guess, truth in pairs.values():
        common = len(predicted[guess] & true[truth])
        precision += common / len(predicted[guess])
        recall += common / len(true[truth])
    n = len(pairs)

    def spread(
        clusters: dict[str, set[Item]], side: int
    ) -> tuple[tuple[str, tuple[str, ...]], ...]:
        found = []
        for name, members in sorted(clusters.items()):
            others = sorted({pairs[key][side] for key in members})
            if len(others) > 1:
                found.append((name, tuple(others)))
        return tuple(found)

    return Grouping(
        posts=n,
        predicted=len(predicted),
        true=len(true),
        precision=precision / n if n else 1.0,
        recall=recall / n if n else 1.0,
        split=spread(true, 0),
        merged=spread(predicted, 1),
    )


@dataclass(slots=True)
class Evaluation:
    """Scores and the posts behind every error."""

    watch: tuple[str, ...]
    posts: int
    labelled: int
    true_positives: int = 0
    false_flags: list[tuple[PostKey, str]] = field(default_factory=list)
    missed_flags: list[tuple[PostKey, str]] = field(default_factory=list)
    negatives: int = 0
    negatives_flagged: list[PostKey] = field(default_factory=list)
    texts: dict[PostKey, str] = field(default_factory=dict)
    why: dict[PostKey, str] = field(default_factory=dict)
    incidents: dict[tuple[PostKey, str], tuple[str, str]] = field(default_factory=dict)

    @property
    def grouping(self) -> Grouping:
        """Return the B-cubed scores of incidents over correctly flagged posts."""
        return b_cubed(self.incidents)

    @property
    def precision(self) -> float:
        """Return the share of flagged (post, region) pairs that are right."""
        flagged = self.true_positives + len(self.false_flags)
        return self.true_positives / flagged if flagged else 1.0

    @property
    def recall(self) -> float:
        """Return the share of true (post, region) pairs that were flagged."""
        true = self.true_positives + len(self.missed_flags)
        return self.true_positives / true if true else 1.0

    @property
    def f1(self) -> float:
        """Return the harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _label(raw: Any, where: str) -> Label:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: not a JSON object")
    try:
        return Label(
            channel_id=int(raw["channel_id"]),
            id=int(raw["id"]),
            alert=bool(raw["alert"]),
            kinds=tuple(raw.get("kinds") or ()),
            regions=tuple(raw.get("regions") or ()),
            incident=str(raw["incident"]) if raw.get("incident") else None,
            incidents=_incidents(raw.get("incidents")),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{where}: missing or malformed field {err}") from err


def _incidents(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(i, str) for i in raw):
        raise ValueError("'incidents' must be a list of incident ids")
    return tuple(raw)


def load_labels(path: str | Path) -> dict[PostKey, Label]:
    """Read labels.jsonl; raise ExportError naming the file and line of a bad label."""
    labels: dict[PostKey, Label] = {}
    try:
        with Path(path).open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    label = _label(json.loads(line), f"line {number}")
                except json.JSONDecodeError as err:
                    raise ValueError(f"line {number}: not valid JSON: {err}") from err
                labels[(label.channel_id, label.id)] = label
    except OSError as err:
        raise ExportError(path, f"cannot read: {err.strerror or err}") from err
    except ValueError as err:
        raise ExportError(path, str(err)) from err
    return labels


def load_watch(path: str | Path) -> tuple[str, ...]:
    """Read watch.json ({"regions": [...]})."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        regions = document["regions"]
        if not isinstance(regions, list) or not all(isinstance(r, str) for r in regions):
            raise ValueError('"regions" must be a list of ISO 3166-2 codes')
    except OSError as err:
        raise ExportError(path, f"cannot read: {err.strerror or err}") from err
    except (ValueError, KeyError, TypeError) as err:
        raise ExportError(path, f"malformed watch file: {err}") from err
    return tuple(regions)


def score(
    outcomes: Sequence[Outcome], posts: int, labels: dict[PostKey, Label], watch: Sequence[str]
) -> Evaluation:
    """Compare replayed outcomes with the labels over (post, region) pairs in watched regions."""
    watched = set(watch)
    evaluation = Evaluation(tuple(watch), posts, 0)
    predicted = {(o.post.channel_id, o.post.id): o for o in outcomes}
    for key, label in sorted(labels.items()):
        outcome = predicted.get(key)
        if outcome is None:
            continue  # a label for a post the exports do not hold, or a media-only post
        evaluation.labelled += 1
        evaluation.texts[key] = outcome.post.text
        detection = outcome.detection
        evaluation.why[key] = (
            f"kinds={','.join(detection.kinds) or '-'}"
            f" regions={','.join(detection.regions) or '-'}"
            f" rejected={','.join(detection.rejected) or '-'}"
        )
        true = set(label.regions) & watched if label.alert else set()
        flagged = set(outcome.regions) if outcome.flagged else set()
        evaluation.true_positives += len(true & flagged)
        evaluation.false_flags += [(key, region) for region in sorted(flagged - true)]
        evaluation.missed_flags += [(key, region) for region in sorted(true - flagged)]
        if label.alert:
            mine = dict(zip(outcome.regions, outcome.incidents, strict=False))
            for region in sorted(true & flagged):
                truth = label.incident_in(region)
                if truth and region in mine:
                    evaluation.incidents[(key, region)] = (mine[region], truth)
        if not label.alert:
            evaluation.negatives += 1
            if flagged:
                evaluation.negatives_flagged.append(key)
    return evaluation


async def evaluate(
    paths: Sequence[str | Path],
    labels: dict[PostKey, Label],
    watch: Sequence[str],
    *,
    channels: Sequence[ChannelSettings] = (),
    grouping: GroupingSettings | None = None,
) -> Evaluation:
    """Replay the exports in memory and score them against the labels."""
    outcomes: list[Outcome] = []
    result = await replay(
        paths, watch, ":memory:", outcomes.append, channels=channels, grouping=grouping
    )
    return score(outcomes, result.posts, labels, watch)


def write_report(evaluation: Evaluation, out: TextIO) -> None:
    """Print the scores, then every false and missed flag with its text."""
    e = evaluation
    out.write(
        f"{e.posts} posts, {e.labelled} labelled; watched regions: {', '.join(e.watch)}\n"
        f"flag precision {e.precision:.3f}  recall {e.recall:.3f}  F1 {e.f1:.3f}"
        f"  (tp {e.true_positives}, fp {len(e.false_flags)}, fn {len(e.missed_flags)};"
        " (post, region) pairs)\n"
        f"hard negatives flagged: {len(e.negatives_flagged)} of {e.negatives} non-alert posts\n"
    )
    g = e.grouping
    out.write(
        f"incidents B-cubed precision {g.precision:.3f}  recall {g.recall:.3f}  F1 {g.f1:.3f}"
        f"  ({g.predicted} predicted / {g.true} true incidents, ratio {g.ratio:.2f};"
        f" over {g.posts} correctly flagged (post, region) pairs)\n"
    )
    for title, spread in (("split incidents", g.split), ("merged incidents", g.merged)):
        if spread:
            out.write(f"\n{title} ({len(spread)}):\n")
            for name, parts in spread:
                out.write(f"  {name}: {', '.join(parts)}\n")
    for title, rows in (("false flags", e.false_flags), ("missed flags", e.missed_flags)):
        out.write(f"\n{title} ({len(rows)}):\n")
        for key, region in rows:
            text = " ".join(e.texts.get(key, "").split())[:150]
            out.write(f"  {key[0]}/{key[1]} {region}: {text}\n    {e.why.get(key, '')}\n")
