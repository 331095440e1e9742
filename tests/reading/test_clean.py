"""Cleaning and ingesting: the bundled article, Markdown, HTML and odd text."""

from __future__ import annotations

from index.reading.article import Article
from index.reading.clean import clean_text, normalize
from index.reading.ingest import parse_article


def test_seed_keeps_the_story_and_drops_the_page_furniture(seed: Article) -> None:
    text = seed.text
    for furniture in ("3 min read", "[Getty]", "Comment:", "Follow us on", "stay connected", "Tags"):
        assert furniture not in text
    assert seed.title == "Turkey launches 'limited' operation to retake Idlib towns"
    assert seed.title not in text  # the headline (printed twice on the page) is metadata, not a paragraph
    assert seed.date == "20 February, 2020"
    assert len(seed.paragraphs) == 20
    assert seed.paragraph(0).startswith("A Turkish-led operation recaptured a key town")
    assert seed.paragraph(19) == "Agencies contributed to this report."


def test_seed_hard_line_break_inside_a_sentence_is_joined(seed: Article) -> None:
    manpads = next(seed.paragraph(i) for i in range(len(seed.paragraphs)) if "MANPADS" in seed.paragraph(i))
    assert "after reports that Ankara had recently provided MANPADs to the Syrian rebel groups." in manpads
    assert "\n" not in manpads
    assert "\u00a0" not in seed.text  # non-breaking spaces become plain ones
    assert "  " not in seed.text


def test_paragraph_spans_point_into_the_text(seed: Article) -> None:
    assert seed.text == "\n\n".join(seed.paragraph(i) for i in range(len(seed.paragraphs)))
    for start, end in seed.paragraphs:
        assert seed.text[start:end].strip() == seed.text[start:end] != ""


def test_normalize_handles_odd_unicode() -> None:
    raw = "Cafe\u0301\u200b  costs\u00a0\u20ac3\r\nnext\tline\x07"
    assert normalize(raw) == "Café costs €3\nnext line"


def test_hard_wrapped_plain_text_becomes_one_paragraph() -> None:
    raw = (
        "The committee met on Monday to discuss the budget for the coming year and\n"
        "agreed, after a long debate that lasted well into the evening hours, that\n"
        "the new library would be built next spring.\n\nA second paragraph."
    )
    cleaned = clean_text(raw)
    assert cleaned.title == ""  # a first line that runs on is not a headline
    assert cleaned.paragraphs[0].startswith("The committee met")
    assert cleaned.paragraphs[0].endswith("built next spring.")
    assert cleaned.paragraphs[1] == "A second paragraph."


def test_markdown_markup_is_stripped() -> None:
    md = (
        b"# River Report\n\nThe **river** rose by [two metres](http://x.test) on *Tuesday*.\n\n"
        b"![map](m.png)\n\n- Schools closed.\n"
    )
    article = parse_article(md, name="report.md")
    assert article.title == "River Report"
    assert article.paragraph(0) == "The river rose by two metres on Tuesday."
    assert article.paragraph(1) == "Schools closed."  # a list item, without its Markdown marker


def test_html_main_text_is_extracted() -> None:
    html = (
        b"<html><head><title>Harbour News</title></head><body><nav>Home | Sport | Weather</nav>"
        b"<article><h1>Harbour News</h1><p>The harbour reopened on Friday after the storm had closed it for a week.</p>"
        b"<p>Fishing boats returned to the quay the same afternoon, their crews said.</p></article>"
        b"<footer>Copyright 2024</footer></body></html>"
    )
    article = parse_article(html, name="page.html")
    assert "The harbour reopened on Friday after the storm had closed it for a week." in article.text
    assert "Fishing boats returned to the quay" in article.text
    assert "Copyright" not in article.text
    assert article.title == "Harbour News"


def test_cleaning_is_idempotent_on_its_own_output(seed: Article) -> None:
    again = parse_article(seed.text.encode(), name="again.txt")
    assert again.text == seed.text


def test_a_line_starting_with_a_digit_continues_running_text_but_not_a_headline() -> None:
    raw = (
        "Oxygen is a chemical element that forms the diatomic molecule O\n2 at standard temperature and pressure.\n\n"
        "Election results\n3 candidates stood for the seat."
    )
    paragraphs = clean_text(raw).paragraphs
    assert paragraphs[0].endswith("forms the diatomic molecule O 2 at standard temperature and pressure.")
    assert paragraphs[1:] == ("Election results", "3 candidates stood for the seat.")
