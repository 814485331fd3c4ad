"""What runs inside a torch model: every activation by kind, each ruled one overridden.

Module hooks miss functional activations (DenseNet ends in `F.relu(x, inplace=True)`; nn.ReLU6
calls `F.hardtanh(x, 0, 6)`) and full backward hooks break on in-place ones. So a TorchFunctionMode
sees *every* call, however spelled, names each activation's kind, and hooks the autograd node of
each ruled one (ReLU, ReLU6), whose own gradient is already R·[x>0] or R·[0<x<6]. The hooks live on
one pass's graph only: the model is never modified.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from ..base import BackendError
from ..rules import ORDINARY, RULED_ACTIVATIONS, Rule

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
