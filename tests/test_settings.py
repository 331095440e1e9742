"""Settings come from the environment over ``.env``, typed and checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import TELEGRAM_API_URL, Settings
from index.config import DEFAULT_MODEL, default_article
from index.errors import CitebotError


def test_defaults_work_offline() -> None:
    s = Settings.from_env({}, env_file=None)
    assert s.article is None  # the library, which a new data directory starts with the bundled article
    assert default_article().is_file()
    assert s.index.model == DEFAULT_MODEL
    assert s.top_k == 3 and s.telegram.token is None and s.telegram.api_url == TELEGRAM_API_URL


def test_environment_wins_over_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("CITEBOT_TOP_K=5\nCITEBOT_MODEL=/models/x\nTELEGRAM_BOT_TOKEN=123:abc\n")
    s = Settings.from_env({"CITEBOT_TOP_K": "7", "CITEBOT_DATA_DIR": str(tmp_path)}, env_file=env_file)
    assert s.top_k == 7
    assert s.index.model == "/models/x" and s.index.data_dir == tmp_path
    assert s.telegram.token == "123:abc"
    assert "123:abc" not in repr(s)  # the token never reaches a log line through repr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CITEBOT_TOP_K", "0", "from 1 to 20"),
        ("CITEBOT_WINDOW", "two", "whole number"),
        ("CITEBOT_MIN_SCORE", "high", "a number"),
        ("CITEBOT_LOG_LEVEL", "LOUD", "DEBUG, INFO, WARNING, ERROR"),
        ("TELEGRAM_API_URL", "ftp://x", "http"),
        ("TELEGRAM_ALLOWED_USERS", "12,bob", "numeric"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(CitebotError, match=message) as info:
        Settings.from_env({name: value}, env_file=None)
    assert str(info.value).startswith(f"{name}=")


def test_allowed_users_parse() -> None:
    s = Settings.from_env({"TELEGRAM_ALLOWED_USERS": "12, 34 56"}, env_file=None)
    assert s.telegram.allowed_users == frozenset({12, 34, 56})


def test_bad_value_from_env_file_names_the_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("CITEBOT_WINDOW=two\n")
    with pytest.raises(CitebotError) as info:
        Settings.from_env({}, env_file=env_file)
    assert str(info.value) == f"CITEBOT_WINDOW='two' in {env_file} is not valid: expected a whole number from 1 to 10"
    with pytest.raises(CitebotError) as info:  # the environment wins, and is named as the place of the bad value
        Settings.from_env({"CITEBOT_WINDOW": "three"}, env_file=env_file)
    assert str(info.value) == "CITEBOT_WINDOW='three' is not valid: expected a whole number from 1 to 10"
