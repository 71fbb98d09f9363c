"""Quality lines the project holds on the bundled labelled corpora."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.evaluate import b_cubed, evaluate, load_labels, load_watch
from tests.conftest import DEV, FRESH, FRESH2, FRESH3, FRESH4, HOLDOUT

DEV_MIN_F1 = 0.95
DEV_MIN_B_CUBED_F1 = 0.95
DEV_MAX_INCIDENT_RATIO = 1.1


async def test_dev_corpus_quality() -> None:
    labels = load_labels(DEV / "labels.jsonl")
    result = await evaluate([DEV / "export"], labels, load_watch(DEV / "watch.json"))
    assert result.labelled > 200
    assert result.f1 >= DEV_MIN_F1, (result.false_flags, result.missed_flags)
    assert result.negatives_flagged == []
    grouping = result.grouping
    assert grouping.posts >= 75
    assert grouping.f1 >= DEV_MIN_B_CUBED_F1, (grouping.split, grouping.merged)
    assert 1.0 <= grouping.ratio <= DEV_MAX_INCIDENT_RATIO


@pytest.mark.parametrize(
    "corpus",
    [HOLDOUT, FRESH, FRESH2, FRESH3, FRESH4],
    ids=["holdout", "fresh", "fresh2", "fresh3", "fresh4"],
)
async def test_other_corpora_quality(corpus: Path) -> None:
    # Written independently of the rules (then used for tuning): a lower line, but still
    # no more than one hard negative flagged.
    labels = load_labels(corpus / "labels.jsonl")
    result = await evaluate([corpus / "export"], labels, load_watch(corpus / "watch.json"))
    assert result.f1 >= 0.9, (result.false_flags, result.missed_flags)
    assert len(result.negatives_flagged) <= 1, result.negatives_flagged
    assert result.grouping.f1 >= 0.9, (result.grouping.split, result.grouping.merged)
    assert result.grouping.ratio <= 1.2


def test_b_cubed() -> None:
    perfect = b_cubed({(1, 1): ("a", "x"), (1, 2): ("a", "x"), (1, 3): ("b", "y")})
    assert (perfect.precision, perfect.recall, perfect.f1, perfect.ratio) == (1.0, 1.0, 1.0, 1.0)
    split = b_cubed({(1, 1): ("a", "x"), (1, 2): ("b", "x")})
    assert (split.precision, split.recall, split.ratio) == (1.0, 0.5, 2.0)
    assert split.split == (("x", ("a", "b")),)
    merged = b_cubed({(1, 1): ("a", "x"), (1, 2): ("a", "y")})
    assert (merged.precision, merged.recall, merged.ratio) == (0.5, 1.0, 0.5)
    assert merged.merged == (("a", ("x", "y")),)
    assert b_cubed({}).f1 == 1.0
