"""The three backward rules, checked by hand on a tiny net and at scale on DenseNet201."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from gbp_cli.backends.torch_backend import ReluOverride, explain_module  # noqa: E402
from tests.conftest import HAND_COMPUTED, seeded_densenet  # noqa: E402


class Tiny(nn.Module):
    """Four ReLUs, each spelled differently: module, in-place module, F.relu, torch.relu."""

    def __init__(self) -> None:
        super().__init__()
        weights = [
            [[1, -1], [-1, 2]],
            [[1, 1], [2, -1]],
            [[1, -2], [1, 1]],
            [[-1, 2], [1, -2]],
            [[1, -1], [0, 1]],
        ]
        self.layers = nn.ModuleList(nn.Linear(2, 2, bias=False) for _ in weights)
        with torch.no_grad():
            for layer, w in zip(self.layers, weights, strict=True):
                layer.weight.copy_(torch.tensor(w, dtype=torch.float64))
        self.relu = nn.ReLU()
        self.relu_inplace = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.relu(self.layers[0](x))  # pre-activation [-1, 3]
        x = self.relu_inplace(self.layers[1](x))  # [3, -3]
        x = F.relu(self.layers[2](x))  # [3, 3]
        x = torch.relu(self.layers[3](x))  # [3, -3]
        return self.layers[4](x)  # logits [3, 0]


def tiny_input():
    return torch.tensor([[1.0, 2.0]], dtype=torch.float64)


@pytest.mark.parametrize("method", sorted(HAND_COMPUTED))
def test_rules_match_hand_computed_values(method: str) -> None:
    model = Tiny().double()
    logits, _targets, saliency, relus, *_ = explain_module(
        model, tiny_input(), [method], torch.tensor([[0]])
    )
    assert logits.tolist() == [[3.0, 0.0]]
    assert saliency[method][0, 0].tolist() == HAND_COMPUTED[method]
    assert relus[method] == 4  # every spelling of ReLU was overridden


def test_all_methods_in_one_pass_match_separate_passes() -> None:
    model = Tiny().double()
    _, _, together, _, *_ = explain_module(
        model, tiny_input(), list(HAND_COMPUTED), torch.tensor([[0]])
    )
    for method, expected in HAND_COMPUTED.items():
        assert together[method][0, 0].tolist() == expected


def test_vanilla_equals_plain_autograd_on_tiny_net() -> None:
    model = Tiny().double()
    x = tiny_input().requires_grad_(True)
    (expected,) = torch.autograd.grad(model(x)[0, 0], x)
    _, _, saliency, _, *_ = explain_module(model, tiny_input(), ["vanilla"], torch.tensor([[0]]))
    assert torch.equal(saliency["vanilla"][0, 0], expected[0])


def test_relu_in_place_on_a_view_is_refused_not_silently_wrong() -> None:
    class ViewRelu(nn.Module):
        def forward(self, x):
            y = x * 2
            y[:, :1].relu_()
            return y

    with pytest.raises(RuntimeError, match="cannot override"):
        explain_module(ViewRelu(), torch.ones(1, 2), ["guided"], torch.tensor([[0]]))


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
    override = ReluOverride()
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
