"""Hostile use of the ``citebot`` command: bad data directories, pipes, odd batch lines, settings, the console.

Each test drives the installed ``citebot`` as a real subprocess, with real files, the way a careless
user, a shell pipeline or a broken machine would; together they are the specification of what must hold.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from index.config import default_article
from tests.support.paths import CITEBOT

pytestmark = pytest.mark.slow  # runs real citebot processes

QUESTION = "Who denied the claim?"
OFFTOPIC = "How long should I boil an egg?"


def _one_error_line(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """Assert ``result`` failed with ``code`` and exactly one ``citebot: error:`` line holding ``fragments``."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("citebot: error:"), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _shell(script: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in bash with ``$CITEBOT`` set, a private data directory and no ``.env``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_"))}
    environment.update(CITEBOT=CITEBOT, CITEBOT_DATA_DIR=str(tmp_path / "cli-data"), NO_COLOR="1", **env)
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=180
    )


# --- the data directory -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda tmp: Path("/etc/passwd/x"), "cannot be created (Not a directory)"),
        (lambda tmp: tmp / "afile", "is a file, not a directory"),
        (lambda tmp: tmp / "afile" / "below", "cannot be created (Not a directory)"),
    ],
    ids=["under-etc-passwd", "is-a-file", "under-a-file"],
)
def test_unusable_data_dir_is_one_line_before_the_model_loads(run_citebot, tmp_path: Path, make, fragment) -> None:
    (tmp_path / "afile").write_text("not a directory\n")
    data_dir = make(tmp_path)
    # An unloadable model too: if the model were loaded first, its error would come out instead.
    result = run_citebot("ask", QUESTION, env={"CITEBOT_DATA_DIR": str(data_dir), "CITEBOT_MODEL": "/no/such/model"})
    line = _one_error_line(result, 2, f"data directory {data_dir}", fragment, "CITEBOT_DATA_DIR")
    assert "Traceback" not in result.stderr and result.stdout == "", line


def test_read_only_data_dir_is_one_line(run_citebot, tmp_path: Path) -> None:
    # Tests run as root here, and root may write into an ordinary directory whatever its mode (so citebot rightly
    # accepts a mode-0555 directory when run as root: it proves writability by creating a file, not by the mode
    # bits). Root still cannot create files in sysfs' /sys/kernel, which stands in for a read-only directory; run
    # as a normal user, the test makes a mode-0555 directory of its own (caught by the os.access check).
    if os.geteuid() == 0:
        data_dir = Path("/sys/kernel")
        if not data_dir.is_dir():
            pytest.skip("needs /sys/kernel to stand in for a directory that root cannot write")
    else:
        data_dir = tmp_path / "read-only"
        data_dir.mkdir(mode=0o555)
    result = run_citebot("ask", QUESTION, env={"CITEBOT_DATA_DIR": str(data_dir), "CITEBOT_MODEL": "/no/such/model"})
    _one_error_line(result, 2, f"data directory {data_dir} is not writable", "CITEBOT_DATA_DIR")


def test_a_data_dir_under_a_folder_that_cannot_be_entered_is_one_line(tmp_path: Path) -> None:
    """Found running the image's user against a root-owned folder: ``Path.exists`` raised PermissionError."""
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    data_dir = closed / "data"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_"))}
    environment.update(CITEBOT_DATA_DIR=str(data_dir), CITEBOT_MODEL="/no/such/model", NO_COLOR="1", HOME="/")
    command = [CITEBOT, "ask", QUESTION]
    if os.geteuid() == 0:  # root enters any folder: run as nobody, to whom the folder is closed
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", *command]
    else:
        closed.chmod(0)
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=environment, cwd="/", timeout=120)
    finally:
        closed.chmod(0o700)
    _one_error_line(result, 2, f"data directory {data_dir} cannot be reached (permission denied", "CITEBOT_DATA_DIR")


# --- pipes and standard streams -------------------------------------------------------------------------------------


def test_batch_into_head_ends_quietly_on_the_broken_pipe(tmp_path: Path) -> None:
    (tmp_path / "questions.txt").write_text(f"{QUESTION}\n" * 300)
    script = '"$CITEBOT" ask --json < questions.txt 2> err.txt | head -1; echo "status ${PIPESTATUS[0]}"'
    result = _shell(script, tmp_path)
    lines = result.stdout.splitlines()
    assert json.loads(lines[0])["question"] == QUESTION
    assert lines[1] == "status 141"  # 128 + SIGPIPE, what a shell shows for any Unix tool whose reader left
    assert (tmp_path / "err.txt").read_text() == ""  # no traceback, no "Exception ignored"


@pytest.mark.parametrize("command", ["ask --json", "console"])
def test_closed_stdin_is_one_line(tmp_path: Path, command: str) -> None:
    result = _shell(f'"$CITEBOT" {command} <&-', tmp_path)
    _one_error_line(result, 2, "standard input is closed")


@pytest.mark.parametrize("command", [f"ask --json '{QUESTION}'", f"ask '{QUESTION}'", "index"])
def test_stdout_on_a_full_disk_is_one_line(tmp_path: Path, command: str) -> None:
    result = _shell(f'"$CITEBOT" {command} > /dev/full', tmp_path)
    _one_error_line(result, 1, "cannot write to standard output (No space left on device)")


def test_closed_stdout_is_an_error_not_silence(tmp_path: Path) -> None:
    result = _shell(f"\"$CITEBOT\" ask '{QUESTION}' >&-", tmp_path)
    _one_error_line(result, 1, "standard output is closed")


# --- batch alignment ------------------------------------------------------------------------------------------------


def test_every_batch_line_gets_exactly_one_output_line(run_citebot, tmp_path: Path) -> None:
    lines = [
        QUESTION.encode(),
        b"",  # blank: an error object, so output line N still answers input line N
        b"ab\x00cd",  # a NUL byte
        b"x" * 2000,  # over the question limit
        "caf\u00e9".encode("latin-1"),  # not UTF-8
        b"   \t",
        b"y" * 200_000,  # far too long to keep in memory
        b"When did the truce collapse?\r",  # a CRLF line
        OFFTOPIC.encode(),
    ]
    (tmp_path / "q.bin").write_bytes(b"\n".join(lines) + b"\n")
    result = subprocess.run(
        [CITEBOT, "ask", "--json"],
        stdin=(tmp_path / "q.bin").open("rb"),
        capture_output=True,
        env={**os.environ, "CITEBOT_DATA_DIR": str(tmp_path / "data")},
        cwd=tmp_path,
        timeout=180,
    )
    out = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(out) == len(lines)
    errors = [i + 1 for i, obj in enumerate(out) if "error" in obj]
    assert errors == [2, 3, 4, 5, 6, 7]
    assert "NUL" in out[2]["error"] and "too long" in out[3]["error"] and "UTF-8" in out[4]["error"]
    assert "empty" in out[1]["error"] and "empty" in out[5]["error"] and "too long" in out[6]["error"]
    assert out[0]["found"] is True and out[7]["found"] is True and out[8]["found"] is False
    assert out[7]["question"] == "When did the truce collapse?"
    assert result.returncode == 2
    stderr = result.stderr.decode().splitlines()
    assert [line.split(":")[2].strip() for line in stderr] == [f"line {n}" for n in errors]


# --- settings and the model ------------------------------------------------------------------------------------------


def test_bad_value_in_env_file_names_the_file(run_citebot, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CITEBOT_TOP_K=many\n")
    result = run_citebot("ask", QUESTION)
    _one_error_line(result, 2, "CITEBOT_TOP_K='many' in .env is not valid")
    from_environment = run_citebot("ask", QUESTION, env={"CITEBOT_TOP_K": "lots"})
    _one_error_line(from_environment, 2, "CITEBOT_TOP_K='lots' is not valid")
    assert ".env" not in from_environment.stderr


def test_unknown_model_fails_fast_when_the_hub_is_unreachable(run_citebot) -> None:
    # The Hub is pointed at a closed local port, so the test means the same with or without a network.
    started = time.monotonic()
    result = run_citebot(
        "ask", QUESTION, env={"CITEBOT_MODEL": "no-such-org/no-such-model", "HF_ENDPOINT": "http://127.0.0.1:9"}
    )
    elapsed = time.monotonic() - started
    _one_error_line(result, 2, "'no-such-org/no-such-model'", "Hugging Face cache", "cannot be reached")
    assert elapsed < 40, f"took {elapsed:.0f} s"  # it took 75-89 s of retry warnings before


def test_a_cached_hub_model_still_loads_offline(run_citebot, embedder, tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    repo = cache / "models--citebot-test--mini"
    revision = "0" * 40
    shutil.copytree(embedder.location, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    env = {"CITEBOT_MODEL": "citebot-test/mini", "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": "http://127.0.0.1:9"}
    result = run_citebot("ask", QUESTION, "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["found"] is True


# --- the console ---------------------------------------------------------------------------------------------------


def _sections(out: str) -> list[str]:
    """Split console output at each prompt."""
    return out.split("? ")


def test_more_after_not_found_continues_with_the_nearest_text_in_order(run_citebot) -> None:
    ranked = json.loads(run_citebot("ask", OFFTOPIC, "--json", "-k", "6").stdout)
    assert ranked["found"] is False
    paragraphs = [p["paragraph"] for p in ranked["passages"]]
    result = run_citebot("console", input=f"{OFFTOPIC}\nmore\nquit\n")
    assert result.returncode == 0, result.stderr
    reply, more = _sections(result.stdout)[1:3]
    assert f"paragraph {paragraphs[0]} of 20" in reply
    assert "More of the nearest text (not an answer):" in more
    shown = [p for p in paragraphs if f"paragraph {p} of 20" in more]
    assert shown == paragraphs[1:4]  # passages 2-4, not 4-6: nothing skipped


def test_more_is_drawn_as_a_continuation(run_citebot) -> None:
    result = run_citebot("console", input=f"{QUESTION}\nmore\nquit\n")
    reply, more = _sections(result.stdout)[1:3]
    assert "Also relevant:" in reply
    assert more.lstrip().startswith("More passages:")
    assert "Also relevant:" not in more


def test_source_names_the_article_passed_not_the_one_indexed_first(run_citebot, tmp_path: Path) -> None:
    for folder in ("first", "second"):
        (tmp_path / folder).mkdir()
        shutil.copy(default_article(), tmp_path / folder / "news.txt")
    assert run_citebot("index", "--article", "first/news.txt").returncode == 0
    result = run_citebot("console", "--article", "second/news.txt", input="source\n")
    assert result.returncode == 0, result.stderr
    assert "from second/news.txt" in result.stdout and "first/news.txt" not in result.stdout


class _Pty:
    """``citebot console`` on a pseudo-terminal, as a person at a keyboard runs it."""

    def __init__(self, tmp_path: Path) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))  # wide: quotes stay on one line
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_"))}
        environment.update(CITEBOT_DATA_DIR=str(tmp_path / "data"), NO_COLOR="1", TERM="xterm")
        self.process = subprocess.Popen(
            [CITEBOT, "console"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=environment,
            cwd=tmp_path,
            # A shell gives a program it runs at a terminal Ctrl-C's default action, but a test run started in
            # the background inherits SIGINT ignored, and Python keeps an ignored SIGINT ignored: restore it.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = 120) -> str:
        """Read until ``text`` appears after what was already consumed; return what came before it."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not seen in {self.seen[-2000:]!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the other end closed
                    chunk = b""
                assert chunk, f"console ended before {text!r}: {self.seen[-2000:]!r}"
                self.seen += chunk.decode(errors="replace")
        before, _, self.seen = self.seen.partition(text)
        return before

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> int:
        try:
            return self.process.wait(timeout=30)
        finally:
            os.close(self.master)


def test_ctrl_c_cancels_the_line_or_answer_and_ctrl_d_quits(tmp_path: Path) -> None:
    console = _Pty(tmp_path)
    try:
        console.expect("? ")
        console.send("half a question")
        # A person pauses between typing and Ctrl-C. (A SIGINT that lands while readline is still taking in the
        # typed characters is only noticed at the next key press: CPython's readline loop, not citebot.)
        time.sleep(0.5)
        console.process.send_signal(signal.SIGINT)  # Ctrl-C while typing
        console.expect("? ")
        assert console.process.poll() is None, "Ctrl-C at the prompt quit the console"
        console.send(f"{QUESTION}\n")
        time.sleep(0.1)
        console.process.send_signal(signal.SIGINT)  # Ctrl-C while it works out the answer (or just after)
        time.sleep(1)
        assert console.process.poll() is None, "Ctrl-C during an answer quit the console"
        console.send(f"{QUESTION}\n")
        console.expect("Ankara has denied the claim.")
        console.expect("? ")
        console.send("\x04")  # Ctrl-D
        assert console.close() == 0
    finally:
        if console.process.poll() is None:
            console.process.kill()
