"""Logging: readable lines or JSON lines (LOG_FORMAT=json), with secrets kept out."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

__all__ = ["configure_logging", "redact"]

# Bot API URLs carry the token: https://api.telegram.org/bot<token>/method
_TOKEN_RE = re.compile(r"bot\d+:[A-Za-z0-9_-]+")
# A token on its own: digits, a colon, then letters among the rest (a time such as 23:40
# has none).
_BARE_TOKEN_RE = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]*[A-Za-z_-][A-Za-z0-9_-]{3,}")
# httpx logs every request's URL at INFO; only its warnings are worth a line.
QUIET_LOGGERS = ("httpx", "httpcore")


def redact(text: str) -> str:
    """Replace anything that looks like a bot token."""
    return _BARE_TOKEN_RE.sub("<redacted>", _TOKEN_RE.sub("bot<redacted>", text))


class _RedactingFormatter(logging.Formatter):
    """Format a record, then redact the whole line, tracebacks included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, ensure_ascii=False))


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send logs to stderr in the chosen format, with bot tokens redacted."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            _RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
