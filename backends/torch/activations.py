"""What runs inside a torch model: every activation by kind, and the layer Grad-CAM reads.

Module hooks miss functional activations (DenseNet ends in `F.relu(x, inplace=True)`; nn.ReLU6
calls `F.hardtanh(x, 0, 6)`) and full backward hooks break on in-place ones. So a TorchFunctionMode
sees *every* call, however spelled, names each activation's kind, and hooks the autograd node of
each ruled one (ReLU, ReLU6), whose own gradient is already R·[x>0] or R·[0<x<6]. The hooks live on
one pass's graph only: the model is never modified.
"""

from __future__ import annotations

import difflib
import functools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torchvision import models

from ..base import BackendError
from ..reasons import first_line
from ..rules import RULED_ACTIVATIONS, RULES, Rule

ORDINARY = RULES["vanilla"]  # the plain gradient, which Grad-CAM weighs its layer by

RELU_CALLS = frozenset({F.relu, torch.relu, torch.relu_, Tensor.relu, Tensor.relu_})
HARDTANH_CALLS = frozenset({F.hardtanh, F.hardtanh_, F.relu6})
# Calls whose autograd node does not tell their kind (SELU's is ELU's; the others are composites).
FUNCTION_KINDS = {F.selu: "SELU", torch.selu: "SELU", torch.selu_: "SELU"}
FUNCTION_KINDS |= {F.softsign: "Softsign", F.tanhshrink: "Tanhshrink"}
# Every other activation is known by the autograd node it creates (less its trailing number),
# however it was spelled: functional, module, torch.* or Tensor method, in place or not.
NODE_KINDS = {
    "ReluBackward": "ReLU",
    "SiluBackward": "SiLU",
    "GeluBackward": "GELU",
    "SigmoidBackward": "Sigmoid",
    "HardswishBackward": "Hardswish",
    "HardsigmoidBackward": "Hardsigmoid",
    "MishBackward": "Mish",
    "TanhBackward": "Tanh",
    "LeakyReluBackward": "LeakyReLU",
    "PreluKernelBackward": "PReLU",
    "EluBackward": "ELU",
    "CeluBackward": "CELU",
    "SoftplusBackward": "Softplus",
    "LogSigmoidBackward": "LogSigmoid",
    "HardshrinkBackward": "Hardshrink",
    "SoftshrinkBackward": "Softshrink",
    "ThresholdBackward": "Threshold",
    "RreluWithNoiseBackward": "RReLU",
    "GluBackward": "GLU",
}
RULED_NODES = {"ReLU": "ReluBackward", "ReLU6": "HardtanhBackward"}  # what a hook can attach to


def _hardtanh_kind(func: Callable, args: tuple, kwargs: Mapping[str, Any]) -> str:
    """F.hardtanh(x, 0, 6) and F.relu6 are a ReLU6; any other bounds are a Hardtanh."""
    if func is F.relu6:
        return "ReLU6"
    bounds = {**dict(zip(("input", "min_val", "max_val"), args, strict=False)), **kwargs}
    low, high = float(bounds.get("min_val", -1.0)), float(bounds.get("max_val", 1.0))
    return "ReLU6" if (low, high) == (0.0, 6.0) else "Hardtanh"


def _node_name(node: Any) -> str:
    return node.name().rstrip("0123456789")


def _node_kind(node: Any) -> str | None:
    if _node_name(node) == "HardtanhBackward":
        low, high = float(node._saved_min_val), float(node._saved_max_val)
        return "ReLU6" if (low, high) == (0.0, 6.0) else "Hardtanh"
    return NODE_KINDS.get(_node_name(node))


class BackwardRule:
    """The hook every ruled activation's backward node calls: applies the method's rule
    (rules.py) and counts where it did. It holds no node and no tensor, so a node holding this hook
    makes no reference cycle: a pass's graph, its saved tensors and its hooks die with the pass
    (a cycle through autograd's C++ nodes is one Python's collector cannot break)."""

    def __init__(self) -> None:
        self.rule: Rule = ORDINARY  # read at backward time: one forward graph serves every method
        self.applied: Counter[str] = Counter()  # rule applications in backward passes so far

    def __call__(
        self, kind: str, grad_inputs: tuple[Tensor, ...], grad_outputs: tuple[Tensor, ...]
    ) -> tuple[Tensor, ...] | None:
        """The rule applied to R = grad_outputs[0]; None keeps autograd's own gradient R·[x>0]
        (ReLU) or R·[0<x<6] (ReLU6) = grad_inputs[0]."""
        self.applied[kind] += 1
        rule = self.rule
        if rule.forward and not rule.positive:
            return None  # nothing changes (vanilla)
        passed = grad_inputs[0] if rule.forward else grad_outputs[0]
        if rule.positive:  # grad_inputs[0] is this backward's own tensor: clamp it in place
            passed = passed.clamp_min_(0) if rule.forward else passed.clamp_min(0)
        return (passed,)


class ActivationOverride(TorchFunctionMode):
    """Sees every activation run under it: hooks the backward node of each ruled one with
    `backward` and counts the others by kind. `where`, if given, names the module running now
    (for the load-time probe). It holds the pass's graph (its hooked nodes) for as long as it
    lives, and nothing of it holds the override: drop it with the pass."""

    def __init__(self, where: Callable[[], str] | None = None) -> None:
        super().__init__()
        self.backward = BackwardRule()
        self.where = where
        self.nodes: dict[Any, str] = {}  # hooked autograd node → its kind ("ReLU", "ReLU6")
        self.others: Counter[str] = Counter()  # activations with no rule, by kind
        self.paths: dict[str, list[str]] = {}  # kind → first module paths (with `where`)
        self._seen: set[Any] = set()  # a tensor returned again (x.float()) is not counted twice

    @property
    def rule(self) -> Rule:
        return self.backward.rule

    @rule.setter
    def rule(self, rule: Rule) -> None:
        self.backward.rule = rule

    @property
    def applied(self) -> Counter[str]:
        return self.backward.applied

    @property
    def hooked(self) -> int:
        return len(self.nodes)

    def found(self) -> Counter[str]:
        """Activations seen so far, ruled or not, by kind."""
        return Counter(self.nodes.values()) + self.others

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        node = out.grad_fn if isinstance(out, Tensor) else None
        if node is None or node in self._seen:
            return out
        if func in RELU_CALLS:
            kind: str | None = "ReLU"
        elif func in HARDTANH_CALLS:
            kind = _hardtanh_kind(func, args, kwargs)
        else:
            kind = FUNCTION_KINDS.get(func) or _node_kind(node)
        if kind is None:
            return out
        self._seen.add(node)
        if kind in RULED_ACTIVATIONS:
            if _node_name(node) != RULED_NODES[kind]:
                raise BackendError(
                    f"a {kind} left autograd node {node.name()} (in place on a view?); "
                    "gbp cannot override its backward, so it refuses to give a wrong map"
                )
            node.register_hook(functools.partial(self.backward, kind))
            self.nodes[node] = kind
        else:
            self.others[kind] += 1
        if self.where is not None:
            paths = self.paths.setdefault(kind, [])
            if len(paths) < 3 and (path := self.where()) not in paths:
                paths.append(path)
        return out

    def on_path(self, root: Any, leaf: Tensor) -> Counter[str]:
        """Hooked nodes that a gradient from `root` to `leaf` runs through (autograd runs only
        those), by kind: what each backward pass must apply the rule to."""
        reaches: dict[Any, bool] = {root: getattr(root, "variable", None) is leaf}
        stack = [(root, iter(root.next_functions))]
        while stack:  # depth first; in a DAG a node met again is finished
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                if stack:
                    reaches[stack[-1][0]] = reaches[stack[-1][0]] or reaches[node]
                continue
            child = child[0]
            if child is None:
                continue
            if child not in reaches:
                reaches[child] = getattr(child, "variable", None) is leaf
                stack.append((child, iter(child.next_functions)))
            else:
                reaches[node] = reaches[node] or reaches[child]
        return Counter(kind for node, kind in self.nodes.items() if reaches.get(node))


METHOD_NAMES = {"guided": "guided backprop", "deconv": "DeconvNet"}


def refusal(
    methods: Sequence[str],
    counts: Mapping[str, int],
    paths: Sequence[str] = (),
    instead: str = "vanilla or gradcam",
) -> str:
    """One line: which methods have no rule for which activations, and what to do."""
    names = " and ".join(METHOD_NAMES.get(m, m) for m in methods)
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    shown = list(paths[:3])
    more = ", …" if sum(counts.values()) > len(shown) else ""
    where = f" ({', '.join(shown)}{more})" if shown else ""
    return (
        f"{names} {'is' if len(methods) == 1 else 'are'} not defined for {kinds}{where}: "
        f"pass --other-activations gradient to let them keep their ordinary gradient, "
        f"or use {instead}"
    )


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
    except Exception as e:
        raise BackendError(
            f"{name}: a forward pass on a 1×3×{size}×{size} input failed "
            f"({type(e).__name__}: {first_line(e)})"
        ) from None
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
