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
table; the CLI's choices and `gbp parity`'s tolerances come from here too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """Which gates a gradient passes through at an activation on its way down."""

    forward: bool  # × the activation's local derivative (the forward input's gate)
    positive: bool  # × [R > 0]


@dataclass(frozen=True)
class Method:
    """A method the user can ask for."""

    name: str
    rule: Rule | None  # the rule at every activation; None: made from other maps in shared code
    tolerance: float  # relative L2 within which the two backends must agree (`gbp parity`)
    summary: str


_METHODS = (
    Method(
        "guided", Rule(forward=True, positive=True), 1e-3, "guided backprop (Springenberg 2014)"
    ),
    Method(
        "vanilla", Rule(forward=True, positive=False), 5e-3, "the plain gradient (Simonyan 2013)"
    ),
    Method("deconv", Rule(forward=False, positive=True), 1e-3, "DeconvNet (Zeiler & Fergus 2014)"),
    Method("gradcam", None, 1e-3, "Grad-CAM (Selvaraju 2017) on the last spatial feature map"),
    Method("guided-gradcam", None, 1e-3, "guided backprop × Grad-CAM"),
)
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
