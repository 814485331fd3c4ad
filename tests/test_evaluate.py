"""`gbp evaluate`: each measure against its paper's definition on toy models whose curves are
worked out by hand, the pieces it is made of, the statistics, and the command on the stand-in
backend (output, records, errors, the page). Both backends' agreement on real networks is in
tests/test_evaluate_twins.py, Quantus as an oracle in tests/test_evaluate_oracle.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("scipy", reason="gbp evaluate needs scipy: the [evaluate] extra")

from gbp_cli.backends.base import (
    Backend,
    Explanation,
    ModelInfo,
    Preprocessing,
    WeightsSpec,
)
from gbp_cli.faithfulness.baselines import edge_map
from gbp_cli.faithfulness.evaluation import baseline_maps, evaluate
from gbp_cli.faithfulness.metrics import (
    ROAD_NOISE,
    SCORES,
    TIES,
    Photo,
    Settings,
    copies_per_photo,
    perturbations,
)
from gbp_cli.faithfulness.removal import (
    gaussian_blur,
    linear_imputation,
    pixel_relevance,
    ranking,
    removed_counts,
)
from gbp_cli.faithfulness.summary import Cell, best, summarize, t_interval, wins
from tests import test_gallery
from tests.conftest import gbp, one_line, run_gbp

browser = test_gallery.browser  # the fixture: headless Chromium, once per module

# --- toy models whose curves are known exactly --------------------------------------------------


class Toy(Backend):
    """Two classes, read off channel 0 of the input: S is a statistic of it (`statistic`), and
    the logits are log(1 + S) and log(1 + P − S), so class 0's probability is (1 + S)/(2 + P)
    exactly. Its one "method" returns a fixed map."""

    def __init__(self, size: int, saliency: np.ndarray, statistic) -> None:
        pre = Preprocessing(size=size, mean=(0.0,) * 3, std=(1.0,) * 3, name="none")
        self.info = ModelInfo("torch", "toy", 2, WeightsSpec("random"), "cpu", preprocessing=pre)
        self.saliency = saliency
        self.statistic = statistic
        self.passes: list[int] = []  # the batch size of every forward pass

    def predict(self, images: np.ndarray) -> np.ndarray:
        self.passes.append(len(images))
        pixels = images.shape[1] * images.shape[2]
        s = np.array([self.statistic(x[..., 0]) for x in images], dtype=np.float64)
        return np.log(np.stack([1 + s, 1 + pixels - s], axis=1))

    def explain(self, images, methods, targets=None, top_k=1, cam=False) -> Explanation:
        logits = self.predict(images)
        chosen = logits.argmax(axis=1)[:, None] if targets is None else targets
        n = len(images)
        maps = np.broadcast_to(self.saliency, (n, 1, *self.saliency.shape)).astype(np.float32)
        return Explanation(logits, chosen, {m: maps for m in methods})

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        pass


def exact_ones(channel: np.ndarray) -> float:
    """Pixels exactly 1: what a removal (to 0) or a blur (into (0, 1)) takes away."""
    return float((channel == 1.0).sum())


def total(channel: np.ndarray) -> float:
    return float(channel.sum(dtype=np.float64))


def columns_photo() -> np.ndarray:
    """4×4, channel 0: columns 0–2 are 1, column 3 is 0 (S = 12 of P = 16)."""
    image = np.full((4, 4, 3), 0.5, np.float32)
    image[..., 0] = [1, 1, 1, 0]
    return image


def run_toy(backend: Toy, image: np.ndarray, settings: Settings, batch_size: int = 5):
    photo = Photo.of("toy", image, "ab" * 32)
    (result,) = evaluate(backend, [photo], ["guided"], [], settings, batch_size)
    return result


def test_deletion_and_insertion_curves_worked_out_by_hand() -> None:
    """Relevance 4, 3, 2, 1 by column, so step k of 4 removes (or puts back) column k − 1.
    Deletion: S = 12, 8, 4, 0, 0 → (1 + S)/18. Insertion starts from the blur, where no pixel
    is exactly 1: S = 0, 4, 8, 12, then the photo itself, 12. Areas by the trapezoid rule."""
    saliency = np.zeros((4, 4, 3))
    saliency[..., 0] = [4, 3, 2, 1]
    toy = Toy(4, saliency, exact_ones)
    settings = Settings(metrics=("deletion", "insertion"), steps=4)
    result = run_toy(toy, columns_photo(), settings)
    deletion, insertion = (
        result.curves[("guided", "deletion")],
        result.curves[("guided", "insertion")],
    )
    assert deletion.fractions.tolist() == [0, 0.25, 0.5, 0.75, 1]
    assert deletion.heights["deletion"] * 18 == pytest.approx([13, 9, 5, 1, 1], abs=1e-12)
    assert insertion.heights["insertion"] * 18 == pytest.approx([1, 5, 9, 13, 13], abs=1e-12)
    # 0.25 · ((13+9)/2 + (9+5)/2 + (5+1)/2 + (1+1)/2) / 18 and the same for (1, 5, 9, 13, 13)
    assert result.scores()[("guided", "deletion")] == pytest.approx(5.5 / 18, abs=1e-12)
    assert result.scores()[("guided", "insertion")] == pytest.approx(8.5 / 18, abs=1e-12)
    assert result.target == 0 and result.probability == pytest.approx(13 / 18)


def test_the_reversed_map_scores_worse_on_both() -> None:
    """Column 3 (the zeros) first: deletion keeps the class longer, insertion finds it later."""
    saliency = np.zeros((4, 4, 3))
    saliency[..., 0] = [1, 2, 3, 4]
    result = run_toy(
        Toy(4, saliency, exact_ones), columns_photo(), Settings(("deletion", "insertion"), 4)
    )
    assert result.curves[("guided", "deletion")].heights["deletion"] * 18 == pytest.approx(
        [13, 13, 9, 5, 1], abs=1e-12
    )
    assert result.scores()[("guided", "deletion")] > 5.5 / 18
    assert result.scores()[("guided", "insertion")] < 8.5 / 18


def test_road_curves_worked_out_by_hand() -> None:
    """3×3, channel 0 all 1 but the centre, 0; S is channel 0's sum, P = 9, 9 steps of one pixel.
    MoRF removes the centre first; every pixel imputed after that has only 1s to be imputed
    from, so it is 1: S = 8, then 9 at every step (ROAD's point: the class does not leak from
    the mask). LeRF removes the corner (0, 0) first, imputed from its three neighbours in the
    image, two direct 1s and the diagonal 0: (1/6 + 1/6)/(1/6 + 1/6 + 1/12) = 0.8, S = 7.8.
    Noise 0 here; ROAD's areas are over k = 0 … 8, divided by the last fraction, 8/9."""
    image = np.ones((3, 3, 3), np.float32)
    image[1, 1, 0] = 0
    saliency = np.array([[1, 2, 3], [4, 9, 5], [6, 7, 8]], np.float64)[..., None]
    settings = Settings(metrics=("road",), steps=9, road_noise=0.0)
    result = run_toy(Toy(3, saliency, total), image, settings)
    road = result.curves[("guided", "road")]
    assert road.fractions == pytest.approx(np.arange(9) / 9)
    assert road.heights["morf"] * 11 == pytest.approx([9] + [10] * 8, abs=1e-9)
    assert road.heights["lerf"][:2] * 11 == pytest.approx([9, 8.8], abs=1e-6)  # float32 input
    scores = result.scores()
    # (1/9)·((9 + 10)/2 + 7·10)/11, divided by 8/9
    assert scores[("guided", "road-morf")] == pytest.approx(159 / 176, abs=1e-9)
    assert scores[("guided", "road-gap")] == pytest.approx(
        scores[("guided", "road-lerf")] - scores[("guided", "road-morf")]
    )


def test_every_copy_goes_through_the_forward_pass_in_batches_across_maps() -> None:
    """One photo, one method and two baselines, deletion and insertion at 4 steps: 3 shared
    copies and 3 × 2 × 3 steps, in passes of the batch size (the last one shorter)."""
    saliency = np.zeros((4, 4, 3))
    saliency[..., 0] = [4, 3, 2, 1]
    toy = Toy(4, saliency, exact_ones)
    settings = Settings(metrics=("deletion", "insertion"), steps=4)
    photo = Photo.of("toy", columns_photo(), "cd" * 32)
    evaluate(toy, [photo], ["guided"], ["random", "edges"], settings, batch_size=7)
    _explain, *passes = toy.passes
    assert copies_per_photo(settings, 3) == 3 + 3 * 2 * 3 == sum(passes)
    assert passes == [7, 7, 7]


# --- the pieces ------------------------------------------------------------------------------


def test_step_k_removes_k_P_over_N_pixels_rounded_halves_up() -> None:
    assert removed_counts(10, 4).tolist() == [0, 3, 5, 8, 10]  # 2.5 → 3, 7.5 → 8
    counts = removed_counts(224 * 224, 20)
    assert counts[1] == 2509 and counts[-1] == 224 * 224  # 2508.8 → 2509
    assert removed_counts(224 * 224, 20, last=19)[-1] == 47667  # ROAD: 95 %


def test_pixels_rank_most_relevant_first_and_ties_in_the_seeded_order() -> None:
    relevance = np.array([[0.0, 3.0], [3.0, 1.0]])
    order = np.array([3, 2, 1, 0])  # a permutation of the pixels, as drawn once per photo
    assert ranking(relevance, order).tolist() == [2, 1, 3, 0]  # the tie (1, 2) in `order`'s order
    assert ranking(np.zeros((2, 2)), order).tolist() == [3, 2, 1, 0]


def test_a_map_becomes_one_relevance_per_pixel() -> None:
    gradient = np.array([[[0.1, -0.7, 0.2]]])
    assert pixel_relevance(gradient).tolist() == [[0.7]]  # max |g| over channels
    assert pixel_relevance(np.array([[[0.3]]])).tolist() == [[0.3]]  # Grad-CAM: as it is


def test_insertion_blurs_with_rises_gaussian() -> None:
    """σ = 5 px over 11 taps, normalised: an impulse far from the border becomes the outer
    product of the kernel; a flat image stays flat up to its mirrored borders."""
    impulse = np.zeros((31, 31, 1))
    impulse[15, 15] = 1
    taps = np.exp(-(np.arange(-5, 6) ** 2) / 50)
    kernel = taps / taps.sum()
    blurred = gaussian_blur(impulse, 5.0, 5)[..., 0]
    assert blurred[10:21, 10:21] == pytest.approx(np.outer(kernel, kernel), abs=1e-15)
    assert blurred.sum() == pytest.approx(1)
    flat = np.full((6, 9, 3), 0.25)
    assert gaussian_blur(flat, 5.0, 5) == pytest.approx(flat)


def test_linear_imputation_is_the_weighted_mean_of_the_eight_neighbours() -> None:
    image = np.zeros((3, 3, 2))
    image[..., 0] = [[4, 1, 4], [1, 0, 1], [4, 1, 4]]  # direct neighbours 1, diagonal ones 4
    image[..., 1] = 7
    centre = linear_imputation(image, np.array([4]))
    assert centre[1, 1].tolist() == pytest.approx([4 / 6 + 16 / 12, 7])  # 1/6 · 4 + 1/12 · 16
    assert np.array_equal(
        np.delete(centre.reshape(9, 2), 4, 0), np.delete(image.reshape(9, 2), 4, 0)
    )
    # a corner has two direct neighbours and one diagonal one: weights renormalised
    corner = linear_imputation(image, np.array([0]))
    assert corner[0, 0, 0] == pytest.approx((1 / 6 + 1 / 6 + 0 / 12) / (5 / 12))
    # pixels removed together are imputed from each other too: a linear ramp inside stays
    ramp = np.add.outer(np.arange(6.0), 2 * np.arange(6.0))[..., None]
    inside = np.array([r * 6 + c for r in (2, 3) for c in (2, 3)])
    assert linear_imputation(ramp, inside)[..., 0] == pytest.approx(ramp[..., 0])


def test_the_edge_baseline_is_the_sobel_magnitude_of_the_photo() -> None:
    """A vertical step from grey 0 to 1: |∂x| = 1 + 2 + 1 on the two columns beside it."""
    pre = Preprocessing(mean=(0.5,) * 3, std=(0.5,) * 3)  # the map undoes the normalisation
    pixels = np.zeros((5, 6, 3))
    pixels[:, 3:] = 1
    edges = edge_map((pixels - 0.5) / 0.5, pre)[..., 0]
    assert edges.tolist() == [[0, 0, 4, 4, 0, 0]] * 5


def test_the_random_map_tie_order_and_noise_follow_the_seed_and_the_photo() -> None:
    pre = Preprocessing(std=(0.5, 0.25, 1.0))
    image = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    photo, again = Photo.of("a.png", image, "12" * 32), Photo.of("b.png", image, "12" * 32)
    other = Photo.of("c.png", image, "34" * 32)

    def random(p: Photo, seed: int) -> np.ndarray:
        return baseline_maps(p, ["random"], Settings(seed=seed), pre)["random"]

    assert np.array_equal(random(photo, 0), random(again, 0))  # the content, not the name
    assert not np.array_equal(random(photo, 0), random(photo, 1))
    assert not np.array_equal(random(photo, 0), random(other, 0))
    settings = Settings(metrics=("road",), steps=4, seed=3)
    copies = dict(perturbations(photo, {"r": random(photo, 3)}, settings, pre))
    assert all(np.array_equal(c, d) for c, d in zip(copies.values(), dict(perturbations(
        photo, {"r": random(photo, 3)}, settings, pre)).values(), strict=True))  # fmt: skip
    # ROAD's noise: on imputed pixels only, σ = 0.01 of the pixel range in each channel
    copy = copies[("r", "morf", 2)]
    order = ranking(pixel_relevance(random(photo, 3)), photo.rng(3, TIES).permutation(64))
    removed = order[:32]
    clean = linear_imputation(image, removed).reshape(64, 3)
    noise = copy.reshape(64, 3) - clean
    kept = np.setdiff1d(np.arange(64), removed)
    assert np.all(noise[kept] == 0)
    draw = photo.rng(3, ROAD_NOISE, 2).standard_normal((64, 3), np.float32)
    assert noise[removed] == pytest.approx(draw[removed] * (0.01 / np.array(pre.std)), abs=1e-6)


def test_the_mean_and_its_t_interval() -> None:
    """t(0.975, 2) = 4.302652729911275: 2 ± 4.3027 · 1/√3 for 1, 2, 3."""
    low, high = t_interval([1.0, 2.0, 3.0])
    assert (low, high) == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-6)
    assert t_interval([0.5]) is None
    assert t_interval([0.2, 0.2]) == pytest.approx((0.2, 0.2))


def test_the_best_map_per_score_follows_its_direction() -> None:
    kinds = [s for s in SCORES if s.name in ("deletion", "insertion")]
    scores = [{("a", "deletion"): 0.2, ("a", "insertion"): 0.5, ("b", "deletion"): 0.1,
               ("b", "insertion"): 0.4}, {("a", "deletion"): 0.4, ("a", "insertion"): 0.7,
               ("b", "deletion"): 0.3, ("b", "insertion"): 0.6}]  # fmt: skip
    cells = summarize(scores, ["a", "b"], kinds)
    assert [(c.map, c.score, round(c.mean, 9)) for c in cells] == [
        ("a", "deletion", 0.3), ("a", "insertion", 0.6),
        ("b", "deletion", 0.2), ("b", "insertion", 0.5),
    ]  # fmt: skip
    assert best(cells, kinds) == {"deletion": "b", "insertion": "a"}
    # paired, input by input: a removes worse than b on both inputs, and inserts better on both
    assert wins(scores, ["a"], ["b"], kinds) == {
        ("a", "b", "deletion"): 0,
        ("a", "b", "insertion"): 2,
    }
    assert isinstance(cells[0], Cell) and cells[0].inputs == 2


# --- the command, on the stand-in backend -----------------------------------------------------

FAST = ("--steps", "4", "--metric", "deletion", "--metric", "insertion")


def evaluate_run(*args: str | Path):
    return gbp("evaluate", "--weights", "random", "-q", *args)


@pytest.mark.usefixtures("fake")
def test_the_table_marks_the_best_per_score_and_the_plot_has_its_record(
    photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = evaluate_run(photos, "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    (header, *rows, legend), paired = lines[:7], lines[7:]
    assert header.split() == ["map", "deletion", "↓", "insertion", "↑"]
    names = [r.split("  ")[0].strip() for r in rows]
    assert names == ["guided", "vanilla", "gradcam", "random (baseline)", "edges (baseline)"]
    assert sum(r.count(" *") for r in rows) == 2  # one best per column
    assert "95% t-interval" in legend and "lower is better" in legend
    # then, per baseline, on how many of the 2 inputs each method beat it
    assert [line.split("  ")[0] for line in paired] == [
        "beats random on", "guided", "vanilla", "gradcam",
        "beats edges on", "guided", "vanilla", "gradcam",
    ]  # fmt: skip
    assert all(cell.endswith("/2") for line in paired[1:4] for cell in line.split()[1:])
    with Image.open(out / "evaluate.png") as plot:
        record = json.loads(plot.info["gbp:settings"])
        assert plot.info["gbp:input"] == "2 inputs"
    assert (record["seed"], record["steps"]) == ("0", "4")
    assert record["metrics"] == "deletion,insertion"
    assert record["weights"].startswith("random (seed 0") and record["backend"] == "torch"
    assert "mean colour" in record["metric deletion"] and "sigma 5" in record["metric insertion"]
    again = evaluate_run(photos, "-o", out, *FAST, "--seed", "1")  # replaces its own plot
    assert again.exit_code == 0, again.output
    with Image.open(out / "evaluate.png") as plot:
        assert json.loads(plot.info["gbp:settings"])["seed"] == "1"


@pytest.mark.usefixtures("fake")
def test_json_gives_every_curve_then_the_summary(photos: Path, tmp_path: Path) -> None:
    result = evaluate_run(photos, "-o", tmp_path / "out", "--json", *FAST, "--seed", "5")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    curves = [r for r in records if not r.get("summary")]
    summary = [r for r in records if r.get("summary")]
    assert len(curves) == 2 * 5 * 2 and len(summary) == 5 * 2
    first = curves[0]
    assert (first["map"], first["metric"], first["baseline"]) == ("guided", "deletion", False)
    assert first["fractions"] == [0, 0.25, 0.5, 0.75, 1] and len(first["curves"]["deletion"]) == 5
    assert set(first["target"]) == {"index", "label", "probability"}
    assert first["settings"]["seed"] == "5" and first["settings"]["weights draw"]
    assert first["model"] == "fake" and first["backend"] == "torch"
    for score in ("deletion", "insertion"):
        mine = [r for r in summary if r["score"] == score]
        assert sum(r["best"] for r in mine) == 1
        assert all(r["interval"][0] <= r["mean"] <= r["interval"][1] for r in mine)
    edges = next(r for r in summary if r["map"] == "edges" and r["score"] == "deletion")
    assert edges["baseline"] and edges["direction"] == "lower is better" and edges["inputs"] == 2
    means = [
        r["scores"]["deletion"] for r in curves if r["map"] == "edges" and r["metric"] == "deletion"
    ]
    assert edges["mean"] == pytest.approx(sum(means) / 2)
    assert "beats" not in edges
    # a method's "beats": on how many inputs its score was better than the baseline's there
    guided = next(r for r in summary if r["map"] == "guided" and r["score"] == "insertion")
    by_input = {
        (r["input"], r["map"]): r["scores"]["insertion"]
        for r in curves
        if r["metric"] == "insertion"
    }
    inputs = {r["input"] for r in curves}
    for baseline in ("random", "edges"):
        better = sum(by_input[(i, "guided")] > by_input[(i, baseline)] for i in inputs)
        assert guided["beats"][baseline] == better


@pytest.mark.usefixtures("fake")
def test_road_through_the_command(photos: Path, tmp_path: Path) -> None:
    args = ("--metric", "road", "--steps", "3", "--method", "guided", "--baseline", "none")
    result = evaluate_run(photos, "-o", tmp_path / "out", "--json", *args)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    road = [r for r in records if not r.get("summary")]
    assert [r["map"] for r in road] == ["guided", "guided"]
    # 224² pixels: round(50176/3) = 16725 and round(2 · 50176/3) = 33451 removed
    assert road[0]["fractions"] == pytest.approx([0, 16725 / 50176, 33451 / 50176])
    assert set(road[0]["curves"]) == {"morf", "lerf"}
    assert set(road[0]["scores"]) == {"road-morf", "road-lerf", "road-gap"}
    assert "noisy linear imputation" in road[0]["settings"]["metric road"]


@pytest.mark.usefixtures("fake")
def test_bad_inputs_are_one_line_each_and_the_run_goes_on(photos: Path, tmp_path: Path) -> None:
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = evaluate_run(photos, tmp_path / "missing.jpg", empty, "-o", tmp_path / "out", *FAST)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert any(line.startswith("gbp: ") and "missing.jpg: no such file" in line for line in lines)
    assert any("broken.png: not an image PIL can read" in line for line in lines)
    assert f"gbp: no images found under {empty}" in lines
    # the table of the two good photos, then two blocks of wins against the baselines
    assert len(result.stdout.splitlines()) == 1 + 5 + 1 + 2 * (1 + 3)
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("fake")
def test_a_map_gbp_wrote_is_skipped_as_an_input(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert evaluate_run(photos, "-o", out, *FAST).exit_code == 0
    again = gbp("evaluate", "--weights", "random", out / "evaluate.png", "-o", tmp_path / "o2")
    assert again.exit_code == 0 and again.stdout == ""
    assert "1 of gbp's own outputs skipped as inputs" in again.stderr


@pytest.mark.usefixtures("fake")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--steps", "1"), "1 is not in the range x>=2"),
        (("--baseline", "none", "--baseline", "edges"), "--baseline none means no baseline"),
        (("--metric", "auc"), "'auc' is not one of 'deletion', 'insertion', 'road'"),
        (("-o", "-"), "gbp evaluate prints its table on stdout"),
        (("--input-size", "64"), "--input-size and --normalize describe your own model"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    args: Sequence[str], message: str, photos: Path
) -> None:
    """In a process of its own: Click's own refusals become one line in gbp's main."""
    result = run_gbp("evaluate", photos, "--weights", "random", *args, fake=True)
    assert result.returncode == 2
    assert message in one_line(result.stderr)
    assert result.stdout == ""


@pytest.mark.usefixtures("fake")
def test_an_out_that_is_a_file_or_holds_a_users_file_is_never_written(
    photos: Path, tmp_path: Path
) -> None:
    taken = tmp_path / "taken"
    taken.write_text("mine")
    result = evaluate_run(photos, "-o", taken, *FAST)
    assert result.exit_code == 2 and "exists and is not a folder" in one_line(result.stderr)
    out = tmp_path / "out"
    out.mkdir()
    (out / "evaluate.png").write_bytes(b"my own picture")
    result = evaluate_run(photos, "-o", out, *FAST)
    assert result.exit_code == 2  # said before the model loads, not after the work
    assert "is not a file gbp wrote; it was left alone" in one_line(result.stderr)
    assert (out / "evaluate.png").read_bytes() == b"my own picture"


@pytest.mark.usefixtures("fake")
def test_the_page_has_an_evaluation_section_and_a_row_per_input(
    photos: Path, tmp_path: Path
) -> None:
    from gbp_cli.gallery import page as gallery

    (photos / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    result = evaluate_run(photos, "-o", out, "--report", *FAST)
    assert result.exit_code == 1, result.output
    data = json.loads((out / "index.json").read_text())
    (run,) = data["runs"]
    assert run["command"] == "evaluate" and run["plot"] == "evaluate.png"
    assert run["baselines"] == ["random", "edges"] and run["steps"] == 4 and run["seed"] == 0
    assert len(run["summary"]) == 5 * 2 and all(len(s) == 5 for s in run["summary"])
    assert [s[0] for s in run["scores"]] == ["deletion", "insertion"]
    assert run["scores"][0][1] == "lower is better"
    rows = {Path(r["input"]).name: r for r in data["rows"]}
    assert rows["broken.png"]["status"] == "failed"
    good = rows["a.png"]
    assert good["kind"] == "evaluate" and good["status"] == "explained"
    assert len(good["table"]) == 5 * 2 and good["table"][0][:2] == ["guided", "deletion"]
    assert (out / good["thumb"]).is_file() and "label" in good
    assert gallery._load(out / "index.json")["runs"]  # the data file passes its shape check
    again = evaluate_run(photos, "-o", out, "--report", *FAST)  # merges by input
    assert again.exit_code == 1
    assert len(json.loads((out / "index.json").read_text())["rows"]) == 3
    assert 'id="evaluation"' in (out / "index.html").read_text()


# --- no graph outlives a pass (torch) ----------------------------------------------------------

WATCHED = "tests.watched_net:build"  # a tiny net whose ReLU nodes report whether they live


@pytest.mark.torch
def test_the_forward_passes_build_no_graph() -> None:
    """Backend.predict runs under no_grad: no ReLU output has an autograd node to hook, so the
    many perturbed copies leave nothing behind, and the logits are the explain pass's."""
    from gbp_cli.backends import ModelSpec, open_backend
    from tests import watched_net

    backend = open_backend("torch", WeightsSpec("random"), "cpu", model=ModelSpec(WATCHED))
    images = np.random.default_rng(0).standard_normal((3, 40, 48, 3)).astype(np.float32)
    watched_net.NODES.clear()
    logits = backend.predict(images)
    assert watched_net.NODES == []
    assert logits == pytest.approx(backend.explain(images, []).logits, abs=1e-6)
    assert watched_net.NODES  # the explain pass does build one (the watch works)


@pytest.mark.torch
def test_an_evaluation_leaves_no_graph_behind(tmp_path: Path) -> None:
    from tests.conftest import make_photo
    from tests.test_memory import watched

    for i in range(3):  # photos explained two at a time (--batch-size 16 / 8), copies by 16
        make_photo(tmp_path / "in" / f"p{i}.png", seed=i)
    args = ("--model", WATCHED, "--batch-size", "16", *FAST, "-o", tmp_path / "out")
    with watched():
        result = evaluate_run(tmp_path / "in", *args)
    assert result.exit_code == 0, result.output


# --- the page in a real browser ------------------------------------------------------------------


@pytest.mark.usefixtures("fake")
def test_the_evaluation_section_in_a_real_browser(photos: Path, tmp_path: Path, request) -> None:
    """Headless Chromium (tests/test_gallery.py's), from file://: the section's table with the
    best marked per column, its plot loaded, a row per input with its numbers, no script
    error."""
    from tests.test_gallery import errors, open_page, wait_for_images

    driver = request.getfixturevalue("browser")
    out = tmp_path / "out"
    assert evaluate_run(photos, "-o", out, "--report", *FAST).exit_code == 0
    open_page(driver, out / "index.html")
    assert errors(driver) == []
    section = driver.find_element("id", "evaluation")
    assert section.is_displayed()
    header = [th.text for th in section.find_elements("css selector", "thead th")]
    assert header == ["map", "deletion (lower is better)", "insertion (higher is better)"]
    rows = section.find_elements("css selector", "tbody tr")
    assert [r.find_element("css selector", "th").text for r in rows][-1] == "edges (baseline)"
    assert len(section.find_elements("css selector", "td.best")) == 2
    plot = section.find_element("css selector", "img")
    assert driver.execute_script("return arguments[0].naturalWidth", plot) > 0
    assert len(driver.find_elements("css selector", "#rows .row")) == 2
    assert wait_for_images(driver) == []
    assert "evaluated" in driver.find_element("id", "facts").text
