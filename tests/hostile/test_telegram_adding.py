"""Adding articles from Telegram, against a hostile Bot API and a bot told to stop: issue 23.

The real ``citebot telegram`` runs against the fake Bot API server (tests/support/fake_telegram.py), with a
local Bot API directory (``TELEGRAM_LOCAL_FILES_DIR``) and web pages from a real HTTP server on 127.0.0.1
(``CITEBOT_FETCH_ALLOW_PRIVATE=1`` in the bot's environment only). It must add what ``citebot add`` adds, the
same way (one article per source, its validators kept); read nothing that could freeze it or outgrow the cap;
show file names, never Telegram's ids or absurd sizes; and keep its shutdown budget while an article is added.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from index.store.library import VECTORS, Library
from tests.support.fake_telegram import TOKEN, BotMessage, FakeTelegram
from tests.support.news_server import DATA, NewsServer, page, redirect
from tests.support.telegram_harness import BotProcess

pytestmark = pytest.mark.slow  # runs the real citebot telegram process

ADMIN = 7373
COUNCIL_TITLE = "Council votes to keep Dunmore library open"
QUESTION = "Who denied the claim?"
ANSWER = "Ankara has denied the claim."
MB = 1024 * 1024
_ids = itertools.count(70_000)


@pytest.fixture(scope="module")
def news() -> Iterator[NewsServer]:
    with NewsServer() as server:
        yield server


@pytest.fixture(scope="module")
def bot(server: FakeTelegram, news: NewsServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    workdir = tmp_path_factory.mktemp("telegram-adding")
    (workdir / "botapi" / "documents").mkdir(parents=True)
    extra = {
        "TELEGRAM_ADMINS": str(ADMIN),
        "TELEGRAM_USER_BURST": "30",
        "TELEGRAM_LOCAL_FILES_DIR": str(workdir / "botapi"),
        "CITEBOT_FETCH_ALLOW_PRIVATE": "1",
    }
    process = BotProcess(server, workdir, workdir / "data", **extra).start()
    yield process
    assert process.terminate() == 0, process.stderr
    assert TOKEN not in process.stderr and "Traceback" not in process.stderr


def _admin(server: FakeTelegram) -> tuple[dict, dict]:
    user = server.user(ADMIN, "Editor")
    return user, server.private_chat(user)


def _finished(server: FakeTelegram, status: BotMessage, timeout: float = 120) -> BotMessage:
    """Wait until the status message of an addition says how it ended."""

    def done() -> BotMessage | None:
        now = server.current(status)
        return now if now.text.startswith(("Added", "Not added", "Already", "Replaced")) else None

    return server.wait_for(done, timeout, "the addition to finish")


def _upload(server: FakeTelegram, name: str, content: bytes, **document: object) -> BotMessage:
    """The admin sends a file; return the status message once it says how the addition ended."""
    user, chat = _admin(server)
    sent = server.send_document(chat, user, name, content, **document)  # type: ignore[arg-type]
    return _finished(server, server.wait_reply(sent)[0])


def _answered(server: FakeTelegram, timeout: float = 20) -> str:
    """Someone else asks a question; return the reply's text (the bot is not frozen)."""
    user = server.user(next(_ids), "Reader")
    return server.wait_reply(server.send_text(server.private_chat(user), user, QUESTION), timeout=timeout)[0].text


def _records(data_dir: Path) -> list:
    library = Library(data_dir, readonly=True)
    try:
        return library.records()
    finally:
        library.close()


# --- one path for every front end -------------------------------------------------------------------------


def test_a_redirected_page_added_by_the_cli_then_changed_and_sent_to_the_bot_is_one_article(
    bot: BotProcess, server: FakeTelegram, news: NewsServer, run_citebot: Callable
) -> None:
    """The bot used to keep the URL after redirects and drop the validators: a second article, no ETag."""
    story = (DATA / "council.html").read_bytes()
    news.routes["/latest"] = redirect("/2024/council-story")
    news.routes["/2024/council-story"] = page(story, ETag='"v1"', **{"Last-Modified": "Mon, 01 Jul 2024 09:00:00 GMT"})
    url = news.url("/latest")
    data_dir = Path(bot.env["CITEBOT_DATA_DIR"])
    added = run_citebot("add", url, env={"CITEBOT_DATA_DIR": str(data_dir), "CITEBOT_FETCH_ALLOW_PRIVATE": "1"})
    assert added.returncode == 0, added.stderr
    (first,) = [r for r in _records(data_dir) if r.title == COUNCIL_TITLE]
    assert first.source == url and first.etag == '"v1"'

    changed = story.replace(b"5,600", b"5,900")
    assert changed != story
    later = "Tue, 02 Jul 2024 09:00:00 GMT"
    news.routes["/2024/council-story"] = page(changed, ETag='"v2"', **{"Last-Modified": later})
    user, chat = _admin(server)
    done = _finished(server, server.wait_reply(server.send_text(chat, user, url))[0])
    assert done.text.startswith(f"Replaced the earlier version of {first.id}. “{COUNCIL_TITLE}”"), done.text
    (now,) = [r for r in _records(data_dir) if r.title == COUNCIL_TITLE]
    assert (now.id, now.source, now.etag, now.last_modified, now.kind) == (first.id, url, '"v2"', later, "html")
    assert now.fingerprint != first.fingerprint


def test_an_upload_is_read_by_the_same_rules_as_a_file(bot: BotProcess, server: FakeTelegram) -> None:
    """Text sent as "scan.pdf" is text, as `citebot add scan.pdf` says: its kind comes from the one rule (the
    bot's own rule went by the name and called it a PDF)."""
    done = _upload(server, "scan.pdf", b"# Ferry strike ends\n\nThe ferry crews ended their strike on Monday.\n")
    assert done.text.startswith("Added "), done.text
    (record,) = [r for r in _records(Path(bot.env["CITEBOT_DATA_DIR"])) if r.source.endswith("/scan.pdf")]
    assert record.source.startswith("telegram:") and record.kind == "text"


# --- status texts -----------------------------------------------------------------------------------------


def test_status_texts_name_the_file_never_telegrams_ids_nor_absurd_sizes(bot: BotProcess, server: FakeTelegram) -> None:
    user, chat = _admin(server)
    absurd = server.send_document(chat, user, "huge.pdf", b"%PDF-1.4", size=2**62)
    said = server.wait_reply(absurd)[0].text
    assert said == "huge.pdf is more than 20 MB; Telegram lets bots download at most 20 MB.", said
    binary = _upload(server, "binary.txt", bytes(range(256)) * 40)
    assert binary.text == "Not added: binary.txt: Looks like a binary file, not text.", binary.text
    tricky = _upload(server, "evil\u202etxt.gnp.txt", bytes(range(256)) * 40)
    assert "\u202e" not in tricky.text and tricky.text.startswith("Not added: evil\ufffdtxt.gnp.txt: "), tricky.text
    for message in server.sent:  # Telegram's ids here are "do<n>" (file_unique_id) and "BQAD-doc<n>" (file_id)
        for text in (message.html, *message.edits):
            assert not re.search(r"\bdo\d+\b|BQAD-|telegram:", text), text


# --- a hostile local Bot API directory and a lying download ---------------------------------------------


def test_a_named_pipe_in_the_local_directory_is_refused_without_freezing_the_bot(
    bot: BotProcess, server: FakeTelegram
) -> None:
    """The bot used to open the pipe on its event loop and wait there for a writer: nobody was answered."""
    pipe = Path(bot.env["TELEGRAM_LOCAL_FILES_DIR"]) / "documents" / "pipe.txt"
    os.mkfifo(pipe)
    try:
        user, chat = _admin(server)
        status = server.wait_reply(server.send_document(chat, user, "pipe.txt", b"x", file_path=str(pipe)))[0]
        assert ANSWER in _answered(server)
        done = _finished(server, status, timeout=20)
        assert done.text == "Not added: could not download pipe.txt: It is not a regular file.", done.text
    finally:  # release a bot stuck opening the pipe (today's code), so that the module can end
        with contextlib.suppress(OSError):  # nobody has it open: the bot did not wait on it
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))


def test_a_download_is_capped_while_it_streams(bot: BotProcess, server: FakeTelegram) -> None:
    """The body was read whole (300 MB for a file claiming 1 kB took RSS from 239 to 908 MB), then refused."""
    user, chat = _admin(server)
    sent = server.send_document(chat, user, "small.txt", b"x" * 1000, flood=100 * MB)
    done = _finished(server, server.wait_reply(sent)[0])
    assert done.text == "Not added: could not download small.txt: It is larger than 20 MB.", done.text
    path = server.files[sent["document"]["file_id"]][0]
    deadline = time.monotonic() + 10  # the server's thread notes the count once its write fails
    while path not in server.streamed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.streamed[path] < 30 * MB, server.streamed[path]  # the cap and what the sockets buffer
    assert ANSWER in _answered(server)


# --- SIGTERM during an addition -----------------------------------------------------------------------------


def test_sigterm_while_an_article_is_embedded_stops_it_within_the_budget_and_says_so(tmp_path: Path) -> None:
    """The bot used to wait for the addition with no limit (a 40,000-paragraph upload: not gone after 90 s), and
    the status message stayed on "Indexing…" although the article was stored meanwhile."""
    paragraphs = [
        f"Section {n}. The ferry timetable for route {n} lists {n * 3} sailings a week between the islands. "
        f"Passengers on route {n} complained about delays during the storm season of year {1900 + n}."
        for n in range(1, 2001)
    ]
    content = ("# Ferry timetables\n\n" + "\n\n".join(paragraphs)).encode()
    budget = 3.0
    with FakeTelegram() as server:
        env = {"TELEGRAM_ADMINS": str(ADMIN), "TELEGRAM_SHUTDOWN_SECONDS": str(budget)}
        process = BotProcess(server, tmp_path, tmp_path / "data", **env).start()
        user, chat = _admin(server)
        status = server.wait_reply(server.send_document(chat, user, "ferries.md", content))[0]
        server.wait_for(lambda: server.current(status).text.startswith("Indexing"), 60, "the embedding to start")
        started = time.monotonic()
        code = process.terminate(timeout=120)
        took = time.monotonic() - started
        said = server.current(status).text
    assert code == 0, process.stderr
    assert took < budget + 4, took  # the budget, and the closing steps' seconds on a loaded machine
    assert said == "Not added: ferries.md: the bot is shutting down, so nothing was stored. Send it again later.", said
    assert "shutting down: stopped adding ferries.md; nothing of it was stored" in process.stderr, process.stderr
    assert "Traceback" not in process.stderr
    records = _records(tmp_path / "data")
    assert [r.title for r in records if r.title == "Ferry timetables"] == []
    stored = {p.name for p in (tmp_path / "data" / VECTORS).iterdir()}
    assert stored == {f"{r.key}.npy" for r in records}  # nothing half-written beside the catalog
