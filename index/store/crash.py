"""Test-only: a process that kills itself at a named step of a write, so tests can prove a crash there is harmless.

Set ``CITEBOT_TEST_KILL_AT`` to one of :data:`STEPS` and the process sends itself SIGKILL when it reaches that step
(``tests/hostile/test_crash.py``). Unset (always, outside tests), :func:`crash_point` is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

#: The environment variable naming the step to die at (test-only).
KILL_AT = "CITEBOT_TEST_KILL_AT"
#: The steps of adding an article that write: its vector file written, the catalog transaction open (rows inserted,
#: not committed), the catalog committed (before an old version's vector file is deleted and readers are told).
ADD_STEPS = ("vectors-written", "catalog-open", "committed")
#: Replacing a changed article (same source) adds one more: the old version's vector file deleted (the first one, when
#: more than one goes), before readers are told.
REPLACE_STEPS = (*ADD_STEPS, "vector-deleted")
#: The steps of removing articles: the catalog transaction open (rows deleted, not committed), committed (no vector
#: file deleted yet), the first vector file deleted.
REMOVE_STEPS = ("catalog-open", "committed", "vector-deleted")
#: Every step a test may name.
STEPS = tuple(dict.fromkeys((*REPLACE_STEPS, *REMOVE_STEPS)))


def crash_point(step: str) -> None:
    """Kill this process with SIGKILL if ``CITEBOT_TEST_KILL_AT`` names ``step`` (test-only); else return."""
    if os.environ.get(KILL_AT) == step:
        os.kill(os.getpid(), signal.SIGKILL)
