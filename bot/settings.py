"""Settings: one typed object, read from the environment and an optional ``.env`` file."""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dotenv import dotenv_values

from index.config import MAX_K, MIN_SCORE, RUNTIMES, SEARCH_ENGINES, TOP_K, UNCERTAIN_SCORE, IndexConfig
from index.errors import CitebotError
from index.reading.fetch import FetchConfig, is_web_url

T = TypeVar("T")
N = TypeVar("N", int, float)
#: ``get(name, parse, default)``: a setting's parsed value, else ``default``.
Getter = Callable[[str, Callable[[str], Any], Any], Any]

#: Telegram's own Bot API; python-telegram-bot appends the token to it.
TELEGRAM_API_URL = "https://api.telegram.org/bot"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: What Telegram accepts as a webhook secret token.
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


@dataclass(frozen=True)
class TelegramSettings:
    """The Telegram bot's settings, each read from the ``TELEGRAM_`` variable of the same name (see ``.env.example``).

    Attributes:
        token: the bot's token from @BotFather (``TELEGRAM_BOT_TOKEN``); never in a repr or a log.
        api_url: the Bot API base URL; python-telegram-bot appends the token.
        allowed_users: the only users who may use the bot; empty: everyone.
        admins: the users who may add and remove articles from the chat.
        webhook_url: the public HTTPS URL of webhook mode; ``None``: long polling.
        webhook_listen: the address the webhook server listens on.
        webhook_port: the port the webhook server listens on.
        webhook_secret: the secret Telegram sends with every update; ``None``: a new random one at each start.
        workers: updates handled at once, each from a different chat.
        chat_queue: updates one chat may have waiting.
        user_burst: questions one user may send at once.
        user_per_minute: questions one user may send per minute after the burst.
        delivery_retry_seconds: how long a reply is retried through network errors, 5xx and 401.
        unauthorized_exit_seconds: how long Telegram may refuse the token before the bot exits with code 2.
        shutdown_seconds: how long SIGTERM / Ctrl-C waits for replies in progress.
        local_files_dir: a local Bot API server's working directory; files are read from disk only under it.
        metrics_port: the port of the bot's ``/healthz``, ``/readyz`` and ``/metrics``; ``None``: not served.
        metrics_listen: the address they are served on.
    """

    token: str | None = field(default=None, repr=False)
    api_url: str = TELEGRAM_API_URL
    allowed_users: frozenset[int] = frozenset()
    admins: frozenset[int] = frozenset()
    webhook_url: str | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = 8443
    webhook_secret: str | None = field(default=None, repr=False)
    workers: int = 32
    chat_queue: int = 20
    user_burst: int = 5
    user_per_minute: int = 20
    delivery_retry_seconds: float = 120.0
    unauthorized_exit_seconds: float = 120.0
    shutdown_seconds: float = 10.0
    local_files_dir: Path | None = None
    metrics_port: int | None = None
    metrics_listen: str = "127.0.0.1"


@dataclass(frozen=True)
class ApiSettings:
    """How ``citebot serve`` answers over HTTP.

    Attributes:
        token: the admin token adding and removing articles need (``Authorization: Bearer``); ``None``: read-only.
        burst: requests one client (address) may make at once.
        per_minute: requests one client may make per minute after the burst.
        timeout: seconds a question may take before the request gets a 503 (the answer still completes).
        max_body: the largest JSON body, in bytes (an uploaded file may be as large as CITEBOT_FETCH_MAX_BYTES).
    """

    token: str | None = field(default=None, repr=False)
    burst: int = 20
    per_minute: int = 120
    timeout: float = 30.0
    max_body: int = 16 * 1024


@dataclass(frozen=True)
class Settings:
    """Everything citebot can be told, with defaults that work offline.

    Each field is read from the environment variable named in ``.env.example``;
    the process environment wins over ``.env``. The defaults are the fields' defaults here and in
    :class:`~index.config.IndexConfig`, :class:`TelegramSettings` and :class:`~index.reading.fetch.FetchConfig`.
    """

    article: Path | None = None
    index: IndexConfig = field(default_factory=IndexConfig)
    top_k: int = TOP_K
    min_score: float = MIN_SCORE
    uncertain_score: float = UNCERTAIN_SCORE
    log_level: str = "WARNING"
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
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

        default = cls()
        index = IndexConfig(
            model=get("CITEBOT_MODEL", str, default.index.model),
            data_dir=get("CITEBOT_DATA_DIR", _path, default.index.data_dir),
            window=get("CITEBOT_WINDOW", _int_in(1, 10), default.index.window),
            batch_size=get("CITEBOT_BATCH_SIZE", _int_in(1, 1024), default.index.batch_size),
            threads=get("CITEBOT_THREADS", _int_in(1, 256), default.index.threads),
            runtime=get("CITEBOT_RUNTIME", _lower_choice(RUNTIMES), default.index.runtime),
            search=get("CITEBOT_SEARCH", _lower_choice(SEARCH_ENGINES), default.index.search),
            qdrant_path=get("CITEBOT_QDRANT_PATH", _path, default.index.qdrant_path),
            qdrant_url=get("CITEBOT_QDRANT_URL", _http_url, default.index.qdrant_url),
            qdrant_api_key=get("CITEBOT_QDRANT_API_KEY", str, default.index.qdrant_api_key),
            qdrant_collection=get("CITEBOT_QDRANT_COLLECTION", _collection, default.index.qdrant_collection),
        )
        return cls(
            article=get("CITEBOT_ARTICLE", _path, default.article),
            index=index,
            top_k=get("CITEBOT_TOP_K", _int_in(1, MAX_K), default.top_k),
            min_score=get("CITEBOT_MIN_SCORE", _float_in(0.0, 1.0), default.min_score),
            uncertain_score=get("CITEBOT_UNCERTAIN_SCORE", _float_in(0.0, 1.0), default.uncertain_score),
            log_level=get("CITEBOT_LOG_LEVEL", _choice(LOG_LEVELS), default.log_level),
            telegram=_telegram_settings(get, values, default.telegram),
            api=ApiSettings(
                token=get("CITEBOT_API_TOKEN", _api_token, default.api.token),
                burst=get("CITEBOT_API_BURST", _int_in(1, 10_000), default.api.burst),
                per_minute=get("CITEBOT_API_PER_MINUTE", _int_in(1, 600_000), default.api.per_minute),
                timeout=get("CITEBOT_API_TIMEOUT", _float_in(0.1, 3600.0), default.api.timeout),
                max_body=get("CITEBOT_API_MAX_BODY", _int_in(1024, 1024**2), default.api.max_body),
            ),
            fetch=_fetch_config(get, default.fetch),
        )


def _api_token(raw: str) -> str:
    """Check an admin token: at least 16 characters, printable ASCII without spaces (it travels in a header)."""
    if len(raw) < 16 or not all(33 <= ord(c) < 127 for c in raw):
        raise ValueError("expected at least 16 printable ASCII characters, no spaces (e.g. openssl rand -hex 24)")
    return raw


def _telegram_settings(get: Getter, values: Mapping[str, str], default: TelegramSettings) -> TelegramSettings:
    """Read the TELEGRAM_* settings; what is not set keeps ``default``'s value."""
    return TelegramSettings(
        token=get("TELEGRAM_BOT_TOKEN", str, default.token),
        api_url=get("TELEGRAM_API_URL", _url, default.api_url),
        allowed_users=_allowed_users(values),
        admins=_admins(values),
        webhook_url=get("TELEGRAM_WEBHOOK_URL", _url, default.webhook_url),
        webhook_listen=get("TELEGRAM_WEBHOOK_LISTEN", str, default.webhook_listen),
        webhook_port=get("TELEGRAM_WEBHOOK_PORT", _int_in(1, 65535), default.webhook_port),
        webhook_secret=get("TELEGRAM_WEBHOOK_SECRET", _webhook_secret, default.webhook_secret),
        workers=get("TELEGRAM_WORKERS", _int_in(1, 1024), default.workers),
        chat_queue=get("TELEGRAM_CHAT_QUEUE", _int_in(1, 1000), default.chat_queue),
        user_burst=get("TELEGRAM_USER_BURST", _int_in(1, 1000), default.user_burst),
        user_per_minute=get("TELEGRAM_USER_PER_MINUTE", _int_in(1, 6000), default.user_per_minute),
        delivery_retry_seconds=get(
            "TELEGRAM_DELIVERY_RETRY_SECONDS", _float_in(0.0, 86400.0), default.delivery_retry_seconds
        ),
        unauthorized_exit_seconds=get(
            "TELEGRAM_UNAUTHORIZED_EXIT_SECONDS", _float_in(0.0, 86400.0), default.unauthorized_exit_seconds
        ),
        shutdown_seconds=get("TELEGRAM_SHUTDOWN_SECONDS", _float_in(0.0, 600.0), default.shutdown_seconds),
        local_files_dir=get("TELEGRAM_LOCAL_FILES_DIR", _directory, default.local_files_dir),
        metrics_port=get("TELEGRAM_METRICS_PORT", _int_in(1, 65535), default.metrics_port),
        metrics_listen=get("TELEGRAM_METRICS_LISTEN", str, default.metrics_listen),
    )


def _fetch_config(get: Getter, default: FetchConfig) -> FetchConfig:
    """Return the CITEBOT_FETCH_* settings: size cap, time-out (a transfer's scaled as ``default``'s), private."""
    timeout = get("CITEBOT_FETCH_TIMEOUT", _float_in(0.1, 600.0), default.connect_timeout)
    return FetchConfig(
        connect_timeout=timeout,
        read_timeout=timeout,
        total_timeout=timeout * (default.total_timeout / default.connect_timeout),
        max_bytes=get("CITEBOT_FETCH_MAX_BYTES", _int_in(1024, 1024**3), default.max_bytes),
        allow_private=get("CITEBOT_FETCH_ALLOW_PRIVATE", _flag, default.allow_private),
    )


def _flag(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected one of 1, true, yes, on, 0, false, no, off")


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def _directory(raw: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise ValueError("expected the absolute path of the local Bot API server's working directory")
    if not path.is_dir():
        raise ValueError("expected an existing directory (the local Bot API server's --dir)")
    return path


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


def _http_url(raw: str) -> str:
    parts = urllib.parse.urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL of a Qdrant server")
    return raw


def _collection(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", raw):
        raise ValueError("expected 1-64 letters, digits, '_' or '-'")
    return raw


def _url(raw: str) -> str:
    if not is_web_url(raw):
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
