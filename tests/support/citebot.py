"""Running the real ``citebot`` command as a user would: its environment, and a run that measures its peak memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import CITEBOT


def citebot_environment(tmp_path: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment ``run_citebot`` runs ``citebot`` in: no settings of ours, the library in
    ``tmp_path/cli-data``, no colour, 100 columns, then ``env``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_"))}
    environment.update({"CITEBOT_DATA_DIR": str(tmp_path / "cli-data"), "NO_COLOR": "1", "COLUMNS": "100"})
    environment.update(env or {})
    return environment


@dataclass(frozen=True)
class Measured:
    """A finished ``citebot`` run: its exit code, its output, its peak RSS (MB) and whether it was killed."""

    returncode: int
    stdout: str
    stderr: str
    peak_mb: float
    killed: bool


#: Runs ``argv`` under an address-space limit of ``argv[1]`` bytes (0: none) and writes its peak RSS (kB) to the
#: file named by ``argv[0]``: a small process of its own starts citebot, since Linux starts a child's peak RSS at its
#: parent's size when it forks (and pytest's is large: 1.7 GB late in a whole run).
_MEASURE = (
    "import resource, subprocess, sys; limit = int(sys.argv[2]); "
    "limit and resource.setrlimit(resource.RLIMIT_AS, (limit, limit)); code = subprocess.call(sys.argv[3:]); "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(code)"
)


def run_measured(tmp_path: Path, *args: str, timeout: float = 60, address_space: int = 0) -> Measured:
    """Run ``citebot args`` as ``run_citebot`` does; return what it printed and its own peak RSS.

    A run still going after ``timeout`` seconds is killed (``killed`` is then true), so a hang fails a test quickly.
    ``address_space`` (bytes; 0: none) caps citebot's virtual memory, so a runaway allocation fails fast.
    """
    peak = tmp_path / ".peak-rss"
    peak.unlink(missing_ok=True)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", _MEASURE, str(peak), str(address_space), CITEBOT, *args], stdout=out, stderr=err,
            stdin=subprocess.DEVNULL, env=citebot_environment(tmp_path), cwd=tmp_path, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            process.wait(timeout)
            killed = False
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the measuring process and citebot, its child
            process.wait()
            killed = True
        out.seek(0)
        err.seek(0)
        peak_mb = int(peak.read_text()) / 1024 if peak.exists() else 0.0
        return Measured(process.returncode, out.read(), err.read(), peak_mb, killed)
