"""Hand-written training questions (``benchmarks/written_questions/``): load, check, count.

    .venv/bin/python -m benchmarks.written            # check every item; print the counts the card gives

Each line of ``benchmarks/written_questions/questions.jsonl`` is one question written by hand over a paragraph of
``../shared/data/squad-v1.1-dev-A.json`` (half A only): ``article`` (its SQuAD title), ``paragraph`` (0-based, in that
article), ``question``, ``answerable``, ``kind`` (one of :data:`KINDS`) and, for an answerable one, ``sentence``: a
verbatim piece of the sentence that answers it. ``benchmarks/written_questions/README.md`` is the data card: how the
items were written and checked, and their SHA-256, which :func:`main` compares; ``readings.jsonl`` is the second
reading of every item read, and an item is kept only where it :func:`agrees`. Folds are not stored: an article's fold
is :func:`benchmarks.folds.fold_of_titles`, the rule every held-out figure uses. The exit status is 1 when a
check fails.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmarks.folds import SQUAD1, fold_of_titles
from index.analysis.sentences import sentence_spans

HERE = Path(__file__).parent / "written_questions"
QUESTIONS = HERE / "questions.jsonl"
CARD = HERE / "README.md"
#: The second reading of every item read (kept or dropped): the reader's verdict and sentence, by question.
READINGS = HERE / "readings.jsonl"
#: The kinds of unanswerable question (issue 24), then the one kind of answerable question.
UNANSWERABLE_KINDS = (
    "other-role",
    "missing-figure",
    "missing-cause",
    "missing-attribute",
    "other-time",
    "negation",
    "antonym",
    "swapped-entity",
    "impossible-condition",
)
KINDS = (*UNANSWERABLE_KINDS, "paraphrase")
#: Where the card states the file's checksum.
CHECKSUM = re.compile(r"SHA-256 of `questions.jsonl`: `([0-9a-f]{64})`")


@dataclass(frozen=True)
class Written:
    """One hand-written question over one paragraph of half A."""

    article: str
    paragraph: int
    question: str
    answerable: bool
    kind: str
    sentence: str | None


def load(path: Path = QUESTIONS) -> list[Written]:
    """Return the items of ``path``, one JSON object a line.

    Raises:
        ValueError: naming the line that is not an item.
    """
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            data = json.loads(line)
            items.append(Written(**data))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path.name} line {number}: not an item ({exc})") from None
    return items


def problems(items: list[Written], squad: Path = SQUAD1) -> list[str]:
    """Return what is wrong with ``items`` against the SQuAD file they were written over (empty: nothing)."""
    paragraphs_of = contexts(squad)
    out = []
    seen: set[str] = set()
    for n, item in enumerate(items, 1):
        where = f"item {n} ({item.question[:40]!r})"
        paragraphs = paragraphs_of.get(item.article)
        if paragraphs is None or not 0 <= item.paragraph < len(paragraphs):
            out.append(f"{where}: no paragraph {item.paragraph} of {item.article!r} in {squad.name}")
            continue
        if item.kind not in KINDS:
            out.append(f"{where}: kind {item.kind!r} is not one of {', '.join(KINDS)}")
        if item.answerable != (item.kind == "paraphrase"):
            out.append(f"{where}: kind {item.kind!r} does not go with answerable={item.answerable}")
        if item.answerable and (
            not item.sentence or len(item.sentence) < 20 or item.sentence not in paragraphs[item.paragraph]
        ):
            out.append(f"{where}: its sentence is not a verbatim piece (20 characters or more) of its paragraph")
        if not item.answerable and item.sentence is not None:
            out.append(f"{where}: an unanswerable question has no sentence")
        if not item.question.strip().endswith("?"):
            out.append(f"{where}: a question ends with '?'")
        key = " ".join(item.question.lower().split())
        if key in seen:
            out.append(f"{where}: asked twice")
        seen.add(key)
    return out


@dataclass(frozen=True)
class Reading:
    """A second reader's judgement of one item, made seeing only its paragraph and its question."""

    answerable: bool
    sentence: str | None


def _sentences_of(context: str, piece: str | None) -> set[int]:
    """Return the numbers of the sentences of ``context`` that the verbatim ``piece`` overlaps (empty: none)."""
    at = context.find(piece) if piece else -1
    if at < 0 or piece is None:
        return set()
    return {n for n, (a, b) in enumerate(sentence_spans(context)) if a < at + len(piece) and at < b}


def agrees(item: Written, reading: Reading, context: str) -> bool:
    """Return whether ``reading`` agrees with ``item``: the same verdict and, when answerable, the same sentence."""
    if item.answerable != reading.answerable:
        return False
    return not item.answerable or bool(_sentences_of(context, item.sentence) & _sentences_of(context, reading.sentence))


def load_readings(path: Path = READINGS) -> dict[tuple[str, int, str], Reading]:
    """Return the second reading of each item read, by ``(article, paragraph, question)``."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        data = json.loads(line)
        out[(data["article"], data["paragraph"], data["question"])] = Reading(data["answerable"], data["sentence"])
    return out


def contexts(squad: Path = SQUAD1) -> dict[str, list[str]]:
    """Return each article's paragraphs by title."""
    return {a["title"]: [p["context"] for p in a["paragraphs"]] for a in json.loads(squad.read_text())["data"]}


def checksum(path: Path = QUESTIONS) -> str:
    """Return the SHA-256 of ``path``'s bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def card_checksum(card: Path = CARD) -> str | None:
    """Return the checksum the data card states, or ``None`` when it states none."""
    found = CHECKSUM.search(card.read_text(encoding="utf-8"))
    return found.group(1) if found else None


def counts(items: list[Written]) -> str:
    """Return the card's tables: items per kind, and per article with its fold and paragraphs covered."""
    folds = fold_of_titles()
    lines = ["| kind | items |", "| --- | ---: |"]
    by_kind = Counter(i.kind for i in items)
    lines += [f"| {kind} | {by_kind[kind]} |" for kind in KINDS if by_kind[kind]]
    lines += ["", "| article | fold | paragraphs | answerable | unanswerable |", "| --- | ---: | ---: | ---: | ---: |"]
    for title in sorted({i.article for i in items}, key=lambda t: (folds[t], t)):
        mine = [i for i in items if i.article == title]
        covered = len({i.paragraph for i in mine})
        yes = sum(i.answerable for i in mine)
        lines.append(f"| {title} | {folds[title]} | {covered} | {yes} | {len(mine) - yes} |")
    return "\n".join(lines)


def main() -> int:
    items = load()
    found = problems(items)
    stated, actual = card_checksum(), checksum()
    if stated != actual:
        found.append(f"the card states SHA-256 {stated}, the file's is {actual}")
    print(counts(items))
    print(f"\n{len(items)} items; SHA-256 of `questions.jsonl`: `{actual}`")
    for line in found:
        print(f"problem: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
