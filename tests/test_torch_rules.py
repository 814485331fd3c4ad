"""The three backward rules, checked by hand on tiny nets (every spelling of ReLU and ReLU6, and
every other activation kind) and at scale on DenseNet201."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from gbp_cli.backends import BackendError  # noqa: E402
from gbp_cli.backends.torch import activations as torch_models  # noqa: E402
from gbp_cli.backends.torch.activations import ActivationOverride  # noqa: E402
from gbp_cli.backends.torch.backend import explain_module  # noqa: E402
from tests.conftest import HAND_COMPUTED, seeded_densenet  # noqa: E402

METHODS = ("guided", "vanilla", "deconv")


class Chain(nn.Module):
    """2×2 linear layers (no bias, float64), each but the last followed by its activation."""

    def __init__(self, weights: list, activations: list) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(2, 2, bias=False).double() for _ in weights)
        with torch.no_grad():
            for layer, w in zip(self.layers, weights, strict=True):
                layer.weight.copy_(torch.tensor(w, dtype=torch.float64))
        self.activations = activations

    def forward(self, x):
        for layer, activation in zip(self.layers, self.activations, strict=False):
            x = activation(layer(x))
        return self.layers[-1](x)


def tiny() -> Chain:
    """Four ReLUs, each spelled differently: module, in-place module, F.relu, torch.relu; their
    inputs for x = [1, 2]: [-1, 3], [3, -3], [3, 3], [3, -3]; logits [3, 0]."""
    weights = [[[1, -1], [-1, 2]], [[1, 1], [2, -1]], [[1, -2], [1, 1]], [[-1, 2], [1, -2]]]
    return Chain([*weights, [[1, -1], [0, 1]]], [nn.ReLU(), nn.ReLU(True), F.relu, torch.relu])


def tiny6() -> Chain:
    """Four ReLU6s: module, in-place module, F.relu6, F.hardtanh(0, 6); their inputs for
    x = [1, 2]: [-5, 1], [3, 1], [2, 7], [2, 14]; logits [-4, 18]."""
    weights = [[[-1, -2], [-1, 1]], [[2, 3], [1, 1]], [[1, -1], [3, -2]], [[1, 0], [1, 2]]]
    spellings = [nn.ReLU6(), nn.ReLU6(True), F.relu6, lambda x: F.hardtanh(x, 0.0, 6.0)]
    return Chain([*weights, [[1, -1], [3, 2]]], spellings)


# tiny6 explained for x = [1, 2] and target 0; R at each ReLU6, top to bottom (gates [1,0],
# [1,0], [1,1], [0,1]: inputs at or below 0 and at or above 6 are cut):
#   vanilla  R·[0<x<6]:        [1,-1]→[1,0]; [1,0]→[1,0]; [1,-1]→[1,-1]; [1,2]→[0,2]; dx = [-2, 2]
#   guided   R·[0<x<6]·[R>0]:  [1,-1]→[1,0]; [1,0]→[1,0]; [1,-1]→[1,0];  [2,3]→[0,3]; dx = [-3, 3]
#   deconv   R·[R>0]:          [1,-1]→[1,0]; [1,0]→[1,0]; [1,-1]→[1,0];  [2,3]→[2,3]; dx = [-5, -1]
HAND_COMPUTED_RELU6 = {"vanilla": [-2.0, 2.0], "guided": [-3.0, 3.0], "deconv": [-5.0, -1.0]}
NETS = {
    "ReLU": (tiny, [[3.0, 0.0]], HAND_COMPUTED),
    "ReLU6": (tiny6, [[-4.0, 18.0]], HAND_COMPUTED_RELU6),
}


def tiny_input():
    return torch.tensor([[1.0, 2.0]], dtype=torch.float64)


@pytest.mark.parametrize("kind", sorted(NETS))
def test_rules_match_hand_computed_values_alone_and_together(kind: str) -> None:
    net, logits, expected = NETS[kind]
    together = explain_module(net(), tiny_input(), list(METHODS), torch.tensor([[0]]))
    for method in METHODS:
        alone = explain_module(net(), tiny_input(), [method], torch.tensor([[0]]))
        assert alone.logits.tolist() == together.logits.tolist() == logits
        assert alone.saliency[method][0, 0].tolist() == expected[method], method
        assert together.saliency[method][0, 0].tolist() == expected[method], method
        assert alone.relus[method] == together.relus[method] == 4  # every spelling overridden
        assert together.activations[method] == {kind: 4}
    x = tiny_input().requires_grad_(True)
    (plain,) = torch.autograd.grad(net()(x)[0, 0], x)
    assert plain[0].tolist() == expected["vanilla"]


# One activation applied to x = [-1, 3, 7, 2], then summed with weights R = [1, -2, 1, 3].
ONE_INPUT = [-1.0, 3.0, 7.0, 2.0]
ONE_R = [1.0, -2.0, 1.0, 3.0]
RELU6_SPELLINGS = {
    "nn.ReLU6": nn.ReLU6(),
    "nn.ReLU6(inplace)": nn.ReLU6(inplace=True),
    "nn.Hardtanh(0, 6)": nn.Hardtanh(0.0, 6.0),
    "F.relu6": F.relu6,
    "F.relu6(inplace)": lambda x: F.relu6(x, inplace=True),
    "F.hardtanh": lambda x: F.hardtanh(x, 0.0, 6.0),
    "F.hardtanh(keywords)": lambda x: F.hardtanh(x, min_val=0.0, max_val=6.0),
    "F.hardtanh_": lambda x: F.hardtanh_(x, 0.0, 6.0),
}
RELU_SPELLINGS = {
    "nn.ReLU": nn.ReLU(),
    "nn.ReLU(inplace)": nn.ReLU(inplace=True),
    "F.relu": F.relu,
    "F.relu(inplace)": lambda x: F.relu(x, inplace=True),
    "F.relu_": F.relu_,
    "torch.relu": torch.relu,
    "torch.relu_": torch.relu_,
    "Tensor.relu": lambda x: x.relu(),
    "Tensor.relu_": lambda x: x.relu_(),
}
# By hand: the forward gate is [0<x<6] = [0,1,0,1] (ReLU6) or [x>0] = [0,1,1,1] (ReLU).
ONE_EXPECTED = {
    "ReLU6": {"vanilla": [0, -2, 0, 3], "guided": [0, 0, 0, 3], "deconv": [1, 0, 1, 3]},
    "ReLU": {"vanilla": [0, -2, 1, 3], "guided": [0, 0, 1, 3], "deconv": [1, 0, 1, 3]},
}


class One(nn.Module):
    def __init__(self, activation) -> None:
        super().__init__()
        self.activation = activation

    def forward(self, x):
        y = self.activation(x * 1)  # x * 1: in-place spellings may not touch the leaf itself
        score = (y * torch.tensor(ONE_R, dtype=y.dtype)).sum(1, keepdim=True)
        return torch.cat([score, torch.zeros_like(score)], 1)


class InPlaceOnView(One):
    def forward(self, x):
        y = x * 2
        self.activation(y[:, :1])  # the view's node becomes an AsStrided one, which no hook rules
        return y


def explain_one(activation, methods=METHODS, **kwargs):
    x = torch.tensor([ONE_INPUT], dtype=torch.float64)
    return explain_module(One(activation), x, list(methods), torch.tensor([[0]]), **kwargs)


@pytest.mark.parametrize(
    ("kind", "activation"), [("ReLU", torch.relu_), ("ReLU6", lambda v: F.hardtanh_(v, 0.0, 6.0))]
)
def test_in_place_on_a_view_is_refused_not_silently_wrong(kind: str, activation) -> None:
    with pytest.raises(
        BackendError, match=rf"^a {kind} left autograd node AsStridedBackward0 .* cannot override"
    ):
        explain_module(
            InPlaceOnView(activation), torch.ones(1, 2), ["vanilla"], torch.tensor([[0]])
        )


@pytest.mark.parametrize(
    ("kind", "spelling"),
    [("ReLU6", s) for s in RELU6_SPELLINGS] + [("ReLU", s) for s in RELU_SPELLINGS],
)
def test_every_spelling_gets_the_rule(kind: str, spelling: str) -> None:
    activation = {**RELU6_SPELLINGS, **RELU_SPELLINGS}[spelling]
    result = explain_one(activation)
    for method in METHODS:
        assert result.saliency[method][0, 0].tolist() == ONE_EXPECTED[kind][method], method
        assert result.activations[method] == {kind: 1}
    assert result.ordinary == {}


OTHER_KINDS = {
    "SiLU": (F.silu, nn.SiLU(inplace=True)),
    "GELU": (nn.GELU(), lambda x: F.gelu(x, approximate="tanh")),
    "Sigmoid": (torch.sigmoid, nn.Sigmoid(), lambda x: x.sigmoid_(), torch.special.expit),
    "Hardswish": (nn.Hardswish(), lambda x: F.hardswish(x, inplace=True)),
    "Hardsigmoid": (nn.Hardsigmoid(inplace=True),),
    "Mish": (nn.Mish(),),
    "Tanh": (torch.tanh, lambda x: x.tanh_()),
    "LeakyReLU": (nn.LeakyReLU(0.1), F.leaky_relu_),
    "PReLU": (nn.PReLU().double(),),
    "ELU": (nn.ELU(inplace=True),),
    "SELU": (nn.SELU(), torch.selu),
    "CELU": (nn.CELU(),),
    "Softplus": (nn.Softplus(),),
    "Softsign": (nn.Softsign(),),
    "Tanhshrink": (nn.Tanhshrink(),),
    "LogSigmoid": (nn.LogSigmoid(),),
    "Hardshrink": (nn.Hardshrink(),),
    "Softshrink": (nn.Softshrink(),),
    "Threshold": (nn.Threshold(0.5, 0.0),),
    "RReLU": (nn.RReLU().eval(),),
    "GLU": (lambda x: F.glu(torch.cat([x, x], 1))[:, :4],),
    "Hardtanh": (nn.Hardtanh(), lambda x: F.hardtanh(x, 0.0, 1.0)),  # bounds other than 0, 6
}
OTHER_SPELLINGS = [(kind, a) for kind, spellings in OTHER_KINDS.items() for a in spellings]


@pytest.mark.parametrize(("kind", "activation"), OTHER_SPELLINGS)
def test_other_activations_refuse_guided_and_deconv_by_default(kind: str, activation) -> None:
    for method in ("guided", "deconv"):
        with pytest.raises(BackendError) as refused:
            explain_one(activation, [method])
        assert f"not defined for 1 {kind}:" in str(refused.value)
        assert "--other-activations gradient" in str(refused.value)
    x = torch.tensor([ONE_INPUT], dtype=torch.float64, requires_grad=True)
    (plain,) = torch.autograd.grad(One(activation)(x)[0, 0], x)
    vanilla = explain_one(activation, ["vanilla"])  # the plain gradient: always defined
    assert torch.equal(vanilla.saliency["vanilla"][0, 0], plain[0])
    assert vanilla.ordinary == {} and vanilla.relus == {"vanilla": 0}
    # Let through, they keep their ordinary gradient: with no ReLU, every method is the gradient.
    kept = explain_one(activation, other_activations="gradient")
    assert kept.ordinary == {kind: 1}
    for method in METHODS:
        assert torch.equal(kept.saliency[method][0, 0], plain[0]), method
        assert kept.activations[method] == {}


def test_kinds_are_counted_once_and_only_on_the_gradient_path() -> None:
    class Branches(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.tensor([2.0, -1.0], dtype=torch.float64))

        def forward(self, x):
            unused = F.relu(x * 3)  # computed, then dropped: autograd never runs its node
            gate = torch.relu(self.scale)  # on the parameter only: not on x's path
            y = torch.sigmoid(x).float().double()  # the same tensor handed back: one Sigmoid
            return F.relu6(x * 4) * gate + y + 0 * unused.detach()

    result = explain_module(
        Branches(), tiny_input(), ["guided"], torch.tensor([[0]]), other_activations="gradient"
    )
    assert result.activations == {"guided": {"ReLU6": 1}}
    assert result.ordinary == {"Sigmoid": 1}


def test_a_rule_that_is_not_applied_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """If a hooked activation on the path did not get its rule, the map is refused."""
    original = torch_models.BackwardRule.__call__

    def skip_relu6(self, kind, grad_inputs, grad_outputs):
        return None if kind == "ReLU6" else original(self, kind, grad_inputs, grad_outputs)

    monkeypatch.setattr(torch_models.BackwardRule, "__call__", skip_relu6)
    with pytest.raises(BackendError, match=r"reached 0 activations of the 4 ReLU6"):
        explain_module(tiny6(), tiny_input(), ["guided"], torch.tensor([[0]]))


@pytest.fixture(scope="module")
def densenet():
    return seeded_densenet()


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))


def all_hooks(model: nn.Module) -> int:
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return sum(len(getattr(m, n)) for m in model.modules() for n in names)


def test_densenet201_has_201_relus_overridden_by_every_method(densenet, images) -> None:
    _, _, _, relus, *_ = explain_module(densenet, images, ["guided", "vanilla", "deconv"])
    assert relus == {"guided": 201, "vanilla": 201, "deconv": 201}


def test_the_final_functional_relu_is_caught(densenet, images) -> None:
    """torchvision calls F.relu after `features`; module hooks alone would see only 200."""
    modules = sum(isinstance(m, nn.ReLU) for m in densenet.modules())
    override = ActivationOverride()
    with override:
        densenet(images)
    assert (modules, override.hooked) == (200, 201)


def test_vanilla_equals_plain_autograd_on_densenet(densenet, images) -> None:
    x = images.clone().requires_grad_(True)
    logits = densenet(x)
    target = logits.argmax(1, keepdim=True)
    (expected,) = torch.autograd.grad(logits.gather(1, target).sum(), x)
    _, chosen, saliency, _, *_ = explain_module(densenet, images, ["vanilla"])
    assert torch.equal(chosen, target)
    torch.testing.assert_close(saliency["vanilla"][:, 0], expected, rtol=1e-5, atol=1e-7)


def test_model_is_left_exactly_as_it_was(densenet, images) -> None:
    before = {k: v.clone() for k, v in densenet.state_dict().items()}
    grads = [p.requires_grad for p in densenet.parameters()]
    hooks = all_hooks(densenet)
    explain_module(densenet, images, ["guided", "deconv"])
    assert all_hooks(densenet) == hooks == 0
    assert [p.requires_grad for p in densenet.parameters()] == grads
    assert all(p.grad is None for p in densenet.parameters())  # no parameter gradients
    after = densenet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # A vanilla pass after a guided one is the vanilla gradient again.
    x = images.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(densenet(x)[:, 7].sum(), x)
    _, _, saliency, _, *_ = explain_module(densenet, images, ["vanilla"], torch.tensor([[7], [7]]))
    torch.testing.assert_close(saliency["vanilla"][:, 0], expected, rtol=1e-5, atol=1e-7)


def test_guided_differs_from_vanilla_and_deconv(densenet, images) -> None:
    _, _, s, _, *_ = explain_module(densenet, images, ["guided", "vanilla", "deconv"])
    for a, b in [("guided", "vanilla"), ("guided", "deconv"), ("vanilla", "deconv")]:
        assert (s[a] - s[b]).norm() / s[a].norm() > 0.05


def test_batch_members_are_explained_independently(densenet, images) -> None:
    targets = torch.tensor([[5], [9]])
    _, _, both, _, *_ = explain_module(densenet, images, ["guided"], targets)
    _, _, first, _, *_ = explain_module(densenet, images[:1], ["guided"], targets[:1])
    difference = (both["guided"][:1] - first["guided"]).norm() / first["guided"].norm()
    assert difference < 1e-5  # batched kernels round differently, nothing more


def test_top_k_gives_one_map_per_class_in_rank_order(densenet, images) -> None:
    logits, chosen, saliency, _, *_ = explain_module(densenet, images, ["guided"], top_k=3)
    assert torch.equal(chosen, logits.topk(3, dim=1).indices)
    assert saliency["guided"].shape == (2, 3, 3, 64, 64)
    _, _, single, _, *_ = explain_module(densenet, images, ["guided"], chosen[:, 2:3])
    torch.testing.assert_close(saliency["guided"][:, 2], single["guided"][:, 0])
