"""What every output records about its origin, so that a rerun keeps only what truly matches.

A PNG carries the record in its text chunks; a `.npy` in a sidecar `<name>.npy.json`, written
before it and holding the array's own SHA-256, so a crash between the two is caught. "Kept" means:
this exact input content, these exact settings (the weights by name and content among them).
Anything else in the way is a conflict, a sidecar that gbp did not write included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from gbp_cli.errors import InputError
from gbp_cli.fingerprints import is_gbp_png, sha256_file

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
    """What is at an output's path: nothing, a file gbp wrote (with its record), or another."""

    exists: bool
    ours: bool = False
    provenance: Provenance | None = None


def look(path: Path) -> Found:
    """Inspect the file at an output path without trusting it."""
    if not path.exists() and not path.is_symlink():
        return Found(False)
    if path.is_symlink() or not path.is_file():
        return Found(True)
    if path.suffix == ".npy":
        record = read_sidecar(sidecar(path))
        if record is None:
            return Found(True)
        try:
            intact = record[ARRAY] == sha256_file(path)
        except OSError:
            return Found(True)
        return Found(True, True, Provenance.from_chunks(record) if intact else None)
    try:
        with Image.open(path) as image:
            info = dict(image.info)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return Found(True)
    if image.format != "PNG" or not is_gbp_png(info):
        return Found(True)
    return Found(True, True, Provenance.from_chunks(info))


def conflict(found: Found, wanted: Provenance) -> str | None:
    """None if the existing output may be kept as it is, else why not (one line)."""
    if not found.ours:
        return "is not a file gbp wrote"
    had = found.provenance
    if had is None:
        return "was written by gbp without a complete record"
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
    if not record.exists() and not record.is_symlink():
        return None
    if read_sidecar(record) is not None:
        return None
    return f"{record} is not a file gbp wrote; it was left alone"


def decide(path: Path, wanted: Provenance, overwrite: bool) -> str:
    """ "new" (nothing there), "kept" (identical output there) or "replace" (gbp's own output of
    other settings, with --overwrite); anything else in the way is an InputError (a `.npy`'s
    sidecar included). With a record --dry-run cannot complete, "unknown" where "kept" would
    depend on what it cannot know."""
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
