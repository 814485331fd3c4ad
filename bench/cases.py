"""The contestants of bench.py, each timed in its own process so its peak memory is its own.

    python bench/cases.py CASE BATCH PRECISION DEVICE REPEAT   → one JSON line on stdout

Every case explains the same photos (sample_images/, repeated to fill the batch) with the same
seeded weights, for each photo's top-1 class.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from timing import turn_about  # noqa: E402  (bench/timing.py, beside this file)

from gbp_cli.backends import WeightsSpec, open_backend  # noqa: E402
from gbp_cli.backends.twins.densenet import random_weights  # noqa: E402
from gbp_cli.inputs.preprocess import prepare  # noqa: E402

RANDOM = WeightsSpec("random")
Step = Callable[[], object]


def photos(batch: int) -> np.ndarray:
    """N×224×224×3 model inputs from the sample photos."""
    paths = sorted(p for p in (ROOT / "sample_images").iterdir() if p.suffix in (".png", ".jpg"))
    return np.stack([prepare(paths[i % len(paths)], "squash").array for i in range(batch)])


def torchvision_densenet(device: str):
    """A plain torchvision DenseNet201 with the shared seeded weights, as a peer's user has it."""
    import torch
    from torchvision.models import densenet201

    model = densenet201().eval()
    state = {k: torch.from_numpy(v) for k, v in random_weights("densenet201", 1000, 0).items()}
    model.load_state_dict(state)
    return model.to(device)


def gbp_torch(x: np.ndarray, precision: str, device: str) -> Step:
    backend = open_backend("torch", RANDOM, device, precision)
    return lambda: backend.explain(x, ["guided"])


def torch_floor(x: np.ndarray, precision: str, device: str, backend=None) -> Step:
    """The plain gradient of the top logit w.r.t. the input only, on gbp's own model object."""
    import torch

    backend = backend or open_backend("torch", RANDOM, device, precision)
    source = torch.from_numpy(x).permute(0, 3, 1, 2).to(device)

    from gbp_cli.backends.torch.backend import exact_fp32

    strict = precision == "fp32" and device == "cuda"  # the same arithmetic as gbp's own pass

    def step() -> object:
        leaf = source.detach().requires_grad_(True)
        bf16 = precision == "bf16"
        with torch.autocast(backend.device.type, torch.bfloat16, enabled=bf16), exact_fp32(strict):
            logits = backend.model(leaf)
            score = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
            return torch.autograd.grad(score, leaf)[0].cpu()

    return step


def captum(x: np.ndarray, precision: str, device: str) -> Step:
    import torch
    from captum.attr import GuidedBackprop

    model = torchvision_densenet(device)
    explainer = GuidedBackprop(model)
    inputs = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(device)
    with torch.no_grad():
        target = model(inputs).argmax(1)
    return lambda: explainer.attribute(inputs, target=target).cpu()


def blog_torch(x: np.ndarray, precision: str, device: str) -> Step:
    """The guided-backprop blog's PyTorch recipe: backward hooks on nn.ReLU and `.backward()`."""
    import torch

    model = torchvision_densenet(device)

    def clamp(module, grad_in, grad_out):
        return (torch.clamp(grad_in[0], min=0.0),)

    for module in model.modules():
        if isinstance(module, torch.nn.ReLU):
            module.register_backward_hook(clamp)
    inputs = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(device)

    def step() -> object:
        image = inputs.clone().requires_grad_(True)
        model.zero_grad()
        output = model(image)
        one_hot = torch.zeros_like(output)
        one_hot[torch.arange(len(output)), output.argmax(1)] = 1
        output.backward(gradient=one_hot)
        return image.grad.cpu()

    return step


def gbp_tf(x: np.ndarray, precision: str, device: str, mode: str = "graph") -> Step:
    backend = open_backend("tf", RANDOM, device, precision, mode)
    backend.plan(len(x), len(x))
    return lambda: backend.explain(x, ["guided"])


def blog_tf(x: np.ndarray, precision: str, device: str) -> Step:
    """The blog's TensorFlow recipe: a guided @tf.custom_gradient ReLU and an eager GradientTape."""
    import keras
    import tensorflow as tf

    @tf.custom_gradient
    def guided_relu(value):
        def grad(dy):
            return tf.cast(dy > 0, dy.dtype) * tf.cast(value > 0, dy.dtype) * dy

        return tf.nn.relu(value), grad

    model = keras.applications.DenseNet201(weights=None, classifier_activation=None)
    for layer in model.layers:
        if (
            isinstance(layer, keras.layers.Activation)
            and layer.activation is keras.activations.relu
        ):
            layer.activation = guided_relu
    inputs = tf.constant(x)

    def step() -> object:
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            logits = model(inputs, training=False)
            score = tf.reduce_sum(tf.gather(logits, tf.argmax(logits, 1), batch_dims=1))
        return tape.gradient(score, inputs).numpy()

    return step


CASES: dict[str, Callable[..., Step]] = {
    "gbp-torch": gbp_torch,
    "torch-floor": torch_floor,
    "captum": captum,
    "blog-torch": blog_torch,
    "gbp-tf": gbp_tf,
    "gbp-tf-xla": lambda x, p, d: gbp_tf(x, p, d, mode="xla"),
    "gbp-tf-eager": lambda x, p, d: gbp_tf(x, p, d, mode="eager"),
    "blog-tf": blog_tf,
}


def measure_pair(batch: int, precision: str, device: str, repeat: int) -> dict:
    """gbp's guided pass and the plain input gradient on one model, timed turn about, so that
    drift in a shared machine's speed touches both alike; the ratio is of their medians."""
    x = photos(batch)
    backend = open_backend("torch", RANDOM, device, precision)
    steps = {
        "guided": lambda: backend.explain(x, ["guided"]),
        "floor": torch_floor(x, precision, device, backend),
    }
    ms = turn_about(steps, repeat, batch)
    return {
        "case": "paired-torch",
        "batch": batch,
        "precision": precision,
        "device": device,
        "guided_ms": ms["guided"],
        "floor_ms": ms["floor"],
        "ratio": ms["guided"] / ms["floor"],
        "ms_per_image": ms["guided"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(case: str, batch: int, precision: str, device: str, repeat: int) -> dict:
    if case == "paired-torch":
        return measure_pair(batch, precision, device, repeat)
    x = photos(batch)
    step = CASES[case](x, precision, device)
    start = time.perf_counter()
    step()  # warm-up: traces, compiles, allocates
    first = time.perf_counter() - start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    result = {
        "case": case,
        "batch": batch,
        "precision": precision,
        "device": device,
        "ms_per_image": statistics.median(times) * 1000 / batch,
        "first_call_s": first,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if case == "gbp-torch" and precision == "bf16":
        result["pearson_vs_fp32"] = bf16_correlation(x, device)
    return result


def bf16_correlation(x: np.ndarray, device: str) -> dict[str, float]:
    """Pearson correlation of the bf16 guided map with the fp32 one: pooled, and the worst photo."""
    maps = {
        p: open_backend("torch", RANDOM, device, p).explain(x, ["guided"]).saliency["guided"]
        for p in ("fp32", "bf16")
    }
    per_image = [
        np.corrcoef(maps["fp32"][i].ravel(), maps["bf16"][i].ravel())[0, 1] for i in range(len(x))
    ]
    pooled = np.corrcoef(maps["fp32"].ravel(), maps["bf16"].ravel())[0, 1]
    return {"pooled": float(pooled), "worst_photo": float(min(per_image))}


if __name__ == "__main__":
    name, batch, precision, device, repeat = sys.argv[1:6]
    print(json.dumps(measure(name, int(batch), precision, device, int(repeat))))
