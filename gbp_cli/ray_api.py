"""gbp inside your own Ray Data pipeline: a callable class for `Dataset.map_batches`.

    import ray
    from gbp_cli.ray_api import Saliency

    ds = ray.data.read_images("photos/", mode="RGB")
    ds = ds.map_batches(Saliency, fn_constructor_kwargs={"method": ["guided"]}, batch_size=8,
                        compute=ray.data.ActorPoolStrategy(size=2))

Each actor loads the model once (in __init__); each call explains one batch in one backend pass.
It runs through the library's Explainer (gbp_cli.api): the same keywords as `explain`, the same
checks of each image, the same map shapes (gradients H×W×3, Grad-CAM H×W). It works without Ray
too: `Saliency(...)({"path": paths})`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gbp_cli.api import Explainer, options
from gbp_cli.api import images as checking
from gbp_cli.api.explainer import Preprocess
from gbp_cli.api.options import api_terms
from gbp_cli.api.results import image_maps
from gbp_cli.backends.base import Backend, Explanation, ModelSpec, WeightsSpec
from gbp_cli.engines.base import Job
from gbp_cli.engines.writing import write_result
from gbp_cli.errors import ArgumentError, InputError, NotAnInput
from gbp_cli.inputs.find import named
from gbp_cli.inputs.preprocess import Prepared
from gbp_cli.outputs.naming import Outputs
from gbp_cli.outputs.planning import Planner, predictions
from gbp_cli.outputs.store import Store
from gbp_cli.render import DRAWING
from gbp_cli.settings import Rendering, Smoothing

Batch = dict[str, np.ndarray]


class Saliency:
    """Explain each row of a batch: its `path` (read and decoded by gbp, as `gbp explain` does,
    and what written files record) or, without one, its `image` (pixels as
    `ray.data.read_images` gives them, checked as `explain` checks an array). Adds the columns
    `class`, `label`, `probability`, one float32 map per method (unless `return_maps=False`:
    gradients H×W×3, Grad-CAM H×W), `error` ("" when fine) and, with `out`, `files` (the paths
    written or kept, one per line). A row that cannot be used gets its `error`, zero maps and
    class -1; the batch goes on. The model's keywords are `explain`'s and Explainer's."""

    def __init__(
        self,
        method: str | Sequence[str] = "guided",
        *,
        target: int | str | None = None,
        model: Any = "densenet201",
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
        resize: str = "squash",
        smooth: int | None = None,
        noise: float = Smoothing.noise,
        out: str | Path | None = None,
        formats: Sequence[str] = (),
        overwrite: bool = False,
        return_maps: bool = True,
    ) -> None:
        with api_terms():
            self.explainer = Explainer(
                model,
                backend=backend,
                weights=weights,
                input_size=input_size,
                mean=mean,
                std=std,
                normalize=normalize,
                preprocess=preprocess,
                labels=labels,
                device=device,
                precision=precision,
                other_activations=other_activations,
                cam_layer=cam_layer,
            )
            self.methods = self.explainer.methods(method)
            self.target = None if target is None else self.explainer.target(target)
            self.resize = self.explainer.check_resize(resize)
            self.smoothing = options.smoothing(smooth, noise)
            self.return_maps = return_maps
            self.overwrite = overwrite
            self.job = None if out is None else self._job(Path(out), tuple(formats))

    @property
    def backend(self) -> Backend:
        return self.explainer.current().backend

    @property
    def labels(self) -> list[str]:
        return self.explainer.labels

    @property
    def num_classes(self) -> int:
        return self.explainer.info.num_classes

    def __call__(self, batch: Batch) -> Batch:
        with api_terms():
            return self._explain(batch)

    def _explain(self, batch: Batch) -> Batch:
        rows = len(next(iter(batch.values())))
        paths = batch.get("path")
        if paths is None and "image" not in batch:
            raise ArgumentError("Saliency needs a `path` or an `image` column")
        if paths is None and self.job is not None:
            raise ArgumentError("Saliency(out=...) names files after the `path` column: add one")
        keep = self.job is not None and self.job.planner.outputs.keeps_photo
        loaded = self.explainer.current()
        prepared: list[Prepared | None] = []
        errors = [""] * rows
        for i in range(rows):
            try:
                prepared.append(self._prepare(batch, i, keep))
            except (InputError, NotAnInput) as e:  # ImageError too: this row, not the batch
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
            inputs = [prepared[i].array for i in ok]  # type: ignore[union-attr]
            targets = None if self.target is None else np.full((len(ok), 1), self.target)
            explanation, maps = self.explainer.run(
                loaded, inputs, self.methods, targets, self.smoothing, len(ok)
            )
            for j, i in enumerate(ok):
                best = predictions(explanation.logits[j], explanation.targets[j], self.labels)[0]
                out["class"][i], out["label"][i], out["probability"][i] = (
                    best.index, best.label, best.probability
                )  # fmt: skip
        if self.return_maps:
            out |= self._columns(rows, ok, maps)
        if self.job is not None:
            out["files"] = self._write(paths, prepared, ok, explanation, maps, errors)
        out["error"] = np.array(errors, dtype=object)
        return out

    def _columns(self, rows: int, ok: list[int], maps: dict[str, np.ndarray]) -> Batch:
        """One map column per method, zeros where a row failed: (rows, H, W, 3) for gradients,
        (rows, H, W) for Grad-CAM."""
        size = self.explainer.info.input_size
        shaped = image_maps(maps) if ok else {}
        columns = {}
        for method in self.methods:
            shape = (size, size) if method == "gradcam" else (size, size, 3)
            shape = shaped[method].shape[1:] if ok else shape
            column = np.zeros((rows, *shape), np.float32)
            if ok:
                column[ok] = shaped[method]
            columns[method] = column
        return columns

    def _prepare(self, batch: Batch, i: int, keep_photo: bool) -> Prepared:
        if "path" in batch:
            source = checking.Source(str(batch["path"][i]), path=Path(str(batch["path"][i])))
        else:
            source = checking.one(batch["image"][i], f"image[{i}]")
        return self.explainer.prepare(source, self.resize, keep_photo)

    def _job(self, out: Path, formats: tuple[str, ...]) -> Job:
        """What `gbp explain -o out --format ...` would plan, so the same files and records
        are written."""
        request = self.explainer.request
        if request.is_object or self.explainer.scaling or self.explainer.preprocess:
            raise ArgumentError(
                "out= writes the files gbp explain writes, whose records name the model and "
                "its weights file: pass the model by name (save it first) and its "
                "normalization as normalize=, not as an object, mean=/std= or preprocess="
            )
        info = self.explainer.info
        settings = _model_settings(request.backend, request.spec, request.weights, info.precision)
        outputs = Outputs(self.methods, formats, out, self.resize, Rendering(), self.smoothing)
        planner = Planner(outputs, settings, self.target, 1, info, self.overwrite, drawing=DRAWING)
        return Job(planner, self.labels, self.resize, self.target, 1)

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
        store = Store(self.overwrite, lambda _: None, root=self.job.planner.outputs.out_dir)
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


def _model_settings(backend: str, network: ModelSpec, weights: WeightsSpec, precision: str) -> dict:
    """What `gbp explain` records about the model, so a later `gbp explain` keeps these files."""
    from gbp_cli.outputs.model_record import model_record

    return model_record(backend, network, weights, precision)
