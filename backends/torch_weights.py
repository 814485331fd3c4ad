"""Torchvision DenseNets from ImageNet weights (torchvision's cache), a seed, or a state_dict."""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision import models

from backends.base import WeightsSpec
from gbp_cli.errors import GbpError

# Dense layers per block → torchvision builder name.
ARCHITECTURES = {
    (6, 12, 24, 16): "densenet121",
    (6, 12, 32, 32): "densenet169",
    (6, 12, 48, 32): "densenet201",
}
DEFAULT_ARCH = "densenet201"
# Checkpoints saved by old torchvision name BatchNorm/conv parameters 'norm.1' instead of 'norm1'.
_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)
_LAYER_KEY = re.compile(r"features\.denseblock(\d)\.denselayer(\d+)\.")


def build_model(weights: WeightsSpec) -> tuple[nn.Module, str]:
    """The model for `--weights`, and its architecture name."""
    if weights.kind == "imagenet":
        return imagenet_model(), DEFAULT_ARCH
    if weights.kind == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(weights.seed)
            return models.densenet201(), DEFAULT_ARCH
    assert weights.path is not None
    state = read_state_dict(weights.path)
    arch = architecture_of(state, weights.path)
    model = getattr(models, arch)(num_classes=state["classifier.weight"].shape[0])
    load_strict(model, state, weights.path)
    return model, arch


def imagenet_model() -> nn.Module:
    """DenseNet201 IMAGENET1K_V1 through torchvision's cache ($TORCH_HOME), or one clear error."""
    spec = models.DenseNet201_Weights.IMAGENET1K_V1
    filename = spec.url.rsplit("/", 1)[-1]
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    was_cached = (folder / filename).is_file()
    try:
        # torch.hub announces downloads on stdout, which carries only data here: send it to stderr.
        held = _HeldBack(sys.stderr)
        with contextlib.redirect_stdout(held), contextlib.redirect_stderr(held):
            return models.densenet201(weights=spec)
    except (
        Exception
    ) as e:  # offline: URLError/OSError; a damaged cache: RuntimeError/UnpicklingError
        reason = _first_line(e)
        if was_cached:
            raise GbpError(
                f"the cached ImageNet weights {folder / filename} cannot be loaded ({reason}); "
                f"delete the file to download it again, or pass --weights PATH"
            ) from None
        raise GbpError(
            f"ImageNet weights {filename} are not cached and could not be downloaded ({reason}): "
            f"put {spec.url} in {folder}/ (set TORCH_HOME to move it), or pass --weights PATH"
        ) from None


class _HeldBack(io.TextIOBase):
    """Holds torch.hub's 'Downloading…' back until progress follows: offline failure is 1 line."""

    def __init__(self, real: io.TextIOBase | object) -> None:
        self.real = real
        self.held: list[str] = []

    def write(self, text: str) -> int:
        self.held.append(text)
        if len(self.held) > 1:  # bytes are flowing: show the held line and everything after it
            self.real.write("".join(self.held))  # type: ignore[attr-defined]
            self.held.clear()
            self.held.append("")
        return len(text)

    def flush(self) -> None:
        self.real.flush()  # type: ignore[attr-defined]


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A user's checkpoint, unpickled safely (weights_only) and with common wrappers removed."""
    if not path.is_file():
        raise GbpError(f"--weights {path}: no such file (expected imagenet, random or a path)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise GbpError(
            f"--weights {path}: not a readable PyTorch state_dict ({_first_line(e)})"
        ) from None
    return normalize_state_dict(loaded, path)


def normalize_state_dict(loaded: object, path: Path) -> dict[str, Tensor]:
    """Unwrap {'state_dict': ...}, DataParallel's 'module.' prefix and legacy DenseNet key names."""
    if isinstance(loaded, Mapping):
        for wrapper in ("state_dict", "model_state_dict", "model"):
            inner = loaded.get(wrapper)
            if isinstance(inner, Mapping):
                loaded = inner
                break
    if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise GbpError(
            f"--weights {path}: expected a state_dict of tensors, found {type(loaded).__name__}"
        )
    state: dict[str, Tensor] = {}
    for key, value in loaded.items():
        key = key.removeprefix("module.")
        legacy = _LEGACY_KEY.match(key)
        state[legacy.group(1) + legacy.group(2) if legacy else key] = value
    return state


def architecture_of(state: Mapping[str, Tensor], path: Path) -> str:
    """Tell DenseNet121/169/201 apart by their dense layers per block."""
    layers: dict[int, set[int]] = {}
    for key in state:
        match = _LAYER_KEY.match(key)
        if match:
            layers.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    config = tuple(len(layers.get(block, ())) for block in (1, 2, 3, 4))
    if config not in ARCHITECTURES or "classifier.weight" not in state:
        raise GbpError(
            f"--weights {path}: not a torchvision DenseNet121/169/201 state_dict "
            f"(dense layers per block {config})"
        )
    return ARCHITECTURES[config]


def load_strict(model: nn.Module, state: Mapping[str, Tensor], path: Path) -> None:
    """load_state_dict, with its multi-line complaint cut down to one line."""
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        detail = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), str(e))
        raise GbpError(
            f"--weights {path}: does not fit {type(model).__name__} ({detail})"
        ) from None
    problems = []
    if result.missing_keys:
        problems.append(f"{len(result.missing_keys)} missing, e.g. {result.missing_keys[0]}")
    if result.unexpected_keys:
        problems.append(
            f"{len(result.unexpected_keys)} unexpected, e.g. {result.unexpected_keys[0]}"
        )
    if problems:
        raise GbpError(f"--weights {path}: keys do not match ({'; '.join(problems)})")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
