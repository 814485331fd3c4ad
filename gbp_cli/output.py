"""Where explanations go, and writing them so a reader never sees half a file."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path, PurePath

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
    """`OUT/<relative path without extension>[.<class>].<method>.<format>.png`, or `….<method>.npy`
    for raw arrays and `….panel.png` for the figure that holds every method."""
    parts = [relative.stem]
    if target is not None:
        parts.append(str(target))
    if fmt == "panel":
        parts += ["panel", "png"]
    elif fmt == "npy":
        parts += [method, "npy"]
    else:
        parts += [method, fmt, "png"]
    return out_dir.joinpath(relative.parent, ".".join(parts))


def png_bytes(pixels: np.ndarray, metadata: dict[str, str]) -> bytes:
    """Encode an RGB/L image with text chunks saying exactly what produced it."""
    info = PngImagePlugin.PngInfo()
    for key, value in metadata.items():
        info.add_itxt(key, value)
    buffer = io.BytesIO()
    # Saliency maps are noise-like: zlib level 1 is about 1.5× faster than 6 for ~10% more bytes.
    Image.fromarray(pixels).save(buffer, format="PNG", pnginfo=info, compress_level=1)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32))
    return buffer.getvalue()


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
