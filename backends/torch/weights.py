"""Weights into a torch model: a state_dict of numpy arrays, every key accounted for, and one
line (not torch's many) when they do not fit."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from ..base import BackendError


def load_strict(model: nn.Module, state: Mapping[str, np.ndarray], source: str) -> None:
    """load_state_dict, with its multi-line complaint cut down to one line naming the keys."""
    tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}
    try:
        result = model.load_state_dict(tensors, strict=False, assign=True)
    except RuntimeError as e:
        detail = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), str(e))
        raise BackendError(f"{source}: does not fit {type(model).__name__} ({detail})") from None
    problems = [
        f"{len(keys)} {what}, e.g. {', '.join(keys[:3])}"
        for what, keys in (("missing", result.missing_keys), ("unexpected", result.unexpected_keys))
        if keys
    ]
    if problems:
        raise BackendError(f"{source}: keys do not match ({'; '.join(problems)})")
