"""The Prometheus metrics of a citebot process (``GET /metrics``), in a registry of its own."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

T = TypeVar("T")

#: Latency buckets in seconds: a question answers in tens of milliseconds, an add in seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Questions by verdict, latency by stage, the library's size, errors by kind, fetches refused."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.questions = Counter("citebot_questions", "Questions answered, by verdict.", ["verdict"], registry=r)
        self.latency = Histogram(
            "citebot_latency_seconds",
            "Seconds per stage: queue (waiting for the search thread), answer (search and ranking), request (all).",
            ["stage"],
            buckets=BUCKETS,
            registry=r,
        )
        self.errors = Counter("citebot_errors", "Requests refused or failed, by kind.", ["kind"], registry=r)
        self.fetches_refused = Counter(
            "citebot_fetches_refused", "Articles whose URL or file was refused when added.", registry=r
        )
        self.articles = Gauge("citebot_articles", "Articles in the library.", registry=r)
        self.paragraphs = Gauge("citebot_paragraphs", "Paragraphs in the library.", registry=r)

    def timed(self, job: Callable[[], T], stage: str | None = None) -> Callable[[], T]:
        """Return ``job`` timed for a worker thread: from now until it starts as the ``queue`` stage, and itself as
        ``stage`` when given."""
        queued = time.perf_counter()

        def run() -> T:
            self.latency.labels("queue").observe(time.perf_counter() - queued)
            started = time.perf_counter()
            try:
                return job()
            finally:
                if stage is not None:
                    self.latency.labels(stage).observe(time.perf_counter() - started)

        return run
