"""The container image's steps, run here for real: no container runtime or base image can be fetched on this
machine, so the Dockerfile only calls ``scripts/image/*`` and these tests run each of them (docs/deploy.md).

One install (``scripts/image/install`` and ``export-model``) serves the module, in a world-readable folder, and is
run as the image's user (uid 10001, when the tests run as root) with the programs and the exported model read-only
to it, as in the image. Also: the compose file and the systemd units are checked against what they start.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bot.settings import Settings
from tests.support.paths import CITEBOT, ROOT
from tests.support.telegram_harness import free_port

pytestmark = pytest.mark.slow  # a whole install from the lock (a few minutes), and real processes

SCRIPTS = ROOT / "scripts" / "image"
#: The image's user, as scripts/image/add-user makes it.
UID = 10001
QUESTION = "Who denied the claim?"


def _instructions(path: Path) -> list[tuple[str, str]]:
    """The instructions of a Dockerfile, continuation lines joined, comments dropped: (INSTRUCTION, arguments)."""
    joined = re.sub(r"\\\n\s*", " ", path.read_text(encoding="utf-8"))
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0], line.split(None, 1)[1]) for line in lines]


def _env(values: str) -> dict[str, str]:
    """The ``KEY=value`` pairs of one ENV instruction."""
    return dict(re.findall(r"([A-Z_]+)=(\S+)", values))


# --- what the files say --------------------------------------------------------------------------------


def test_the_dockerfile_runs_only_the_image_scripts_and_this_module_runs_each_of_them() -> None:
    steps = _instructions(ROOT / "Dockerfile")
    called = set()
    for instruction, arguments in steps:
        if instruction == "RUN":
            match = re.fullmatch(r'(?:[A-Z_]+="\$[A-Z_]+" )?/src/scripts/image/([a-z-]+)( [\w/.-]+)*', arguments)
            assert match, f"RUN {arguments}: a step of the image is one script of scripts/image/"
            called.add(match.group(1))
        if instruction == "HEALTHCHECK":
            command = json.loads(arguments.split("CMD", 1)[1])
            assert command[0].startswith("/src/scripts/image/")
            called.add(command[0].rsplit("/", 1)[1])
    assert called == {p.name for p in SCRIPTS.iterdir()}, "every script of scripts/image/ is a step, and no other"
    source = Path(__file__).read_text(encoding="utf-8")
    assert all(f'SCRIPTS / "{name}"' in source for name in called), "each step is run by a test here"
    users = [arguments for instruction, arguments in steps if instruction == "USER"]
    assert users == ["citebot"], "the container runs as the user add-user makes, not root"
    copied = [a.split()[:-1] for i, a in steps if i == "COPY"]
    assert all((ROOT / source.rstrip("/")).exists() for sources in copied for source in sources)
    env = {k: v for i, a in steps if i == "ENV" for k, v in _env(a).items()}
    assert env["XDG_CACHE_HOME"].startswith("/opt/citebot/"), "the exported model is in the image, not in /data"
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("CITEBOT_")}, env_file=None)
    assert str(settings.index.data_dir) == "/data"


def test_the_compose_services_share_one_library_and_check_the_port_they_serve() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"server", "telegram", "qdrant"}
    assert services["qdrant"]["profiles"] == ["qdrant"], "Qdrant is optional"
    ports = {"server": None, "telegram": None}
    for name in ports:
        service = services[name]
        assert service["build"] == "." and service["image"] == "citebot"
        assert service["volumes"] == ["citebot-data:/data"], "one library for every front end"
        environment = service.get("environment", {})
        settings = Settings.from_env(environment, env_file=None)  # the values are valid settings
        command = service["command"]
        if command[0] == "serve":
            ports[name] = int(command[command.index("--port") + 1])
        else:
            assert command == ["telegram"]
            ports[name] = settings.telegram.metrics_port
        check = service["healthcheck"]["test"]
        assert check[:2] == ["CMD", "/src/scripts/image/healthcheck"]
        assert check[2] == f"http://127.0.0.1:{ports[name]}/readyz", f"{name} checks the port it serves"
    published = [port for s in services.values() for port in s.get("ports", [])]
    assert published and all(port.startswith("127.0.0.1:") for port in published), "loopback only, as the CLI"


def test_the_systemd_units_are_valid_and_start_the_installed_citebot(image: Image, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    for unit in sorted((ROOT / "deploy" / "systemd").glob("*.service")):
        text = unit.read_text(encoding="utf-8")
        start = re.search(r"^ExecStart=(\S+) (\w+)", text, re.MULTILINE)
        assert start and start.group(1) == "/opt/citebot/bin/citebot", unit.name
        assert start.group(2) in {"serve", "telegram"} and f"citebot-{start.group(2)}" == unit.stem
        assert re.search(r"^User=citebot$", text, re.MULTILINE) and "Restart=on-failure" in text
        here = tmp_path / unit.name
        here.write_text(text.replace("/opt/citebot", str(image.prefix)).replace("User=citebot", "User=root"))
        if analyze is None:
            continue  # the unit's own lines are checked above; systemd is not on this machine
        result = subprocess.run([analyze, "verify", "--man=no", str(here)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "Unknown" not in result.stderr and "Invalid" not in result.stderr, result.stderr


# --- the steps, run ----------------------------------------------------------------------------------------


@dataclass
class Image:
    """An install made by the image's scripts: its prefix, its model cache, and the user it runs as."""

    prefix: Path
    cache: Path
    as_user: list[str]
    made: int = 0

    def environment(self, data: Path) -> dict[str, str]:
        keep = {"PATH", "LANG", "LC_ALL", "TZ"}
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(HOME=str(data), XDG_CACHE_HOME=str(self.cache), CITEBOT_DATA_DIR=str(data), NO_COLOR="1")
        return env

    def data_dir(self) -> Path:
        """A new data directory the image's user owns (as add-user makes /data), beside the install."""
        self.made += 1
        data = self.prefix.parent / f"data-{self.made}"
        data.mkdir()
        if os.getuid() == 0:
            os.chown(data, UID, UID)
        return data


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    top = Path(tempfile.mkdtemp(prefix="citebot-image-"))
    top.chmod(0o755)  # the image's user reads the programs, as in the image
    prefix, cache = top / "opt", top / "cache"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    try:
        subprocess.run([SCRIPTS / "install", prefix], check=True, env=env, timeout=1800)
        subprocess.run([SCRIPTS / "export-model", prefix], check=True, env=env, timeout=600)
        if os.getuid() == 0:
            as_user = ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--"]
        else:  # not root: the cache is made read-only instead, so a write there fails as it would in the image
            subprocess.run(["chmod", "-R", "a-w", cache], check=True)
            as_user = []
        yield Image(prefix, cache, as_user)
    finally:
        subprocess.run(["chmod", "-R", "u+w", top], check=False)
        shutil.rmtree(top, ignore_errors=True)


def _listing(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*"))


def test_the_install_is_the_lock_without_the_test_tools_and_not_editable(image: Image) -> None:
    python = str(image.prefix / "bin" / "python")
    listed = "import json, importlib.metadata as m; print(json.dumps({d.name: d.version for d in m.distributions()}))"
    frozen = subprocess.run([python, "-c", listed], capture_output=True, text=True, check=True)
    lock = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            lock[name.lower().replace("_", "-")] = version
    installed = {name.lower().replace("_", "-"): v for name, v in json.loads(frozen.stdout).items()}
    assert installed.pop("citebot") == "0.1.0"
    for tool in ("pip", "setuptools", "wheel"):
        installed.pop(tool, None)
    assert {name: v for name, v in installed.items() if lock.get(name) != v} == {}, "every version is the lock's"
    assert "pytest" not in installed and "ruff" not in installed
    where = subprocess.run(
        [python, "-c", "import index, bot; print(index.__file__, bot.__file__)"],
        capture_output=True,
        text=True,
        cwd=image.prefix,  # not the checkout, which python -c would put first on the path
    )
    assert where.returncode == 0 and str(ROOT) not in where.stdout and str(image.prefix) in where.stdout


def test_the_images_user_answers_from_the_exported_model_writing_only_its_data(image: Image, tmp_path: Path) -> None:
    exported = _listing(image.cache)
    assert any(name.endswith("model.onnx") for name, _ in exported), "export-model left an ONNX model in the cache"
    data = image.data_dir()
    citebot = str(image.prefix / "bin" / "citebot")
    result = subprocess.run(
        [*image.as_user, citebot, "ask", QUESTION, "--json"],
        capture_output=True,
        text=True,
        env=image.environment(data),
        cwd=data,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "exporting" not in result.stderr, "the model was exported at build time, not at the first question"
    assert _listing(image.cache) == exported
    assert any(data.iterdir()), "the library was written to the data directory"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_"))}
    env["CITEBOT_DATA_DIR"] = str(tmp_path)
    here = subprocess.run([CITEBOT, "ask", QUESTION, "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert json.loads(result.stdout) == json.loads(here.stdout), "the image answers as the checkout does"
    assert json.loads(result.stdout)["verdict"] == "answered"


def test_the_healthcheck_passes_once_the_server_is_ready_and_fails_in_one_line_when_it_is_down(image: Image) -> None:
    data = image.data_dir()
    port = free_port()
    url = f"http://127.0.0.1:{port}/readyz"
    env = image.environment(data)
    server = subprocess.Popen(
        [*image.as_user, str(image.prefix / "bin" / "citebot"), "serve", "--port", str(port)],
        env=env,
        cwd=data,
        stderr=subprocess.PIPE,
        text=True,
    )
    check = [str(SCRIPTS / "healthcheck"), url]
    try:
        for _ in range(600):  # up to 60 s: the server opens the library and loads the model
            if subprocess.run(check, capture_output=True, timeout=30).returncode == 0:
                break
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            subprocess.run(["sleep", "0.1"], check=True)
        else:
            pytest.fail("the healthcheck never passed")
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
    down = subprocess.run(check, capture_output=True, text=True, timeout=30)
    assert down.returncode == 1
    assert re.fullmatch(rf"healthcheck: {re.escape(url)}: .*refused.*\n", down.stderr), down.stderr


def test_the_healthcheck_says_why_a_process_is_not_ready(tmp_path: Path) -> None:
    """A 503 from /readyz: exit 1 and the reason the process gave, on one line."""
    from tests.support.news_server import NewsServer

    body = json.dumps({"error": "citebot is still opening the library"}).encode()
    with NewsServer({"/readyz": lambda request: request.reply(503, body, "application/json", {})}) as news:
        url = news.url("/readyz")
        result = subprocess.run([str(SCRIPTS / "healthcheck"), url], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr == f"healthcheck: {url}: 503: citebot is still opening the library\n"


def test_add_user_makes_a_user_without_login_who_owns_only_the_data_directory(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("useradd needs root (CI runs as root)")
    (tmp_path / "etc").mkdir()
    for name in ("passwd", "group", "shadow", "gshadow", "login.defs"):
        if Path("/etc", name).exists():
            shutil.copy2(Path("/etc", name), tmp_path / "etc" / name)
    before = Path("/etc/passwd").read_text()
    subprocess.run([SCRIPTS / "add-user", "citebot", "/data"], check=True, env={**os.environ, "ROOT": str(tmp_path)})
    assert Path("/etc/passwd").read_text() == before, "only the files under ROOT changed"
    passwd = (tmp_path / "etc" / "passwd").read_text().splitlines()
    assert f"citebot:x:{UID}:{UID}:citebot:/data:/usr/sbin/nologin" in passwd
    shadow = dict(line.split(":", 2)[:2] for line in (tmp_path / "etc" / "shadow").read_text().splitlines())
    assert shadow["citebot"] in {"!", "*", "!*"}, "no password"
    data = (tmp_path / "data").stat()
    assert (data.st_uid, data.st_gid, data.st_mode & 0o777) == (UID, UID, 0o750)
