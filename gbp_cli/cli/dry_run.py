"""`--dry-run`: what a run would do with each input — write, keep, refuse or fail — with no model.

The same decisions as a real run (the same planner and records), before any framework loads, so
a user can check a job's share of a folder before submitting it. Where outputs are there and
match in all it can know, but whether they are kept depends on what only loading the model can
tell (a weights file not fetched yet), the action is "unknown", and the line says what.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import click
from PIL import UnidentifiedImageError

from gbp_cli.cli.results import field
from gbp_cli.errors import InputError
from gbp_cli.fingerprints import is_gbp_png, sha256_bytes
from gbp_cli.inputs.find import Source, printable
from gbp_cli.inputs.formats import open_image, unidentified
from gbp_cli.inputs.preprocess import Prepared, read_input
from gbp_cli.outputs.planning import Planner
from gbp_cli.outputs.records import Undecided


def verdict(source: Source, planner: Planner) -> tuple[str, str, list[Path]]:
    """(action, reason, files) for one input: write, kept, unknown, refused, failed or
    skipped."""
    try:  # a photo is read by what it holds, not by its name, as a run reads it
        data = read_input(source.path)
    except InputError as e:
        return "failed", str(e), []
    try:
        with open_image(data) as image:  # HEIC: with pillow-heif, or one line naming the extra
            if image.format == "PNG" and is_gbp_png(image.info):
                return "skipped", "a map gbp wrote, not a photo", []
    except InputError as e:
        return "failed", str(e), []
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return "failed", unidentified(data), []
    prepared = Prepared(array=None, geometry=None, digest=sha256_bytes(data))  # type: ignore[arg-type]
    try:
        kept = planner.existing(source, prepared)
    except InputError as e:
        return "refused", str(e), []
    except Undecided as e:
        guess = planner.unnamed()
        files = [] if planner.per_class else [o.path for o in planner.plan(source, prepared, guess)]
        return "unknown", str(e), files
    if kept is not None:
        return "kept", "", kept
    if planner.per_class:
        return "write", f"top {planner.top_k} classes, named once the model has run", []
    return "write", "", [o.path for o in planner.plan(source, prepared, planner.unnamed())]


def show(source: Source, action: str, reason: str, files: list[Path], as_json: bool) -> None:
    """One input's line (or JSON object) of the preview."""
    if as_json:
        record = {
            "input": source.name,
            "action": action,
            "files": [printable(str(f)) for f in files],
        }
        if reason:
            record["reason"] = reason
        click.echo(json.dumps(record, ensure_ascii=False))
    else:
        parts = [field(source.path), action, *(field(f) for f in files)]
        click.echo("\t".join(parts + ([field(reason)] if reason else [])))


def preview(sources: Iterable[Source], planner: Planner, as_json: bool) -> int:
    """Print one line (or JSON object) per input; returns how many would fail or be refused."""
    failures = 0
    for source in sources:
        action, reason, files = verdict(source, planner)
        failures += action in ("failed", "refused")
        show(source, action, reason, files, as_json)
    return failures
