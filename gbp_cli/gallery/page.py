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
import json
import os
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from gbp_cli.backends.base import ModelInfo
from gbp_cli.errors import GbpError
from gbp_cli.gallery.rows import explain_rows, sanity_rows
from gbp_cli.outputs.atomic import write_atomic
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
FORMAT = 1  # of index.json; bump on an incompatible change
MAX_RUNS = 50  # the header keeps this many runs' summaries


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


def sanity_entry(name: str, stem: Path, records: Iterable) -> dict[str, object]:
    """One `gbp sanity` input for the page: its two figures (`stem`.sanity.png and
    `stem`.sanity-maps.png) and its records (`gbp_cli.sanity.cascade.Record`)."""
    files = [f"{stem}{suffix}" for suffix in (".sanity.png", ".sanity-maps.png")]
    return {"input": name, "files": files, "records": [r.fields() for r in records]}


def update(out_dir: Path, records: list[dict], run: dict[str, object]) -> Path:
    """Merge this run's records (explain's JSON records, or sanity's entries) into OUT's page."""
    make = sanity_rows if run.get("command") == "sanity" else explain_rows
    return publish(out_dir, make(out_dir, records), run)


# --- the data file and the page --------------------------------------------------------------


def publish(out_dir: Path, rows: list[dict], run: dict[str, object]) -> Path:
    """Merge `rows` into OUT/index.json by input and rewrite it, its script twin and the page,
    each atomically, under a lock so that jobs sharing OUT never lose each other's rows."""
    page, data_file, script = out_dir / PAGE, out_dir / DATA, out_dir / SCRIPT
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with _locked(out_dir / LOCK):
            for path in (page, data_file, script):
                _check_ours(path)
            old = _load(data_file)
            statuses = [row["status"] for row in rows]
            counts = {s: statuses.count(s) for s in ("explained", "kept", "failed")}
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
            write_atomic(data_file, text.encode("utf-8", "backslashreplace"), overwrite=True)
            script_text = f"{SCRIPT_PREFIX}{text};\n"
            write_atomic(script, script_text.encode("utf-8", "backslashreplace"), overwrite=True)
            write_atomic(page, page_html().encode("utf-8"), overwrite=True)
    except OSError as e:
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        raise GbpError(f"cannot write the report in {out_dir}: {reason}") from None
    return page


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
    """The data file so far (empty if none)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text("utf-8", "surrogateescape"))
    except ValueError as e:
        raise GbpError(
            f"{path} is not readable JSON ({e}); move it away to start a new page"
        ) from None
    if data.get("format") != FORMAT:
        raise GbpError(f"{path} is from another gbp (format {data.get('format')}); move it away")
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
    """Hold an exclusive lock on `path` (a hidden file in OUT) for the read-merge-write."""
    with path.open("a+b") as handle:
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
