"""A peer's code as the oracle, on the torch side: Quantus 0.6 (the [oracle] extra, in [test]).

- Deletion is Quantus's PixelFlipping with a constant baseline: the same copies through the same
  network give the same curve (Quantus flips channel values, all three of a pixel at once when
  its map has one value per pixel, and reports the probability after each step: gbp's steps 1 …
  N).
- ROAD's noisy linear imputation is Quantus's `noisy_linear_imputation` (adapted there from the
  ROAD authors' code): with the noise off, both impute the same values. Quantus's ROAD metric
  itself scores whether the top-1 class stays (accuracy), not the class probability, so the
  imputation is where the two can be held to each other.
- Quantus has no insertion metric: insertion is checked against its definition by hand
  (tests/test_evaluate.py).

Quantus imports opencv, which wants libGL: where it does not import, these tests are skipped
with the reason.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("scipy", reason="gbp evaluate needs scipy: the [evaluate] extra")
torch = pytest.importorskip("torch")
with contextlib.suppress(ImportError):  # Quantus imports TensorFlow where it is installed:
    import gbp_cli.backends.tf.env  # noqa: F401  (gbp's way first: triton before TensorFlow)
try:
    import quantus
    from quantus.functions.perturb_func import noisy_linear_imputation
except (ImportError, OSError) as e:  # opencv without libGL raises ImportError at import
    pytest.skip(
        f"Quantus does not import here ({e}): pip install -e '.[oracle]'", allow_module_level=True
    )

from gbp_cli.backends.base import ModelSpec  # noqa: E402
from gbp_cli.faithfulness.evaluation import baseline_maps, evaluate  # noqa: E402
from gbp_cli.faithfulness.metrics import Photo, Settings  # noqa: E402
from gbp_cli.faithfulness.removal import linear_imputation  # noqa: E402


def small_network() -> torch.nn.Module:
    """Seeded, with a head scaled up so that its class probability moves as pixels go."""
    torch.manual_seed(0)
    network = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 5),
    ).eval()
    with torch.no_grad():
        network[-1].weight.mul_(40)
    return network


def test_deletion_is_quantus_pixel_flipping() -> None:
    from gbp_cli.backends.torch.backend import wrap_module

    network = small_network()
    backend = wrap_module(network, "cpu", model=ModelSpec("small", input_size=24, normalize="none"))
    image = np.random.default_rng(1).random((24, 24, 3)).astype(np.float32) * 4 - 2
    photo = Photo.of("random.png", image, "5a" * 32)
    settings = Settings(metrics=("deletion",), steps=12)
    (result,) = evaluate(backend, [photo], [], ["random"], settings, batch_size=16)
    mine = result.curves[("random", "deletion")].heights["deletion"]
    relevance = baseline_maps(photo, ["random"], settings, backend.info.preprocessing)["random"]
    flipping = quantus.PixelFlipping(
        # 48 pixels a step, all three channels of each: Quantus wants the step to divide H·W too
        features_in_step=3 * 24 * 24 // 12,
        perturb_baseline=0.0,  # gbp's deletion: 0 in the model input
        normalise=False,
        abs=False,
        disable_warnings=True,
        display_progressbar=False,
    )
    (theirs,) = flipping(
        model=network,
        x_batch=image.transpose(2, 0, 1)[None],
        y_batch=np.array([result.target]),
        a_batch=relevance.transpose(2, 0, 1)[None].astype(np.float32),
        device="cpu",
        softmax=True,
        channel_first=True,
    )
    assert len(theirs) == 12
    assert mine[0] == pytest.approx(result.probability)
    assert np.asarray(theirs) == pytest.approx(mine[1:], abs=1e-5)
    assert np.ptp(mine) > 0.05  # a curve that moves, not a flat one that anything would match


@pytest.mark.parametrize("share", [0.05, 0.5, 0.9])
def test_road_imputes_as_quantus_does(share: float) -> None:
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:40, 0:48]
    image = np.stack([np.sin(xx / 5 + c) * np.cos(yy / 7) for c in range(3)], -1) + rng.normal(
        0, 0.1, (40, 48, 3)
    )
    blob = (np.hypot(yy - 20, xx - 24) + rng.random((40, 48)) * 6).ravel()
    removed = np.argsort(blob, kind="stable")[: int(share * blob.size)]  # a blob, ragged edge
    mine = linear_imputation(image, removed)
    theirs = noisy_linear_imputation(arr=image.transpose(2, 0, 1), indices=removed, noise=0.0)
    assert mine == pytest.approx(theirs.transpose(1, 2, 0), abs=1e-9)
    assert not np.allclose(mine.reshape(-1, 3)[removed], image.reshape(-1, 3)[removed])
