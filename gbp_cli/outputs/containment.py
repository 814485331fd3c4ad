"""Nothing is written outside `-o`: a path below it that a planted link would send elsewhere is
refused. `-o` itself may be a link (or lie below one): what is inside is judged by where it
resolves, so a user may point `-o` at a folder through a link, and links inside `-o` that stay
inside it are followed.

The store checks every output (and its record) here; the gallery calls the same function for its
page, data files, lock and thumbnails."""

from __future__ import annotations

import os
from pathlib import Path

from gbp_cli.errors import InputError


class Outside(InputError):
    """Writing a path would leave `-o` through a link: refused, nothing written there."""


def escape(root: Path, path: Path) -> str | None:
    """Why writing `path` (a file gbp creates or replaces below `root`, the `-o` folder) would
    put something outside `root`, or None where it stays inside.

    The folders on the way may be links that stay inside; the file itself is never followed
    (gbp replaces a link rather than writing through it), but one that points out of `root` is
    named too, for callers that open rather than replace (a lock file)."""
    home = os.path.realpath(root)
    lexical = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if lexical == os.curdir or lexical.split(os.sep)[0] == os.pardir:
        return f"{path} is not inside {root}"
    folder = os.path.realpath(path.parent)
    if not _within(home, folder):
        link = _first_link(root, path.parent, home) or path.parent
        return f"{link} is a link to {os.path.realpath(link)}"
    if os.path.islink(path) and not _within(home, os.path.realpath(path)):
        return f"{path} is a link to {os.path.realpath(path)}"
    return None


def ensure_inside(root: Path, path: Path) -> None:
    """Raise Outside (one line) if writing `path` would leave `root`."""
    why = escape(root, path)
    if why is not None:
        raise Outside(f"{path} would land outside {root}: {why}; nothing was written there")


def _within(home: str, resolved: str) -> bool:
    return resolved == home or resolved.startswith(home.rstrip(os.sep) + os.sep)


def _first_link(root: Path, folder: Path, home: str) -> Path | None:
    """The first folder between `root` and `folder` that resolves outside `home` (the link a
    message should name)."""
    current = Path(root)
    for part in Path(os.path.relpath(os.path.abspath(folder), os.path.abspath(root))).parts:
        current = current / part
        if not _within(home, os.path.realpath(current)):
            return current
    return None
