"""The Telegram front end: the same quoted answers as the console, in Telegram (python-telegram-bot).

``citebot telegram`` runs :func:`run_bot`: long polling by default, a webhook
server when ``TELEGRAM_WEBHOOK_URL`` is set. Handlers are small; all wiring is
in :func:`build_application`. Model work runs in a thread pool; updates are
scheduled fairly across chats and users (``bot/telegram_scheduler.py``); flood
control, outages and a refused token are handled in ``bot/telegram_transport.py``;
start-up and bounded shutdown are in ``bot/telegram_run.py``. The token never
reaches a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import os
import secrets
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from index.build import open_article
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    LinkPreviewOptions,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    InlineQueryHandler,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBDeprecationWarning

from bot.settings import Settings
from bot.telegram_format import (
    COMMANDS,
    Button,
    answer_buttons,
    answer_html,
    closest_buttons,
    context_html,
    decode_button,
    entity_text,
    example_candidates,
    greeting_html,
    help_html,
    inline_html,
    question_text,
    source_html,
    split_html,
)
from bot.telegram_run import serve
from bot.telegram_scheduler import FairScheduler, UserLimit
from bot.telegram_transport import PatientRateLimiter, PollingErrors, PollingRequest, TokenWatch
from index.answer import NOT_FOUND, Answer, Passage, answer, clean_question
from index.errors import CitebotError, QuestionError
from index.ingest import Article, read_article
from index.retrieve import Retriever

log = logging.getLogger("citebot.telegram")

#: The update types the bot asks Telegram for.
ALLOWED_UPDATES = ["message", "callback_query", "inline_query"]
#: How often the typing indicator is renewed while an answer is being worked out (it lasts 5 s).
TYPING_EVERY = 4.0
#: How long one typing indicator may take before it is abandoned (it never holds up the answer).
TYPING_TIMEOUT = 2.0
#: Quotes offered in inline mode.
INLINE_RESULTS = 5

REFUSAL = "Sorry, this bot is private: it answers only the people it was set up for."
NOT_TEXT = "Please send me a text question; I can only read text."
SORRY = "Sorry, something went wrong while answering. Please try again."
STALE = "This button no longer works. Please ask the question again."
OUTDATED = "This button belongs to an older version of the article. Please ask the question again."
NO_QUESTION = "I can no longer see the question this button belongs to. Please ask it again."
NO_MORE = "No more matches."
ASK_USAGE = "Ask like this: /ask Which roads meet at the town?"
UNKNOWN_COMMAND = "I don't know that command. /help lists what I can do."
TOO_FAST = "You are sending questions faster than I can answer, so I am skipping some. Please wait a minute."


# --- state ------------------------------------------------------------------------------------------


@dataclass
class BotState:
    """What the handlers share: the article, its retriever (loaded at start-up) and the settings."""

    settings: Settings
    article: Article
    executor: ThreadPoolExecutor
    retriever: Retriever | None = None
    examples: tuple[str, ...] = ()
    refused: set[int] = field(default_factory=set)

    @property
    def fingerprint(self) -> str:
        """The article's short fingerprint that buttons carry."""
        return self.article.fingerprint[:8]

    async def ask(self, question: str, k: int = 1) -> Answer:
        """Answer ``question`` with ``k`` passages in the thread pool, off the event loop."""
        if self.retriever is None:
            raise RuntimeError("the article is not loaded yet")
        job = partial(answer, self.retriever, question, k=k, min_score=self.settings.min_score)
        return await asyncio.get_running_loop().run_in_executor(self.executor, job)


def _state(context: ContextTypes.DEFAULT_TYPE) -> BotState:
    return context.bot_data["citebot"]


# --- handlers ---------------------------------------------------------------------------------------


async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Greet the user, name the article and suggest example questions."""
    message = update.effective_message
    if message is None or not await _admitted(update, context):
        return
    state = _state(context)
    await _send(message, greeting_html(state.article, state.examples))


async def on_help(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Say what the bot does, how to ask and which commands it has."""
    message = update.effective_message
    if message is None or not await _admitted(update, context):
        return
    await _send(message, help_html(context.bot.username))


async def on_source(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Say which article the answers come from: its title, size and file."""
    message = update.effective_message
    if message is None or not await _admitted(update, context):
        return
    await _send(message, source_html(_state(context).article))


async def on_ask(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer the question after /ask, the way to ask in a group."""
    message = update.effective_message
    if message is None or not await _admitted(update, context):
        return
    question = question_text(message.text or "", context.bot.username)
    if not question:
        await _send(message, html.escape(ASK_USAGE))
        return
    await _answer(message, context, question)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer a text message: any in a private chat; in a group, only a mention of the bot or a reply to it."""
    message = update.effective_message
    if message is None or not _addressed(message, context) or not await _admitted(update, context):
        return
    await _answer(message, context, question_text(message.text or "", context.bot.username))


async def on_not_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Ask for a text question when sent a sticker, photo, voice message or file."""
    message = update.effective_message
    if message is None or not _addressed(message, context) or not await _admitted(update, context):
        return
    await _send(message, html.escape(NOT_TEXT))


async def on_unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Point to /help after a command the bot does not have (private chats only)."""
    message = update.effective_message
    if message is None or not await _admitted(update, context):
        return
    await _send(message, html.escape(UNKNOWN_COMMAND))


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Handle More context, Next match and Show closest passage, from the button's data alone."""
    query = update.callback_query
    if query is None or not await _admitted(update, context):
        return
    state = _state(context)
    button = decode_button(query.data)
    message = query.message if isinstance(query.message, Message) else None
    acknowledge = partial(_acknowledge, update)
    if button is None or message is None:
        await acknowledge(STALE)
        return
    if button.fingerprint != state.fingerprint:
        await acknowledge(OUTDATED)
        return
    if button.kind == "next":
        await _show_next(acknowledge, message, context, button)
        return
    passage = _stored_passage(state.article, button)
    if passage is None:
        await acknowledge(STALE)
        return
    await acknowledge()
    if button.kind == "context":
        await _send(message, context_html(state.article, passage.paragraph, passage.highlight))
    else:
        await _edit(message, answer_html(passage, found=False), answer_buttons(state.fingerprint, passage))


async def on_inline(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Offer the top quotes for an inline query (``@bot question`` in any chat)."""
    query = update.inline_query
    if query is None:
        return
    state = _state(context)
    personal = bool(state.settings.telegram_allowed_users)
    if not await _admitted(update, context):
        await query.answer([], cache_time=0, is_personal=True)
        return
    try:
        question = clean_question(query.query)
    except QuestionError:
        await query.answer([], cache_time=0, is_personal=personal)
        return
    result = await state.ask(question, k=INLINE_RESULTS)
    results = []
    if result.found:
        for passage in result.passages:
            results.append(
                InlineQueryResultArticle(
                    id=f"{state.fingerprint}-{passage.paragraph}",
                    title=_shorten(passage.sentence or passage.text, 120),
                    description=passage.position,
                    input_message_content=InputTextMessageContent(inline_html(passage), parse_mode=ParseMode.HTML),
                )
            )
    await query.answer(results, cache_time=30, is_personal=personal)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log a failed update, then tell the user briefly that it failed (unless Telegram cannot be reached)."""
    error = context.error
    if isinstance(error, (NetworkError, InvalidToken)) and not isinstance(error, BadRequest):
        log.error("handling an update failed: Telegram could not be reached: %s", _describe(error))
        return  # the give-up is logged; an apology would wait out the same outage
    log.error("handling an update failed: %s", _describe(error), exc_info=error)
    if not isinstance(update, Update):
        return
    with contextlib.suppress(TelegramError):
        if update.callback_query is not None:
            await update.callback_query.answer(SORRY)
        elif update.inline_query is not None:
            await update.inline_query.answer([], cache_time=0)
        elif update.effective_message is not None:
            await _send(update.effective_message, html.escape(SORRY))


# --- what the handlers share ------------------------------------------------------------------------


async def _admitted(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Return whether the user may use the bot; refuse anyone else politely, once."""
    state = _state(context)
    allowed = state.settings.telegram_allowed_users
    user = update.effective_user
    if not allowed or (user is not None and user.id in allowed):
        return True
    first = user is not None and user.id not in state.refused
    if user is not None:
        state.refused.add(user.id)
    if update.callback_query is not None:
        await _acknowledge(update, REFUSAL if first else None)
    elif first and update.effective_message is not None:
        await _send(update.effective_message, html.escape(REFUSAL))
    log.info("refused user %s", user.id if user else "?")
    return False


def _addressed(message: Message, context: ContextTypes.DEFAULT_TYPE) -> bool:
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


async def _answer(message: Message, context: ContextTypes.DEFAULT_TYPE, question: str) -> None:
    """Answer ``question``, asked in ``message``: the best passage with buttons, or "not in the article"."""
    state = _state(context)
    try:
        question = clean_question(question)
    except QuestionError as exc:
        reason = str(exc)
        await _send(message, html.escape(reason[:1].upper() + reason[1:] + "."))
        return
    async with _typing(context.bot, message.chat_id):
        result = await state.ask(question)
    passage = result.passages[0] if result.passages else None
    if result.found and passage is not None:
        await _send(message, answer_html(passage, found=True), answer_buttons(state.fingerprint, passage))
    else:
        await _send(message, html.escape(NOT_FOUND), closest_buttons(state.fingerprint, passage))


async def _show_next(
    reply: Callable[..., Awaitable[Any]], message: Message, context: ContextTypes.DEFAULT_TYPE, button: Button
) -> None:
    """Edit an answer to show the passage at ``button.rank`` for the question it replies to."""
    state = _state(context)
    asked = message.reply_to_message
    question = question_text(asked.text or "", context.bot.username) if asked is not None else ""
    if not question:
        await reply(NO_QUESTION)
        return
    try:
        result = await state.ask(question, k=button.rank + 1)
    except QuestionError:
        await reply(NO_QUESTION)
        return
    if len(result.passages) <= button.rank:
        await reply(NO_MORE)
        return
    passage = result.passages[button.rank]
    await reply()
    html_text = answer_html(passage, found=result.found, rank=button.rank)
    await _edit(message, html_text, answer_buttons(state.fingerprint, passage, button.rank))


def _stored_passage(article: Article, button: Button) -> Passage | None:
    """Return the passage a ``context`` or ``closest`` button points at, or ``None`` if it is out of range."""
    total = len(article.paragraphs)
    if not 1 <= button.paragraph <= total:
        return None
    start, end = article.paragraphs[button.paragraph - 1]
    text = article.text[start:end]
    highlight = button.highlight if button.end <= len(text) else ()
    return Passage(text, button.paragraph, total, 0.0, highlight, start, end)


def _keyboard(buttons: Sequence[tuple[str, str]]) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data) for label, data in buttons]])


async def _send(message: Message, html_text: str, buttons: Sequence[tuple[str, str]] = ()) -> Message | None:
    """Reply to ``message`` with ``html_text``, split to fit Telegram's limit; buttons go under the last part."""
    parts = split_html(html_text)
    sent = None
    for number, part in enumerate(parts, start=1):
        sent = await message.get_bot().send_message(
            chat_id=message.chat_id,
            text=part,
            message_thread_id=message.message_thread_id if message.is_topic_message else None,
            reply_parameters=ReplyParameters(message.message_id, allow_sending_without_reply=True),
            reply_markup=_keyboard(buttons) if number == len(parts) else None,
        )
    return sent


async def _edit(message: Message, html_text: str, buttons: Sequence[tuple[str, str]] = ()) -> None:
    """Replace the text of the bot's ``message``; parts that do not fit go out as new replies to the question."""
    parts = split_html(html_text)
    try:
        await message.edit_text(parts[0], reply_markup=_keyboard(buttons) if len(parts) == 1 else None)
    except BadRequest as exc:
        if "not modified" not in str(exc):
            raise
    if len(parts) > 1:
        asked = message.reply_to_message or message
        await _send(asked, "\n\n".join(parts[1:]), buttons)


@contextlib.asynccontextmanager
async def _typing(bot: Bot, chat_id: int) -> AsyncIterator[None]:
    """Show "typing…" in the chat until the block ends (renewed every few seconds), in the background:
    the block never waits for it."""

    async def keep_typing() -> None:
        while True:
            await _chat_action(bot, chat_id)
            await asyncio.sleep(TYPING_EVERY)

    task = asyncio.create_task(keep_typing())
    try:
        yield
    finally:
        task.cancel()


async def _chat_action(bot: Bot, chat_id: int) -> None:
    """Send one typing indicator, giving up after :data:`TYPING_TIMEOUT` seconds; failures are only logged."""
    try:
        await asyncio.wait_for(
            bot.send_chat_action(chat_id, ChatAction.TYPING, read_timeout=TYPING_TIMEOUT), TYPING_TIMEOUT
        )
    except (TelegramError, asyncio.TimeoutError) as exc:  # the indicator is a nicety; the answer matters
        log.info("typing indicator failed: %s", _describe(exc))


async def _acknowledge(update: Update, text: str | None = None) -> None:
    """Answer a button press (the toast ``text``, or just stop the spinner); a failure is logged, not raised,
    so the press still does its work ("query is too old" after a restart or a slow answer)."""
    query = update.callback_query
    if query is None:
        return
    try:
        await query.answer(text)
    except TelegramError as exc:
        log.info("could not acknowledge a button press (%s); doing its work anyway", exc)


def rate_notice(update: Update) -> Coroutine[Any, Any, Any] | None:
    """Return the one polite notice for a user who sends too fast (a reply, or a button's toast)."""
    if update.callback_query is not None:
        return _acknowledge(update, TOO_FAST)
    if update.effective_message is not None:
        return _send(update.effective_message, html.escape(TOO_FAST))
    return None


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _describe(error: BaseException | None) -> str:
    return f"{type(error).__name__}: {error}" if error else "unknown error"


# --- logging ----------------------------------------------------------------------------------------


class RedactToken(logging.Filter):
    """Replace the bot token wherever it would appear in a log record (httpx logs URLs that hold it)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def redact(self, text: str) -> str:
        """Return ``text`` with the token replaced."""
        return text.replace(self.token, "<TELEGRAM_BOT_TOKEN>")

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message and traceback without the token; keep the record."""
        message = record.getMessage()
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


def protect_token(token: str) -> RedactToken:
    """Keep the token out of every log line: quiet the HTTP client's loggers and filter every handler."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    redactor = RedactToken(token)
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="citebot: %(levelname)s: %(message)s")
    for handler in root.handlers:
        handler.addFilter(redactor)
    return redactor


# --- wiring and running -----------------------------------------------------------------------------


async def _startup(application: Application) -> None:
    """Load the model and the index (after Telegram accepted the token), pick examples, set the menu."""
    state: BotState = application.bot_data["citebot"]
    state.retriever, report = await asyncio.to_thread(open_article, state.article, state.settings.index)
    examples = []
    for candidate in example_candidates(state.article):
        if len(examples) == 3:
            break
        if (await state.ask(candidate)).found:
            examples.append(candidate)
    state.examples = tuple(examples)
    await application.bot.set_my_commands([BotCommand(name, text) for name, text in COMMANDS])
    how = f"webhook at {state.settings.telegram_webhook_url}" if state.settings.telegram_webhook_url else "long polling"
    print(
        f"citebot: @{application.bot.username} answers from “{state.article.label}” "
        f"(index {'built' if report.built else 'reused'}; {how}); Ctrl-C or SIGTERM stops it\n"
        f"citebot: {access_line(state.settings)}",
        file=sys.stderr,
        flush=True,
    )


def access_line(settings: Settings) -> str:
    """Return who may use the bot: everyone, or the N users of ``TELEGRAM_ALLOWED_USERS``."""
    allowed = settings.telegram_allowed_users
    if not allowed:
        return "open to everyone (TELEGRAM_ALLOWED_USERS is not set)"
    return f"only for {len(allowed)} allowed user{'s' if len(allowed) != 1 else ''} (TELEGRAM_ALLOWED_USERS)"


async def _shutdown(application: Application) -> None:
    """Free the thread pool without waiting for it (an answer being worked out takes milliseconds)."""
    state: BotState = application.bot_data["citebot"]
    state.executor.shutdown(wait=False, cancel_futures=True)


async def _check_token(settings: Settings) -> None:
    """Ask the Bot API who the bot is (getMe), so a bad token fails in one line before anything else runs."""
    async with Bot(str(settings.telegram_token), base_url=settings.telegram_api_url):
        pass


def build_application(settings: Settings, article: Article, token: TokenWatch | None = None) -> Application:
    """Return the bot, every handler wired, for ``article``; the model loads when it starts."""
    if not settings.telegram_token:
        raise CitebotError("TELEGRAM_BOT_TOKEN is not set")
    base_url = settings.telegram_api_url
    token = token or TokenWatch(settings.telegram_unauthorized_exit_seconds)
    limit = UserLimit(settings.telegram_user_burst, settings.telegram_user_per_minute)
    scheduler = FairScheduler(settings.telegram_workers, settings.telegram_chat_queue, limit, rate_notice)
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_token)
        .base_url(base_url)
        .defaults(Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True)))
        .rate_limiter(PatientRateLimiter(settings.telegram_delivery_retry_seconds, token))
        .get_updates_request(PollingRequest(token))
        .concurrent_updates(scheduler)
        .post_shutdown(_shutdown)
    )
    if base_url.endswith("/bot"):
        builder = builder.base_file_url(base_url[: -len("bot")] + "file/bot")
    application = builder.build()
    workers = max(1, min(4, os.cpu_count() or 1))
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="citebot-answer")
    application.bot_data["citebot"] = BotState(settings=settings, article=article, executor=executor)

    message = filters.UpdateType.MESSAGE
    application.add_handler(CommandHandler("start", on_start, filters=message))
    application.add_handler(CommandHandler("help", on_help, filters=message))
    application.add_handler(CommandHandler("source", on_source, filters=message))
    application.add_handler(CommandHandler("ask", on_ask, filters=message))
    application.add_handler(MessageHandler(message & filters.COMMAND & filters.ChatType.PRIVATE, on_unknown_command))
    application.add_handler(MessageHandler(message & filters.TEXT & ~filters.COMMAND, on_text))
    application.add_handler(MessageHandler(message & ~filters.TEXT & ~filters.StatusUpdate.ALL, on_not_text))
    application.add_handler(CallbackQueryHandler(on_button))
    application.add_handler(InlineQueryHandler(on_inline))
    application.add_error_handler(on_error)
    return application


def run_bot(settings: Settings, article_path: Path | None = None) -> int:
    """Run the Telegram bot until SIGTERM or Ctrl-C; return the exit code.

    Raises:
        CitebotError: for a missing or rejected token, a bad article, or an unreachable Bot API
            (one line, without the token).
    """
    token = settings.telegram_token
    if not token:
        raise CitebotError(
            "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and put its token "
            "in the environment or in .env (see the README, Telegram)"
        )
    article = read_article(article_path or settings.article)  # fail fast, before any network or model work
    redactor = protect_token(token)
    warnings.filterwarnings("ignore", category=PTBDeprecationWarning)  # about PTB's own API, nothing to act on
    api_url = redactor.redact(settings.telegram_api_url)
    try:
        asyncio.run(_check_token(settings))
    except InvalidToken:
        raise CitebotError(
            f"the Bot API at {api_url} rejected TELEGRAM_BOT_TOKEN; check the token @BotFather gave you"
        ) from None
    except TelegramError as exc:
        raise CitebotError(f"cannot reach the Bot API at {api_url}: {redactor.redact(str(exc))}") from None
    token_watch = TokenWatch(settings.telegram_unauthorized_exit_seconds)
    application = build_application(settings, article, token_watch)
    scheduler = application.update_processor
    assert isinstance(scheduler, FairScheduler)

    async def start() -> None:
        await _startup(application)
        updater = application.updater
        assert updater is not None
        if settings.telegram_webhook_url:
            url = settings.telegram_webhook_url
            await updater.start_webhook(
                listen=settings.telegram_webhook_listen,
                port=settings.telegram_webhook_port,
                url_path=urlsplit(url).path.lstrip("/"),
                webhook_url=url,
                secret_token=settings.telegram_webhook_secret or secrets.token_urlsafe(32),
                allowed_updates=ALLOWED_UPDATES,
            )
        else:
            await updater.start_polling(allowed_updates=ALLOWED_UPDATES, error_callback=PollingErrors())
        await application.start()

    try:
        asyncio.run(serve(application, start, scheduler, token_watch, settings.telegram_shutdown_seconds))
    except TelegramError as exc:
        raise CitebotError(f"the Telegram bot stopped: {redactor.redact(str(exc))}") from None
    return 0
