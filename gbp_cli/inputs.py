"""Input discovery: files, folders walked in a stable order, and paths streamed from stdin."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TextIO

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
STDIN = STDOUT = "-"


@dataclass(frozen=True)
class Source:
    """One input photo and its path relative to where it was found, which outputs mirror."""

    path: Path
    relative: PurePath

    @property
    def name(self) -> str:
        return str(self.path)


def in_shard(source: Source, index: int, count: int) -> bool:
    """Whether `source` falls in share `index` of `count`: a stable hash of its relative path, so
    every job agrees whatever order or mount point it sees the inputs in."""
    return zlib.crc32(source.relative.as_posix().encode()) % count == index


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def walk(folder: Path, skip: Path | None = None) -> Iterator[Source]:
    """Image files under `folder`, hidden entries and the output folder left out, sorted."""
    skip_real = os.path.realpath(skip) if skip is not None else None
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and os.path.realpath(os.path.join(root, d)) != skip_real
        )
        for name in sorted(files):
            if is_image_name(name):
                path = Path(root, name)
                yield Source(path, PurePath(os.path.relpath(path, folder)))


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


def discover(
    arguments: Iterable[str],
    stdin: TextIO | None = None,
    null: bool = False,
    skip: Path | None = None,
) -> Iterator[Source]:
    """Every input named on the command line (or on stdin for `-`), in order, without repeats."""
    seen: set[tuple[str, PurePath]] = set()

    def named() -> Iterator[str]:
        for argument in arguments:
            if argument == STDIN and stdin is not None:
                yield from read_paths(stdin, null)
            else:
                yield argument

    for argument in named():
        path = Path(argument)
        found = walk(path, skip) if path.is_dir() else [Source(path, PurePath(path.name))]
        for source in found:  # the same file reached twice under one name is explained once
            key = (os.path.realpath(source.path), source.relative)
            if key not in seen:
                seen.add(key)
                yield source
