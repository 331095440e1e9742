"""Answer: the one function every front end calls, and the typed result it returns.

citebot never writes text of its own: an :class:`Answer` holds passages of
the library's articles, verbatim, each naming its article, with the answering
sentence marked, and says whether the articles searched answer the question at all.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from index.config import CONTEXT_REACH, MAX_K, MIN_SCORE, TOP_K, UNCERTAIN_SCORE
from index.errors import QuestionError
from index.reading.article import article_label
from index.reading.clean import normalize
from index.search.retrieve import Ranking, Searcher
from index.store.catalog import ArticleRecord

__all__ = [
    "MAX_K",
    "MIN_SCORE",
    "UNCERTAIN_SCORE",
    "Answer",
    "ArticleRef",
    "Passage",
    "answer",
    "clean_question",
    "compose",
    "context_range",
    "not_found",
    "uncertain",
    "verdict",
]

#: Longer questions are refused; nobody types a question this long.
MAX_QUESTION_CHARS = 1000
# MAX_K: how many passages may be asked for at once. MIN_SCORE: the default cut-off of Answer.confidence, a
# probability, at and above which the question is answered. The decision model (index/search/ranker.py) was fitted
# with balanced classes: questions the articles answer against off-topic questions and near-topic ones they do
# not answer (SQuAD 2.0's unanswerable questions, and questions asked with their answering paragraph held
# back); 0.3 rather than 0.5 keeps held-out SQuAD answerable questions found at 0.90 and more. From
# UNCERTAIN_SCORE up to MIN_SCORE the verdict is "uncertain": the closest passage is shown as such (README,
# "How it decides"; python benchmarks/seed.py and citebot eval measure it).


def context_range(paragraph: int, paragraphs: int, reach: int = CONTEXT_REACH) -> range:
    """Return the 1-based numbers of the paragraphs "More context" shows around paragraph ``paragraph`` of an
    article of ``paragraphs``: it and up to ``reach`` on each side.

    Raises:
        ValueError: when ``paragraph`` is not one of the article's (1 to ``paragraphs``).
    """
    if not 1 <= paragraph <= paragraphs:
        raise ValueError(f"paragraph {paragraph} is not one of the article's 1 to {paragraphs}")
    return range(max(1, paragraph - reach), min(paragraphs, paragraph + reach) + 1)


#: The three verdicts, from sure to not.
VERDICTS = ("answered", "uncertain", "unanswered")
Verdict = Literal["answered", "uncertain", "unanswered"]


def not_found(articles: int) -> str:
    """Return what every front end says when the articles searched do not answer (``articles`` of them)."""
    return "The article does not answer that." if articles == 1 else "The library does not answer that."


#: The reply when one article was searched (most front ends use :func:`not_found`).
NOT_FOUND = not_found(1)


def uncertain(articles: int) -> str:
    """Return what every front end says before the closest passage when the articles may not answer."""
    where = "The article" if articles == 1 else "The library"
    return f"{where} may not answer this; the closest passage is:"


def verdict(confidence: float, min_score: float = MIN_SCORE, uncertain_score: float = UNCERTAIN_SCORE) -> Verdict:
    """Return "answered" at or above ``min_score``, "uncertain" at or above ``uncertain_score``, else "unanswered"."""
    if confidence >= min_score:
        return "answered"
    if confidence >= uncertain_score:
        return "uncertain"
    return "unanswered"


@dataclass(frozen=True)
class ArticleRef:
    """Which article a passage comes from.

    Attributes:
        id: the article's id in the library.
        title: its headline, or ``""``.
        source: where it came from (a path, a URL, ``bundled:NAME``).
        date: its date when known.
        url: its web address when it came from the web.
        site: the site's name when known.
        fingerprint: the hash of its content (a button made for another version of it is stale).
    """

    id: int
    title: str
    source: str
    date: str | None = None
    url: str | None = None
    site: str | None = None
    fingerprint: str = ""

    @classmethod
    def of(cls, record: ArticleRecord) -> ArticleRef:
        """Return the reference to the catalog's ``record``."""
        return cls(record.id, record.title, record.source, record.date, record.url, record.site, record.fingerprint)

    @property
    def label(self) -> str:
        """A short human name: the title, else the last part of the source."""
        return article_label(self.title, self.source, self.id)

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"id", "title", "source", "date", "url"}`` as in citebot's JSON contract."""
        return {"id": self.id, "title": self.title, "source": self.source, "date": self.date, "url": self.url}


@dataclass(frozen=True)
class Passage:
    """One quoted paragraph of an article.

    Attributes:
        text: the paragraph, an exact substring of the article's cleaned text.
        paragraph: its 1-based position in the article.
        paragraphs: how many paragraphs the article has.
        score: how well it matches the question (higher is better).
        highlight: ``(start, end)`` offsets into ``text`` of the answering sentence(s).
        start: offset of ``text`` in the cleaned article.
        end: offset one past its end.
        article: the article it comes from.
        page: the page it is on, for a PDF.
    """

    text: str
    paragraph: int
    paragraphs: int
    score: float
    highlight: tuple[tuple[int, int], ...]
    start: int
    end: int
    article: ArticleRef
    page: int | None = None

    @property
    def position(self) -> str:
        """Where the passage stands, e.g. ``"paragraph 4 of 21"`` (``", page 3"`` added for a PDF)."""
        where = f"paragraph {self.paragraph} of {self.paragraphs}"
        return f"{where}, page {self.page}" if self.page is not None else where

    @property
    def sentence(self) -> str:
        """The first marked sentence, or ``""``."""
        if not self.highlight:
            return ""
        start, end = self.highlight[0]
        return self.text[start:end]

    def to_dict(self) -> dict[str, Any]:
        """Return the passage as in citebot's JSON contract."""
        out: dict[str, Any] = {
            "text": self.text,
            "paragraph": self.paragraph,
            "paragraphs": self.paragraphs,
            "score": round(self.score, 4),
            "highlight": [list(span) for span in self.highlight],
            "article": self.article.to_dict(),
        }
        if self.page is not None:
            out["page"] = self.page
        return out


@dataclass(frozen=True)
class Answer:
    """citebot's reply to one question.

    Attributes:
        question: the question as asked (whitespace-normalised).
        found: whether the articles searched answer it; when ``False`` the passages are
            only the nearest text found, not an answer.
        passages: the best passages, best first.
        confidence: the probability that the articles answer it, which ``found`` was decided from.
        articles: how many articles were searched (1: "the article", more: "the library").
        verdict: ``"answered"`` (``found``); ``"uncertain"`` (they may not answer: the passages are the
            closest text); ``"unanswered"``.
        degraded: why the answer-sentence model did not weigh in (a damaged installation), or ``None``.
    """

    question: str
    found: bool
    passages: tuple[Passage, ...]
    confidence: float
    articles: int = 1
    verdict: Verdict = "answered"
    degraded: str | None = None

    @property
    def not_found(self) -> str:
        """The "does not answer" line for this answer's scope."""
        return not_found(self.articles)

    @property
    def uncertain(self) -> str:
        """The "may not answer; the closest passage is" line for this answer's scope."""
        return uncertain(self.articles)

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"question", "found", "verdict", "passages"}`` (and ``"degraded"`` when it is), citebot's stable
        JSON contract."""
        out: dict[str, Any] = {
            "question": self.question,
            "found": self.found,
            "verdict": self.verdict,
            "passages": [p.to_dict() for p in self.passages],
        }
        if self.degraded is not None:
            out["degraded"] = self.degraded
        return out


def clean_question(question: str) -> str:
    """Return ``question`` normalised to one line.

    Raises:
        QuestionError: when it is empty, only whitespace, or too long.
    """
    if not isinstance(question, str):
        raise QuestionError(f"the question must be text, not {type(question).__name__}")
    text = " ".join(normalize(question).split())
    if not text:
        raise QuestionError("the question is empty; type a question about the article")
    if len(text) > MAX_QUESTION_CHARS:
        raise QuestionError(f"the question is too long ({len(text)} characters; the limit is {MAX_QUESTION_CHARS})")
    return text


def answer(
    searcher: Searcher,
    question: str,
    k: int = TOP_K,
    min_score: float = MIN_SCORE,
    scope: Collection[int] | None = None,
    uncertain_score: float = UNCERTAIN_SCORE,
) -> Answer:
    """Answer ``question`` from the library behind ``searcher`` by quoting it.

    Args:
        searcher: the searchable library (see :class:`index.search.retrieve.Searcher`).
        question: the user's question.
        k: how many passages to return, from 1 to :data:`MAX_K`.
        min_score: the confidence below which ``found`` is ``False``.
        scope: the ids of the articles to search; ``None`` searches the whole library.
        uncertain_score: the confidence below which the verdict is "unanswered" rather than "uncertain".

    Returns:
        An :class:`Answer` with ``k`` passages (fewer when the articles are
        shorter), best first, each naming its article and marking its best-matching sentence.

    Raises:
        QuestionError: for an empty or over-long question.
        ValueError: when ``k`` is out of range.
    """
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be from 1 to {MAX_K}, got {k}")
    text = clean_question(question)
    return compose(text, searcher.rank(text, scope), k, min_score, uncertain_score)


def compose(
    question: str,
    ranking: Ranking,
    k: int = TOP_K,
    min_score: float = MIN_SCORE,
    uncertain_score: float = UNCERTAIN_SCORE,
) -> Answer:
    """Return the :class:`Answer` (quotes and verdict) to the cleaned ``question`` whose ``ranking`` is given."""
    passages = []
    for scored in ranking.paragraphs[:k]:
        data = scored.article
        start, end = data.paragraphs[scored.paragraph]
        highlight: tuple[tuple[int, int], ...] = ()
        if scored.sentences:
            _, s_start, s_end = data.sentences[scored.sentences[0]]
            highlight = ((int(s_start) - start, int(s_end) - start),)
        passages.append(
            Passage(
                text=data.text[start:end],
                paragraph=scored.paragraph + 1,
                paragraphs=len(data.paragraphs),
                score=scored.score,
                highlight=highlight,
                start=start,
                end=end,
                article=ArticleRef.of(data.record),
                page=data.pages[scored.paragraph] if data.pages else None,
            )
        )
    decided = verdict(ranking.confidence, min_score, uncertain_score) if passages else "unanswered"
    return Answer(
        question=question,
        found=decided == "answered",
        passages=tuple(passages),
        confidence=ranking.confidence,
        articles=ranking.articles,
        verdict=decided,
        degraded=ranking.degraded,
    )
