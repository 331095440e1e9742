"""The Telegram settings: webhook mode is off by default; bad values name their variable."""

from __future__ import annotations

import pytest

from bot.settings import Settings
from index.errors import CitebotError


def test_polling_is_the_default() -> None:
    s = Settings.from_env({}, env_file=None)
    assert s.telegram.webhook_url is None and s.telegram.webhook_secret is None
    assert (s.telegram.webhook_listen, s.telegram.webhook_port) == ("0.0.0.0", 8443)


def test_webhook_settings_are_read_and_the_secret_kept_out_of_repr() -> None:
    s = Settings.from_env(
        {
            "TELEGRAM_WEBHOOK_URL": "https://bot.example.org/telegram",
            "TELEGRAM_WEBHOOK_LISTEN": "127.0.0.1",
            "TELEGRAM_WEBHOOK_PORT": "8080",
            "TELEGRAM_WEBHOOK_SECRET": "Abc_123-xyz",
        },
        env_file=None,
    )
    assert s.telegram.webhook_url == "https://bot.example.org/telegram"
    assert (s.telegram.webhook_listen, s.telegram.webhook_port) == ("127.0.0.1", 8080)
    assert s.telegram.webhook_secret == "Abc_123-xyz" and "Abc_123-xyz" not in repr(s)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TELEGRAM_WEBHOOK_URL", "bot.example.org/hook", "http"),
        ("TELEGRAM_WEBHOOK_PORT", "70000", "from 1 to 65535"),
        ("TELEGRAM_WEBHOOK_PORT", "https", "whole number"),
        ("TELEGRAM_WEBHOOK_SECRET", "has spaces in it", "letter, digit"),
        ("TELEGRAM_WEBHOOK_SECRET", "x" * 257, "1-256"),
    ],
)
def test_bad_webhook_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(CitebotError, match=message) as info:
        Settings.from_env({name: value}, env_file=None)
    assert str(info.value).startswith(f"{name}=")


def test_the_allowlist_is_open_only_when_unset_and_names_users_when_set() -> None:
    assert Settings.from_env({}, env_file=None).telegram.allowed_users == frozenset()
    s = Settings.from_env({"TELEGRAM_ALLOWED_USERS": " 11, 22 ,33"}, env_file=None)
    assert s.telegram.allowed_users == frozenset({11, 22, 33})


@pytest.mark.parametrize("value", ["", " ", ",", " , ", "abc", "12,x", "-5", "0"])
def test_an_allowlist_set_but_naming_nobody_valid_is_an_error(value: str) -> None:
    with pytest.raises(CitebotError, match="expected one or more numeric Telegram user ids") as info:
        Settings.from_env({"TELEGRAM_ALLOWED_USERS": value}, env_file=None)
    assert str(info.value).startswith("TELEGRAM_ALLOWED_USERS=")


def test_hardening_defaults_keep_production_waits_long() -> None:
    s = Settings.from_env({}, env_file=None)
    assert s.telegram.delivery_retry_seconds >= 60  # an answer survives an outage of at least a minute
    assert s.telegram.shutdown_seconds == 10
    assert (s.telegram.workers, s.telegram.chat_queue) == (32, 20)
    assert (s.telegram.user_burst, s.telegram.user_per_minute) == (5, 20)
    assert s.telegram.unauthorized_exit_seconds == 120


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TELEGRAM_WORKERS", "0"),
        ("TELEGRAM_CHAT_QUEUE", "many"),
        ("TELEGRAM_USER_BURST", "-1"),
        ("TELEGRAM_USER_PER_MINUTE", "0"),
        ("TELEGRAM_DELIVERY_RETRY_SECONDS", "soon"),
        ("TELEGRAM_UNAUTHORIZED_EXIT_SECONDS", "-3"),
        ("TELEGRAM_SHUTDOWN_SECONDS", "601"),
    ],
)
def test_bad_hardening_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(CitebotError, match="from") as info:
        Settings.from_env({name: value}, env_file=None)
    assert str(info.value).startswith(f"{name}=")


def test_admins_are_nobody_by_default_and_read_as_user_ids() -> None:
    assert Settings.from_env({}, env_file=None).telegram.admins == frozenset()
    assert Settings.from_env({"TELEGRAM_ADMINS": ""}, env_file=None).telegram.admins == frozenset()
    s = Settings.from_env({"TELEGRAM_ADMINS": "11111111, 22222222"}, env_file=None)
    assert s.telegram.admins == frozenset({11111111, 22222222})


@pytest.mark.parametrize("value", ["alice", "12,bob", "-5", "0"])
def test_bad_admins_are_one_line_naming_the_variable(value: str) -> None:
    with pytest.raises(CitebotError) as info:
        Settings.from_env({"TELEGRAM_ADMINS": value}, env_file=None)
    message = str(info.value)
    assert message.startswith(f"TELEGRAM_ADMINS={value!r} is not valid: expected one or more numeric Telegram user ids")
    assert "\n" not in message


def test_local_bot_api_files_are_off_unless_an_existing_absolute_directory_is_named(tmp_path) -> None:
    assert Settings.from_env({}, env_file=None).telegram.local_files_dir is None
    named = Settings.from_env({"TELEGRAM_LOCAL_FILES_DIR": str(tmp_path)}, env_file=None)
    assert named.telegram.local_files_dir == tmp_path
    for value, message in ((str(tmp_path / "missing"), "existing directory"), ("relative/dir", "absolute path")):
        with pytest.raises(CitebotError, match=f"^TELEGRAM_LOCAL_FILES_DIR=.* is not valid: expected .*{message}"):
            Settings.from_env({"TELEGRAM_LOCAL_FILES_DIR": value}, env_file=None)
