"""PyTorch backend: each method is one backward rule at every activation (backends/rules.py).

One forward pass under an ActivationOverride (backends/torch_models.py) hooks the autograd node of
every ReLU and ReLU6, however spelled; each method is then one input-gradient through that graph.
Activations with no rule (SiLU, GELU, …) refuse guided and deconv unless the user lets them keep
their ordinary gradient. Every backward pass is checked to have applied the rule at every hooked
activation on its path, so a map is never silently wrong.
"""

from __future__ import annotations

import contextlib
import functools
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from ..base import Backend, BackendError, Explanation, ModelInfo, ModelSpec, WeightsSpec, precise
from ..rules import METHODS, ORDINARY, RULES, refusal
from .activations import ActivationOverride
from .probe import probe

if TYPE_CHECKING:
    from .zoo import Built


class ModuleExplanation(NamedTuple):
    logits: Tensor  # (N, classes)
    targets: Tensor  # (N, K)
    saliency: dict[str, Tensor]  # method → (N, K, *input shape)
    relus: dict[str, int]  # method → activations its rule was applied to in one backward pass
    features: Tensor | None  # the Grad-CAM layer's output (N, C, h, w)
    feature_grads: Tensor | None  # ordinary gradients w.r.t. it (N, K, C, h, w)
    activations: dict[str, dict[str, int]]  # method → {kind: rule applications per pass}
    ordinary: dict[str, int]  # activations with no rule, left with their own gradient


def explain_module(
    model: nn.Module,
    x: Tensor,
    methods: Sequence[str],
    targets: Tensor | None = None,
    top_k: int = 1,
    cam_layer: nn.Module | None = None,
    other_activations: str = "refuse",
) -> ModuleExplanation:
    """One forward, then one input-gradient per (method, target) through the same graph, and,
    with `cam_layer`, the ordinary gradient of each target w.r.t. that layer's output.

    A rule method (guided, deconv) on a model with activations that have no rule is refused,
    unless `other_activations` is "gradient"."""
    x = x.detach().requires_grad_(True)
    override = ActivationOverride()
    captured: list[Tensor] = []
    hook = None
    if cam_layer is not None:  # removed right after the forward pass: nothing is left behind
        hook = cam_layer.register_forward_hook(functools.partial(_capture, captured))
    try:
        with torch.enable_grad(), override:
            logits = model(x)
    finally:
        if hook is not None:
            hook.remove()
    if len(captured) > 1:  # never silently the wrong call's features
        raise BackendError("the Grad-CAM layer ran more than once in a pass: name another")
    ruled = [m for m in methods if METHODS[m].needs_rule]
    others = dict(override.others)
    problem = refusal(methods, others, dict.fromkeys(others, ()), None, other_activations)
    if problem is not None:
        raise BackendError(problem)
    expected = override.on_path(logits.grad_fn, x) if logits.grad_fn is not None else Counter()
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
    applied: dict[str, dict[str, int]] = {}
    for method in methods:
        override.rule = RULES[method]
        before = override.applied.copy()
        saliency[method] = gradients(x)
        per_pass = {k: n // len(scores) for k, n in (override.applied - before).items()}
        if per_pass != dict(expected):
            raise BackendError(
                f"the {method} rule reached {_counts(per_pass)} of the {_counts(expected)} on "
                "the gradient's path; gbp refuses to give a wrong map"
            )
        applied[method] = per_pass
    features = feature_grads = None
    if captured:
        override.rule = ORDINARY
        features, feature_grads = captured[0].detach(), gradients(captured[0])
    ordinary = dict(override.others) if ruled else {}
    relus = {m: sum(counts.values()) for m, counts in applied.items()}
    return ModuleExplanation(
        logits.detach(), targets, saliency, relus, features, feature_grads, applied, ordinary
    )


def _numpy(tensor: Tensor) -> np.ndarray:
    """float32 for fp32 and bf16 runs; float64 stays float64 (gbp parity --precision fp64)."""
    return (tensor if tensor.dtype == torch.float64 else tensor.float()).cpu().numpy()


def _capture(captured: list[Tensor], _module: nn.Module, _inputs: Any, output: Any) -> Any:
    """Keep the Grad-CAM layer's output; the network goes on with a copy, so an in-place
    activation after the layer cannot change what was kept."""
    if not isinstance(output, Tensor):
        raise BackendError(f"the Grad-CAM layer returned a {type(output).__name__}, not a tensor")
    captured.append(output)
    return output.clone()


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "0 activations"


def prepare(model: nn.Module, device: torch.device) -> nn.Module:
    """Eval mode, channels-last on the device, no parameter gradients: how every model runs."""
    model = model.eval().to(device, memory_format=torch.channels_last)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


class TorchBackend(Backend):
    """Any torch classifier in eval mode, channels-last, with no parameter gradients."""

    def __init__(
        self,
        model: nn.Module,
        info: ModelInfo,
        spec: ModelSpec = ModelSpec(),  # noqa: B008 (frozen)
        rebuild: Callable[..., nn.Module] | None = None,
    ) -> None:
        self.device = torch.device(info.device)
        self.model = prepare(model, self.device)
        self.info = info
        self.spec = spec
        self.rebuild = rebuild  # a freshly initialised twin of the model (random_state)

    def state(self) -> dict[str, np.ndarray]:
        # Copies: numpy views of the live tensors would change with the next load_state.
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})

    def stages(self) -> list[tuple[str, tuple[str, ...]]]:
        """Cascading randomization's stages, from the output back: (name, state key prefixes)."""
        from .randomize import stages

        return stages(self.model, self.info.model)

    def random_state(self, seed: int) -> dict[str, np.ndarray]:
        """A seeded re-initialisation of every weight, in `state()`'s layout."""
        from .randomize import random_state

        return random_state(self.model, self.info.model, self.info.num_classes, seed, self.rebuild)

    def explain(
        self,
        images: np.ndarray,
        methods: Sequence[str],
        targets: np.ndarray | None = None,
        top_k: int = 1,
        cam: bool = False,
    ) -> Explanation:
        self._check(methods, cam)
        # NHWC numpy viewed as NCHW is already channels-last: no copy before the device transfer.
        dtype = np.float64 if self.info.precision == "fp64" else np.float32
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=dtype)).permute(0, 3, 1, 2)
        x = x.to(self.device)
        wanted = None if targets is None else torch.from_numpy(np.asarray(targets, dtype=np.int64))
        layer = self.model.get_submodule(self.info.cam_layer) if cam else None  # type: ignore[arg-type]
        # bf16: autocast runs the convolutions in bfloat16; the input and its gradient stay fp32.
        bf16 = self.info.precision == "bf16"
        strict = not bf16 and self.device.type == "cuda"
        with torch.autocast(self.device.type, torch.bfloat16, enabled=bf16), exact_fp32(strict):
            try:
                result = explain_module(
                    self.model, x, methods, wanted, top_k, layer, self.spec.other_activations
                )
            except SystemExit as e:  # the user's forward: a sys.exit() there must not end gbp
                raise BackendError(
                    f"{self.info.model}: its forward pass called sys.exit({e.code!r})"
                ) from e
        return Explanation(
            logits=_numpy(result.logits),
            targets=result.targets.cpu().numpy(),
            saliency={m: _numpy(g.permute(0, 1, 3, 4, 2)) for m, g in result.saliency.items()},
            relus=result.relus,
            activations=result.activations,
            ordinary=result.ordinary,
            features=None
            if result.features is None
            else _numpy(result.features.permute(0, 2, 3, 1)),
            feature_grads=(
                None
                if result.feature_grads is None
                else _numpy(result.feature_grads.permute(0, 1, 3, 4, 2))
            ),
        )

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The logits of a forward pass under no_grad: no graph is built, so nothing of it
        outlives the call (gbp evaluate's perturbed copies: many passes, no gradients)."""
        dtype = np.float64 if self.info.precision == "fp64" else np.float32
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=dtype)).permute(0, 3, 1, 2)
        bf16 = self.info.precision == "bf16"
        strict = not bf16 and self.device.type == "cuda"
        with (
            torch.no_grad(),
            torch.autocast(self.device.type, torch.bfloat16, enabled=bf16),
            exact_fp32(strict),
        ):
            try:
                logits = self.model(x.to(self.device))
            except SystemExit as e:  # the user's forward: a sys.exit() there must not end gbp
                raise BackendError(
                    f"{self.info.model}: its forward pass called sys.exit({e.code!r})"
                ) from e
        return _numpy(logits)

    def _check(self, methods: Sequence[str], cam: bool) -> None:
        """Refuse, before any work, what this model cannot give (explain_module re-checks)."""
        info = self.info
        asked = [*methods, "gradcam"] if cam else list(methods)
        problem = refusal(
            asked,
            info.activations,
            info.unruled,
            info.cam_layer is not None,
            self.spec.other_activations,
            info.model,
        )
        if problem is not None:
            raise BackendError(problem)


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


MODES = ("auto",)  # PyTorch runs eagerly; there is nothing to choose yet


def resolve_device(device: str) -> torch.device:
    """`auto` means the GPU when PyTorch sees one."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise BackendError("--device cuda: PyTorch sees no CUDA device (use --device cpu or auto)")
    return torch.device(device)


def load(
    weights: WeightsSpec,
    device: str,
    precision: str = "fp32",
    mode: str = "auto",
    model: ModelSpec = ModelSpec(),  # noqa: B008 (frozen)
) -> TorchBackend:
    """Build the model `model` names with the weights `weights` asks for, on the device, and
    probe it once: its activations by kind and module path, its Grad-CAM layer."""
    from .zoo import build

    if mode not in MODES:
        raise BackendError(f"the torch backend has no execution mode {mode!r} (only 'auto')")
    precise(precision)
    resolved = resolve_device(device)
    return _probed(build(model, weights), weights, resolved, precision, model)


def wrap_module(
    module: nn.Module,
    device: str = "auto",
    precision: str = "fp32",
    model: ModelSpec = ModelSpec(),  # noqa: B008 (frozen)
) -> TorchBackend:
    """A backend around a user's model object, which is copied first and so left unchanged
    (its mode, parameters' requires_grad, memory format and device); `model` gives its name,
    input size, normalisation, Grad-CAM layer and other_activations."""
    from .zoo import given_model

    precise(precision)
    resolved = resolve_device(device)
    return _probed(given_model(module, model), WeightsSpec("given"), resolved, precision, model)


def _probed(
    built: Built, weights: WeightsSpec, resolved: torch.device, precision: str, model: ModelSpec
) -> TorchBackend:
    """The built model prepared on the device and probed once: its activations by kind and
    module path, its Grad-CAM layer."""
    module = prepare(built.module, resolved)
    found = probe(module, built.preprocessing.size, built.name, model.cam_layer)
    if precision == "fp64":  # after the probe, which feeds float32
        module = module.double()
    info = ModelInfo(
        "torch",
        built.name,
        found.num_classes,
        weights,
        resolved.type,
        precision=precision,
        warnings=built.warnings,
        preprocessing=built.preprocessing,
        activations=found.activations,
        unruled=found.unruled,
        cam_layer=found.cam_layer,
        twin=built.twin,
    )
    return TorchBackend(module, info, model, built.rebuild)
