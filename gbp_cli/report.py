"""How results reach the user: data lines on stdout, problems on stderr."""

from __future__ import annotations

import click

from gbp_cli.pipeline import Result


def result_line(result: Result, random_weights: bool) -> str:
    """`input<TAB>label (index) probability<TAB>N ReLUs<TAB>files…`, for people and for `cut`."""
    if not result.targets:  # every output already existed
        return "\t".join([result.source.name, "kept", "-", *map(str, result.kept)])
    top = result.top[0]
    prediction = f"{top.label} ({top.index}) {top.probability:.1%}"
    if random_weights:
        prediction += " [random weights]"
    relus = ",".join(sorted({str(n) for n in result.relus.values()}))
    files = [str(p) for p in result.files] + [f"{p} (kept)" for p in result.kept]
    return "\t".join([result.source.name, prediction, f"{relus} ReLUs", *files])


def error_line(result: Result) -> str:
    return f"gbp: {result.source.name}: {result.error}"


def printer(random_weights: bool):
    """A report callback for the pipeline that prints each result as it finishes."""

    def report(result: Result) -> None:
        if result.error is not None:
            click.echo(error_line(result), err=True)
        else:
            click.echo(result_line(result, random_weights))

    return report
