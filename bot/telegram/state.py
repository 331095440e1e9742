"""What the Telegram handlers share: the typed application state, and sending, editing and acknowledging.

Every model or search call runs in one worker thread (:attr:`BotState.searching`), so the
:class:`~index.search.retrieve.Searcher` is never used by two threads at once; adding an article runs in
another (:attr:`BotState.adding`), through its own :class:`~index.store.library.Library`, so answers go
on while a long PDF is indexed. The library notices what another process added with one ``stat``
per question.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, MessageEntity, ReplyParameters, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, ChatMigrated, TelegramError
from telegram.ext import ContextTypes

from bot.serve.errors import HTTPError
from bot.serve.metrics import Metrics
from bot.serve.probes import NOT_READY, count_library, readiness
from bot.settings import Settings
from bot.telegram.chats import ChatState
from bot.telegram.html import entity_text
from bot.telegram.split import split_html
from index.answer import Answer, answer
from index.search.library_index import ArticleData
from index.search.retrieve import Searcher
from index.store.catalog import ArticleRecord
from index.store.library import Library

log = logging.getLogger("citebot.telegram")
T = TypeVar("T")

#: Said once to a chat whose chosen articles have all been removed from the library.
SCOPE_GONE = (
    "The articles this chat asked ({ids}) are no longer in the library, so it now asks the whole library. "
    "/articles lists what there is to choose from."
)
#: How long the bot stops trying a chat it cannot reach (kicked, blocked, "chat not found"), in seconds, unless
#: the chat shows it is back first (the bot added to the group again, /start from a user who unblocked it).
UNREACHABLE_SECONDS = 600.0


@dataclass
class BotState:
    """The bot's shared state: settings, the searcher (loaded at start-up), the chat state and the workers."""

    settings: Settings
    searching: ThreadPoolExecutor
    adding: ThreadPoolExecutor
    chats: ChatState
    searcher: Searcher | None = None
    writer: Library | None = None
    examples: tuple[str, ...] = ()
    refused: set[int] = field(default_factory=set)
    #: Chats whose chosen articles were all removed, with their ids, until the chat is told (once).
    scope_gone: dict[int, tuple[int, ...]] = field(default_factory=dict)
    #: Chats the bot cannot reach, with when it found out (``time.monotonic``).
    unreachable: dict[int, float] = field(default_factory=dict)
    #: Set when the bot starts shutting down: an addition in progress stops at its next safe point.
    stopping: threading.Event = field(default_factory=threading.Event)
    #: What ``TELEGRAM_METRICS_PORT`` serves: questions by verdict, latency, errors by kind, fetches refused.
    metrics: Metrics = field(default_factory=Metrics)

    @property
    def ready(self) -> Searcher:
        """The searcher; raises when start-up has not loaded it yet."""
        if self.searcher is None:
            raise RuntimeError("the library is not loaded yet")
        return self.searcher

    async def search(self, job: Callable[[], T], stage: str | None = None) -> T:
        """Run ``job`` (a model or search call) in the one search thread, off the event loop. The wait is timed
        as the ``queue`` stage, the job itself as ``stage`` when given."""
        return await asyncio.get_running_loop().run_in_executor(self.searching, self.metrics.timed(job, stage))

    async def ask(self, question: str, k: int = 1, scope: Sequence[int] | None = None, counted: bool = True) -> Answer:
        """Answer ``question`` with ``k`` passages from ``scope`` (``None``: the whole library); ``counted``: a
        user's question (counted by verdict in the metrics), not one the bot asks itself."""
        searcher = self.ready
        job = partial(
            answer,
            searcher,
            question,
            k=k,
            min_score=self.settings.min_score,
            scope=scope,
            uncertain_score=self.settings.uncertain_score,
        )
        reply = await self.search(job, stage="answer" if counted else None)
        if counted:
            self.metrics.questions.labels(reply.verdict).inc()
        return reply

    @property
    def probed(self) -> Searcher:
        """The searcher, for the probes; raises a 503 :class:`HTTPError` while start-up has not loaded it."""
        if self.searcher is None:
            raise HTTPError(503, NOT_READY, "not_ready")
        return self.searcher

    async def readiness(self) -> dict[str, object]:
        """Return ``/readyz``'s body (a 503 :class:`HTTPError` before the library is loaded)."""
        return await self.search(partial(readiness, self.probed, self.metrics))

    async def count_library(self) -> int:
        """Bring the library gauges up to date (before a scrape of ``/metrics``); return the articles."""
        return await self.search(partial(count_library, self.probed, self.metrics))

    async def records(self, ids: Sequence[int] | None = None) -> list[ArticleRecord]:
        """Return the library's articles (all, or those of ``ids`` that exist), up to date."""
        searcher = self.ready

        def job() -> list[ArticleRecord]:
            searcher.articles_index  # noqa: B018 - notice what another process added or removed
            return searcher.library.records(ids)

        return await self.search(job)

    async def article(self, article_id: int) -> ArticleData | None:
        """Return the stored text of the article ``article_id`` as the searcher holds it, or ``None``."""
        searcher = self.ready

        def job() -> ArticleData | None:
            return searcher.articles_index.article(article_id)

        return await self.search(job)

    async def live_scope(self, chat_id: int) -> tuple[int, ...] | None:
        """Return the chat's scope without the articles removed since it was chosen (``None``: everything)."""
        scope = self.chats.scope(chat_id)
        if scope is None:
            return None
        present = tuple(r.id for r in await self.records(scope))
        if present != scope:
            self.chats.set_scope(chat_id, present or None)
            if not present:
                self.scope_gone[chat_id] = scope
        return present or None

    async def chat_scope(self, message: Message) -> tuple[int, ...] | None:
        """Return the scope of ``message``'s chat (see :meth:`live_scope`); when all of its chosen articles have
        been removed, tell the chat once that it now asks the whole library."""
        scope = await self.live_scope(message.chat_id)
        gone = self.scope_gone.pop(message.chat_id, None)
        if gone:
            await send(message, html.escape(SCOPE_GONE.format(ids=", ".join(map(str, gone)))))
        return scope

    def cannot_reach(self, chat_id: int, error: TelegramError) -> None:
        """Stop trying ``chat_id`` for :data:`UNREACHABLE_SECONDS`, which Telegram refused with ``error``; log one
        line (only the first time)."""
        if chat_id not in self.unreachable:
            log.warning(
                "chat %s cannot be reached (%s): not answering it for %.0f minutes, or until it is back",
                chat_id,
                describe(error),
                UNREACHABLE_SECONDS / 60,
            )
        self.unreachable[chat_id] = time.monotonic()

    def reachable(self, chat_id: int, back: bool) -> bool:
        """Return whether to handle an update from ``chat_id``: not while it cannot be reached, unless the update
        shows it is ``back`` or the wait is over."""
        since = self.unreachable.get(chat_id)
        if since is None:
            return True
        if back or time.monotonic() - since >= UNREACHABLE_SECONDS:
            del self.unreachable[chat_id]
            log.info("chat %s is answered again", chat_id)
            return True
        return False

    def migrate(self, old: int, new: int) -> None:
        """Carry what the group ``old`` chose over to the supergroup ``new`` it became."""
        if self.chats.migrate(old, new):
            log.info("chat %s became the supergroup %s: its choice of articles came along", old, new)

    def is_admin(self, user_id: int | None) -> bool:
        """Return whether ``user_id`` is one of ``TELEGRAM_ADMINS``."""
        return user_id is not None and user_id in self.settings.telegram.admins


def bot_state(context: ContextTypes.DEFAULT_TYPE) -> BotState:
    """Return the state of the application handling ``context``."""
    return context.bot_data["citebot"]


def addressed(message: Message, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Return whether a message is for the bot: any in a private chat; in groups a mention or a reply."""
    if message.chat.type == ChatType.PRIVATE:
        return True
    bot = context.bot
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == bot.id:
        return True
    for text, entities in ((message.text, message.entities), (message.caption, message.caption_entities)):
        for entity in entities:
            if entity.type == MessageEntity.TEXT_MENTION and entity.user is not None and entity.user.id == bot.id:
                return True
            if entity.type != MessageEntity.MENTION:
                continue
            mention = entity_text(text or "", entity.offset, entity.length)  # None when malformed: no mention
            if mention is not None and mention[1:].lower() == (bot.username or "").lower():
                return True
    return False


async def may_change_scope(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Return whether the user may change the chat's scope: anyone in a private chat, only the administrators
    in a group (asked of Telegram at every change: buttons can be forged)."""
    chat, user = update.effective_chat, update.effective_user
    if chat is None or user is None:
        return False
    if chat.type == ChatType.PRIVATE:
        return True
    try:
        member = await context.bot.get_chat_member(chat.id, user.id)
    except TelegramError as exc:
        log.info("could not check the rights of user %s in chat %s: %s", user.id, chat.id, exc)
        return False
    return member.status in (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)


def keyboard(buttons: Sequence[tuple[str, str]], per_row: int = 2) -> InlineKeyboardMarkup | None:
    """Return an inline keyboard of (label, callback data) buttons, ``per_row`` to a row."""
    if not buttons:
        return None
    made = [InlineKeyboardButton(label, callback_data=data) for label, data in buttons]
    return InlineKeyboardMarkup([made[i : i + per_row] for i in range(0, len(made), per_row)])


async def send(
    message: Message, html_text: str, buttons: Sequence[tuple[str, str]] = (), per_row: int = 2
) -> Message | None:
    """Reply to ``message`` with ``html_text``, split to fit Telegram's limit; buttons go under the last part.
    Return the last part sent (``None`` when there was nothing to send)."""
    sent = await send_all(message, html_text, buttons, per_row)
    return sent[-1] if sent else None


async def send_all(
    message: Message, html_text: str, buttons: Sequence[tuple[str, str]] = (), per_row: int = 2
) -> list[Message]:
    """Reply to ``message`` as :func:`send` does; return every message sent, in order."""
    return await _send_parts(message, split_html(html_text), buttons, per_row)


async def _send_parts(
    message: Message, parts: Sequence[str], buttons: Sequence[tuple[str, str]], per_row: int
) -> list[Message]:
    """Reply to ``message`` with each of ``parts`` (HTML that fits one message), buttons under the last; return
    the messages sent. When the group was upgraded to a supergroup meanwhile, they go to the supergroup (not as
    replies: the question stayed in the old group)."""
    chat_id = message.chat_id
    thread = message.message_thread_id if message.is_topic_message else None
    reply: ReplyParameters | None = ReplyParameters(message.message_id, allow_sending_without_reply=True)
    sent: list[Message] = []
    for number, part in enumerate(parts, start=1):
        markup = keyboard(buttons, per_row) if number == len(parts) else None
        try:
            made = await message.get_bot().send_message(
                chat_id=chat_id, text=part, message_thread_id=thread, reply_parameters=reply, reply_markup=markup
            )
        except ChatMigrated as exc:
            log.info("chat %s became the supergroup %s: sending there", chat_id, exc.new_chat_id)
            chat_id, thread, reply = exc.new_chat_id, None, None
            made = await message.get_bot().send_message(chat_id=chat_id, text=part, reply_markup=markup)
        sent.append(made)
    return sent


async def edit(
    message: Message,
    html_text: str,
    buttons: Sequence[tuple[str, str]] = (),
    per_row: int = 2,
    earlier: Sequence[int] = (),
) -> list[int]:
    """Replace what the bot's messages ``earlier`` (ids, in order) and ``message`` (the last) show with
    ``html_text``, buttons under its last part; return the ids of the messages that show it now, in order.

    The messages are edited in place, part by part; parts that do not fit in them go out as new replies to the
    question, and messages left over are deleted (or, if Telegram refuses, emptied to a dash).
    """
    bot, chat_id = message.get_bot(), message.chat_id
    old = [*earlier, message.message_id]
    parts = split_html(html_text)
    shown: list[int] = []
    for number, (message_id, part) in enumerate(zip(old, parts, strict=False), start=1):
        markup = keyboard(buttons, per_row) if number == len(parts) else None
        try:
            await bot.edit_message_text(part, chat_id=chat_id, message_id=message_id, reply_markup=markup)
        except BadRequest as exc:
            if "not modified" not in str(exc):
                raise
        shown.append(message_id)
    if len(parts) > len(old):
        asked = message.reply_to_message or message
        shown += [m.message_id for m in await _send_parts(asked, parts[len(old) :], buttons, per_row)]
    for message_id in old[len(parts) :]:
        try:
            await bot.delete_message(chat_id, message_id)
        except TelegramError as exc:
            log.info("could not delete message %s of chat %s (%s): emptying it", message_id, chat_id, exc)
            with contextlib.suppress(TelegramError):
                await bot.edit_message_text("–", chat_id=chat_id, message_id=message_id)
    return shown


async def acknowledge(update: Update, text: str | None = None) -> None:
    """Answer a button press (the toast ``text``, or just stop the spinner); a failure is logged, not raised,
    so the press still does its work ("query is too old" after a restart or a slow answer)."""
    query = update.callback_query
    if query is None:
        return
    try:
        await query.answer(text)
    except TelegramError as exc:
        log.info("could not acknowledge a button press (%s); doing its work anyway", exc)


def describe(error: BaseException | None) -> str:
    """Return an error as one line: its type and message."""
    return f"{type(error).__name__}: {error}" if error else "unknown error"
