"""Settings: one typed object, read from the environment and an optional ``.env`` file."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dotenv import dotenv_values

from index.config import (
    DEFAULT_MODEL,
    DEFAULT_RUNTIME,
    MAX_K,
    MIN_SCORE,
    RUNTIMES,
    UNCERTAIN_SCORE,
    IndexConfig,
    default_data_dir,
)
from index.errors import CitebotError
from index.reading.fetch import MAX_FETCH_BYTES, FetchConfig

T = TypeVar("T")
N = TypeVar("N", int, float)

#: Telegram's own Bot API; python-telegram-bot appends the token to it.
TELEGRAM_API_URL = "https://api.telegram.org/bot"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: What Telegram accepts as a webhook secret token.
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


@dataclass(frozen=True)
class Settings:
    """Everything citebot can be told, with defaults that work offline.

    Each field is read from the environment variable named in ``.env.example``;
    the process environment wins over ``.env``.
    """

    article: Path | None = None
    index: IndexConfig = field(default_factory=IndexConfig)
    top_k: int = 3
    min_score: float = MIN_SCORE
    uncertain_score: float = UNCERTAIN_SCORE
    log_level: str = "WARNING"
    telegram_token: str | None = field(default=None, repr=False)
    telegram_api_url: str = TELEGRAM_API_URL
    telegram_allowed_users: frozenset[int] = frozenset()
    telegram_admins: frozenset[int] = frozenset()
    telegram_webhook_url: str | None = None
    telegram_webhook_listen: str = "0.0.0.0"
    telegram_webhook_port: int = 8443
    telegram_webhook_secret: str | None = field(default=None, repr=False)
    telegram_workers: int = 32
    telegram_chat_queue: int = 20
    telegram_user_burst: int = 5
    telegram_user_per_minute: int = 20
    telegram_delivery_retry_seconds: float = 120.0
    telegram_unauthorized_exit_seconds: float = 120.0
    telegram_shutdown_seconds: float = 10.0
    fetch: FetchConfig = field(default_factory=FetchConfig)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env") -> Settings:
        """Read settings from ``environ`` (default: ``os.environ``) over the values in ``env_file``.

        Raises:
            CitebotError: when a value is malformed; the message names the variable.
        """
        values: dict[str, str] = {}
        from_file: set[str] = set()
        if env_file is not None and Path(env_file).is_file():
            values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
            from_file.update(values)
        environment = os.environ if environ is None else environ
        values.update(environment)
        from_file.difference_update(environment)

        def get(name: str, parse: Callable[[str], T], default: T) -> T:
            raw = values.get(name, "").strip()
            if not raw:
                return default
            try:
                return parse(raw)
            except ValueError as exc:
                where = f" in {env_file}" if name in from_file else ""  # else the environment: no suffix
                raise CitebotError(f"{name}={raw!r}{where} is not valid: {exc}") from None

        index = IndexConfig(
            model=get("CITEBOT_MODEL", str, DEFAULT_MODEL),
            data_dir=get("CITEBOT_DATA_DIR", _path, default_data_dir()),
            window=get("CITEBOT_WINDOW", _int_in(1, 10), 2),
            batch_size=get("CITEBOT_BATCH_SIZE", _int_in(1, 1024), 32),
            threads=get("CITEBOT_THREADS", _int_in(1, 256), None),
            runtime=get("CITEBOT_RUNTIME", _lower_choice(RUNTIMES), DEFAULT_RUNTIME),
        )
        return cls(
            article=get("CITEBOT_ARTICLE", _path, None),
            index=index,
            top_k=get("CITEBOT_TOP_K", _int_in(1, MAX_K), 3),
            min_score=get("CITEBOT_MIN_SCORE", _float_in(0.0, 1.0), MIN_SCORE),
            uncertain_score=get("CITEBOT_UNCERTAIN_SCORE", _float_in(0.0, 1.0), UNCERTAIN_SCORE),
            log_level=get("CITEBOT_LOG_LEVEL", _choice(LOG_LEVELS), "WARNING"),
            telegram_token=get("TELEGRAM_BOT_TOKEN", str, None),
            telegram_api_url=get("TELEGRAM_API_URL", _url, TELEGRAM_API_URL),
            telegram_allowed_users=_allowed_users(values),
            telegram_admins=_admins(values),
            telegram_webhook_url=get("TELEGRAM_WEBHOOK_URL", _url, None),
            telegram_webhook_listen=get("TELEGRAM_WEBHOOK_LISTEN", str, "0.0.0.0"),
            telegram_webhook_port=get("TELEGRAM_WEBHOOK_PORT", _int_in(1, 65535), 8443),
            telegram_webhook_secret=get("TELEGRAM_WEBHOOK_SECRET", _webhook_secret, None),
            telegram_workers=get("TELEGRAM_WORKERS", _int_in(1, 1024), 32),
            telegram_chat_queue=get("TELEGRAM_CHAT_QUEUE", _int_in(1, 1000), 20),
            telegram_user_burst=get("TELEGRAM_USER_BURST", _int_in(1, 1000), 5),
            telegram_user_per_minute=get("TELEGRAM_USER_PER_MINUTE", _int_in(1, 6000), 20),
            telegram_delivery_retry_seconds=get("TELEGRAM_DELIVERY_RETRY_SECONDS", _float_in(0.0, 86400.0), 120.0),
            telegram_unauthorized_exit_seconds=get(
                "TELEGRAM_UNAUTHORIZED_EXIT_SECONDS", _float_in(0.0, 86400.0), 120.0
            ),
            telegram_shutdown_seconds=get("TELEGRAM_SHUTDOWN_SECONDS", _float_in(0.0, 600.0), 10.0),
            fetch=_fetch_config(get),
        )


def _fetch_config(get: Callable[[str, Callable[[str], Any], Any], Any]) -> FetchConfig:
    """Read the CITEBOT_FETCH_* settings: size cap, time-out (connect and read; 6x for a whole transfer), private."""
    timeout = get("CITEBOT_FETCH_TIMEOUT", _float_in(0.1, 600.0), 10.0)
    return FetchConfig(
        connect_timeout=timeout,
        read_timeout=timeout,
        total_timeout=6 * timeout,
        max_bytes=get("CITEBOT_FETCH_MAX_BYTES", _int_in(1024, 1024**3), MAX_FETCH_BYTES),
        allow_private=get("CITEBOT_FETCH_ALLOW_PRIVATE", _flag, False),
    )


def _flag(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected one of 1, true, yes, on, 0, false, no, off")


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def _number_in(cast: Callable[[str], N], low: N, high: N, kind: str) -> Callable[[str], N]:
    """Return a parser of ``kind`` numbers (``cast`` of the text) from ``low`` to ``high``."""
    expected = f"expected {kind} from {low} to {high}"

    def parse(raw: str) -> N:
        try:
            value = cast(raw)
        except ValueError:
            raise ValueError(expected) from None
        if not low <= value <= high:
            raise ValueError(expected)
        return value

    return parse


def _int_in(low: int, high: int) -> Callable[[str], int]:
    return _number_in(int, low, high, "a whole number")


def _float_in(low: float, high: float) -> Callable[[str], float]:
    return _number_in(float, low, high, "a number")


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.upper() not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return raw.upper()

    return parse


def _lower_choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.lower() not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return raw.lower()

    return parse


def _url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return raw


def _webhook_secret(raw: str) -> str:
    if not _WEBHOOK_SECRET.fullmatch(raw):
        raise ValueError("expected 1-256 characters, each a letter, digit, '_' or '-' (what Telegram accepts)")
    return raw


def _allowed_users(values: Mapping[str, str]) -> frozenset[int]:
    """Return the allowlist: empty (everyone) only when ``TELEGRAM_ALLOWED_USERS`` is not set at all.

    Raises:
        CitebotError: when it is set but names no valid user id (``""``, ``","``, an unset template).
    """
    name = "TELEGRAM_ALLOWED_USERS"
    if name not in values:
        return frozenset()
    raw = values[name]
    try:
        return _user_ids(raw)
    except ValueError as exc:
        raise CitebotError(f"{name}={raw!r} is not valid: {exc}") from None


def _admins(values: Mapping[str, str]) -> frozenset[int]:
    """Return ``TELEGRAM_ADMINS``: the users who may add and remove articles from Telegram (none when unset or empty).

    Raises:
        CitebotError: when it names something that is not a numeric user id.
    """
    name = "TELEGRAM_ADMINS"
    raw = values.get(name, "")
    if not raw.strip():
        return frozenset()
    try:
        return _user_ids(raw)
    except ValueError as exc:
        raise CitebotError(f"{name}={raw!r} is not valid: {str(exc).split(' (')[0]}") from None


def _user_ids(raw: str) -> frozenset[int]:
    expected = (
        "expected one or more numeric Telegram user ids separated by commas, like 11111111,22222222 "
        "(to let everyone use the bot, do not set it at all)"
    )
    try:
        ids = frozenset(int(part) for part in raw.replace(",", " ").split())
    except ValueError:
        raise ValueError(expected) from None
    if not ids or min(ids) <= 0:
        raise ValueError(expected)
    return ids
