"""`--report`: one page of every input in OUT and its maps, that works offline from file://.

OUT/index.html is a fixed template with its CSS and JS inline; its rows come from one data file,
OUT/index.json, which the page loads as OUT/index.data.js (`window.GBP_DATA = <the same JSON>;`)
because browsers refuse fetch() on file://. Each run merges its rows into that file by input,
under a lock, so a resumed run and N `--shard` jobs sharing OUT end with one page listing every
input once. Thumbnails are small JPEGs under the hidden OUT/.thumbs, which the folder walk skips,
so they never become inputs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from gbp_cli.backends.base import ModelInfo
from gbp_cli.errors import GbpError, RunStopped
from gbp_cli.gallery import shape
from gbp_cli.gallery.rows import THUMB_FOLDERS, THUMBS, evaluate_rows, explain_rows, sanity_rows
from gbp_cli.gallery.shape import FORMAT, STATUSES
from gbp_cli.outputs.atomic import remove_stale_temps, write_atomic
from gbp_cli.outputs.containment import Outside, ensure_inside
from gbp_cli.outputs.naming import Outputs
from gbp_cli.render.encode import RANDOM_NOTE
from gbp_cli.version import __version__

try:  # POSIX; elsewhere runs sharing OUT are not serialized
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

PAGE, DATA, SCRIPT, LOCK = "index.html", "index.json", "index.data.js", ".index.lock"
SCRIPT_PREFIX = "window.GBP_DATA = "
GENERATOR = '<meta name="generator" content="gbp '
MAX_RUNS = 50  # the header keeps this many runs' summaries


class ReportNotWritten(RunStopped):
    """The page could not be written (a full disk, a read-only OUT). The run's outputs stand, so
    this is one line and exit 1, as for any run a full disk stopped; exit 2 is for a problem with
    the options or with what the user put in OUT."""


def header(info: ModelInfo, outputs: Outputs, seconds: float) -> dict[str, object]:
    """What the page says about an explain run; counts are added from the rows."""
    return {
        "command": "explain",
        **_model(info),
        "methods": list(outputs.methods),
        "formats": [f"{method}: {fmt}" for method, fmt in outputs.kinds()],
        "seconds": round(seconds, 2),
    }


def sanity_header(info: ModelInfo, methods: Iterable[str], seconds: float) -> dict[str, object]:
    """What the page says about a `gbp sanity` run."""
    return {
        "command": "sanity",
        **_model(info),
        "methods": list(methods),
        "seconds": round(seconds, 2),
    }


def evaluate_header(
    info: ModelInfo,
    methods: Iterable[str],
    seconds: float,
    summary: dict[str, object],
    plot: Path | None,
) -> dict[str, object]:
    """What the page says about a `gbp evaluate` run: its settings, the mean and interval of
    each (map, score), the best map per score (`summary`), and its plot (`plot`, a file in OUT
    itself: linked by its name's bytes, percent-encoded, as every link of the page)."""
    run = {"command": "evaluate", **_model(info), "methods": list(methods), **summary}
    if plot is not None:
        run["plot"] = quote(os.fsencode(plot.name))
    return {**run, "seconds": round(seconds, 2)}


def _model(info: ModelInfo) -> dict[str, object]:
    random = info.weights.is_random
    return {
        "model": info.model,
        "backend": info.backend,
        "device": info.device,
        "precision": info.precision,
        "weights": info.weights.describe(),
        "random": random,
        **({"note": RANDOM_NOTE} if random else {}),
        "version": __version__,
    }


def sanity_entry(path: Path, stem: Path, records: Iterable) -> dict[str, object]:
    """One `gbp sanity` input for the page: its real path (not the printable name: the page links
    to it), its two figures (`stem`.sanity.png and `stem`.sanity-maps.png) and its records
    (`gbp_cli.sanity.cascade.Record`)."""
    files = [f"{stem}{suffix}" for suffix in (".sanity.png", ".sanity-maps.png")]
    return {"input": str(path), "files": files, "records": [r.fields() for r in records]}


def update(
    out_dir: Path,
    records: list[dict],
    run: dict[str, object],
    started: float | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Merge this run's records (explain's JSON records, or sanity's entries) into OUT's page.
    `started` (epoch seconds) is when the run began: temp files a killed run left in the page's
    folders are removed once they are older than that by the store's margin."""
    makers = {"sanity": sanity_rows, "evaluate": evaluate_rows}
    make = makers.get(str(run.get("command")), explain_rows)
    started = time.time() if started is None else started
    with _writing(out_dir):
        rows, removed = make(out_dir, records, started)
    return publish(out_dir, rows, run, started, log, removed)


def check(out_dir: Path) -> None:
    """Before a run: refuse now, not after hours of work, a page in OUT that the run could not
    update — a page or data file gbp did not write, a data file of another shape, the lock or
    the thumbnails' folder linked out of OUT."""
    if not out_dir.is_dir():
        return  # nothing there yet: nothing in the way
    with _writing(out_dir):
        for name in (PAGE, DATA, SCRIPT):
            _check_ours(out_dir / name)
        _load(out_dir / DATA)
        ensure_inside(out_dir, out_dir / LOCK)  # a link inside OUT fails when opened (_locked)
        for folder in THUMB_FOLDERS:
            ensure_inside(out_dir, out_dir / THUMBS / folder / "x")


# --- the data file and the page --------------------------------------------------------------


def publish(
    out_dir: Path,
    rows: list[dict],
    run: dict[str, object],
    started: float | None = None,
    log: Callable[[str], None] | None = None,
    removed: int = 0,
) -> Path:
    """Merge `rows` into OUT/index.json by input and rewrite it, its script twin and the page,
    each atomically, under a lock so that jobs sharing OUT never lose each other's rows. `removed`
    counts the stale temp files already removed from the thumbnails' folders."""
    page, data_file, script = out_dir / PAGE, out_dir / DATA, out_dir / SCRIPT
    started = time.time() if started is None else started
    with _writing(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        with _locked(out_dir / LOCK):
            for path in (page, data_file, script):
                _check_ours(path)
            removed += remove_stale_temps(out_dir, started)
            old = _load(data_file)
            statuses = [row["status"] for row in rows]
            counts = {s: statuses.count(s) for s in STATUSES}
            finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
            run = {**run, "counts": {"inputs": len(rows), **counts}, "finished": finished}
            data = {
                "generator": "gbp",
                "format": FORMAT,
                "version": __version__,
                "runs": [*old.get("runs", []), run][-MAX_RUNS:],
                "rows": merge(old.get("rows", []), rows),
            }
            text = _json(data)
            for path, content in (
                (data_file, text),
                (script, f"{SCRIPT_PREFIX}{text};\n"),
                (page, page_html()),
            ):
                encoded = content.encode("utf-8", "backslashreplace")  # a lone surrogate: \\udcNN
                write_atomic(path, encoded, overwrite=True, root=out_dir)
    if removed and log is not None:
        log(f"removed {removed} stale temp file(s) of the report left by an interrupted run")
    return page


@contextlib.contextmanager
def _writing(out_dir: Path) -> Iterator[None]:
    """Writing the page's files, with what can go wrong as one line: a path that a link planted
    in OUT would send outside it is refused (exit 2, as a page gbp did not write is); any other
    OSError (a full disk, a read-only OUT) is ReportNotWritten (exit 1)."""
    try:
        yield
    except Outside as e:
        raise GbpError(str(e)) from None
    except OSError as e:
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        raise ReportNotWritten(f"cannot write the report in {out_dir}: {reason}") from None


def merge(old: list[dict], new: list[dict]) -> list[dict]:
    """`old` with each of `new` in place of the row of the same kind and input (or added). A row
    whose outputs were all kept keeps the earlier row's top 5, which only a computing run knows."""
    rows = list(old)
    where = {(row.get("kind"), row.get("key")): i for i, row in enumerate(rows)}
    for row in new:
        key = (row["kind"], row["key"])
        if key not in where:
            where[key] = len(rows)
            rows.append(row)
            continue
        earlier = rows[where[key]]
        if row["status"] == "kept":
            known = {
                k: earlier[k] for k in ("label", "index", "probability", "top") if k in earlier
            }
            if row.get("index", known.get("index")) == known.get("index"):
                row = {**known, **row}
        rows[where[key]] = row
    return rows


def _json(data: object) -> str:
    """Compact JSON that is also safe inside a <script>: no `<`, U+2028 or U+2029 as such."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (("<", "\\u003c"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)
    return text


def _load(path: Path) -> dict:
    """The data file so far (empty if none), checked whole: a file of another shape is refused
    in one line before anything reads it, and one of format 1 is brought up to this format."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text("utf-8", "surrogateescape"))
    except (ValueError, RecursionError) as e:
        raise GbpError(
            f"{path} is not readable JSON ({e}); move it away to start a new page"
        ) from None
    if not isinstance(data, dict):
        raise GbpError(f"{path} is not gbp's data (not a JSON object); move it away")
    found = data.get("format")
    if not isinstance(found, int) or isinstance(found, bool) or found not in (1, FORMAT):
        raise GbpError(f"{path} is from another gbp (format {found}); move it away")
    problem = shape.problem(data)
    if problem is not None:
        raise GbpError(f"{path} {problem}: it is not gbp's data; move it away to start a new page")
    if found == 1:
        data["rows"] = [shape.upgraded(row) for row in data["rows"]]
    return data


def _check_ours(path: Path) -> None:
    """Refuse to replace a file gbp did not write: nothing a user had is lost."""
    if not os.path.lexists(path):
        return
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        head = b""
    ours = {
        PAGE: GENERATOR.encode() in head,
        DATA: head.startswith(b'{"generator":"gbp"'),
        SCRIPT: head.startswith(SCRIPT_PREFIX.encode()),
    }[path.name]
    if path.is_symlink() or not ours:
        raise GbpError(f"{path} is not a file gbp wrote; it was left alone and no report written")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (a hidden file in OUT) for the read-merge-write. Never
    through a symbolic link: a planted one would create or touch a file outside OUT (checked as
    every write in OUT is, then opened with O_NOFOLLOW, so a link made meanwhile fails too)."""
    ensure_inside(path.parent, path)
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP or os.path.islink(path):
            raise GbpError(
                f"{path} is a symbolic link; gbp writes nothing through one: remove it"
            ) from None
        raise
    with os.fdopen(fd, "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def page_html() -> str:
    """The page: a fixed template with its CSS and JS inline (nothing from the network)."""
    data = resources.files("gbp_cli").joinpath("data")
    text = data.joinpath("gallery.html").read_text("utf-8")
    for name, value in (
        ("@CSS@", data.joinpath("gallery.css").read_text("utf-8").strip()),
        ("@JS@", data.joinpath("gallery.js").read_text("utf-8").strip()),
        ("@VERSION@", __version__),
    ):
        text = text.replace(name, value)
    return text
