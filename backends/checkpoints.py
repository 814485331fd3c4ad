"""torchvision state_dict files ↔ numpy, with the wrappers people's checkpoints come in.

Only `torch` is needed here (not torchvision), and only when a .pth file is read or written.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .base import DISTRIBUTION, BackendError
from .reasons import WHOLE_MODEL, unpickling_reason

# Checkpoints saved by old torchvision name BatchNorm/conv parameters 'norm.1' instead of 'norm1'.
_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def _torch():
    try:
        import torch
    except ImportError:
        raise BackendError(
            f"reading or writing a .pth file needs PyTorch: pip install '{DISTRIBUTION}[torch]'"
        ) from None
    return torch


def read_checkpoint(path: Path, source: str | None = None) -> dict[str, np.ndarray]:
    """A user's state_dict as numpy arrays, unpickled safely (weights_only=True).

    `source` names the file in errors the way the user gave it (default: `--weights PATH`).
    """
    source = source or f"--weights {path}"
    torch = _torch()
    if not path.is_file():
        raise BackendError(f"{source}: no such file")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        reason = unpickling_reason(path, e)
        if reason == WHOLE_MODEL:
            raise BackendError(f"{source}: {reason}") from None
        raise BackendError(f"{source}: not a readable PyTorch state_dict ({reason})") from None
    state = unwrap(loaded, source)
    return {
        key: (value.float() if value.is_floating_point() else value).detach().numpy()
        for key, value in state.items()
    }


def unwrap(loaded: object, source: str) -> dict:
    """Strip {'state_dict': …} wrappers, DataParallel's 'module.' and legacy DenseNet key names."""
    torch = _torch()
    if isinstance(loaded, Mapping):
        for wrapper in ("state_dict", "model_state_dict", "model"):
            inner = loaded.get(wrapper)
            if isinstance(inner, Mapping):
                loaded = inner
                break
    if not isinstance(loaded, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise BackendError(
            f"{source}: expected a state_dict of tensors, found {type(loaded).__name__}"
        )
    state = {}
    for key, value in loaded.items():
        key = key.removeprefix("module.")
        legacy = _LEGACY_KEY.match(key)
        state[legacy.group(1) + legacy.group(2) if legacy else key] = value
    return state


def checkpoint_bytes(state: Mapping[str, np.ndarray]) -> bytes:
    """A torchvision-loadable state_dict file, in memory (so it can be written atomically)."""
    torch = _torch()
    buffer = io.BytesIO()
    torch.save({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, buffer)
    return buffer.getvalue()
