"""PyTorch backend: every ReLU's backward goes through the method's rule, via autograd-node hooks.

Module hooks cannot see functional ReLUs (torchvision's DenseNet ends in `F.relu(x, inplace=True)`),
and full backward hooks break on in-place ones. So during the forward pass a TorchFunctionMode sees
*every* ReLU call, however it is spelled, and registers a backward hook on the autograd node that
call created. The hooks live on this pass's graph only: the model is never modified.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from .base import Backend, BackendError, Explanation, ModelInfo, WeightsSpec
from .rules import RULES, Rule

ORDINARY = RULES["vanilla"]  # the plain gradient, which Grad-CAM weighs its layer by

RELU_CALLS = frozenset({F.relu, torch.relu, torch.relu_, Tensor.relu, Tensor.relu_})


class ReluOverride(TorchFunctionMode):
    """Hooks the backward node of every ReLU run under it; `rule` is read at backward time, so
    one forward graph serves every method."""

    def __init__(self) -> None:
        super().__init__()
        self.rule: Rule = ORDINARY
        self.hooked = 0  # ReLUs seen in the forward pass
        self.applied = 0  # rule applications in backward passes so far

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        out = func(*args, **(kwargs or {}))
        if func in RELU_CALLS and isinstance(out, Tensor) and out.grad_fn is not None:
            node = out.grad_fn
            if node.name() != "ReluBackward0":
                raise RuntimeError(
                    f"a ReLU produced a {node.name()} node (in place on a view?); "
                    "gbp cannot override its backward, so it refuses to give a wrong map"
                )
            node.register_hook(self._backward_hook)
            self.hooked += 1
        return out

    def _backward_hook(
        self, grad_inputs: tuple[Tensor, ...], grad_outputs: tuple[Tensor, ...]
    ) -> tuple[Tensor, ...] | None:
        """The method's rule (rules.py), applied to R = grad_outputs[0]; None keeps autograd's own
        gradient R·[x>0] = grad_inputs[0]."""
        self.applied += 1
        rule = self.rule
        if rule.forward and not rule.positive:
            return None  # nothing changes (vanilla)
        passed = grad_inputs[0] if rule.forward else grad_outputs[0]
        if rule.positive:  # grad_inputs[0] is this backward's own tensor: clamp it in place
            passed = passed.clamp_min_(0) if rule.forward else passed.clamp_min(0)
        return (passed,)


class ModuleExplanation(NamedTuple):
    logits: Tensor  # (N, classes)
    targets: Tensor  # (N, K)
    saliency: dict[str, Tensor]  # method → (N, K, *input shape)
    relus: dict[str, int]  # method → ReLUs its rule was applied to in one backward pass
    features: Tensor | None = None  # the Grad-CAM layer's output (N, C, h, w)
    feature_grads: Tensor | None = None  # ordinary gradients w.r.t. it (N, K, C, h, w)


def explain_module(
    model: nn.Module,
    x: Tensor,
    methods: Sequence[str],
    targets: Tensor | None = None,
    top_k: int = 1,
    cam_layer: nn.Module | None = None,
) -> ModuleExplanation:
    """One forward, then one input-gradient per (method, target) through the same graph, and,
    with `cam_layer`, the ordinary gradient of each target w.r.t. that layer's output."""
    x = x.detach().requires_grad_(True)
    override = ReluOverride()
    captured: list[Tensor] = []
    hook = None
    if cam_layer is not None:  # removed right after the forward pass: nothing is left behind
        hook = cam_layer.register_forward_hook(lambda _m, _i, output: captured.append(output))
    try:
        with torch.enable_grad(), override:
            logits = model(x)
    finally:
        if hook is not None:
            hook.remove()
    if targets is None:
        targets = logits.detach().topk(top_k, dim=1).indices
    targets = targets.to(logits.device)
    scores = [logits.gather(1, targets[:, k : k + 1]).sum() for k in range(targets.shape[1])]
    remaining = (len(methods) + bool(captured)) * len(scores)

    def gradients(wrt: Tensor) -> Tensor:
        nonlocal remaining
        grads = []
        for score in scores:
            remaining -= 1
            grads.append(torch.autograd.grad(score, wrt, retain_graph=remaining > 0)[0])
        return torch.stack(grads, dim=1)

    saliency: dict[str, Tensor] = {}
    relus: dict[str, int] = {}
    for method in methods:
        override.rule = RULES[method]
        before = override.applied
        saliency[method] = gradients(x)
        relus[method] = (override.applied - before) // len(scores)
    features = feature_grads = None
    if captured:
        override.rule = ORDINARY
        features, feature_grads = captured[0].detach(), gradients(captured[0])
    return ModuleExplanation(logits.detach(), targets, saliency, relus, features, feature_grads)


def resolve_device(device: str) -> torch.device:
    """`auto` means the GPU when PyTorch sees one."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise BackendError("--device cuda: PyTorch sees no CUDA device (use --device cpu or auto)")
    return torch.device(device)


class TorchBackend(Backend):
    """A torchvision DenseNet in eval mode, channels-last, with no parameter gradients."""

    def __init__(self, model: nn.Module, info: ModelInfo) -> None:
        self.device = torch.device(info.device)
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.info = info

    def state(self) -> dict[str, np.ndarray]:
        # Copies: numpy views of the live tensors would change with the next load_state.
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})

    def explain(
        self,
        images: np.ndarray,
        methods: Sequence[str],
        targets: np.ndarray | None = None,
        top_k: int = 1,
        cam: bool = False,
    ) -> Explanation:
        # NHWC numpy viewed as NCHW is already channels-last: no copy before the device transfer.
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2)
        x = x.to(self.device)
        wanted = None if targets is None else torch.from_numpy(np.asarray(targets, dtype=np.int64))
        layer = self.model.features.denseblock4 if cam else None
        # bf16: autocast runs the convolutions in bfloat16; the input and its gradient stay fp32.
        bf16 = self.info.precision == "bf16"
        strict = not bf16 and self.device.type == "cuda"
        with torch.autocast(self.device.type, torch.bfloat16, enabled=bf16), exact_fp32(strict):
            result = explain_module(self.model, x, methods, wanted, top_k, layer)
        return Explanation(
            logits=_numpy(result.logits),
            targets=result.targets.cpu().numpy(),
            saliency={m: _numpy(g.permute(0, 1, 3, 4, 2)) for m, g in result.saliency.items()},
            relus=result.relus,
            features=None
            if result.features is None
            else _numpy(result.features.permute(0, 2, 3, 1)),
            feature_grads=(
                None
                if result.feature_grads is None
                else _numpy(result.feature_grads.permute(0, 1, 3, 4, 2))
            ),
        )


@contextlib.contextmanager
def exact_fp32(active: bool) -> Iterator[None]:
    """fp32 means fp32: cuDNN would otherwise run convolutions in TF32 on recent GPUs, which moves
    the maps by a few percent (measured on an H100: guided 4%, vanilla 8% relative L2 vs CPU)."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if hasattr(conv, "fp32_precision"):  # torch ≥ 2.9: "ieee", not just "no TF32 flag"
        switches = [
            (conv, "fp32_precision", "ieee"),
            (torch.backends.cuda.matmul, "fp32_precision", "ieee"),
        ]
    else:
        switches = [
            (torch.backends.cudnn, "allow_tf32", False),
            (torch.backends.cuda.matmul, "allow_tf32", False),
        ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in switches]
    if active:
        for owner, name, value in switches:
            setattr(owner, name, value)
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def _numpy(tensor: Tensor) -> np.ndarray:
    return tensor.float().cpu().numpy()


MODES = ("auto",)  # PyTorch runs eagerly; there is nothing to choose yet


def load(
    weights: WeightsSpec, device: str, precision: str = "fp32", mode: str = "auto"
) -> TorchBackend:
    """Build the model the weights describe, on the requested device."""
    from .torch_weights import build_model

    if mode not in MODES:
        raise BackendError(f"the torch backend has no execution mode {mode!r} (only 'auto')")
    resolved = resolve_device(device)
    model, name = build_model(weights)
    num_classes = model.classifier.out_features
    info = ModelInfo("torch", name, num_classes, weights, resolved.type, precision=precision)
    return TorchBackend(model, info)
