"""How gbp recognises content: SHA-256 digests, and the mark every PNG it writes carries. Both the
find stage (never explain gbp's own outputs) and the write stage (keep only what truly matches)
read them, so they live below both."""

from __future__ import annotations

import hashlib
from pathlib import Path

SOFTWARE_PREFIX = "gbp"  # a PNG's Software text chunk, "gbp <version>", says gbp wrote it


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_gbp_png(info: dict) -> bool:
    """Whether PNG text chunks say gbp wrote the file (any version)."""
    return str(info.get("Software", "")).startswith(SOFTWARE_PREFIX)
