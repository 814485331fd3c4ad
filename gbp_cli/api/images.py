"""What the library takes as an image, checked as strictly as the command line checks a file.

One image is a path, a file's bytes, a PIL image in any mode, or pixels: a numpy array or a
torch or TensorFlow tensor, uint8 or floats in [0, 1], laid out H×W×C or C×H×W (C = 3; 1 for
gray; 4, RGBA, composited over white as a file's alpha is) or H×W. Many images are a list or
tuple of those, or one N×H×W×C / N×C×H×W array or tensor. Anything else is refused by name,
with how to convert it: nothing is clipped or guessed at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from gbp_cli.errors import ImageError
from gbp_cli.inputs.preprocess import decode, read_input, to_rgb

CHANNELS_LAST = (1, 3, 4)  # gray, RGB, RGBA
CHANNELS_FIRST = (1, 3)  # torch's layout: gray or RGB
SHAPES = (
    "H×W×3 (×1 gray, ×4 RGBA), 3×H×W (1×H×W gray) or H×W; many: N×H×W×3 or N×3×H×W (gray: N×H×W×1)"
)


@dataclass(frozen=True)
class Source:
    """One image, checked but not yet decoded; `name` is what a message calls it."""

    name: str
    path: Path | None = None
    data: bytes | None = None
    image: Image.Image | None = None
    pixels: np.ndarray | None = None  # H×W×C uint8, C in CHANNELS_LAST

    def photo(self) -> Image.Image:
        """The upright RGB photo, decoded as `gbp explain` decodes a file."""
        if self.image is not None:
            return to_rgb(ImageOps.exif_transpose(self.image))
        if self.pixels is not None:
            return _from_pixels(self.pixels)
        return decode(read_input(self.path) if self.path is not None else self.data or b"")


def sources(images: Any) -> tuple[list[Source], bool]:
    """Each image checked (nothing decoded yet), and whether `images` was many rather than
    one: a list or tuple, or a 4-D array or tensor."""
    if isinstance(images, list | tuple):
        if not images:
            raise ImageError("images=[]: no images to explain")
        return [one(item, f"images[{i}]") for i, item in enumerate(images)], True
    pixels, channels_first = as_array(images)
    if pixels is not None and pixels.ndim == 4:
        return batch(pixels, channels_first), True
    return [one(images, "image")], False


def one(image: Any, name: str) -> Source:
    """One image of any kind the library takes, checked."""
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        return Source(str(path), path=path)
    if isinstance(image, bytes | bytearray | memoryview):
        return Source(name, data=bytes(image))
    if isinstance(image, Image.Image):
        if min(image.size) == 0:
            raise ImageError(f"{name}: an empty image ({image.size[0]}×{image.size[1]})")
        return Source(name, image=image)
    pixels, channels_first = as_array(image)
    if pixels is None:
        raise ImageError(
            f"{name}: a {type(image).__name__} is no image: pass a path, a file's bytes, a PIL "
            "image, or pixels (a numpy array or a torch or TensorFlow tensor)"
        )
    if pixels.ndim == 4:
        raise ImageError(
            f"{name}: a batch of {len(pixels)} inside a list: pass the batch itself, or a list "
            "of single images"
        )
    return Source(name, pixels=checked(pixels, name, channels_first))


def as_array(value: Any) -> tuple[np.ndarray | None, bool]:
    """Pixels as a numpy array, and whether their framework lays channels first by default
    (torch does); None for what holds no pixels."""
    framework = type(value).__module__.split(".")[0]
    if framework == "torch" and hasattr(value, "detach"):
        tensor = value.detach().cpu()
        if str(tensor.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            tensor = tensor.float()
        return tensor.numpy(), True
    if framework == "tensorflow" and hasattr(value, "numpy"):
        return np.asarray(value.numpy()), False
    if isinstance(value, np.ndarray):
        return value, False
    if hasattr(value, "__array__") and not isinstance(value, str | bytes):
        return np.asarray(value), False
    return None, False


def batch(pixels: np.ndarray, channels_first: bool) -> list[Source]:
    """An N×H×W×C or N×C×H×W batch, one checked Source per image."""
    if len(pixels) == 0:
        raise ImageError(f"images: an empty batch (shape {pixels.shape})")
    _kind(pixels, "images")
    first = _channels_first(pixels.shape[1:], channels_first, "images", pixels.shape)
    images = pixels.transpose(0, 2, 3, 1) if first else pixels
    return [
        Source(f"images[{i}]", pixels=checked(image, f"images[{i}]", False))
        for i, image in enumerate(images)
    ]


def checked(pixels: np.ndarray, name: str, channels_first: bool) -> np.ndarray:
    """One image's pixels as H×W×C uint8, or the ImageError that says what is wrong with them
    and how to convert them."""
    _kind(pixels, name)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    elif pixels.ndim != 3:
        raise ImageError(f"{name}: a {pixels.ndim}-D array {pixels.shape}: expected {SHAPES}")
    elif _channels_first(pixels.shape, channels_first, name, pixels.shape):
        pixels = pixels.transpose(1, 2, 0)
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ImageError(f"{name}: an empty image ({pixels.shape[0]}×{pixels.shape[1]})")
    if pixels.dtype == np.uint8:
        return np.ascontiguousarray(pixels)
    if not np.isfinite(pixels).all():
        raise ImageError(f"{name}: holds NaN or infinite values, which no photo has")
    low, high = float(pixels.min()), float(pixels.max())
    if low < 0:
        raise ImageError(
            f"{name}: floats from {low:.4g} to {high:.4g} look like a normalized model input, "
            "not a photo: pass the photo's pixels (uint8, or floats in [0, 1]); gbp normalizes "
            "them for the model (mean= and std=, or normalize=, say how)"
        )
    if high > 1:
        advice = (
            "divide by 255 (`array / 255`), or pass `array.astype(np.uint8)`"
            if high <= 255
            else "scale them to [0, 1] (16-bit: `array / 65535`)"
        )
        raise ImageError(
            f"{name}: floats from {low:.4g} to {high:.4g}, but float pixels lie in [0, 1]: {advice}"
        )
    values = pixels.astype(np.float32) if pixels.dtype == np.float16 else pixels
    return np.round(values * 255).astype(np.uint8)


def _kind(pixels: np.ndarray, name: str) -> None:
    """Refuse a dtype that does not say what its values mean."""
    if pixels.dtype == np.uint8 or np.issubdtype(pixels.dtype, np.floating):
        return
    if pixels.dtype == np.bool_:
        raise ImageError(
            f"{name}: a bool array is a mask, not a photo: convert it with "
            "`array.astype(np.uint8) * 255`"
        )
    if np.issubdtype(pixels.dtype, np.integer):
        raise ImageError(
            f"{name}: {pixels.dtype} pixels: gbp takes uint8 (0-255) or floats in [0, 1]; "
            "convert with `array.astype(np.uint8)` if the values are 0-255, or scale them to "
            "[0, 1] (16-bit: `array / 65535`)"
        )
    raise ImageError(f"{name}: {pixels.dtype} values are no pixels: pass uint8 or floats in [0, 1]")


def _channels_first(shape: tuple[int, ...], default: bool, name: str, whole: tuple) -> bool:
    """Whether a 3-D shape is C×H×W rather than H×W×C; where both fit (3×5×3), the
    framework's own layout decides."""
    last, first = shape[-1] in CHANNELS_LAST, shape[0] in CHANNELS_FIRST
    if not last and not first:
        raise ImageError(f"{name}: shape {whole} is no image layout gbp knows: expected {SHAPES}")
    return first and (default or not last)


def _from_pixels(pixels: np.ndarray) -> Image.Image:
    channels = pixels.shape[-1]
    if channels == 1:
        return Image.fromarray(pixels[..., 0], "L").convert("RGB")
    if channels == 4:
        return to_rgb(Image.fromarray(pixels, "RGBA"))
    return Image.fromarray(pixels, "RGB")
