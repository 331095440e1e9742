"""Follow-ups: a short or elliptical question asked by replying to an answer, read in the light of the
question that answer belongs to.

The rule is deliberately simple and predictable: a follow-up that is short (at most
:data:`SHORT_WORDS` words), starts with "and", "but", "what about", "how about" or "also", or
is not long (:data:`PRONOUN_WORDS` words) and holds a pronoun ("it", "they", "its", ...)
gets the content words of the earlier question that it lacks appended, unless it names a subject of its own
(:data:`OWN_SUBJECT` content words or more: "and what about the swimming pool?" is asked as it is):
"and who controls it?"
after "Which two roads meet at Saraqeb?" becomes "and who controls it? two roads meet Saraqeb".
A full question of its own is left alone.
"""

from __future__ import annotations

import re

#: A follow-up of at most this many words is read with the earlier question.
SHORT_WORDS = 3
#: A follow-up with this many content words or more has a subject of its own and is asked as it is.
OWN_SUBJECT = 2
#: A follow-up of at most this many words that holds a pronoun ("it", "they") is read with the earlier one.
PRONOUN_WORDS = 8
_OPENERS = ("and ", "but ", "what about ", "how about ", "also ", "then ", "so ")
_PRONOUNS = frozenset(
    re.findall(r"\S+", "it its it's they them their theirs he him his she her hers this that these those there")
)
_STOP = frozenset(
    re.findall(
        r"\S+",
        """
        a an the of in on at to for from by with about into over under and or but not no is are was were be
        been being do does did done has have had having can could will would shall should may might must
        what which who whom whose when where why how that this these those it its they them their he him his
        she her i me my we us our you your there here than then so also as if up out just very more most
        some any all each other such only own same too say says said tell told article according s
        """,
    )
)
_WORD = re.compile(r"[\w'’-]+")


def content_words(text: str) -> list[str]:
    """Return the words of ``text`` that carry its subject (no stop words, no pronouns), in order, once each."""
    seen: dict[str, str] = {}
    for word in _WORD.findall(text):
        key = word.lower().strip("'’-")
        if key and key not in _STOP and key not in _PRONOUNS and key not in seen:
            seen[key] = word
    return list(seen.values())


def is_elliptical(question: str) -> bool:
    """Return whether ``question`` leans on an earlier one: short, opening with "and"/"what about", or a pronoun."""
    lowered = question.lower().strip()
    words = [w.lower() for w in _WORD.findall(lowered)]
    if len(words) <= SHORT_WORDS or lowered.startswith(_OPENERS):
        return True
    return len(words) <= PRONOUN_WORDS and any(w in _PRONOUNS for w in words)


def expand_follow_up(question: str, earlier: str) -> str:
    """Return ``question`` with the content words of ``earlier`` it lacks appended, when it is elliptical and
    names no subject of its own."""
    if not earlier or not is_elliptical(question) or len(content_words(question)) >= OWN_SUBJECT:
        return question
    have = {w.lower() for w in _WORD.findall(question)}
    missing = [w for w in content_words(earlier) if w.lower() not in have]
    return f"{question} {' '.join(missing)}" if missing else question
