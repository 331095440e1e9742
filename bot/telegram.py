"""The Telegram front end: the same quoted answers as the console, in Telegram (python-telegram-bot).

``citebot telegram`` runs :func:`run_bot`: long polling by default, a webhook
server when ``TELEGRAM_WEBHOOK_URL`` is set. One access gate (:func:`gate`) runs
before every handler; the handlers here ask and page through answers, those of
``bot/telegram_library.py`` choose, add and remove articles; all wiring is in
:func:`add_handlers` and :func:`build_application`. The shared state is the typed
:class:`~bot.telegram_state.BotState`; per-chat state is kept in SQLite
(``bot/chat_state.py``). Model work runs in one worker thread; updates are
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
import secrets
import sys
import warnings
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from telegram import (
    Bot,
    BotCommand,
    InlineQueryResultArticle,
    InputTextMessageContent,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.warnings import PTBDeprecationWarning

from bot import telegram_library
from bot.chat_state import STATE_FILE, AnswerContext, ChatState
from bot.settings import Settings
from bot.telegram_followup import expand_follow_up
from bot.telegram_format import (
    COMMANDS,
    Button,
    answer_buttons,
    answer_html,
    closest_buttons,
    context_html,
    decode_button,
    example_candidates,
    greeting_html,
    help_html,
    inline_html,
    question_text,
    short,
    source_html,
)
from bot.telegram_run import serve
from bot.telegram_scheduler import FairScheduler, UserLimit
from bot.telegram_state import BotState, acknowledge, addressed, bot_state, edit, send
from bot.telegram_transport import PatientRateLimiter, PollingErrors, PollingRequest, TokenWatch
from index.answer import ArticleRef, Passage, clean_question, not_found
from index.errors import CitebotError, QuestionError
from index.ingest import read_article
from index.library import ArticleData, Library, check_data_dir

log = logging.getLogger("citebot.telegram")

#: The update types the bot asks Telegram for.
ALLOWED_UPDATES = ["message", "callback_query", "inline_query"]
#: How often the typing indicator is renewed while an answer is being worked out (it lasts 5 s).
TYPING_EVERY = 4.0
#: How long one typing indicator may take before it is abandoned (it never holds up the answer).
TYPING_TIMEOUT = 2.0
#: Quotes offered in inline mode.
INLINE_RESULTS = 5
#: Articles /source describes at most.
SOURCE_ARTICLES = 5

REFUSAL = "Sorry, this bot is private: it answers only the people it was set up for."
NOT_TEXT = "Please send me a text question; I can only read text."
SORRY = "Sorry, something went wrong while answering. Please try again."
STALE = "This button no longer works. Please ask the question again."
OUTDATED = "This button belongs to an older version of the article. Please ask the question again."
REMOVED = "The article of this button is no longer in the library. Please ask the question again."
FOLLOW_UP_GONE = (
    "The article that answer came from is no longer in the library, so I cannot ask it a follow-up. "
    "Please ask your question again without replying."
)
NO_QUESTION = "I can no longer see the question this button belongs to. Please ask it again."
NO_MORE = "No more matches."
ASK_USAGE = "Ask like this: /ask Which roads meet at the town?"
UNKNOWN_COMMAND = "I don't know that command. /help lists what I can do."
TOO_FAST = "You are sending questions faster than I can answer, so I am skipping some. Please wait a minute."


# --- the access gate ---------------------------------------------------------------------------------


async def gate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Run before every handler: let allowed users through; refuse anyone else politely, once, and stop there."""
    state = bot_state(context)
    allowed = state.settings.telegram_allowed_users
    user = update.effective_user
    if not allowed or (user is not None and user.id in allowed):
        return
    message = update.effective_message
    # A button press, an inline query or a message meant for the bot earns the one refusal; group chatter does not.
    meant = update.callback_query is not None or message is None or _speaks_to_bot(message, context)
    first = meant and user is not None and user.id not in state.refused
    if first and user is not None:
        state.refused.add(user.id)
    if update.callback_query is not None:
        await acknowledge(update, REFUSAL if first else None)
    elif update.inline_query is not None:
        with contextlib.suppress(TelegramError):
            await update.inline_query.answer([], cache_time=0, is_personal=True)
    elif first and message is not None:
        await send(message, html.escape(REFUSAL))
    log.info("refused user %s", user.id if user else "?")
    raise ApplicationHandlerStop


def _speaks_to_bot(message: Message, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Return whether a message would get an answer from an allowed user (so a stranger gets the refusal)."""
    if message.new_chat_members or message.left_chat_member or message.pinned_message:
        return False
    return (message.text or "").startswith("/") or addressed(message, context)


# --- asking ------------------------------------------------------------------------------------------


async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Greet the user, name the articles this chat asks and suggest example questions."""
    message = update.effective_message
    if message is None:
        return
    state = bot_state(context)
    scope = await state.live_scope(message.chat_id)
    records = await state.records(scope)
    await send(message, greeting_html(records, state.examples if scope is None else ()))


async def on_help(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Say what the bot does, how to ask and which commands it has (and, to an admin, how to add articles)."""
    message = update.effective_message
    if message is None:
        return
    user = update.effective_user
    await send(message, help_html(context.bot.username, bot_state(context).is_admin(user.id if user else None)))


async def on_source(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Describe the articles this chat asks: title, date, size and where each came from."""
    message = update.effective_message
    if message is None:
        return
    state = bot_state(context)
    records = await state.records(await state.live_scope(message.chat_id))
    parts = [source_html(r) for r in records[:SOURCE_ARTICLES]]
    if len(records) > SOURCE_ARTICLES:
        parts.append(f"…and {len(records) - SOURCE_ARTICLES} more: /articles lists them all.")
    await send(message, "\n\n".join(parts) or "The library is empty.")


async def on_ask(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer the question after /ask, the way to ask in a group."""
    message = update.effective_message
    if message is None:
        return
    question = question_text(message.text or "", context.bot.username)
    if not question:
        await send(message, html.escape(ASK_USAGE))
        return
    await answer_question(message, context, question)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer a text message: any in a private chat; in a group, only a mention of the bot or a reply to it."""
    message = update.effective_message
    if message is None or not addressed(message, context):
        return
    await answer_question(message, context, question_text(message.text or "", context.bot.username))


async def on_not_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Ask for a text question when sent a sticker, photo or voice message."""
    message = update.effective_message
    if message is None or not addressed(message, context):
        return
    await send(message, html.escape(NOT_TEXT))


async def on_unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Point to /help after a command the bot does not have (private chats only)."""
    message = update.effective_message
    if message is not None:
        await send(message, html.escape(UNKNOWN_COMMAND))


async def answer_question(message: Message, context: ContextTypes.DEFAULT_TYPE, question: str) -> None:
    """Answer ``question``, asked in ``message``: the best passage with buttons, or "does not answer".

    A reply to one of the bot's answers asks within that answer's article, read with its question.
    """
    state = bot_state(context)
    try:
        question = clean_question(question)
    except QuestionError as exc:
        reason = str(exc)
        await send(message, html.escape(reason[:1].upper() + reason[1:] + "."))
        return
    scope = await state.live_scope(message.chat_id)
    earlier = _replied_answer(message, context, state)
    if earlier is not None:
        scope = (earlier.article,) if earlier.article else earlier.scope
        if scope is not None and not await state.records(scope):
            await send(message, html.escape(FOLLOW_UP_GONE))
            return
        question = expand_follow_up(question, earlier.question)
    async with _typing(context.bot, message.chat_id):
        result = await state.ask(question, scope=scope)
    passage = result.passages[0] if result.passages else None
    if result.found and passage is not None:
        sent = await send(message, answer_html(passage, found=True), answer_buttons(passage))
    else:
        sent = await send(message, html.escape(result.not_found), closest_buttons(passage))
    if sent is not None and passage is not None:
        ref = passage.article
        about = AnswerContext(result.question, ref.id if result.found else 0, ref.fingerprint, scope)
        state.chats.remember(message.chat_id, sent.message_id, about)


def _replied_answer(message: Message, context: ContextTypes.DEFAULT_TYPE, state: BotState) -> AnswerContext | None:
    """Return what the bot's answer that ``message`` replies to was about, or ``None``."""
    replied = message.reply_to_message
    if replied is None or replied.from_user is None or replied.from_user.id != context.bot.id:
        return None
    return state.chats.recall(message.chat_id, replied.message_id)


# --- answer buttons ----------------------------------------------------------------------------------


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Handle More context, Next match and Show closest passage, from the button's data and the chat state."""
    query = update.callback_query
    if query is None:
        return
    state = bot_state(context)
    button = decode_button(query.data)
    message = query.message if isinstance(query.message, Message) else None
    if button is None or message is None:
        await acknowledge(update, STALE)
        return
    data = await state.article(button.article)
    if data is None:
        await acknowledge(update, REMOVED)
        return
    if short(data.record.fingerprint) != button.fingerprint:
        await acknowledge(update, OUTDATED)
        return
    if button.kind == "next":
        await _show_next(update, message, context, button)
        return
    passage = _stored_passage(data, button)
    if passage is None:
        await acknowledge(update, STALE)
        return
    await acknowledge(update)
    if button.kind == "context":
        await send(message, context_html(data.to_article(), passage.paragraph, passage.highlight))
    else:
        earlier = state.chats.recall(message.chat_id, message.message_id)
        searched = len(earlier.scope) if earlier is not None and earlier.scope else len(await state.records())
        await edit(message, answer_html(passage, found=False, not_found=not_found(searched)), answer_buttons(passage))


async def on_stale_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer a press whose data is not one of the bot's buttons."""
    await acknowledge(update, STALE)


async def _show_next(update: Update, message: Message, context: ContextTypes.DEFAULT_TYPE, button: Button) -> None:
    """Edit an answer to show the passage at ``button.rank`` for the question it answers."""
    state = bot_state(context)
    earlier = state.chats.recall(message.chat_id, message.message_id)
    if earlier is not None:
        question, scope = earlier.question, earlier.scope
    else:
        asked = message.reply_to_message
        question = question_text(asked.text or "", context.bot.username) if asked is not None else ""
        scope = await state.live_scope(message.chat_id)
    if not question:
        await acknowledge(update, NO_QUESTION)
        return
    try:
        result = await state.ask(question, k=button.rank + 1, scope=scope)
    except QuestionError:
        await acknowledge(update, NO_QUESTION)
        return
    if len(result.passages) <= button.rank:
        await acknowledge(update, NO_MORE)
        return
    passage = result.passages[button.rank]
    await acknowledge(update)
    html_text = answer_html(passage, found=result.found, rank=button.rank, not_found=result.not_found)
    await edit(message, html_text, answer_buttons(passage, button.rank))


def _stored_passage(data: ArticleData, button: Button) -> Passage | None:
    """Return the passage a ``context`` or ``closest`` button points at, or ``None`` if it is out of range."""
    total = len(data.paragraphs)
    if not 1 <= button.paragraph <= total:
        return None
    start, end = data.paragraphs[button.paragraph - 1]
    text = data.text[start:end]
    highlight = button.highlight if button.end <= len(text) else ()
    page = data.pages[button.paragraph - 1] if data.pages else None
    return Passage(text, button.paragraph, total, 0.0, highlight, start, end, ArticleRef.of(data.record), page)


# --- inline mode and errors --------------------------------------------------------------------------


async def on_inline(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Offer the top quotes for an inline query (``@bot question`` in any chat), each naming its article."""
    query = update.inline_query
    if query is None:
        return
    state = bot_state(context)
    personal = bool(state.settings.telegram_allowed_users)
    try:
        question = clean_question(query.query)
    except QuestionError:
        await query.answer([], cache_time=0, is_personal=personal)
        return
    result = await state.ask(question, k=INLINE_RESULTS)
    results = []
    if result.found:
        for passage in result.passages:
            ref = passage.article
            results.append(
                InlineQueryResultArticle(
                    id=f"{ref.id}-{short(ref.fingerprint)}-{passage.paragraph}",
                    title=_shorten(passage.sentence or passage.text, 120),
                    description=_shorten(f"{ref.label} · {passage.position}", 200),
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
            await send(update.effective_message, html.escape(SORRY))


# --- what the handlers share ------------------------------------------------------------------------


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


def rate_notice(update: Update) -> Coroutine[Any, Any, Any] | None:
    """Return the one polite notice for a user who sends too fast (a reply, or a button's toast)."""
    if update.callback_query is not None:
        return acknowledge(update, TOO_FAST)
    if update.effective_message is not None:
        return send(update.effective_message, html.escape(TOO_FAST))
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
    """Load the model and the library (after Telegram accepted the token), pick examples, set the menu."""
    state: BotState = application.bot_data["citebot"]
    article_path: Path | None = application.bot_data["citebot_article"]
    from bot.loading import open_searcher

    state.searcher = searcher = await state.search(partial(open_searcher, state.settings, article_path))
    library = searcher.library
    state.writer = Library(library.directory, library.config) if library.directory is not None else library
    state.examples = await _examples(state)
    await application.bot.set_my_commands([BotCommand(name, text) for name, text in COMMANDS])
    records = await state.records()
    how = f"webhook at {state.settings.telegram_webhook_url}" if state.settings.telegram_webhook_url else "long polling"
    what = f"“{records[0].label}”" if len(records) == 1 else f"a library of {len(records)} articles"
    print(
        f"citebot: @{application.bot.username} answers from {what} in {library.directory} ({how}); "
        "Ctrl-C or SIGTERM stops it\n"
        f"citebot: {access_line(state.settings)}",
        file=sys.stderr,
        flush=True,
    )


async def _examples(state: BotState) -> tuple[str, ...]:
    """Return up to three questions about the library's largest article that it really answers."""
    records = await state.records()
    if not records:
        return ()
    largest = max(records, key=lambda r: r.paragraphs)
    data = await state.article(largest.id)
    if data is None:
        return ()
    examples: list[str] = []
    for candidate in example_candidates(data.to_article()):
        if len(examples) == 3:
            break
        if (await state.ask(candidate)).found:
            examples.append(candidate)
    return tuple(examples)


def access_line(settings: Settings) -> str:
    """Return who may use the bot: everyone, or the N users of ``TELEGRAM_ALLOWED_USERS``; and the admins."""
    allowed = settings.telegram_allowed_users
    admins = len(settings.telegram_admins)
    who = (
        "open to everyone (TELEGRAM_ALLOWED_USERS is not set)"
        if not allowed
        else f"only for {len(allowed)} allowed user{'s' if len(allowed) != 1 else ''} (TELEGRAM_ALLOWED_USERS)"
    )
    return f"{who}; {admins} admin{'s' if admins != 1 else ''} may add articles (TELEGRAM_ADMINS)"


async def _shutdown(application: Application) -> None:
    """Free the worker threads without waiting for them, and close the chat state."""
    state: BotState = application.bot_data["citebot"]
    state.searching.shutdown(wait=False, cancel_futures=True)
    state.adding.shutdown(wait=False, cancel_futures=True)
    state.chats.close()


async def _check_token(settings: Settings) -> None:
    """Ask the Bot API who the bot is (getMe), so a bad token fails in one line before anything else runs."""
    async with Bot(str(settings.telegram_token), base_url=settings.telegram_api_url):
        pass


def file_url(api_url: str) -> str | None:
    """Return the Bot API's file endpoint that pairs with ``api_url`` (``.../bot`` -> ``.../file/bot``)."""
    return api_url[: -len("bot")] + "file/bot" if api_url.endswith("/bot") else None


def add_handlers(application: Application) -> None:
    """Wire the access gate (before everything) and every handler, area by area."""
    application.add_handler(TypeHandler(Update, gate), group=-1)
    message = filters.UpdateType.MESSAGE
    application.add_handler(CommandHandler("start", on_start, filters=message))
    application.add_handler(CommandHandler("help", on_help, filters=message))
    application.add_handler(CommandHandler("source", on_source, filters=message))
    application.add_handler(CommandHandler("ask", on_ask, filters=message))
    telegram_library.add_handlers(application)
    application.add_handler(MessageHandler(message & filters.COMMAND & filters.ChatType.PRIVATE, on_unknown_command))
    application.add_handler(MessageHandler(message & filters.TEXT & ~filters.COMMAND, on_text))
    application.add_handler(MessageHandler(message & ~filters.TEXT & ~filters.StatusUpdate.ALL, on_not_text))
    application.add_handler(CallbackQueryHandler(on_button, pattern=r"^[ncx]:"))
    application.add_handler(CallbackQueryHandler(on_stale_button))
    application.add_handler(InlineQueryHandler(on_inline))
    application.add_error_handler(on_error)


def build_application(
    settings: Settings, article_path: Path | None = None, token: TokenWatch | None = None
) -> Application:
    """Return the bot, every handler wired; the model and the library load when it starts."""
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
    files = file_url(base_url)
    if files is not None:
        builder = builder.base_file_url(files)
    application = builder.build()
    chats = ChatState(check_data_dir(settings.index.data_dir) / STATE_FILE)
    application.bot_data["citebot"] = BotState(
        settings=settings,
        searching=ThreadPoolExecutor(max_workers=1, thread_name_prefix="citebot-search"),
        adding=ThreadPoolExecutor(max_workers=1, thread_name_prefix="citebot-add"),
        chats=chats,
    )
    application.bot_data["citebot_article"] = article_path
    add_handlers(application)
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
    path = article_path or settings.article
    if path is not None:
        read_article(path)  # fail fast, before any network or model work
    check_data_dir(settings.index.data_dir)
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
    application = build_application(settings, path, token_watch)
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
