"""Logging never shows a bot token."""

from __future__ import annotations

import json
import logging

import pytest

from bot.logging_setup import configure_logging, redact


def test_redact() -> None:
    url = "https://api.telegram.org/bot123456:AAE-x_y/sendMessage"
    assert redact(url) == "https://api.telegram.org/bot<redacted>/sendMessage"
    assert redact("token 1234567:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw") == "token <redacted>"
    assert redact("at 23:40 and 12345:678") == "at 23:40 and 12345:678"  # no letters


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_token_never_reaches_a_log_line(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO", fmt)
        logging.getLogger("bot.delivery").info(
            "sending to %s", "https://api.telegram.org/bot123456:SECRET/sendMessage"
        )
        logging.getLogger("httpx").info("HTTP Request: POST https://api.telegram.org/...")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    err = capsys.readouterr().err
    assert "SECRET" not in err and "bot<redacted>" in err
    assert "HTTP Request" not in err  # httpx's request lines are kept quiet
    if fmt == "json":
        assert json.loads(err.strip().splitlines()[-1])["level"] == "INFO"


def test_token_in_a_traceback_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO", "text")
        try:
            raise RuntimeError("GET https://api.telegram.org/bot123456:SECRET/getMe failed")
        except RuntimeError:
            logging.getLogger("bot").exception("delivery failed")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    err = capsys.readouterr().err
    assert "SECRET" not in err and "RuntimeError" in err
