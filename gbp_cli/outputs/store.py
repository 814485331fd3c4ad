"""The write stage: each output is written atomically, kept if it truly matches, or refused.

Nothing a user had is lost: a file gbp did not write is never replaced (not even with
--overwrite; a `.npy`'s sidecar record neither), and an output of another photo or of other
settings is a conflict unless --overwrite. Nothing is written outside `-o` (given as `root`):
an output that a link inside it would send elsewhere is refused. An output whose name, with the
temp and record files gbp derives from it, the file system cannot hold is refused before
anything is tried. (That no output lands on an input of the run is checked when outputs are
planned.)

A `.npy` and its record are both written in full to temp files before either is published, the
record first: a full disk fails while nothing is published, and an array never stands without its
record. Where publishing the array fails after its record was, the record is withdrawn.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gbp_cli.errors import InputError, RunStopped
from gbp_cli.fingerprints import sha256_bytes, sha256_file
from gbp_cli.outputs.atomic import FULL_DISK, AtomicFile, remove_stale_temps, write_atomic
from gbp_cli.outputs.naming import writable
from gbp_cli.outputs.records import ARRAY, Provenance, decide, foreign_sidecar, look, sidecar


class Store:
    """Writes one run's outputs; shared by the writer threads."""

    def __init__(
        self, overwrite: bool, log: Callable[[str], None], root: Path | None = None
    ) -> None:
        self.overwrite = overwrite
        self.log = log
        self.root = root  # `-o`: nothing is written outside it (None: not checked here)
        self.started = time.time()
        self._folders: set[Path] = set()
        self._lock = threading.Lock()

    def save(self, path: Path, data: bytes, provenance: Provenance) -> bool:
        """Write `data` at `path`; False if an identical output was already there (kept)."""
        writable(path, self.root)
        verdict = decide(path, provenance, self.overwrite)
        if verdict == "kept":
            return False
        self._tidy(path.parent)
        try:
            written = self._write(path, data, provenance, replace=verdict == "replace")
        except OSError as e:
            reason = os.strerror(e.errno).lower() if e.errno else str(e)
            if e.errno in FULL_DISK:
                raise RunStopped(f"cannot write {path}: {reason}") from None
            raise InputError(f"cannot write {path}: {reason}") from None
        # Not written: another run published this name meanwhile. Kept only if it is the same.
        return written or decide(path, provenance, overwrite=False) != "kept"

    def _write(self, path: Path, data: bytes, provenance: Provenance, replace: bool) -> bool:
        if path.suffix == ".npy":
            record = json.dumps({**provenance.chunks(), ARRAY: sha256_bytes(data)}).encode()
            return self._write_array(path, data, record, replace)
        return write_atomic(path, data, overwrite=replace, root=self.root)

    def _write_array(self, path: Path, data: bytes, record: bytes, replace: bool) -> bool:
        """A `.npy` and its record: both staged in full, then the record published, then the
        array. To replace gbp's own array, it is removed before the new record is published, so
        no array ever stands beside a record that is not its own."""
        record_file = AtomicFile(sidecar(path), root=self.root)
        array_file = AtomicFile(path, root=self.root)
        try:
            record_file.fill(record)
            array_file.fill(data)  # a full disk stops here, with nothing published
            if replace and look(path).ours:
                os.unlink(path)  # what is left until the new one is in: a record alone (redone)
            self._publish_record(path, record_file)
            try:
                if array_file.publish():
                    return True
                # Another run published this array since this one decided to write it, and this
                # record has replaced that run's: put this array beside it, so that the pair is
                # one run's (unless the two arrays are the same bytes: then both runs agree).
                if sha256_file(path) != sha256_bytes(data):
                    array_file.publish(overwrite=True)
                return True
            except BaseException:
                _withdraw(sidecar(path), record)
                raise
        finally:
            record_file.discard()
            array_file.discard()

    def _publish_record(self, path: Path, record_file: AtomicFile) -> None:
        """Publish a `.npy`'s record where nothing is, or over gbp's own record (its array's, or
        one a killed run left without an array); never over a file gbp did not write, not even
        one that appeared since the output was planned."""
        if record_file.publish(overwrite=False):
            return
        refusal = foreign_sidecar(path)
        if refusal is not None:
            raise InputError(refusal)
        record_file.publish(overwrite=True)

    def _tidy(self, folder: Path) -> None:
        """Once per folder: remove temp files an earlier, killed run left (kill -9 can't be
        caught), if they are clearly older than this run."""
        with self._lock:
            if folder in self._folders:
                return
            self._folders.add(folder)
        removed = remove_stale_temps(folder, self.started, self.root)
        if removed:
            self.log(f"removed {removed} stale temp file(s) left by an interrupted run in {folder}")


def _withdraw(record_path: Path, record: bytes) -> None:
    """Remove the record just published for an array that could not be, if it is still that
    record (best effort: one left behind is redone by the next run, like a killed run's)."""
    try:
        if record_path.read_bytes() == record:
            os.unlink(record_path)
    except OSError:
        pass
