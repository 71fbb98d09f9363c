"""Typed, frozen configuration read once from the environment (and `.env`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from bot.channels import ChannelSettings, parse_channels
from bot.context import CONTEXT_WINDOW
from bot.errors import ConfigError, RegionError
from bot.group import QUIET_GAP, GroupingSettings

__all__ = ["Config", "Secret", "load_config"]

DEFAULT_BOT_API_URL = "https://api.telegram.org"
DEFAULT_DATA_DIR = "data"
DEFAULT_ALERT_TIMEZONE = "Europe/Moscow"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
LATE_ALERT_MODES = ("mark", "suppress")
DEFAULT_CATCHUP_AGE = timedelta(hours=24)
DEFAULT_CATCHUP_POSTS = 1000
DEFAULT_LATE_AFTER = timedelta(minutes=30)
DEFAULT_RETENTION = timedelta(days=30)
DEFAULT_BACKUP_KEEP = 7
DEFAULT_HEALTH_PORT = 8080


@dataclass(frozen=True, slots=True)
class Secret:
    """A string that never shows itself in a repr, str or log line."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('***')" if self.value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.value)


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the service needs, validated."""

    telegram_api_id: int | None
    telegram_api_hash: Secret
    telegram_session: Secret
    bot_token: Secret
    bot_api_url: str
    operator_ids: frozenset[int]
    watch_regions: tuple[str, ...]
    channels: tuple[ChannelSettings, ...]
    grouping: GroupingSettings
    alert_zone: tzinfo
    catchup_max_age: timedelta  # how far back catch-up reads a channel
    catchup_max_posts: int  # and how many posts at most
    late_after: timedelta  # an alert whose reports were all received later than this is late
    late_alerts: str  # mark | suppress
    retention: timedelta  # posts older than this (and in no incident) are deleted
    backup_keep: int  # daily backups kept
    health_host: str  # /healthz and /metrics listen here
    health_port: int  # 0: no health endpoint
    data_dir: Path
    database_path: Path
    log_level: str
    log_format: str

    @property
    def session_path(self) -> Path:
        """Return the Telethon session file used when TELEGRAM_SESSION is not set."""
        return self.data_dir / "telegram.session"


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.replace("\n", ",").split(",") if part.strip()]


def load_config(
    env: Mapping[str, str] | None = None,
    *,
    resolve_region: Callable[[str], str],
    require_live: bool = False,
    require_watch: bool = True,
    env_file: str | os.PathLike[str] | None = ".env",
) -> Config:
    """Read and validate configuration; raise ConfigError naming every bad variable.

    `env` defaults to `.env` overlaid by the process environment (the environment wins).
    `require_live` demands the Telegram credentials that `run` needs; replay and eval do not.
    `require_watch=False` lets WATCH_REGIONS be empty (replay and eval given regions).
    """
    if env is None:
        merged: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        merged.update(os.environ)
        env = merged

    problems: list[str] = []

    def get(name: str, default: str = "") -> str:
        return env.get(name, default).strip()

    api_id: int | None = None
    raw_api_id = get("TELEGRAM_API_ID")
    if raw_api_id:
        try:
            api_id = int(raw_api_id)
            if api_id <= 0:
                raise ValueError
        except ValueError:
            problems.append(f"TELEGRAM_API_ID must be a positive integer, got {raw_api_id!r}")
            api_id = None
    elif require_live:
        problems.append("TELEGRAM_API_ID is missing (get it at my.telegram.org)")

    api_hash = get("TELEGRAM_API_HASH")
    if require_live and not api_hash:
        problems.append("TELEGRAM_API_HASH is missing (get it at my.telegram.org)")
    elif api_hash and (len(api_hash) != 32 or any(c not in "0123456789abcdef" for c in api_hash)):
        problems.append("TELEGRAM_API_HASH must be 32 lowercase hex characters")

    bot_token = get("BOT_TOKEN")
    if require_live and not bot_token:
        problems.append("BOT_TOKEN is missing (ask @BotFather)")
    elif bot_token and (":" not in bot_token or not bot_token.split(":", 1)[0].isdigit()):
        problems.append("BOT_TOKEN must look like '123456:ABC...'")

    bot_api_url = get("BOT_API_URL", DEFAULT_BOT_API_URL).rstrip("/") or DEFAULT_BOT_API_URL
    if not bot_api_url.startswith(("http://", "https://")):
        problems.append(f"BOT_API_URL must be an http(s) URL, got {bot_api_url!r}")

    operator_ids: set[int] = set()
    for part in _split(get("OPERATOR_IDS")):
        try:
            operator_ids.add(int(part))
        except ValueError:
            problems.append(f"OPERATOR_IDS must be comma-separated user ids, got {part!r}")
    if require_live and not operator_ids:
        problems.append("OPERATOR_IDS is missing (Telegram user ids allowed to operate the bot)")

    regions: list[str] = []
    raw_regions = _split(get("WATCH_REGIONS"))
    if not raw_regions and require_watch:
        problems.append("WATCH_REGIONS is missing (ISO 3166-2 codes or names, e.g. RU-KDA)")
    for part in raw_regions:
        try:
            code = resolve_region(part)
        except RegionError as err:
            problems.append(f"WATCH_REGIONS: {err}")
            continue
        if code not in regions:
            regions.append(code)

    channels, channel_problems = parse_channels(get("CHANNELS"), resolve_region)
    problems += channel_problems

    def number(name: str, low: float, high: float, *, whole: bool = False) -> float | None:
        """Return a numeric setting; None when unset or malformed (then noted)."""
        raw = get(name)
        if not raw:
            return None
        try:
            value = int(raw) if whole else float(raw)
            if not low <= value <= high:
                raise ValueError
        except ValueError:
            what = "a whole number" if whole else "a number"
            problems.append(f"{name} must be {what} from {low:g} to {high:g}, got {raw!r}")
            return None
        return value

    def duration(
        name: str, unit: timedelta, default: timedelta, low: float, high: float
    ) -> timedelta:
        value = number(name, low, high)
        return default if value is None else value * unit

    def whole(name: str, default: int, low: int, high: int) -> int:
        value = number(name, low, high, whole=True)
        return default if value is None else int(value)

    grouping = GroupingSettings(
        quiet_gap=duration("INCIDENT_QUIET_HOURS", timedelta(hours=1), QUIET_GAP, 0.25, 48),
        context_window=duration("CONTEXT_MINUTES", timedelta(minutes=1), CONTEXT_WINDOW, 0, 120),
    )

    catchup_max_age = duration(
        "CATCHUP_MAX_HOURS", timedelta(hours=1), DEFAULT_CATCHUP_AGE, 0, 24 * 14
    )
    catchup_max_posts = whole("CATCHUP_MAX_POSTS", DEFAULT_CATCHUP_POSTS, 1, 100_000)
    late_after = duration(
        "LATE_ALERT_MINUTES", timedelta(minutes=1), DEFAULT_LATE_AFTER, 1, 24 * 60
    )
    late_alerts = get("LATE_ALERTS", "mark").lower() or "mark"
    if late_alerts not in LATE_ALERT_MODES:
        problems.append(f"LATE_ALERTS must be 'mark' or 'suppress', got {late_alerts!r}")

    retention = duration("RETENTION_DAYS", timedelta(days=1), DEFAULT_RETENTION, 1, 3650)
    backup_keep = whole("BACKUP_KEEP", DEFAULT_BACKUP_KEEP, 1, 365)
    health_port = whole("HEALTH_PORT", DEFAULT_HEALTH_PORT, 0, 65535)
    health_host = get("HEALTH_HOST", "127.0.0.1") or "127.0.0.1"

    zone_name = get("ALERT_TIMEZONE", DEFAULT_ALERT_TIMEZONE) or DEFAULT_ALERT_TIMEZONE
    try:
        alert_zone: tzinfo = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            f"ALERT_TIMEZONE must be an IANA time zone such as Europe/Moscow, got {zone_name!r}"
        )
        alert_zone = ZoneInfo(DEFAULT_ALERT_TIMEZONE)

    data_dir = Path(get("DATA_DIR", DEFAULT_DATA_DIR) or DEFAULT_DATA_DIR)
    database_path = Path(get("DATABASE_PATH") or data_dir / "skywatch.db")

    log_level = get("LOG_LEVEL", "INFO").upper() or "INFO"
    if log_level not in LOG_LEVELS:
        problems.append(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    log_format = get("LOG_FORMAT", "text").lower() or "text"
    if log_format not in LOG_FORMATS:
        problems.append(f"LOG_FORMAT must be 'text' or 'json', got {log_format!r}")

    if problems:
        raise ConfigError(problems)
    return Config(
        telegram_api_id=api_id,
        telegram_api_hash=Secret(api_hash),
        telegram_session=Secret(get("TELEGRAM_SESSION")),
        bot_token=Secret(bot_token),
        bot_api_url=bot_api_url,
        operator_ids=frozenset(operator_ids),
        watch_regions=tuple(regions),
        channels=channels,
        grouping=grouping,
        alert_zone=alert_zone,
        catchup_max_age=catchup_max_age,
        catchup_max_posts=catchup_max_posts,
        late_after=late_after,
        late_alerts=late_alerts,
        retention=retention,
        backup_keep=backup_keep,
        health_host=health_host,
        health_port=health_port,
        data_dir=data_dir,
        database_path=database_path,
        log_level=log_level,
        log_format=log_format,
    )
