"""The real ``citebot`` with ``CITEBOT_SEARCH=qdrant``: add, ask, console, remove, doctor, index on a Qdrant Edge shard.

The library holds four SQuAD articles of half A as text files (about 200 paragraphs), so questions go through the
first stage, which Qdrant answers. ``add`` and ``remove`` write the catalog only; the engine follows at the next
question (doctor says so in between), and ``index --rebuild-engine`` writes it anew.
"""

from __future__ import annotations

import json
from pathlib import Path

from index.evaluate import load_squad, squad_to_article
from tests.conftest import SHARED

QDRANT = {"CITEBOT_SEARCH": "qdrant"}


def _qdrant_check(run_citebot) -> dict[str, str]:
    report = json.loads(run_citebot("doctor", "--json", env=QDRANT).stdout)
    (check,) = [c for c in report["checks"] if c["check"] == "qdrant"]
    return check


def test_every_command_works_on_qdrant_and_the_engine_follows_the_catalog(run_citebot, tmp_path: Path) -> None:
    squad = load_squad(SHARED / "data" / "squad-v1.1-dev-A.json")[:4]
    files = []
    for number, article in enumerate(squad):
        path = tmp_path / f"article-{number}.txt"
        path.write_text(squad_to_article(article).text, encoding="utf-8")
        files.append(str(path))
    added = run_citebot("add", *files, env=QDRANT, timeout=600)
    assert added.returncode == 0, added.stderr
    assert _qdrant_check(run_citebot)["status"] == "note"  # nothing asked yet: the engine is not written

    question = squad[0].questions[0]  # Which NFL team represented the AFC at Super Bowl 50?
    asked = json.loads(run_citebot("ask", question.question, "--json", env=QDRANT).stdout)
    assert asked["found"] and any(a in asked["passages"][0]["text"] for a in question.answers)
    local = json.loads(run_citebot("ask", question.question, "--json").stdout)
    assert [p["text"] for p in local["passages"]] == [p["text"] for p in asked["passages"]]
    check = _qdrant_check(run_citebot)
    assert check["status"] == "ok" and "5 of 5 articles current" in check["message"]  # the bundled article too

    listed = json.loads(run_citebot("list", "--json").stdout)
    gone = next(a["id"] for a in listed if a["source"].endswith("article-1.txt"))
    assert run_citebot("remove", str(gone), env=QDRANT).returncode == 0
    lagging = _qdrant_check(run_citebot)
    assert lagging["status"] == "note" and "1 no longer in the library" in lagging["message"]
    console = run_citebot("console", input=f"{squad[2].questions[0].question}\n/quit\n", env=QDRANT)
    assert console.returncode == 0, console.stderr
    assert "4 of 4 articles current" in _qdrant_check(run_citebot)["message"]
    again = json.loads(run_citebot("ask", squad[1].questions[0].question, "--json", env=QDRANT).stdout)
    assert all(p["article"]["id"] != gone for p in again["passages"])

    rebuilt = run_citebot("index", "--rebuild-engine", env=QDRANT)
    assert (
        rebuilt.returncode == 0
        and "search      Qdrant at " in rebuilt.stdout
        and "faiss" not in rebuilt.stdout
        and "articles    4" in rebuilt.stdout
    )
    assert _qdrant_check(run_citebot)["status"] == "ok"
    refused = run_citebot("index", "--rebuild-engine")
    assert refused.returncode == 2 and "CITEBOT_SEARCH=qdrant" in refused.stderr


def test_an_edge_shard_held_by_another_process_is_one_line_and_loses_nothing(run_citebot, tmp_path: Path) -> None:
    from index.search.engine.edge import EdgeTransport

    assert run_citebot("ask", "What did Erdogan warn of?", env=QDRANT).returncode == 0  # writes the shard
    holder = EdgeTransport(tmp_path / "cli-data" / "qdrant-edge", 384)  # as a running console or bot would
    try:
        refused = run_citebot("ask", "What did Erdogan warn of?", env=QDRANT)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
        assert "open in another citebot process" in refused.stderr and "Traceback" not in refused.stderr
        doctor = _qdrant_check(run_citebot)
        assert doctor["status"] == "note" and "not checked" in doctor["message"]
    finally:
        holder.close()
    answered = json.loads(run_citebot("ask", "What did Erdogan warn of?", "--json", env=QDRANT).stdout)
    assert answered["found"]
