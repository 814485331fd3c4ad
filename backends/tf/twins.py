"""The TensorFlow side of the replicas (backends/replicas.py): the Keras network that computes what
the torch one computes, with torch's weights moved over exactly, in torchvision's layout."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from . import env  # noqa: F401  (first: it imports TensorFlow quietly and safely)

# isort: split
import keras
import numpy as np

from ..base import DISTRIBUTION, BackendError, ModelSpec, WeightsSpec
from ..checkpoints import read_checkpoint
from ..reasons import first_line
from ..twins.registry import Replica, State, load_all
from .densenet import Layout

ARCHITECTURE = "gbp:architecture"  # an attribute gbp convert writes into a .weights.h5


def replica_for(spec: ModelSpec, weights: WeightsSpec) -> Replica | None:
    """The replica `--model` names. VGG with ImageNet weights or seeds stays Keras's own
    application (its own weights, caffe preprocessing); a torch file makes it the replica."""
    replica = load_all().get(spec.name.lower())
    if replica is None:
        return None
    own = replica.name.startswith("vgg") and weights.kind != "file"
    return None if own else replica


def set_state(model: keras.Model, replica: Replica, state: Mapping[str, np.ndarray], source: str):
    try:
        for name, arrays in replica.to_keras(state).items():
            model.get_layer(name).set_weights(arrays)
    except (KeyError, ValueError) as e:
        raise BackendError(f"{source}: does not fit {replica.name} ({first_line(e)})") from None


def torch_imagenet(replica: Replica) -> State:
    """torch's ImageNet weights for the network, converted: torchvision's cached file, or the
    Lite0 package's. Needs PyTorch; without it, one line on how to make the file once."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise BackendError(
            f"--backend tf --model {replica.name} --weights imagenet converts torch's weights "
            f"and needs PyTorch (pip install '{DISTRIBUTION}[torch]'); or, where PyTorch is, make "
            f"the file once: gbp convert WEIGHTS.pth {replica.name}.weights.h5, then pass "
            f"--weights {replica.name}.weights.h5"
        ) from None
    if replica.name == "efficientnet_lite0":
        from ..torch.lite0 import build

        module = build(WeightsSpec("imagenet"))
    else:
        from ..torch.zoo import imagenet_model

        module = imagenet_model(replica.name)
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def build(replica: Replica, weights: WeightsSpec) -> keras.Model:
    """The replica with `weights`: torch's ImageNet ones, a seed, a .pth or a .weights.h5."""
    source = f"--weights {weights.path}"
    if weights.kind == "imagenet":
        state = torch_imagenet(replica)
        model = replica.build(replica.num_classes(state))
        set_state(model, replica, state, f"{replica.name}'s ImageNet weights")
        return model
    if weights.kind == "random":
        keras.utils.set_random_seed(weights.seed)
        return replica.build(1000)
    assert weights.path is not None
    if weights.path.name.lower().endswith((".pth", ".pt")):
        state = read_checkpoint(weights.path, source)
        if not replica.matches(state):
            raise BackendError(f"{source}: not a torchvision {replica.name} state_dict")
        model = replica.build(replica.num_classes(state))
        set_state(model, replica, state, source)
        return model
    return from_h5(replica, weights.path, source)


def from_h5(replica: Replica, path: Path, source: str) -> keras.Model:
    """A .weights.h5 of the replica (as gbp convert writes), any class count."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            classes = int(handle.attrs.get("gbp:num_classes", 1000))
    except OSError as e:
        raise BackendError(f"{source}: not a Keras weights file ({first_line(e)})") from None
    model = replica.build(classes)
    try:
        model.load_weights(path)
    except Exception as e:
        raise BackendError(f"{source}: does not fit {replica.name} ({first_line(e)})") from None
    return model


def save(replica: Replica, state: Mapping[str, np.ndarray], path: Path, source: str) -> None:
    """Write torch's `state` as the replica's .weights.h5, saying which architecture it is."""
    import h5py

    model = replica.build(replica.num_classes(state))
    set_state(model, replica, state, source)
    model.save_weights(path)
    with h5py.File(path, "a") as handle:
        handle.attrs[ARCHITECTURE] = replica.name
        handle.attrs["gbp:num_classes"] = replica.num_classes(state)


def architecture(path: Path) -> str | None:
    """The replica a .weights.h5 that gbp convert wrote is for."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            name = handle.attrs.get(ARCHITECTURE)
    except OSError:
        return None
    return str(name) if name is not None and str(name) in load_all() else None


class ReplicaLayout(Layout):
    """A replica's weights in torchvision's layout, so that both backends save, load and compare
    the very same tensors; sanity's stages are its modules in order, the head alone, then the
    rest in seven groups, as the torch backend cuts a network it does not know by family."""

    def __init__(self, replica: Replica) -> None:
        super().__init__()
        self.replica = replica

    def state(self, model: keras.Model) -> dict[str, np.ndarray]:
        weights = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
        return self.replica.from_keras(weights)

    def load_state(self, model: keras.Model, state: dict[str, np.ndarray]) -> None:
        set_state(model, self.replica, state, "weights")

    def stages(self, model: keras.Model) -> list[tuple[str, tuple[str, ...]]]:
        modules = list(dict.fromkeys(k.rsplit(".", 1)[0] for k in self.state(model)))
        body = np.array_split(np.arange(len(modules) - 1), self.GROUPS - 1)
        groups = [(modules[g[0]], tuple(f"{modules[i]}." for i in g)) for g in body if len(g)]
        return [(modules[-1], (f"{modules[-1]}.",)), *reversed(groups)]

    def random_state(self, model: keras.Model, seed: int) -> dict[str, np.ndarray]:
        """Seeded in numpy: Kaiming-normal kernels, unit scales and variances, zero shifts."""
        rng, state, current = np.random.default_rng(seed), {}, self.state(model)
        for key, value in current.items():
            leaf = key.rsplit(".", 1)[-1]
            if leaf == "weight" and value.ndim > 1:
                fan_in = int(np.prod(value.shape[1:]))
                value = rng.normal(0, np.sqrt(2 / fan_in), value.shape)
            elif leaf in ("weight", "running_var"):
                value = np.ones_like(value)
            elif leaf in ("bias", "running_mean"):
                value = np.zeros_like(value)
            state[key] = np.asarray(value, dtype=current[key].dtype)
        return state
