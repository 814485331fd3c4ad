"""gbp inside your own Ray Data pipeline: a callable class for `Dataset.map_batches`.

    import ray
    from gbp_cli.ray_api import Saliency

    ds = ray.data.read_images("photos/", mode="RGB")
    ds = ds.map_batches(Saliency, fn_constructor_kwargs={"method": ["guided"]}, batch_size=8,
                        compute=ray.data.ActorPoolStrategy(size=2))

Each actor loads the model once (in __init__); each call explains one batch in one backend pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gbp_cli.backends.base import Explanation, ModelSpec, WeightsSpec
from gbp_cli.engines.base import Job
from gbp_cli.engines.results import write_result
from gbp_cli.errors import InputError, NotAnInput
from gbp_cli.inputs.find import named
from gbp_cli.inputs.preprocess import Prepared, prepare, prepare_image
from gbp_cli.outputs.naming import Outputs
from gbp_cli.outputs.planning import Planner, predictions
from gbp_cli.outputs.store import Store
from gbp_cli.render import DRAWING
from gbp_cli.render.encode import PHOTO_FORMATS
from gbp_cli.saliency.labels import load_labels, resolve_target
from gbp_cli.saliency.maps import check_methods, explain_maps
from gbp_cli.settings import Rendering, Smoothing

Batch = dict[str, np.ndarray]


class Saliency:
    """Explain each row of a batch: its `path` (read and decoded by gbp, as `gbp explain` does,
    and what written files record) or, without one, its `image` (H×W×3 pixels as
    `ray.data.read_images` gives them). Adds the columns `class`, `label`, `probability`, one
    224×224(×3) float32 map per method (unless `return_maps=False`), `error` ("" when fine) and,
    with `out`, `files` (the paths written or kept, one per line). A row that cannot be read
    gets its `error`, zero maps and class -1; the batch goes on."""

    def __init__(
        self,
        method: str | Sequence[str] = "guided",
        *,
        target: int | str | None = None,
        backend: str = "torch",
        model: str = "densenet201",
        weights: str = "imagenet",
        device: str = "auto",
        precision: str = "fp32",
        resize: str = "squash",
        smooth: int | None = None,
        noise: float = Smoothing.noise,
        labels: str | Path | None = None,
        out: str | Path | None = None,
        formats: Sequence[str] = (),
        overwrite: bool = False,
        return_maps: bool = True,
    ) -> None:
        from gbp_cli import api

        self.methods = (method,) if isinstance(method, str) else tuple(dict.fromkeys(method))
        network = ModelSpec(model)
        self.backend = api.model(backend, weights, device, precision, network)
        check_methods(self.backend.info, self.methods, network)
        self.labels = load_labels(None if labels is None else Path(labels), self.num_classes)
        self.target = None if target is None else resolve_target(str(target), self.labels)
        self.resize = resize
        self.smoothing = None if smooth is None else Smoothing(samples=smooth, noise=noise)
        self.return_maps = return_maps
        self.overwrite = overwrite
        self.job = None
        if out is not None:
            settings = _model_settings(backend, network, weights, precision)
            outputs = Outputs(self.methods, tuple(formats), Path(out), resize, Rendering(),
                              self.smoothing)  # fmt: skip
            info = self.backend.info
            planner = Planner(outputs, settings, self.target, 1, info, overwrite, drawing=DRAWING)
            self.job = Job(planner, self.labels, resize, self.target, 1)

    @property
    def num_classes(self) -> int:
        return self.backend.info.num_classes

    def __call__(self, batch: Batch) -> Batch:
        rows = len(next(iter(batch.values())))
        paths = batch.get("path")
        if paths is None and "image" not in batch:
            raise ValueError("Saliency needs a `path` or an `image` column")
        if paths is None and self.job is not None:
            raise ValueError("Saliency(out=...) names files after the `path` column: add one")
        kinds = self.job.planner.outputs.kinds() if self.job is not None else []
        keep = any(fmt in PHOTO_FORMATS for _, fmt in kinds)
        prepared: list[Prepared | None] = []
        errors = [""] * rows
        for i in range(rows):
            try:
                prepared.append(self._prepare(batch, i, keep))
            except (InputError, NotAnInput) as e:
                prepared.append(None)
                errors[i] = str(e)
        ok = [i for i in range(rows) if prepared[i] is not None]
        out = dict(batch)
        out["class"] = np.full(rows, -1, np.int64)
        out["label"] = np.array([""] * rows, dtype=object)
        out["probability"] = np.zeros(rows, np.float32)
        maps: dict[str, np.ndarray] = {}
        explanation = None
        if ok:
            images = np.stack([prepared[i].array for i in ok])  # type: ignore[union-attr]
            targets = None if self.target is None else np.full((len(ok), 1), self.target)
            explanation, maps = explain_maps(
                self.backend, images, self.methods, targets, 1, self.smoothing
            )
            for j, i in enumerate(ok):
                best = predictions(explanation.logits[j], explanation.targets[j], self.labels)[0]
                out["class"][i], out["label"][i], out["probability"][i] = (
                    best.index, best.label, best.probability
                )  # fmt: skip
        if self.return_maps:
            size = self.backend.info.input_size
            for method in self.methods:
                channels = maps[method].shape[-1] if ok else (1 if method == "gradcam" else 3)
                column = np.zeros((rows, size, size, channels), np.float32)
                if ok:
                    column[ok] = maps[method][:, 0]
                out[method] = column[..., 0] if channels == 1 else column
        if self.job is not None:
            out["files"] = self._write(paths, prepared, ok, explanation, maps, errors)
        out["error"] = np.array(errors, dtype=object)
        return out

    def _prepare(self, batch: Batch, i: int, keep_photo: bool) -> Prepared:
        pre = self.backend.info.preprocessing
        if "path" in batch:
            return prepare(Path(str(batch["path"][i])), self.resize, keep_photo, pre)
        from gbp_cli.api import as_photo

        return prepare_image(as_photo(np.asarray(batch["image"][i])), self.resize, False, pre)

    def _write(
        self,
        paths: np.ndarray,
        prepared: list[Prepared | None],
        ok: list[int],
        explanation: Explanation | None,
        maps: dict[str, np.ndarray],
        errors: list[str],
    ) -> np.ndarray:
        """Each explained row's files, through the same planning, records and atomic Store as
        `gbp explain` (an identical file already there is kept)."""
        assert self.job is not None
        store = Store(self.overwrite, lambda _: None)
        files = [""] * len(prepared)
        for j, i in enumerate(ok):
            source = named(str(paths[i]))
            item = prepared[i]
            assert explanation is not None and item is not None
            targets = predictions(explanation.logits[j], explanation.targets[j], self.labels)
            planned = self.job.planner.plan(source, item, targets)
            result = write_result(j, source, item, explanation, maps, planned, 0.0, self.job, store)
            if result.error is not None:
                errors[i] = result.error
            files[i] = "\n".join(str(p) for p in [*result.files, *result.kept])
        return np.array(files, dtype=object)


def _model_settings(backend: str, network: ModelSpec, weights: str, precision: str) -> dict:
    """What `gbp explain` records about the model, so a later `gbp explain` keeps these files."""
    from gbp_cli.outputs.model_record import model_record

    return model_record(backend, network, WeightsSpec.parse(weights), precision)
