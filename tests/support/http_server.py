"""``citebot serve``'s app under a real uvicorn server on 127.0.0.1 (a port of its own), in a thread of the test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from bot.serve.app import Service, make_app
from bot.settings import Settings
from index.analysis.embed import Embedder


@contextmanager
def serving(data_dir: Path, embedder: Embedder, **env: str) -> Iterator[httpx.Client]:
    """Serve the library in ``data_dir`` (settings from ``env`` only) and yield a client for its base URL."""
    from bot.loading import open_searcher

    settings = Settings.from_env({"CITEBOT_DATA_DIR": str(data_dir), **env}, env_file=None)
    service = Service(settings, lambda: open_searcher(settings, None, embedder=embedder, engine_may_be_down=True))
    config = uvicorn.Config(make_app(service), host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 60
            while client.get("/readyz").status_code == 503 and service.searcher is None and service.failed is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("the library did not open")
                time.sleep(0.05)
            client.service = service  # type: ignore[attr-defined]
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)
