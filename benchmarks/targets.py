"""Issue 24's targets, in one place: each benchmark prints the rows it measures, met or missed.

``benchmarks/seed.py`` measures the rows on the bundled article's seed sets, ``benchmarks/tune.py`` the held-out
SQuAD rows (six folds by article over half A), ``benchmarks/latency.py`` the time of one question on one thread.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One measure and its bound: at least ``bound`` (``most=False``) or at most (``most=True``)."""

    name: str
    label: str
    bound: float
    most: bool = False

    def met(self, value: float) -> bool:
        """Return whether ``value`` meets the bound."""
        return value <= self.bound if self.most else value >= self.bound


TARGETS = (
    Target("squad2_rejected_at_found_0.90", "SQuAD 2.0 unanswerable rejected at answerable found 0.90", 0.60),
    Target("neartopic_rejected", "near-topic sets rejected (seed answerable found >= 0.95)", 0.80),
    Target("paraphrases_found", "paraphrase sets found", 0.90),
    Target("paraphrases_first", "paraphrase sets: right paragraph first", 0.85),
    Target("library_r1", "library R@1", 0.88),
    Target("library_r3", "library R@3", 0.965),
    Target("library_highlight", "library: answer in the marked sentence", 0.82),
    Target("article_ms_p50", "one question, one thread: bundled article p50 (ms)", 120.0, most=True),
    Target("library_ms_p50", "one question, one thread: 24-article library p50 (ms)", 200.0, most=True),
)
BY_NAME = {t.name: t for t in TARGETS}


def table(measured: dict[str, float]) -> tuple[str, list[str]]:
    """Return the Markdown table of the targets in ``measured`` (by :attr:`Target.name`) and the names missed."""
    lines = ["| measure | now | target | |", "| --- | ---: | ---: | --- |"]
    missed = []
    for target in TARGETS:
        if target.name not in measured:
            continue
        value = measured[target.name]
        ok = target.met(value)
        missed += [] if ok else [target.name]
        shown = f"{value:.1f}" if target.most else f"{value:.3f}"
        sign = "<=" if target.most else ">="
        lines.append(f"| {target.label} | {shown} | {sign} {target.bound:g} | {'met' if ok else 'MISSED'} |")
    return "\n".join(lines), missed
