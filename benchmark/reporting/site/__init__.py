"""The report as a static web site: ``<reports>/site/index.html``, written beside the markdown.

What distinguishes methods at 2048² and beyond is seen, not read (seams, repeated objects, blur),
so the site shows every method's image of an item side by side with one zoom and pan for all, down
to the pixel, and the tables the markdown has, sortable, with each number's interval and
provenance a click away. It opens from the file system in any browser, with no server and no
network: the pages, a style sheet and a script of our own (``assets/``, package data), inline SVG
plots, and the images read where the runs keep them (relative links: move the site with its runs),
large ones as tile pyramids under ``tiles/``.

Modules: :mod:`.tables` (rows from what the reporting computes), :mod:`.gallery` (items and their
images), :mod:`.pyramid` (tiling), :mod:`.plots` (SVG), :mod:`.pages` (HTML, escaping).
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from typing import Iterable

from baselines.profiles import model_profiles
from benchmark.reporting import ceilings
from benchmark.reporting.report import load_runs
from benchmark.reporting.site import pages
from benchmark.reporting.site.gallery import by_profile, collect_items, image_source, pyramid_folder, prune_tiles, url
from benchmark.reporting.site.plots import memory_and_time
from benchmark.reporting.site.pyramid import PYRAMID_ABOVE
from benchmark.reporting.site.tables import site_tables
from benchmark.runs.records import write_atomic

FOLDER = "site"
ASSETS = ("site.css", "site.js")


def _write(path: Path, text: str):
    write_atomic(path, text.encode())


def _item_name(profile: str, number: int) -> str:
    return f"item-{re.sub(r'[^A-Za-z0-9_-]', '_', profile)}-{number:04d}.html"


def write_site(runs: Path, reports: Path, markdown: Iterable[Path] = (), pyramid_above: int = PYRAMID_ABOVE) -> Path:
    """Write the site for the runs under ``runs`` into ``reports/site/``, linking the ``markdown`` reports just
    written; images above ``pyramid_above`` pixels become tile pyramids. Returns the index page."""
    runs, site = Path(runs), Path(reports) / FOLDER
    (site / "assets").mkdir(parents=True, exist_ok=True)
    for name in ASSETS:
        _write(site / "assets" / name, (files(__package__) / "assets" / name).read_text())
    folders = load_runs(runs)
    links = {id(result): url(folder, site) for folder, result in folders}
    markdown_links = [(url(path, site), path.name) for path in markdown]
    profiles = {}
    for profile in model_profiles():
        results = [r for r in (result for _, result in folders) if r.get("profile") == profile and "per_image" in r]
        searches = ceilings.load_ceilings(runs, profile)
        if results or searches:
            profiles[profile] = (site_tables(results, searches), memory_and_time(results, searches))
    items = collect_items(runs)
    for item in items:
        for panel in item.panels:
            links.setdefault(id(panel.result), url(panel.run, site))  # ceiling trials: not among the tables' runs
    written = _gallery(site, by_profile(items), links, markdown_links, pyramid_above)
    for stale in set(site.glob("item-*.html")) - written:
        stale.unlink()
    index = site / pages.INDEX
    _write(index, pages.page("Runs, scores and images", pages.index_body(profiles, links, len(items)), pages.INDEX,
                             markdown_links))
    return index


def _gallery(site: Path, items: dict, links: dict[int, str], markdown: list, pyramid_above: int) -> set[Path]:
    """The item pages and the gallery's index; returns the item pages written."""
    sources, names = {}, {}
    for profile, listed in items.items():
        for number, item in enumerate(listed):
            names[id(item)] = _item_name(profile, number)
            sources[id(item)] = [image_source(panel, site, pyramid_above) for panel in item.panels]
    prune_tiles(site, {pyramid_folder(site, panel.image) for listed in items.values() for item in listed
                       for panel, source in zip(item.panels, sources[id(item)]) if source["kind"] == "pyramid"})
    written = set()
    for listed in items.values():
        for number, item in enumerate(listed):
            path = site / names[id(item)]
            previous = names[id(listed[number - 1])] if number else None
            following = names[id(listed[number + 1])] if number + 1 < len(listed) else None
            _write(path, pages.page(item.title, pages.item_page(item, sources[id(item)], links, previous, following),
                                    "", markdown))
            written.add(path)
    _write(site / pages.GALLERY, pages.page("Gallery", pages.gallery_index(items, names, sources), pages.GALLERY,
                                            markdown))
    return written
