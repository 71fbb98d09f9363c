"""Quality lines the project holds on the bundled labelled corpora."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.evaluate import evaluate, load_labels, load_watch
from tests.conftest import DEV, HOLDOUT

DEV_MIN_F1 = 0.95


async def test_dev_corpus_quality() -> None:
    labels = load_labels(DEV / "labels.jsonl")
    result = await evaluate([DEV / "export"], labels, load_watch(DEV / "watch.json"))
    assert result.labelled > 200
    assert result.f1 >= DEV_MIN_F1, (result.false_flags, result.missed_flags)
    assert result.negatives_flagged == []


@pytest.mark.skipif(not (HOLDOUT / "labels.jsonl").exists(), reason="no held-out set")
async def test_holdout_corpus_quality() -> None:
    # Written independently of the rules; a lower line, but still no hard negative flagged.
    labels = load_labels(HOLDOUT / "labels.jsonl")
    result = await evaluate([Path(HOLDOUT / "export")], labels, load_watch(HOLDOUT / "watch.json"))
    assert result.f1 >= 0.9, (result.false_flags, result.missed_flags)
