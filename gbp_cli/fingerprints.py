"""How gbp recognises content: SHA-256 digests, and the mark every PNG it writes carries. Both the
find stage (never explain gbp's own outputs) and the write stage (keep only what truly matches)
read them, so they live below both."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tempfile
import time
import zlib
from pathlib import Path
from typing import BinaryIO

SOFTWARE_PREFIX = "gbp"  # a PNG's Software text chunk, "gbp <version>", says gbp wrote it
# A PNG's text chunk holding the SHA-256 of its image (png_image_digest): a record cannot hash the
# file that holds it, but it can hash every chunk that is not text, which is what the pixels are.
IMAGE_DIGEST = "gbp:image-sha256"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt"})
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


def png_image_digest(stream: BinaryIO) -> str | None:
    """The SHA-256 of a PNG's image: its chunks other than text (IHDR, PLTE, IDAT, …), each's
    length, type and data, in order. None where the file is damaged: no PNG signature, a chunk
    cut short or failing its CRC, no IEND, or anything after it. A flipped byte, a cut, or
    pixels put in under another file's text chunks all change or break it."""
    if stream.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
        return None
    digest = hashlib.sha256()
    while True:
        head = stream.read(8)
        if len(head) < 8:
            return None  # cut short before IEND
        length, kind = struct.unpack(">I4s", head)
        image = kind not in _TEXT_CHUNKS and kind != b"IEND"
        if image:
            digest.update(head)
        crc = zlib.crc32(kind)
        while length:  # in blocks: a damaged length field may claim gigabytes
            block = stream.read(min(length, 1 << 20))
            if not block:
                return None  # cut short inside the chunk
            crc = zlib.crc32(block, crc)
            if image:
                digest.update(block)
            length -= len(block)
        tail = stream.read(4)
        if len(tail) < 4 or crc != struct.unpack(">I", tail)[0]:
            return None
        if kind == b"IEND":
            return digest.hexdigest() if not stream.read(1) else None


def with_image_digest(png: bytes) -> bytes:
    """`png` with a tEXt chunk IMAGE_DIGEST holding its image's digest, before its first IDAT
    (where readers find the other text chunks)."""
    digest = png_image_digest(io.BytesIO(png))
    assert digest is not None, "a PNG just encoded is whole"
    body = IMAGE_DIGEST.encode("latin-1") + b"\0" + digest.encode("ascii")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body
    chunk += struct.pack(">I", zlib.crc32(body, zlib.crc32(b"tEXt")))
    at = len(PNG_SIGNATURE)
    while png[at + 4 : at + 8] != b"IDAT":
        at += 12 + struct.unpack(">I", png[at : at + 4])[0]
    return png[:at] + chunk + png[at:]
