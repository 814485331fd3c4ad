"""The `gbp` command line. It parses and wires; the work happens in the modules it calls.

Exit codes: 0 all inputs done, 1 some failed, 2 usage or configuration error, 130 interrupted
(143 on SIGTERM), 141 when the reader of stdout went away (as `cat` does).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from gbp_cli.cli import options
from gbp_cli.errors import GbpError
from gbp_cli.version import __version__


class GbpCommandError(click.ClickException):
    """A usage or configuration problem shown as one `gbp: …` line, exit 2."""

    exit_code = 2

    def show(self, file=None) -> None:  # type: ignore[override]
        click.echo(f"gbp: {self.message}", err=True)


class StdoutClosed(Exception):
    """The reader of stdout went away. Not an OSError, so Click does not turn it into exit 1."""


class Group(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        from gbp_cli.backends.base import BackendError

        try:
            return super().invoke(ctx)
        except (GbpError, BackendError) as e:
            raise GbpCommandError(str(e)) from None
        except BrokenPipeError:
            raise StdoutClosed from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gbp", message="%(prog)s %(version)s")
def cli() -> None:
    """Saliency maps (Guided Backpropagation, vanilla gradient, DeconvNet, Grad-CAM) for image
    classifiers, from PyTorch or TensorFlow.

    Caveat: guided-backprop and DeconvNet maps largely show the photo's edges and barely depend on
    the class or the model's top layers (Adebayo et al. 2018). Read them as "what the network can
    see", not as proof of what it decided on.

    Exit status: 0 done, 1 some inputs failed, 2 usage error, 130 interrupted, 141 stdout closed.
    """


@cli.command()
@options.compose(
    options.INPUTS,
    options.BACKEND,
    options.MODEL_OPTIONS,
    options.METHOD,
    options.TARGET,
    options.TOP_K,
    options.WEIGHTS,
    options.LABELS,
    options.OUT,
    options.FORMAT,
    options.RESIZE,
    options.BATCH_SIZE,
    options.DEVICE,
    options.OVERWRITE,
    options.NULL,
    options.CLIP,
    options.CMAP,
    options.ALPHA,
    options.SMOOTH,
    options.NOISE,
    options.JSON,
    options.SHARD,
    options.DRY_RUN,
    options.REPORT,
    options.QUIET,
    options.PRECISION,
    options.TF_MODE,
    options.ENGINE,
    options.RAY_ADDRESS,
    options.WORKERS,
    options.GPUS_PER_WORKER,
    options.CPUS_PER_WORKER,
)
@click.pass_context
def explain(ctx: click.Context, inputs: tuple[str, ...], **chosen) -> None:
    """Write saliency maps for each INPUT (image files, folders, or '-' for paths on stdin)."""
    from gbp_cli.cli.explain import explain_command

    ctx.exit(1 if explain_command(inputs, **chosen) else 0)


@cli.command()
@options.compose(
    options.INPUTS,
    options.MODEL_OPTIONS,
    options.WEIGHTS,
    options.METHOD,
    options.RESIZE,
    options.BATCH_SIZE,
    options.DEVICE,
    options.SMOOTH,
    options.NOISE,
    options.PARITY_PRECISION,
)
@click.pass_context
def parity(ctx: click.Context, inputs: tuple[str, ...], **chosen) -> None:
    """Explain each image with both backends and the same weights; report how far apart they are.

    Prints logits' max difference and each map's relative L2 error; exits 1 if any is over
    tolerance (logits 1e-3; vanilla 5e-3; every other method 1e-3). A line over tolerance also
    says how far each framework's float32 map lies from the float64 one: where float32 itself
    moves a map that far (a deep network's ReLU gates at x ≈ 0 flip with the last bit), compare
    with --precision fp64, where the same network agrees within 1e-9.
    """
    from gbp_cli.cli.parity import parity_command

    ctx.exit(1 if parity_command(inputs, **chosen) else 0)


@cli.command()
@options.compose(
    options.INPUTS,
    options.BACKEND,
    options.MODEL_OPTIONS,
    click.option(
        "--method",
        "methods",
        type=click.Choice(options.GRADIENT_CHOICES),
        multiple=True,
        help="Repeatable.  [default: guided, vanilla and deconv]",
    ),
    options.WEIGHTS,
    click.option("-o", "--out", default="sanity", show_default=True, metavar="DIR"),
    click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="One JSON object per image, method and randomization stage on stdout.",
    ),
    options.RESIZE,
    options.DEVICE,
    options.BATCH_SIZE,
    options.OVERWRITE,
    options.QUIET,
    options.REPORT,
)
@click.pass_context
def sanity(ctx: click.Context, inputs: tuple[str, ...], **chosen) -> None:
    """Does the map depend on the model? Cascading randomization and a class check.

    Re-initialises the network from the top, stage by stage (for DenseNet: classifier, block 4,
    transition 3, …, stem), and compares each method's map with the original: Spearman rank
    correlation with and without absolute values, SSIM, and the Pearson correlation of HOG
    features (Adebayo et al. 2018). Also compares the top-1 class's map with the least likely
    class's, and warns when they are nearly the same. Writes OUT/<name>.sanity.png (similarity
    against depth) and OUT/<name>.sanity-maps.png (the maps); prints a table, or JSON records.
    """
    from gbp_cli.cli.sanity import sanity_command

    ctx.exit(1 if sanity_command(inputs, **chosen) else 0)


@cli.command()
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace DESTINATION if it exists.")
def convert(source: Path, destination: Path, overwrite: bool) -> None:
    """Convert weights between a torchvision .pth and a Keras .weights.h5 (either way)."""
    from gbp_cli.cli.convert import convert_command

    summary = convert_command(source, destination, overwrite)
    click.echo(f"{source}\t{destination}\t{summary}")


@cli.command()
@click.argument("names", nargs=-1)
@click.option("--backend", type=click.Choice(["torch", "tf"]), help="Only this backend's models.")
@options.JSON
def models(names: tuple[str, ...], backend: str | None, as_json: bool) -> None:
    """What each installed backend can explain: name, input size, activations overridden and
    others present, the Grad-CAM layer, the same network in the other backend (twin), and the
    weights `--weights imagenet` loads for that name in that backend.

    Without NAMES it lists every model: torchvision's are built on PyTorch's meta device and
    probed (seconds, not minutes; networks over 200M parameters only when named); TensorFlow's
    take a second or more each to build, so they are probed when named.
    """
    from gbp_cli.cli.models import models_command

    models_command(names, backend, as_json)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so temp files are removed on the way out."""
    raise SystemExit(128 + signum)


def _quiet_stdout() -> None:
    """After the reader left, point stdout at /dev/null so the final flush cannot complain."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: list[str] | None = None) -> None:
    """Console entry point: the exit codes above, and no tracebacks for users."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = cli.main(args=argv, prog_name="gbp", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("gbp: interrupted", err=True)
        code = 130
    except click.ClickException as e:
        e.show()
        code = e.exit_code
    except (StdoutClosed, BrokenPipeError):  # `gbp … | head`: end quietly, as `cat` would
        _quiet_stdout()
        code = 128 + signal.SIGPIPE
    sys.exit(code or 0)
