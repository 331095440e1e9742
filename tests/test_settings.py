"""Settings come from the environment over ``.env``, typed and checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.settings import TELEGRAM_API_URL, Settings
from index.config import DEFAULT_MODEL, MAX_K, default_article
from index.errors import CitebotError
from tests.support.paths import ROOT


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


# --- .env.example: every setting the code reads, each shown with the code's default -----------------------------

#: Settings whose default is "not set" (or depends on the machine or the command): ``.env.example`` shows an example
#: value for them, and says in words what happens when they are not set.
EXAMPLES = {
    "CITEBOT_ARTICLE",
    "CITEBOT_DATA_DIR",
    "CITEBOT_THREADS",
    "TELEGRAM_BOT_TOKEN",
    "CITEBOT_API_TOKEN",
    "TELEGRAM_ALLOWED_USERS",
    "TELEGRAM_ADMINS",
    "TELEGRAM_WEBHOOK_URL",
    "TELEGRAM_WEBHOOK_SECRET",
    "TELEGRAM_LOCAL_FILES_DIR",
    "TELEGRAM_METRICS_PORT",
}
#: Examples that name a directory of the reader's machine: checked with one that exists here instead.
DIRECTORIES = {"TELEGRAM_LOCAL_FILES_DIR"}


def _documented() -> dict[str, tuple[str, str]]:
    """Return each ``# NAME=value`` line of ``.env.example`` as ``NAME: (value, the comment block it is in)``."""
    out: dict[str, tuple[str, str]] = {}
    for block in re.split(r"\n\s*\n", (ROOT / ".env.example").read_text(encoding="utf-8")):
        for name, value in re.findall(r"^# ((?:CITEBOT|TELEGRAM)_[A-Z0-9_]+)=(.*)$", block, re.MULTILINE):
            assert name not in out, f"{name} is in .env.example twice"
            out[name] = (value.strip(), block)
    return out


def _read_by_the_code() -> set[str]:
    """Return every ``"CITEBOT_..."`` / ``"TELEGRAM_..."`` name the code under index/ and bot/ reads."""
    names: set[str] = set()
    for package in ("index", "bot"):
        for path in (ROOT / package).rglob("*.py"):
            names.update(re.findall(r"[\"']((?:CITEBOT|TELEGRAM)_[A-Z0-9_]+)[\"']", path.read_text(encoding="utf-8")))
    return {name for name in names if not name.startswith("CITEBOT_TEST_")}  # test hooks (index/store/crash.py)


def test_env_example_documents_exactly_the_settings_the_code_reads() -> None:
    read = _read_by_the_code()
    assert len(read) >= 25  # the scan finds the settings (it would find none if their spelling moved)
    documented = set(_documented())
    assert read - documented == set(), "read by the code but not in .env.example"
    assert documented - read == set(), "in .env.example but read by no code"


@pytest.mark.parametrize("name", sorted(set(_documented()) - EXAMPLES))
def test_env_example_shows_the_default_of_the_code(name: str) -> None:
    value, _ = _documented()[name]
    assert Settings.from_env({name: value}, env_file=None) == Settings.from_env({}, env_file=None), (
        f".env.example says {name}={value}, which is not the code's default"
    )


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_env_example_values_that_are_examples_are_valid_and_say_what_the_default_is(name: str, tmp_path: Path) -> None:
    value, block = _documented()[name]
    if name in DIRECTORIES:
        assert value.startswith("/"), f"{name}: the example is an absolute directory"
        value = str(tmp_path)
    assert Settings.from_env({name: value}, env_file=None) != Settings.from_env({}, env_file=None)
    assert re.search(r"Default:|Unset|Not set|Required", block), f"{name}: .env.example does not say its default"


def test_env_example_states_the_range_of_top_k_the_code_accepts() -> None:
    _, block = _documented()["CITEBOT_TOP_K"]
    assert f"(1-{MAX_K})" in block
    Settings.from_env({"CITEBOT_TOP_K": str(MAX_K)}, env_file=None)
    with pytest.raises(CitebotError):
        Settings.from_env({"CITEBOT_TOP_K": str(MAX_K + 1)}, env_file=None)
