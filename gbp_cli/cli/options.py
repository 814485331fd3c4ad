"""The command line's options, defined once and shared by the commands that take them."""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NoReturn

import click

from gbp_cli.backends import WeightsSpec
from gbp_cli.backends.base import NORMALIZATIONS
from gbp_cli.backends.rules import GRADIENT_METHODS, METHODS, OTHER_ACTIVATIONS
from gbp_cli.faithfulness import BASELINES, METRICS
from gbp_cli.settings import Rendering, Smoothing

FORMAT_CHOICES = ("color", "gray", "heatmap", "overlay", "pos", "neg", "panel", "npy")
METHOD_HELP = (
    "Repeatable. "
    + "; ".join(f"{m.name}: {m.summary}" for m in METHODS.values())
    + ".  [default: guided]"
)


class OptionError(click.BadParameter):
    """A value an option's type refused: one `gbp: …` line on stderr and exit 2, as every usage
    problem (Click's own checks, like a --method not in the list, are one line too: main's
    usage_line)."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"gbp: {self.message}", err=True)


def refuse(message: str, param: click.Parameter | None, ctx: click.Context | None) -> NoReturn:
    """A type's refusal of a value, as Click's usage error (exit 2) shown in one line."""
    raise OptionError(message, ctx, param)


class Finite(click.FloatRange):
    """A number in a range, and a number at all: NaN passes every comparison a range makes, and
    an infinity is no setting either."""

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            refuse(f"--{param.name.replace('_', '-') if param else 'value'} {value}: "
                   "expected a finite number", param, ctx)  # fmt: skip
        return number


class Weights(click.ParamType):
    """`--weights`: imagenet, random or an existing file, checked before any framework loads."""

    name = "weights"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> WeightsSpec:
        if isinstance(value, WeightsSpec):
            return value
        spec = WeightsSpec.parse(str(value))
        if spec.kind == "file" and not (spec.path and spec.path.is_file()):
            refuse(
                f"--weights {value}: no such file (expected imagenet, random or a path)", param, ctx
            )
        return spec


class Shard(click.ParamType):
    """`--shard I/N` with 1 ≤ I ≤ N, as (I, N): this job's share of the inputs, counted from 1
    like GNU split's `-n K/N` and SLURM's `--array=1-N`."""

    name = "shard"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        try:
            index, count = (int(part) for part in str(value).split("/"))
        except ValueError:
            refuse(f"--shard {value!r}: expected I/N, e.g. 1/4 (I counts from 1)", param, ctx)
        if not 1 <= index <= count:
            refuse(f"--shard {value!r}: I must be in 1..N (shares count from 1)", param, ctx)
        return index, count


class Colormap(click.ParamType):
    """`--cmap`: a matplotlib colormap; matplotlib is imported only for a name other than the
    default."""

    name = "cmap"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        name = str(value)
        if name == Rendering.cmap:
            return name
        import matplotlib

        if name not in matplotlib.colormaps:
            known = sorted(matplotlib.colormaps)
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            some = ", ".join(c for c in known if not c.endswith("_r"))[:300]
            refuse(
                f"--cmap {name!r} is not a matplotlib colormap; {hint}known: {some}, …", param, ctx
            )
        return name


class Target(click.ParamType):
    """`--target`: a class index or a (prefix of a) class name, stripped. What needs no class
    list is checked here; the name is resolved once the classes are known (checks.early_target,
    or after the model loads for a checkpoint with its own classes)."""

    name = "target"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        text = str(value).strip()
        if not text:
            refuse(f"--target {value!r}: expected a class index or a class name", param, ctx)
        if text.startswith("-") and text[1:].isdigit():
            refuse(f"--target {text} is out of range: class indices count from 0", param, ctx)
        return text


def debug_asked() -> bool:
    """GBP_DEBUG set to anything but nothing, 0, false, no or off: read leniently, so that no
    value of it can make every command a usage error."""
    return os.environ.get("GBP_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off")


DEBUG = click.option(
    "--debug",
    is_flag=True,
    default=debug_asked,
    help="On an error, print its full traceback (with its causes) to stderr before its one "
    "line. Also GBP_DEBUG=1.",
)

INPUTS = click.argument("inputs", nargs=-1, required=True)

MODEL = click.option(
    "--model",
    default="densenet201",
    show_default=True,
    metavar="NAME",
    help="The classifier: a torchvision name (`gbp models` lists what each backend has), "
    "keras:NAME (a Keras application), your own package.module:factory (torch) or a .keras "
    "file (tf).",
)
INPUT_SIZE = click.option(
    "--input-size",
    type=click.IntRange(min=8),
    help="Your own model's input square, in pixels.  [default: 224]",
)
NORMALIZE = click.option(
    "--normalize",
    type=click.Choice(tuple(NORMALIZATIONS)),
    help="Your own model's pixel scaling: ImageNet mean/std, caffe (BGR, mean subtracted), "
    "tf ([-1, 1]) or none ([0, 1]).  [default: imagenet]",
)
CAM_LAYER = click.option(
    "--cam-layer",
    metavar="NAME",
    help="Grad-CAM's layer: a torch module path or a Keras layer name.  "
    "[default: the last spatial feature map]",
)
OTHER_ACTIVATIONS = click.option(
    "--other-activations",
    type=click.Choice(OTHER_ACTIVATIONS),
    default="refuse",
    show_default=True,
    help="Activations with no guided or deconv rule (SiLU, GELU, …): refuse those methods, or "
    "let these keep their ordinary gradient (every output then says how many).",
)


class BackendName(click.ParamType):
    """torch, tf, or the dotted path of a module of your own that has a `load` function."""

    name = "backend"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        text = str(value)
        dotted = all(part.isidentifier() for part in text.split("."))
        if text in ("torch", "tf") or ("." in text and dotted):
            return text
        refuse(
            f"--backend {text!r}: expected torch, tf or package.module (a backend of your own)",
            param,
            ctx,
        )


# Options several commands take with other choices or words are made by one function each, so
# that a flag is spelled, stored and parsed one way wherever it appears.


def _backend(kind: click.ParamType, help: str, **settings: Any) -> Callable:
    return click.option("--backend", type=kind, help=help, **settings)


BACKEND = _backend(
    BackendName(),
    "The framework; or package.module, a backend of your own (a module whose load() "
    "returns a gbp_cli.backends.Backend).",
    default="torch",
    show_default=True,
    metavar="torch|tf|MODULE",
)
CATALOG_BACKEND = _backend(click.Choice(["torch", "tf"]), "Only this backend's models.")


def _method(choices: tuple[str, ...], help: str) -> Callable:
    return click.option("--method", "methods", type=click.Choice(choices), multiple=True, help=help)


METHOD = _method(tuple(METHODS), METHOD_HELP)
GRADIENT_METHOD = _method(GRADIENT_METHODS, "Repeatable.  [default: guided, vanilla and deconv]")

TARGET = click.option(
    "--target",
    type=Target(),
    metavar="TEXT",
    help="Class to explain: an index or a (prefix of a) name. Default: top-1.",
)

TOP_K = click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Explain each of the K most likely classes (index and label join the file name: "
    "x.281-tabby.guided.color.png).",
)

WEIGHTS = click.option(
    "--weights",
    type=Weights(),
    default="imagenet",
    show_default=True,
    metavar="imagenet|random|PATH",
    help="ImageNet from the framework's cache, seeded random (untrained!), or a state_dict.",
)

LABELS = click.option(
    "--labels",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Class names, one per line, for a checkpoint with its own classes.",
)


def _out(default: str, metavar: str, help: str | None = None) -> Callable:
    return click.option(
        "-o", "--out", default=default, show_default=True, metavar=metavar, help=help
    )


OUT = _out(
    "saliency",
    "DIR|-",
    "Output folder, mirroring inputs' paths; '-' writes a single image's one file to stdout.",
)
SANITY_OUT = _out("sanity", "DIR")

FORMAT = click.option(
    "--format",
    "formats",
    type=click.Choice(FORMAT_CHOICES),
    multiple=True,
    help="Repeatable. color: the signed map (blog style); gray: max |map| over channels; heatmap: "
    "gray in colour; overlay: heatmap over the photo; pos/neg: positive/negative saliency; panel: "
    "photo and every method side by side (a row per class); npy: the raw float32 map at the "
    "model's input size.  [default: color; overlay for gradcam]",
)

RESIZE = click.option(
    "--resize",
    type=click.Choice(["squash", "crop"]),
    default="squash",
    show_default=True,
    help="squash: the whole photo to 224×224; crop: torchvision's 256 resize + centre crop.",
)

BATCH_SIZE = click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)

DEVICE = click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)


def _overwrite(help: str) -> Callable:
    return click.option("--overwrite", is_flag=True, help=help)


OVERWRITE = _overwrite("Redo outputs that already exist (default: keep them).")
CONVERT_OVERWRITE = _overwrite("Replace DESTINATION if it exists.")

NULL = click.option(
    "-0", "--null", is_flag=True, help="With '-', paths on stdin are NUL-separated."
)

CLIP = click.option(
    "--clip",
    type=Finite(50, 100),
    default=Rendering.clip,
    show_default=True,
    help="Percentile of |map| drawn at full strength in gray, heatmap and overlay.",
)

CMAP = click.option(
    "--cmap",
    type=Colormap(),
    metavar="TEXT",
    default=Rendering.cmap,
    show_default=True,
    help="Matplotlib colormap.",
)

ALPHA = click.option(
    "--alpha",
    type=Finite(0, 1),
    default=Rendering.alpha,
    show_default=True,
    help="Overlay strength where the map is strongest.",
)

MAX_SIZE = click.option(
    "--max-size",
    type=click.IntRange(min=0),
    default=Rendering.max_size,
    show_default=True,
    metavar="PIXELS",
    help="Pictures' longer side, in the photo's aspect; 0: the photo's own size (npy stays the "
    "raw map at the model's input size).",
)

SMOOTH = click.option(
    "--smooth",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help=f"SmoothGrad: average any method over N noisy copies (the paper uses "
    f"{Smoothing.samples}–50).",
)

NOISE = click.option(
    "--noise",
    type=Finite(min=0, min_open=True),
    default=Smoothing.noise,
    show_default=True,
    metavar="SIGMA",
    help="SmoothGrad noise, as a fraction of each image's input range.",
)


def _json(help: str) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help=help)


JSON = _json("One JSON object per input on stdout.")
SANITY_JSON = _json("One JSON object per image, method and randomization stage on stdout.")

SHARD = click.option(
    "--shard",
    type=Shard(),
    metavar="I/N",
    help="Do only share I of N (I counts from 1, as in SLURM's --array=1-N), for parallel jobs.",
)

DRY_RUN = click.option(
    "--dry-run",
    is_flag=True,
    help="List what each input would give (write, kept, refused, failed) without a model.",
)

REPORT = click.option(
    "--report",
    is_flag=True,
    help="Also write OUT/index.html, a page of every input and its maps (and OUT/index.json).",
)

ENGINE = click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: this process; ray: a Ray Data job (pip install 'gbp-saliency[ray]'), on this "
    "machine's cores or, with --ray-address, a cluster.",
)

RAY_ADDRESS = click.option(
    "--ray-address",
    metavar="ADDRESS",
    help="With --engine ray: the Ray cluster to join ('auto': the one this runs on; -o must be a "
    "folder every machine shares).  [default: start Ray on this machine]",
)

WORKERS = click.option(
    "--workers",
    type=click.IntRange(min=1),
    metavar="N",
    help="With --engine ray: model workers (each loads the model once).  "
    "[default: one per --gpus-per-worker GPUs, else one per machine]",
)

GPUS_PER_WORKER = click.option(
    "--gpus-per-worker",
    type=Finite(min=0),
    default=0,
    show_default=True,
    metavar="G",
    help="With --engine ray: GPUs each model worker reserves (fractions share a GPU).",
)

CPUS_PER_WORKER = click.option(
    "--cpus-per-worker",
    type=Finite(min=0, min_open=True),
    default=1,
    show_default=True,
    metavar="C",
    help="With --engine ray: CPUs each model worker reserves (on a cluster, its threads).",
)

QUIET = click.option("-q", "--quiet", is_flag=True, help="No progress bar and no closing summary.")

# What each precision other than fp32 is for: `gbp explain` offers bf16, `gbp parity` fp64.
PRECISION_HELP = {
    "bf16": "bf16 computes in bfloat16: about twice as fast on CPUs with bf16 units (torch), "
    "maps correlate with fp32's at about 0.98.",
    "fp64": "fp64 runs both backends in float64, where the same network agrees to 1e-9: it "
    "tells a different network from float32's rounding.",
}


def _precision(other: str) -> Callable:
    return click.option(
        "--precision",
        type=click.Choice(["fp32", other]),
        default="fp32",
        show_default=True,
        help=PRECISION_HELP[other],
    )


PRECISION = _precision("bf16")
PARITY_PRECISION = _precision("fp64")
TF_MODE = click.option(
    "--tf-mode",
    type=click.Choice(["auto", "eager", "graph", "xla"]),
    default="auto",
    show_default=True,
    help="TensorFlow execution: auto picks eager for a few photos, a compiled graph for more.",
)


def compose(*options: Callable) -> Callable:
    """Apply several option decorators in the order written."""

    def decorate(function: Callable) -> Callable:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


MODEL_OPTIONS = compose(MODEL, INPUT_SIZE, NORMALIZE, CAM_LAYER, OTHER_ACTIVATIONS)

MODEL_NAMES = click.argument("names", nargs=-1)
SOURCE = click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
DESTINATION = click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))

# `gbp evaluate`: how faithful each map is to the model.
EVALUATE_METHOD = _method(
    tuple(METHODS),
    METHOD_HELP.rsplit("  [default:", 1)[0] + "  [default: guided, vanilla and gradcam]",
)
METRIC = click.option(
    "--metric",
    "metrics",
    type=click.Choice(METRICS),
    multiple=True,
    help="Repeatable. deletion: the class probability as the most relevant pixels are removed "
    "(set to the normalisation's mean colour); insertion: as they are put back into a blurred "
    "photo (both Petsiuk et al. 2018); road: most- and least-relevant-first removal with noisy "
    "linear imputation (Rong et al. 2022).  [default: all three]",
)
STEPS = click.option(
    "--steps",
    type=click.IntRange(min=2),
    default=20,
    show_default=True,
    metavar="N",
    help="Steps of each curve: step k of N removes k/N of the pixels (ROAD stops at (N-1)/N, "
    "where pixels are left to impute from).",
)
BASELINE = click.option(
    "--baseline",
    "baselines",
    type=click.Choice((*BASELINES, "none")),
    multiple=True,
    help="Repeatable. Maps that know nothing of the model, scored beside the methods: random "
    "(seeded), edges (the Sobel magnitude of the photo); none for neither.  "
    "[default: random and edges]",
)
SEED = click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seeds the random map, the order of equally relevant pixels and ROAD's noise.",
)
EVALUATE_BATCH_SIZE = click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Perturbed copies per forward pass, across steps, maps and photos (a GPU takes more); "
    "photos are explained N/8 at a time (at least one).",
)
EVALUATE_OUT = _out(
    "evaluate",
    "DIR",
    "Folder for the plot of the mean curves (evaluate.png) and, with --report, the page.",
)
EVALUATE_JSON = _json(
    "One JSON object per input, map and metric, with its curves; then one per map and score "
    "over the inputs."
)
