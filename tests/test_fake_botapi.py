"""The fake Bot API: a real HTTP server that answers like api.telegram.org."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.botapi import NOT_MODIFIED, FakeBotApi

CLIENT_TIMEOUT = 5.0


def open_client(api: FakeBotApi, timeout: float = CLIENT_TIMEOUT) -> httpx.Client:
    """Return an httpx client whose relative URLs are Bot API method names."""
    # Plain HTTP to 127.0.0.1: no certificates to load (loading them costs ~60 ms a client).
    return httpx.Client(base_url=api.bot_url + "/", timeout=timeout, verify=False)


def call(client: httpx.Client, method: str, **params: Any) -> httpx.Response:
    """Call a method with a JSON body, as skywatch's client does."""
    return client.post(method, json=params)


def result_of(response: httpx.Response) -> Any:
    """Return the result of a successful call."""
    body = response.json()
    assert response.status_code == 200, body
    assert body["ok"] is True
    return body["result"]


def error_of(response: httpx.Response, error_code: int) -> dict[str, Any]:
    """Return the body of a failed call, checking it has Telegram's shape."""
    body = response.json()
    assert response.status_code == error_code, body
    assert body["ok"] is False
    assert body["error_code"] == error_code
    return body


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    """Serve a fake with flood limits off: these tests are about content, not pacing."""
    with FakeBotApi(enforce_limits=False) as fake:
        yield fake


@pytest.fixture
def client(api: FakeBotApi) -> Iterator[httpx.Client]:
    """Return a client of the `api` fixture."""
    with open_client(api) as http:
        yield http


def test_sent_message_is_returned_and_stored(api: FakeBotApi, client: httpx.Client) -> None:
    before = time.time()
    result = result_of(
        call(client, "sendMessage", chat_id=42, text="Drone over Kyiv", disable_notification=True)
    )
    assert result["message_id"] == 1
    assert isinstance(result["date"], int) and result["date"] >= int(before)
    assert result["chat"]["id"] == 42 and result["chat"]["type"] == "private"
    assert result["text"] == "Drone over Kyiv"
    assert result["from"]["username"] == "skywatch_test_bot"

    [message] = api.messages(42)
    assert message.message_id == 1 and message.chat_id == 42
    assert message.text == "Drone over Kyiv" and message.parse_mode is None
    assert message.disable_notification is True and message.edits == []
    assert message.date >= before
    assert api.all_messages() == [message]
    assert [(r.method, r.status) for r in api.requests] == [("sendMessage", 200)]
    assert api.requests[0].params["chat_id"] == 42


def test_unknown_chats_register_by_id_sign(api: FakeBotApi, client: httpx.Client) -> None:
    group = result_of(call(client, "sendMessage", chat_id="-5", text="a"))  # a string id is fine
    supergroup = result_of(call(client, "sendMessage", chat_id=-1001234567890, text="b"))
    assert group["chat"]["type"] == "group" and group["chat"]["id"] == -5
    assert supergroup["chat"]["type"] == "supergroup"
    assert supergroup["message_id"] == 1  # supergroups number their own messages


def test_html_becomes_visible_text_and_entities(api: FakeBotApi, client: httpx.Client) -> None:
    text = ' <b>Drone</b> &amp; <a href="https://t.me/x">missile</a> &lt;3 &#x1F680; '
    result = result_of(call(client, "sendMessage", chat_id=1, text=text, parse_mode="HTML"))
    assert result["text"] == "Drone & missile <3 🚀"
    assert result["entities"] == [
        {"type": "bold", "offset": 0, "length": 5},
        {"type": "text_link", "offset": 8, "length": 7, "url": "https://t.me/x"},
    ]
    [message] = api.messages(1)
    assert message.text == text and message.parse_mode == "HTML"
    assert message.visible_text == "Drone & missile <3 🚀"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("AT&T", 'Unescaped "&" or unsupported entity at byte offset 2'),
        ("a &nbsp; b", 'Unescaped "&" or unsupported entity at byte offset 2'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("<a>x</a>", 'Tag "a" must have attribute "href" at byte offset 0'),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("🚀 <br>", 'Unsupported start tag "br" at byte offset 5'),  # offsets count bytes
    ],
)
def test_bad_html_is_refused(
    api: FakeBotApi, client: httpx.Client, text: str, reason: str
) -> None:
    response = call(client, "sendMessage", chat_id=1, text=text, parse_mode="HTML")
    assert error_of(response, 400)["description"] == f"Bad Request: can't parse entities: {reason}"
    assert api.messages(1) == []


def test_html_characters_are_plain_without_parse_mode(client: httpx.Client) -> None:
    result = result_of(call(client, "sendMessage", chat_id=1, text="a < b & <div>"))
    assert result["text"] == "a < b & <div>"


def test_length_is_counted_on_visible_text(client: httpx.Client) -> None:
    fits = result_of(
        call(client, "sendMessage", chat_id=1, text=f"<b>{'&amp;' * 4096}</b>", parse_mode="HTML")
    )
    assert len(fits["text"]) == 4096
    response = call(client, "sendMessage", chat_id=1, text="x" * 4097)
    assert error_of(response, 400)["description"] == "Bad Request: message is too long"


@pytest.mark.parametrize("params", [{"text": ""}, {"text": "  \n "}, {}])
def test_empty_text_is_refused(client: httpx.Client, params: dict[str, Any]) -> None:
    response = call(client, "sendMessage", chat_id=1, **params)
    assert error_of(response, 400)["description"] == "Bad Request: message text is empty"


def test_edit_replaces_text_and_keeps_the_old_one(api: FakeBotApi, client: httpx.Client) -> None:
    sent = result_of(
        call(client, "sendMessage", chat_id=7, text="<b>1</b> drone", parse_mode="HTML")
    )
    edited = result_of(
        call(
            client,
            "editMessageText",
            chat_id=7,
            message_id=sent["message_id"],
            text="<b>2</b> drones",
            parse_mode="HTML",
        )
    )
    assert edited["message_id"] == sent["message_id"]
    assert edited["text"] == "2 drones" and isinstance(edited["edit_date"], int)
    [message] = api.messages(7)
    assert message.text == "<b>2</b> drones"
    assert message.edits == ["<b>1</b> drone"]


def test_edit_to_the_same_content_is_not_modified(client: httpx.Client) -> None:
    sent = result_of(call(client, "sendMessage", chat_id=7, text="<b>x</b>", parse_mode="HTML"))
    for same in ("<b>x</b>", "<strong>x</strong>"):  # Telegram compares what readers see
        response = call(
            client,
            "editMessageText",
            chat_id=7,
            message_id=sent["message_id"],
            text=same,
            parse_mode="HTML",
        )
        assert error_of(response, 400)["description"] == f"Bad Request: {NOT_MODIFIED}"
    response = call(client, "editMessageText", chat_id=7, message_id=sent["message_id"], text="x")
    assert result_of(response)["text"] == "x"  # the bold is gone: that is a change


def test_edit_of_a_missing_message(client: httpx.Client) -> None:
    response = call(client, "editMessageText", chat_id=7, message_id=99, text="x")
    assert error_of(response, 400)["description"] == "Bad Request: message to edit not found"


def test_reply_to_a_missing_message(api: FakeBotApi, client: httpx.Client) -> None:
    response = call(client, "sendMessage", chat_id=3, text="x", reply_to_message_id=99)
    assert error_of(response, 400)["description"] == (
        "Bad Request: message to be replied not found"
    )
    lenient = {"message_id": 99, "allow_sending_without_reply": True}
    result = result_of(call(client, "sendMessage", chat_id=3, text="x", reply_parameters=lenient))
    assert "reply_to_message" not in result
    reply = result_of(
        call(
            client,
            "sendMessage",
            chat_id=3,
            text="y",
            reply_parameters={"message_id": result["message_id"]},
        )
    )
    assert reply["reply_to_message"]["message_id"] == result["message_id"]
    assert [m.reply_to_message_id for m in api.messages(3)] == [None, result["message_id"]]


@pytest.mark.parametrize(
    ("chat_id", "reason", "error_code", "description"),
    [
        (5, "blocked", 403, "Forbidden: bot was blocked by the user"),
        (-5, "kicked", 403, "Forbidden: bot was kicked from the group chat"),
        (5, "deactivated", 403, "Forbidden: user is deactivated"),
        (5, None, 400, "Bad Request: chat not found"),
    ],
)
def test_chats_that_cannot_be_written_to(
    api: FakeBotApi,
    client: httpx.Client,
    chat_id: int,
    reason: Any,
    error_code: int,
    description: str,
) -> None:
    if reason is None:
        api.forget_chat(chat_id)
    else:
        api.block(chat_id, reason)
    response = call(client, "sendMessage", chat_id=chat_id, text="x")
    assert error_of(response, error_code)["description"] == description


def test_unknown_chats_are_not_found_without_auto_register() -> None:
    with FakeBotApi(auto_register=False) as api, open_client(api) as client:
        response = call(client, "sendMessage", chat_id=5, text="x")
        assert error_of(response, 400)["description"] == "Bad Request: chat not found"
        api.add_chat(5)
        assert result_of(call(client, "sendMessage", chat_id=5, text="x"))["chat"]["id"] == 5


def test_wrong_token_and_unknown_method(api: FakeBotApi) -> None:
    with httpx.Client(base_url=api.url, timeout=CLIENT_TIMEOUT, verify=False) as http:
        wrong = http.post("/bot999:other-token/getMe")
        assert error_of(wrong, 401)["description"] == "Unauthorized"
        malformed = http.post("/botnot-a-token/getMe")
        assert error_of(malformed, 401)["description"] == "Unauthorized: invalid token specified"
        unknown = http.post(f"/bot{api.token}/sendTelepathy")
        assert error_of(unknown, 404)["description"] == "Not Found"
        any_case = http.post(f"/bot{api.token}/GETME")  # method names are case-insensitive
        assert result_of(any_case)["id"] == 123456


def test_fail_next_answers_with_the_error_then_recovers(
    api: FakeBotApi, client: httpx.Client
) -> None:
    api.fail_next("sendMessage", count=2)
    for _ in range(2):
        body = error_of(call(client, "sendMessage", chat_id=1, text="x"), 500)
        assert body["description"] == "Internal Server Error"
    result_of(call(client, "sendMessage", chat_id=1, text="x"))
    assert len(api.messages(1)) == 1


def test_fail_next_with_a_429_carries_retry_after(api: FakeBotApi, client: httpx.Client) -> None:
    api.fail_next("sendMessage", error_code=429, retry_after=7)
    body = error_of(call(client, "sendMessage", chat_id=1, text="x"), 429)
    assert body["description"] == "Too Many Requests: retry after 7"
    assert body["parameters"] == {"retry_after": 7}
    assert api.count_429 == 1
    assert api.messages(1) == []


def test_private_chat_limit_then_success_after_waiting() -> None:
    with FakeBotApi() as api, open_client(api) as client:
        result_of(call(client, "sendMessage", chat_id=1, text="first"))
        first_sent = time.monotonic()
        body = error_of(call(client, "sendMessage", chat_id=1, text="second"), 429)
        assert body["parameters"]["retry_after"] >= 1
        assert (
            body["description"]
            == f"Too Many Requests: retry after {body['parameters']['retry_after']}"
        )
        result_of(call(client, "sendMessage", chat_id=2, text="other chat"))
        time.sleep(max(0.0, first_sent + 1.05 - time.monotonic()))
        result_of(call(client, "sendMessage", chat_id=1, text="second"))
        assert [m.text for m in api.messages(1)] == ["first", "second"]
        assert api.count_429 == 1


def test_group_limit_per_minute() -> None:
    with FakeBotApi(group_per_minute=3) as api, open_client(api) as client:
        for n in range(3):
            result_of(call(client, "sendMessage", chat_id=-5, text=f"alert {n}"))
        body = error_of(call(client, "sendMessage", chat_id=-5, text="one too many"), 429)
        assert 59 <= body["parameters"]["retry_after"] <= 60
        result_of(call(client, "sendMessage", chat_id=5, text="a private chat is not held up"))
        api.reset_limits()
        result_of(call(client, "sendMessage", chat_id=-5, text="after reset"))


def test_edits_count_toward_the_limits() -> None:
    with FakeBotApi(group_per_minute=2) as api, open_client(api) as client:
        sent = result_of(call(client, "sendMessage", chat_id=-5, text="v1"))
        edit = {"chat_id": -5, "message_id": sent["message_id"]}
        result_of(call(client, "editMessageText", text="v2", **edit))
        error_of(call(client, "editMessageText", text="v3", **edit), 429)
        [message] = api.messages(-5)
        assert message.text == "v2" and message.edits == ["v1"]


def test_global_limit_across_chats() -> None:
    with FakeBotApi(global_per_second=5) as api, open_client(api) as client:
        for chat_id in range(1, 6):
            result_of(call(client, "sendMessage", chat_id=chat_id, text="x"))
        body = error_of(call(client, "sendMessage", chat_id=6, text="x"), 429)
        assert body["parameters"]["retry_after"] == 1
        assert len(api.all_messages()) == 5


def test_form_query_and_multipart_parameters(api: FakeBotApi, client: httpx.Client) -> None:
    form = {
        "chat_id": "11",
        "text": "<i>form</i>",
        "parse_mode": "HTML",
        "disable_notification": "true",
        "reply_parameters": json.dumps({"message_id": 5, "allow_sending_without_reply": True}),
    }
    result = result_of(client.post("sendMessage", data=form))
    assert result["text"] == "form" and result["entities"][0]["type"] == "italic"
    result_of(client.get("sendMessage", params={"chat_id": "12", "text": "query"}))
    result_of(client.post("sendMessage", data={"chat_id": "13"}, files={"text": (None, "multi")}))
    [formed] = api.messages(11)
    assert formed.disable_notification is True and formed.parse_mode == "HTML"
    assert [m.text for m in api.all_messages()] == ["<i>form</i>", "query", "multi"]


def test_get_updates_offset_confirms_earlier_updates(
    api: FakeBotApi, client: httpx.Client
) -> None:
    first = api.inject_update({"message": {"text": "/status"}})
    second = api.inject_update({"message": {"text": "/mute"}})
    assert second == first + 1
    updates = result_of(call(client, "getUpdates"))
    assert [u["update_id"] for u in updates] == [first, second]
    assert updates[0]["message"]["text"] == "/status"
    assert [u["update_id"] for u in result_of(call(client, "getUpdates", offset=second))] == [
        second
    ]
    assert result_of(call(client, "getUpdates", offset=0)) == [updates[1]]  # first is gone
    assert result_of(call(client, "getUpdates", offset=second + 1)) == []


def test_get_updates_long_polls_until_an_update_arrives(
    api: FakeBotApi, client: httpx.Client
) -> None:
    started = time.monotonic()
    assert result_of(call(client, "getUpdates", timeout=0.2)) == []
    assert time.monotonic() - started >= 0.2

    injector = threading.Timer(0.2, api.inject_update, args=({"message": {"text": "late"}},))
    injector.start()
    try:
        started = time.monotonic()
        updates = result_of(call(client, "getUpdates", timeout=10))
        assert time.monotonic() - started < 5
        assert [u["message"]["text"] for u in updates] == ["late"]
    finally:
        injector.join()


def test_stall_next_holds_the_answer_back(api: FakeBotApi) -> None:
    api.stall_next("sendMessage", seconds=2)
    with open_client(api, timeout=0.2) as impatient, pytest.raises(httpx.ReadTimeout):
        call(impatient, "sendMessage", chat_id=1, text="slow")
    assert [m.text for m in api.messages(1)] == ["slow"]  # sent, only the answer was late


def test_other_methods(api: FakeBotApi, client: httpx.Client) -> None:
    assert result_of(call(client, "getMe")) == {
        "id": 123456,
        "is_bot": True,
        "first_name": "Skywatch test",
        "username": "skywatch_test_bot",
    }
    commands = [{"command": "status", "description": "Show status"}]
    assert result_of(call(client, "setMyCommands", commands=commands)) is True
    assert api.my_commands() == commands
    assert result_of(call(client, "getMyCommands")) == commands
    bad = [{"command": "Status", "description": "Capitals are refused"}]
    error_of(call(client, "setMyCommands", commands=bad), 400)
    assert result_of(call(client, "answerCallbackQuery", callback_query_id="1")) is True

    sent = result_of(call(client, "sendMessage", chat_id=1, text="x"))
    assert result_of(call(client, "deleteMessage", chat_id=1, message_id=sent["message_id"]))
    assert api.messages(1) == []
    response = call(client, "deleteMessage", chat_id=1, message_id=sent["message_id"])
    assert error_of(response, 400)["description"] == "Bad Request: message to delete not found"


def test_stop_closes_connections_and_joins_every_thread() -> None:
    before = set(threading.enumerate())
    api = FakeBotApi().start()
    with open_client(api) as client:  # keeps its connection alive across the stop
        result_of(call(client, "getMe"))
        polled: list[httpx.Response] = []
        poller = threading.Thread(
            target=lambda: polled.append(call(client, "getUpdates", timeout=30))
        )
        poller.start()
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while api.polls_waiting == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert api.polls_waiting == 1
        started = time.monotonic()
        api.stop()
        poller.join(timeout=5)
        assert time.monotonic() - started < 2
    assert set(threading.enumerate()) == before
    assert [result_of(r) for r in polled] == [[]]  # the long poll was answered, empty
    with pytest.raises(RuntimeError):
        _ = api.url
    api.stop()  # a second stop is harmless
