"""The library's explainer: a model (your own object, or a name as `gbp explain --model` takes)
with its preprocessing stated, called on one image or many. `explain` and the Ray Data
callable (gbp_cli.ray_api) both run through it: the same checks, batches and map shapes."""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gbp_cli.api import images as checking
from gbp_cli.api import options
from gbp_cli.api.models import CACHE, Loaded, Request, framework_of
from gbp_cli.api.options import api_terms
from gbp_cli.api.results import Explained, Results, image_maps
from gbp_cli.backends.base import (
    NORMALIZATIONS,
    Explanation,
    ModelInfo,
    ModelSpec,
    Preprocessing,
    WeightsSpec,
)
from gbp_cli.backends.rules import refusal
from gbp_cli.errors import ArgumentError, InputError, NotAnInput
from gbp_cli.inputs.preprocess import Geometry, Prepared, prepare, prepare_image
from gbp_cli.outputs.planning import predictions
from gbp_cli.saliency.labels import load_labels, resolve_target
from gbp_cli.saliency.maps import explain_maps
from gbp_cli.settings import Smoothing

Preprocess = Callable[[Image.Image], Any]  # an upright RGB photo → the model's input
ImageLike = Any  # a path, bytes, PIL image, array or tensor; or a list or batch of them
Triple = tuple[float, float, float]
TOP = 5  # classes each result lists in `top`


class Explainer:
    """Saliency maps of one model, built once and called on one image or many.

    `model` is a torch.nn.Module or a Keras model you have in memory (gbp explains a copy: your
    model's mode, parameters, memory format and device are never changed), or a name as
    `gbp explain --model` takes it (a torchvision classifier, `package.module:factory`,
    `PATH.keras`, `keras:NAME`) with `weights` ("imagenet", "random" or a file). The
    preprocessing: `input_size` (the square the model sees), `mean` and `std` (per RGB channel,
    for pixels in [0, 1]) or `normalize` (imagenet, caffe, tf or none), or `preprocess`, a
    callable from an upright RGB PIL photo to the model's input (an H×W×3 or 3×H×W array or
    tensor, as a torchvision transform gives); `labels` names the classes (a list, or a file
    with one per line).
    """

    def __init__(
        self,
        model: Any = "densenet201",
        *,
        backend: str | None = None,
        weights: str | os.PathLike | None = None,
        input_size: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        normalize: str | None = None,
        preprocess: Preprocess | None = None,
        labels: str | os.PathLike | Sequence[str] | None = None,
        device: str = "auto",
        precision: str = "fp32",
        other_activations: str = "refuse",
        cam_layer: str | None = None,
        batch_size: int = 8,
    ) -> None:
        with api_terms():
            self.request = _request(
                model, backend, weights, input_size, normalize, device, precision,
                other_activations, cam_layer,
            )  # fmt: skip
            self.scaling = _scaling(mean, std, normalize, preprocess)
            self.preprocess = preprocess
            self.batch_size = options.count("batch_size", batch_size)
            self._labels = _labels(labels)
            loaded = CACHE.get(self.request)
            self._model = loaded, self._class_names(loaded)  # replaced as one: threads read it

    def __repr__(self) -> str:
        info = self.info
        return f"Explainer({info.model!r}, backend={info.backend!r}, classes={info.num_classes})"

    @property
    def loaded(self) -> tuple[Loaded, list[str]]:
        """The model as last loaded and its class names, replaced as one (threads read it)."""
        return self._model

    @property
    def info(self) -> ModelInfo:
        """What was loaded: the model, its classes, activations, Grad-CAM layer, preprocessing."""
        return self._model[0].backend.info

    @property
    def labels(self) -> list[str]:
        """The class names, in index order."""
        return list(self._model[1])

    @property
    def preprocessing(self) -> Preprocessing:
        """How a photo becomes the model's input (unless `preprocess` makes it)."""
        given = self.info.preprocessing
        if self.scaling is None:
            return given
        mean, std = self.scaling
        return dataclasses.replace(given, mean=mean, std=std, bgr=False, name="mean/std")

    def explain(
        self,
        images: ImageLike,
        *,
        method: str | Sequence[str] = "guided",
        target: Any = None,
        resize: str = "squash",
        smooth: int | None = None,
        noise: float = Smoothing.noise,
    ) -> Explained | Results:
        """Each method's map of each image, for `target` (a class index or name; one per image
        for many; None: each image's top class). One image gives an Explained; many (a list,
        or an N×H×W×3 / N×3×H×W array or tensor) give Results, one per image, in order, run
        through the model `batch_size` at a time. `smooth=N` averages N noisy copies
        (SmoothGrad, σ = `noise` × the input's range)."""
        with api_terms():
            return self.explain_with(self._current(), images, method, target, resize, smooth, noise)

    def explain_with(
        self,
        model: tuple[Loaded, list[str]],
        images: ImageLike,
        method: str | Sequence[str],
        target: Any,
        resize: str,
        smooth: int | None,
        noise: float,
    ) -> Explained | Results:
        """`explain` with the model as checked a moment ago (by `explain()`, which has just
        built this Explainer: its weights are not hashed twice)."""
        loaded, names = model
        with api_terms():
            methods = self.methods(method, loaded)
            resize = self.check_resize(resize)
            smoothing = options.smoothing(smooth, noise)
            sources, many = checking.sources(images)
            wanted = self._targets(target, len(sources), many, names)
            results = Results()
            for start in range(0, len(sources), self.batch_size):
                chunk = sources[start : start + self.batch_size]
                prepared = [self._named(s, resize) for s in chunk]
                targets = None if wanted is None else wanted[start : start + len(chunk)]
                explanation, maps = self.run(
                    loaded, [p.array for p in prepared], methods, targets, smoothing, len(sources)
                )
                shaped = image_maps(maps)
                for j, item in enumerate(prepared):
                    results.append(self._result(explanation, shaped, j, item, names))
            return results if many else results[0]

    # What the Ray Data callable shares.

    def current(self) -> Loaded:
        """The loaded model, loaded anew if its weights changed since (a file saved again, a
        model object trained further): the maps are never an older model's."""
        return self._current()[0]

    def _current(self) -> tuple[Loaded, list[str]]:
        content = self.request.content()
        model = self._model
        if not model[0].serves(self.request, content):
            loaded = CACHE.get(self.request, content)
            model = self._model = loaded, self._class_names(loaded)
        return model

    def methods(self, method: str | Sequence[str], loaded: Loaded | None = None) -> tuple[str, ...]:
        """The methods asked for, if gbp knows each and this model can give its true map."""
        methods = options.methods(method)
        info = (loaded or self.current()).backend.info
        problem = refusal(
            methods,
            info.activations,
            info.unruled,
            cam_layer=info.cam_layer is not None,
            other_activations=self.request.spec.other_activations,
            model=info.model,
        )
        if problem is not None:
            raise ArgumentError(problem)
        return methods

    def target(self, target: Any, names: list[str] | None = None) -> int:
        """One class, by index or name, as an index of this model's classes."""
        if isinstance(target, bool) or not isinstance(target, str | numbers.Integral):
            raise ArgumentError(
                f"target={target!r}: expected a class index or name (one per image for many)"
            )
        return resolve_target(str(target), self.labels if names is None else names)

    def check_resize(self, resize: str) -> str:
        """squash or crop; with `preprocess`, which makes the view itself, squash."""
        resize = options.resize(resize)
        if self.preprocess is not None and resize != "squash":
            raise ArgumentError(
                f"resize={resize!r}: preprocess= makes the model's input, crop included"
            )
        return resize

    def prepare(self, source: checking.Source, resize: str, keep_photo: bool = True) -> Prepared:
        """One checked image as the model's input, and what pictures of it need; a file's
        Prepared carries its digest, as `gbp explain` records it."""
        if self.preprocess is None:
            pre = self.preprocessing
            if source.path is not None:
                return prepare(source.path, resize, keep_photo, pre)
            return prepare_image(source.photo(), resize, keep_photo, pre)
        photo = source.photo()
        geometry = Geometry(photo.width, photo.height, (0, 0, photo.width, photo.height))
        return Prepared(self._own_input(photo), geometry, photo if keep_photo else None)

    def run(
        self,
        loaded: Loaded,
        inputs: list[np.ndarray],
        methods: tuple[str, ...],
        targets: np.ndarray | None,
        smoothing: Smoothing | None,
        planned: int,
    ) -> tuple[Explanation, dict[str, np.ndarray]]:
        """One batch through the backend, its turn taken under the model's lock: threads that
        share a model get the maps a serial run gives."""
        shapes = {x.shape for x in inputs}
        if len(shapes) > 1:
            raise ArgumentError(
                f"preprocess made inputs of different shapes in one batch ({sorted(shapes)}): "
                "make it return one size"
            )
        batch = np.stack(inputs)
        with loaded.lock:
            loaded.backend.plan(planned, self.batch_size)
            return explain_maps(loaded.backend, batch, methods, targets, 1, smoothing)

    def note(self) -> str | None:
        """What must head a picture of these maps."""
        if self.info.weights.is_random:
            return "untrained random weights: these maps say nothing about ImageNet"
        return None

    # Inside.

    def _named(self, source: checking.Source, resize: str) -> Prepared:
        """`prepare`, with the image named in what it raises (`images[3]: …`, `photo.jpg: …`)."""
        try:
            return self.prepare(source, resize)
        except (InputError, NotAnInput) as e:
            e.args = (f"{source.name}: {e}",)
            raise

    def _result(
        self,
        explanation: Explanation,
        maps: dict[str, np.ndarray],
        j: int,
        item: Prepared,
        names: list[str],
    ) -> Explained:
        logits = explanation.logits[j]
        assert item.photo is not None
        return Explained(
            saliency={m: values[j] for m, values in maps.items()},
            target=predictions(logits, explanation.targets[j], names)[0],
            top=predictions(logits, np.argsort(-logits)[:TOP], names),
            relus=dict(explanation.relus),
            photo=item.photo,
            geometry=item.geometry,
            model_input=item.array,
            note=self.note(),
        )

    def _targets(self, target: Any, count: int, many: bool, names: list[str]) -> np.ndarray | None:
        """(count, 1) class indices: one target for all, one per image, or None (top-1)."""
        if target is None:
            return None
        if isinstance(target, str | numbers.Integral):
            return np.full((count, 1), self.target(target, names), np.int64)
        values, _ = checking.as_array(target)
        if values is None and isinstance(target, list | tuple):
            values = np.asarray(target, dtype=object)
        if not many or values is None or values.ndim != 1:
            shape = "" if values is None else f" of shape {values.shape}"
            one_hot = values is not None and values.ndim == 2
            hint = "; one-hot rows: pass `y.argmax(1)`" if one_hot else ""
            raise ArgumentError(
                f"target: a {type(target).__name__}{shape}: expected a class index or name, "
                f"or for many images one per image{hint}"
            )
        if len(values) != count:
            raise ArgumentError(f"target: {len(values)} classes for {count} images")
        return np.array([[self.target(_plain(v), names)] for v in values], np.int64)

    def _own_input(self, photo: Image.Image) -> np.ndarray:
        """`preprocess(photo)` as an H×W×3 float32 input of the model's size."""
        made = self.preprocess(photo)  # type: ignore[misc]
        array, _ = checking.as_array(made)
        if array is None:
            raise ArgumentError(
                f"preprocess returned a {type(made).__name__}: expected an array or tensor"
            )
        if array.ndim == 4 and array.shape[0] == 1:
            array = array[0]
        if array.ndim != 3 or 3 not in (array.shape[0], array.shape[-1]):
            raise ArgumentError(f"preprocess returned shape {array.shape}: expected H×W×3 or 3×H×W")
        if array.shape[-1] != 3:
            array = array.transpose(1, 2, 0)
        if not np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_:
            raise ArgumentError(f"preprocess returned {array.dtype} values: expected numbers")
        array = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(array).all():
            raise ArgumentError("preprocess returned NaN or infinite values")
        size = self.info.input_size
        if array.shape[:2] != (size, size):
            raise ArgumentError(
                f"preprocess returned a {array.shape[0]}×{array.shape[1]} input, but "
                f"input_size is {size}: pass input_size={array.shape[0]}, or make it {size}"
            )
        return array

    def _class_names(self, loaded: Loaded) -> list[str]:
        classes = loaded.backend.info.num_classes
        if isinstance(self._labels, tuple):
            if len(self._labels) != classes:
                raise ArgumentError(
                    f"labels: {len(self._labels)} names, but the model has {classes} classes"
                )
            return list(self._labels)
        return load_labels(self._labels, classes)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds."""
    return value.item() if isinstance(value, np.generic) else value


def _request(
    model: Any,
    backend: str | None,
    weights: str | os.PathLike | None,
    input_size: int | None,
    normalize: str | None,
    device: str,
    precision: str,
    other_activations: str,
    cam_layer: str | None,
) -> Request:
    """What to load, every argument checked before seconds of loading."""
    if isinstance(model, os.PathLike):
        model = os.fspath(model)  # a .keras file
    framework = None if isinstance(model, str) else framework_of(model)
    if not isinstance(model, str) and framework is None:
        raise ArgumentError(
            f"model={type(model).__name__}: expected a torch.nn.Module, a Keras model, or a "
            "name (as gbp explain --model takes: densenet201, package.module:factory, "
            "PATH.keras, keras:NAME)"
        )
    if isinstance(model, str) and not model.strip():
        raise ArgumentError("model='': name a model")
    keras_name = isinstance(model, str) and ModelSpec(model).kind in ("keras-file", "keras-app")
    default = framework or ("tf" if keras_name else "torch")  # a .keras file is TensorFlow's
    chosen = options.backend_name(backend) if backend is not None else default
    if framework is not None and chosen != framework:
        kind = "torch" if framework == "torch" else "Keras"
        raise ArgumentError(
            f"backend={backend!r}: this is a {kind} model, which backend={framework!r} explains"
        )
    if framework is not None:
        if weights is not None:
            raise ArgumentError(
                f"weights={weights!r}: a model object brings its own weights; load them into it "
                "first (model.load_state_dict(...), model.load_weights(...))"
            )
        spec_weights = WeightsSpec("given")
        name = getattr(model, "name", None) if framework == "tf" else None
        name = name or type(model).__name__
    else:
        if weights is not None and not isinstance(weights, str | os.PathLike):
            raise ArgumentError(
                f"weights={weights!r}: expected 'imagenet', 'random' or a file's path"
            )
        spec_weights = WeightsSpec.parse(os.fspath(weights) if weights is not None else "imagenet")
        name = model
    if normalize is not None:
        options.choice("normalize", normalize, tuple(NORMALIZATIONS))
    if cam_layer is not None and not isinstance(cam_layer, str):
        raise ArgumentError(f"cam_layer={cam_layer!r}: expected a module path or layer name")
    spec = ModelSpec(
        name,
        input_size=None if input_size is None else options.count("input_size", input_size),
        normalize=normalize,
        cam_layer=cam_layer,
        other_activations=options.other_activations(other_activations),
    )
    return Request(
        chosen,
        model,
        spec_weights,
        options.device(device),
        options.precision(precision),
        spec,
    )


def _scaling(
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    normalize: str | None,
    preprocess: Preprocess | None,
) -> tuple[Triple, Triple] | None:
    """The mean and std asked for, if any, once they are known not to contradict the rest."""
    if preprocess is not None:
        if not callable(preprocess):
            raise ArgumentError(
                f"preprocess={preprocess!r}: expected a callable, photo → model input"
            )
        if mean is not None or std is not None or normalize is not None:
            raise ArgumentError(
                "preprocess= makes the model's input itself: give it alone, without mean=, "
                "std= or normalize="
            )
        return None
    if (mean is None) != (std is None):
        raise ArgumentError(
            "mean= and std= go together: give both, one value per RGB channel, for pixels in [0, 1]"
        )
    if mean is None or std is None:
        return None
    if normalize is not None:
        raise ArgumentError("give mean= and std=, or normalize=, not both")
    return options.triple("mean", mean), options.triple("std", std, above_zero=True)


def _labels(labels: Any) -> Path | tuple[str, ...] | None:
    """Class names as given: a file (one per line), or the names themselves."""
    if labels is None:
        return None
    if isinstance(labels, str | os.PathLike):
        return Path(labels)
    if isinstance(labels, Sequence) and all(isinstance(n, str) for n in labels) and labels:
        return tuple(labels)
    raise ArgumentError(
        f"labels: a {type(labels).__name__}: expected a list of class names or a file's path"
    )
