"""The command line's options, defined once and shared by the commands that take them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from gbp_cli.backends.rules import GRADIENT_METHODS, METHODS, OTHER_ACTIVATIONS
from gbp_cli.settings import Rendering, Smoothing

GRADIENT_CHOICES = GRADIENT_METHODS
FORMAT_CHOICES = ("color", "gray", "heatmap", "overlay", "pos", "neg", "panel", "npy")
METHOD_HELP = (
    "Repeatable. "
    + "; ".join(f"{m.name}: {m.summary}" for m in METHODS.values())
    + ".  [default: guided]"
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
    type=click.Choice(["imagenet", "caffe", "tf", "none"]),
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

    def convert(self, value: object, param: object, ctx: object) -> str:
        text = str(value)
        dotted = all(part.isidentifier() for part in text.split("."))
        if text in ("torch", "tf") or ("." in text and dotted):
            return text
        self.fail(f"{text!r} is not torch, tf or a package.module of your own", param, ctx)  # type: ignore[arg-type]


BACKEND = click.option(
    "--backend",
    type=BackendName(),
    default="torch",
    show_default=True,
    metavar="torch|tf|MODULE",
    help="The framework; or package.module, a backend of your own (a module whose load() "
    "returns a gbp_cli.backends.Backend).",
)

METHOD = click.option(
    "--method",
    "methods",
    type=click.Choice(tuple(METHODS)),
    multiple=True,
    help=METHOD_HELP,
)

TARGET = click.option(
    "--target", help="Class to explain: an index or a (prefix of a) name. Default: top-1."
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

OUT = click.option(
    "-o",
    "--out",
    default="saliency",
    show_default=True,
    metavar="DIR|-",
    help="Output folder, mirroring inputs' paths; '-' writes a single image's one file to stdout.",
)

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

OVERWRITE = click.option(
    "--overwrite", is_flag=True, help="Redo outputs that already exist (default: keep them)."
)

NULL = click.option(
    "-0", "--null", is_flag=True, help="With '-', paths on stdin are NUL-separated."
)

CLIP = click.option(
    "--clip",
    type=click.FloatRange(50, 100),
    default=Rendering.clip,
    show_default=True,
    help="Percentile of |map| drawn at full strength in gray, heatmap and overlay.",
)

CMAP = click.option(
    "--cmap", default=Rendering.cmap, show_default=True, help="Matplotlib colormap."
)

ALPHA = click.option(
    "--alpha",
    type=click.FloatRange(0, 1),
    default=Rendering.alpha,
    show_default=True,
    help="Overlay strength where the map is strongest.",
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
    type=click.FloatRange(min=0, min_open=True),
    default=Smoothing.noise,
    show_default=True,
    metavar="SIGMA",
    help="SmoothGrad noise, as a fraction of each image's input range.",
)

JSON = click.option("--json", "as_json", is_flag=True, help="One JSON object per input on stdout.")

SHARD = click.option(
    "--shard",
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
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    metavar="G",
    help="With --engine ray: GPUs each model worker reserves (fractions share a GPU).",
)

CPUS_PER_WORKER = click.option(
    "--cpus-per-worker",
    type=click.FloatRange(min=0, min_open=True),
    default=1,
    show_default=True,
    metavar="C",
    help="With --engine ray: CPUs each model worker reserves (on a cluster, its threads).",
)

QUIET = click.option("-q", "--quiet", is_flag=True, help="No progress bar and no closing summary.")

PRECISION = click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default="fp32",
    show_default=True,
    help="bf16 computes in bfloat16: about twice as fast on CPUs with bf16 units (torch), maps "
    "correlate with fp32's at about 0.98.",
)
PARITY_PRECISION = click.option(
    "--precision",
    type=click.Choice(["fp32", "fp64"]),
    default="fp32",
    show_default=True,
    help="fp64 runs both backends in float64, where the same network agrees to 1e-9: it tells "
    "a different network from float32's rounding.",
)
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
