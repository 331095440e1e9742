"""The library from Telegram: /articles and /use (each chat's scope), and, for admins, adding articles by
sending a file or a web address, and /remove.

Rights are checked on every action, buttons included (anyone can forge a button's data): a group's
scope only by its administrators (asked of Telegram each time), adding and removing only by
``TELEGRAM_ADMINS``. Adding runs in its own worker thread, so the bot answers others meanwhile, and
shows its progress by editing one status message.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import os
import re
import stat
from collections.abc import Callable
from functools import partial
from pathlib import Path, PurePath, PurePosixPath
from urllib.parse import quote

import httpx
from telegram import Bot, Message, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot.telegram.buttons import LibraryButton, decode_library_button
from bot.telegram.html import article_html
from bot.telegram.state import BotState, acknowledge, addressed, bot_state, describe, edit, may_change_scope, send
from bot.telegram.texts import ARTICLES_PER_PAGE, articles_page, scope_html
from index.errors import CitebotError, Stopped
from index.reading.article import megabytes
from index.reading.display import safe_line
from index.reading.ingest import SUFFIX_FORMATS, format_of_name, read_at_most
from index.sources import Loaded, add_loaded, error_reason, load, load_upload
from index.store.library import AddResult

log = logging.getLogger("citebot.telegram")

#: The Bot API downloads files of at most this many bytes.
MAX_DOWNLOAD = 20 * 1024 * 1024
#: Seconds to wait for each piece of a download from the Bot API.
DOWNLOAD_SECONDS = 60.0
#: A message that is only a web address.
URL_ONLY = re.compile(r"^\s*(https?://[^\s<>\"]{1,2000})\s*$", re.IGNORECASE)

ADMINS_ONLY = "Sorry, only the bot's admins can add articles. Please send me a text question instead."
REMOVE_ADMINS_ONLY = "Sorry, only the bot's admins can remove articles."
GROUP_ADMINS_ONLY = "Only this group's administrators can change which articles it asks."
USE_USAGE = "Use like this: /use 3 (ask only article 3), /use 3 5, or /use all (the whole library)."
REMOVE_USAGE = "Remove like this: /remove 3 (the id that /articles shows)."
EMPTY = "The library is empty."
UNEXPECTED = "something went wrong on the bot's side (its log has the details)."
SHUTTING_DOWN = "the bot is shutting down, so nothing was stored. Send it again later."
TOO_LARGE = f"it is larger than {megabytes(MAX_DOWNLOAD)}"
NOT_SAVED = (
    "Sorry, I cannot remember which articles this chat asks right now (the bot's chat state cannot be written), "
    "so it asks the whole library. The bot's log says more."
)


# --- /articles and /use ------------------------------------------------------------------------------


async def on_articles(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """List the library, a page at a time, with a button per article to ask only it."""
    message = update.effective_message
    if message is None:
        return
    text, buttons = await _articles(bot_state(context), message.chat_id, 0)
    await send(message, text, buttons)


async def _articles(state: BotState, chat_id: int, page: int) -> tuple[str, list[tuple[str, str]]]:
    """Return page ``page`` of /articles for ``chat_id`` and its buttons."""
    records = await state.records()
    if not records:
        return html.escape(EMPTY), []
    scope = await state.live_scope(chat_id)
    text, page = articles_page(records, page, scope)
    shown = records[page * ARTICLES_PER_PAGE : (page + 1) * ARTICLES_PER_PAGE]
    buttons = [(_label(r.id, r.label), LibraryButton("use", r.id).encode()) for r in shown]
    buttons.append(("All articles", LibraryButton("use", 0).encode()))
    if page > 0:
        buttons.append(("« Previous", LibraryButton("page", page - 1).encode()))
    if (page + 1) * ARTICLES_PER_PAGE < len(records):
        buttons.append(("Next »", LibraryButton("page", page + 1).encode()))
    return text, buttons


def _label(article_id: int, title: str) -> str:
    """Return a button's label for an article: its id and the start of its title."""
    title = " ".join(title.split())
    return f"{article_id}. {title if len(title) <= 40 else title[:39].rstrip() + '…'}"


async def on_use(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/use`` says the chat's scope; ``/use ID...`` narrows it; ``/use all`` widens it to the whole library."""
    message = update.effective_message
    if message is None:
        return
    state = bot_state(context)
    args = context.args or []
    if not args:
        scope = await state.chat_scope(message)
        total = len(await state.records())
        await send(message, scope_html(None if scope is None else await state.records(scope), total))
        return
    wanted: tuple[int, ...] | None
    if [a.lower() for a in args] == ["all"]:
        wanted = None
    elif all(a.isdigit() and len(a) <= 9 for a in args):
        wanted = tuple(dict.fromkeys(int(a) for a in args))
    else:
        await send(message, html.escape(USE_USAGE))
        return
    if not await may_change_scope(update, context):
        await send(message, html.escape(GROUP_ADMINS_ONLY))
        return
    await send(message, await _set_scope(state, message.chat_id, wanted))


async def _set_scope(state: BotState, chat_id: int, wanted: tuple[int, ...] | None) -> str:
    """Set the chat's scope to ``wanted`` (``None``: everything); return what to say (or why it was not set)."""
    total = len(await state.records())
    if wanted is None:
        state.chats.set_scope(chat_id, None)  # not saved: the chat asks the whole library anyway
        return scope_html(None, total)
    found = await state.records(wanted)
    missing = sorted(set(wanted) - {r.id for r in found})
    if missing:
        have = ", ".join(str(r.id) for r in await state.records()) or "none"
        return html.escape(f"No article with id {', '.join(map(str, missing))} in the library (ids: {have}).")
    if not state.chats.set_scope(chat_id, tuple(r.id for r in found)):
        return html.escape(NOT_SAVED)
    return scope_html(found, total)


async def on_library_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Handle the buttons of /articles: ask only one article, the whole library, or another page."""
    query = update.callback_query
    button = decode_library_button(query.data if query else None)
    message = query.message if query is not None and isinstance(query.message, Message) else None
    if button is None or message is None:
        await acknowledge(update, "This button no longer works. Please send /articles again.")
        return
    state = bot_state(context)
    if button.kind == "page":
        await acknowledge(update)
        text, buttons = await _articles(state, message.chat_id, button.value)
        await edit(message, text, buttons)
        return
    if not await may_change_scope(update, context):
        await acknowledge(update, GROUP_ADMINS_ONLY)
        return
    said = await _set_scope(state, message.chat_id, None if button.value == 0 else (button.value,))
    await acknowledge(update)
    await send(message, said)


# --- adding and removing (admins) --------------------------------------------------------------------


async def on_remove(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/remove ID...`` takes articles out of the library (admins only)."""
    message = update.effective_message
    user = update.effective_user
    if message is None:
        return
    state = bot_state(context)
    if not state.is_admin(user.id if user else None):
        await send(message, html.escape(REMOVE_ADMINS_ONLY))
        return
    args = context.args or []
    if not args or not all(a.isdigit() and len(a) <= 9 for a in args):
        await send(message, html.escape(REMOVE_USAGE))
        return
    writer = state.writer
    assert writer is not None
    try:
        job = partial(writer.remove, [int(a) for a in args])
        gone = await asyncio.get_running_loop().run_in_executor(state.adding, job)
    except CitebotError as exc:
        await send(message, html.escape(_sentence(str(exc))))
        return
    await send(message, "\n".join(f"Removed {r.id}. {article_html(r)}" for r in gone))


async def on_document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Add a sent file (.txt, .md, .html, .pdf, at most 20 MB) to the library (admins only).

    An upload is known by Telegram's ``file_unique_id``, not its name: two different files both called
    ``news.txt`` are two articles; the same file sent twice is one.
    """
    message = update.effective_message
    user = update.effective_user
    if message is None or message.document is None or not addressed(message, context):
        return
    state = bot_state(context)
    if not state.is_admin(user.id if user else None):
        await send(message, html.escape(ADMINS_ONLY))
        return
    document = message.document
    name = PurePath(document.file_name or "article.txt").name or "article.txt"
    shown = safe_line(name)
    if format_of_name(name) is None:
        kinds = " ".join(SUFFIX_FORMATS)
        await send(message, html.escape(f"I can add text, Markdown, HTML or PDF files ({kinds}), not {shown}."))
        return
    if document.file_size is not None and document.file_size > MAX_DOWNLOAD:
        cap = megabytes(MAX_DOWNLOAD)
        await send(message, html.escape(f"{shown} is more than {cap}; Telegram lets bots download at most {cap}."))
        return
    status = await send(message, f"Downloading {html.escape(shown)}…")
    if status is None:
        return
    try:
        file = await context.bot.get_file(document.file_id)
        data = await download(context.bot, file.file_path, state.settings.telegram.local_files_dir)
    except CitebotError as exc:
        state.metrics.fetches_refused.inc()
        await _outcome(status, html.escape(f"Not added: could not download {shown}: {_sentence(str(exc))}"))
        return
    except TelegramError as exc:
        state.metrics.fetches_refused.inc()
        await _outcome(status, html.escape(f"Not added: could not download {shown} ({exc})."))
        return
    except Exception as exc:  # never leave the status message on "Downloading…"
        log.error("downloading %s failed: %s", shown, describe(exc), exc_info=exc)
        await _outcome(status, html.escape(f"Not added: could not download {shown}; {UNEXPECTED}"))
        return
    await _progress(status, f"Reading {html.escape(shown)}…")
    source = f"telegram:{document.file_unique_id}/{name}"
    await _add(state, status, shown, partial(load_upload, data, name, source), (name, source))


async def download(bot: Bot, file_path: str | None, local_dir: Path | None) -> bytes:
    """Return the bytes of the file Telegram's getFile named ``file_path``: over HTTP from the Bot API's file
    endpoint; a path on the disk only from under ``local_dir`` (``TELEGRAM_LOCAL_FILES_DIR``, a local Bot API
    server), never from anywhere else.

    Raises:
        CitebotError: when the path is missing or not allowed, or the download fails (one line, no token).
    """
    if not file_path:
        raise CitebotError("Telegram gave no path to download it from")
    endpoint = f"{bot.base_file_url}/"
    if file_path.startswith(endpoint):  # python-telegram-bot put its file URL before the path getFile gave
        file_path = file_path[len(endpoint) :]
    path = PurePosixPath(file_path)
    if path.is_absolute():
        if local_dir is None:
            raise CitebotError(
                "the Bot API named a file on its own disk, which this bot reads only when it is set up for a local "
                "Bot API server (TELEGRAM_LOCAL_FILES_DIR)"
            )
        return await asyncio.to_thread(_read_local, Path(file_path), local_dir)
    if ".." in path.parts or "\\" in file_path:
        raise CitebotError("the Bot API gave a file path that leaves its file directory")
    return await _fetch_capped(f"{bot.base_file_url}/{quote(file_path)}")


async def _fetch_capped(url: str) -> bytes:
    """Return the body at ``url`` (the Bot API's file endpoint, the token in it: never shown), streamed and
    refused as soon as it passes :data:`MAX_DOWNLOAD` bytes, whatever the file was said to hold.

    Raises:
        CitebotError: for an HTTP error, a failed download or a body over the cap (one line, no URL).
    """
    chunks: list[bytes] = []
    total = 0
    timeout = httpx.Timeout(DOWNLOAD_SECONDS)
    try:
        async with (
            httpx.AsyncClient(timeout=timeout, headers={"Accept-Encoding": "identity"}) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise CitebotError(f"the Bot API answered HTTP {response.status_code}")
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > MAX_DOWNLOAD:
                raise CitebotError(TOO_LARGE)
            async for chunk in response.aiter_raw():
                total += len(chunk)
                if total > MAX_DOWNLOAD:
                    raise CitebotError(TOO_LARGE)
                chunks.append(chunk)
    except httpx.HTTPError as exc:  # its message may hold the URL, and so the token
        raise CitebotError(f"the download failed ({type(exc).__name__})") from None
    return b"".join(chunks)


def _read_local(path: Path, local_dir: Path) -> bytes:
    """Return the bytes of ``path`` if it is a regular file under ``local_dir`` (links resolved), of at most 20 MB.

    Runs off the event loop. The file is opened without blocking (a named pipe cannot hold the bot), checked by
    the descriptor opened (not the path, which may change meanwhile), and read no further than the cap.
    """
    real = path.resolve()
    if not real.is_relative_to(local_dir.resolve()):
        raise CitebotError("the Bot API named a file outside TELEGRAM_LOCAL_FILES_DIR")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW | os.O_CLOEXEC
    unreadable = "the local Bot API server's file cannot be read ({})"
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise CitebotError(unreadable.format(exc.strerror)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CitebotError("it is not a regular file")
        with open(fd, "rb", buffering=0, closefd=False) as handle:
            data = read_at_most(handle, MAX_DOWNLOAD)
    except OSError as exc:
        raise CitebotError(unreadable.format(exc.strerror)) from None
    finally:
        os.close(fd)
    if len(data) > MAX_DOWNLOAD:
        raise CitebotError(TOO_LARGE)
    return data


async def on_url(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Add the web page a message names (admins only); anyone else gets a polite no and nothing is fetched."""
    message = update.effective_message
    user = update.effective_user
    if message is None or not addressed(message, context):
        return
    state = bot_state(context)
    if not state.is_admin(user.id if user else None):
        await send(message, html.escape(ADMINS_ONLY))
        return
    match = URL_ONLY.match(message.text or "")
    if match is None:
        return
    url = match.group(1)
    shown = safe_line(url)
    status = await send(message, f"Fetching {html.escape(shown)}…")
    if status is not None:
        await _add(state, status, shown, partial(load, url, state.settings.fetch), (url,))


async def _add(
    state: BotState, status: Message, shown: str, read: Callable[[], Loaded], sources: tuple[str, ...]
) -> None:
    """Read an article with ``read`` (:func:`index.sources.load` or :func:`~index.sources.load_upload`, as every
    front end does) and add it, off the event loop, editing ``status`` as it goes; whatever happens, ``status``
    ends with the outcome. ``shown`` names it in messages, instead of any of ``sources`` an error names.

    A shutdown stops the addition at its next safe point (nothing of it stored), and ``status`` says so.
    """
    loop = asyncio.get_running_loop()
    loaded: Loaded | None = None
    try:
        loaded = await loop.run_in_executor(state.adding, read)
        count, label = len(loaded.article.paragraphs), html.escape(safe_line(loaded.article.label))
        await _progress(status, f"Indexing “{label}” ({count} paragraph{'s' if count != 1 else ''})…")
        writer, searcher = state.writer, state.ready
        assert writer is not None
        job = partial(add_loaded, writer, searcher.embedder, loaded, should_stop=state.stopping.is_set)
        result: AddResult = await loop.run_in_executor(state.adding, job)
    except Stopped:
        log.warning("shutting down: stopped adding %s; nothing of it was stored", shown)
        await _outcome(status, html.escape(f"Not added: {shown}: {SHUTTING_DOWN}"))
        return
    except CitebotError as exc:
        if loaded is None:  # the URL or the file was refused (not the indexing)
            state.metrics.fetches_refused.inc()
        reason = safe_line(error_reason(exc, *sources), limit=None)
        await _outcome(status, html.escape(f"Not added: {shown}: {_sentence(reason)}"))
        return
    except Exception as exc:  # a bug or a failing disk: said in the status message, the details in the log
        log.error("adding %s failed: %s", shown, describe(exc), exc_info=exc)
        await _outcome(status, html.escape(f"Not added: {shown}: {UNEXPECTED}"))
        return
    record = result.record
    what = {
        "added": "Added",
        "replaced": "Replaced the earlier version of",
        "unchanged": "Already in the library:",
    }[result.status]
    count = record.paragraphs
    await _outcome(
        status,
        f"{what} {record.id}. {article_html(record)}: {count} paragraph{'s' if count != 1 else ''}.\n"
        f"Ask away, or /use {record.id} to ask only it.",
    )
    log.info("added article %s from %s (%s)", record.id, shown, result.status)


async def _progress(status: Message, html_text: str) -> None:
    """Show a step of adding in ``status``; a failure is only logged (the outcome still comes)."""
    try:
        await edit(status, html_text)
    except TelegramError as exc:
        log.info("could not show progress in the status message: %s", describe(exc))


async def _outcome(status: Message, html_text: str) -> None:
    """Put the outcome of adding in ``status``; when Telegram refuses the edit, send it as a new reply instead."""
    try:
        await edit(status, html_text)
        return
    except BadRequest as exc:
        log.info("could not edit the status message (%s); sending the outcome instead", describe(exc))
    except TelegramError as exc:
        log.error("could not report the outcome of adding: %s", describe(exc))
        return
    with contextlib.suppress(TelegramError):
        await send(status.reply_to_message or status, html_text)


def _sentence(text: str) -> str:
    """Return ``text`` as a sentence: capitalised, ending with a full stop."""
    text = text.strip()
    return (text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")) if text else text
