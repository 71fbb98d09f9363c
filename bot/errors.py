"""The skywatch exception tree.

SkywatchError
├── ConfigError      the environment is missing or malformed (lists every problem)
├── ExportError      a Telegram Desktop export cannot be read (names the file)
├── LoginRequired    the Telegram user session is missing or logged out
├── RegionError      an operator named a region that is unknown or ambiguous
└── StorageError     the database cannot be opened or migrated
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ExportError",
    "LoginRequired",
    "RegionError",
    "SkywatchError",
    "StorageError",
]


class SkywatchError(Exception):
    """Base of every error skywatch raises on purpose."""


class ConfigError(SkywatchError):
    """Raise when configuration is invalid; carries every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(self.problems))


class ExportError(SkywatchError):
    """Raise when an export file is unreadable or malformed."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class LoginRequired(SkywatchError):
    """Raise when the Telethon session is not logged in (run `python -m bot login`)."""


class RegionError(SkywatchError):
    """Raise when a region name or code cannot be resolved to exactly one region."""


class StorageError(SkywatchError):
    """Raise when the database cannot be opened or its schema upgraded."""
