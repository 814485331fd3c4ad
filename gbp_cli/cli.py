"""The `gbp` command line. It parses and wires; the work happens in the modules it calls."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from gbp_cli import __version__, options
from gbp_cli.errors import GbpError


class GbpCommandError(click.ClickException):
    """A GbpError shown as one `gbp: …` line, exit 2."""

    exit_code = 2

    def show(self, file=None) -> None:  # type: ignore[override]
        click.echo(f"gbp: {self.message}", err=True)


class Group(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except GbpError as e:
            raise GbpCommandError(str(e)) from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gbp", message="%(prog)s %(version)s")
def cli() -> None:
    """Saliency maps (Guided Backpropagation, vanilla gradient, DeconvNet) for DenseNet201,
    from PyTorch or TensorFlow.

    Caveat: guided-backprop and DeconvNet maps largely show the photo's edges and barely depend on
    the class or the model's top layers (Adebayo et al. 2018). Read them as "what the network can
    see", not as proof of what it decided on.
    """


@cli.command()
@options.compose(
    options.INPUTS,
    options.BACKEND,
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
    options.QUIET,
    options.PRECISION,
    options.TF_MODE,
)
@click.pass_context
def explain(ctx: click.Context, inputs: tuple[str, ...], **options) -> None:
    """Write saliency maps for each INPUT (image files, folders, or '-' for paths on stdin)."""
    from gbp_cli.app import explain_command

    failures = explain_command(inputs, **options)
    ctx.exit(1 if failures else 0)


@cli.command()
@options.compose(
    options.INPUTS,
    options.WEIGHTS,
    options.METHOD,
    options.RESIZE,
    options.BATCH_SIZE,
    options.DEVICE,
    options.SMOOTH,
    options.NOISE,
)
@click.pass_context
def parity(ctx: click.Context, inputs: tuple[str, ...], **options) -> None:
    """Explain each image with both backends and the same weights; report how far apart they are.

    Prints logits' max difference and each map's relative L2 error; exits 1 if any is over
    tolerance (logits 1e-3; vanilla 5e-3; every other method 1e-3).
    """
    from gbp_cli.parity import parity_command

    ctx.exit(1 if parity_command(inputs, **options) else 0)


@cli.command()
@options.compose(
    options.INPUTS,
    options.BACKEND,
    options.METHOD,
    options.WEIGHTS,
    click.option("-o", "--out", default="sanity", show_default=True, metavar="DIR"),
    options.JSON,
    options.RESIZE,
    options.DEVICE,
    options.BATCH_SIZE,
    options.OVERWRITE,
)
@click.pass_context
def sanity(ctx: click.Context, inputs: tuple[str, ...], **options_) -> None:
    """Does the map depend on the model? Cascading randomization and a class check.

    Re-initialises DenseNet from the top, stage by stage (classifier, block 4, transition 3, …,
    stem), and compares each method's map with the original: Spearman rank correlation with and
    without absolute values, SSIM, and the Pearson correlation of HOG features (Adebayo et al.
    2018). Also compares the top-1 class's map with the least likely class's, and warns when
    they are nearly the same. Writes OUT/<name>.sanity.png (similarity against depth) and
    OUT/<name>.sanity-maps.png (the maps); prints a table, or JSON records with --json.
    Default methods: guided, vanilla, deconv.
    """
    from gbp_cli.sanity import sanity_command

    ctx.exit(1 if sanity_command(inputs, **options_) else 0)


@cli.command()
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace DESTINATION if it exists.")
def convert(source: Path, destination: Path, overwrite: bool) -> None:
    """Convert DenseNet121/169/201 weights: torchvision .pth ↔ Keras .weights.h5 (either way)."""
    from backends.convert import convert

    summary = convert(source, destination, overwrite)
    click.echo(f"{source}\t{destination}\t{summary}")


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so temp files are removed on the way out."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: exit 0/1/2 as documented, 130 on Ctrl-C, no tracebacks for users."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = cli.main(args=argv, prog_name="gbp", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("gbp: interrupted", err=True)
        code = 130
    except click.ClickException as e:
        e.show()
        code = e.exit_code
    except BrokenPipeError:  # `gbp … | head`: the reader left; end quietly, as `cat` would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 128 + signal.SIGPIPE
    sys.exit(code or 0)
