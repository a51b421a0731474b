"""The report's static site (issue 27): escaping, tile pyramids, table cells, and the pages in a real browser.

The browser tests load the site in headless Chromium (Debian's ``chromium``; ``.ci/run`` installs it) from
the file system, as a reader opens it, and read back the DOM after the page's script ran (``--dump-dom``)
and Chromium's console (``--enable-logging=stderr``: every console message is a ``CONSOLE`` line). The
gallery is driven through the URL: ``#probe`` makes the page wheel-zoom its first image, drag its last and
write every panel's transform into the DOM. One tiny site serves the whole module: two runs (``sr-plus``
and a tiling ``sr-tile``, one image each, one step) made from a prompt that tries to inject a script.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from xml.etree import ElementTree
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import one_thread
from PIL import Image

from benchmark import api
from benchmark.reporting.site import write_site
from benchmark.reporting.site.gallery import collect_items
from benchmark.metrics.registry import TEXT_TO_IMAGE
from benchmark.reporting.site.pages import page, script_json
from benchmark.reporting.site.plots import interval_chart, memory_and_time
from benchmark.reporting.site.pyramid import level_sizes, tile_image, write_pyramid
from benchmark.reporting.site.tables import Cell, score_cell, site_tables
from benchmark.spec import RunSpec

INJECTED = '<script>alert(1)</script><img src=x onerror="document.body.dataset.pwned=1"> "quoted" ünïcode'
METHODS = {"sr-plus": {}, "sr-tile": {"tile": 32, "offset_range": 16}}  # sr-tile: 128-px tiles on 256×512
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    runs = tmp_path_factory.mktemp("site-runs")
    with one_thread():
        for method, tiling in METHODS.items():
            api.run(RunSpec(method, prompt=INJECTED, size=(256, 512), steps=1, sr_steps=1, runs=runs,
                            progress=False, bootstrap=0, **tiling))
    written = api.report(runs)
    # The same runs with every image as a pyramid (256×512: two levels), for the viewer's tiles.
    pyramids = write_site(runs, runs / "pyramids", pyramid_above=0)
    return SimpleNamespace(runs=runs, written=written, index=written[-1], pyramids=pyramids)


# --- without a browser ---------------------------------------------------------------------------------------

def test_recorded_strings_are_escaped():
    text = page(INJECTED, "", "")
    assert "<script>alert(1)" not in text and "<title>&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x " in text
    assert 'onerror=&quot;document.body.dataset.pwned=1&quot;&gt; &quot;quoted&quot; ünïcode' in text
    data = script_json({"prompt": "</script><!-- & \u2028"})
    assert not set("<>&\u2028") & set(data)
    assert json.loads(data) == {"prompt": "</script><!-- & \u2028"}


def test_pyramid_of_an_8192_square(tmp_path):
    gradient = Image.linear_gradient("L").resize((8192, 8192), Image.Resampling.NEAREST)
    record = tile_image(gradient, tmp_path)
    assert record == {"width": 8192, "height": 8192, "tile": 256, "levels": 6}
    counts = [len(list((tmp_path / str(level)).glob("*.png"))) for level in range(6)]
    assert counts == [1024, 256, 64, 16, 4, 1] and sum(counts) == 1365
    with Image.open(tmp_path / "5" / "0_0.png") as top:
        assert top.size == (256, 256) and top.getpixel((0, 0))[0] < top.getpixel((0, 255))[0]  # the gradient


def test_pyramid_levels_round_up_and_tiles_are_reused(tmp_path):
    assert level_sizes(1000, 600) == [(1000, 600), (500, 300), (250, 150)]
    source = tmp_path / "image.png"
    Image.new("RGB", (1000, 600), (10, 20, 30)).save(source)
    assert write_pyramid(source, tmp_path / "tiles")["levels"] == 3
    edge = tmp_path / "tiles" / "0" / "2_3.png"
    with Image.open(edge) as tile:
        assert tile.size == (1000 - 3 * 256, 600 - 2 * 256)
    with Image.open(tmp_path / "tiles" / "1" / "1_1.png") as tile:
        assert tile.size == (500 - 256, 300 - 256)  # PIL's reduce rounds up as level_sizes does
    written = edge.stat().st_mtime_ns
    write_pyramid(source, tmp_path / "tiles")
    assert edge.stat().st_mtime_ns == written  # unchanged source: tiles reused
    Image.new("RGB", (300, 300)).save(source)
    assert write_pyramid(source, tmp_path / "tiles")["levels"] == 2 and not edge.exists()


def test_score_cells_keep_the_reports_text_and_sort_by_the_record():
    result = {"samples": 8, "scores": {"clip_score": 0.5, "fid": None, "intervals": {
        "clip_score": {"low": 0.4, "high": 0.61}}}}
    assert score_cell(result, "clip_score", 2) == Cell("0.50", 0.5, "[0.40, 0.61]")
    assert score_cell(result, "fid", 2).text == "skipped" and score_cell(result, "fid", 2).sort is None
    assert score_cell({"samples": 1}, "fid", 2).text == "not scored"


def test_plots_are_svg_with_every_series_and_escaped_labels():
    def run(method, side, mib, seconds):
        return {"method": method, "task": TEXT_TO_IMAGE, "samples": 1, "environment": {"date": "2025-01-01"},
                "per_image": [{"size": [side, side], "peak_memory_mib": mib, "seconds": seconds, "status": "ok"}]}
    search = {"method": "asd", "budget": {"text": "8GiB", "bytes": 8 << 30}, "trials": [
        {"side": 4096, "status": "ok", "peak_memory_mib": 7000, "seconds": 4.0},
        {"side": 8192, "status": "oom", "peak_memory_mib": 8100, "seconds": None}]}
    memory, seconds = memory_and_time([run("asd", 1024, 2000, 3.0), run("asd", 2048, 5000, 9.0)], [search])
    lines = ElementTree.fromstring(memory).findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 3  # ours, the ceiling search, the paper's Figure 7 (the OOM trial is a cross)
    assert "asd out of memory" in memory and "8GiB, 1 step per stage" in seconds
    chart = interval_chart("CLIP <b>", [("asd <x>", 0.3, 0.25, 0.35), ("sr-plus", 0.28, None, None)])
    assert "&lt;x&gt;" in chart
    assert ElementTree.fromstring(chart).find("{http://www.w3.org/2000/svg}title").text == "CLIP <b>"


def _fake_run(folder: Path, method: str, items: list[str], dataset: dict | None):
    (folder / "samples").mkdir(parents=True)
    rows = []
    for index, item in enumerate(items):
        Image.new("RGB", (16, 8)).save(folder / "samples" / f"{index:05d}.image.png")
        (folder / "samples" / f"{index:05d}.json").write_text(json.dumps({"prompt": f"caption {item}"}))
        rows.append({"index": index, "item": item, "image": f"samples/{index:05d}.image.png", "size": [8, 16]})
    (folder / "results.json").write_text(json.dumps({"method": method, "profile": "tiny", "dataset": dataset,
                                                     "per_image": rows}))


def test_gallery_items_group_every_methods_image_of_a_data_set_item(tmp_path):
    dataset = {"name": "synthetic", "manifest_hash": "abc"}
    _fake_run(tmp_path / "tiny" / "sr-plus" / "a", "sr-plus", ["1", "2"], dataset)
    _fake_run(tmp_path / "tiny" / "asd" / "b", "asd", ["2", "1"], dataset)
    _fake_run(tmp_path / "ceiling" / "tiny" / "asd-1GiB" / "trials" / "s8", "asd", [None], None)
    items = collect_items(tmp_path)
    assert [(item.dataset, item.key, sorted(p.result["method"] for p in item.panels)) for item in items] == [
        ("synthetic", "1", ["asd", "sr-plus"]), ("synthetic", "2", ["asd", "sr-plus"]), (None, "caption None", ["asd"])]
    assert items[-1].panels[0].ceiling and not items[0].panels[0].ceiling


def test_site_tables_have_a_row_per_run_sorted_by_recorded_numbers(site):
    results = [json.loads(path.read_text()) for path in sorted((site.runs / "tiny").rglob("results.json"))]
    (table,) = site_tables(results)
    assert [run["method"] for run in table.runs] == list(METHODS)
    seconds = table.columns.index("s / image")
    assert [row[seconds].sort for row in table.rows] == [run["seconds_per_image"] for run in table.runs]
    clip = table.columns.index("CLIP↑")
    assert [row[clip].sort for row in table.rows] == [run["scores"]["clip_score"] for run in table.runs]
    assert site.written[-1] == site.runs / "reports" / "site" / "index.html"


def test_site_links_only_its_own_files(site):
    """Nothing is fetched from a network: every src and href is a relative path."""
    pages = sorted(site.index.parent.glob("*.html"))
    assert len(pages) == 3  # index, gallery, one item
    for path in pages:
        for _, attrs in Elements(path.read_text()).tags:
            for name in ("src", "href"):
                assert not re.match(r"^([a-z]+:|//)", attrs.get(name, "")), (path.name, attrs)


# --- in Chromium ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install -y chromium; .ci/run installs it where it can)")
    probe = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=60)
    if probe.returncode:
        pytest.skip(f"{CHROMIUM} does not start: {probe.stderr.strip()[-300:]}")
    profile = tmp_path_factory.mktemp("chromium-profile")

    def browse(target: Path, hash: str = "", screenshot: Path | None = None) -> SimpleNamespace:
        """Load ``target`` (a file, with ``hash``), let its script run; the DOM after, the console lines."""
        args = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}", "--virtual-time-budget=4000",
                "--window-size=1280,900", f"--screenshot={screenshot}" if screenshot else "--dump-dom",
                target.resolve().as_uri() + hash]
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return SimpleNamespace(dom=done.stdout, console=[line for line in done.stderr.splitlines() if ":CONSOLE" in line])

    return browse


class Elements(HTMLParser):
    """Every start tag of a document with its attributes, and its text."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.text = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag: str, **attrs) -> list[dict]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def _clean(loaded):
    """No console message, no error caught by the page, and the page's script ran to its end."""
    assert loaded.console == []
    elements = Elements(loaded.dom)
    assert elements.find("html")[0].get("data-ready") == "1" and "data-js-errors" not in elements.find("html")[0]
    return elements


def test_index_shows_every_methods_row_sorted_in_chromium(site, chromium):
    elements = _clean(chromium(site.index, "#sort=-s / image"))
    rows = [attrs["data-method"] for attrs in elements.find("tr") if "data-method" in attrs]
    assert rows == ["sr-tile", "sr-plus"]  # descending seconds per image: sr-tile also upscales
    assert elements.find("th", **{"aria-sort": "descending"})
    assert elements.find("a", href="../tiny.md")


def test_gallery_zooms_every_image_together_and_shows_the_prompt_as_text_in_chromium(site, chromium):
    item = site.index.parent / "item-tiny-0000.html"
    loaded = chromium(item, "#probe")
    elements = _clean(loaded)
    panels = elements.find("figure")
    assert [p["data-method"] for p in panels] == list(METHODS)
    images = [a["src"] for a in elements.find("img")]
    assert len(images) == 2 and all(src.endswith("00000.image.png") for src in images)
    probe = json.loads(re.search(r'<pre id="probe"[^>]*>(.*?)</pre>', loaded.dom, re.S).group(1))
    assert probe["errors"] == 0 and probe["grids"] == 1  # only sr-tile tiles in stage II
    for before, after in (("initial", "wheel"), ("wheel", "drag")):
        assert len(set(probe[after])) == 1 and probe[after] != probe[before]  # all moved, and alike
    scale = [float(re.search(r"scale\(([\d.]+)\)", probe[step][0]).group(1)) for step in ("initial", "wheel")]
    assert scale[1] > scale[0] * 2  # the wheel zoomed in (exp(0.9) times)
    # The prompt is text: no element came from it, no handler ran, and it reads as it was typed.
    assert "data-pwned" not in loaded.dom and "<script>alert(1)" not in loaded.dom
    assert len(elements.find("script")) == 2  # site.js and the viewer's data
    assert INJECTED in "".join(elements.text)


def test_large_images_load_as_tiles_in_chromium(site, chromium):
    loaded = chromium(site.pyramids.parent / "item-tiny-0000.html", "#probe")
    _clean(loaded)
    probe = json.loads(re.search(r'<pre id="probe"[^>]*>(.*?)</pre>', loaded.dom, re.S).group(1))
    for tiles in probe["tiles"]:  # zoomed past 50%: level 0's two tiles of 256×512, both loaded
        assert sorted(tile["src"].rsplit("/", 2)[-2] + "/" + tile["src"].rsplit("/", 1)[-1] for tile in tiles) == [
            "0/0_0.png", "0/0_1.png"]
        assert all(tile["loaded"] for tile in tiles)


def test_gallery_screenshot_is_not_blank(site, chromium, tmp_path):
    shot = tmp_path / "gallery.png"
    chromium(site.index.parent / "item-tiny-0000.html", "#zoom=4&at=256,128&grid", screenshot=shot)
    with Image.open(shot) as picture:
        assert picture.size == (1280, 900)
        colours = picture.convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colours) > 500  # text, toolbar and two images, not a blank page
