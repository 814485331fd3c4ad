"""The write stage: each output is written atomically, kept if it truly matches, or refused.

Nothing a user had is lost: a file gbp did not write is never replaced (not even with
--overwrite; a `.npy`'s sidecar record neither), and an output of another photo or of other
settings is a conflict unless --overwrite. (That no output lands on an input of the run is
checked when outputs are planned.)
"""

from __future__ import annotations

import errno
import json
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gbp_cli.errors import InputError, RunStopped
from gbp_cli.fingerprints import sha256_bytes
from gbp_cli.outputs.atomic import write_atomic
from gbp_cli.outputs.records import ARRAY, Provenance, decide, foreign_sidecar, sidecar

STALE_AFTER = 60.0  # seconds: a temp file older than the run by this much is an interrupted run's
_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.part$")  # AtomicFile's names: .<name>.<random>.part
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class Store:
    """Writes one run's outputs; shared by the writer threads."""

    def __init__(self, overwrite: bool, log: Callable[[str], None]) -> None:
        self.overwrite = overwrite
        self.log = log
        self.started = time.time()
        self._folders: set[Path] = set()
        self._lock = threading.Lock()

    def save(self, path: Path, data: bytes, provenance: Provenance) -> bool:
        """Write `data` at `path`; False if an identical output was already there (kept)."""
        verdict = decide(path, provenance, self.overwrite)
        if verdict == "kept":
            return False
        self._tidy(path.parent)
        try:
            written = self._write(path, data, provenance, replace=verdict == "replace")
        except OSError as e:
            reason = os.strerror(e.errno).lower() if e.errno else str(e)
            if e.errno in _FULL:
                raise RunStopped(f"cannot write {path}: {reason}") from None
            raise InputError(f"cannot write {path}: {reason}") from None
        # Not written: another run published this name meanwhile. Kept only if it is the same.
        return written or decide(path, provenance, overwrite=False) != "kept"

    def _write(self, path: Path, data: bytes, provenance: Provenance, replace: bool) -> bool:
        if path.suffix == ".npy":  # the record first: an array never stands without one
            record = json.dumps({**provenance.chunks(), ARRAY: sha256_bytes(data)}).encode()
            self._write_sidecar(path, record)
        return write_atomic(path, data, overwrite=replace)

    def _write_sidecar(self, path: Path, record: bytes) -> None:
        """Write a `.npy`'s record where nothing is, or over gbp's own record (its array's, or
        one a killed run left without an array); never over a file gbp did not write, not even
        one that appeared since the output was planned."""
        target = sidecar(path)
        if write_atomic(target, record, overwrite=False):
            return
        refusal = foreign_sidecar(path)
        if refusal is not None:
            raise InputError(refusal)
        write_atomic(target, record, overwrite=True)

    def _tidy(self, folder: Path) -> None:
        """Once per folder: remove temp files an earlier, killed run left (kill -9 can't be
        caught), if they are clearly older than this run."""
        with self._lock:
            if folder in self._folders:
                return
            self._folders.add(folder)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        removed = 0
        for entry in entries:
            if not _TEMP.match(entry.name):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime < self.started - STALE_AFTER:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                pass
        if removed:
            self.log(f"removed {removed} stale temp file(s) left by an interrupted run in {folder}")
