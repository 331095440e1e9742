"""The Telegram bot's per-chat state in SQLite: scopes and the answers follow-ups refer to, kept durably
and bounded."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.telegram.chats import KEEP_ANSWERS, AnswerContext, ChatState
from index.errors import CitebotError


def test_scopes_persist_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    state = ChatState(path)
    assert state.scope(5) is None
    state.set_scope(5, (3, 1, 3))
    state.set_scope(-100, (2,))
    state.set_scope(-100, None)  # back to the whole library
    state.close()
    again = ChatState(path)
    assert again.scope(5) == (1, 3) and again.scope(-100) is None and again.scope(6) is None


def test_answers_are_remembered_per_chat_and_bounded(tmp_path: Path) -> None:
    state = ChatState(tmp_path / "bot.sqlite3")
    for message_id in range(1, KEEP_ANSWERS + 11):
        state.remember(7, message_id, AnswerContext(f"question {message_id}", 2, "ab" * 32, (2, 4)))
    state.remember(8, 1, AnswerContext("other chat", 0, "", None))
    assert state.answers(7) == KEEP_ANSWERS
    assert state.recall(7, 10) is None  # the oldest are forgotten
    assert state.recall(7, KEEP_ANSWERS + 10) == AnswerContext(f"question {KEEP_ANSWERS + 10}", 2, "ab" * 32, (2, 4))
    assert state.recall(8, 1) == AnswerContext("other chat", 0, "", None)
    assert state.recall(9, 1) is None


def test_a_write_killed_midway_loses_only_itself(tmp_path: Path) -> None:
    """kill -9 while another process writes: what was committed before is there, and the file opens."""
    path = tmp_path / "bot.sqlite3"
    ChatState(path).set_scope(1, (4,))
    script = (
        "import sys, os\n"
        "from bot.telegram.chats import ChatState, AnswerContext\n"
        f"s = ChatState({str(path)!r})\n"
        "print('ready', flush=True)\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1\n"
        "    s.remember(2, i, AnswerContext('q', 1, 'f', None))\n"
        "    s.set_scope(3, (i,))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    process.kill()
    process.wait(10)
    state = ChatState(path)
    assert state.scope(1) == (4,)
    assert 0 < state.answers(2) <= KEEP_ANSWERS
    assert state.scope(3) is not None
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_damaged_scope_row_reads_as_no_articles(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    ChatState(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO scope VALUES (1, 'not json'), (2, '{\"a\": 1}'), (3, '[1, \"x\", 2]')")
    state = ChatState(path)
    assert state.scope(1) == () and state.scope(2) == () and state.scope(3) == (1, 2)


def test_a_file_damaged_while_open_reads_as_empty_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bot.sqlite3"
    state = ChatState(path)
    state.set_scope(1, (2,))
    state.remember(1, 10, AnswerContext("q", 2, "f", None))
    state.close()
    state = ChatState(path)
    for name in ("bot.sqlite3", "bot.sqlite3-wal", "bot.sqlite3-shm"):
        if (tmp_path / name).exists():
            (tmp_path / name).write_bytes(b"junk" * 4096)
    with caplog.at_level(logging.ERROR, logger="citebot.telegram"):
        assert state.scope(1) is None and state.recall(1, 10) is None and state.answers(1) == 0
        assert state.set_scope(1, (3,)) is False
        state.remember(1, 11, AnswerContext("q", 2, "f", None))
    assert state.damaged
    assert len([r for r in caplog.records if "cannot be used" in r.getMessage()]) == 1


@pytest.mark.parametrize("damage", ["junk", "directory"])
def test_an_unusable_file_at_start_is_one_line_naming_it(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "bot.sqlite3"
    if damage == "junk":
        path.write_bytes(b"junk" * 4096)
    else:
        path.mkdir()
    with pytest.raises(CitebotError, match=r"bot\.sqlite3 is not a readable chat state .* move it away") as info:
        ChatState(path)
    assert "\n" not in str(info.value)


def test_a_group_upgraded_to_a_supergroup_keeps_its_scope(tmp_path: Path) -> None:
    state = ChatState(tmp_path / "bot.sqlite3")
    state.set_scope(-41, (3, 5))
    assert state.migrate(-41, -10041) is True
    assert state.scope(-10041) == (3, 5) and state.scope(-41) is None
    assert state.migrate(-41, -10041) is False  # Telegram says so twice (in the old chat and in the new): once
    state.set_scope(-42, (1,))
    state.set_scope(-10042, (2,))
    state.migrate(-42, -10042)  # the supergroup chose already: its own choice stands
    assert state.scope(-10042) == (2,)


def test_an_answer_keeps_the_messages_it_takes_also_in_a_state_written_before_them(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    old = sqlite3.connect(path)  # the schema before answers kept their parts
    old.executescript(
        "CREATE TABLE scope (chat_id INTEGER PRIMARY KEY, articles TEXT NOT NULL);"
        "CREATE TABLE answers (chat_id INTEGER NOT NULL, message_id INTEGER NOT NULL, question TEXT NOT NULL, "
        "article INTEGER NOT NULL, fingerprint TEXT NOT NULL, scope TEXT, at REAL NOT NULL, "
        "PRIMARY KEY (chat_id, message_id));"
        "INSERT INTO answers VALUES (7, 3, 'an old one', 1, 'ff', NULL, 0);"
    )
    old.commit()
    old.close()
    state = ChatState(path)
    assert state.recall(7, 3) == AnswerContext("an old one", 1, "ff", None)
    state.remember(7, 12, AnswerContext("long", 1, "ff", None, parts=(10, 11)))
    assert state.recall(7, 12) == AnswerContext("long", 1, "ff", None, parts=(10, 11))
