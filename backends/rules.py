"""The methods, as data: each gradient method is one backward rule at every activation.

R is the gradient arriving from above, x the activation's input. A rule says which of two gates
multiply R on its way down:

- `forward`: the activation's own local derivative, [x > 0] for a ReLU, [0 < x < 6] for a ReLU6;
- `positive`: [R > 0], the sign of the gradient from above.

| method  | forward | positive | passed down (ReLU)  | source                        |
|---------|---------|----------|---------------------|-------------------------------|
| vanilla | yes     | no       | R·[x>0]             | Simonyan et al. 2013          |
| guided  | yes     | yes      | R·[x>0]·[R>0]       | Springenberg et al. 2014      |
| deconv  | no      | yes      | R·[R>0]             | Zeiler & Fergus 2014          |

Every other layer keeps its ordinary gradient. Each backend has one generic hook that reads this
table; the CLI's choices and `gbp parity`'s tolerances come from here too, and so does what each
method needs of a model (a rule at every activation, a spatial feature map), with the one
`refusal` both backends and the command line give where a model lacks it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """Which gates a gradient passes through at an activation on its way down."""

    forward: bool  # × the activation's local derivative (the forward input's gate)
    positive: bool  # × [R > 0]


# Every activation's own gradient (R times its local derivative): defined for any activation.
ORDINARY = Rule(forward=True, positive=False)


@dataclass(frozen=True)
class Method:
    """A method the user can ask for, and what a model must have for it to give a true map."""

    name: str
    rule: Rule | None  # the rule at every activation; None: made in shared code, not a gradient
    tolerance: float  # relative L2 within which the two backends must agree (`gbp parity`)
    summary: str
    title: str  # how a sentence names it
    cam: bool = False  # reads Grad-CAM's layer, a spatial feature map (N, h, w, C)
    made_from: tuple[str, ...] = ()  # the methods whose maps it multiplies, in shared code

    @property
    def needs_rule(self) -> bool:
        """Whether its map changes the gradient at activations, so that it exists only where
        every activation has a rule; the ordinary gradient (vanilla, Grad-CAM's weights) exists
        everywhere."""
        own = self.rule is not None and self.rule != ORDINARY
        return own or any(METHODS[m].needs_rule for m in self.made_from)

    @property
    def needs_cam_layer(self) -> bool:
        """Whether it needs a spatial feature map, which a vision transformer does not have."""
        return self.cam or any(METHODS[m].needs_cam_layer for m in self.made_from)


_METHODS = (
    Method(
        "guided", Rule(forward=True, positive=True), 1e-3, "guided backprop (Springenberg 2014)",
        "guided backprop",
    ),
    Method(
        "vanilla", ORDINARY, 5e-3, "the plain gradient (Simonyan 2013)", "the vanilla gradient"
    ),
    Method(
        "deconv", Rule(forward=False, positive=True), 1e-3, "DeconvNet (Zeiler & Fergus 2014)",
        "DeconvNet",
    ),
    Method(
        "gradcam", None, 1e-3, "Grad-CAM (Selvaraju 2017) on the last spatial feature map",
        "Grad-CAM", cam=True,
    ),
    Method(
        "guided-gradcam", None, 1e-3, "guided backprop × Grad-CAM", "Guided Grad-CAM",
        made_from=("guided", "gradcam"),
    ),
)  # fmt: skip
# vanilla is looser: its gates flip where an activation's input is ≈ 0, and the two frameworks
# round differently there.

METHODS: dict[str, Method] = {method.name: method for method in _METHODS}
RULES: dict[str, Rule] = {m.name: m.rule for m in _METHODS if m.rule is not None}
GRADIENT_METHODS: tuple[str, ...] = tuple(RULES)  # what a backend computes itself
LOGITS_TOLERANCE = 1e-3  # max |Δ logit| between the two backends

# Activations a rule is defined for, with their local derivative (the `forward` gate). ReLU6 is
# torchvision's Hardtanh(0, 6), Keras's ReLU(max_value=6) and relu6.
RULED_ACTIVATIONS: dict[str, str] = {"ReLU": "[x > 0]", "ReLU6": "[0 < x < 6]"}
# Any other activation (LeakyReLU, PReLU, ELU, SELU, GELU, SiLU/Swish, Hardswish, Mish, sigmoid
# gates, …) has no guided or deconv rule: such a model is refused for those methods, unless the
# user accepts that these keep their ordinary gradient (--other-activations gradient).
OTHER_ACTIVATIONS = ("refuse", "gradient")

# One name per activation in both backends: torch's class names (Keras calls SiLU "silu").
_CANONICAL = {
    "silu": "SiLU",
    "swish": "SiLU",
    "gelu": "GELU",
    "hard_silu": "Hardswish",
    "hard_swish": "Hardswish",
    "sigmoid": "Sigmoid",
    "hard_sigmoid": "Hardsigmoid",
    "tanh": "Tanh",
    "elu": "ELU",
    "selu": "SELU",
    "leaky_relu": "LeakyReLU",
    "prelu": "PReLU",
    "softplus": "Softplus",
    "softsign": "Softsign",
    "softmax": "Softmax",
    "mish": "Mish",
    "celu": "CELU",
}


def canonical(kind: str) -> str:
    """An activation kind as both backends name it."""
    return _CANONICAL.get(kind.lower(), kind)


SHOWN_PATHS = 3  # module or layer paths a refusal names


def _either(names: Sequence[str]) -> str:
    """["a", "b", "c"] → "a, b or c"."""
    if len(names) < 2:
        return "".join(names)
    return f"{', '.join(names[:-1])} or {names[-1]}"


def _where(activations: Mapping[str, int], unruled: Mapping[str, Sequence[str]]) -> str:
    """ "49 SiLU, 16 Sigmoid (stem, se_gate, block0, …)": how many of each kind, most first,
    and where: the first path of each kind, then the seconds, up to SHOWN_PATHS."""
    kinds = sorted(unruled, key=lambda kind: -activations.get(kind, 0))
    counts = ", ".join(f"{activations.get(kind, '?')} {kind}" for kind in kinds)
    firsts = itertools.chain.from_iterable(itertools.zip_longest(*(unruled[k] for k in kinds)))
    paths = [path for path in firsts if path][:SHOWN_PATHS]
    if not paths:
        return counts
    more = ", …" if sum(activations.get(kind, 0) for kind in kinds) > len(paths) else ""
    return f"{counts} ({', '.join(paths)}{more})"


def refusal(
    methods: Sequence[str],
    activations: Mapping[str, int],
    unruled: Mapping[str, Sequence[str]],
    cam_layer: bool | None = True,
    other_activations: str = "refuse",
    model: str = "the model",
) -> str | None:
    """Why some of `methods` would not give their true map of this model, as one line that
    names only methods that would; None where every one would. The model is described by its
    activations by kind (`activations`), the kinds with no rule and their first paths
    (`unruled`), and whether it has a spatial feature map for Grad-CAM (`cam_layer`; None where
    that is not known, and no Grad-CAM method is then offered). One function for both backends
    and the command line, so a refusal reads the same wherever it is caught."""

    def works(name: str, policy: str) -> bool:
        method = METHODS[name]
        if method.needs_cam_layer and not cam_layer:
            return False
        return not (method.needs_rule and unruled and policy == "refuse")

    asked = list(dict.fromkeys(methods))
    no_rule = [m for m in asked if METHODS[m].needs_rule] if other_activations == "refuse" else []
    no_rule = no_rule if unruled else []
    no_map = [m for m in asked if METHODS[m].needs_cam_layer] if cam_layer is False else []
    if not no_rule and not no_map:
        return None
    reasons = []
    if no_rule:
        verb = "is" if len(no_rule) == 1 else "are"
        titles = " and ".join(METHODS[m].title for m in no_rule)
        reasons.append(f"{titles} {verb} not defined for {_where(activations, unruled)}")
    if no_map:
        verb = "needs" if len(no_map) == 1 else "need"
        titles = " and ".join(METHODS[m].title for m in no_map)
        reasons.append(
            f"{titles} {verb} a spatial feature map, and {model} has none (a vision transformer?)"
        )
    now = [m for m in METHODS if works(m, other_activations)]
    later = [m for m in METHODS if m not in now and works(m, "gradient")]
    if any(m in later for m in asked):  # a method refused only for want of a rule
        advice = (
            "pass --other-activations gradient to let them keep their ordinary gradient, "
            f"or use {_either(now)}"
        )
    else:
        advice = f"use {_either(now)}"
        if later:
            advice += f", or {_either(later)} with --other-activations gradient"
    return f"{'; '.join(reasons)}: {advice}"
