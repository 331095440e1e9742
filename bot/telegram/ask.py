"""Asking in Telegram: questions (private chats, mentions, replies, /ask), follow-ups by reply, the answer
buttons (More context, Next match, Show closest passage), inline mode, and /start, /help, /source.

Each answer names its article; what it was about (question, article, scope) is kept in the chat state so a
reply to it asks within its article and Next match pages through the same search.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import html
import logging
from collections.abc import AsyncIterator

from telegram import Bot, InlineQueryResultArticle, InputTextMessageContent, Message, Update
from telegram.constants import ChatAction, ParseMode
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.telegram.buttons import Button, answer_buttons, closest_buttons, decode_button, short
from bot.telegram.chats import AnswerContext
from bot.telegram.followup import expand_follow_up
from bot.telegram.html import answer_html, context_html, inline_html, question_text, uncertain_html
from bot.telegram.state import BotState, acknowledge, addressed, bot_state, describe, edit, send, send_all
from bot.telegram.texts import greeting_html, help_html, source_html
from index.answer import ArticleRef, Passage, clean_question, not_found
from index.errors import QuestionError
from index.search.library_index import ArticleData

log = logging.getLogger("citebot.telegram")

#: How often the typing indicator is renewed while an answer is being worked out (it lasts 5 s).
TYPING_EVERY = 4.0
#: How long one typing indicator may take before it is abandoned (it never holds up the answer).
TYPING_TIMEOUT = 2.0
#: Quotes offered in inline mode.
INLINE_RESULTS = 5
#: Articles /source describes at most.
SOURCE_ARTICLES = 5

NOT_TEXT = "Please send me a text question; I can only read text."
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


# --- asking ------------------------------------------------------------------------------------------


async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Greet the user, name the articles this chat asks and suggest example questions."""
    message = update.effective_message
    if message is None:
        return
    state = bot_state(context)
    scope = await state.chat_scope(message)
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
    records = await state.records(await state.chat_scope(message))
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
    scope = await state.chat_scope(message)
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
        sent = await send_all(message, answer_html(passage, found=True), answer_buttons(passage))
    elif result.verdict == "uncertain" and passage is not None:  # shown honestly: the closest passage, as such
        sent = await send_all(message, uncertain_html(passage, result.uncertain), answer_buttons(passage))
    else:
        sent = await send_all(message, html.escape(result.not_found), closest_buttons(passage))
    if sent and passage is not None:
        ref, last = passage.article, sent[-1]
        parts = tuple(m.message_id for m in sent[:-1])
        about = AnswerContext(result.question, ref.id if result.found else 0, ref.fingerprint, scope, parts)
        state.chats.remember(last.chat_id, last.message_id, about)


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
        html_text = answer_html(passage, found=False, not_found=not_found(searched))
        shown = await edit(message, html_text, answer_buttons(passage), earlier=earlier.parts if earlier else ())
        if earlier is not None:
            state.chats.remember(message.chat_id, shown[-1], dataclasses.replace(earlier, parts=tuple(shown[:-1])))


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
        scope = await state.chat_scope(message)
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
    # The whole earlier answer is replaced, every message of it, not only the one under which the button was.
    shown = await edit(
        message, html_text, answer_buttons(passage, button.rank), earlier=earlier.parts if earlier else ()
    )
    about = earlier or AnswerContext(question, 0, "", scope)
    state.chats.remember(message.chat_id, shown[-1], dataclasses.replace(about, parts=tuple(shown[:-1])))


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


# --- inline mode ---------------------------------------------------------------------------------


async def on_inline(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Offer the top quotes for an inline query (``@bot question`` in any chat), each naming its article."""
    query = update.inline_query
    if query is None:
        return
    state = bot_state(context)
    personal = bool(state.settings.telegram.allowed_users)
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


# --- what the handlers share ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _typing(bot: Bot, chat_id: int) -> AsyncIterator[None]:
    """Show "typing…" in the chat until the block ends (renewed every few seconds), in the background:
    the block never waits for it. An indicator already on its way is let finish (at most
    :data:`TYPING_TIMEOUT`), never cut off halfway through its request."""
    done = asyncio.Event()

    async def keep_typing() -> None:
        while not done.is_set():
            await _chat_action(bot, chat_id)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), TYPING_EVERY)

    task = asyncio.create_task(keep_typing())
    _typing_tasks.add(task)
    task.add_done_callback(_typing_tasks.discard)
    try:
        yield
    finally:
        done.set()


#: Typing indicators still finishing (a reference keeps each task alive until it ends).
_typing_tasks: set[asyncio.Task[None]] = set()


async def _chat_action(bot: Bot, chat_id: int) -> None:
    """Send one typing indicator, giving up after :data:`TYPING_TIMEOUT` seconds; failures are only logged."""
    try:
        await asyncio.wait_for(
            bot.send_chat_action(chat_id, ChatAction.TYPING, read_timeout=TYPING_TIMEOUT), TYPING_TIMEOUT
        )
    except (TelegramError, asyncio.TimeoutError) as exc:  # the indicator is a nicety; the answer matters
        log.info("typing indicator failed: %s", describe(exc))


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
