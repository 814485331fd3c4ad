"""TensorFlow backend: Keras DenseNet with @tf.custom_gradient ReLUs, eager or compiled.

A single photo runs eagerly: tracing costs more than it saves. A folder runs in a tf.function
traced once (a None batch dimension, so a short last batch does not retrace), and a large folder
under XLA, whose longer compile pays for itself; an XLA batch is padded to a fixed shape.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

from . import tf_env  # noqa: F401  (first: it imports TensorFlow quietly and safely)

# isort: split
import numpy as np
import tensorflow as tf

from .base import Backend, BackendError, Explanation, ModelInfo, WeightsSpec
from .densenet import BLOCKS, from_keras, layers
from .tf_relus import ReluRules, override_relus, unreached_relus

MODES = ("eager", "graph", "xla")
CHOICES = ("auto", *MODES)  # auto: `plan` picks by COST
# Measured for DenseNet201 guided backprop on the 2-core dev CPU (bench/bench.py --tf-modes):
# per batch size, (extra seconds the first call costs, seconds per image after it). They decide
# only which mode runs, never what it computes.
COST = {
    "eager": {1: (0.4, 0.856), 8: (1.8, 0.229)},
    "graph": {1: (4.8, 0.125), 8: (5.1, 0.071)},
    "xla": {1: (19.7, 0.095), 8: (20.4, 0.083)},
}


def choose_mode(images: int | None, batch_size: int) -> str:
    """The mode with the least expected total time for this many images (None: a stream)."""
    if images is None:
        return "graph"
    per = 1 if min(images, batch_size) < 4 else 8

    def total(mode: str) -> float:
        first, each = COST[mode][per]
        return first + images * each

    return min(MODES, key=total)


def resolve_device(device: str) -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if device == "cuda" and not gpus:
        raise BackendError("--device cuda: TensorFlow sees no GPU (use --device cpu or auto)")
    return "/GPU:0" if device != "cpu" and gpus else "/CPU:0"


def check_mode(mode: str) -> str:
    if mode not in CHOICES:
        raise BackendError(f"TensorFlow mode {mode!r}: expected one of {', '.join(CHOICES)}")
    return mode


class TFBackend(Backend):
    """A Keras model whose ReLUs follow `rules`; gradients w.r.t. the input only.

    `requested` is the mode asked for at construction; `mode` is the one that runs, read-only so
    that nothing outside can change it behind `plan`'s back.
    """

    def __init__(
        self, model: tf.keras.Model, info: ModelInfo, device: str, mode: str = "auto"
    ) -> None:
        self.model = model
        self.info = info
        self.device = device
        self.rules = ReluRules()
        self.overridden = override_relus(model, self.rules)
        self.requested = check_mode(mode)
        self._mode = "eager" if mode == "auto" else mode
        self.batch_size = 0
        self._functions: dict[tuple, Callable] = {}
        self._relus: dict[tuple, dict[str, int]] = {}
        self._with_features: tf.keras.Model | None = None

    def _densenet(self) -> str:
        if self.info.model not in BLOCKS:
            raise BackendError(f"this needs a Keras DenseNet121/169/201, not a {self.info.model}")
        return self.info.model

    def state(self) -> dict[str, np.ndarray]:
        arch = self._densenet()
        weights = {name: self.model.get_layer(name).get_weights() for _, name, _ in layers(arch)}
        return from_keras(weights, arch)

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        from .tf_weights import set_torch_weights

        set_torch_weights(self.model, state, self._densenet(), "weights")

    @property
    def mode(self) -> str:
        """The execution mode in use: eager, graph or xla."""
        return self._mode

    def plan(self, images: int | None, batch_size: int) -> None:
        if self.requested == "auto":
            self._mode = choose_mode(images, batch_size)
        self.batch_size = batch_size

    def _cam_model(self) -> tf.keras.Model:
        """The same model with the Grad-CAM layer's output as a second output."""
        if self._with_features is None:
            import keras

            names = [layer.name for layer in self.model.layers]
            blocks = [n for n in names if re.fullmatch(r"conv5_block\d+_concat", n)]
            if not blocks:
                raise BackendError("gradcam needs a Keras DenseNet: no conv5_block*_concat layer")
            layer = self.model.get_layer(blocks[-1])
            self._with_features = keras.Model(self.model.inputs, [layer.output, self.model.output])
        return self._with_features

    def _pass(
        self,
        images: tf.Tensor,
        targets: tf.Tensor | None,
        methods: tuple[str, ...],
        k: int,
        cam: bool,
    ):
        """Forward once; one input gradient per (method, target). Python: runs at trace time."""
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(images)
            if cam:
                features, logits = self._cam_model()(images, training=False)
            else:
                logits = self.model(images, training=False)
            if targets is None:
                targets = tf.math.top_k(logits, k=k).indices
            scores = [
                tf.reduce_sum(tf.gather(logits, targets[:, j], batch_dims=1)) for j in range(k)
            ]
        saliency, relus = {}, {}
        for method in methods:
            self.rules.method = method
            before = self.rules.applied
            saliency[method] = tf.stack([tape.gradient(s, images) for s in scores], axis=1)
            relus[method] = (self.rules.applied - before) // k
        self._relus[(methods, k)] = relus
        if not cam:
            return logits, targets, saliency
        self.rules.method = "vanilla"  # Grad-CAM weighs the layer by its ordinary gradient
        feature_grads = tf.stack([tape.gradient(s, features) for s in scores], axis=1)
        return logits, targets, saliency, features, feature_grads

    def _function(self, methods: tuple[str, ...], k: int, given: bool, cam: bool) -> Callable:
        key = (self.mode, methods, k, given, cam)
        if key not in self._functions:
            run = lambda x, t=None: self._pass(x, t, methods, k, cam)  # noqa: E731
            if self.mode == "eager":
                self._functions[key] = run
            else:
                spec = [tf.TensorSpec([None, *self.model.inputs[0].shape[1:]], tf.float32)]
                if given:
                    spec.append(tf.TensorSpec([None, k], tf.int32))
                self._functions[key] = tf.function(
                    run, input_signature=spec, jit_compile=self.mode == "xla", reduce_retracing=True
                )
        return self._functions[key]

    def explain(
        self,
        images: np.ndarray,
        methods: Sequence[str],
        targets: np.ndarray | None = None,
        top_k: int = 1,
        cam: bool = False,
    ) -> Explanation:
        n = len(images)
        k = top_k if targets is None else targets.shape[1]
        batch = np.asarray(images, dtype=np.float32)  # becomes a tf.Tensor below
        wanted = None if targets is None else np.asarray(targets, dtype=np.int32)
        if self.mode == "xla" and n < self.batch_size:  # one static shape: one compile
            batch = np.concatenate(
                [batch, np.zeros((self.batch_size - n, *batch.shape[1:]), batch.dtype)]
            )
            if wanted is not None:
                wanted = np.concatenate([wanted, np.zeros((self.batch_size - n, k), np.int32)])
        function = self._function(tuple(methods), k, wanted is not None, cam)
        with tf.device(self.device):
            args = [tf.convert_to_tensor(batch)]
            if wanted is not None:
                args.append(tf.convert_to_tensor(wanted))
            logits, chosen, saliency, *features = function(*args)
        return Explanation(
            logits=logits.numpy()[:n].astype(np.float32),
            targets=chosen.numpy()[:n].astype(np.int64),
            saliency={m: g.numpy()[:n] for m, g in saliency.items()},
            relus=dict(self._relus[(tuple(methods), k)]),
            features=features[0].numpy()[:n] if cam else None,
            feature_grads=features[1].numpy()[:n] if cam else None,
        )


def load(
    weights: WeightsSpec, device: str, precision: str = "fp32", mode: str = "auto"
) -> TFBackend:
    """Build the Keras model the weights describe; bf16 builds it under Keras's mixed policy."""
    import keras

    from .tf_weights import build_model

    check_mode(mode)  # before the model is built, which takes seconds
    placement = resolve_device(device)
    previous = keras.config.dtype_policy()
    if precision == "bf16":
        keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        with tf.device(placement):
            model, name = build_model(weights)
    finally:
        keras.config.set_dtype_policy(previous)
    num_classes = int(model.outputs[0].shape[-1])
    device_type = "cuda" if "GPU" in placement else "cpu"
    info = ModelInfo("tf", name, num_classes, weights, device_type, precision=precision)
    backend = TFBackend(model, info, placement, mode)
    if name == "keras model":  # anything may hide in a user's model; DenseNets are known clean
        backend.info = dataclasses.replace(info, warnings=unreached_warnings(backend.model))
    return backend


def unreached_warnings(model: tf.keras.Model) -> tuple[str, ...]:
    return tuple(
        f"layer {layer!r} applies a ReLU that gbp cannot reach: it keeps its ordinary gradient"
        for layer in unreached_relus(model)
    )


def wrap_keras_model(
    model: tf.keras.Model, weights: WeightsSpec, device: str = "auto", mode: str = "auto"
) -> TFBackend:
    """A backend around a user's Keras model, which is cloned first and so left unchanged."""
    import keras

    check_mode(mode)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    info = ModelInfo("tf", model.name, int(model.outputs[0].shape[-1]), weights, device)
    backend = TFBackend(clone, info, resolve_device(device), mode)
    backend.info = dataclasses.replace(info, warnings=unreached_warnings(clone))
    return backend
