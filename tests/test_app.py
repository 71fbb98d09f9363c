"""The whole service (`run_service`): an in-memory Telegram in, a fake Bot API server out."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import httpx
import pytest
from telethon import functions

from bot.app import load_gazetteer, run_service
from bot.config import Config, load_config
from storage.channels import ChannelRepo
from storage.db import Database
from tests.fakes.botapi import FakeBotApi
from tests.fakes.telegram import FakeTelegram, shorten_telethon_delays

TOKEN = "123456:TEST-token"
KUBAN = 1001
SUBSCRIBER = 42
OPERATOR = 7
WAIT = 10.0


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


HEALTH_PORT = free_port()


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    with FakeBotApi(TOKEN, enforce_limits=False) as server:
        yield server


def service_config(tmp_path: Path, api: FakeBotApi) -> Config:
    return load_config(
        {
            "TELEGRAM_API_ID": "1",
            "TELEGRAM_API_HASH": "0" * 32,
            "BOT_TOKEN": TOKEN,
            "BOT_API_URL": api.url,
            "OPERATOR_IDS": str(OPERATOR),
            "WATCH_REGIONS": "RU-KDA",
            "CHANNELS": "@kuban_news[official]",
            "DATA_DIR": str(tmp_path / "data"),
            "HEALTH_PORT": str(HEALTH_PORT),
        },
        resolve_region=load_gazetteer().resolve_region,
        require_live=True,
    )


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_subscriber_starts_a_post_becomes_an_alert_the_service_stops(
    tmp_path: Path, api: FakeBotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    shorten_telethon_delays(monkeypatch)
    config = service_config(tmp_path, api)
    telegram = FakeTelegram()
    telegram.add_channel(KUBAN, "kuban_news", "Оперштаб Кубани", member=True)
    stop = asyncio.Event()
    service = asyncio.create_task(run_service(config, stop=stop, attach=telegram.attach))
    try:
        await until(lambda: bool(telegram.requests_of(functions.messages.GetHistoryRequest)))
        api.inject_update(
            {
                "message": {
                    "message_id": 1,
                    "date": 0,
                    "chat": {"id": SUBSCRIBER, "type": "private"},
                    "from": {"id": SUBSCRIBER, "is_bot": False, "first_name": "A"},
                    "text": "/start",
                }
            }
        )
        await until(lambda: len(api.messages(SUBSCRIBER)) == 1)  # «Вы подписаны…»
        telegram.publish(KUBAN, "Атака беспилотников на Краснодар, работает ПВО")
        await until(lambda: len(api.messages(SUBSCRIBER)) == 2)
        # /healthz and /metrics answer while it runs.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{HEALTH_PORT}") as client:
            health = (await client.get("/healthz")).json()
            metrics = (await client.get("/metrics")).text
        assert health == {"status": "ok", "database": "ok", "watcher": "listening"}
        assert "skywatch_flagged_total 1" in metrics and "skywatch_watcher_connected 1" in metrics
        os.kill(os.getpid(), signal.SIGTERM)  # as `docker stop` does: a clean stop
        await asyncio.wait_for(service, WAIT)
    finally:
        stop.set()
        with suppress(asyncio.CancelledError):
            await asyncio.wait_for(service, WAIT)
    welcome, alert = api.messages(SUBSCRIBER)
    assert "подписаны" in welcome.text
    assert "Краснодар" in alert.text and "официально" in alert.text
    async with Database(config.database_path) as db:
        kuban = await ChannelRepo(db).find(KUBAN)
    assert kuban is not None and kuban.last_message_id == 1 and kuban.settings.official
