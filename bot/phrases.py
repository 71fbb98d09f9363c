"""Phrase tables: short texts in Russian, Ukrainian and English, kept in TSV data files."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

__all__ = ["LANGUAGES", "Phrases"]

LANGUAGES = ("ru", "uk", "en")


class Phrases:
    """Look up a phrase by key in a language; Russian stands in for a missing language."""

    def __init__(self, table: Mapping[str, Mapping[str, str]]) -> None:
        self.table = table

    @classmethod
    def load(cls, package: str, name: str) -> Phrases:
        """Read `name` from a package's data (tab-separated: key, ru, uk, en; # comments)."""
        return cls.read(Path(str(resources.files(package) / "data" / name)))

    @classmethod
    def read(cls, path: Path) -> Phrases:
        """Read a phrase table from a file."""
        with path.open(encoding="utf-8") as handle:
            lines = [line for line in handle if line.strip() and not line.startswith("#")]
        table: dict[str, dict[str, str]] = {}
        for row in csv.DictReader(lines, delimiter="\t"):
            table[row["key"]] = {lang: row[lang].replace("\\n", "\n") for lang in LANGUAGES}
        return cls(table)

    def __call__(self, key: str, lang: str, **values: object) -> str:
        """Return a phrase with `values` filled in."""
        row = self.table[key]
        return (row.get(lang) or row["ru"]).format(**values)

    def __contains__(self, key: str) -> bool:
        return key in self.table
