"""Which reader a photo needs, loaded only once such a photo is met.

Pillow reads JPEG, PNG, GIF, TIFF, WebP, BMP and, from 11.3 on (its wheels carry libavif), AVIF
by itself. HEIC/HEIF — an iPhone's photos, and many Android phones' — it reads only with the
pillow-heif plugin, in the `heif` extra. The plugin is imported and registered the first time a
HEIC file is met, in whichever process decodes it (a Ray worker too), never before: its import
loads 26 MB of libheif, libde265 and x265 that `gbp --help`, the backends and a run without
HEIC never need. A file is known by the `ftyp` box at its head, not by its name, so a misnamed
HEIC is read as well as `IMG_0001.HEIC`; a HEIC or AVIF photo that no installed reader takes is
one line naming the extra to install.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

from PIL import Image, features

from gbp_cli.backends.base import DISTRIBUTION
from gbp_cli.errors import InputError

HEAD = 64  # bytes enough for an `ftyp` box's brands
EXTRA = f"pip install '{DISTRIBUTION}[heif]'"
_HEVC = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_AV1 = frozenset({b"avif", b"avis"})
_CONTAINER = frozenset({b"mif1", b"msf1"})  # HEIF whatever the codec: read as HEIC
_heif_lock = threading.Lock()
_heif_ready = False


def heif_kind(head: bytes) -> str | None:
    """The kind of a HEIF-family file, "HEIC" or "AVIF", by the brands of the `ftyp` box its
    first bytes hold; None for any other file."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None
    end = min(int.from_bytes(head[:4], "big"), len(head))
    major = head[8:12]
    brands = {major} | {head[i : i + 4] for i in range(16, end - 3, 4)}
    if major in _AV1 or (brands & _AV1 and not brands & _HEVC):
        return "AVIF"
    if brands & (_HEVC | _CONTAINER):
        return "HEIC"
    return None


def ensure_reader(head: bytes) -> str | None:
    """Make sure Pillow can read the file that starts with `head`: pillow-heif registered for a
    HEIC, Pillow's own AVIF support for an AVIF; InputError, naming the extra, where it cannot.
    Returns the file's HEIF kind (None for other files, which need nothing)."""
    kind = heif_kind(head)
    if kind == "HEIC":
        _register_heif()
    elif kind == "AVIF" and not features.check("avif"):
        raise InputError(
            f"an AVIF photo, which this Pillow ({Image.__version__}) cannot read: {EXTRA}"
        )
    return kind


def _register_heif() -> None:
    """pillow-heif's opener, registered once per process (under a lock: photos are decoded in
    several threads, and none may try Pillow before the opener is there)."""
    global _heif_ready
    with _heif_lock:
        if _heif_ready:
            return
        try:
            import pillow_heif
        except ImportError:
            raise InputError(f"a HEIC/HEIF photo, which needs pillow-heif: {EXTRA}") from None
        pillow_heif.register_heif_opener()
        _heif_ready = True


def open_image(source: bytes | Path) -> Image.Image:
    """`Image.open` on a file's bytes or path, with the reader its format needs in place."""
    if isinstance(source, bytes):
        ensure_reader(source[:HEAD])
        return Image.open(io.BytesIO(source))
    with open(source, "rb") as handle:
        ensure_reader(handle.read(HEAD))
    return Image.open(source)


def unidentified(data: bytes) -> str:
    """Why Pillow found no image in `data`: a HEIC or AVIF that its reader refused is damaged
    (with the reader's reason); anything else is no image at all."""
    kind = heif_kind(data[:HEAD])
    if kind is None:
        return "not an image PIL can read"
    return f"corrupt or truncated {kind} image: {_refusal(kind, data)}"


def _refusal(kind: str, data: bytes) -> str:
    """The reason the reader of `kind` gives for refusing `data` (Pillow keeps it to itself)."""
    try:
        if kind == "AVIF":
            from PIL.AvifImagePlugin import AvifImageFile as reader
        else:
            from pillow_heif import HeifImageFile as reader
        reader(io.BytesIO(data)).close()
    except ImportError:
        return f"no reader for it is installed: {EXTRA}"
    except (SyntaxError, OSError, ValueError, EOFError, RuntimeError) as e:
        return one_line(str(e)) or type(e).__name__
    return "unreadable"


def one_line(text: str) -> str:
    """A reader's message on one line (libheif's end with a newline)."""
    return " ".join(text.split())
