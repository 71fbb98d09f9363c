"""The command line: replay, eval and run, with clear errors and exit codes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bot.cli import main
from tests.conftest import DEV
from tests.fakes.botapi import FakeBotApi
from tests.test_export import message, write_export

TAGANROG = [
    message(1, 1741055000, "Таганрог, у нас бахнуло 💥"),
    message(2, 1741055100, "Доброе утро, Таганрог!"),
    message(3, 1741055200, ["Работает ", {"type": "bold", "text": "ПВО"}, " над Таганрогом"]),
]


def test_replay_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_export(tmp_path / "exp" / "tg", TAGANROG, id=42)
    assert main(["replay", str(tmp_path / "exp"), "--regions", "RU-ROS", "--jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(o["channel_id"], o["id"]) for o in lines] == [(42, 1), (42, 3)]
    first = lines[0]
    assert set(first) == {
        "channel_id",
        "id",
        "regions",
        "kinds",
        "incident",
        "incidents",
        "evidence",
    }
    assert first["regions"] == ["RU-ROS"]
    assert first["kinds"] == ["explosion"]
    assert first["incident"].startswith("RU-ROS-20250304-")
    assert first["incidents"] == [first["incident"]]
    assert lines[1]["incident"] == first["incident"]  # one wave, one incident
    assert {
        "rule": "place:name",
        "text": "Таганрог",
        "span": [0, 8],
        "region": "RU-ROS",
        "place": "Таганрог",
    } in first["evidence"]


def test_replay_region_names_and_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_export(tmp_path / "tg", TAGANROG, id=42)
    assert main(["replay", str(tmp_path), "--regions", "Ростовская область"]) == 0
    out = capsys.readouterr().out
    assert "explosion in RU-ROS" in out
    assert "3 posts" in out and "2 flagged" in out
    assert main(["replay", str(tmp_path), "--regions", "Курская область", "--jsonl"]) == 0
    assert capsys.readouterr().out == ""


def test_replay_stores_into_db_idempotently(tmp_path: Path) -> None:
    write_export(tmp_path / "tg", TAGANROG, id=42)
    db = tmp_path / "out.db"
    for _ in range(2):
        assert main(["replay", str(tmp_path / "tg"), "--regions", "RU-ROS", "--db", str(db)]) == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM posts").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM detections WHERE flagged").fetchone() == (2,)


def test_malformed_export_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_export(tmp_path / "good", TAGANROG, id=42)
    bad = tmp_path / "bad" / "result.json"
    bad.parent.mkdir()
    bad.write_text('{"id": 1, "messages": [{"id": 1, "type": "message"', encoding="utf-8")
    db = tmp_path / "out.db"
    code = main(
        [
            "replay",
            str(tmp_path / "good"),
            str(tmp_path / "bad"),
            "--regions",
            "RU-ROS",
            "--db",
            str(db),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "not valid JSON" in err
    assert not db.exists()


def test_unknown_region_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_export(tmp_path / "tg", TAGANROG, id=42)
    assert main(["replay", str(tmp_path), "--regions", "Нарния"]) == 2
    assert "unknown region" in capsys.readouterr().err


def _no_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name in (
        "TELEGRAM_API_ID",
        "TELEGRAM_API_HASH",
        "BOT_TOKEN",
        "OPERATOR_IDS",
        "WATCH_REGIONS",
        "TELEGRAM_SESSION",
    ):
        monkeypatch.delenv(name, raising=False)


def test_run_without_credentials_shows_the_demo_and_how_to_configure(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_configuration(monkeypatch, tmp_path)
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert out.count("📍 Краснодарский край") == 2 and "📍 Ростовская область" in out
    assert "↳ rang later: ⚠️ Краснодарский край: Новое: беспилотники" in out
    assert "<b>" not in out  # rendered for a terminal
    assert "python -m bot login" in out and "TELEGRAM_API_ID" in out


def test_run_half_configured_names_what_is_missing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_configuration(monkeypatch, tmp_path)
    monkeypatch.setenv("BOT_TOKEN", "123456:TEST-token")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    for name in ("TELEGRAM_API_ID", "TELEGRAM_API_HASH", "OPERATOR_IDS", "WATCH_REGIONS"):
        assert name in err


def test_eval_prints_scores(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "eval",
            str(DEV / "export"),
            "--labels",
            str(DEV / "labels.jsonl"),
            "--watch",
            str(DEV / "watch.json"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "flag precision" in out and "F1" in out and "missed flags" in out


def test_eval_bad_labels_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"channel_id": 1}\n', encoding="utf-8")
    assert (
        main(
            [
                "eval",
                str(DEV / "export"),
                "--labels",
                str(labels),
                "--watch",
                str(DEV / "watch.json"),
            ]
        )
        == 2
    )
    assert "line 1" in capsys.readouterr().err


def test_replay_into_an_existing_db_reports_stored_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_export(tmp_path / "tg", TAGANROG, id=42)
    args = ["replay", str(tmp_path / "tg"), "--regions", "RU-ROS", "--jsonl", "--db"]
    assert main([*args, str(tmp_path / "out.db")]) == 0
    first = capsys.readouterr().out
    assert main([*args, str(tmp_path / "out.db")]) == 0
    assert capsys.readouterr().out == first != ""


def test_the_newest_edit_wins_across_exports(tmp_path: Path) -> None:
    original = message(7, 1741055000, "Таганрог: новости")
    edited = message(7, 1741055000, "Таганрог: взрывы, работает ПВО", edited_unixtime="1741055100")
    write_export(tmp_path / "a_new", [edited], id=42)
    write_export(tmp_path / "b_old", [original], id=42)
    db = tmp_path / "out.db"
    assert main(["replay", str(tmp_path), "--regions", "RU-ROS", "--db", str(db)]) == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT text FROM posts").fetchall() == [(edited["text"],)]
        assert conn.execute("SELECT flagged FROM detections").fetchall() == [(1,)]


def test_out_of_range_id_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_export(tmp_path / "tg", [message(2**63, 1, "Взрывы в Таганроге")], id=42)
    assert main(["replay", str(tmp_path), "--regions", "RU-ROS"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_replay_channel_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_export(tmp_path / "tg", [message(1, 1741055000, "Громко!!! Работает ПВО")], id=42)
    assert main(["replay", str(tmp_path), "--regions", "RU-ROS", "--jsonl"]) == 0
    assert capsys.readouterr().out == ""  # no place, no home region
    args = ["replay", str(tmp_path), "--regions", "RU-ROS", "--channels", "42[home=RU-ROS]"]
    assert main([*args, "--jsonl"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["regions"] == ["RU-ROS"]
    assert {"rule": "context:home", "text": "home region", "span": [0, 0], "region": "RU-ROS"} in (
        line["evidence"]
    )
    assert main(["replay", str(tmp_path), "--regions", "RU-ROS", "--channels", "42[loud]"]) == 2
    assert "--channels: 42: unknown setting 'loud'" in capsys.readouterr().err


def test_eval_prints_grouping_and_rejects_bad_incident_lists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", str(DEV / "export"), "--watch", str(DEV / "watch.json")]
    assert main([*args, "--labels", str(DEV / "labels.jsonl")]) == 0
    assert "incidents B-cubed precision" in capsys.readouterr().out
    bad = tmp_path / "labels.jsonl"
    bad.write_text(
        '{"channel_id": 1, "id": 1, "alert": true, "incident": "a", "incidents": "a"}\n',
        encoding="utf-8",
    )
    assert main([*args, "--labels", str(bad)]) == 2
    assert "'incidents' must be a list" in capsys.readouterr().err


def test_replay_deliver_previews_alerts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_export(tmp_path / "tg", TAGANROG, id=42)
    with FakeBotApi("123456:CLI-token", enforce_limits=False) as api:
        monkeypatch.setenv("BOT_TOKEN", "123456:CLI-token")
        monkeypatch.setenv("BOT_API_URL", api.url)
        args = ["replay", str(tmp_path), "--regions", "RU-ROS", "--deliver"]
        assert main([*args, "--chat", "7", "--chat", "8", "--lang", "en"]) == 0
        for chat in (7, 8):
            [alert] = api.messages(chat)
            assert "Taganrog" in alert.text and "air defence" in alert.text
    assert "2 flagged" in capsys.readouterr().out
    assert main(["replay", str(tmp_path), "--regions", "RU-ROS", "--deliver"]) == 2
    assert "--deliver needs at least one --chat" in capsys.readouterr().err
