"""How gbp recognises content: SHA-256 digests, and the mark every PNG it writes carries. Both the
find stage (never explain gbp's own outputs) and the write stage (keep only what truly matches)
read them, so they live below both."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

SOFTWARE_PREFIX = "gbp"  # a PNG's Software text chunk, "gbp <version>", says gbp wrote it
DIGESTS = "digests.json"  # in gbp's cache folder: weights files' SHA-256 by what stat says of them
KEPT_DIGESTS = 64  # the most recently hashed files the cache remembers
# A file changed this recently may change again within the clock tick its mtime was read in,
# unseen by stat (git's "racy" files): it is hashed every time, never cached, until it settles.
SETTLED_AFTER = 3.0  # seconds


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    """gbp's own cache folder: $XDG_CACHE_HOME/gbp, or ~/.cache/gbp."""
    base = os.getenv("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gbp"


def sha256_weights(path: Path) -> str:
    """A weights file's SHA-256, remembered by its real path, size, mtime, ctime and inode, so a
    run does not reread hundreds of MB to record which weights made its outputs. Any change that
    stat can see (a rewrite, a replacement, `touch`, even one that restores the old mtime, which
    moves the ctime) makes it hash the file again. The cache is only a cache: unreadable or
    unwritable, the file is simply hashed."""
    real = os.path.realpath(path)
    before = os.stat(real)
    key = [before.st_size, before.st_mtime_ns, before.st_ctime_ns, before.st_ino]
    cache = cache_dir() / DIGESTS
    known = _read_digests(cache)
    entry = known.get(real)
    if isinstance(entry, dict) and entry.get("stat") == key and "sha256" in entry:
        return str(entry["sha256"])
    digest = sha256_file(Path(real))
    settled = time.time() - max(before.st_mtime_ns, before.st_ctime_ns) / 1e9 > SETTLED_AFTER
    if settled and _stat_key(real) == key:  # unchanged while it was read
        known.pop(real, None)
        known[real] = {"stat": key, "sha256": digest}
        _write_digests(cache, dict(list(known.items())[-KEPT_DIGESTS:]))
    return digest


def _stat_key(path: str) -> list[int] | None:
    try:
        now = os.stat(path)
    except OSError:
        return None
    return [now.st_size, now.st_mtime_ns, now.st_ctime_ns, now.st_ino]


def _read_digests(cache: Path) -> dict:
    try:
        known = json.loads(cache.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _write_digests(cache: Path, known: dict) -> None:
    """Replace the cache file whole (a temp file renamed), so concurrent runs never read half
    of one; the last writer wins, which costs at worst one more hash."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=cache.parent, prefix=f".{cache.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(known, handle)
            os.replace(temp, cache)
        except BaseException:
            os.unlink(temp)
            raise
    except OSError:
        pass


def is_gbp_png(info: dict) -> bool:
    """Whether PNG text chunks say gbp wrote the file (any version)."""
    return str(info.get("Software", "")).startswith(SOFTWARE_PREFIX)
