"""Answer: the one function every front end calls, and the typed result it returns.

citebot never writes text of its own: an :class:`Answer` holds passages of
the article, verbatim, with the answering sentence marked, and says whether
the article answers the question at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from index.clean import normalize
from index.errors import QuestionError
from index.retrieve import Ranking, Retriever

#: Longer questions are refused; nobody types a question this long.
MAX_QUESTION_CHARS = 1000
#: How many passages may be asked for at once.
MAX_K = 20
#: What every front end says when the article does not answer.
NOT_FOUND = "The article does not answer that."
#: Default cut-off of :func:`answerability`, a probability: the decision model
#: (``index/ranker.py``) was fitted with balanced classes, so 0.5 is where a
#: question from the article and one from elsewhere are equally likely
#: (``python benchmarks/seed.py`` and ``citebot eval`` measure it).
MIN_SCORE = 0.5


@dataclass(frozen=True)
class Passage:
    """One quoted paragraph of the article.

    Attributes:
        text: the paragraph, an exact substring of the cleaned article.
        paragraph: its 1-based position in the article.
        paragraphs: how many paragraphs the article has.
        score: how well it matches the question (higher is better).
        highlight: ``(start, end)`` offsets into ``text`` of the answering sentence(s).
        start: offset of ``text`` in the cleaned article.
        end: offset one past its end.
    """

    text: str
    paragraph: int
    paragraphs: int
    score: float
    highlight: tuple[tuple[int, int], ...]
    start: int
    end: int

    @property
    def position(self) -> str:
        """Where the passage stands, e.g. ``"paragraph 4 of 21"``."""
        return f"paragraph {self.paragraph} of {self.paragraphs}"

    @property
    def sentence(self) -> str:
        """The first marked sentence, or ``""``."""
        if not self.highlight:
            return ""
        start, end = self.highlight[0]
        return self.text[start:end]

    def to_dict(self) -> dict[str, Any]:
        """Return the passage as in citebot's JSON contract."""
        return {
            "text": self.text,
            "paragraph": self.paragraph,
            "paragraphs": self.paragraphs,
            "score": round(self.score, 4),
            "highlight": [list(span) for span in self.highlight],
        }


@dataclass(frozen=True)
class Answer:
    """citebot's reply to one question.

    Attributes:
        question: the question as asked (whitespace-normalised).
        found: whether the article answers it; when ``False`` the passages are
            only the nearest text found, not an answer.
        passages: the best passages, best first.
        confidence: the answerability score that ``found`` was decided from.
    """

    question: str
    found: bool
    passages: tuple[Passage, ...]
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"question", "found", "passages"}``, citebot's stable JSON contract."""
        return {
            "question": self.question,
            "found": self.found,
            "passages": [p.to_dict() for p in self.passages],
        }


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


def answerability(ranking: Ranking) -> float:
    """Return the probability that the article answers the question (see :mod:`index.ranker`)."""
    return ranking.answerability


def answer(retriever: Retriever, question: str, k: int = 3, min_score: float = MIN_SCORE) -> Answer:
    """Answer ``question`` from the article behind ``retriever`` by quoting it.

    Args:
        retriever: the searchable article (see :func:`index.build.open_article`).
        question: the user's question.
        k: how many passages to return, from 1 to :data:`MAX_K`.
        min_score: the answerability below which ``found`` is ``False``.

    Returns:
        An :class:`Answer` with ``k`` passages (fewer when the article is
        shorter), best first, each marking its best-matching sentence.

    Raises:
        QuestionError: for an empty or over-long question.
        ValueError: when ``k`` is out of range.
    """
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be from 1 to {MAX_K}, got {k}")
    text = clean_question(question)
    ranking = retriever.rank(text)
    index = retriever.index
    article = index.article
    passages = []
    for scored in ranking.paragraphs[:k]:
        start, end = article.paragraphs[scored.paragraph]
        highlight: tuple[tuple[int, int], ...] = ()
        if scored.sentences:
            best = index.sentences[scored.sentences[0]]
            highlight = ((best.start - start, best.end - start),)
        passages.append(
            Passage(
                text=article.text[start:end],
                paragraph=scored.paragraph + 1,
                paragraphs=len(article.paragraphs),
                score=scored.score,
                highlight=highlight,
                start=start,
                end=end,
            )
        )
    confidence = answerability(ranking)
    return Answer(question=text, found=confidence >= min_score, passages=tuple(passages), confidence=confidence)
