"""Where explanations go, and writing them so a reader never sees half a file."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path, PurePath
from typing import BinaryIO

import numpy as np
from PIL import Image, PngImagePlugin

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def output_stem(out_dir: Path, relative: PurePath) -> Path:
    """`OUT/<relative path without extension>`: mirrors where the input was found."""
    return out_dir.joinpath(relative.parent, relative.stem)


def output_path(
    out_dir: Path, relative: PurePath, method: str, fmt: str, target: int | None = None
) -> Path:
    """`OUT/<relative path without extension>[.<class>].<method>[.<format>].(png|npy)`."""
    parts = [relative.stem]
    if target is not None:
        parts.append(str(target))
    parts.append(method)
    if fmt == "npy":
        parts.append("npy")
    else:
        parts += [fmt, "png"]
    return out_dir.joinpath(relative.parent, ".".join(parts))


def png_bytes(pixels: np.ndarray, metadata: dict[str, str]) -> bytes:
    """Encode an RGB/L image with text chunks saying exactly what produced it."""
    info = PngImagePlugin.PngInfo()
    for key, value in metadata.items():
        info.add_itxt(key, value)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32))
    return buffer.getvalue()


def write_atomic(path: Path, data: bytes, overwrite: bool = False) -> bool:
    """Write via a temp file in the same folder and a rename; False if `path` exists and is kept.

    Without `overwrite`, publishing is a hard link, which refuses to replace a file that appeared
    meanwhile. The temp file is removed on any failure, Ctrl-C included.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            _write_all(handle, data)
        os.chmod(temp, 0o666 & ~_UMASK)
        return _publish(temp, path, overwrite)
    finally:
        if os.path.lexists(temp):
            os.unlink(temp)


def _write_all(handle: BinaryIO, data: bytes) -> None:
    handle.write(data)
    handle.flush()
    os.fsync(handle.fileno())


def _publish(temp: str, path: Path, overwrite: bool) -> bool:
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
