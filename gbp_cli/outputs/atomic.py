"""Writing files so that a reader never sees half of one, and nothing that exists is replaced."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_UMASK = os.umask(0o022)
os.umask(_UMASK)


class AtomicFile:
    """A temp path in the target's folder; on success it is published, on any failure removed.

    Without `overwrite`, publishing is a hard link, which refuses to replace a file that exists or
    appeared meanwhile; `published` then stays False.
    """

    def __init__(self, path: Path, overwrite: bool = False, suffix: str = ".part") -> None:
        self.path = path
        self.overwrite = overwrite
        self.suffix = suffix
        self.published = False

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=self.suffix
        )
        os.close(fd)
        self.temp = Path(temp)
        return self.temp

    def __exit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        try:
            if error_type is None:
                os.chmod(self.temp, 0o666 & ~_UMASK)
                self.published = _publish(self.temp, self.path, self.overwrite)
        finally:
            if os.path.lexists(self.temp):
                os.unlink(self.temp)


def write_atomic(path: Path, data: bytes, overwrite: bool = False) -> bool:
    """Write `data` to `path` atomically; False if `path` already existed and was kept."""
    target = AtomicFile(path, overwrite)
    with target as temp, temp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return target.published


def _publish(temp: Path, path: Path, overwrite: bool) -> bool:
    if overwrite:
        os.replace(temp, path)
        return True
    try:
        os.link(temp, path)
    except FileExistsError:
        return False
    except OSError:  # no hard links on this filesystem: check, then rename
        if path.exists():
            return False
        os.replace(temp, path)
    return True
