"""What every output records about its origin, so that a rerun keeps only what truly matches.

A PNG carries the record in its text chunks, with the SHA-256 of its image chunks, so a cut or
changed file is caught; a `.npy` in a sidecar `<name>.npy.json`, published before it and holding
the array's own SHA-256. "Kept" means: this exact input content, these exact settings (the weights
by name and content among them), and the file whole as gbp wrote it. Anything else in the way is
a conflict, a sidecar that gbp did not write included.

Whose file is it? A PNG that carries gbp's record is gbp's, even damaged (its record says so):
--overwrite redoes it like a stale output. An array is gbp's only if it is the one its record
names: one that is not (a user's put in its place, or one changed since) is not a file gbp wrote,
and is never replaced.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from gbp_cli.errors import InputError
from gbp_cli.fingerprints import IMAGE_DIGEST, is_gbp_png, png_image_digest, sha256_file

INPUT, SOURCE, SETTINGS = "gbp:input", "gbp:source-sha256", "gbp:settings"
ARRAY = "sha256"  # a sidecar's digest of its .npy
# A setting --dry-run cannot know before the model loads (whether the weights file that a run
# would fetch is the one that made an output) is a value that says why, and maybe which value an
# output may hold and still be known to be kept. Such values exist only in --dry-run's records.
UNKNOWN, UNLESS = "\x00unknown:", "\x00unless:"


def unknown(why: str, unless: str = "") -> str:
    """A record value --dry-run cannot know: why not, and `unless`, the value that an output
    made exactly so (a stand-in backend that never fetched the file) is kept with."""
    return f"{UNKNOWN}{why}{UNLESS}{unless}"


def _pending(value: str | None) -> tuple[str, str] | None:
    """(why, unless) of an unknown value; None for a known one."""
    if value is None or not value.startswith(UNKNOWN):
        return None
    why, _, unless = value.removeprefix(UNKNOWN).partition(UNLESS)
    return why, unless


class Undecided(Exception):
    """Outputs are there and match in all that --dry-run can know; whether they are kept depends
    on what it cannot (the message says what)."""


@dataclass(frozen=True)
class Provenance:
    """The input (as named, and its content's SHA-256) and the settings that made an output."""

    input: str
    source: str
    settings: dict[str, str]

    def chunks(self) -> dict[str, str]:
        return {
            INPUT: self.input,  # printable already (inputs.printable)
            SOURCE: self.source,
            SETTINGS: json.dumps(self.settings, sort_keys=True, ensure_ascii=False),
        }

    @classmethod
    def from_chunks(cls, chunks: dict) -> Provenance | None:
        try:
            settings = json.loads(chunks[SETTINGS])
            return cls(str(chunks[INPUT]), str(chunks[SOURCE]), dict(settings))
        except (KeyError, TypeError, ValueError):
            return None


def sidecar(path: Path) -> Path:
    """Where a `.npy` output's record lives."""
    return path.with_name(path.name + ".json")


def read_sidecar(path: Path) -> dict | None:
    """A sidecar's record if the file at `path` is one gbp wrote (it parses as gbp's record, with
    its array's digest), else None: anything else there is someone's file."""
    if path.is_symlink() or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get(ARRAY), str):
        return None
    return record if Provenance.from_chunks(record) is not None else None


@dataclass(frozen=True)
class Found:
    """What is at an output's path: nothing, a file gbp wrote (with its record), or another.
    `why`: what makes it unfit to keep whatever the settings (damage, a record that does not
    cover it), or why it is not gbp's."""

    exists: bool
    ours: bool = False
    provenance: Provenance | None = None
    why: str | None = None


def look(path: Path) -> Found:
    """Inspect the file at an output path without trusting it. A file that cannot even be
    looked at is an InputError (one line for its input)."""
    try:
        return _look(path)
    except OSError as e:
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        raise InputError(f"cannot look at {path}: {reason}") from None


def _look(path: Path) -> Found:
    if not os.path.lexists(path):
        return Found(False)
    if path.is_symlink() or not path.is_file():
        return Found(True)
    if path.suffix == ".npy":
        record = read_sidecar(sidecar(path))
        if record is None:
            return Found(True)
        if record[ARRAY] != sha256_file(path):
            why = f"does not match gbp's record beside it ({sidecar(path).name})"
            return Found(True, why=f"{why}, so it is not the array gbp wrote")
        return Found(True, True, Provenance.from_chunks(record))
    try:
        with Image.open(path) as image:
            info = dict(image.info)
            kind = image.format
    except OSError as e:
        if e.errno is not None:  # the file system's refusal, not the file's content
            raise
        return Found(True)
    except (ValueError, SyntaxError, EOFError):
        return Found(True)
    if kind != "PNG" or not is_gbp_png(info):
        return Found(True)
    with path.open("rb") as handle:
        image_digest = png_image_digest(handle)
    if image_digest is None or image_digest != info.get(IMAGE_DIGEST, image_digest):
        return Found(True, True, why="is damaged (cut short or changed since gbp wrote it)")
    if IMAGE_DIGEST not in info:
        older = "was written by an older gbp, whose record does not cover its pixels"
        return Found(True, True, why=older)
    return Found(True, True, Provenance.from_chunks(info))


def conflict(found: Found, wanted: Provenance) -> str | None:
    """None if the existing output may be kept as it is, else why not (one line)."""
    if not found.ours:
        return found.why or "is not a file gbp wrote"
    had = found.provenance
    if found.why is not None or had is None:
        return found.why or "was written by gbp without a complete record"
    if had.source != wanted.source:
        return f"holds the map of another input ({had.input})"
    keys = [
        key
        for key in sorted(set(had.settings) | set(wanted.settings))
        if had.settings.get(key) != wanted.settings.get(key)
        and _pending(wanted.settings.get(key)) is None
    ]
    weights = [key for key in keys if key.startswith("weights")]
    others = [key for key in keys if not key.startswith("weights")]
    parts = [
        f"other {what} ({'; '.join(_change(had, wanted, key) for key in group[:3])})"
        for what, group in (("weights", weights), ("settings", others))
        if group
    ]
    return f"was made with {' and '.join(parts)}" if parts else None


def _change(had: Provenance, wanted: Provenance, key: str) -> str:
    return f"{key} {had.settings.get(key, '-')} → {wanted.settings.get(key, '-')}"


def undecided(found: Found, wanted: Provenance) -> str | None:
    """Why an output that matches all else cannot be called kept yet (--dry-run), or None."""
    had = found.provenance.settings if found.provenance else {}
    for key, value in wanted.settings.items():
        pending = _pending(value)
        if pending is not None and not (pending[1] and had.get(key) == pending[1]):
            return pending[0]
    return None


def foreign_sidecar(path: Path) -> str | None:
    """The refusal if a `.npy` output's record would replace a file gbp did not write. A gbp
    sidecar with no array beside it (a run killed between the two) is gbp's to replace."""
    if path.suffix != ".npy":
        return None
    record = sidecar(path)
    if not os.path.lexists(record):
        return None
    if read_sidecar(record) is not None:
        return None
    return f"{record} is not a file gbp wrote; it was left alone"


def decide(path: Path, wanted: Provenance, overwrite: bool) -> str:
    """ "new" (nothing there), "kept" (identical output there, whole) or "replace" (gbp's own
    output of other settings, or damaged, with --overwrite); anything else in the way is an
    InputError (a `.npy`'s sidecar included). With a record --dry-run cannot complete,
    "unknown" where "kept" would depend on what it cannot know."""
    found = look(path)
    if not found.exists:
        refusal = foreign_sidecar(path)
        if refusal is not None:
            raise InputError(refusal)
        return "new"
    if overwrite and found.ours:
        return "replace"
    why = conflict(found, wanted)
    if why is None:
        return "unknown" if undecided(found, wanted) else "kept"
    advice = "--overwrite replaces it" if found.ours else "it was left alone"
    raise InputError(f"{path} {why}; {advice}")
