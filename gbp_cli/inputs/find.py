"""The find stage: files, folders walked in a stable order, and paths streamed from stdin.

Outputs mirror where each input was found. A folder's files mirror their path inside it; a file
named on the command line or on stdin mirrors its path as given when that is relative and stays
below the working folder, and otherwise its absolute path without the leading `/`, so no output
ever lands outside `-o`. When two images in one folder share a stem (`photo.bmp`, `photo.tiff`),
their outputs keep the extension (`photo.tiff.guided.color.png`), whichever of them a run sees.
"""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TextIO

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".heic", ".heif", ".avif"}
)  # compared lower-cased: IMG_0001.HEIC is found as img.heic is
STDIN = STDOUT = "-"


@dataclass(frozen=True)
class Source:
    """One input photo, and where its outputs go relative to `-o`."""

    path: Path
    relative: PurePath  # mirrored path, with the input's extension
    keep_suffix: bool = False  # another image beside it has the same stem

    @property
    def name(self) -> str:
        """The path as given, printable: bytes that are not UTF-8 shown as `\\xNN`."""
        return printable(str(self.path))

    @property
    def stem(self) -> PurePath:
        """Its outputs' path under `-o`, less what each output appends."""
        kept = self.relative.name if self.keep_suffix else self.relative.stem
        return self.relative.parent / kept


def printable(text: str) -> str:
    """A file name that may hold undecodable bytes (surrogate escapes) as text any stream can
    carry: those bytes become `\\xNN`."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def in_shard(source: Source, index: int, count: int) -> bool:
    """Whether `source` falls in share `index` (1 … count) of `count`: a stable hash of its
    mirrored path, so every job agrees whatever order or mount point it sees the inputs in."""
    return zlib.crc32(source.relative.as_posix().encode()) % count == index - 1


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def shared_stems(names: Iterable[str]) -> frozenset[str]:
    """Stems that more than one image name in a folder has."""
    seen: set[str] = set()
    shared: set[str] = set()
    for name in names:
        if is_image_name(name):
            stem = os.path.splitext(name)[0]
            (shared if stem in seen else seen).add(stem)
    return frozenset(shared)


@functools.lru_cache(maxsize=1024)
def _folder_stems(folder: str) -> frozenset[str]:
    try:
        return shared_stems(os.listdir(folder or "."))
    except OSError:
        return frozenset()


def mirrored(argument: str) -> PurePath:
    """Where a named file's outputs go under `-o` (see the module's docstring)."""
    normal = PurePath(os.path.normpath(argument))
    if normal.is_absolute() or ".." in normal.parts:
        absolute = PurePath(os.path.abspath(argument))
        return PurePath(*absolute.parts[1:])
    return normal


def walk(folder: Path, skip: Path | None = None) -> Iterator[Source]:
    """Image files under `folder`, sorted, leaving out hidden entries and an output folder that
    lies inside it (symlinked folders are not followed)."""
    skip_real = os.path.realpath(skip) if skip is not None else None
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and os.path.realpath(os.path.join(root, d)) != skip_real
        )
        shared = shared_stems(files)
        for name in sorted(files):
            if is_image_name(name):
                path = Path(root, name)
                relative = PurePath(os.path.relpath(path, folder))
                yield Source(path, relative, os.path.splitext(name)[0] in shared)


def read_paths(stream: TextIO, null: bool) -> Iterator[str]:
    """Paths from a pipe, one per line or NUL-separated, yielded as they arrive."""
    if not null:
        for line in stream:
            path = line.rstrip("\r\n")
            if path:
                yield path
        return
    pending = ""
    while chunk := stream.read(4096):
        pending += chunk
        *complete, pending = pending.split("\0")
        yield from (p for p in complete if p)
    if pending.strip("\n"):
        yield pending.rstrip("\n")


def named(argument: str) -> Source:
    """A file named on the command line or on stdin."""
    path = Path(argument)
    stem = os.path.splitext(path.name)[0]
    return Source(path, mirrored(argument), stem in _folder_stems(os.path.dirname(argument)))


def discover(
    arguments: Iterable[str],
    stdin: TextIO | None = None,
    null: bool = False,
    skip: Path | None = None,
) -> Iterator[Source]:
    """Every input named on the command line (or on stdin for `-`), in order, without repeats."""
    seen: set[str] = set()

    def given() -> Iterator[str]:
        for argument in arguments:
            if argument == STDIN and stdin is not None:
                yield from read_paths(stdin, null)
            else:
                yield argument

    for argument in given():
        path = Path(argument)
        found = walk(path, skip) if path.is_dir() else [named(argument)]
        for source in found:  # one file reached twice (named again, a symlink) is done once
            key = os.path.realpath(source.path)
            if key not in seen:
                seen.add(key)
                yield source
