"""Writing files so that a reader never sees half of one, and nothing that exists is replaced.

A file is written to a temp file beside it (`.<name>.<random>.part`, created exclusively, never
through a link) and published by a hard link (which refuses to replace anything) or, to replace,
a rename (which replaces a link itself, never its target). Given `root` (the `-o` folder), the
target is checked to stay inside it before the temp file is made and again right before it is
published, so a folder swapped for a link meanwhile is refused too."""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path

from gbp_cli.outputs.containment import ensure_inside, escape

FULL_DISK = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # errors that say: no room left
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class AtomicFile:
    """A temp path in the target's folder; on success it is published, on any failure removed.

    Without `overwrite`, publishing is a hard link, which refuses to replace a file that exists or
    appeared meanwhile; `published` then stays False. Used as a context manager, the caller
    writes the temp file by its path; `fill` writes bytes through the descriptor it was made with.
    Staging and publishing apart (`fill`, then `publish`) let the store finish every temp file of
    an output before any of them is published."""

    def __init__(
        self, path: Path, overwrite: bool = False, suffix: str = ".part", root: Path | None = None
    ) -> None:
        self.path = path
        self.overwrite = overwrite
        self.suffix = suffix
        self.root = root
        self.published = False
        self.temp: Path | None = None

    def stage(self) -> int:
        """Make the temp file (its folders too); returns its open descriptor."""
        if self.root is not None:
            ensure_inside(self.root, self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=self.suffix
        )
        self.temp = Path(temp)
        try:
            os.fchmod(fd, 0o666 & ~_UMASK)
            if self.root is not None:  # a folder made a link while it was being created
                ensure_inside(self.root, self.temp)
        except BaseException:
            os.close(fd)
            self.discard()
            raise
        return fd

    def fill(self, data: bytes) -> None:
        """Stage the temp file with `data`, flushed to disk (a full disk fails here, before
        anything is published)."""
        fd = self.stage()
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def publish(self, overwrite: bool | None = None) -> bool:
        """Put the staged file in place; False if something was there and not replaced."""
        assert self.temp is not None, "stage() first"
        if self.root is not None:
            ensure_inside(self.root, self.path)
        replace = self.overwrite if overwrite is None else overwrite
        self.published = _publish(self.temp, self.path, replace)
        return self.published

    def discard(self) -> None:
        """Remove the temp file, if it is still there (published or not)."""
        if self.temp is not None and os.path.lexists(self.temp):
            os.unlink(self.temp)

    def __enter__(self) -> Path:
        os.close(self.stage())
        assert self.temp is not None
        return self.temp

    def __exit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        try:
            if error_type is None:
                self.publish()
        finally:
            self.discard()


def write_atomic(
    path: Path, data: bytes, overwrite: bool = False, root: Path | None = None
) -> bool:
    """Write `data` to `path` atomically; False if `path` already existed and was kept. With
    `root`, refused (containment.Outside) where `path` would leave it through a link."""
    target = AtomicFile(path, overwrite, root=root)
    try:
        target.fill(data)
        return target.publish()
    finally:
        target.discard()


def _publish(temp: Path, path: Path, overwrite: bool) -> bool:
    if overwrite:
        os.replace(temp, path)
        return True
    try:
        os.link(temp, path)
    except FileExistsError:
        return False
    except OSError:  # no hard links on this filesystem: check, then rename
        if os.path.lexists(path):
            return False
        os.replace(temp, path)
    return True


STALE_AFTER = 60.0  # seconds: a temp file older than the run by this much is an interrupted run's
_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.part$")  # AtomicFile's names: .<name>.<random>.part


def remove_stale_temps(folder: Path, started: float, root: Path | None = None) -> int:
    """Remove the temp files (AtomicFile's) an earlier, killed run left in `folder`, if they are
    older than a run that started at `started` (epoch seconds) by STALE_AFTER; how many. One
    rule for every folder gbp writes to: outputs, the page and its thumbnails. Given `root`
    (`-o`), nothing is removed from a folder that a link sends outside it."""
    if root is not None and escape(root, folder / "-") is not None:
        return 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    removed = 0
    for entry in entries:
        if not _TEMP.match(entry.name):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime < started - STALE_AFTER:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            pass
    return removed
