"""What one forward pass at load time finds in a torch model: its class count, its activations
by kind and module path (every one accounted for), and the layer Grad-CAM reads."""

from __future__ import annotations

import difflib
from collections import Counter
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torchvision import models

from ..base import BackendError
from ..reasons import first_line
from ..rules import RULED_ACTIVATIONS
from .activations import ActivationOverride


class Probe(NamedTuple):
    """What one forward pass at load time found."""

    num_classes: int
    activations: dict[str, int]  # kind → how many run in one forward pass
    unruled: dict[str, tuple[str, ...]]  # kind with no rule → its first module paths
    cam_layer: str | None  # Grad-CAM's layer; None: no spatial feature map


def probe(model: nn.Module, size: int, name: str, cam_layer: str | None = None) -> Probe:
    """Run zeros (1, 3, size, size) through the model once, with every module's entry and exit
    watched: the activations by kind and module path, and every module's output shape."""
    paths = {module: path for path, module in model.named_modules()}
    running: list[str] = []
    shapes: list[tuple[str, Any, nn.Module]] = []  # (path, output shape, module) as they finish

    def enter(module: nn.Module, _inputs: Any) -> None:
        running.append(paths[module])

    def leave(module: nn.Module, _inputs: Any, output: Any) -> None:
        running.pop()
        shapes.append((paths[module], getattr(output, "shape", None), module))

    root = f"{type(model).__name__}.forward"  # functional calls in the model's own forward
    override = ActivationOverride(where=lambda: (running[-1] if running else "") or root)
    device = next(model.parameters(), torch.zeros(())).device
    x = torch.zeros(1, 3, size, size, device=device, requires_grad=True)
    handles: list[Any] = []
    try:  # a scripted module refuses hooks: that too is one line
        handles += [m.register_forward_pre_hook(enter) for m in paths]
        handles += [m.register_forward_hook(leave) for m in paths]
        with torch.enable_grad(), override:
            out = model(x)
    except BackendError:
        raise
    except (Exception, SystemExit) as e:  # the user's forward: a sys.exit() must not end gbp
        exited = isinstance(e, SystemExit)
        what = f"it called sys.exit({e.code!r})" if exited else f"{type(e).__name__}: "
        raise BackendError(
            f"{name}: a forward pass on a 1×3×{size}×{size} input failed "
            f"({what}{'' if exited else first_line(e)})"
        ) from e
    finally:
        for handle in handles:
            handle.remove()
    if not isinstance(out, Tensor) or out.ndim != 2:
        got = f"shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
        raise BackendError(f"{name} returns {got}, not logits of shape (N, classes)")
    found = override.found()
    unruled = {k: tuple(override.paths[k]) for k in found if k not in RULED_ACTIVATIONS}
    layer = chosen_cam_layer(model, shapes, cam_layer, name)
    return Probe(out.shape[1], dict(found), unruled, layer)


def _spatial(shape: Any) -> bool:
    return shape is not None and len(shape) == 4 and shape[2] > 1 and shape[3] > 1


POOLING = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d)


def chosen_cam_layer(
    model: nn.Module,
    shapes: list[tuple[str, Any, nn.Module]],
    wanted: str | None,
    name: str,
) -> str | None:
    """`wanted` if it is a module with an (N, C, h, w) output; else the last module to finish
    with one before global pooling (DenseNets: features.denseblock4, as Keras's twin uses). A
    map followed by token sequences (N, L, C) is a patch embedding, not a feature map: None."""
    if wanted is not None:
        return _checked_cam_layer(shapes, wanted, name)
    if isinstance(model, models.DenseNet) and hasattr(model.features, "denseblock4"):
        return "features.denseblock4"
    calls = Counter(path for path, _, _ in shapes)
    last = None
    for i, (path, shape, module) in enumerate(shapes):  # a module run twice (a shared ReLU6)
        if path and _spatial(shape) and not isinstance(module, POOLING) and calls[path] == 1:
            last = i
    if last is None:
        return None
    layer = shapes[last][0]
    enclosing = {""} | {layer.rsplit(".", n)[0] for n in range(1, layer.count(".") + 1)}
    after = [s for p, s, _ in shapes[last + 1 :] if p not in enclosing]
    return None if any(s is not None and len(s) == 3 for s in after) else layer


def _checked_cam_layer(shapes: list[tuple[str, Any, nn.Module]], wanted: str, name: str) -> str:
    seen = {path: shape for path, shape, _ in shapes if path}
    if wanted not in seen:
        close = difflib.get_close_matches(wanted, list(seen), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise BackendError(f"--cam-layer {wanted}: {name} runs no module of that name{hint}")
    if sum(path == wanted for path, _, _ in shapes) > 1:
        raise BackendError(
            f"--cam-layer {wanted}: {name} runs that module more than once in a pass (a "
            "shared activation?): name one that runs once"
        )
    if not _spatial(seen[wanted]):
        raise BackendError(
            f"--cam-layer {wanted}: its output is {_shown(seen[wanted])}, "
            "not a spatial (N, C, h, w) feature map"
        )
    return wanted


def _shown(shape: Any) -> str:
    return "not a tensor" if shape is None else str(tuple(shape))
