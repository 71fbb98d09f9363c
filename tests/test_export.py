"""Reading Telegram Desktop exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.errors import ExportError
from bot.export import find_export_files, flatten_text, load_export, merge_posts


def write_export(folder: Path, messages: list[dict[str, Any]], **top: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "result.json"
    document = {"name": "Test", "type": "public_channel", "id": 1234567, **top}
    document["messages"] = messages
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def message(id_: int, unixtime: int, text: Any, **extra: Any) -> dict[str, Any]:
    return {"id": id_, "type": "message", "date_unixtime": str(unixtime), "text": text, **extra}


def test_text_as_string_list_and_entities(tmp_path: Path) -> None:
    path = write_export(
        tmp_path / "ch",
        [
            message(1, 100, "plain"),
            message(2, 200, ["Взрывы в ", {"type": "bold", "text": "Краснодаре"}, "!"]),
            message(3, 300, "", photo="photos/1.jpg"),  # media only: skipped
            {"id": 4, "type": "service", "date_unixtime": "400", "action": "pin_message"},
            message(
                5,
                500,
                "caption",
                photo="photos/2.jpg",
                forwarded_from="Другой канал",
                edited_unixtime="600",
                reply_to_message_id=2,
            ),
        ],
    )
    [export] = load_export(path)
    assert export.channel_id == 1234567
    assert export.skipped == 2
    texts = [post.text for post in export.posts]
    assert texts == ["plain", "Взрывы в Краснодаре!", "caption"]
    last = export.posts[-1]
    assert last.forwarded_from == "Другой канал"
    assert last.reply_to == 2
    assert last.edit_date is not None and last.edit_date.timestamp() == 600
    assert last.date.tzinfo is not None and last.date.timestamp() == 500


def test_flatten_rejects_unknown_parts() -> None:
    with pytest.raises(ValueError):
        flatten_text([1, 2])


def test_bot_api_style_channel_id_is_made_bare(tmp_path: Path) -> None:
    path = write_export(tmp_path / "ch", [message(1, 1, "x")], id=-1001234567890)
    assert load_export(path)[0].channel_id == 1234567890


def test_full_account_export_reads_every_chat(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    chats = [
        {"name": "A", "type": "public_channel", "id": 1, "messages": [message(1, 1, "a")]},
        {"name": "B", "type": "public_channel", "id": 2, "messages": [message(1, 2, "b")]},
    ]
    path.write_text(json.dumps({"chats": {"list": chats}}), encoding="utf-8")
    assert [e.channel_id for e in load_export(path)] == [1, 2]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "top level is not a JSON object"),
        ('{"name": "x"}', 'no "messages" list'),
        ('{"id": 1, "messages": [{"id": 5, "type": "message", "text": "x"}]}', "date_unixtime"),
        ('{"id": 1, "messages": [{"id": "x", "type": "message"}]}', "message id"),
        ('{"id": 1, "messages": {"a": 1}}', '"messages" is not a list'),
        ('{"messages": []}', "channel id"),
    ],
)
def test_malformed_exports_name_the_file_and_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "result.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ExportError) as caught:
        load_export(path)
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_find_files_recursively_and_missing_paths(tmp_path: Path) -> None:
    write_export(tmp_path / "a" / "deep", [message(1, 1, "x")])
    write_export(tmp_path / "b", [message(1, 1, "x")])
    assert len(find_export_files([tmp_path])) == 2
    with pytest.raises(ExportError, match="no such file"):
        find_export_files([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="no result.json"):
        find_export_files([tmp_path / "empty"])


def test_merge_orders_posts_as_they_arrived(tmp_path: Path) -> None:
    first = write_export(tmp_path / "a", [message(1, 10, "a1"), message(2, 30, "a2")], id=1)
    second = write_export(tmp_path / "b", [message(7, 20, "b7"), message(8, 30, "b8")], id=2)
    posts = merge_posts(load_export(first) + load_export(second))
    assert [p.text for p in posts] == ["a1", "b7", "a2", "b8"]
