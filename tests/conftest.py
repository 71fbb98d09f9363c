"""Shared fixtures: the packaged detector (built once), a clock, the bundled corpus."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import load_detector, load_gazetteer
from bot.detect import Detector
from bot.gazetteer import Gazetteer
from bot.logging_setup import QUIET_LOGGERS

DATA = Path(__file__).parent / "data"
DEV = DATA / "corpus" / "dev"
HOLDOUT = DATA / "holdout"
FRESH = DATA / "fresh"
FRESH2 = DATA / "fresh2"
FRESH3 = DATA / "fresh3"
FRESH4 = DATA / "fresh4"
POST_DATE = datetime(2025, 3, 4, 2, 30, tzinfo=UTC)


@pytest.fixture(scope="session")
def detector() -> Detector:
    """Return the packaged detector (loading the gazetteer takes a few seconds)."""
    return load_detector()


@pytest.fixture(scope="session")
def gazetteer() -> Gazetteer:
    """Return the packaged gazetteer."""
    return load_gazetteer()


class FakeClock:
    """A clock that stands still until told to move."""

    def __init__(self, now: datetime = POST_DATE) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    """Return a fake clock at the corpus's first night."""
    return FakeClock()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo what a test's `configure_logging` did to the root logger (its stream closes)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)
