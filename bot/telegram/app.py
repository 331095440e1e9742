"""The Telegram front end: the same quoted answers as the console, in Telegram (python-telegram-bot).

``citebot telegram`` runs :func:`run_bot`: long polling by default, a webhook
server when ``TELEGRAM_WEBHOOK_URL`` is set. One access gate (:func:`gate`) runs
before every handler; the handlers here ask and page through answers, those of
``bot/telegram/library.py`` choose, add and remove articles; all wiring is in
:func:`add_handlers` and :func:`build_application`. The shared state is the typed
:class:`~bot.telegram.state.BotState`; per-chat state is kept in SQLite
(``bot/telegram/chats.py``). Model work runs in one worker thread; updates are
scheduled fairly across chats and users (``bot/telegram/scheduler.py``); flood
control, outages and a refused token are handled in ``bot/telegram/transport.py``;
start-up and bounded shutdown are in ``bot/telegram/run.py``. The token never
reaches a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import html
import logging
import secrets
import sys
import warnings
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from telegram import Bot, BotCommand, LinkPreviewOptions, Message, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, ChatMigrated, InvalidToken, NetworkError, TelegramError
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

from bot.serve.metrics import Metrics
from bot.serve.probes import ProbeServer, probe_app
from bot.settings import Settings
from bot.telegram import ask, library
from bot.telegram.chats import STATE_FILE, ChatState
from bot.telegram.run import serve
from bot.telegram.scheduler import FairScheduler, UserLimit
from bot.telegram.state import BotState, acknowledge, addressed, bot_state, describe, send
from bot.telegram.texts import COMMANDS, example_candidates
from bot.telegram.transport import PatientRateLimiter, PollingErrors, PollingRequest, TokenWatch, unreachable
from bot.telegram.webhook import Webhook
from index.errors import CitebotError
from index.reading.ingest import read_article
from index.search.engine import EngineError
from index.store.library import Library, check_data_dir

log = logging.getLogger("citebot.telegram")

#: The update types the bot asks Telegram for.
ALLOWED_UPDATES = ["message", "callback_query", "inline_query"]

REFUSAL = "Sorry, this bot is private: it answers only the people it was set up for."
SORRY = "Sorry, something went wrong while answering. Please try again."
#: The reply when the search engine (a Qdrant server) cannot be reached: nothing is lost, asking again later works.
SEARCH_UNAVAILABLE = "Search is unavailable right now. Please ask again in a minute."
TOO_FAST = "You are sending questions faster than I can answer, so I am skipping some. Please wait a minute."
QUEUE_FULL = (
    "Too many messages in this chat are waiting for an answer, so I am skipping new ones until I catch up. "
    "Please ask again in a minute."
)


# --- the access gate ---------------------------------------------------------------------------------


async def gate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Run before every handler: drop what comes from a chat the bot cannot reach; let allowed users through;
    refuse anyone else politely, once, and stop there."""
    state = bot_state(context)
    chat = update.effective_chat
    if chat is not None and not state.reachable(chat.id, _back(update, context)):
        raise ApplicationHandlerStop
    allowed = state.settings.telegram.allowed_users
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
    state.metrics.errors.labels("not_allowed").inc()
    log.info("refused user %s", user.id if user else "?")
    raise ApplicationHandlerStop


def _back(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Return whether ``update`` shows that a chat the bot could not reach is back: the bot added to the group
    again, or /start from a user who unblocked it (what their client sends)."""
    message = update.effective_message
    if message is None:
        return False
    if any(member.id == context.bot.id for member in message.new_chat_members):
        return True
    return message.chat.type == ChatType.PRIVATE and (message.text or "").split("@")[0].strip() == "/start"


async def on_migrate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Carry a group's choice of articles over to the supergroup it was upgraded to (Telegram says so in both)."""
    message = update.effective_message
    if message is not None and message.migrate_to_chat_id:
        bot_state(context).migrate(message.chat_id, message.migrate_to_chat_id)
    elif message is not None and message.migrate_from_chat_id:
        bot_state(context).migrate(message.migrate_from_chat_id, message.chat_id)
    raise ApplicationHandlerStop


def _speaks_to_bot(message: Message, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Return whether a message would get an answer from an allowed user (so a stranger gets the refusal)."""
    if message.new_chat_members or message.left_chat_member or message.pinned_message:
        return False
    return (message.text or "").startswith("/") or addressed(message, context)


# --- errors and floods ------------------------------------------------------------------------------


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log a failed update, then tell the user briefly that it failed (unless Telegram cannot be reached)."""
    error, kind = context.error, error_kind(context.error)
    bot_state(context).metrics.errors.labels(kind).inc()
    chat = update.effective_chat if isinstance(update, Update) else None
    if kind == "chat_unreachable" and chat is not None:
        assert isinstance(error, TelegramError)
        bot_state(context).cannot_reach(chat.id, error)  # one line; an apology could not be delivered either
        return
    if isinstance(error, ChatMigrated):  # answers follow the group (see send); this was an edit of its old messages
        where = chat.id if chat is not None else "?"
        log.warning("handling an update failed: chat %s is now the supergroup %s", where, error.new_chat_id)
        return
    if kind == "telegram_unreachable":
        log.error("handling an update failed: Telegram could not be reached: %s", describe(error))
        return  # the give-up is logged; an apology would wait out the same outage
    apology = SORRY
    if kind == "engine":  # the engine is down or refusing: one line, said to the asker plainly
        log.warning("handling an update failed: %s", error)
        apology = SEARCH_UNAVAILABLE
    else:
        log.error("handling an update failed: %s", describe(error), exc_info=error)
    if not isinstance(update, Update):
        return
    with contextlib.suppress(TelegramError):
        if update.callback_query is not None:
            await update.callback_query.answer(apology)
        elif update.inline_query is not None:
            await update.inline_query.answer([], cache_time=0)
        elif update.effective_message is not None:
            await send(update.effective_message, html.escape(apology))


def error_kind(error: BaseException | None) -> str:
    """Return the kind of failure ``error`` is: how :func:`on_error` handles it, and its ``citebot_errors_total``
    label (``engine``, ``chat_unreachable``, ``telegram_unreachable``, ``telegram`` or ``internal``)."""
    if isinstance(error, EngineError):
        return "engine"
    if isinstance(error, TelegramError) and unreachable(error):
        return "chat_unreachable"
    if isinstance(error, (NetworkError, InvalidToken)) and not isinstance(error, BadRequest):
        return "telegram_unreachable"
    if isinstance(error, TelegramError):
        return "telegram"
    return "internal"


def rate_notice(update: Update) -> Coroutine[Any, Any, Any] | None:
    """Return the one polite notice for a user who sends too fast (a reply, or a button's toast)."""
    if update.callback_query is not None:
        return acknowledge(update, TOO_FAST)
    if update.effective_message is not None:
        return send(update.effective_message, html.escape(TOO_FAST))
    return None


def queue_notice(update: Update) -> Coroutine[Any, Any, Any] | None:
    """Return the one notice for a chat whose queue is full (a reply, or a button's toast; none for inline)."""
    if update.callback_query is not None:
        return acknowledge(update, QUEUE_FULL)
    if update.effective_message is not None and update.inline_query is None:
        return send(update.effective_message, html.escape(QUEUE_FULL))
    return None


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
    from bot.loading import open_searcher, trim_heap

    state.searcher = searcher = await state.search(
        partial(open_searcher, state.settings, article_path, engine_may_be_down=True)
    )
    searcher.embedder.progress = False  # no progress bars in the bot's log when a big article is added
    library = searcher.library
    state.writer = Library(library.directory, library.config) if library.directory is not None else library
    state.examples = await _examples(state)
    await application.bot.set_my_commands([BotCommand(name, text) for name, text in COMMANDS])
    # The model and its libraries leave ~450,000 objects that never die: exempt them from the garbage collector,
    # whose every full pass over them took over a second, and the interpreter's exit 7-36 s (SIGTERM).
    gc.collect()
    gc.freeze()
    trim_heap()  # what loading freed goes back to the OS: the bot's resident memory is what it keeps
    records = await state.records()
    how = f"webhook at {state.settings.telegram.webhook_url}" if state.settings.telegram.webhook_url else "long polling"
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
        try:
            if (await state.ask(candidate, counted=False)).found:
                examples.append(candidate)
        except EngineError:
            return ()  # the engine is down (logged once at start): /help goes without examples
    return tuple(examples)


def access_line(settings: Settings) -> str:
    """Return who may use the bot: everyone, or the N users of ``TELEGRAM_ALLOWED_USERS``; and the admins."""
    allowed = settings.telegram.allowed_users
    admins = len(settings.telegram.admins)
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
    async with Bot(str(settings.telegram.token), base_url=settings.telegram.api_url):
        pass


def file_url(api_url: str) -> str | None:
    """Return the Bot API's file endpoint that pairs with ``api_url`` (``.../bot`` -> ``.../file/bot``)."""
    return api_url[: -len("bot")] + "file/bot" if api_url.endswith("/bot") else None


def add_handlers(application: Application) -> None:
    """Wire everything: a group's upgrade to a supergroup (group -2, whoever did it), the access gate (group -1),
    then the handlers, first match wins."""
    application.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, on_migrate), group=-2)
    application.add_handler(TypeHandler(Update, gate), group=-1)
    message = filters.UpdateType.MESSAGE
    for command, callback in (
        ("start", ask.on_start),
        ("help", ask.on_help),
        ("source", ask.on_source),
        ("ask", ask.on_ask),
        ("articles", library.on_articles),
        ("use", library.on_use),
        ("remove", library.on_remove),
    ):
        application.add_handler(CommandHandler(command, callback, filters=message))
    application.add_handler(MessageHandler(message & filters.Document.ALL, library.on_document))
    application.add_handler(MessageHandler(message & filters.TEXT & filters.Regex(library.URL_ONLY), library.on_url))
    private_command = message & filters.COMMAND & filters.ChatType.PRIVATE
    application.add_handler(MessageHandler(private_command, ask.on_unknown_command))
    application.add_handler(MessageHandler(message & filters.TEXT & ~filters.COMMAND, ask.on_text))
    application.add_handler(MessageHandler(message & ~filters.TEXT & ~filters.StatusUpdate.ALL, ask.on_not_text))
    application.add_handler(CallbackQueryHandler(ask.on_button, pattern=r"^[ncx]:"))
    application.add_handler(CallbackQueryHandler(library.on_library_button, pattern=r"^[up]:"))
    application.add_handler(CallbackQueryHandler(ask.on_stale_button))
    application.add_handler(InlineQueryHandler(ask.on_inline))
    application.add_error_handler(on_error)


def build_application(
    settings: Settings, article_path: Path | None = None, token: TokenWatch | None = None
) -> Application:
    """Return the bot, every handler wired; the model and the library load when it starts."""
    if not settings.telegram.token:
        raise CitebotError("TELEGRAM_BOT_TOKEN is not set")
    base_url = settings.telegram.api_url
    token = token or TokenWatch(settings.telegram.unauthorized_exit_seconds)
    limit = UserLimit(settings.telegram.user_burst, settings.telegram.user_per_minute)
    metrics = Metrics()
    dropped = lambda kind: metrics.errors.labels(kind).inc()  # noqa: E731
    scheduler = FairScheduler(
        settings.telegram.workers, settings.telegram.chat_queue, limit, rate_notice, queue_notice, dropped
    )
    builder = (
        ApplicationBuilder()
        .token(settings.telegram.token)
        .base_url(base_url)
        .defaults(Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True)))
        .rate_limiter(PatientRateLimiter(settings.telegram.delivery_retry_seconds, token))
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
        metrics=metrics,
    )
    application.bot_data["citebot_article"] = article_path
    add_handlers(application)
    return application


def probe_server(state: BotState) -> ProbeServer | None:
    """Return the server of the bot's ``/healthz``, ``/readyz`` and ``/metrics`` (``None`` without
    ``TELEGRAM_METRICS_PORT``)."""
    telegram = state.settings.telegram
    if telegram.metrics_port is None:
        return None
    app = probe_app(state.metrics, state.readiness, state.count_library)
    return ProbeServer(app, telegram.metrics_listen, telegram.metrics_port, "TELEGRAM_METRICS_PORT")


def run_bot(settings: Settings, article_path: Path | None = None) -> int:
    """Run the Telegram bot until SIGTERM or Ctrl-C; return the exit code.

    Raises:
        CitebotError: for a missing or rejected token, a bad article, or an unreachable Bot API
            (one line, without the token).
    """
    token = settings.telegram.token
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
    api_url = redactor.redact(settings.telegram.api_url)
    try:
        asyncio.run(_check_token(settings))
    except InvalidToken:
        raise CitebotError(
            f"the Bot API at {api_url} rejected TELEGRAM_BOT_TOKEN; check the token @BotFather gave you"
        ) from None
    except TelegramError as exc:
        raise CitebotError(f"cannot reach the Bot API at {api_url}: {redactor.redact(str(exc))}") from None
    token_watch = TokenWatch(settings.telegram.unauthorized_exit_seconds)
    application = build_application(settings, path, token_watch)
    scheduler = application.update_processor
    assert isinstance(scheduler, FairScheduler)

    state: BotState = application.bot_data["citebot"]
    probes = probe_server(state)

    async def start() -> None:
        if probes is not None:
            await probes.start()  # /healthz answers at once, /readyz once the library is loaded
        await _startup(application)
        updater = application.updater
        assert updater is not None
        if webhook is not None:
            await application.bot.set_webhook(webhook.url, secret_token=webhook.secret, allowed_updates=ALLOWED_UPDATES)
            await webhook.start()
        else:
            await updater.start_polling(allowed_updates=ALLOWED_UPDATES, error_callback=PollingErrors())
        await application.start()

    telegram = settings.telegram
    webhook = None
    if telegram.webhook_url:
        secret = telegram.webhook_secret or secrets.token_urlsafe(32)
        where = (telegram.webhook_url, telegram.webhook_listen, telegram.webhook_port)
        webhook = Webhook(*where, secret, application.bot, application.update_queue)

    async def run() -> None:
        shutdown = settings.telegram.shutdown_seconds
        try:
            await serve(application, start, scheduler, token_watch, shutdown, webhook, state.stopping.set)
        finally:
            if probes is not None:
                await probes.stop()

    try:
        asyncio.run(run())
    except TelegramError as exc:
        raise CitebotError(f"the Telegram bot stopped: {redactor.redact(str(exc))}") from None
    return 0
