"""`--report`: the page and its data file, merged across resumes and shards, escaped, and opened in
a real (headless) Chromium from file://, as a user would."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, unquote_to_bytes, urlsplit

import pytest
from PIL import Image

from gbp_cli.gallery import page as gallery
from gbp_cli.gallery import rows as gallery_rows
from gbp_cli.inputs.find import printable
from tests.conftest import gbp, make_photo

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ODD = "q\"'<script>alert(1)<!--&amp; café ü.png"  # quotes, a tag, an entity, non-ASCII


def data_of(out: Path) -> dict:
    return json.loads((out / "index.json").read_text("utf-8"))


def rows_of(out: Path) -> dict[str, dict]:
    return {Path(row["input"]).name: row for row in data_of(out)["rows"]}


def folder_of_photos(folder: Path, count: int, size: tuple[int, int] = (96, 64)) -> Path:
    for i in range(count):
        make_photo(folder / f"p{i:02d}.png", size=size, seed=i)
    return folder


@pytest.fixture
def run(tmp_path: Path, fake: None) -> Path:
    """Two good photos, a corrupt one in the folder and a missing one named: OUT holds a page."""
    photos = folder_of_photos(tmp_path / "photos", 2)
    make_photo(photos / "sub" / "deep.jpg", size=(80, 120), seed=5)
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    result = gbp(
        "explain", photos, tmp_path / "missing.jpg", "--weights", "random", "--report",
        "--method", "guided", "--method", "gradcam", "-o", out, "-q",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    return out


@pytest.mark.usefixtures("fake")
def test_report_writes_one_data_file_the_page_and_small_thumbnails(run: Path) -> None:
    data = data_of(run)
    assert data["generator"] == "gbp" and data["format"] == gallery.FORMAT
    (last,) = data["runs"]
    assert last["random"] and "RANDOM weights" in last["note"]
    assert last["methods"] == ["guided", "gradcam"]
    assert last["counts"] == {"inputs": 5, "explained": 3, "kept": 0, "failed": 2}
    rows = rows_of(run)
    assert sorted(rows) == ["broken.png", "deep.jpg", "missing.jpg", "p00.png", "p01.png"]
    assert rows["missing.jpg"]["error"] == "no such file"
    assert rows["broken.png"]["status"] == "failed" and "image" in rows["broken.png"]["error"]
    deep = rows["deep.jpg"]
    assert deep["status"] == "explained" and 0 < deep["probability"] <= 1 and len(deep["top"]) == 5
    assert deep["top"][0][:2] == [deep["index"], deep["label"]]
    names = ["sub/deep.guided.color.png", "sub/deep.gradcam.overlay.png"]
    assert deep["files"] == [[name, name] for name in names]  # [text shown, link]
    assert [(m["method"], m["format"]) for m in deep["maps"]] == [
        ("guided", "color"),
        ("gradcam", "overlay"),
    ]
    for thumb in [deep["thumb"], *(m["thumb"] for m in deep["maps"])]:
        assert thumb.startswith(".thumbs/")  # hidden: never walked as an input
        with Image.open(run / thumb) as image:
            assert image.format == "JPEG" and max(image.size) <= gallery_rows.THUMB
    assert (run / deep["photo"]).resolve() == (run.parent / "photos/sub/deep.jpg").resolve()
    script = (run / "index.data.js").read_text("utf-8")
    assert script == f"window.GBP_DATA = {(run / 'index.json').read_text('utf-8')};\n"
    page = (run / "index.html").read_text("utf-8")
    assert '<script src="index.data.js"' in page
    assert not re.search(r"(src|href)=\"?(https?:)?//|@import|url\(http", page)  # offline
    assert not list(run.rglob("*.part"))


@pytest.mark.usefixtures("fake")
def test_a_rerun_merges_by_input_and_keeps_what_it_knew(tmp_path: Path) -> None:
    photos = folder_of_photos(tmp_path / "photos", 1)
    out = tmp_path / "out"
    assert gbp("explain", photos, "--report", "-o", out, "-q").exit_code == 0
    before = rows_of(out)["p00.png"]
    make_photo(photos / "p01.png", seed=1)  # the folder grew: a resumed run
    assert gbp("explain", photos, "--report", "-o", out, "-q").exit_code == 0
    rows = rows_of(out)
    assert sorted(rows) == ["p00.png", "p01.png"] and len(data_of(out)["rows"]) == 2
    kept = rows["p00.png"]
    assert kept["status"] == "kept" and rows["p01.png"]["status"] == "explained"
    for field in ("label", "index", "probability", "top", "maps", "thumb"):
        assert kept[field] == before[field], field
    assert [r["counts"]["kept"] for r in data_of(out)["runs"]] == [0, 1]


@pytest.mark.usefixtures("fake")
def test_the_label_of_outputs_kept_from_a_run_without_report_comes_from_the_png(
    tmp_path: Path,
) -> None:
    photos = folder_of_photos(tmp_path / "photos", 1)
    out = tmp_path / "out"
    first = gbp("explain", photos, "--json", "-o", out, "-q")
    target = json.loads(first.stdout)["target"]
    assert gbp("explain", photos, "--report", "-o", out, "-q").exit_code == 0
    row = rows_of(out)["p00.png"]
    assert row["status"] == "kept" and (row["index"], row["label"]) == (
        target["index"],
        target["label"],
    )
    assert row["probability"] == pytest.approx(target["probability"], abs=1e-6)


@pytest.mark.usefixtures("fake")
def test_two_shards_into_one_folder_give_one_page_listing_every_input_once(
    tmp_path: Path,
) -> None:
    photos = folder_of_photos(tmp_path / "photos", 10)
    out = tmp_path / "out"
    shares = []
    for shard in ("1/2", "2/2"):
        result = gbp("explain", photos, "--shard", shard, "--report", "--json", "-o", out, "-q")
        assert result.exit_code == 0, result.output
        shares.append({Path(json.loads(line)["input"]).name for line in result.stdout.splitlines()})
    assert shares[0] and shares[1] and not shares[0] & shares[1]
    names = [Path(row["input"]).name for row in data_of(out)["rows"]]
    assert sorted(names) == [f"p{i:02d}.png" for i in range(10)]  # each once
    assert [r["counts"]["inputs"] for r in data_of(out)["runs"]] == [len(s) for s in shares]


@pytest.mark.usefixtures("fake")
def test_odd_file_names_reach_the_page_only_as_escaped_data(tmp_path: Path) -> None:
    folder = tmp_path / "<b>x&y"
    make_photo(folder / ODD)
    out = tmp_path / "out"
    assert gbp("explain", folder, "--report", "-o", out, "-q").exit_code == 0
    (row,) = data_of(out)["rows"]
    assert row["input"] == str(folder / ODD)
    for link in (row["thumb"], row["maps"][0]["thumb"]):
        assert (out / unquote(link)).is_file() and not set(link) & set("\"'<&; ")
    for name in ("index.json", "index.data.js"):
        text = (out / name).read_text("utf-8")
        assert "<" not in text and "café ü" in text  # `<` only as \u003c: no tag can open
    assert "café" not in (out / "index.html").read_text("utf-8")  # the page holds no data


@pytest.mark.usefixtures("fake")
def test_a_page_gbp_did_not_write_is_left_alone(tmp_path: Path) -> None:
    photos = folder_of_photos(tmp_path / "photos", 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.html").write_text("<p>my own page</p>")
    result = gbp("explain", photos, "--report", "-o", out, "-q")
    assert result.exit_code == 2 and "index.html is not a file gbp wrote" in result.output
    assert (out / "index.html").read_text() == "<p>my own page</p>"
    assert not (out / "index.json").exists()


def test_jobs_that_publish_at_once_lose_no_rows(tmp_path: Path) -> None:
    """The read-merge-write is locked: shards finishing together all end up on the page."""
    out = tmp_path / "out"

    def job(n: int) -> None:
        rows = [
            {"kind": "explain", "key": f"/{n}/{i}", "input": f"{n}/{i}.png", "status": "kept"}
            for i in range(20)
        ]
        gallery.publish(out, rows, {"command": "explain"})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(job, range(16)))
    assert len(data_of(out)["rows"]) == 16 * 20 and len(data_of(out)["runs"]) == 16
    assert not list(out.glob(".*.part"))


def test_sanity_rows_carry_the_figures_the_table_and_the_warning(tmp_path: Path) -> None:
    out = sanity_page(tmp_path)
    (row, failed) = data_of(out)["rows"]
    assert row["kind"] == "sanity" and failed["status"] == "failed"
    assert [m["method"] for m in row["maps"]] == ["similarity against depth", "maps"]
    assert len(row["table"]) == 3 and row["table"][0] == [
        "guided",
        "classifier",
        0.9,
        0.8,
        0.7,
        0.6,
    ]
    assert len(row["warnings"]) == 1 and "least likely class" in row["warnings"][0]
    assert data_of(out)["runs"][0]["command"] == "sanity"


STAGES = ("classifier", "block4", "block3")  # a stand-in cascade's stages


@pytest.mark.sanity
@pytest.mark.usefixtures("fake")
def test_sanity_report_from_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`gbp sanity --report`, with a stand-in cascade (the real one takes minutes on a CPU)."""
    import numpy as np

    from gbp_cli.sanity import cascade as randomization
    from gbp_cli.sanity.similarity import Similarity

    def cascade(backend, names, images, methods, on_stage=None):
        stages = (*STAGES, randomization.CLASS_CHECK)
        rng = np.random.default_rng(0)
        maps = {
            stage: {m: rng.normal(size=(len(names), 1, 224, 224, 3)) for m in methods}
            for stage in ("original", *stages)
        }
        same = Similarity(0.95, 0.9, 0.8, 0.7)
        return [
            randomization.Record(n, m, s, same) for n in names for m in methods for s in stages
        ], maps

    monkeypatch.setattr(randomization, "cascade", cascade)
    photos = folder_of_photos(tmp_path / "photos", 2)
    (photos / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "sanity"
    result = gbp("sanity", photos, "--method", "guided", "--report", "-o", out, "-q")
    assert result.exit_code == 1, result.output
    rows = rows_of(out)
    assert sorted(rows) == ["broken.png", "p00.png", "p01.png"]
    assert rows["broken.png"]["status"] == "failed"
    good = rows["p00.png"]
    assert [text for text, _ in good["files"]] == ["p00.sanity.png", "p00.sanity-maps.png"]
    assert len(good["table"]) == len(STAGES) + 1 and len(good["warnings"]) == 1
    assert all((out / m["thumb"]).is_file() for m in good["maps"])
    assert data_of(out)["runs"][0]["command"] == "sanity"


def sanity_page(tmp_path: Path) -> Path:
    """A sanity page from stand-in figures and numbers (the real cascade takes minutes)."""
    from gbp_cli.sanity.cascade import CLASS_CHECK

    out = tmp_path / "sanity"
    photo = make_photo(tmp_path / "cat.png")
    make_photo(out / "cat.sanity.png", size=(1200, 360), seed=3)
    make_photo(out / "cat.sanity-maps.png", size=(520, 500), seed=4)
    numbers = {"spearman_abs": 0.9, "spearman": 0.8, "ssim": 0.7, "hog_pearson": 0.6}
    records = [
        {"input": str(photo), "method": "guided", "stage": stage, **numbers}
        for stage in ("classifier", "block4", CLASS_CHECK)
    ]
    entries = [
        {"input": str(photo), "files": [out / "cat.sanity.png", out / "cat.sanity-maps.png"]},
        {"input": str(tmp_path / "bad.png"), "error": "not an image PIL can read"},
    ]
    entries[0]["records"] = records
    run = {"command": "sanity", "model": "densenet201", "backend": "torch", "weights": "random"}
    gallery.update(out, entries, {**run, "random": True, "methods": ["guided"], "seconds": 1.0})
    return out


# --- in a real browser -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium driven by Selenium, with the driver given (nothing is downloaded)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"no {' and '.join(missing)}: apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never fetch a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-dev-shm-usage", "--window-size=1280,900",
    ):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver, page: Path) -> None:
    driver.get_log("browser")  # forget the previous page's messages
    driver.get(page.as_uri())
    driver.execute_script("return document.readyState")


def errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def shown_rows(driver) -> list[dict]:
    """Each drawn row's label, path and probability (in percent; -1 if none), in page order."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#rows .row')].map(r => {"
        " const p = (r.querySelector('.prob')?.textContent || '').match(/([0-9.]+)%/);"
        " return {label: r.querySelector('h2').firstChild.textContent,"
        "  path: r.querySelector('.path').textContent, p: p ? parseFloat(p[1]) : -1}; })"
    )


def wait_for_images(driver) -> list[str]:
    """Scroll every picture into view; the ones that did not load (naturalWidth 0)."""
    from selenium.webdriver.support.ui import WebDriverWait

    images = driver.find_elements("css selector", "#rows img")
    for image in images:
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", image)
        WebDriverWait(driver, 10).until(lambda d, i=image: d.execute_script(
            "return arguments[0].complete", i))  # fmt: skip
    return [
        image.get_attribute("src")
        for image in images
        if not driver.execute_script("return arguments[0].naturalWidth", image)
    ]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of the stand-in backend over six photos (one with an odd name), a corrupt file
    and a missing one."""
    from gbp_cli import backends

    root = tmp_path_factory.mktemp("browser")
    photos = folder_of_photos(root / "photos", 5, size=(120, 90))
    make_photo(photos / ODD, seed=9)
    (photos / "broken.png").write_bytes(b"not an image")
    with backends.registered("torch", "tests.fake_backend"):
        result = gbp(
            "explain", photos, root / "missing.jpg", "--report", "--weights", "random",
            "--method", "guided", "--method", "gradcam", "--format", "color", "--format", "npy",
            "-o", root / "out", "-q",
        )  # fmt: skip
    assert result.exit_code == 1, result.output
    return root / "out"


def test_the_page_in_a_real_browser(browser, sample: Path) -> None:
    open_page(browser, sample / "index.html")
    assert errors(browser) == []
    rows = shown_rows(browser)
    good = [r for r in data_of(sample)["rows"] if r["status"] != "failed"]
    assert len(rows) == len(good) == 6
    assert browser.find_element("id", "warning").text.startswith("RANDOM weights (untrained")
    assert wait_for_images(browser) == []
    assert len(browser.find_elements("css selector", "#rows img")) == 6 * 3  # photo, 2 maps
    failed = browser.find_element("id", "failed").text
    assert "broken.png" in failed and "missing.jpg: no such file" in failed
    # The odd name is text, not markup: no element or script came out of it.
    assert any(r["path"].endswith(ODD) for r in rows)
    assert browser.execute_script("return document.scripts.length") == 2
    assert browser.execute_script("return document.querySelectorAll('#rows b').length") == 0
    assert errors(browser) == []


def test_filter_and_sort(browser, sample: Path) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    open_page(browser, sample / "index.html")
    rows = shown_rows(browser)
    assert [r["path"] for r in rows] == sorted((r["path"] for r in rows), key=str.lower)
    Select(browser.find_element("id", "sort")).select_by_value("p-desc")
    ps = [r["p"] for r in shown_rows(browser)]
    assert ps == sorted(ps, reverse=True) and ps[0] > ps[-1]
    Select(browser.find_element("id", "sort")).select_by_value("p-asc")
    assert [r["p"] for r in shown_rows(browser)] == sorted(ps)
    label = rows[0]["label"]
    wanted = sum(label.lower() in f"{r['label']}\n{r['path']}".lower() for r in rows)
    box = browser.find_element("id", "filter")
    box.send_keys(label)
    WebDriverWait(browser, 5).until(lambda d: len(shown_rows(d)) == wanted)
    assert all(r["label"] == label for r in shown_rows(browser))
    assert f"Showing {wanted} of 6" in browser.find_element("id", "shown").text
    box.send_keys(Keys.CONTROL, "a", Keys.DELETE)
    box.send_keys("café")  # by path
    WebDriverWait(browser, 5).until(lambda d: len(shown_rows(d)) == 1)
    assert shown_rows(browser)[0]["path"].endswith(ODD)
    box.send_keys(Keys.CONTROL, "a", Keys.DELETE)
    box.send_keys("no such thing")
    WebDriverWait(browser, 5).until(lambda d: len(shown_rows(d)) == 0)
    # Keyboard: every control is labelled, and Tab reaches the filter.
    labelled = "return [...document.querySelectorAll('input, select')].every(e => e.labels.length)"
    assert browser.execute_script(labelled)
    browser.find_element("tag name", "body").click()
    for _ in range(4):
        if browser.execute_script("return document.activeElement.id") == "filter":
            break
        browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.execute_script("return document.activeElement.id") == "filter"
    assert errors(browser) == []


def test_readable_on_a_phone(browser, sample: Path) -> None:
    browser.set_window_size(390, 844)
    try:
        open_page(browser, sample / "index.html")
        wide = "return document.documentElement.scrollWidth <= window.innerWidth"
        assert browser.execute_script(wide)
        width = browser.execute_script(
            "return document.querySelector('#rows img').getBoundingClientRect().width"
        )
        assert 60 < width < 200  # three pictures to a line
    finally:
        browser.set_window_size(1280, 900)


def test_the_sanity_page_in_a_real_browser(browser, tmp_path: Path) -> None:
    out = sanity_page(tmp_path)
    open_page(browser, out / "index.html")
    assert wait_for_images(browser) == []
    assert len(browser.find_elements("css selector", "#rows img")) == 3
    cells = browser.find_elements("css selector", "#rows table tbody tr")
    assert len(cells) == 3 and "0.900" in cells[0].text
    assert "least likely class" in browser.find_element("css selector", ".note").text
    assert "bad.png" in browser.find_element("id", "failed").text
    assert errors(browser) == []


def test_thousands_of_rows_render_a_few_at_a_time(browser, tmp_path: Path) -> None:
    """10,000 rows: the page draws the first ones at once, and more as the reader scrolls."""
    out = tmp_path / "big"
    rows = [
        {"kind": "explain", "key": f"/p/{i}", "input": f"photos/{i:05d}.jpg", "status": "explained",
         "label": ("tabby", "lion", "pole")[i % 3], "index": i % 3, "probability": (i % 97) / 97}
        for i in range(10_000)
    ]  # fmt: skip
    gallery.publish(out, rows, {"command": "explain", "model": "densenet201"})
    open_page(browser, out / "index.html")
    assert browser.execute_script("return window.GBP_RENDERED") < 10_000  # ms, a slow machine
    drawn = browser.execute_script("return document.querySelectorAll('#rows .row').length")
    assert 0 < drawn < 200
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    more = "return document.querySelectorAll('#rows .row').length"
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 5).until(lambda d: d.execute_script(more) > drawn)
    box = browser.find_element("id", "filter")
    box.send_keys("lion")
    WebDriverWait(browser, 5).until(
        lambda d: "Showing 3,333 of 10,000" in d.find_element("id", "shown").text
    )
    assert errors(browser) == []


# --- names that are not UTF-8, or that a URL would misread (issue 23) -------------------------

NAMES = [
    os.fsdecode(b"caf\xe9.png"),  # Latin-1: not UTF-8
    "a b#c?d%e.png",  # a space, a fragment, a query, a percent
    "100%25 sure.png",  # already "percent-encoded": must not be decoded twice
    "x:y.png",  # would read as a scheme
    os.fsdecode(b"d\xfcr/\xff inner.png"),  # a folder and a file, neither UTF-8
]


@pytest.fixture
def odd_names(tmp_path: Path, fake: None) -> Path:
    photos = tmp_path / "photos"
    for i, name in enumerate(NAMES):
        try:
            make_photo(photos / name, seed=i)
        except (OSError, UnicodeEncodeError):
            pytest.skip(f"this file system refuses the name {name!r}")
    out = tmp_path / "out"
    result = gbp("explain", photos, "--report", "--method", "guided", "--method", "gradcam",
                 "-o", out, "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def target(out: Path, href: str) -> bytes:
    """The file a relative link from the page names: its bytes, resolved."""
    return os.path.realpath(os.path.join(os.fsencode(out), unquote_to_bytes(href)))


def test_links_name_the_bytes_of_odd_file_names_and_the_page_shows_them_readably(
    odd_names: Path,
) -> None:
    out = odd_names
    photos = out.parent / "photos"
    rows = {row["input"]: row for row in data_of(out)["rows"]}
    assert sorted(rows) == sorted(printable(str(photos / name)) for name in NAMES)
    for name in NAMES:
        row = rows[printable(str(photos / name))]
        assert row["status"] == "explained"
        assert target(out, row["photo"]) == os.fsencode(os.path.realpath(photos / name))
        links = [row["photo"], row["thumb"], *(m["thumb"] for m in row["maps"])]
        links += [m["file"] for m in row["maps"]] + [href for _, href in row["files"]]
        for href in links:
            assert set(href) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "0123456789_.-~/%"), href  # fmt: skip
            assert os.path.isfile(target(out, href)), href
        for thumb in [row["thumb"], *(m["thumb"] for m in row["maps"])]:
            with Image.open(target(out, thumb)) as image:
                assert image.format == "JPEG"
        for text, href in row["files"]:  # shown as stdout shows it, linked to the bytes
            assert text == printable(os.fsdecode(unquote_to_bytes(href)))
    assert "\\xe9" in json.dumps(data_of(out))  # shown `\xe9`, as on stdout


def test_odd_file_names_load_and_link_in_a_real_browser(browser, odd_names: Path) -> None:
    out = odd_names
    open_page(browser, out / "index.html")
    assert wait_for_images(browser) == []  # every thumbnail loaded
    assert len(browser.find_elements("css selector", "#rows img")) == len(NAMES) * 3
    resolved = browser.execute_script(
        "return [...document.querySelectorAll('#rows a')].map(a => a.href)"
    )
    photos = out.parent / "photos"
    wanted = {os.fsencode(os.path.realpath(photos / name)) for name in NAMES}
    found = set()
    for href in resolved:
        parts = urlsplit(href)
        assert parts.scheme == "file" and not parts.query and not parts.fragment, href
        path = unquote_to_bytes(parts.path)
        assert os.path.isfile(path), href
        found.add(os.path.realpath(path))
    assert wanted <= found
    shown = browser.execute_script(
        "return [...document.querySelectorAll('#rows .path')].map(p => p.textContent)"
    )
    assert sorted(shown) == sorted(printable(str(photos / name)) for name in NAMES)
    assert errors(browser) == []


def test_ci_installs_chromium_before_the_tests() -> None:
    script = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert "chromium-driver" in script and script.index("chromium") < script.index("exec bash")
