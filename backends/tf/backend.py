"""TensorFlow backend: a Keras model whose ReLUs are @tf.custom_gradient ones, eager or compiled.

A single photo runs eagerly: tracing costs more than it saves. A folder runs in a tf.function
traced once (a None batch dimension, so a short last batch does not retrace), and a large folder
under XLA, whose longer compile pays for itself; an XLA batch is padded to a fixed shape.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence

from . import env  # noqa: F401  (first: it imports TensorFlow quietly and safely)

# isort: split
import numpy as np
import tensorflow as tf

from ..base import Backend, BackendError, Explanation, ModelInfo, ModelSpec, WeightsSpec, precise
from ..rules import OTHER_ACTIVATIONS, RULES, refusal
from .activations import ReluRules, account, hook_output, walk
from .layout import Layout
from .models import Built, build, find_cam_layer, wrapped

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


def check_policy(policy: str) -> str:
    if policy not in OTHER_ACTIVATIONS:
        raise BackendError(
            f"--other-activations {policy}: expected one of {', '.join(OTHER_ACTIVATIONS)}"
        )
    return policy


class TFBackend(Backend):
    """A Keras model whose ReLUs and ReLU6s follow `rules`; gradients w.r.t. the input only.

    At construction every activation is counted by kind (with `built.trace`, the forward graph is
    searched too, for those no layer declares) and Grad-CAM's layer is found: `info` says both.
    `spec` gives --cam-layer and --other-activations. `requested` is the mode asked for at
    construction; `mode` is the one that runs, read-only so that nothing outside can change it
    behind `plan`'s back.
    """

    def __init__(
        self,
        built: Built,
        info: ModelInfo,
        device: str,
        mode: str = "auto",
        spec: ModelSpec = ModelSpec(),  # noqa: B008  (frozen: one shared default is safe)
    ) -> None:
        self.model = built.model
        self.layout: Layout = built.layout
        self.device = device
        self.other_activations = check_policy(spec.other_activations)
        self.requested = check_mode(mode)
        self._mode = "eager" if mode == "auto" else mode
        self.batch_size = 0
        self._functions: dict[tuple, Callable] = {}
        self._counts: dict[tuple, tuple[dict[str, int], dict[str, dict[str, int]]]] = {}
        self._captured: list[tf.Tensor] = []
        self._capturing = False
        self.rules = ReluRules()
        census = account(self.model, self.rules, built.trace)
        self.overridden = census.overridden
        self.info = dataclasses.replace(
            info,
            activations=dict(census.counts),
            unruled=census.unruled(),
            cam_layer=find_cam_layer(self.model, spec.cam_layer or built.cam_layer),
        )
        if self.info.cam_layer is not None:
            hook_output(dict(walk(self.model))[self.info.cam_layer], self._keep)

    def _keep(self, features: tf.Tensor) -> None:
        if self._capturing:
            self._captured.append(features)

    def state(self) -> dict[str, np.ndarray]:
        """The weights: torchvision's layout for a twin, else {"layer path/index": array}."""
        return self.layout.state(self.model)

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.layout.load_state(self.model, state)

    def stages(self) -> list[tuple[str, tuple[str, ...]]]:
        """gbp sanity's stages from the top: (name, the `state` keys it re-initialises)."""
        return self.layout.stages(self.model)

    def random_state(self, seed: int) -> dict[str, np.ndarray]:
        """A numpy-seeded re-initialisation of every `state` key (for a twin, the torch
        backend's very arrays)."""
        return self.layout.random_state(self.model, seed)

    @property
    def mode(self) -> str:
        """The execution mode in use: eager, graph or xla."""
        return self._mode

    def plan(self, images: int | None, batch_size: int) -> None:
        if self.requested == "auto":
            self._mode = choose_mode(images, batch_size)
        self.batch_size = batch_size

    def check(self, methods: Sequence[str], cam: bool = False) -> None:
        """Refuse, before any work, what would give a map that is not the method's: guided or
        deconv through activations with no rule (unless they may keep their ordinary gradient),
        and Grad-CAM without a spatial feature map."""
        info = self.info
        asked = [*methods, "gradcam"] if cam else list(methods)
        problem = refusal(
            asked,
            info.activations,
            info.unruled,
            info.cam_layer is not None,
            self.other_activations,
            info.model,
        )
        if problem is not None:
            raise BackendError(problem)

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
            self._captured.clear()
            self._capturing = cam
            try:
                logits = self.model(images, training=False)
            finally:
                self._capturing = False
            if targets is None:
                targets = tf.math.top_k(logits, k=k).indices
            scores = [
                tf.reduce_sum(tf.gather(logits, targets[:, j], batch_dims=1)) for j in range(k)
            ]
        saliency, relus, kinds = {}, {}, {}
        for method in methods:
            self.rules.method = method
            before = Counter(self.rules.applied)
            saliency[method] = tf.stack([tape.gradient(s, images) for s in scores], axis=1)
            kinds[method] = {n: c // k for n, c in (self.rules.applied - before).items()}
            relus[method] = sum(kinds[method].values())
        self._counts[(methods, k)] = relus, kinds
        if not cam:
            return logits, targets, saliency
        features = self._captured[-1]
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
                spec = [tf.TensorSpec([None, *self.model.inputs[0].shape[1:]], self.dtype)]
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
        self.check(methods, cam)
        n = len(images)
        k = top_k if targets is None else targets.shape[1]
        batch = np.asarray(images, dtype=self.dtype.as_numpy_dtype)  # a tf.Tensor below
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
        relus, kinds = self._counts[(tuple(methods), k)]
        ruled = any(RULES[m] != RULES["vanilla"] for m in methods)
        unruled = self.info.unruled if ruled else {}
        return Explanation(
            logits=self._array(logits)[:n],
            targets=chosen.numpy()[:n].astype(np.int64),
            saliency={m: g.numpy()[:n] for m, g in saliency.items()},
            relus=dict(relus),
            activations={m: dict(c) for m, c in kinds.items()},
            ordinary={kind: self.info.activations[kind] for kind in unruled},
            features=self._array(features[0])[:n] if cam else None,
            feature_grads=self._array(features[1])[:n] if cam else None,
        )

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The logits of a forward pass with no tape: nothing is recorded for a gradient (gbp
        evaluate's perturbed copies). Runs in the mode `plan` chose, as `explain` does."""
        n = len(images)
        batch = np.asarray(images, dtype=self.dtype.as_numpy_dtype)
        if self.mode == "xla" and n < self.batch_size:  # one static shape: one compile
            padding = np.zeros((self.batch_size - n, *batch.shape[1:]), batch.dtype)
            batch = np.concatenate([batch, padding])
        key = (self.mode, "forward")
        if key not in self._functions:
            forward = lambda x: self.model(x, training=False)  # noqa: E731
            if self.mode == "eager":
                self._functions[key] = forward
            else:
                spec = [tf.TensorSpec([None, *self.model.inputs[0].shape[1:]], self.dtype)]
                self._functions[key] = tf.function(
                    forward, input_signature=spec, jit_compile=self.mode == "xla"
                )
        with tf.device(self.device):
            logits = self._functions[key](tf.convert_to_tensor(batch))
        return self._array(logits)[:n]

    @property
    def dtype(self) -> tf.DType:
        """What the model takes and the maps come back in: float64 for fp64, else float32."""
        return tf.float64 if self.info.precision == "fp64" else tf.float32

    def _array(self, tensor: tf.Tensor) -> np.ndarray:
        return tf.cast(tensor, self.dtype).numpy()


def load(
    weights: WeightsSpec,
    device: str,
    precision: str = "fp32",
    mode: str = "auto",
    model: ModelSpec = ModelSpec(),  # noqa: B008  (frozen: one shared default is safe)
) -> TFBackend:
    """Build the Keras model `model` names, with `weights`; bf16 builds it under Keras's mixed
    policy, fp64 under float64."""
    import keras

    check_mode(mode)  # before the model is built, which takes seconds
    check_policy(model.other_activations)
    precise(precision)
    placement = resolve_device(device)
    previous = keras.config.floatx(), keras.config.dtype_policy()
    policy = {"bf16": "mixed_bfloat16", "fp64": "float64"}.get(precision, previous[1])
    keras.config.set_dtype_policy(policy)
    if precision == "fp64":  # a model's Input takes floatx: float64 all the way from the input
        keras.config.set_floatx("float64")
    try:
        with tf.device(placement):
            built = build(model, weights)
    finally:
        keras.config.set_floatx(previous[0])
        keras.config.set_dtype_policy(previous[1])
    device_type = "cuda" if "GPU" in placement else "cpu"
    return TFBackend(built, built.info(device_type, precision), placement, mode, model)


def wrap_keras_model(
    model: tf.keras.Model,
    weights: WeightsSpec,
    device: str = "auto",
    mode: str = "auto",
    spec: ModelSpec | None = None,
) -> TFBackend:
    """A backend around a user's Keras model, which is cloned first and so left unchanged; `spec`
    gives its preprocessing, Grad-CAM layer and --other-activations."""
    spec = spec or ModelSpec(name=f"{model.name}.keras")
    placement = resolve_device(device)
    with tf.device(placement):
        built = wrapped(model, weights, spec)
    device_type = "cuda" if "GPU" in placement else "cpu"
    return TFBackend(built, built.info(device_type), placement, mode, spec)
