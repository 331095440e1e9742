"""The Telegram settings: webhook mode is off by default; bad values name their variable."""

from __future__ import annotations

import pytest

from bot.settings import Settings
from index.errors import CitebotError


def test_polling_is_the_default() -> None:
    s = Settings.from_env({}, env_file=None)
    assert s.telegram_webhook_url is None and s.telegram_webhook_secret is None
    assert (s.telegram_webhook_listen, s.telegram_webhook_port) == ("0.0.0.0", 8443)


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
    assert s.telegram_webhook_url == "https://bot.example.org/telegram"
    assert (s.telegram_webhook_listen, s.telegram_webhook_port) == ("127.0.0.1", 8080)
    assert s.telegram_webhook_secret == "Abc_123-xyz" and "Abc_123-xyz" not in repr(s)


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
