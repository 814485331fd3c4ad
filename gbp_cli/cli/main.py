"""The `gbp` command line. It parses and wires; the work happens in the modules it calls.

Exit codes: 0 all inputs done, 1 some failed (or gbp hit a bug of its own), 2 usage or
configuration error, 130 interrupted (143 on SIGTERM, 129 on SIGHUP), 141 when the reader of
stdout went away (as `cat` does). Every error is one `gbp: …` line on stderr (usage errors
too, with where the command's help is); with --debug (or GBP_DEBUG=1) its traceback comes first,
every cause included.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import IO, Any

import click

from gbp_cli.cli import options
from gbp_cli.errors import GbpError
from gbp_cli.version import __version__

EPILOG = (
    "Every error is one 'gbp: …' line on stderr. One that says 'internal error' is a bug in gbp "
    "(exit 1): run again with --debug, or GBP_DEBUG=1, to print its traceback; --debug prints "
    "any error's traceback, with its causes, before its line."
)


def traceback_text(error: BaseException) -> str:
    """`error`'s traceback with every exception behind it, including those gbp hides from its
    one-line messages (`raise … from None`): --debug is for finding out where a line came from."""
    seen: set[int] = set()
    behind: list[BaseException] = [error]
    while behind:
        e = behind.pop()
        if id(e) not in seen:
            seen.add(id(e))
            e.__suppress_context__ = False
            behind += [c for c in (e.__cause__, e.__context__) if c is not None]
    return "".join(traceback.format_exception(error))


class GbpCommandError(click.ClickException):
    """A problem shown as one `gbp: …` line: exit 2 for usage and configuration, or the exit code
    of the error it stands for; with --debug, that error's traceback first."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None, debug: bool = False) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
        self.debug = debug

    def show(self, file: IO[Any] | None = None) -> None:
        if self.debug and self.__cause__ is not None:
            click.echo(traceback_text(self.__cause__), err=True, nl=False)
        click.echo(f"gbp: {self.message}", err=True)


class InternalError(GbpCommandError):
    """An exception gbp did not expect: a bug of its own, not the user's. Still one line, which
    says so and how to see where it came from; exit 1, the run failed."""

    exit_code = 1

    def __init__(self, error: Exception, debug: bool = False) -> None:
        text = str(error).strip().splitlines()
        what = type(error).__name__ + (f": {text[0]}" if text else "")
        hint = "" if debug else "; run again with --debug (or GBP_DEBUG=1) for its traceback"
        super().__init__(
            f"internal error (a bug in gbp, please report it): {what}{hint}", None, debug
        )


class StdoutClosed(Exception):
    """The reader of stdout went away. Not an OSError, so Click does not turn it into exit 1."""


class Group(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        """Every error a command raises as one line (see GbpCommandError), and what it stands
        for kept as its cause, for --debug."""
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # Click's own, and a command's exit status
        except GbpError as e:  # the family: each says its exit status (2: usage or configuration)
            raise GbpCommandError(str(e), exit_code=e.exit_code, debug=debug) from e
        except BrokenPipeError:
            raise StdoutClosed from None
        except Exception as e:
            raise InternalError(e, debug) from e


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(__version__, prog_name="gbp", message="%(prog)s %(version)s")
@options.DEBUG
def cli(debug: bool) -> None:
    """Saliency maps (Guided Backpropagation, vanilla gradient, DeconvNet, Grad-CAM) for image
    classifiers, from PyTorch or TensorFlow.

    Caveat: guided-backprop and DeconvNet maps largely show the photo's edges and barely depend on
    the class or the model's top layers (Adebayo et al. 2018). Read them as "what the network can
    see", not as proof of what it decided on.

    Exit status: 0 done, 1 some inputs failed (or a full disk stopped the run, or an internal
    error), 2 usage or configuration error, 130 interrupted, 143 terminated (SIGTERM), 129 hung
    up (SIGHUP), 141 stdout closed.
    """
    # The command line, not the library, quiets TensorFlow's native INFO lines for the process
    # (backends/tf/env.py holds back what this level no longer reaches); the user's own setting
    # wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


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
    options.MAX_SIZE,
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

    Prints logits' max difference and each map's relative L2 error, against tolerances (logits
    1e-3; vanilla 5e-3; every other method 1e-3). A figure over tolerance is computed again with
    both frameworks in float64: where they agree there within 1e-9, the miss is float32 rounding
    or max-pool tie routing, not a different network, and the line says so with both figures
    (and how far each framework's float32 map lies from its float64 one). Exits 1 only where
    float64 disagrees too, or could not run. --precision fp64 compares in float64 throughout.
    """
    from gbp_cli.cli.parity import parity_command

    ctx.exit(1 if parity_command(inputs, **chosen) else 0)


@cli.command()
@options.compose(
    options.INPUTS,
    options.BACKEND,
    options.MODEL_OPTIONS,
    options.GRADIENT_METHOD,
    options.WEIGHTS,
    options.SANITY_OUT,
    options.SANITY_JSON,
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
@options.compose(
    options.INPUTS,
    options.BACKEND,
    options.MODEL_OPTIONS,
    options.EVALUATE_METHOD,
    options.METRIC,
    options.STEPS,
    options.BASELINE,
    options.SEED,
    options.WEIGHTS,
    options.LABELS,
    options.EVALUATE_OUT,
    options.RESIZE,
    options.EVALUATE_BATCH_SIZE,
    options.DEVICE,
    options.PRECISION,
    options.TF_MODE,
    options.NULL,
    options.EVALUATE_JSON,
    options.REPORT,
    options.QUIET,
)
@click.pass_context
def evaluate(ctx: click.Context, inputs: tuple[str, ...], **chosen) -> None:
    """Which map can I trust for this model? How faithful each method's map is to the model.

    Deletion and insertion (Petsiuk et al. 2018): the probability of the photo's top-1 class as
    the pixels a map ranks highest are removed (lower area is better), or put back into a
    blurred photo (higher is better). ROAD (Rong et al. 2022): removal most- and
    least-relevant-first with noisy linear imputation, so the removed region's shape does not
    give the class away (MoRF lower, LeRF higher, their gap higher is better). A random map and
    the photo's edges (Sobel) are scored beside the methods: a map worth trusting beats both.
    Prints a table (mean and 95% t-interval over the inputs, the best per score marked) and, per
    baseline, on how many inputs each method beat it; writes OUT/evaluate.png (the mean curves);
    --json gives every curve.
    """
    from gbp_cli.cli.evaluate import evaluate_command

    ctx.exit(1 if evaluate_command(inputs, **chosen) else 0)


@cli.command()
@options.compose(options.SOURCE, options.DESTINATION, options.CONVERT_OVERWRITE)
def convert(source: Path, destination: Path, overwrite: bool) -> None:
    """Convert weights between a torchvision .pth and a Keras .weights.h5 (either way)."""
    from gbp_cli.cli.convert import convert_command

    summary = convert_command(source, destination, overwrite)
    click.echo(f"{source}\t{destination}\t{summary}")


@cli.command()
@options.compose(options.MODEL_NAMES, options.CATALOG_BACKEND, options.JSON)
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


# Signals that stop a run the way Ctrl-C does: unwinding, so every temp file is removed on the
# way out, then one line and exit 128 + the signal's number (143, 129).
STOPS = {signal.SIGTERM: "terminated", signal.SIGHUP: "hung up"}


class Stopped(BaseException):
    """A stopping signal arrived. A BaseException, as KeyboardInterrupt is, so that no
    `except Exception` on the way up takes it for an error of the run."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: object) -> None:
    raise Stopped(signum)


def _quiet_stdout() -> None:
    """After the reader left, point stdout at /dev/null so the final flush cannot complain."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def usage_line(error: click.UsageError) -> str:
    """Click's usage error as gbp's one line: the problem, then where the command's help is."""
    message = error.format_message().rstrip(".")
    where = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
    return f"gbp: {message}{where}"


def main(argv: list[str] | None = None) -> None:
    """Console entry point: the exit codes above, and no tracebacks for users unless they ask
    (--debug, GBP_DEBUG=1: GbpCommandError.show prints them)."""
    for signum in STOPS:
        signal.signal(signum, _stop)
    try:
        code = cli.main(args=argv, prog_name="gbp", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        _say("gbp: interrupted")
        code = 130
    except Stopped as e:
        _say(f"gbp: {STOPS[e.signum]}")
        code = 128 + e.signum
    except click.UsageError as e:
        if isinstance(e, options.OptionError):
            e.show()
        else:
            _say(usage_line(e))
        code = e.exit_code
    except click.ClickException as e:
        e.show()
        code = e.exit_code
    except (StdoutClosed, BrokenPipeError):  # `gbp … | head`: end quietly, as `cat` would
        _quiet_stdout()
        code = 128 + signal.SIGPIPE
    sys.exit(code or 0)


def _say(line: str) -> None:
    """A last line on stderr, which a hung-up terminal may no longer take."""
    with contextlib.suppress(OSError):
        click.echo(line, err=True)
