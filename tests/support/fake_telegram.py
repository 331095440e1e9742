"""A fake Telegram Bot API server: the real wire protocol on 127.0.0.1, so the bot is tested without Telegram.

It speaks HTTP the way python-telegram-bot uses it (``POST /bot<token>/<method>``
with form-encoded parameters whose non-string values are JSON, answers
``{"ok": true, "result": ...}`` or Telegram's own error objects) and keeps the
state a test needs to look at: the chats, every message the bot sent or edited,
the answers to callback and inline queries. Tests play the users
(:meth:`FakeTelegram.send_text`, :meth:`~FakeTelegram.press`, ...), wait on
conditions with a timeout (:meth:`FakeTelegram.wait_for`), and can make the
next calls of a method fail (:meth:`FakeTelegram.inject`: 429 with
``retry_after``, 500, 401, any error text, a dropped connection, a delay, a
reply lost after the request was carried out), or every call for a while
(:meth:`FakeTelegram.outage`: the network down, a silent server, a revoked
token, flood control). Hostile input: :meth:`FakeTelegram.send_raw` queues any
update as it is (one python-telegram-bot cannot parse), and
:meth:`FakeTelegram.redeliver` posts a webhook update a second time, as
Telegram does when it is unsure the first delivery arrived. Chats change or go
away: :meth:`FakeTelegram.migrate` upgrades a group to a supergroup,
:meth:`~FakeTelegram.kick`, :meth:`~FakeTelegram.block` and
:meth:`~FakeTelegram.lose` make every call to a chat fail as Telegram does
(403, 403, 400 "chat not found") until :meth:`~FakeTelegram.readd` or
:meth:`~FakeTelegram.unblock`.

Messages are checked as Telegram checks them: HTML that Telegram would refuse
gets "Bad Request: can't parse entities: ...", a text over 4096 characters
"Bad Request: message is too long", callback data over 64 bytes
"Bad Request: BUTTON_DATA_INVALID".
"""

from __future__ import annotations

import html
import itertools
import json
import queue
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

T = TypeVar("T")

TOKEN = "123456789:AAFake-Token_for-tests-0123456789abcd"
BOT_USER = {
    "id": 4242,
    "is_bot": True,
    "first_name": "citebot",
    "username": "CiteTestBot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": True,
}
MAX_TEXT = 4096
UPDATE_TYPES = ("message", "edited_message", "callback_query", "inline_query", "channel_post")
CHAT_ACTIONS = {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice"}
_JSON_PARAMS = {
    "reply_markup",
    "reply_parameters",
    "commands",
    "results",
    "allowed_updates",
    "link_preview_options",
    "entities",
    "scope",
    "button",
}
_INT_PARAMS = {
    "chat_id",
    "message_id",
    "offset",
    "limit",
    "timeout",
    "cache_time",
    "reply_to_message_id",
    "max_connections",
}
_BOOL_PARAMS = {
    "drop_pending_updates",
    "show_alert",
    "is_personal",
    "disable_notification",
    "allow_sending_without_reply",
}
_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
}
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)
POLL_CONFLICT = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
_ENTITY = re.compile(r"&(?:#(\d+)|#x([0-9a-fA-F]+)|(lt|gt|amp|quot));")


class ApiError(Exception):
    """A Bot API error: the HTTP status and Telegram's description."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def parse_html(text: str) -> str:
    """Return the visible text of Telegram HTML, or raise :class:`ApiError` as Telegram would refuse it."""

    def fail(reason: str) -> ApiError:
        return ApiError(400, f"Bad Request: can't parse entities: {reason}")

    def offset(i: int) -> int:
        return len(text[:i].encode())

    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "&":
            match = _ENTITY.match(text, i)
            if match:
                out.append(html.unescape(match.group(0)))
                i = match.end()
            else:  # Telegram keeps a bare '&' as it is
                out.append(char)
                i += 1
            continue
        if char != "<":
            out.append(char)
            i += 1
            continue
        close = text.find(">", i)
        if text.startswith("</", i):
            if close < 0:
                raise fail(f"Unclosed end tag at byte offset {offset(i)}")
            name = text[i + 2 : close].strip().lower()
            if not stack:
                raise fail(f"Unexpected end tag at byte offset {offset(i)}")
            if name != stack[-1]:
                expected = f'expected "</{stack[-1]}>", found "</{name}>"'
                raise fail(f"Unmatched end tag at byte offset {offset(i)}, {expected}")
            stack.pop()
            i = close + 1
            continue
        match = re.match(r"<([a-zA-Z][a-zA-Z0-9-]*)", text[i:])
        name = match.group(1).lower() if match else ""
        if name not in _TAGS:
            raise fail(f'Unsupported start tag "{name}" at byte offset {offset(i)}')
        if close < 0:
            raise fail(f"Unclosed start tag at byte offset {offset(i)}")
        if name == "span" and 'class="tg-spoiler"' not in text[i:close]:
            raise fail(f'Tag "span" must have class "tg-spoiler" at byte offset {offset(i)}')
        stack.append(name)
        i = close + 1
    if stack:
        raise fail(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def check_text(text: str | None, parse_mode: str | None) -> str:
    """Return the visible text of a message as Telegram stores it, or raise Telegram's error."""
    if text is None:
        raise ApiError(400, "Bad Request: message text is empty")
    visible = parse_html(text) if (parse_mode or "").upper() == "HTML" else text
    visible = visible.strip()
    if not visible:
        raise ApiError(400, "Bad Request: message text is empty")
    if len(visible) > MAX_TEXT:
        raise ApiError(400, "Bad Request: message is too long")
    return visible


def check_markup(markup: Any) -> None:
    """Refuse an inline keyboard as Telegram does: empty labels, callback data over 64 bytes."""
    if markup is None:
        return
    for row in markup.get("inline_keyboard", []):
        for button in row:
            if not button.get("text"):
                raise ApiError(400, "Bad Request: BUTTON_TEXT_INVALID")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(data.encode()) <= 64:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")


@dataclass
class Fault:
    """A failure to inject into one call: an HTTP error, a dropped connection, or a delay first.

    ``description`` replaces the error's usual text; ``hang`` keeps the request
    unanswered until the outage it belongs to ends, then drops it; ``lose_reply``
    carries the request out and then drops the connection (the bot cannot know it
    worked); ``outage`` makes this fault last that many seconds for every method.
    """

    status: int = 0
    retry_after: int | None = None
    drop: bool = False
    delay: float = 0.0
    description: str | None = None
    hang: bool = False
    lose_reply: bool = False
    outage: float = 0.0


@dataclass
class Outage:
    """Every call (of ``methods``, or all when empty) fails as ``fault`` says until ``until`` (monotonic)."""

    until: float
    fault: Fault
    methods: frozenset[str] = frozenset()

    def covers(self, method: str, now: float) -> bool:
        """Return whether a call of ``method`` at ``now`` falls in this outage."""
        return now < self.until and (not self.methods or method.lower() in self.methods)


@dataclass
class Call:
    """One request the bot made: method, decoded parameters, when, and how it ended."""

    method: str
    params: dict[str, Any]
    at: float
    status: int | None = None
    description: str | None = None
    result: Any = None


@dataclass
class BotMessage:
    """A message the bot sent: its HTML as sent, its visible text, buttons and edits."""

    chat_id: int
    message_id: int
    html: str
    text: str
    reply_to: int | None
    markup: dict[str, Any] | None
    at: float
    edits: list[str] = field(default_factory=list)
    deleted: bool = False

    @property
    def buttons(self) -> dict[str, str]:
        """Label to callback data of its inline keyboard."""
        rows = (self.markup or {}).get("inline_keyboard", [])
        return {b["text"]: b.get("callback_data", "") for row in rows for b in row}


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class FakeTelegram:
    """The fake Bot API server. Use as a context manager, or call :meth:`start` and :meth:`stop`."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.bot = dict(BOT_USER)
        self.calls: list[Call] = []
        self.sent: list[BotMessage] = []
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.inline_answers: dict[str, dict[str, Any]] = {}
        self.commands: list[dict[str, str]] | None = None
        self.webhook: dict[str, Any] | None = None
        self.deliveries: list[tuple[int, int]] = []  # (update_id, HTTP status of the webhook)
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, content)
        self.downloads: list[str] = []  # file paths the bot downloaded from /file/bot<token>/
        self.file_paths: dict[str, str] = {}  # file_id -> the file_path getFile gives instead (a hostile Bot API)
        self.floods: dict[str, int] = {}  # file path -> bytes of filler its download streams instead (a lying Bot API)
        self.streamed: dict[str, int] = {}  # file path -> bytes of filler written before the bot hung up
        self.group_admins: dict[int, dict[int, str]] = {}  # chat id -> {user id: "creator" | "administrator"}
        self.migrated: dict[int, int] = {}  # a group's id -> the id of the supergroup it became
        self.unreachable: dict[int, tuple[int, str]] = {}  # chat id -> (status, description) of every call to it
        self._next_file = itertools.count(1)
        self._cond = threading.Condition()
        self._updates: list[dict[str, Any]] = []
        self._next_update = itertools.count(1)
        self._next_query = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._chats: dict[int, dict[str, Any]] = {}
        self._faults: dict[str, list[Fault]] = {}
        self._outages: list[Outage] = []
        self._raw_updates: dict[int, dict[str, Any]] = {}
        self._callbacks: set[str] = set()
        self._inline_queries: set[str] = set()
        self._allowed_updates: list[str] | None = None
        self._poll_generation = 0
        self._closing = False
        self._deliver: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._threads: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """What to set ``TELEGRAM_API_URL`` to."""
        return f"http://127.0.0.1:{self.port}/bot"

    def start(self) -> FakeTelegram:
        """Start serving in background threads."""
        for target in (self._server.serve_forever, self._deliver_updates):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving; waiting long polls return at once."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._deliver.put(None)
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- playing the users -----------------------------------------------------------------------

    @staticmethod
    def user(user_id: int, first_name: str = "Ann", username: str | None = None) -> dict[str, Any]:
        """Return a Telegram user."""
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        return user

    @staticmethod
    def private_chat(user: dict[str, Any]) -> dict[str, Any]:
        """Return the private chat with ``user``."""
        return {"id": user["id"], "type": "private", "first_name": user["first_name"]}

    @staticmethod
    def group_chat(chat_id: int, title: str = "Readers") -> dict[str, Any]:
        """Return a supergroup (``chat_id`` should be negative)."""
        return {"id": chat_id, "type": "supergroup", "title": title}

    def send_text(
        self,
        chat: dict[str, Any],
        user: dict[str, Any],
        text: str,
        reply_to: int | None = None,
        entities: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A user sends ``text`` (commands and @mentions get their entities, as Telegram adds them,
        unless ``entities`` are given as they are)."""
        found = _entities(text) if entities is None else entities
        return self._user_message(chat, user, {"text": text, "entities": found}, reply_to)

    def send_raw(self, payload: dict[str, Any]) -> int:
        """Queue an update whose content is ``payload`` exactly as given (say, one the bot cannot parse);
        return its update_id."""
        with self._cond:
            return self._enqueue(payload)

    def redeliver(self, update_id: int) -> None:
        """Post an update the webhook already got once more, as Telegram retries a delivery."""
        with self._cond:
            update = self._raw_updates[update_id]
        self._deliver.put(update)

    def send_sticker(self, chat: dict[str, Any], user: dict[str, Any], reply_to: int | None = None) -> dict[str, Any]:
        """A user sends a sticker."""
        sticker = {"file_id": "CAAC-sticker", "file_unique_id": "st1", "type": "regular", "width": 512}
        sticker.update({"height": 512, "is_animated": False, "is_video": False})
        return self._user_message(chat, user, {"sticker": sticker}, reply_to)

    def send_photo(self, chat: dict[str, Any], user: dict[str, Any], caption: str | None = None) -> dict[str, Any]:
        """A user sends a photo, with an optional caption."""
        photo = {"file_id": "AgAD-photo", "file_unique_id": "ph1", "width": 90, "height": 90}
        content: dict[str, Any] = {"photo": [photo]}
        if caption:
            content.update(caption=caption, caption_entities=_entities(caption))
        return self._user_message(chat, user, content, None)

    def send_voice(self, chat: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
        """A user sends a voice message."""
        voice = {"file_id": "AwAD-voice", "file_unique_id": "vo1", "duration": 3}
        return self._user_message(chat, user, {"voice": voice}, None)

    def send_document(
        self,
        chat: dict[str, Any],
        user: dict[str, Any],
        name: str = "notes.pdf",
        content: bytes = b"%PDF-1.4 not really",
        caption: str | None = None,
        size: int | None = None,
        file_path: str | None = None,
        flood: int | None = None,
    ) -> dict[str, Any]:
        """A user sends a file ``name`` holding ``content`` (``size`` overrides the size Telegram reports);
        the bot may fetch it with getFile and the file endpoint (getFile gives ``file_path`` if set, as a
        hostile or a local Bot API server would). With ``flood``, the download streams that many bytes of
        filler instead, with no Content-Length (a body that outgrows what was claimed)."""
        with self._cond:
            number = next(self._next_file)
            file_id = f"BQAD-doc{number}"
            self.files[file_id] = (f"documents/file_{number}{Path(name).suffix}", content)
            if file_path is not None:
                self.file_paths[file_id] = file_path
            if flood is not None:
                self.floods[self.files[file_id][0]] = flood
        document = {"file_id": file_id, "file_unique_id": f"do{number}", "file_name": name}
        document["file_size"] = len(content) if size is None else size
        extra: dict[str, Any] = {"document": document}
        if caption:
            extra.update(caption=caption, caption_entities=_entities(caption))
        return self._user_message(chat, user, extra, None)

    def make_admin(self, chat: dict[str, Any], user: dict[str, Any], status: str = "administrator") -> None:
        """Make ``user`` an administrator (or ``"creator"``) of the group ``chat``."""
        with self._cond:
            self.group_admins.setdefault(chat["id"], {})[user["id"]] = status

    def press(self, message: BotMessage, label: str, user: dict[str, Any] | None = None) -> str:
        """A user presses the button ``label`` under ``message`` (as it is now); return the query id."""
        with self._cond:
            data = self.current(message).buttons.get(label)
        assert data is not None, f"no button {label!r} under message {message.message_id}: {message.buttons}"
        return self.press_data(message.chat_id, message.message_id, data, user)

    def press_data(self, chat_id: int, message_id: int, data: str, user: dict[str, Any] | None = None) -> str:
        """A user presses a button with callback ``data`` under the stored message; return the query id."""
        with self._cond:
            stored = self._messages[(chat_id, message_id)]
            query_id = f"cq{next(self._next_query)}"
            self._callbacks.add(query_id)
            presser = user or (stored.get("reply_to_message") or {}).get("from") or self.user(chat_id)
            query = {
                "id": query_id,
                "from": presser,
                "chat_instance": f"ci{chat_id}",
                "data": data,
                "message": json.loads(json.dumps(stored)),
            }
            self._enqueue({"callback_query": query})
        return query_id

    def inline(self, user: dict[str, Any], text: str) -> str:
        """A user types ``@bot text`` in some chat; return the inline query id."""
        with self._cond:
            query_id = f"iq{next(self._next_query)}"
            self._inline_queries.add(query_id)
            query = {"id": query_id, "from": user, "query": text, "offset": "", "chat_type": "sender"}
            self._enqueue({"inline_query": query})
        return query_id

    def add_bot_message(
        self, chat: dict[str, Any], html_text: str, reply_to: int, markup: dict[str, Any] | None
    ) -> BotMessage:
        """Store a message as if the bot had sent it earlier (say, before a restart)."""
        with self._cond:
            self._chats[chat["id"]] = chat
            return self._store_bot_message(chat["id"], html_text, check_text(html_text, "HTML"), reply_to, markup)

    # --- chats that change or go away -------------------------------------------------------------------

    def migrate(self, chat: dict[str, Any], user: dict[str, Any], new_id: int) -> dict[str, Any]:
        """``user`` upgrades the group ``chat`` to a supergroup ``new_id``, as Telegram does it: calls naming the
        old id fail with ``migrate_to_chat_id``, and both chats get a service message; return the new chat."""
        new_chat = {"id": new_id, "type": "supergroup", "title": chat.get("title", "Readers")}
        with self._cond:
            self.migrated[chat["id"]] = new_id
        self._user_message(chat, user, {"migrate_to_chat_id": new_id}, None)
        self._user_message(new_chat, user, {"migrate_from_chat_id": chat["id"]}, None)
        return new_chat

    def kick(self, chat: dict[str, Any]) -> None:
        """The bot is removed from the group ``chat``: every call to it is 403 "bot was kicked"."""
        with self._cond:
            self.unreachable[chat["id"]] = (403, "Forbidden: bot was kicked from the group chat")

    def block(self, user: dict[str, Any]) -> None:
        """``user`` blocks the bot: every call to their private chat is 403 "bot was blocked by the user"."""
        with self._cond:
            self.unreachable[user["id"]] = (403, "Forbidden: bot was blocked by the user")

    def lose(self, chat: dict[str, Any]) -> None:
        """Telegram no longer knows ``chat`` for the bot: every call to it is 400 "chat not found"."""
        with self._cond:
            self.unreachable[chat["id"]] = (400, "Bad Request: chat not found")

    def readd(self, chat: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
        """``user`` adds the bot to the group ``chat`` again (after :meth:`kick` or :meth:`lose`); return the
        service message Telegram sends."""
        with self._cond:
            self.unreachable.pop(chat["id"], None)
        return self._user_message(chat, user, {"new_chat_members": [self.bot]}, None)

    def unblock(self, user: dict[str, Any]) -> None:
        """``user`` unblocks the bot (their client then sends /start: :meth:`send_text` it)."""
        with self._cond:
            self.unreachable.pop(user["id"], None)

    def inject(self, method: str, *faults: Fault) -> None:
        """Make the next calls of ``method`` fail (or wait) as ``faults`` say, one fault per call."""
        with self._cond:
            self._faults.setdefault(method.lower(), []).extend(faults)

    def outage(self, seconds: float, fault: Fault, *methods: str) -> None:
        """From now on for ``seconds``, every call of ``methods`` (all when none) fails as ``fault`` says."""
        with self._cond:
            outage = Outage(time.monotonic() + seconds, fault, frozenset(m.lower() for m in methods))
            self._outages.append(outage)

    def end_outages(self) -> None:
        """End every outage now (hanging requests are then dropped)."""
        with self._cond:
            for outage in self._outages:
                outage.until = 0.0
            self._cond.notify_all()

    # --- looking -----------------------------------------------------------------------------------

    def wait_for(self, condition: Callable[[], T], timeout: float = 30.0, what: str = "a condition") -> T:
        """Return the first truthy value of ``condition()``, checked whenever the bot calls; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = condition()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    recent = [(c.method, c.status) for c in self.calls[-15:]]
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last calls: {recent}")
                self._cond.wait(min(remaining, 0.5))

    def calls_to(self, method: str) -> list[Call]:
        """Every call of ``method`` so far (successful or not)."""
        with self._cond:
            return [c for c in self.calls if c.method.lower() == method.lower()]

    def messages_in(self, chat_id: int, deleted: bool = True) -> list[BotMessage]:
        """The messages the bot sent to ``chat_id``, in order (without those it deleted since, unless ``deleted``)."""
        with self._cond:
            return [m for m in self.sent if m.chat_id == chat_id and (deleted or not m.deleted)]

    def replies_to(self, chat_id: int, message_id: int) -> list[BotMessage]:
        """The bot's messages in reply to message ``message_id`` of ``chat_id``."""
        with self._cond:
            return [m for m in self.sent if m.chat_id == chat_id and m.reply_to == message_id]

    def wait_reply(self, message: dict[str, Any], count: int = 1, timeout: float = 30.0) -> list[BotMessage]:
        """Wait until the bot has sent ``count`` replies to the user's ``message``; return them."""
        chat_id, message_id = message["chat"]["id"], message["message_id"]

        def ready() -> list[BotMessage]:
            replies = self.replies_to(chat_id, message_id)
            return replies if len(replies) >= count else []

        return self.wait_for(ready, timeout, f"{count} reply(s) to message {message_id} in chat {chat_id}")

    def current(self, message: BotMessage) -> BotMessage:
        """The bot message as it is now (after edits)."""
        with self._cond:
            return next(m for m in self.sent if (m.chat_id, m.message_id) == (message.chat_id, message.message_id))

    # --- the API ------------------------------------------------------------------------------------

    def handle(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        """Serve one request: ``(status, JSON body)``; a body of ``None`` means drop the connection."""
        call = Call(method, params, time.monotonic())
        with self._cond:
            self.calls.append(call)
            faults = self._faults.get(method.lower())
            fault = faults.pop(0) if faults else None
            if fault and fault.outage:
                self._outages.append(Outage(call.at + fault.outage, fault))
            outage = next((o for o in self._outages if o.covers(method, call.at)), None)
            if fault is None and outage is not None:
                fault = outage.fault
            self._cond.notify_all()
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and fault.hang:
            with self._cond:
                while outage is not None and outage.covers(method, time.monotonic()) and not self._closing:
                    self._cond.wait(0.2)
            self._finish(call, 0, "hung up", None)
            return 0, None
        try:
            if token != self.token:
                raise ApiError(401, "Unauthorized")
            if fault and fault.drop:
                self._finish(call, 0, "dropped", None)
                return 0, None
            if fault and fault.status:
                usual = {401: "Unauthorized", 429: "Too Many Requests", 500: "Internal Server Error"}
                description = fault.description or usual.get(fault.status, "Error")
                parameters = {"retry_after": fault.retry_after} if fault.retry_after is not None else None
                if fault.retry_after is not None:
                    description += f": retry after {fault.retry_after}"
                raise ApiError(fault.status, description, parameters)
            serve = getattr(self, f"_api_{method.lower()}", None)
            if serve is None:
                raise ApiError(404, "Not Found")
            result = serve(params)
            if fault and fault.lose_reply:
                self._finish(call, 0, "carried out, reply lost", result)
                return 0, None
        except ApiError as exc:
            body: dict[str, Any] = {"ok": False, "error_code": exc.status, "description": exc.description}
            if exc.parameters:
                body["parameters"] = exc.parameters
            self._finish(call, exc.status, exc.description, None)
            return exc.status, body
        self._finish(call, 200, None, result)
        return 200, {"ok": True, "result": result}

    def _finish(self, call: Call, status: int, description: str | None, result: Any) -> None:
        with self._cond:
            call.status, call.description, call.result = status, description, result
            self._cond.notify_all()

    def _api_getme(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.bot

    def _api_deletewebhook(self, params: dict[str, Any]) -> bool:
        with self._cond:
            self.webhook = None
            if params.get("drop_pending_updates"):
                self._updates.clear()
        return True

    def _api_setwebhook(self, params: dict[str, Any]) -> bool:
        url = params.get("url") or ""
        if not url:
            return self._api_deletewebhook(params)
        with self._cond:
            self.webhook = {"url": url, "secret_token": params.get("secret_token")}
            if params.get("allowed_updates") is not None:
                self._allowed_updates = params["allowed_updates"]
            pending, self._updates = self._updates, []
            if params.get("drop_pending_updates"):
                pending = []
            self._cond.notify_all()
        for update in pending:
            self._deliver.put(update)
        return True

    def _api_getwebhookinfo(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            url = self.webhook["url"] if self.webhook else ""
            return {"url": url, "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    def _api_getupdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        limit = max(1, min(int(params.get("limit") or 100), 100))
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + timeout
        with self._cond:
            if self.webhook:
                raise ApiError(409, WEBHOOK_CONFLICT)
            if params.get("allowed_updates") is not None:
                self._allowed_updates = params["allowed_updates"] or None
            self._poll_generation += 1
            generation = self._poll_generation
            if offset:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while True:
                if generation != self._poll_generation:
                    raise ApiError(409, POLL_CONFLICT)
                ready = [u for u in self._updates if self._allowed(u)]
                self._updates = ready
                if ready or self._closing:
                    return ready[:limit]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)

    def _api_sendmessage(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            chat_id = self._chat_id(params)
            visible = check_text(params.get("text"), params.get("parse_mode"))
            markup = params.get("reply_markup")
            check_markup(markup)
            reply = params.get("reply_parameters") or {}
            reply_to = reply.get("message_id") or params.get("reply_to_message_id")
            if reply_to is not None and (chat_id, int(reply_to)) not in self._messages:
                if not (reply.get("allow_sending_without_reply") or params.get("allow_sending_without_reply")):
                    raise ApiError(400, "Bad Request: message to be replied not found")
                reply_to = None
            message = self._store_bot_message(chat_id, params["text"], visible, reply_to and int(reply_to), markup)
            return self._messages[(chat_id, message.message_id)]

    def _api_editmessagetext(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            if params.get("inline_message_id"):
                raise ApiError(400, "Bad Request: MESSAGE_ID_INVALID")
            chat_id = self._chat_id(params)
            key = (chat_id, int(params.get("message_id") or 0))
            stored = self._messages.get(key)
            if stored is None or stored["from"]["id"] != self.bot["id"]:
                raise ApiError(400, "Bad Request: message to edit not found")
            visible = check_text(params.get("text"), params.get("parse_mode"))
            markup = params.get("reply_markup")
            check_markup(markup)
            if visible == stored.get("text") and markup == stored.get("reply_markup"):
                raise ApiError(
                    400,
                    "Bad Request: message is not modified: specified new message content and reply markup are "
                    "exactly the same as a current content and reply markup of the message",
                )
            stored["text"], stored["edit_date"] = visible, int(time.time())
            stored.pop("reply_markup", None)
            if markup:
                stored["reply_markup"] = markup
            record = next(m for m in self.sent if (m.chat_id, m.message_id) == key)
            record.edits.append(record.html)
            record.html, record.text, record.markup = params["text"], visible, markup
            return stored

    def _api_deletemessage(self, params: dict[str, Any]) -> bool:
        with self._cond:
            chat_id = self._chat_id(params)
            key = (chat_id, int(params.get("message_id") or 0))
            stored = self._messages.get(key)
            if stored is None:
                raise ApiError(400, "Bad Request: message to delete not found")
            if stored["from"]["id"] != self.bot["id"]:
                raise ApiError(400, "Bad Request: message can't be deleted")
            del self._messages[key]
            next(m for m in self.sent if (m.chat_id, m.message_id) == key).deleted = True
        return True

    def _api_answercallbackquery(self, params: dict[str, Any]) -> bool:
        with self._cond:
            query_id = params.get("callback_query_id")
            if query_id not in self._callbacks:
                raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
            if len(params.get("text") or "") > 200:
                raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
            self._callbacks.discard(query_id)
            answer = {"text": params.get("text"), "show_alert": params.get("show_alert", False)}
            self.callback_answers[query_id] = answer
        return True

    def _api_getfile(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = str(params.get("file_id"))
        if file_id not in self.files:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, content = self.files[file_id]
        path = self.file_paths.get(file_id, path)
        return {"file_id": file_id, "file_unique_id": f"u-{file_id}", "file_size": len(content), "file_path": path}

    def download(self, token: str, path: str) -> bytes | None:
        """Serve ``/file/bot<token>/<path>``: the file's bytes, or ``None`` for a wrong token or path."""
        with self._cond:
            if token != self.token:
                return None
            self.downloads.append(path)
            return next((content for p, content in self.files.values() if p == path), None)

    def _member(self, chat_id: int, user_id: int) -> dict[str, Any]:
        status = self.group_admins.get(chat_id, {}).get(user_id, "member")
        member: dict[str, Any] = {"status": status, "user": self.user(user_id)}
        if status == "administrator":
            member.update(can_be_edited=False, is_anonymous=False, can_manage_chat=True, can_delete_messages=True)
            member.update(can_manage_video_chats=True, can_restrict_members=True, can_promote_members=False)
            member.update(can_change_info=True, can_invite_users=True, can_post_stories=False)
            member.update(can_edit_stories=False, can_delete_stories=False)
        elif status == "creator":
            member.update(is_anonymous=False)
        return member

    def _api_getchatmember(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._member(self._chat_id(params), int(params["user_id"]))

    def _api_getchatadministrators(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        chat_id = self._chat_id(params)
        return [self._member(chat_id, user_id) for user_id in self.group_admins.get(chat_id, {})]

    def _api_sendchataction(self, params: dict[str, Any]) -> bool:
        with self._cond:
            self._chat_id(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    def _api_setmycommands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", command.get("command", "")):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(command.get("description", "")) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        with self._cond:
            self.commands = commands
        return True

    def _api_getmycommands(self, params: dict[str, Any]) -> list[dict[str, str]]:
        with self._cond:
            return self.commands or []

    def _api_answerinlinequery(self, params: dict[str, Any]) -> bool:
        results = params.get("results")
        if not isinstance(results, list):
            raise ApiError(400, "Bad Request: RESULTS_INVALID")
        if len(results) > 50:
            raise ApiError(400, "Bad Request: RESULTS_TOO_MUCH")
        ids = set()
        for result in results:
            result_id = str(result.get("id", ""))
            if not 1 <= len(result_id.encode()) <= 64:
                raise ApiError(400, "Bad Request: RESULT_ID_INVALID")
            if result_id in ids:
                raise ApiError(400, "Bad Request: RESULT_ID_DUPLICATE")
            ids.add(result_id)
            if not result.get("title"):
                raise ApiError(400, "Bad Request: RESULT_TITLE_EMPTY")
            content = result.get("input_message_content") or {}
            try:
                check_text(content.get("message_text"), content.get("parse_mode"))
            except ApiError as exc:
                if "too long" in exc.description:
                    raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG") from None
                raise
            check_markup(result.get("reply_markup"))
        with self._cond:
            query_id = params.get("inline_query_id")
            if query_id not in self._inline_queries:
                raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
            self._inline_queries.discard(query_id)
            self.inline_answers[query_id] = {"results": results, "cache_time": params.get("cache_time")}
        return True

    # --- internals -----------------------------------------------------------------------------------

    def _chat_id(self, params: dict[str, Any]) -> int:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int) or chat_id not in self._chats:
            raise ApiError(400, "Bad Request: chat not found")
        if chat_id in self.migrated:
            new_id = self.migrated[chat_id]
            raise ApiError(
                400, "Bad Request: group chat was upgraded to a supergroup chat", {"migrate_to_chat_id": new_id}
            )
        if chat_id in self.unreachable:
            raise ApiError(*self.unreachable[chat_id])
        return chat_id

    def _allowed(self, update: dict[str, Any]) -> bool:
        allowed = self._allowed_updates or [t for t in UPDATE_TYPES if t not in ("chat_member",)]
        return any(kind in update for kind in allowed)

    def _new_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _user_message(
        self, chat: dict[str, Any], user: dict[str, Any], content: dict[str, Any], reply_to: int | None
    ) -> dict[str, Any]:
        with self._cond:
            self._chats[chat["id"]] = chat
            message = {
                "message_id": self._new_message_id(chat["id"]),
                "date": int(time.time()),
                "chat": chat,
                "from": user,
                **{k: v for k, v in content.items() if v},
            }
            if reply_to is not None:
                replied = dict(self._messages[(chat["id"], reply_to)])
                replied.pop("reply_to_message", None)
                message["reply_to_message"] = replied
            self._messages[(chat["id"], message["message_id"])] = message
            self._enqueue({"message": message})
            return message

    def _store_bot_message(
        self, chat_id: int, html_text: str, visible: str, reply_to: int | None, markup: dict[str, Any] | None
    ) -> BotMessage:
        message: dict[str, Any] = {
            "message_id": self._new_message_id(chat_id),
            "date": int(time.time()),
            "chat": self._chats[chat_id],
            "from": self.bot,
            "text": visible,
        }
        if reply_to is not None:
            replied = dict(self._messages[(chat_id, reply_to)])
            replied.pop("reply_to_message", None)  # Telegram nests one level only
            message["reply_to_message"] = replied
        if markup:
            message["reply_markup"] = markup
        self._messages[(chat_id, message["message_id"])] = message
        record = BotMessage(chat_id, message["message_id"], html_text, visible, reply_to, markup, time.monotonic())
        self.sent.append(record)
        return record

    def _enqueue(self, payload: dict[str, Any]) -> int:
        update = {"update_id": next(self._next_update), **payload}
        self._raw_updates[update["update_id"]] = update
        if self.webhook:
            self._deliver.put(update)
        else:
            self._updates.append(update)
        self._cond.notify_all()
        return update["update_id"]

    def _deliver_updates(self) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while True:
            update = self._deliver.get()
            if update is None:
                return
            with self._cond:
                hook = dict(self.webhook) if self.webhook else None
            if hook is None:
                continue
            headers = {"Content-Type": "application/json"}
            if hook.get("secret_token"):
                headers["X-Telegram-Bot-Api-Secret-Token"] = hook["secret_token"]
            request = urllib.request.Request(hook["url"], data=json.dumps(update).encode(), headers=headers)
            try:
                with opener.open(request, timeout=30) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                status = 0
            with self._cond:
                self.deliveries.append((update["update_id"], status))
                self._cond.notify_all()


def _entities(text: str) -> list[dict[str, Any]]:
    """The entities Telegram adds to a user's text: a leading command, @mentions (UTF-16 offsets)."""
    entities = []
    for match in re.finditer(r"(?<![\w/])(/[A-Za-z0-9_]{1,32}(?:@\w+)?)|(?<!\w)(@[A-Za-z]\w{3,31})", text):
        if match.group(1) and match.start() != 0:
            continue
        offset = _utf16_len(text[: match.start()])
        kind = "bot_command" if match.group(1) else "mention"
        entities.append({"type": kind, "offset": offset, "length": _utf16_len(match.group(0))})
    return entities


def _decode(name: str, value: Any) -> Any:
    """A form parameter as Telegram reads it: JSON for objects, numbers and booleans by name."""
    if not isinstance(value, str):
        return value
    if name in _JSON_PARAMS:
        return json.loads(value)
    if name in _INT_PARAMS:
        try:
            return int(value)
        except ValueError:
            return value
    if name in _BOOL_PARAMS:
        return value.lower() in ("true", "1")
    return value


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # the bot hung up (it stopped, or gave up waiting)
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        fake: FakeTelegram = self.server.fake  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = self.headers.get("Content-Type", "").split(";")[0].strip()
        pairs: dict[str, Any] = dict(parse_qsl(url.query))
        if kind == "application/json" and raw:
            pairs.update(json.loads(raw))
        elif raw:
            pairs.update(parse_qsl(raw.decode()))
        params = {k: _decode(k, v) for k, v in pairs.items()}
        download = re.fullmatch(r"/file/bot([^/]*)/(.+)", unquote(url.path))  # clients quote the token's ":"
        if download is not None:
            flood = fake.floods.get(download.group(2)) if download.group(1) == fake.token else None
            if flood is not None:
                self._flood(fake, download.group(2), flood)
                return
            content = fake.download(download.group(1), download.group(2))
            self.send_response(200 if content is not None else 404)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(content or b"")))
            self.end_headers()
            self.wfile.write(content or b"")
            return
        match = re.fullmatch(r"/bot([^/]*)/(\w+)", url.path)
        if match is None:
            status, body = 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        else:
            status, body = fake.handle(match.group(1), match.group(2), params)
        if body is None:  # a dropped connection: no response at all
            self.close_connection = True
            return
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the bot gave up on this request (a cancelled long poll)
            self.close_connection = True

    def _flood(self, fake: FakeTelegram, path: str, total: int) -> None:
        """Stream ``total`` bytes of filler for ``path`` with no Content-Length; note how many got out."""
        with fake._cond:
            fake.downloads.append(path)
        self.close_connection = True
        written = 0
        chunk = b"flood " * 10_923  # about 64 kB
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            while written < total:
                piece = chunk[: total - written]
                self.wfile.write(piece)
                written += len(piece)
        except OSError:  # the bot hung up
            pass
        finally:
            fake.streamed[path] = written
