"""`gbp sanity`: does the map depend on the model? (Adebayo et al. 2018, Nie et al. 2018)

Cascading randomization re-initialises DenseNet stage by stage from the top — classifier, block 4,
transition 3, … down to the stem — and compares each method's map with the original one. The
random values come from the shared, seeded initialisation (backends/densenet.py), so both backends
randomise identically. A class check compares the top-1 class's map with the least likely one's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import numpy as np

from backends import Backend, WeightsSpec, open_backend
from backends.densenet import BLOCKS, random_weights
from gbp_cli.app import announce, unique
from gbp_cli.batching import batched
from gbp_cli.errors import GbpError, InputError
from gbp_cli.inputs import discover
from gbp_cli.methods import explain_maps
from gbp_cli.output import output_stem, png_bytes, write_atomic
from gbp_cli.preprocess import prepare

STAGES = (
    "classifier",
    "block4",
    "transition3",
    "block3",
    "transition2",
    "block2",
    "transition1",
    "block1",
    "stem",
)
PREFIXES = {
    "classifier": ("classifier.",),
    "block4": ("features.denseblock4.", "features.norm5."),
    "transition3": ("features.transition3.",),
    "block3": ("features.denseblock3.",),
    "transition2": ("features.transition2.",),
    "block2": ("features.denseblock2.",),
    "transition1": ("features.transition1.",),
    "block1": ("features.denseblock1.",),
    "stem": ("features.conv0.", "features.norm0."),
}
CLASS_CHECK = "least-likely class"
NEARLY_THE_SAME = 0.9  # Spearman (|map|) above which two maps say the same thing
RANDOMIZATION_SEED = 1


@dataclass(frozen=True)
class Similarity:
    """Adebayo et al.'s four measures between an original map and another."""

    spearman_abs: float  # rank correlation of |map|
    spearman: float  # rank correlation of the signed map
    ssim: float  # structural similarity of |map|, each scaled to [0, 1]
    hog_pearson: float  # Pearson correlation of the HOG features of |map|


def _metrics():
    try:
        from scipy import stats
        from skimage.feature import hog
        from skimage.metrics import structural_similarity
    except ImportError:
        raise GbpError(
            "gbp sanity needs scipy and scikit-image: pip install 'gbp[sanity]'"
        ) from None
    return stats, hog, structural_similarity


def _planes(saliency: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(signed, absolute) 2-D maps: the channel sum, and max |·| scaled by its 99th percentile."""
    signed = saliency.sum(axis=-1, dtype=np.float64)
    magnitude = np.abs(saliency).max(axis=-1).astype(np.float64)
    top = np.percentile(magnitude, 99) or magnitude.max() or 1.0
    return signed, np.clip(magnitude / top, 0, 1)


def similarity(original: np.ndarray, other: np.ndarray) -> Similarity:
    stats, hog, structural_similarity = _metrics()
    signed_a, abs_a = _planes(original)
    signed_b, abs_b = _planes(other)
    features = [hog(m, pixels_per_cell=(16, 16), cells_per_block=(2, 2)) for m in (abs_a, abs_b)]

    def safe(value: float) -> float:
        return 0.0 if not np.isfinite(value) else float(value)

    return Similarity(
        spearman_abs=safe(stats.spearmanr(abs_a.ravel(), abs_b.ravel())[0]),
        spearman=safe(stats.spearmanr(signed_a.ravel(), signed_b.ravel())[0]),
        ssim=safe(structural_similarity(abs_a, abs_b, data_range=1.0)),
        hog_pearson=safe(stats.pearsonr(*features)[0]) if features[0].std() > 0 else 0.0,
    )


@dataclass(frozen=True)
class Record:
    """One (image, method, stage) comparison."""

    image: str
    method: str
    stage: str  # the deepest stage randomized so far, or CLASS_CHECK
    similarity: Similarity

    def fields(self) -> dict[str, object]:
        return {
            "input": self.image,
            "method": self.method,
            "stage": self.stage,
            **asdict(self.similarity),
        }


def cascade(
    backend: Backend, names: list[str], images: np.ndarray, methods: tuple[str, ...]
) -> tuple[list[Record], dict[str, dict[str, np.ndarray]]]:
    """Every comparison, and the maps themselves per stage ('original' first) for the grid."""
    arch = backend.info.model
    if arch not in BLOCKS:
        raise GbpError(f"gbp sanity randomizes DenseNet stages; {arch} is not a DenseNet")
    original = backend.state()
    clean, base = explain_maps(backend, images, methods)
    maps = {"original": base}
    random = random_weights(arch, backend.info.num_classes, RANDOMIZATION_SEED)
    state = dict(original)
    try:
        for stage in STAGES:
            for key in state:
                if key.startswith(PREFIXES[stage]):
                    state[key] = random[key]
            backend.load_state(state)
            maps[stage] = explain_maps(backend, images, methods, clean.targets)[1]
    finally:
        backend.load_state(original)
    least = clean.logits.argmin(axis=1)[:, None]
    maps[CLASS_CHECK] = explain_maps(backend, images, methods, least)[1]
    records = [
        Record(name, method, stage, similarity(base[method][i, 0], maps[stage][method][i, 0]))
        for i, name in enumerate(names)
        for method in methods
        for stage in (*STAGES, CLASS_CHECK)
    ]
    return records, maps


def table_line(record: Record) -> str:
    s = record.similarity
    return (
        f"{record.image}\t{record.method}\t{record.stage}\tspearman_abs {s.spearman_abs:.3f}\t"
        f"spearman {s.spearman:.3f}\tssim {s.ssim:.3f}\thog_pearson {s.hog_pearson:.3f}"
    )


def sanity_command(
    inputs: tuple[str, ...],
    *,
    backend: str,
    methods: tuple[str, ...],
    weights: str,
    out: str,
    as_json: bool,
    resize: str,
    device: str,
    batch_size: int,
    overwrite: bool,
) -> int:
    """Run `gbp sanity`; returns the number of inputs that failed."""
    from gbp_cli.sanity_plots import map_grid, similarity_plot  # imports this module

    _metrics()  # fail before loading a framework if scipy or scikit-image is missing
    spec = WeightsSpec.parse(weights)
    if spec.kind == "file" and not (spec.path and spec.path.is_file()):
        raise GbpError(f"--weights {weights}: no such file (expected imagenet, random or a path)")
    methods = unique(methods, "guided") if methods else ("guided", "vanilla", "deconv")
    model = open_backend(backend, spec, device)
    announce(model)
    note = " — RANDOM weights (untrained network)" if spec.is_random else ""
    failures = 0
    for batch in batched(discover(inputs, skip=Path(out)), batch_size):
        ready = []
        for source in batch:
            try:
                ready.append((source, prepare(source.path, resize).array))
            except InputError as e:
                click.echo(f"gbp: {source.name}: {e}", err=True)
                failures += 1
        if not ready:
            continue
        names = [source.name for source, _ in ready]
        records, maps = cascade(model, names, np.stack([a for _, a in ready]), methods)
        for i, (source, _) in enumerate(ready):
            mine = [r for r in records if r.image == source.name]
            title = f"{source.name}: {model.info.backend}, {model.info.weights.describe()}{note}"
            stem = output_stem(Path(out), source.relative)
            for suffix, picture in (
                (".sanity.png", similarity_plot(mine, title)),
                (".sanity-maps.png", map_grid(maps, i, title)),
            ):
                tags = {"Software": "gbp sanity", "gbp:weights": model.info.weights.describe()}
                target = stem.with_name(stem.name + suffix)
                write_atomic(target, png_bytes(np.asarray(picture), tags), overwrite=overwrite)
            for record in mine:
                if as_json:
                    extra = {"backend": model.info.backend, "weights": spec.describe()}
                    click.echo(json.dumps({**record.fields(), **extra}, ensure_ascii=False))
                else:
                    click.echo(table_line(record))
                if (
                    record.stage == CLASS_CHECK
                    and record.similarity.spearman_abs >= NEARLY_THE_SAME
                ):
                    click.echo(
                        f"gbp: WARNING: {record.image}: the {record.method} map of the least "
                        f"likely class is nearly the one of the top-1 class (Spearman "
                        f"{record.similarity.spearman_abs:.2f}): it shows the image, not the class",
                        err=True,
                    )
    return failures
