"""Answerability signals: can the marked sentence and its passage answer the question, beyond sharing its topic?

A question on the article's subject but beyond what it says ("What is the
capital of Syria?" asked of a news story on Idlib) lands on a passage full of
its topic words; what gives it away is what the passage *lacks*: an
informative question word found nowhere near ("capital"), the thing asked for
(a number for "how many", a date for "when", a name for "who"), the noun the
question is about ("which *party*").

Everything here takes plain inputs, so any retrieval can call it: the question
text, the marked sentence, its passage, the IDF of the collection searched
(with the weight of a word it lacks) and the question's stemmed terms from
:func:`index.analysis.words.tokenize`. :func:`signals` returns named features;
:data:`FEATURES` is their order in the decision model (``index/search/ranker.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from index.analysis.words import tokenize
from index.reading.clean import MONTHS

#: The answer types a question can ask for, as :func:`expected_type` names them.
ANSWER_TYPES = ("number", "date", "person", "place")

FEATURES = (
    "sentence_missing_max_idf",  # the rarest question term the marked sentence lacks, over the rarest possible
    "passage_missing_max_idf",  # the same for its passage
    "sentence_missing_terms",  # log(1 + question terms the marked sentence lacks)
    "focus_in_sentence",  # the noun asked about ("what/which X", "how many X") is in the marked sentence
    "focus_in_passage",  # ... in the passage
    "focus_in_collection",  # ... anywhere in the collection searched
    "collection_missing_terms",  # log(1 + question terms found nowhere in the collection)
    "type_missing",  # the question asks for a number/date/person/place and the marked sentence has none
    "negation_mismatch",  # the question says "not"/"never" and the sentence does not
    "sentence_novel_terms",  # log(1 + the sentence's content words the question lacks): room for an answer
    "names_missing_sentence",  # share of the question's names and numbers the marked sentence lacks
    "names_missing_passage",  # ... that the passage lacks
)

_NUMBER_QUESTION = re.compile(
    r"\b(how (many|much|long|old|far|large|big|high|tall|often|fast|deep|wide|heavy)|what (is |was |are |were )?"
    r"(the )?(percentage|percent|number|amount|proportion|size|population|distance|cost|price)|how much)\b",
    re.IGNORECASE,
)
_DATE_QUESTION = re.compile(
    r"\b(when|what (year|date|time|day|month|decade|century|period|era)|which (year|century|decade|day|month)"
    r"|in what (year|century|decade|month)|since when)\b",
    re.IGNORECASE,
)
_PERSON_QUESTION = re.compile(r"^\W*(who|whom|whose)\b|\b(who|whom|whose)\b", re.IGNORECASE)
_PLACE_QUESTION = re.compile(
    r"\b(where|what (country|city|town|region|province|place|state|continent))\b", re.IGNORECASE
)

_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen"
    "|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundreds?|thousands?|millions?"
    "|billions?|trillions?|dozens?|half|third|quarter|several|few|single|double|twice|once|thrice"
)
_NUMBER = re.compile(rf"\d|\b({_NUMBER_WORDS})\b", re.IGNORECASE)
_DATE = re.compile(
    rf"\b(1\d{{3}}|20\d{{2}}|\d{{1,4}}s|{MONTHS}|monday|tuesday|wednesday|thursday|friday|saturday|sunday"
    r"|centur(y|ies)|decades?|years?|months?|weeks?|days?|today|yesterday|tomorrow|tonight|night|morning|evening"
    r"|spring|summer|autumn|fall|winter|ago|recently|later|earlier|since|until|during|before|after|era|age|period"
    r"|dynasty|reign|bc|ad|bce|ce)\b",
    re.IGNORECASE,
)
_CAPITALISED = re.compile(r"\b[A-Z][\w'’-]*")
_NEGATION = re.compile(r"\b(not|never|no|none|neither|nor|without|cannot)\b|n[’']t\b", re.IGNORECASE)
#: After "what"/"which" (and a verb or article), the first content word is what is asked about.
_FOCUS = re.compile(
    r"\b(?:what|which|how (?:many|much))\s+(?:(?:is|are|was|were)\s+)?(?:(?:the|a|an)\s+)?"
    r"(?:(?:kind|kinds|sort|sorts|type|types|name|names)\s+of\s+(?:(?:the|a|an)\s+)?)?([A-Za-z][\w-]*)",
    re.IGNORECASE,
)
#: Words after "what" that start a verb phrase ("what did ..."), not a noun asked about.
_NOT_FOCUS = frozenset(
    [
        "did",
        "does",
        "do",
        "has",
        "have",
        "had",
        "is",
        "are",
        "was",
        "were",
        "can",
        "could",
        "will",
        "would",
        "should",
        "may",
        "might",
        "must",
    ]
)


@dataclass(frozen=True)
class Collection:
    """What the signals need to know about the text searched: each stemmed term's IDF and the weight of an absent one.

    Attributes:
        idf: term -> IDF over the collection's passages.
        unknown_idf: the weight of a term the collection lacks (as rare as a term can be).
    """

    idf: Mapping[str, float]
    unknown_idf: float

    def weight(self, term: str) -> float:
        """Return the term's IDF, or ``unknown_idf`` when the collection lacks it."""
        return self.idf.get(term, self.unknown_idf)


def expected_type(question: str) -> str | None:
    """Return what kind of answer the question asks for (one of :data:`ANSWER_TYPES`), or ``None``."""
    if _NUMBER_QUESTION.search(question):
        return "number"
    if _DATE_QUESTION.search(question):
        return "date"
    if _PLACE_QUESTION.search(question):
        return "place"
    if _PERSON_QUESTION.search(question):
        return "person"
    return None


def _names(text: str, skip_first: bool = True) -> list[str]:
    """Return the capitalised words of ``text`` (the sentence's first word only when it is not a common word)."""
    out = []
    for match in _CAPITALISED.finditer(text):
        if skip_first and match.start() == len(text) - len(text.lstrip(" \"'“‘([")):
            continue
        out.append(match.group(0).lower())
    return out


def has_type(sentence: str, kind: str, question: str = "") -> bool:
    """Return whether ``sentence`` holds something of answer type ``kind`` that ``question`` does not already say.

    Raises:
        ValueError: for a ``kind`` not in :data:`ANSWER_TYPES`.
    """
    asked = question.lower()
    if kind == "number":
        return any(m.group(0).lower() not in asked for m in _NUMBER.finditer(sentence))
    if kind == "date":
        return any(m.group(0).lower() not in asked for m in _DATE.finditer(sentence))
    if kind in ("person", "place"):
        asked_words = set(re.findall(r"[\w'’-]+", asked))
        return any(name not in asked_words for name in _names(sentence))
    raise ValueError(f"unknown answer type {kind!r}; expected one of {', '.join(ANSWER_TYPES)}")


def focus_term(question: str) -> str | None:
    """Return the stemmed noun the question asks about ("what *party*", "how many *soldiers*"), or ``None``."""
    match = _FOCUS.search(question)
    if not match or match.group(1).lower() in _NOT_FOCUS:
        return None
    terms = tokenize(match.group(1))
    return terms[0] if terms else None


_NAME_OR_NUMBER = re.compile(r"\b(?:[A-Z][\w'’-]*|\d[\d,.]*)")


def names(question: str) -> list[str]:
    """Return the question's names and numbers, lower-cased: capitalised words after the first word, and figures."""
    found = []
    for match in _NAME_OR_NUMBER.finditer(question):
        word = match.group(0).rstrip(".,")
        if match.start() == len(question) - len(question.lstrip(" \"'“‘([")) and not word[0].isdigit():
            continue
        found.append(word.lower())
    return list(dict.fromkeys(found))


def _missing_share(wanted: Sequence[str], text: str) -> float:
    if not wanted:
        return 0.0
    words = set(re.findall(r"[\w'’-]+", text.lower())) | set(re.findall(r"\d[\d,.]*\d|\d", text))
    return sum(w not in words for w in wanted) / len(wanted)


def _missing_max(terms: Sequence[str], present: set[str], collection: Collection) -> float:
    weights = [collection.weight(t) for t in terms if t not in present]
    return max(weights, default=0.0) / collection.unknown_idf if collection.unknown_idf > 0 else 0.0


def signals(
    question: str, sentence: str, passage: str, collection: Collection, terms: Sequence[str]
) -> dict[str, float]:
    """Return the named answerability features (:data:`FEATURES`) of the marked ``sentence`` in ``passage``.

    Args:
        question: the question as asked.
        sentence: the marked (best) sentence's text.
        passage: the text of the passage that holds it.
        collection: IDF of the collection searched.
        terms: the question's stemmed content words (:func:`index.analysis.words.tokenize`).
    """
    import math

    unique = list(dict.fromkeys(terms))
    in_sentence = set(tokenize(sentence))
    in_passage = set(tokenize(passage)) | in_sentence
    focus = focus_term(question)
    kind = expected_type(question)
    question_negated = bool(_NEGATION.search(question))
    return {
        "sentence_missing_max_idf": _missing_max(unique, in_sentence, collection),
        "passage_missing_max_idf": _missing_max(unique, in_passage, collection),
        "sentence_missing_terms": math.log1p(sum(t not in in_sentence for t in unique)),
        "focus_in_sentence": 1.0 if focus is None or focus in in_sentence else 0.0,
        "focus_in_passage": 1.0 if focus is None or focus in in_passage else 0.0,
        "focus_in_collection": 1.0 if focus is None or focus in collection.idf else 0.0,
        "collection_missing_terms": math.log1p(sum(t not in collection.idf for t in unique)),
        "type_missing": 1.0 if kind is not None and not has_type(sentence, kind, question) else 0.0,
        "negation_mismatch": 1.0 if question_negated and not _NEGATION.search(sentence) else 0.0,
        "sentence_novel_terms": math.log1p(len(in_sentence - set(unique))),
        "names_missing_sentence": _missing_share(names(question), sentence),
        "names_missing_passage": _missing_share(names(question), passage),
    }
