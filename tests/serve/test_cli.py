"""``citebot serve`` as a user starts it: the real command on a free port of 127.0.0.1, stopped by SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.citebot import citebot_environment
from tests.support.paths import CITEBOT

pytestmark = pytest.mark.slow  # starts the real citebot serve process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_citebot_serve_answers_on_loopback_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = citebot_environment(tmp_path, {"CITEBOT_API_TOKEN": "x" * 24})
    process = subprocess.Popen(
        [CITEBOT, "serve", "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "citebot serve did not become ready"
            time.sleep(0.2)
        reply = httpx.post(f"{base}/v1/ask", json={"question": "What did Erdogan warn of?"}, timeout=30).json()
        assert reply["verdict"] == "answered" and reply["passages"][0]["highlight"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert f"serving http://127.0.0.1:{port}/" in stderr and "x" * 24 not in stderr and "Traceback" not in stderr


def test_a_bad_port_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [CITEBOT, "serve", "--port", "99999"], capture_output=True, text=True, env=citebot_environment(tmp_path)
    )
    assert done.returncode == 2 and "is not a port" in done.stderr
