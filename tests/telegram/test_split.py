"""Splitting Telegram HTML to 4096 characters: on paragraphs and sentences, never in a tag or an entity."""

from __future__ import annotations

import html
import random
import re
from html.parser import HTMLParser

import pytest

from bot.telegram.html import passage_html
from bot.telegram.split import MAX_MESSAGE, split_html, utf16_len
from tests.support.fake_telegram import parse_html
from tests.support.telegram_text import bold_texts, flat, make_passage, sentences


def test_a_short_message_is_one_part() -> None:
    assert split_html("<b>hi</b>") == ["<b>hi</b>"]
    assert split_html("  \n ") == []


@pytest.mark.parametrize("seed", range(6))
def test_long_quotes_split_on_sentences_into_valid_parts(seed: int) -> None:
    text = sentences(300, seed)
    start = text.index(". ", len(text) // 2) + 2
    end = text.index(".", start) + 1
    markup = passage_html(make_passage(text, ((start, end),)))
    parts = split_html(markup)
    assert len(parts) >= 3
    shown = []
    for part in parts:
        assert utf16_len(part) <= MAX_MESSAGE
        visible = parse_html(part)  # well-formed on its own: tags closed, never cut in a tag or an entity
        assert visible.strip()
        shown.append(visible)
    for visible in shown[:-1]:
        assert visible.rstrip().endswith(".")  # cut at a sentence end
    assert flat(" ".join(shown)) == flat(f"{text}\n“Harbour news”, paragraph 4 of 21")
    bold = [b for part in parts for b in bold_texts(part)]
    assert flat(" ".join(bold)) == flat(text[start:end])
    assert parts[-1].endswith("<i>paragraph 4 of 21</i>")


def test_split_prefers_a_blank_line_then_a_line_break() -> None:
    blocks = [f"<blockquote>{'word ' * 150}end.</blockquote>\n<i>paragraph {n} of 9</i>" for n in range(1, 9)]
    parts = split_html("\n\n".join(blocks), limit=2000)
    for part in parts:
        assert part.startswith("<blockquote>") and part.endswith("of 9</i>")  # whole paragraphs with their place
        parse_html(part)


def test_a_word_longer_than_a_message_is_cut_anywhere_but_in_an_entity() -> None:
    markup = "<b>" + "&amp;" * 3000 + "</b>"
    parts = split_html(markup, limit=500)
    assert all(utf16_len(p) <= 500 and p.startswith("<b>") and p.endswith("</b>") for p in parts)
    assert "".join(parse_html(p) for p in parts) == "&" * 3000


def test_utf16_counts_like_telegram() -> None:
    assert utf16_len("😀a") == 3
    parts = split_html("😀" * 5000, limit=MAX_MESSAGE)
    assert all(utf16_len(p) <= MAX_MESSAGE for p in parts) and sum(len(p) for p in parts) == 5000


def test_nesting_too_deep_for_the_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="nest"):
        split_html("<b><i><u>" + "x" * 100 + "</u></i></b>", limit=20)


# --- the invariants, on random markup ----------------------------------------------------------------

_OPENERS = {
    "b": "<b>",
    "i": "<i>",
    "u": "<u>",
    "code": "<code>",
    "blockquote": "<blockquote>",
    "a": '<a href="https://x.example/?a=1&amp;b=&quot;2&quot;">',
}
_TOKENS = ["\n", "\n\n", " ", ". ", "!” ", "&amp;", "&lt;", "&gt;", "&quot;", "&#33;", "&#x1F600;", "😀", "é"]


def _random_markup(rng: random.Random) -> str:
    """Return valid Telegram HTML: nested tags, entities, emoji, line breaks, sentences and words of any length."""
    out: list[str] = []
    open_tags: list[str] = []
    for _ in range(rng.randint(30, 150)):
        roll = rng.random()
        if roll < 0.08 and len(open_tags) < 3:
            name, opener = rng.choice([(n, o) for n, o in _OPENERS.items() if n not in open_tags])
            open_tags.append(name)
            out.append(opener)
        elif roll < 0.15 and open_tags:
            out.append(f"</{open_tags.pop()}>")
        elif roll < 0.3:
            out.append(rng.choice(_TOKENS))
        else:
            word = "".join(rng.choice("abcdefgh<>&\"'") for _ in range(rng.choice([1, 4, 9, 60, 300])))
            out.append(html.escape(word) + rng.choice([" ", ". ", ", ", "\n", ""]))
    out.extend(f"</{name}>" for name in reversed(open_tags))
    return "".join(out)


class _Styled(HTMLParser):
    """Each visible character that is not whitespace, with the opening tags around it (attributes included)."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.chars: list[tuple[str, tuple[str, ...]]] = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open.append(f"{tag} {attrs}")

    def handle_endtag(self, tag: str) -> None:
        assert self.open.pop().startswith(f"{tag} ")

    def handle_data(self, data: str) -> None:
        self.chars += [(c, tuple(self.open)) for c in data if not c.isspace()]


def _rebuilds(whole: str, pieces: list[str]) -> bool:
    """Whether ``pieces`` are ``whole`` cut into consecutive pieces, with only whitespace dropped at the cuts."""
    at = 0
    for piece in pieces:
        while at < len(whole) and whole[at].isspace():
            at += 1
        if not whole.startswith(piece.strip(), at):
            return False
        at += len(piece.strip())
    return not whole[at:].strip()


@pytest.mark.parametrize("seed", range(40))
def test_split_keeps_every_invariant_on_random_markup(seed: int) -> None:
    rng = random.Random(seed)
    markup = _random_markup(rng)
    limit = rng.choice([120, 300, 1200])  # room for the three tags open at most, a link among them
    parts = split_html(markup, limit)
    assert len(parts) >= 2
    for part in parts:
        assert utf16_len(part) <= limit  # every piece within the limit
        parse_html(part)  # tags never cut: every part is valid Telegram HTML on its own
        bare = re.sub(r"<[^<>]*>|&(?:#\d+|#x[0-9a-fA-F]+|[a-z]+);", "", part)
        assert not re.search(r"[<>&]", bare), part  # entities never cut
    assert _rebuilds(parse_html(markup), [parse_html(p) for p in parts])  # nothing lost, nothing repeated
    assert [c for p in parts for c in _Styled(p).chars] == _Styled(markup).chars  # every character keeps its tags


def test_pieces_concatenate_back_to_the_same_text() -> None:
    markup = "<b>One two.</b> Three <i>four five six.</i>\n\nSeven &amp; eight 😀 nine."
    for limit in range(16, len(markup)):
        parts = split_html(markup, limit)
        assert _rebuilds(parse_html(markup), [parse_html(p) for p in parts]), (limit, parts)
        assert all(utf16_len(p) <= limit for p in parts)


def test_tags_open_at_a_cut_are_closed_and_reopened() -> None:
    markup = '<a href="https://x.example/">' + "<b>" + "word " * 30 + "</b>" + "</a>"
    parts = split_html(markup, limit=60)
    assert len(parts) > 2
    for part in parts:
        assert part.startswith('<a href="https://x.example/"><b>') and part.endswith("</b></a>"), part


def test_whitespace_only_markup_longer_than_a_message_gives_no_part() -> None:
    assert split_html(" \n" * 100, limit=10) == []
    assert split_html("<b>" + " " * 100 + "</b>", limit=20) == []


# --- issue 23: a word longer than a message, made of emoji, accents and entities --------------------------------

#: Clusters a reader sees as one character each, several code points long: a cut inside one shows broken glyphs.
_CLUSTERS = [
    "👩\u200d👩\u200d👧\u200d👦",  # a family: four emoji joined by ZWJ
    "🇺🇦",  # a flag: two regional indicators
    "👍🏽",  # a skin tone modifier
    "e\u0301",  # a combining accent
    "1\ufe0f\u20e3",  # a keycap: digit, variation selector, enclosing keycap
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # a subdivision flag (tag characters)
    "🧑🏿\u200d🚀",  # a skin tone inside a ZWJ sequence
    "&amp;",
    "&lt;",
    "&#x1F600;",
    "x",
]


@pytest.mark.parametrize("limit", [MAX_MESSAGE, 700, 97])
def test_a_long_word_is_cut_only_between_what_a_reader_sees_as_characters(limit: int) -> None:
    """Issue 23: a 5,452-character word was cut inside entities and emoji."""
    rng = random.Random(limit)
    clusters = [rng.choice(_CLUSTERS) for _ in range(1400)]
    markup = "<b>" + "".join(clusters) + "</b>"
    visible = [html.unescape(c) for c in clusters]
    boundaries = {0}
    for cluster in visible:
        boundaries.add(max(boundaries) + len(cluster))
    parts = split_html(markup, limit)
    assert len(parts) >= 2
    at = 0
    for part in parts:
        assert utf16_len(part) <= limit and part.startswith("<b>") and part.endswith("</b>")
        at += len(parse_html(part))
        assert at in boundaries, (at, part[-20:])  # every part ends between two clusters, never inside one
    assert at == max(boundaries)


def test_a_pile_of_combining_marks_is_still_cut_to_fit() -> None:
    """A hostile "character" with thousands of combining marks must not make a message unsendable."""
    markup = "a" + "\u0301" * 5000
    parts = split_html(markup)
    assert all(utf16_len(p) <= MAX_MESSAGE for p in parts) and "".join(parts) == markup
