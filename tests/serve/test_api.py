"""``citebot serve``'s API over real HTTP: a real uvicorn server on 127.0.0.1, the real model and library.

Every route, every error code with its one-line message, the admin token, the rate limit, the metrics, and askers
answered while an article is added.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from index.analysis.embed import Embedder
from index.answer import MAX_QUESTION_CHARS, not_found
from index.config import IndexConfig
from index.store.library import Library
from tests.support.citebot import citebot_environment
from tests.support.http_server import serving
from tests.support.paths import CITEBOT

TOKEN = "a-long-admin-token-for-the-tests"
QUESTION = "What did Erdogan warn of?"
BAKERY = b"The bakery on Mill Street opened in 1952.\n\nIts rye bread sells out by nine every morning.\n"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """A library holding the bundled article (made once; tests that change it copy it)."""
    data_dir = tmp_path_factory.mktemp("serve") / "data"
    Library(data_dir, IndexConfig(data_dir=data_dir)).ensure_ready(embedder)
    return data_dir


@pytest.fixture(scope="module")
def api(library: Path, embedder: Embedder) -> Iterator[httpx.Client]:
    """The server over that library, read-only (no token), with a generous rate limit."""
    with serving(library, embedder, CITEBOT_API_BURST="1000") as client:
        yield client


def _metric(client: httpx.Client, name: str) -> float:
    """Return the sum of a metric's samples named ``name`` (any labels)."""
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_health_and_readiness(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "up"}
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready" and ready.json()["articles"] == 1


def test_ask_answers_with_exactly_the_object_citebot_ask_json_writes(api: httpx.Client, library: Path) -> None:
    asked = api.post("/v1/ask", json={"question": QUESTION, "k": 2})
    assert asked.status_code == 200 and asked.headers["content-type"] == "application/json"
    env = citebot_environment(library.parent, {"CITEBOT_DATA_DIR": str(library)})
    cli = subprocess.run([CITEBOT, "ask", QUESTION, "-k", "2", "--json"], capture_output=True, text=True, env=env)
    assert cli.returncode == 0, cli.stderr
    assert asked.json() == json.loads(cli.stdout)
    top = asked.json()["passages"][0]
    assert asked.json()["verdict"] == "answered" and top["highlight"] and top["article"]["id"] == 1


def test_unanswerable_questions_are_said_so(api: httpx.Client) -> None:
    reply = api.post("/v1/ask", json={"question": "What is the boiling point of mercury?"}).json()
    assert reply["verdict"] == "unanswered" and not reply["found"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"not json", 400, "the body is not JSON"),
        (b"[1, 2]", 400, "not an object"),
        (b"{}", 422, '"question" is required'),
        (b'{"question": 7}', 422, '"question" is required'),
        (b'{"question": "   "}', 422, "the question is empty"),
        (json.dumps({"question": "x" * (MAX_QUESTION_CHARS + 1)}).encode(), 422, "the question is too long"),
        (b'{"question": "Who?", "k": 0}', 422, '"k" is a whole number'),
        (b'{"question": "Who?", "k": "3"}', 422, '"k" is a whole number'),
        (b'{"question": "Who?", "in": "1"}', 422, '"in" is a list of article ids'),
        (b'{"question": "Who?", "in": [1, true]}', 422, '"in" is a list of article ids'),
        (b'{"question": "Who?", "in": [99]}', 404, "no article with id 99"),
        (b'{"question": "Who?", "colour": "red"}', 422, "unknown field 'colour'"),
        (b'{"question": "' + b"x" * 20_000 + b'"}', 413, "the body is over 16384 bytes"),
    ],
)
def test_ask_errors_are_json_with_one_line_and_the_right_status(
    api: httpx.Client, body: bytes, status: int, message: str
) -> None:
    reply = api.post("/v1/ask", content=body, headers={"Content-Type": "application/json"})
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert message in error and "\n" not in error and "Traceback" not in reply.text


def test_unknown_routes_and_methods_are_json_errors(api: httpx.Client) -> None:
    assert api.get("/nowhere").status_code == 404 and "/openapi.json" in api.get("/nowhere").json()["error"]
    assert api.get("/v1/ask").status_code == 405 and "error" in api.get("/v1/ask").json()


def test_a_read_only_server_refuses_to_add_or_remove(api: httpx.Client) -> None:
    for reply in (api.delete("/v1/articles/1"), api.post("/v1/articles?name=a.txt", content=BAKERY)):
        assert reply.status_code == 401 and "read-only" in reply.json()["error"]
        assert reply.headers["www-authenticate"] == "Bearer"
    assert [a["id"] for a in api.get("/v1/articles").json()] == [1]


def test_the_openapi_description_names_every_route_and_method(api: httpx.Client) -> None:
    from bot.serve.app import Service, make_app
    from bot.settings import Settings

    described = {
        (path, method.upper()) for path, item in api.get("/openapi.json").json()["paths"].items() for method in item
    }
    served = {
        (route.path, method)
        for route in make_app(Service(Settings(), lambda: None)).routes  # type: ignore[arg-type,return-value]
        for method in getattr(route, "methods", ()) - {"HEAD"}
        if route.path.startswith("/v1/") or route.path in ("/healthz", "/readyz", "/metrics")
    }
    assert described == served


def test_more_context_gives_the_paragraph_with_its_neighbours(api: httpx.Client) -> None:
    top = api.post("/v1/ask", json={"question": QUESTION}).json()["passages"][0]
    number, total = top["paragraph"], top["paragraphs"]
    reply = api.get(f"/v1/articles/{top['article']['id']}/context", params={"paragraph": number})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    shown = [p["paragraph"] for p in body["context"]]
    assert shown == list(range(max(1, number - 1), min(total, number + 1) + 1))
    assert body["paragraphs"] == total and body["article"] == top["article"]
    assert next(p["text"] for p in body["context"] if p["paragraph"] == number) == top["text"]
    assert len({p["text"] for p in body["context"]}) == len(shown)  # each its own paragraph, none repeated
    first = api.get("/v1/articles/1/context", params={"paragraph": 1}).json()["context"]
    assert [p["paragraph"] for p in first] == [1, 2]  # no paragraph 0


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/v1/articles/99/context?paragraph=1", 404, "no article with id 99"),
        ("/v1/articles/1/context?paragraph=0", 422, "?paragraph=N"),
        ("/v1/articles/1/context", 422, "?paragraph=N"),
        ("/v1/articles/1/context?paragraph=999", 422, "paragraph 999 is not one of the article's"),
        ("/v1/articles/x/context?paragraph=1", 422, "is not an article id"),
    ],
)
def test_more_context_errors(api: httpx.Client, path: str, status: int, message: str) -> None:
    reply = api.get(path)
    assert reply.status_code == status and message in reply.json()["error"], reply.text


def test_the_page_is_served_with_the_verdicts_wording_and_a_strict_policy(api: httpx.Client) -> None:
    page = api.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not_found(1) in page.text and "{{" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = api.get("/static/citebot.js")
    assert script.status_code == 200 and "innerHTML" not in script.text  # article text is only set as text


def test_metrics_count_the_questions_by_verdict_and_the_library(library: Path, embedder: Embedder) -> None:
    with serving(library, embedder, CITEBOT_API_BURST="1000") as client:
        questions = [QUESTION, "Who is Turkey's president?", "What is the boiling point of mercury?"]
        verdicts = [client.post("/v1/ask", json={"question": q}).json()["verdict"] for q in questions]
        text = client.get("/metrics").text
        for verdict in set(verdicts):
            assert f'citebot_questions_total{{verdict="{verdict}"}} {float(verdicts.count(verdict))}' in text
        assert _metric(client, "citebot_questions_total") == len(questions)
        assert _metric(client, "citebot_articles") == 1 and _metric(client, "citebot_paragraphs") > 10
        assert _metric(client, "citebot_latency_seconds_count") >= 2 * len(questions)  # queue and answer, each
        client.post("/v1/ask", json={})
        assert 'citebot_errors_total{kind="invalid"} 1.0' in client.get("/metrics").text


def test_the_rate_limit_is_per_client_and_says_when_to_come_back(library: Path, embedder: Embedder) -> None:
    with serving(library, embedder, CITEBOT_API_BURST="2", CITEBOT_API_PER_MINUTE="1") as client:
        replies = [client.get("/v1/articles") for _ in range(3)]
        assert [r.status_code for r in replies] == [200, 200, 429]
        assert "too many requests; try again in" in replies[2].json()["error"]
        assert client.get("/healthz").status_code == 200  # health is never limited


def test_the_admin_token_adds_and_removes_and_askers_are_answered_meanwhile(
    library: Path, embedder: Embedder, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(library, data_dir)
    with serving(data_dir, embedder, CITEBOT_API_TOKEN=TOKEN, CITEBOT_API_BURST="1000") as client:
        admin = {"Authorization": f"Bearer {TOKEN}"}
        wrong = client.post("/v1/articles?name=bakery.txt", content=BAKERY, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "wrong token" in wrong.json()["error"]
        answered: list[int] = []
        stop = threading.Event()

        def asker() -> None:
            while not stop.is_set():
                answered.append(client.post("/v1/ask", json={"question": QUESTION}).status_code)

        askers = [threading.Thread(target=asker) for _ in range(3)]
        for thread in askers:
            thread.start()
        try:
            added = client.post("/v1/articles?name=bakery.txt", content=BAKERY, headers=admin)
        finally:
            stop.set()
            for thread in askers:
                thread.join()
        assert added.status_code == 201, added.text
        assert answered and set(answered) == {200}
        new = added.json()["article"]["id"]
        reply = client.post("/v1/ask", json={"question": "When does the rye bread sell out?", "in": [new]}).json()
        assert reply["found"] and "by nine" in reply["passages"][0]["text"]
        assert client.post("/v1/articles?name=bakery.txt", content=BAKERY, headers=admin).json()["status"] == (
            "unchanged"
        )
        for url, message in (("file:///etc/passwd", "http:// or https://"), ("/etc/passwd", "http:// or https://")):
            refused = client.post("/v1/articles", json={"url": url}, headers=admin)
            assert refused.status_code == 422 and message in refused.json()["error"]
        private = client.post("/v1/articles", json={"url": "http://127.0.0.1:9/x.html"}, headers=admin)
        assert private.status_code == 422 and "refused address" in private.json()["error"]
        assert _metric(client, "citebot_fetches_refused_total") == 1
        assert client.delete("/v1/articles/999", headers=admin).status_code == 404
        assert client.delete("/v1/articles/x", headers=admin).status_code == 422
        removed = client.delete(f"/v1/articles/{new}", headers=admin)
        assert removed.status_code == 200 and removed.json()["article"]["id"] == new
        assert [a["id"] for a in client.get("/v1/articles").json()] == [1]
        gone = client.post("/v1/ask", json={"question": "When does the rye bread sell out?", "in": [new]})
        assert gone.status_code == 404


def test_an_engine_that_cannot_be_reached_is_503_and_the_process_stays_up(library: Path, embedder: Embedder) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    env = {"CITEBOT_SEARCH": "qdrant", "CITEBOT_QDRANT_URL": f"http://127.0.0.1:{closed}"}
    with serving(library, embedder, **env) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "not reachable" in ready.json()["error"]
        asked = client.post("/v1/ask", json={"question": QUESTION})
        assert asked.status_code == 503 and "not reachable" in asked.json()["error"]
        assert client.get("/healthz").status_code == 200 and client.get("/v1/articles").status_code == 200
