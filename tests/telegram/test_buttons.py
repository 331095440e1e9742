"""Button data: answer buttons and /articles buttons round-trip, fit Telegram, and refuse forged data."""

from __future__ import annotations

import pytest

from bot.telegram.buttons import (
    MAX_CALLBACK_DATA,
    Button,
    LibraryButton,
    answer_buttons,
    closest_buttons,
    decode_button,
    decode_library_button,
)
from index.answer import MAX_K
from tests.support.telegram_text import FP, make_passage


def test_buttons_round_trip_and_fit_telegram() -> None:
    for button in (
        Button("next", 999_999_999, "0123abcd", rank=MAX_K - 1),
        Button("context", 999_999_999, "0123abcd", paragraph=999_999_999, start=999_999_998, end=999_999_999),
        Button("closest", 1, "0123abcd", paragraph=3, start=0, end=0),
    ):
        data = button.encode()
        assert len(data.encode()) <= MAX_CALLBACK_DATA
        assert decode_button(data) == button


@pytest.mark.parametrize(
    "data",
    [
        None,
        "",
        "zz",
        "n:0123abcd:1",
        "n:1:0123abcd",
        "n:1:0123abcd:1:2",
        "c:1:0123abcd:1",
        "q:1:0123abcd:1",
        "n:1:XYZ:1",
        "n:x:0123abcd:1",
        "c:-1:0123abcd:1:0:0",
        "u:1",
        "p:0",
    ],
)
def test_unknown_button_data_is_not_ours(data: str | None) -> None:
    assert decode_button(data) is None


def test_answer_buttons() -> None:
    passage = make_passage("Text.", ((0, 5),), paragraph=3, paragraphs=5)
    labels = dict(answer_buttons(passage))
    assert set(labels) == {"More context", "Next match"}
    assert decode_button(labels["Next match"]) == Button("next", 7, FP, rank=1)
    assert decode_button(labels["More context"]) == Button("context", 7, FP, paragraph=3, start=0, end=5)
    assert [label for label, _ in answer_buttons(passage, rank=MAX_K - 1)] == ["More context"]  # nothing after
    assert [label for label, _ in closest_buttons(passage)] == ["Show closest passage"]
    assert closest_buttons(None) == []


def test_library_buttons_round_trip() -> None:
    for button in (LibraryButton("use", 0), LibraryButton("use", 999_999_999), LibraryButton("page", 3)):
        assert decode_library_button(button.encode()) == button
    for data in ("u:", "u:x", "p:-1", "u:1:2", "n:1:0123abcd:1", None):
        assert decode_library_button(data) is None


@pytest.mark.parametrize("data", ["n:1:0123abcd:0", "n:1:0123abcd:20", "n:1:0123abcd:21", "n:1:0123abcd:999999999"])
def test_next_match_data_with_a_rank_out_of_range_is_not_a_button(data: str) -> None:
    assert decode_button(data) is None


def test_next_match_data_in_range_is_a_button() -> None:
    assert decode_button("n:5:0123abcd:19") == Button("next", 5, "0123abcd", rank=19)
