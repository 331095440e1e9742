"""``citebot telegram`` over a library, end to end: admins add a file and a web page from the chat, chats choose
their articles, follow-ups by reply, removal, articles added by ``citebot add`` meanwhile, and a restart.

One bot process serves the module (it is restarted once, in the last test, to check what survives);
the web page comes from a real HTTP server on 127.0.0.1, which only this bot may fetch from
(``CITEBOT_FETCH_ALLOW_PRIVATE=1`` in its environment only). The tests run in order: later ones use the
articles the earlier ones added.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.fake_telegram import TOKEN, BotMessage, FakeTelegram
from tests.support.news_server import DATA, NewsServer, file, page
from tests.support.paths import CITEBOT
from tests.support.telegram_harness import START_TIMEOUT, BotProcess

pytestmark = pytest.mark.slow  # runs the real citebot telegram process

ADMIN = 4242
HARBOUR_TITLE = "Harbour reopens after the storm"
COUNCIL_TITLE = "Council votes to keep Dunmore library open"
ADMINS_ONLY = "Sorry, only the bot's admins can add articles. Please send me a text question instead."
GROUP_ADMINS_ONLY = "Only this group's administrators can change which articles it asks."
REMOVED = "The article of this button is no longer in the library. Please ask the question again."
FOLLOW_UP_GONE = (
    "The article that answer came from is no longer in the library, so I cannot ask it a follow-up. "
    "Please ask your question again without replying."
)
GROUP = -100_777_001
_ids = itertools.count(60_000)


@dataclass
class Library:
    """What the module's tests share: the bot, its data directory, and the articles' ids once added."""

    server: FakeTelegram
    news: NewsServer
    workdir: Path
    data_dir: Path
    process: BotProcess | None = None
    ids: dict[str, int] = field(default_factory=dict)

    def start(self) -> None:
        polls = len(self.server.calls_to("getUpdates"))
        self.process = BotProcess(
            self.server,
            self.workdir,
            self.data_dir,
            TELEGRAM_ADMINS=str(ADMIN),
            CITEBOT_FETCH_ALLOW_PRIVATE="1",
            TELEGRAM_USER_BURST="30",  # the one admin sends many files in a minute here
        ).start()
        started = lambda: len(self.server.calls_to("getUpdates")) > polls  # noqa: E731 - a restart polls anew
        self.server.wait_for(started, START_TIMEOUT, "the bot to poll")

    def stop(self) -> None:
        assert self.process is not None
        assert self.process.terminate() == 0, self.process.stderr
        assert TOKEN not in self.process.stderr


@pytest.fixture(scope="module")
def lib(server: FakeTelegram, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    routes = {"/council": file("council.html"), "/secret": page(b"<html><body><p>Secret.</p></body></html>")}
    with NewsServer(routes) as news:
        workdir = tmp_path_factory.mktemp("telegram-library")
        library = Library(server, news, workdir, workdir / "data")
        library.start()
        yield library
        library.stop()


def _admin(server: FakeTelegram) -> tuple[dict, dict]:
    user = server.user(ADMIN, "Admin")
    return user, server.private_chat(user)


def _person(server: FakeTelegram, name: str = "Ann") -> tuple[dict, dict]:
    user = server.user(next(_ids), name)
    return user, server.private_chat(user)


def _ask(server: FakeTelegram, question: str, person: tuple[dict, dict] | None = None) -> BotMessage:
    user, chat = person or _person(server)
    return server.wait_reply(server.send_text(chat, user, question), timeout=60)[0]


def _finished(server: FakeTelegram, status: BotMessage, timeout: float = 120) -> BotMessage:
    """Wait until the status message of an addition says how it ended."""

    def done() -> BotMessage | None:
        now = server.current(status)
        return now if now.text.startswith(("Added", "Not added", "Already", "Replaced")) else None

    return server.wait_for(done, timeout, "the addition to finish")


def _added_id(message: BotMessage) -> int:
    match = re.match(r"Added (\d+)\. ", message.text)
    assert match, message.text
    return int(match.group(1))


def test_an_admin_adds_a_document_and_anyone_can_ask_about_it(lib: Library, server: FakeTelegram) -> None:
    story = (DATA / "harbour.story.txt").read_text()
    content = f"# {HARBOUR_TITLE}\n\n{story}".encode()
    user, chat = _admin(server)
    sent = server.send_document(chat, user, "harbour.md", content)
    status = server.wait_reply(sent)[0]
    assert status.text == "Downloading harbour.md…"
    done = _finished(server, status)
    assert done.text.startswith(f"Added {_added_id(done)}. “{HARBOUR_TITLE}”: 5 paragraphs.")
    assert len(done.edits) >= 2  # progress shown by editing the one status message
    lib.ids["harbour"] = _added_id(done)
    assert server.calls_to("getFile") and server.downloads == ["documents/file_1.md"]

    reply = _ask(server, "Who is the harbour master?")
    assert "Irene Calloway" in reply.text
    assert f"“{HARBOUR_TITLE}”, paragraph 3 of 5" in reply.text  # the answer names its article


def test_an_admin_adds_a_web_page_and_the_answer_links_to_it(lib: Library, server: FakeTelegram) -> None:
    user, chat = _admin(server)
    url = lib.news.url("/council")
    sent = server.send_text(chat, user, url)
    status = server.wait_reply(sent)[0]
    assert status.text == f"Fetching {url}…"
    done = _finished(server, status)
    assert f"“{COUNCIL_TITLE}”" in done.text
    lib.ids["council"] = _added_id(done)

    reply = _ask(server, "How many residents signed the petition?")
    assert "5,600" in reply.text
    assert f'<a href="{url}">“{COUNCIL_TITLE}”</a>' in reply.html


def test_a_pdf_is_added_and_answers_name_the_page(lib: Library, server: FakeTelegram, tmp_path: Path) -> None:
    from tests.support.pdf_samples import report_pdf

    pdf = report_pdf(tmp_path / "report.pdf").read_bytes()
    user, chat = _admin(server)
    done = _finished(server, server.wait_reply(server.send_document(chat, user, "Water report.pdf", pdf))[0])
    lib.ids["report"] = _added_id(done)
    reply = _ask(server, "How many of the tests met the national standard?")
    assert "18,391" in reply.text and re.search(r"paragraph \d+ of \d+, page 1$", reply.text), reply.text


def test_files_the_bot_cannot_read_are_refused_before_downloading(lib: Library, server: FakeTelegram) -> None:
    user, chat = _admin(server)
    downloads = list(server.downloads)
    big = server.send_document(chat, user, "huge.pdf", b"%PDF-1.4", size=25 * 1024 * 1024)
    assert server.wait_reply(big)[0].text == "huge.pdf is more than 20 MB; Telegram lets bots download at most 20 MB."
    odd = server.send_document(chat, user, "photo <1>.jpg", b"\xff\xd8\xff")
    assert server.wait_reply(odd)[0].text == (
        "I can add text, Markdown, HTML or PDF files (.txt .text .md .markdown .mdown .mkd .html .htm .xhtml .pdf), "
        "not photo <1>.jpg."
    )
    binary = server.send_document(chat, user, "binary.txt", bytes(range(256)) * 40)
    done = _finished(server, server.wait_reply(binary)[0])
    assert done.text.startswith("Not added: ") and "\n" not in done.text
    assert server.downloads == [*downloads, server.downloads[-1]]  # only the one it could read was fetched


def test_the_bot_answers_others_while_a_long_article_is_added(lib: Library, server: FakeTelegram) -> None:
    paragraphs = [
        f"Section {n}. The ferry timetable for route {n} lists {n * 3} sailings a week between the islands, "
        f"and the operator said that fares on route {n} would rise by {n % 7} per cent in the spring. "
        f"Passengers on route {n} complained about delays during the storm season."
        for n in range(1, 400)
    ]
    content = ("# Ferry timetables\n\n" + "\n\n".join(paragraphs)).encode()
    user, chat = _admin(server)
    status = server.wait_reply(server.send_document(chat, user, "ferries.md", content))[0]
    reply = _ask(server, "How many residents signed the petition?")
    adding = server.current(status).text
    assert "5,600" in reply.text
    assert not adding.startswith("Added"), "the addition finished before the answer: make the article longer"
    done = _finished(server, status, timeout=300)
    assert done.text.startswith("Added") and "399 paragraphs" in done.text


def test_others_cannot_add_or_remove_and_nothing_is_fetched(lib: Library, server: FakeTelegram) -> None:
    user, chat = _person(server, "Mallory")
    downloads = list(server.downloads)
    document = server.send_document(chat, user, "evil.txt", b"Evil text that must never be stored.")
    assert [r.text for r in server.wait_reply(document)] == [ADMINS_ONLY]
    link = server.send_text(chat, user, lib.news.url("/secret"))
    assert [r.text for r in server.wait_reply(link)] == [ADMINS_ONLY]
    removal = server.send_text(chat, user, f"/remove {lib.ids['council']}")
    assert [r.text for r in server.wait_reply(removal)] == ["Sorry, only the bot's admins can remove articles."]
    assert server.downloads == downloads and "/secret" not in lib.news.seen.paths()
    assert "5,600" in _ask(server, "How many residents signed the petition?").text  # still there


def test_a_group_scope_is_set_by_its_administrators_only(lib: Library, server: FakeTelegram) -> None:
    group = server.group_chat(GROUP, "Newsroom")
    boss, member = server.user(next(_ids), "Boss"), server.user(next(_ids), "Member")
    server.make_admin(group, boss)
    listing = server.wait_reply(server.send_text(group, boss, "/articles"))[0]
    council = lib.ids["council"]
    assert f"{council}. “{COUNCIL_TITLE}”" in listing.text
    assert f"{lib.ids['harbour']}. “{HARBOUR_TITLE}”" in listing.text
    assert listing.buttons["All articles"] == "u:0"
    assert f"u:{council}" in listing.buttons.values()

    forged = server.press_data(GROUP, listing.message_id, f"u:{lib.ids['harbour']}", member)  # not an administrator
    assert server.wait_for(lambda: server.callback_answers.get(forged), 30)["text"] == GROUP_ADMINS_ONLY
    refused = server.wait_reply(server.send_text(group, member, f"/use {lib.ids['harbour']}"))[0]
    assert refused.text == GROUP_ADMINS_ONLY

    label = next(name for name, data in listing.buttons.items() if data == f"u:{council}")
    server.press(listing, label, boss)
    said = server.wait_for(lambda: server.replies_to(GROUP, listing.message_id), 30, "the new scope")[0]
    assert said.text.startswith(f"This chat asks only: {council} “{COUNCIL_TITLE}”")

    outside = server.wait_reply(server.send_text(group, member, "/ask Who is the harbour master?"))[0]
    assert outside.text == "The article does not answer that."
    inside = server.wait_reply(server.send_text(group, member, "/ask How many residents signed the petition?"))[0]
    assert "5,600" in inside.text
    assert "Irene Calloway" in _ask(server, "Who is the harbour master?").text  # other chats: all


def test_a_follow_up_by_reply_asks_within_that_answers_article(lib: Library, server: FakeTelegram) -> None:
    person = _person(server)
    user, chat = person
    first = _ask(server, "How many residents signed the petition?", person)
    assert COUNCIL_TITLE in first.text
    follow_up = server.send_text(chat, user, "and what about the swimming pool?", reply_to=first.message_id)
    answer = server.wait_reply(follow_up)[0]
    assert "swimming pool" in answer.text and f"“{COUNCIL_TITLE}”" in answer.text

    harbour = _ask(server, "Who is the harbour master?", person)
    again = server.send_text(chat, user, "and what did she say?", reply_to=harbour.message_id)
    said = server.wait_reply(again)[0]
    assert "We had boats queuing out past the lighthouse" in said.text and HARBOUR_TITLE in said.text


def test_an_article_added_with_citebot_add_is_answered_without_a_restart(lib: Library, server: FakeTelegram) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_"))}
    environment.update(CITEBOT_DATA_DIR=str(lib.data_dir), NO_COLOR="1")
    citebot = CITEBOT
    added = subprocess.run(
        [str(citebot), "add", str(DATA / "river.md")], env=environment, capture_output=True, text=True, timeout=300
    )
    assert added.returncode == 0, added.stderr
    reply = _ask(server, "How far did the river at Dunmore rise?")
    assert "two metres" in reply.text and "River levels" in reply.text


def test_a_removed_articles_buttons_and_replies_get_a_polite_answer(lib: Library, server: FakeTelegram) -> None:
    person = _person(server)
    user, chat = person
    answer = _ask(server, "Who is the harbour master?", person)
    assert HARBOUR_TITLE in answer.text
    admin, admin_chat = _admin(server)
    removed = server.wait_reply(server.send_text(admin_chat, admin, f"/remove {lib.ids['harbour']}"))[0]
    assert removed.text == f"Removed {lib.ids['harbour']}. “{HARBOUR_TITLE}”"

    query = server.press(answer, "More context", user)
    assert server.wait_for(lambda: server.callback_answers.get(query), 30)["text"] == REMOVED
    follow_up = server.send_text(chat, user, "and what did she say?", reply_to=answer.message_id)
    assert [r.text for r in server.wait_reply(follow_up)] == [FOLLOW_UP_GONE]
    assert not server.replies_to(chat["id"], answer.message_id)


def test_a_groups_scope_survives_a_restart(lib: Library, server: FakeTelegram) -> None:
    lib.stop()
    lib.start()
    group = server.group_chat(GROUP, "Newsroom")
    member = server.user(next(_ids), "Member")
    said = server.wait_reply(server.send_text(group, member, "/use"))[0]
    assert said.text.startswith(f"This chat asks only: {lib.ids['council']} “{COUNCIL_TITLE}”")
    outside = server.wait_reply(server.send_text(group, member, "/ask How far did the river at Dunmore rise?"))[0]
    assert outside.text == "The article does not answer that."
