"""Running ``citebot serve``: uvicorn over the app, on loopback unless told otherwise."""

from __future__ import annotations

import ipaddress
import logging
import signal
import sys
import threading
from pathlib import Path

from bot.serve.app import Service, make_app
from bot.settings import Settings

log = logging.getLogger("citebot.serve")


def service_for(settings: Settings, article: Path | None) -> Service:
    """Return the service of ``citebot serve``: the library (or one article), opened at start-up."""
    from bot.loading import open_searcher

    return Service(settings, lambda: open_searcher(settings, article, engine_may_be_down=True))


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run_server(settings: Settings, article: Path | None, host: str, port: int) -> int:
    """Serve until SIGTERM or Ctrl-C; return the exit code."""
    import uvicorn

    if not _loopback(host):
        log.warning("listening on %s, beyond this machine: put a TLS reverse proxy in front (docs/api.md)", host)
    mode = "read-only" if settings.api.token is None else "adding and removing with CITEBOT_API_TOKEN"
    print(f"citebot: serving http://{host}:{port}/ ({mode}); Ctrl-C stops", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        make_app(service_for(settings, article)),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        proxy_headers=True,  # X-Forwarded-For from the proxy on 127.0.0.1 names the client (the rate limit's key)
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    # uvicorn stops gracefully on SIGTERM / Ctrl-C, then raises the signal again under the handlers it found: make
    # that a no-op, so a stop asked for is exit code 0 (as the Telegram bot's), not the CLI's "stopped by SIGTERM".
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: None)
    server.run()
    return 0 if server.started else 1
