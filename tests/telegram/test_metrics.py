"""The Telegram bot's ``/healthz``, ``/readyz`` and ``/metrics`` on ``TELEGRAM_METRICS_PORT``: the real bot process
over real HTTP on 127.0.0.1, its counters checked against what it was sent; and the probe server alone, before
the library is loaded and on a port in use."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.serve.probes import ProbeServer, probe_app
from bot.settings import Settings
from bot.telegram.chats import ChatState
from bot.telegram.state import BotState
from index.answer import answer
from index.errors import CitebotError
from index.search.library_index import ArticleData
from index.search.retrieve import Searcher
from tests.support.fake_telegram import TOKEN, FakeTelegram
from tests.support.telegram_harness import BotProcess, bot_environment, free_port

ADMIN = 70_001
QUESTIONS = [
    "How many soldiers were killed?",
    "Who did Turkey accuse of attacking its soldiers?",
    "What is the boiling point of mercury?",
    "Which towns did Turkey try to retake?",
]
_ids = itertools.count(71_000)


def _get(port: int, path: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def bot(server: FakeTelegram, port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    workdir = tmp_path_factory.mktemp("telegram-metrics")
    extra = {"TELEGRAM_METRICS_PORT": str(port), "TELEGRAM_ADMINS": str(ADMIN), "TELEGRAM_USER_BURST": "30"}
    process = BotProcess(server, workdir, workdir / "data", **extra).start()
    yield process
    assert process.terminate() == 0, process.stderr
    assert TOKEN not in process.stderr
    with pytest.raises(OSError):  # the port is closed with the bot
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.slow
def test_health_and_readiness_of_the_running_bot(bot: BotProcess, port: int, seed_data: ArticleData) -> None:
    assert _get(port, "/healthz") == (200, '{"status":"up"}')
    status, body = _get(port, "/readyz")
    assert status == 200, body
    assert json.loads(body) == {"status": "ready", "articles": 1, "engine": "local"}
    status, body = _get(port, "/v1/ask")  # only the probes are served here
    assert status == 404 and "/healthz, /readyz and /metrics" in json.loads(body)["error"]
    samples = _samples(_get(port, "/metrics")[1])
    assert samples[("citebot_articles", ())] == 1
    assert samples[("citebot_paragraphs", ())] == len(seed_data.paragraphs)


@pytest.mark.slow
def test_after_n_questions_the_counters_say_n(
    bot: BotProcess, server: FakeTelegram, port: int, seed_searcher: Searcher
) -> None:
    before = _samples(_get(port, "/metrics")[1])
    for question in QUESTIONS:
        user = server.user(next(_ids), "Ann")
        server.wait_reply(server.send_text(server.private_chat(user), user, question), timeout=60)
    after = _samples(_get(port, "/metrics")[1])

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    verdicts = Counter(answer(seed_searcher, q).verdict for q in QUESTIONS)
    assert len(verdicts) >= 2, verdicts  # the questions reach more than one verdict, so the labels are tested
    for verdict in ("answered", "uncertain", "unanswered"):
        assert grew("citebot_questions_total", verdict=verdict) == verdicts[verdict], verdict
    assert grew("citebot_latency_seconds_count", stage="answer") == len(QUESTIONS)
    assert grew("citebot_latency_seconds_count", stage="queue") >= len(QUESTIONS)


@pytest.mark.slow
def test_a_file_that_cannot_be_read_counts_as_a_fetch_refused(bot: BotProcess, server: FakeTelegram, port: int) -> None:
    before = _samples(_get(port, "/metrics")[1]).get(("citebot_fetches_refused_total", ()), 0.0)
    user = server.user(ADMIN, "Admin")
    sent = server.send_document(server.private_chat(user), user, "binary.txt", bytes(range(256)))
    status = server.wait_reply(sent)[0]
    done = server.wait_for(
        lambda: (now := server.current(status)).text.startswith("Not added") and now, 60, "the refusal"
    )
    assert "\n" not in done.text
    after = _samples(_get(port, "/metrics")[1])[("citebot_fetches_refused_total", ())]
    assert after == before + 1


def test_a_port_in_use_is_one_line_naming_the_setting(run_citebot, tmp_path: Path, server: FakeTelegram) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        env = bot_environment(server, tmp_path / "data", TELEGRAM_METRICS_PORT=str(taken))
        result = run_citebot("telegram", env={k: v for k, v in env.items() if k.startswith(("TELEGRAM_", "NO_"))})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"citebot: error: TELEGRAM_METRICS_PORT: 127.0.0.1:{taken} is in use; pick another port"]


def test_before_the_library_is_loaded_the_bot_is_up_but_not_ready(tmp_path: Path) -> None:
    """The probe server alone, over a bot state whose start-up has not loaded the library yet."""
    from concurrent.futures import ThreadPoolExecutor

    settings = Settings.from_env({"CITEBOT_DATA_DIR": str(tmp_path)}, env_file=None)
    pool = ThreadPoolExecutor(1)
    state = BotState(settings, pool, pool, ChatState(tmp_path / "chats.sqlite"))
    port = free_port()

    async def probe() -> list[tuple[int, str]]:
        server = ProbeServer(probe_app(state.metrics, state.readiness, state.count_library), "127.0.0.1", port, "X")
        await server.start()
        try:
            loop = asyncio.get_running_loop()
            return [await loop.run_in_executor(None, _get, port, path) for path in ("/healthz", "/readyz", "/metrics")]
        finally:
            await server.stop()

    try:
        (health, ready, metrics) = asyncio.run(probe())
    finally:
        pool.shutdown()
        state.chats.close()
    assert health == (200, '{"status":"up"}')
    assert ready[0] == 503 and "still opening the library" in json.loads(ready[1])["error"]
    assert metrics[0] == 200 and "citebot_questions_total" in metrics[1]


def test_a_second_server_on_the_same_port_is_refused_in_one_line() -> None:
    from bot.serve.metrics import Metrics

    async def ready() -> dict[str, object]:
        return {"status": "ready"}

    port = free_port()

    async def both() -> str:
        app = probe_app(Metrics(), ready, ready)
        first = ProbeServer(app, "127.0.0.1", port, "TELEGRAM_METRICS_PORT")
        await first.start()
        try:
            with pytest.raises(CitebotError) as info:
                await ProbeServer(app, "127.0.0.1", port, "TELEGRAM_METRICS_PORT").start()
            return str(info.value)
        finally:
            await first.stop()

    assert asyncio.run(both()) == f"TELEGRAM_METRICS_PORT: 127.0.0.1:{port} is in use; pick another port"
