"""The Bot API client: each Telegram error becomes the exception the delivery loop acts on."""

from __future__ import annotations

import pytest

from bot.botapi import (
    BadRequest,
    BotApi,
    BotApiError,
    ChatUnavailable,
    MessageGone,
    MessageNotModified,
    RetryAfter,
    TransientError,
    Unauthorized,
)
from tests.fakes.botapi import FakeBotApi

TOKEN = "123456:CLIENT-token"


@pytest.fixture
def api() -> FakeBotApi:
    with FakeBotApi(TOKEN, enforce_limits=False) as server:
        yield server  # type: ignore[misc]


async def test_send_edit_and_the_errors_of_a_message(api: FakeBotApi) -> None:
    async with BotApi(TOKEN, api.url) as client:
        sent = await client.send_message(5, "<b>Взрывы</b> &amp; ПВО")
        assert api.messages(5)[0].text == "<b>Взрывы</b> &amp; ПВО"
        await client.edit_message_text(5, sent.message_id, "<b>Взрывы</b>")
        with pytest.raises(MessageNotModified):
            await client.edit_message_text(5, sent.message_id, "<b>Взрывы</b>")
        with pytest.raises(MessageGone):
            await client.edit_message_text(5, 999, "x")
        with pytest.raises(BadRequest, match="can't parse entities"):
            await client.send_message(5, "<blink>x</blink>")
        reply = await client.send_message(5, "notice", reply_to=999)  # alert gone: sent alone
        assert api.messages(5)[-1].message_id == reply.message_id


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        (lambda api: api.block(7, "blocked"), ChatUnavailable),
        (lambda api: api.block(7, "kicked"), ChatUnavailable),
        (lambda api: api.forget_chat(7), ChatUnavailable),
        (
            lambda api: api.fail_next(
                "sendMessage",
                error_code=400,
                description="Bad Request: not enough rights to send text messages to the chat",
            ),
            ChatUnavailable,
        ),
        (lambda api: api.fail_next("sendMessage", error_code=429, retry_after=3), RetryAfter),
        (lambda api: api.fail_next("sendMessage", error_code=502), TransientError),
    ],
)
async def test_errors_by_type(api: FakeBotApi, setup: object, error: type[BotApiError]) -> None:
    setup(api)  # type: ignore[operator]
    async with BotApi(TOKEN, api.url) as client:
        with pytest.raises(error) as caught:
            await client.send_message(7, "x")
    if isinstance(caught.value, RetryAfter):
        assert caught.value.retry_after == 3


async def test_wrong_token_timeout_and_network_errors(api: FakeBotApi) -> None:
    async with BotApi("123456:WRONG-token", api.url) as client:
        with pytest.raises(Unauthorized):
            await client.send_message(1, "x")
    api.stall_next("sendMessage", seconds=1.0)
    async with BotApi(TOKEN, api.url, timeout=0.2) as client:
        with pytest.raises(TransientError, match="timed out"):
            await client.send_message(1, "x")
    async with BotApi(TOKEN, "http://127.0.0.1:9") as client:  # nothing listens there
        with pytest.raises(TransientError) as caught:
            await client.send_message(1, "x")
    assert TOKEN not in str(caught.value)
