"""Lexicon loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.lexicon import Lexicon


def test_packaged_lexicon_loads_with_typo_variants() -> None:
    lexicon = Lexicon.load()
    assert "drone" in {t.category for t in lexicon.terms["бпла"]}
    assert "взрвы" in lexicon.terms  # «взрывы» with a letter dropped
    assert "район" in lexicon.token_sets["anchor"]
    assert "районе" in lexicon.token_sets["anchor"]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("explosion\tprefix", "expected"),
        ("nonsense\tword\tx", "unknown category"),
        ("explosion\tfuzzy\tx", "expected"),
    ],
)
def test_malformed_rule_names_its_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "lexicon.tsv"
    path.write_text(f"# comment\n{line}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"lexicon.tsv:2: {problem}"):
        Lexicon.load(path)
