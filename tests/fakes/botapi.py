"""A fake Telegram Bot API: a real HTTP server on 127.0.0.1 that answers like api.telegram.org.

Point a client at `api.url` and it talks HTTP to a server that keeps chats and messages,
parses HTML the way Telegram does, applies Telegram's flood limits and answers in Telegram's
JSON shapes. Tests then read back what the bot sent, or script failures::

    with FakeBotApi() as api:
        async with BotApi(api.token, api.url) as bot:
            api.fail_next("sendMessage", error_code=429, retry_after=2)
            ...
        assert api.messages(42)[0].text == "<b>Drone</b> over Kyiv"

Only the standard library is used: `ThreadingHTTPServer` in a daemon thread, all state behind
one lock. Methods served: getMe, sendMessage, editMessageText, deleteMessage, getUpdates,
setMyCommands, getMyCommands, deleteMyCommands, answerCallbackQuery, getChatMember (`set_admin`),
deleteWebhook.
"""

from __future__ import annotations

import contextlib
import copy
import email.policy
import json
import math
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.parser import BytesParser
from html.parser import HTMLParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import TracebackType
from typing import Any, Literal, NamedTuple, NoReturn, get_args
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["BlockReason", "ChatKind", "FakeBotApi", "FakeMessage", "FakeRequest"]

DEFAULT_TOKEN = "123456:TEST-token"
HOST = "127.0.0.1"
BOT_USER = {
    "id": 123456,
    "is_bot": True,
    "first_name": "Skywatch test",
    "username": "skywatch_test_bot",
}
MAX_MESSAGE_LENGTH = 4096  # characters of visible text, after entity parsing
GLOBAL_WINDOW_SECONDS = 1.0
CHAT_WINDOW_SECONDS = 1.0
GROUP_WINDOW_SECONDS = 60.0
MAX_UPDATES_LIMIT = 100  # getUpdates' largest `limit`
MAX_COMMANDS = 100  # setMyCommands refuses longer lists
DEFAULT_RETRY_AFTER = 1  # seconds, for a scripted 429 that names none
DEFAULT_STALL_SECONDS = 5.0
SERVE_POLL_SECONDS = 0.01  # how often serve_forever looks for shutdown(): keeps stop() quick
IDLE_CONNECTION_SECONDS = 30.0  # a keep-alive connection left idle this long is closed
SUPERGROUP_IDS_BELOW = -1_000_000_000_000  # "-100..." ids are supergroups and channels

ChatKind = Literal["private", "group", "supergroup", "channel"]
BlockReason = Literal["blocked", "kicked", "deactivated"]
GROUP_KINDS = frozenset({"group", "supergroup"})

# Tags Telegram's HTML parse mode accepts, and the entity each one makes.
TAG_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
ENTITY_RE = re.compile(r"&(?:(?P<name>[a-zA-Z]+)|#(?P<dec>[0-9]+)|#[xX](?P<hex>[0-9a-fA-F]+));")
# Telegram itself keeps a stray '&' as text; the docs ask for &amp;, and so does this fake.
BAD_AMPERSAND = 'Unescaped "&" or unsupported entity'
TAG_NAME_ENDS = frozenset(" \t\n\r\v\f\0>")
PATH_RE = re.compile(r"^/bot(?P<token>[^/]*)/(?P<method>[^/]*)$")
TOKEN_SHAPE_RE = re.compile(r"^[1-9][0-9]*:[^/]+$")
COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the"
    " same as a current content and reply markup of the message"
)
GET_UPDATES_CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is"
    " running"
)


class ApiError(Exception):
    """An error answer: HTTP status = error_code, and Telegram's JSON body."""

    def __init__(
        self, error_code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        """Return the JSON body Telegram sends for this error."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = dict(self.parameters)
        return body


def _bad_request(reason: str) -> ApiError:
    """Return a 400 with Telegram's "Bad Request: " prefix."""
    return ApiError(400, f"Bad Request: {reason}")


def _too_many_requests(retry_after: int) -> ApiError:
    """Return Telegram's 429 with its retry_after parameter."""
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


@dataclass
class FakeMessage:
    """A message the bot sent; `text` is exactly what the bot sent, markup included."""

    message_id: int
    chat_id: int
    text: str
    parse_mode: str | None = None
    reply_to_message_id: int | None = None
    disable_notification: bool = False
    date: float = field(default_factory=time.time)
    edits: list[str] = field(default_factory=list)  # earlier texts, oldest first
    reply_markup: dict[str, Any] | None = None
    edit_date: float | None = None

    @property
    def visible_text(self) -> str:
        """Return the text as a reader sees it: markup parsed, entities decoded, trimmed."""
        return render(self.text, self.parse_mode).text


@dataclass(frozen=True)
class FakeRequest:
    """One HTTP call the fake answered."""

    method: str
    params: dict[str, Any]
    status: int
    time: float  # time.monotonic() when the request arrived


# --- HTML parse mode --------------------------------------------------------------------------


class EntityParseError(Exception):
    """The text's markup is not what Telegram accepts."""


class Rendered(NamedTuple):
    """Text as Telegram stores it: visible characters and their entities."""

    text: str
    entities: tuple[tuple[tuple[str, Any], ...], ...]

    def entity_dicts(self) -> list[dict[str, Any]]:
        """Return the entities as Bot API MessageEntity objects."""
        return [dict(entity) for entity in self.entities]


class _OpenTag(NamedTuple):
    tag: str
    entity: dict[str, Any]
    start: int  # UTF-16 offset where the tag's text begins
    language: str | None  # a <code class="language-x"> inside <pre>


def _utf16_length(text: str) -> int:
    """Return the length in UTF-16 code units, the unit of entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _first_bad_ampersand(source: str) -> int | None:
    """Return the index of the first '&' that does not begin a valid entity, if any."""
    at = source.find("&")
    while at != -1:
        if _decode_entity(source, at) is None:
            return at
        at = source.find("&", at + 1)
    return None


def _decode_entity(source: str, at: int) -> str | None:
    """Return the character an entity at `at` stands for, or None if it is not a valid one."""
    match = ENTITY_RE.match(source, at)
    if match is None:
        return None
    if match["name"] is not None:
        return NAMED_ENTITIES.get(match["name"])
    code_point = int(match["dec"]) if match["dec"] is not None else int(match["hex"], 16)
    if code_point == 0 or code_point > 0x10FFFF or 0xD800 <= code_point <= 0xDFFF:
        return None
    return chr(code_point)


class _TelegramHtml(HTMLParser):
    """Parse Bot API HTML into visible text and entities, refusing what Telegram refuses."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=False)
        self._source = source
        self._line_starts = [0, *(match.end() for match in re.finditer("\n", source))]
        self._chunks: list[str] = []
        self._utf16 = 0
        self._open: list[_OpenTag] = []
        self.entities: list[dict[str, Any]] = []
        # HTMLParser silently drops some stray '&' (at the very end, for one), so every '&' is
        # checked up front; _fail reports it when it comes before the error at hand.
        self._bad_ampersand = _first_bad_ampersand(source)

    @property
    def text(self) -> str:
        """Return the visible text parsed so far."""
        return "".join(self._chunks)

    def close(self) -> None:
        """Finish parsing; every tag must have been closed."""
        super().close()
        if self._bad_ampersand is not None:
            self._fail(BAD_AMPERSAND, self._bad_ampersand)
        if self._open:
            raise EntityParseError(
                f'Can\'t find end tag corresponding to start tag "{self._open[-1].tag}"'
            )

    def _here(self) -> int:
        """Return the index in the source of the construct being handled."""
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def _fail(self, reason: str, at: int, detail: str = "") -> NoReturn:
        """Raise the error that comes first in the source, worded as Telegram does."""
        if self._bad_ampersand is not None and self._bad_ampersand < at:
            reason, at, detail = BAD_AMPERSAND, self._bad_ampersand, ""
        offset = len(self._source[:at].encode("utf-8"))
        raise EntityParseError(f"{reason} at byte offset {offset}{detail}")

    def _fail_at_angle(self, at: int) -> NoReturn:
        """Explain a '<' that starts no acceptable tag, in Telegram's words."""
        source = self._source
        if source.startswith("</", at):
            self._fail("Unclosed end tag" if self._open else "Unexpected end tag", at)
        end = at + 1
        while end < len(source) and source[end] not in TAG_NAME_ENDS:
            end += 1
        if end >= len(source):
            self._fail("Unclosed start tag", at)
        self._fail(f'Unsupported start tag "{source[at + 1 : end].lower()}"', at)

    def _append(self, text: str) -> None:
        self._chunks.append(text)
        self._utf16 += _utf16_length(text)

    def handle_data(self, data: str) -> None:
        """Keep plain text; a '<' or '&' here is markup Telegram cannot parse."""
        at = self._here()
        for position, char in enumerate(data):
            if char == "<":
                self._fail_at_angle(at + position)
            if char == "&":
                self._fail(BAD_AMPERSAND, at + position)
        self._append(data)

    def handle_entityref(self, name: str) -> None:
        """Decode &lt; &gt; &amp; &quot; and nothing else."""
        at = self._here()
        char = _decode_entity(self._source, at)
        if char is None:
            self._fail(BAD_AMPERSAND, at)
        self._append(char)

    def handle_charref(self, name: str) -> None:
        """Decode a numeric entity that names a real character."""
        self.handle_entityref(name)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Open an entity for a supported tag with the attributes Telegram requires."""
        at = self._here()
        if tag not in TAG_ENTITY_TYPES:
            self._fail(f'Unsupported start tag "{tag}"', at)
        attributes: dict[str, str] = {}
        for name, value in attrs:
            if value is None and not (tag == "blockquote" and name == "expandable"):
                self._fail(
                    f'Expected equal sign in declaration of an attribute of the tag "{tag}"', at
                )
            attributes[name] = value or ""
        entity: dict[str, Any] = {"type": TAG_ENTITY_TYPES[tag]}
        language = None
        if tag == "span" and attributes.get("class") != "tg-spoiler":
            self._fail('Tag "span" must have class "tg-spoiler"', at)
        if tag == "a":
            if not attributes.get("href"):
                self._fail('Tag "a" must have attribute "href"', at)
            entity["url"] = attributes["href"]
        if tag == "blockquote" and "expandable" in attributes:
            entity["type"] = "expandable_blockquote"
        if tag == "code" and self._open and self._open[-1].tag == "pre":
            css_class = attributes.get("class", "")
            if css_class.startswith("language-") and len(css_class) > len("language-"):
                language = css_class.removeprefix("language-")
        self._open.append(_OpenTag(tag, entity, self._utf16, language))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Refuse <tag/>: Telegram reads "tag/" as the tag's name."""
        self._fail_at_angle(self._here())

    def handle_endtag(self, tag: str) -> None:
        """Close the innermost open tag, which must be this one."""
        at = self._here()
        if not self._open:
            self._fail("Unexpected end tag", at)
        opened = self._open[-1]
        if opened.tag != tag:
            self._fail("Unmatched end tag", at, f', expected "</{opened.tag}>", found "</{tag}>"')
        self._open.pop()
        if opened.language is not None:
            # <pre><code class="language-x"> is one entity: a pre block with a language.
            self._open[-1].entity["language"] = opened.language
            return
        length = self._utf16 - opened.start
        if length > 0:
            self.entities.append({**opened.entity, "offset": opened.start, "length": length})

    def handle_comment(self, data: str) -> None:
        """Refuse <!-- -->, which Telegram reads as a tag named "!--"."""
        self._fail_at_angle(self._here())

    def handle_decl(self, decl: str) -> None:
        """Refuse <!DOCTYPE ...>."""
        self._fail_at_angle(self._here())

    def handle_pi(self, data: str) -> None:
        """Refuse <?...>."""
        self._fail_at_angle(self._here())

    def unknown_decl(self, data: str) -> None:
        """Refuse <![CDATA[...]]>."""
        self._fail_at_angle(self._here())


def _trim(text: str, entities: list[dict[str, Any]]) -> Rendered:
    """Strip surrounding whitespace as Telegram does, moving entities along with the text."""
    stripped = text.strip()
    shift = _utf16_length(text[: len(text) - len(text.lstrip())])
    total = _utf16_length(stripped)
    kept: list[tuple[tuple[str, Any], ...]] = []
    for entity in sorted(entities, key=lambda entity: (entity["offset"], -entity["length"])):
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] + entity["length"] - shift, total)
        if end > start:
            moved = {**entity, "offset": start, "length": end - start}
            kept.append(tuple(sorted(moved.items())))  # key order must not matter to ==
    return Rendered(stripped, tuple(kept))


def render(text: str, parse_mode: str | None) -> Rendered:
    """Return the text a reader sees and its entities; raise EntityParseError on bad markup."""
    if parse_mode is None or parse_mode.lower() != "html":
        # Markdown modes are accepted but not parsed: the text is shown as sent.
        return _trim(text, [])
    parser = _TelegramHtml(text)
    parser.feed(text)
    parser.close()
    return _trim(parser.text, parser.entities)


# --- Parameters -------------------------------------------------------------------------------


def _parse_multipart(content_type: str, body: bytes) -> dict[str, str]:
    """Return the text fields of a multipart/form-data body."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    for part in message.walk():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode("utf-8", "replace")
    return fields


def parse_params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    """Merge query-string and body parameters (JSON, form-encoded or multipart)."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    if not body:
        return params
    mime = content_type.partition(";")[0].strip().lower()
    if mime == "application/json":
        try:
            decoded = json.loads(body)
        except ValueError as err:
            raise _bad_request("can't parse JSON object") from err
        if not isinstance(decoded, dict):
            raise _bad_request("can't parse JSON object")
        params.update(decoded)
    elif mime == "multipart/form-data":
        params.update(_parse_multipart(content_type, body))
    else:
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


def _int_param(params: dict[str, Any], name: str) -> int | None:
    """Return an integer parameter (JSON number or form string), None if absent or not one."""
    value = params.get(name)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        return int(value)
    return None


def _float_param(params: dict[str, Any], name: str, default: float) -> float:
    """Return a number parameter, or the default if absent or not a number."""
    value = params.get(name)
    if isinstance(value, bool) or value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _bool_param(params: dict[str, Any], name: str) -> bool:
    """Return a Boolean parameter: JSON true, or "true"/"1" in a form."""
    value = params.get(name)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return bool(value)


def _object_param(params: dict[str, Any], name: str, what: str) -> Any:
    """Return a JSON-object parameter, decoding it when a form sent it as a string."""
    value = params.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as err:
            raise _bad_request(f"can't parse {what} JSON object") from err
    return value


def _text_param(params: dict[str, Any]) -> str:
    """Return the message text; refuse a missing or empty one."""
    value = params.get("text")
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value)
    if not text:
        raise _bad_request("message text is empty")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise _bad_request("strings must be encoded in UTF-8") from err
    return text


def _parse_mode_param(params: dict[str, Any]) -> str | None:
    """Return the parse mode, None for plain text; refuse modes Telegram does not know."""
    if "parse_mode" not in params:
        return None
    value = params["parse_mode"]
    if value == "":
        return None
    if not isinstance(value, str) or value.lower() not in ("html", "markdown", "markdownv2"):
        raise _bad_request("unsupported parse_mode")  # JSON null included, as Telegram does
    return value


def _render_param(text: str, parse_mode: str | None) -> Rendered:
    """Render the text, turning markup and length problems into Telegram's 400s."""
    try:
        rendered = render(text, parse_mode)
    except EntityParseError as err:
        raise _bad_request(f"can't parse entities: {err}") from err
    if not rendered.text:
        raise _bad_request("message text is empty")
    if len(rendered.text) > MAX_MESSAGE_LENGTH:
        raise _bad_request("message is too long")
    return rendered


def _window_wait(sent: deque[float], limit: int, window: float, now: float) -> float:
    """Return seconds until one more event fits a sliding window (0 if it fits now)."""
    while sent and sent[0] <= now - window:
        sent.popleft()
    if len(sent) < limit:
        return 0.0
    return sent[-limit] + window - now


@dataclass
class _Chat:
    id: int
    kind: ChatKind
    blocked: BlockReason | None = None
    sent: deque[float] = field(default_factory=deque)  # accepted sends and edits (monotonic)

    def as_json(self) -> dict[str, Any]:
        """Return the Bot API Chat object."""
        chat: dict[str, Any] = {"id": self.id, "type": self.kind}
        if self.kind == "private":
            chat["first_name"] = f"User {self.id}"
        else:
            chat["title"] = f"Chat {self.id}"
        return chat


def _default_description(error_code: int, retry_after: int | None) -> str:
    """Return the description Telegram gives an error code when nothing more specific fits."""
    if error_code == 429:
        return f"Too Many Requests: retry after {retry_after}"
    try:
        return HTTPStatus(error_code).phrase
    except ValueError:
        return f"Error {error_code}"


def _kind_for_id(chat_id: int) -> ChatKind:
    """Guess a chat's kind from its id, as Telegram numbers them."""
    if chat_id > 0:
        return "private"
    return "supergroup" if chat_id < SUPERGROUP_IDS_BELOW else "group"


def _blocked_error(chat: _Chat) -> ApiError:
    """Return the 403 Telegram sends to a chat the bot can no longer write to."""
    if chat.blocked == "blocked":
        return ApiError(403, "Forbidden: bot was blocked by the user")
    if chat.blocked == "deactivated":
        return ApiError(403, "Forbidden: user is deactivated")
    kind = "group" if chat.kind == "private" else chat.kind
    return ApiError(403, f"Forbidden: bot was kicked from the {kind} chat")


# --- The server -------------------------------------------------------------------------------


class FakeBotApi:
    """A Telegram Bot API stand-in on 127.0.0.1: real HTTP, Telegram's rules and answers."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        enforce_limits: bool = True,
        global_per_second: int = 30,
        chat_per_second: int = 1,
        group_per_minute: int = 20,
        auto_register: bool = True,
    ) -> None:
        for name, limit in (
            ("global_per_second", global_per_second),
            ("chat_per_second", chat_per_second),
            ("group_per_minute", group_per_minute),
        ):
            if limit < 1:
                raise ValueError(f"{name} must be at least 1, got {limit}")
        self.token = token
        self.enforce_limits = enforce_limits
        self.global_per_second = global_per_second
        self.chat_per_second = chat_per_second
        self.group_per_minute = group_per_minute
        self.auto_register = auto_register

        self._lock = threading.Lock()
        self._updates_changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

        self._chats: dict[int, _Chat] = {}
        self._forgotten: set[int] = set()
        self._messages: dict[tuple[int, int], FakeMessage] = {}
        self._last_message_id: dict[int, int] = {}  # 0: the box shared by private chats/groups
        self._global_sent: deque[float] = deque()
        self._requests: list[FakeRequest] = []
        self._failures: dict[str, deque[ApiError]] = {}
        self._stalls: dict[str, deque[float]] = {}
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1
        self._poll_generation = 0
        self._polls_waiting = 0
        self._commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._admins: dict[int, dict[int, str]] = {}  # chat → user → creator | administrator

        methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getMe": self._get_me,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "deleteMessage": self._delete_message,
            "getUpdates": self._get_updates,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "answerCallbackQuery": self._answer_callback_query,
            "getChatMember": self._get_chat_member,
            "deleteWebhook": self._delete_webhook,
        }
        # Bot API method names are case-insensitive; requests are logged under these names.
        self._methods = {name.lower(): (name, handler) for name, handler in methods.items()}

    def __repr__(self) -> str:
        state = "running at " + self.url if self._server is not None else "stopped"
        return f"<FakeBotApi {state}>"  # never the token

    # Lifecycle

    def start(self) -> FakeBotApi:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("FakeBotApi is already running")
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": SERVE_POLL_SECONDS},
            name="FakeBotApi",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and join every thread; safe to call twice."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        with self._updates_changed:
            self._updates_changed.notify_all()  # long polls answer now
        server.shutdown()
        server.close_idle_connections()
        server.join_handler_threads()  # answers in flight are written first
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Return the base URL, like https://api.telegram.org; calls go to {url}/bot{token}/..."""
        if self._server is None:
            raise RuntimeError("FakeBotApi is not running: call start() or use `with`")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def bot_url(self) -> str:
        """Return {url}/bot{token}, the prefix of every method's URL."""
        return f"{self.url}/bot{self.token}"

    # Chats

    def add_chat(self, chat_id: int, kind: ChatKind = "private") -> None:
        """Make a chat known (and writable again if it was blocked or forgotten)."""
        if kind not in get_args(ChatKind):
            raise ValueError(f"unknown chat kind {kind!r}")
        if (kind == "private") != (chat_id > 0):
            raise ValueError("private chats have positive ids; groups and channels negative ones")
        with self._lock:
            self._forgotten.discard(chat_id)
            chat = self._chats.setdefault(chat_id, _Chat(chat_id, kind))
            chat.kind = kind
            chat.blocked = None

    def set_admin(self, chat_id: int, user_id: int, status: str = "administrator") -> None:
        """Make a user an admin ("administrator" or "creator") of a group or channel."""
        with self._lock:
            self._admins.setdefault(chat_id, {})[user_id] = status

    def block(self, chat_id: int, reason: BlockReason = "blocked") -> None:
        """Make the chat refuse the bot: blocked by the user, bot kicked, or user deleted."""
        if reason not in get_args(BlockReason):
            raise ValueError(f"unknown block reason {reason!r}")
        with self._lock:
            self._forgotten.discard(chat_id)
            chat = self._chats.setdefault(chat_id, _Chat(chat_id, _kind_for_id(chat_id)))
            chat.blocked = reason

    def unblock(self, chat_id: int) -> None:
        """Let the bot write to the chat again."""
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat is not None:
                chat.blocked = None

    def forget_chat(self, chat_id: int) -> None:
        """Drop the chat and its messages: from now on it is "chat not found"."""
        with self._lock:
            self._chats.pop(chat_id, None)
            self._forgotten.add(chat_id)
            for key in [key for key in self._messages if key[0] == chat_id]:
                del self._messages[key]

    # Scripted trouble

    def fail_next(
        self,
        method: str,
        count: int = 1,
        *,
        error_code: int = 500,
        description: str | None = None,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        """Answer the next `count` calls of `method` with this error instead of serving them.

        The description defaults to Telegram's for the code ("Internal Server Error", "Too Many
        Requests: retry after N"...); a 429 always carries parameters.retry_after.
        """
        key = self._method_key(method)
        if error_code == 429 and retry_after is None:
            retry_after = DEFAULT_RETRY_AFTER
        if description is None:
            description = _default_description(error_code, retry_after)
        parameters: dict[str, Any] = {}
        if retry_after is not None:
            parameters["retry_after"] = retry_after
        if migrate_to_chat_id is not None:
            parameters["migrate_to_chat_id"] = migrate_to_chat_id
        with self._lock:
            queue = self._failures.setdefault(key, deque())
            queue.extend(ApiError(error_code, description, parameters) for _ in range(count))

    def stall_next(
        self, method: str, count: int = 1, seconds: float = DEFAULT_STALL_SECONDS
    ) -> None:
        """Hold back the answer to the next `count` calls of `method` for `seconds`.

        The call takes effect at once (the message is sent); only the answer is late, as when
        the network is slow. stop() cuts the wait short.
        """
        key = self._method_key(method)
        with self._lock:
            self._stalls.setdefault(key, deque()).extend([seconds] * count)

    def reset_limits(self) -> None:
        """Forget recent sends, so every flood limit starts afresh."""
        with self._lock:
            self._global_sent.clear()
            for chat in self._chats.values():
                chat.sent.clear()

    # Introspection

    def messages(self, chat_id: int) -> list[FakeMessage]:
        """Return copies of the chat's current messages, oldest first."""
        with self._lock:
            found = [msg for (chat, _), msg in self._messages.items() if chat == chat_id]
            return copy.deepcopy(found)

    def all_messages(self) -> list[FakeMessage]:
        """Return copies of every current message in every chat, in the order sent."""
        with self._lock:
            return copy.deepcopy(list(self._messages.values()))

    @property
    def requests(self) -> list[FakeRequest]:
        """Return every request answered so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def calls(self, method: str) -> list[FakeRequest]:
        """Return the requests made to one method (any letter case), oldest first."""
        key = method.lower()
        return [request for request in self.requests if request.method.lower() == key]

    @property
    def count_429(self) -> int:
        """Return how many answers were 429 Too Many Requests."""
        return sum(request.status == 429 for request in self.requests)

    def my_commands(
        self, scope: dict[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, Any]]:
        """Return the commands setMyCommands stored for a scope and language."""
        with self._lock:
            return copy.deepcopy(self._commands.get(_commands_key(scope, language_code), []))

    @property
    def polls_waiting(self) -> int:
        """Return how many getUpdates calls are being served right now (long polls, mostly)."""
        with self._lock:
            return self._polls_waiting

    # Updates

    def inject_update(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates (numbering it if it has no update_id); return its id."""
        update = copy.deepcopy(update)
        with self._updates_changed:
            if "update_id" not in update:
                update["update_id"] = self._next_update_id
            self._next_update_id = max(self._next_update_id, int(update["update_id"]) + 1)
            self._updates.append(update)
            self._updates_changed.notify_all()
            return int(update["update_id"])

    # HTTP dispatch (called from the server's handler threads)

    def _method_key(self, method: str) -> str:
        """Return the lookup key of a served method; refuse others."""
        key = method.lower()
        if key not in self._methods:
            raise ValueError(f"FakeBotApi does not serve {method!r}")
        return key

    def handle(
        self, path: str, query: str, content_type: str, body: bytes
    ) -> tuple[int, dict[str, Any], float]:
        """Answer one HTTP request: return (status, JSON body, seconds to hold the answer)."""
        arrived = time.monotonic()
        match = PATH_RE.match(path)
        method = unquote(match["method"]) if match else path
        params: dict[str, Any] = {}
        delay = 0.0
        try:
            if match is None:
                raise ApiError(404, "Not Found")
            token = unquote(match["token"])
            if token != self.token:
                # telegram-bot-api refuses a malformed token before asking Telegram about it.
                shaped = TOKEN_SHAPE_RE.match(token) is not None
                raise ApiError(
                    401, "Unauthorized" if shaped else "Unauthorized: invalid token specified"
                )
            served = self._methods.get(method.lower())
            if served is None:
                raise ApiError(404, "Not Found")
            method, serve = served
            params = parse_params(query, content_type, body)
            with self._lock:
                stalls = self._stalls.get(method.lower())
                delay = stalls.popleft() if stalls else 0.0
                failures = self._failures.get(method.lower())
                failure = failures.popleft() if failures else None
            if failure is not None:
                raise failure
            status, answer = 200, {"ok": True, "result": serve(params)}
        except ApiError as err:
            status, answer = err.error_code, err.body()
        with self._lock:
            self._requests.append(FakeRequest(method, params, status, arrived))
        return status, answer, delay

    def _chat_for(self, params: dict[str, Any]) -> _Chat:
        """Return the writable chat named by chat_id (lock held), or raise Telegram's error."""
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise _bad_request("chat_id is empty")
        chat_id = _int_param(params, "chat_id")
        chat = self._chats.get(chat_id) if chat_id is not None else None
        if chat is None:
            if chat_id is None or chat_id == 0 or not self.auto_register:
                raise _bad_request("chat not found")  # "@username" lookups included
            if chat_id in self._forgotten:
                raise _bad_request("chat not found")
            chat = self._chats[chat_id] = _Chat(chat_id, _kind_for_id(chat_id))
        if chat.blocked is not None:
            raise _blocked_error(chat)
        return chat

    def _admit(self, chat: _Chat) -> None:
        """Count a send or edit against the flood limits (lock held), or raise a 429."""
        if not self.enforce_limits:
            return
        now = time.monotonic()
        if chat.kind in GROUP_KINDS:
            chat_wait = _window_wait(chat.sent, self.group_per_minute, GROUP_WINDOW_SECONDS, now)
        else:
            chat_wait = _window_wait(chat.sent, self.chat_per_second, CHAT_WINDOW_SECONDS, now)
        global_wait = _window_wait(
            self._global_sent, self.global_per_second, GLOBAL_WINDOW_SECONDS, now
        )
        wait = max(chat_wait, global_wait)
        if wait > 0:
            raise _too_many_requests(max(1, math.ceil(wait)))
        chat.sent.append(now)
        self._global_sent.append(now)

    def _next_message_id(self, chat: _Chat) -> int:
        """Number a new message: supergroups and channels count their own, the rest share one."""
        box = chat.id if chat.kind in ("supergroup", "channel") else 0
        self._last_message_id[box] = self._last_message_id.get(box, 0) + 1
        return self._last_message_id[box]

    def _message_json(self, message: FakeMessage, *, with_reply: bool = True) -> dict[str, Any]:
        """Return the Bot API Message object for a stored message (lock held)."""
        rendered = render(message.text, message.parse_mode)
        result: dict[str, Any] = {
            "message_id": message.message_id,
            "from": dict(BOT_USER),
            "chat": self._chats[message.chat_id].as_json(),
            "date": int(message.date),
            "text": rendered.text,
        }
        if rendered.entities:
            result["entities"] = rendered.entity_dicts()
        if message.edit_date is not None:
            result["edit_date"] = int(message.edit_date)
        replied = self._messages.get((message.chat_id, message.reply_to_message_id or 0))
        if with_reply and replied is not None:
            result["reply_to_message"] = self._message_json(replied, with_reply=False)
        if message.reply_markup is not None:
            result["reply_markup"] = copy.deepcopy(message.reply_markup)
        return result

    # Methods

    def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(BOT_USER)

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        text = _text_param(params)
        parse_mode = _parse_mode_param(params)
        reply = _object_param(params, "reply_parameters", "reply parameters")
        reply_markup = _object_param(params, "reply_markup", "reply keyboard markup")
        reply_to = _int_param(params, "reply_to_message_id")
        allow_without_reply = _bool_param(params, "allow_sending_without_reply")
        if isinstance(reply, dict):
            reply_to = _int_param(reply, "message_id")
            allow_without_reply = _bool_param(reply, "allow_sending_without_reply")
        with self._lock:
            chat = self._chat_for(params)
            _render_param(text, parse_mode)
            if reply_to is not None and (chat.id, reply_to) not in self._messages:
                if not allow_without_reply:
                    raise _bad_request("message to be replied not found")
                reply_to = None
            self._admit(chat)
            message = FakeMessage(
                message_id=self._next_message_id(chat),
                chat_id=chat.id,
                text=text,
                parse_mode=parse_mode,
                reply_to_message_id=reply_to,
                disable_notification=_bool_param(params, "disable_notification"),
                reply_markup=reply_markup if isinstance(reply_markup, dict) else None,
            )
            self._messages[(chat.id, message.message_id)] = message
            return self._message_json(message)

    def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        text = _text_param(params)
        parse_mode = _parse_mode_param(params)
        reply_markup = _object_param(params, "reply_markup", "reply keyboard markup")
        reply_markup = reply_markup if isinstance(reply_markup, dict) else None
        message_id = _int_param(params, "message_id")
        if "inline_message_id" in params:
            raise _bad_request("inline messages are not supported by FakeBotApi")
        with self._lock:
            chat = self._chat_for(params)
            if not message_id:
                raise _bad_request("message identifier is not specified")
            rendered = _render_param(text, parse_mode)
            message = self._messages.get((chat.id, message_id))
            if message is None:
                raise _bad_request("message to edit not found")
            current = render(message.text, message.parse_mode)
            if rendered == current and reply_markup == message.reply_markup:
                raise _bad_request(NOT_MODIFIED)
            self._admit(chat)
            message.edits.append(message.text)
            message.text = text
            message.parse_mode = parse_mode
            message.reply_markup = reply_markup  # an edit without a keyboard removes it
            message.edit_date = time.time()
            return self._message_json(message)

    def _delete_message(self, params: dict[str, Any]) -> bool:
        message_id = _int_param(params, "message_id")
        with self._lock:
            chat = self._chat_for(params)
            if not message_id:
                raise _bad_request("message identifier is not specified")
            if self._messages.pop((chat.id, message_id), None) is None:
                raise _bad_request("message to delete not found")
            return True

    def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = _int_param(params, "offset") or 0
        limit = min(max(_int_param(params, "limit") or MAX_UPDATES_LIMIT, 1), MAX_UPDATES_LIMIT)
        deadline = time.monotonic() + max(_float_param(params, "timeout", 0.0), 0.0)
        with self._updates_changed:
            # A newer getUpdates ends an older one still waiting, as Telegram does.
            self._poll_generation += 1
            generation = self._poll_generation
            self._updates_changed.notify_all()
            if offset > 0:  # confirms every update before it
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            elif offset < 0:  # the last -offset updates; older ones are forgotten
                self._updates = self._updates[offset:]
            self._polls_waiting += 1
            try:
                while True:
                    if generation != self._poll_generation:
                        raise ApiError(409, GET_UPDATES_CONFLICT)
                    remaining = deadline - time.monotonic()
                    if self._updates or remaining <= 0 or self._stopping.is_set():
                        return copy.deepcopy(self._updates[:limit])
                    self._updates_changed.wait(remaining)
            finally:
                self._polls_waiting -= 1

    def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = _object_param(params, "commands", "commands")
        scope = _object_param(params, "scope", "scope")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        if len(commands) > MAX_COMMANDS:
            raise _bad_request("BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            name = command.get("command") if isinstance(command, dict) else None
            if not isinstance(name, str) or not COMMAND_RE.match(name.removeprefix("/")):
                raise _bad_request("BOT_COMMAND_INVALID")
        key = _commands_key(scope, str(params.get("language_code") or ""))
        with self._lock:
            self._commands[key] = copy.deepcopy(commands)
        return True

    def _get_my_commands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        scope = _object_param(params, "scope", "scope")
        key = _commands_key(scope, str(params.get("language_code") or ""))
        with self._lock:
            return copy.deepcopy(self._commands.get(key, []))

    def _delete_my_commands(self, params: dict[str, Any]) -> bool:
        scope = _object_param(params, "scope", "scope")
        key = _commands_key(scope, str(params.get("language_code") or ""))
        with self._lock:
            self._commands.pop(key, None)
        return True

    def _get_chat_member(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = _int_param(params, "chat_id")
        user_id = _int_param(params, "user_id")
        if chat_id is None or user_id is None:
            raise _bad_request("chat_id and user_id are required")
        with self._lock:
            status = self._admins.get(chat_id, {}).get(user_id, "member")
        return {"status": status, "user": {"id": user_id, "is_bot": False, "first_name": "U"}}

    def _answer_callback_query(self, params: dict[str, Any]) -> bool:
        return True

    def _delete_webhook(self, params: dict[str, Any]) -> bool:
        return True


def _commands_key(scope: Any, language_code: str) -> tuple[str, str]:
    """Return the key commands are stored under: their scope and language."""
    return json.dumps(scope or {"type": "default"}, sort_keys=True), language_code


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that can close its open connections and skips reverse DNS."""

    def __init__(self, api: FakeBotApi) -> None:
        self.api = api
        self._connections: set[socket.socket] = set()
        self._busy: set[socket.socket] = set()  # connections with a request being answered
        self._handler_threads: list[threading.Thread] = []
        self._connections_lock = threading.Lock()
        self.stopping = False
        super().__init__((HOST, 0), _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's getfqdn(), which can wait on DNS."""
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a thread, tracking both so stop() can end them."""
        # Daemon threads, so a forgotten stop() cannot hang the interpreter at exit; but
        # ThreadingMixIn does not join daemon threads, so stop() joins them itself.
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="FakeBotApi-connection",
            daemon=True,
        )
        with self._connections_lock:
            self._connections.add(request)
            self._handler_threads = [t for t in self._handler_threads if t.is_alive()]
            self._handler_threads.append(thread)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection and close it."""
        with self._connections_lock:
            self._connections.discard(request)
            self._busy.discard(request)
        super().shutdown_request(request)

    def request_started(self, connection: socket.socket) -> None:
        """Note that a request on this connection is being answered."""
        with self._connections_lock:
            self._busy.add(connection)

    def request_finished(self, connection: socket.socket) -> bool:
        """Note the answer was written; return True if the connection should now close."""
        with self._connections_lock:
            self._busy.discard(connection)
            return self.stopping

    def close_idle_connections(self) -> None:
        """Stop for good: shut idle keep-alive connections; busy ones close after answering."""
        with self._connections_lock:
            self.stopping = True
            idle = self._connections - self._busy
        for connection in idle:
            with contextlib.suppress(OSError):  # the client may already have gone
                connection.shutdown(socket.SHUT_RDWR)  # wakes the handler blocked on a read

    def join_handler_threads(self) -> None:
        """Wait for every connection's thread to finish."""
        with self._connections_lock:
            threads = list(self._handler_threads)
        for thread in threads:
            thread.join()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client hangs up; report anything else."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Hand each GET or POST to the FakeBotApi and write its JSON answer."""

    protocol_version = "HTTP/1.1"  # keep-alive, as with api.telegram.org
    server_version = "FakeBotApi"
    sys_version = ""
    timeout = IDLE_CONNECTION_SECONDS
    # Headers and body go out in two writes; with Nagle on, the body waits ~40 ms for an ACK.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        """Serve a method called with GET."""
        self._answer()

    def do_POST(self) -> None:
        """Serve a method called with POST."""
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: request lines carry the bot token."""

    def _read_body(self) -> bytes:
        """Read the request body, sized by Content-Length or sent in chunks."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return b"".join(self._read_chunks())
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunks(self) -> Iterable[bytes]:
        """Yield the chunks of a chunked body, then skip its trailer."""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                break
            yield self.rfile.read(size)
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass

    def _answer(self) -> None:
        self.server.request_started(self.connection)
        try:
            self._serve()
        finally:
            if self.server.request_finished(self.connection):
                self.close_connection = True

    def _serve(self) -> None:
        url = urlsplit(self.path)
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            status, answer, delay = 400, ApiError(400, "Bad Request").body(), 0.0
        else:
            api = self.server.api
            content_type = self.headers.get("Content-Type", "")
            status, answer, delay = api.handle(url.path, url.query, content_type, body)
            if delay > 0:
                api._stopping.wait(delay)
        data = json.dumps(answer, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.server.stopping:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client gave up (a timeout) or stop() closed it
