"""PyTorch backend: every ReLU's backward goes through the method's rule, via autograd-node hooks.

Module hooks cannot see functional ReLUs (torchvision's DenseNet ends in `F.relu(x, inplace=True)`),
and full backward hooks break on in-place ones. So during the forward pass a TorchFunctionMode sees
*every* ReLU call, however it is spelled, and registers a backward hook on the autograd node that
call created. The hooks live on this pass's graph only: the model is never modified.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from backends.base import Backend, Explanation, ModelInfo, WeightsSpec
from gbp_cli.errors import GbpError

# A rule maps (R, the ordinary gradient R·[x>0]) to the gradient passed down, or None to keep it.
Rule = Callable[[Tensor, Tensor], "Tensor | None"]


def _vanilla(grad_out: Tensor, gated: Tensor) -> Tensor | None:
    return None


def _guided(grad_out: Tensor, gated: Tensor) -> Tensor | None:
    return gated.clamp_min(0)  # R·[x>0]·[R>0]


def _deconv(grad_out: Tensor, gated: Tensor) -> Tensor | None:
    return grad_out.clamp_min(0)  # R·[R>0], the forward sign ignored


RULES: dict[str, Rule] = {"vanilla": _vanilla, "guided": _guided, "deconv": _deconv}

RELU_CALLS = frozenset({F.relu, torch.relu, torch.relu_, Tensor.relu, Tensor.relu_})


class ReluOverride(TorchFunctionMode):
    """Hooks the backward node of every ReLU run under it; `rule` is read at backward time."""

    def __init__(self) -> None:
        super().__init__()
        self.rule: Rule = _vanilla
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
        self.applied += 1
        new = self.rule(grad_outputs[0], grad_inputs[0])
        return None if new is None else (new,)


def explain_module(
    model: nn.Module,
    x: Tensor,
    methods: Sequence[str],
    targets: Tensor | None = None,
    top_k: int = 1,
) -> tuple[Tensor, Tensor, dict[str, Tensor], dict[str, int]]:
    """One forward, then one input-gradient per (method, target) through the same graph.

    Returns logits (N, C), targets (N, K), saliency per method (N, K, *x.shape[1:]) and the number
    of ReLUs each method's rule was applied to in one backward pass.
    """
    x = x.detach().requires_grad_(True)
    override = ReluOverride()
    with torch.enable_grad(), override:
        logits = model(x)
    if targets is None:
        targets = logits.detach().topk(top_k, dim=1).indices
    targets = targets.to(logits.device)
    passes = len(methods) * targets.shape[1]
    saliency: dict[str, Tensor] = {}
    relus: dict[str, int] = {}
    done = 0
    for method in methods:
        override.rule = RULES[method]
        per_target = []
        for k in range(targets.shape[1]):
            before = override.applied
            score = logits.gather(1, targets[:, k : k + 1]).sum()
            done += 1
            (grad,) = torch.autograd.grad(score, x, retain_graph=done < passes)
            per_target.append(grad)
            relus[method] = override.applied - before
        saliency[method] = torch.stack(per_target, dim=1)
    return logits.detach(), targets, saliency, relus


def resolve_device(device: str) -> torch.device:
    """`auto` means the GPU when PyTorch sees one."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise GbpError("--device cuda: PyTorch sees no CUDA device (use --device cpu or auto)")
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
        """The weights as torchvision-layout numpy arrays (to hand the very same to TF)."""
        return {
            k: v.detach().cpu().contiguous().numpy() for k, v in self.model.state_dict().items()
        }

    def explain(
        self,
        images: np.ndarray,
        methods: Sequence[str],
        targets: np.ndarray | None = None,
        top_k: int = 1,
    ) -> Explanation:
        # NHWC numpy viewed as NCHW is already channels-last: no copy before the device transfer.
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2)
        x = x.to(self.device)
        wanted = None if targets is None else torch.from_numpy(np.asarray(targets, dtype=np.int64))
        logits, chosen, saliency, relus = explain_module(self.model, x, methods, wanted, top_k)
        return Explanation(
            logits=logits.float().cpu().numpy(),
            targets=chosen.cpu().numpy(),
            saliency={
                m: g.permute(0, 1, 3, 4, 2).float().cpu().numpy() for m, g in saliency.items()
            },
            relus=relus,
        )


def load(weights: WeightsSpec, device: str) -> TorchBackend:
    """Build the model the weights describe, on the requested device."""
    from backends.torch_weights import build_model

    resolved = resolve_device(device)
    model, name = build_model(weights)
    num_classes = model.classifier.out_features
    info = ModelInfo("torch", name, num_classes, weights, str(resolved))
    return TorchBackend(model, info)
