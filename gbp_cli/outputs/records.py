"""What every output records about its origin, so that a rerun keeps only what truly matches.

A PNG carries the record in its text chunks; a `.npy` in a sidecar `<name>.npy.json`, written
before it and holding the array's own SHA-256, so a crash between the two is caught. "Kept" means:
this exact input content, these exact settings. Anything else in the way is a conflict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from gbp_cli.errors import InputError
from gbp_cli.fingerprints import is_gbp_png, sha256_file

INPUT, SOURCE, SETTINGS = "gbp:input", "gbp:source-sha256", "gbp:settings"


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
        try:
            record = json.loads(sidecar(path).read_text("utf-8"))
            provenance = Provenance.from_chunks(record)
            intact = record.get("sha256") == sha256_file(path)
        except (OSError, ValueError, AttributeError):
            return Found(True)
        return Found(True, True, provenance if intact else None)
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
    changed = [
        f"{key} {had.settings.get(key, '-')} → {wanted.settings.get(key, '-')}"
        for key in sorted(set(had.settings) | set(wanted.settings))
        if had.settings.get(key) != wanted.settings.get(key)
    ]
    if changed:
        return f"was made with other settings ({'; '.join(changed[:3])})"
    return None


def decide(path: Path, wanted: Provenance, overwrite: bool) -> str:
    """ "new" (nothing there), "kept" (identical output there) or "replace" (gbp's own output of
    other settings, with --overwrite); anything else in the way is an InputError."""
    found = look(path)
    if not found.exists:
        return "new"
    if overwrite and found.ours:
        return "replace"
    why = conflict(found, wanted)
    if why is None:
        return "kept"
    advice = "--overwrite replaces it" if found.ours else "it was left alone"
    raise InputError(f"{path} {why}; {advice}")
