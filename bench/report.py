"""bench.py's results as a Markdown table (with the targets) and a bar chart."""

from __future__ import annotations

from pathlib import Path

LABELS = {
    "gbp-torch": "(a) gbp torch, guided",
    "torch-floor": "(b) torch input gradient (the floor)",
    "captum": "(c) Captum GuidedBackprop",
    "blog-torch": "(d) blog recipe, PyTorch (hooks + .backward())",
    "gbp-tf": "(e) gbp tf, guided (tf.function)",
    "gbp-tf-xla": "(e) gbp tf, guided (XLA)",
    "blog-tf": "(f) blog recipe, TF eager GradientTape",
}


def _find(rows: list[dict], case: str, batch: int, precision: str = "fp32") -> dict | None:
    for row in rows:
        if (row["case"], row["batch"], row["precision"]) == (case, batch, precision):
            return row if "error" not in row else None
    return None


def _ms(rows: list[dict], case: str, batch: int, precision: str = "fp32") -> float | None:
    row = _find(rows, case, batch, precision)
    return None if row is None else row["ms_per_image"]


def _cell(value: float | None, fmt: str = "{:.0f}") -> str:
    return "–" if value is None else fmt.format(value)


def targets(results: dict) -> list[tuple[str, float | None, str, bool | None, str]]:
    """(what, measured, goal, met, detail) for each of issue 6's targets."""
    rows = results["rows"]

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a / b

    checks = []
    for batch in (1, 8):
        paired = _find(rows, "paired-torch", batch)
        if paired is not None:  # timed turn about in one process: drift touches both alike
            r = paired["ratio"]
            detail = f"timed turn about: {paired['guided_ms']:.0f} vs {paired['floor_ms']:.0f} ms"
        else:
            r = ratio(_ms(rows, "gbp-torch", batch), _ms(rows, "torch-floor", batch))
            detail = ""
        limit = None if r is None else r <= 1.05
        checks.append(
            (f"gbp torch guided / input gradient, batch {batch}", r, "≤ 1.05×", limit, detail)
        )
    r = ratio(_ms(rows, "captum", 8), _ms(rows, "gbp-torch", 8))
    checks.append(
        ("Captum / gbp torch, batch 8 (speed-up)", r, "≥ 1.5×", None if r is None else r >= 1.5, "")
    )
    for case in ("gbp-tf", "gbp-tf-xla"):
        r = ratio(_ms(rows, "blog-tf", 1), _ms(rows, case, 1))
        checks.append(
            (
                f"blog TF eager / {LABELS[case][4:]}, batch 1 (speed-up)",
                r,
                "≥ 8×",
                None if r is None else r >= 8,
                "",
            )
        )
    r = ratio(_ms(rows, "gbp-tf", 8), _ms(rows, "gbp-torch", 8))
    checks.append(("gbp tf / gbp torch, batch 8", r, "≤ 1.2×", None if r is None else r <= 1.2, ""))
    for case, name in (("gbp-torch", "torch"), ("gbp-tf", "tf")):
        r = ratio(_ms(rows, case, 8), _ms(rows, case, 8, "bf16"))
        checks.append(
            (
                f"bf16 speed-up, gbp {name}, batch 8",
                r,
                "≥ 1.6×",
                None if r is None else r >= 1.6,
                "",
            )
        )
    bf16 = _find(rows, "gbp-torch", 8, "bf16")
    if bf16 is not None and "pearson_vs_fp32" in bf16:
        pooled, worst = bf16["pearson_vs_fp32"]["pooled"], bf16["pearson_vs_fp32"]["worst_photo"]
        checks.append(
            (
                "bf16 map's Pearson correlation with fp32 (all photos)",
                pooled,
                "≥ 0.98",
                pooled >= 0.98,
                f"worst single photo {worst:.3f}",
            )
        )
    for entry in results["folder"]:
        checks.append(
            (
                f"end to end / compute, 64 photos, {entry['backend']}",
                entry["ratio"],
                "≥ 0.85",
                entry["ratio"] >= 0.85,
                f"{entry['end_to_end']:.2f} vs {entry['compute']:.2f} images/s",
            )
        )
    for entry in results["cold_start"]:
        checks.append(
            (
                f"cold start, one photo, {entry['backend']}: gbp / bare minimum",
                entry["ratio"],
                "≤ 1.3×",
                entry["ratio"] <= 1.3,
                f"{entry['gbp_s']:.1f} s vs {entry['bare_s']:.1f} s",
            )
        )
    return checks


def markdown(results: dict) -> str:
    rows = results["rows"]
    lines = [
        f"Measured by `python bench/bench.py` on {results['machine']} ({results['device']}), "
        f"{results['date']}, Python {results['python']}: DenseNet201 at 224×224, seeded random "
        "weights, the sample photos, each photo's top-1 class; median of 5 calls after a warm-up.",
        "",
        "| case | batch 1, ms/image | batch 8, ms/image | peak RSS, batch 8 |",
        "|---|---:|---:|---:|",
    ]
    for case, label in LABELS.items():
        eight = _find(rows, case, 8)
        rss = _cell(eight["peak_rss_mb"] if eight else None, "{:,.0f} MB")
        lines.append(
            f"| {label} | {_cell(_ms(rows, case, 1))} | {_cell(_ms(rows, case, 8))} | {rss} |"
        )
    for case in ("gbp-torch", "gbp-tf"):
        row = _find(rows, case, 8, "bf16")
        if row is not None:
            lines.append(
                f"| {LABELS[case]}, `--precision bf16` | – | {row['ms_per_image']:.0f} "
                f"| {row['peak_rss_mb']:,.0f} MB |"
            )
    lines += ["", "| target | measured | goal | met |", "|---|---:|---|---|"]
    for what, value, goal, met, detail in targets(results):
        shown = "–" if value is None else (f"{value:.3f}" if "Pearson" in what else f"{value:.2f}×")
        if detail:
            shown += f" ({detail})"
        verdict = "–" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {what} | {shown} | {goal} | {verdict} |")
    return "\n".join(lines) + "\n"


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    cases = [c for c in LABELS if _ms(rows, c, 1) or _ms(rows, c, 8)]
    figure, axes = plt.subplots(figsize=(9, 0.55 * len(cases) + 1.5))
    positions = range(len(cases))
    for offset, batch, colour in ((-0.2, 1, "#7a9cc6"), (0.2, 8, "#1f4e89")):
        values = [_ms(rows, c, batch) or 0 for c in cases]
        axes.barh(
            [p + offset for p in positions],
            values,
            height=0.4,
            color=colour,
            label=f"batch {batch}",
        )
    axes.set_yticks(list(positions), [LABELS[c] for c in cases])
    axes.invert_yaxis()
    axes.set_xlabel("ms per image (lower is better)")
    axes.set_title(
        f"Guided backprop, DenseNet201, {results['device']}: {results['machine']}", fontsize=9
    )
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
