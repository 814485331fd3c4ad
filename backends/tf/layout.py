"""How the TF backend names a Keras model's weights for `state()`, and gbp sanity's stages and
re-initialisation over them, for a model that is no twin (a user's .keras, keras:NAME): each
layer's weights as {"layer path/index": array}; stages the head alone, then the other layers with
trainable weights in seven groups, each named by its first layer. A twin's weights are in
torchvision's layout instead (backends/tf/twins.py's TwinLayout)."""

from __future__ import annotations

from . import env  # noqa: F401  (first: it imports TensorFlow quietly and safely)

# isort: split
import keras
import numpy as np

from ..base import BackendError
from ..reasons import first_line
from ..stages import Stages, grouped
from .activations import walk


class Layout:
    """Any Keras model's weights, layer by layer."""

    def weighted(self, model: keras.Model) -> list[tuple[str, keras.Layer]]:
        return [(p, layer) for p, layer in walk(model) if layer.weights and not _nests(layer)]

    def state(self, model: keras.Model) -> dict[str, np.ndarray]:
        return {
            f"{path}/{i}": np.array(array)
            for path, layer in self.weighted(model)
            for i, array in enumerate(layer.get_weights())
        }

    def load_state(self, model: keras.Model, state: dict[str, np.ndarray]) -> None:
        for path, layer in self.weighted(model):
            try:
                layer.set_weights([state[f"{path}/{i}"] for i in range(len(layer.weights))])
            except (KeyError, ValueError) as e:
                raise BackendError(f"weights for {path} do not fit ({first_line(e)})") from None

    def stages(self, model: keras.Model) -> Stages:
        units = [path for path, layer in self.weighted(model) if layer.trainable_weights]
        return grouped([(path, (f"{path}/",)) for path in units])

    def random_state(self, model: keras.Model, seed: int) -> dict[str, np.ndarray]:
        """Seeded in numpy: Glorot-uniform kernels (Keras's default), zero biases and shifts,
        unit scales and variances; other non-trainable weights are kept (a Normalization
        layer's statistics are preprocessing, not learning)."""
        rng, state = np.random.default_rng(seed), {}
        for path, layer in self.weighted(model):
            trainable = {id(v) for v in layer.trainable_weights}
            for i, variable in enumerate(layer.weights):
                value, name = np.array(variable), variable.name.split("/")[-1]
                if id(variable) in trainable or name in ("moving_mean", "moving_variance"):
                    value = _initial(name, value.shape, rng).astype(value.dtype)
                state[f"{path}/{i}"] = value
        return state


def _nests(layer: keras.Layer) -> bool:
    return bool(getattr(layer, "layers", None))


def _initial(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if name in ("gamma", "moving_variance", "scale"):
        return np.ones(shape)
    if name in ("beta", "bias", "moving_mean") or len(shape) < 2:
        return np.zeros(shape)
    receptive = int(np.prod(shape[:-2]))
    limit = np.sqrt(6 / (receptive * (shape[-2] + shape[-1])))
    return rng.uniform(-limit, limit, shape)
