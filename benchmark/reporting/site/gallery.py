"""The gallery's items: every image the runs made, grouped so that like is shown beside like.

An item is one data-set item (or one prompt, for runs without a data set) at one size on one
profile; its panels are the images every run made of it, whatever the method. Ceiling searches'
trial images count too (one step per stage, said on the panel): they are the largest images a
profile has, the ones a pyramid is for. Each panel carries its sample record and its per-image
scores as the run wrote them, and, where the method tiles in stage II, the tile borders that the
seam pictures draw (:func:`benchmark.reporting.seam_pictures.output_borders`), so that a seam the
eye finds can be checked against the grid.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from urllib.parse import quote

from baselines.registry import methods
from benchmark.reporting import paper
from benchmark.reporting.ceilings import FOLDER as CEILINGS
from benchmark.reporting.seam_pictures import output_borders
from benchmark.reporting.site.pyramid import PYRAMID_ABOVE, level_sizes, write_pyramid
from benchmark.runs.records import read_json

TILES = "tiles"


@dataclass
class Panel:
    """One image of an item: the run that made it, its ``per_image`` row and its sample record."""

    run: Path
    result: dict
    row: dict
    record: dict
    ceiling: bool

    @property
    def image(self) -> Path:
        return self.run / self.row["image"]

    @property
    def label(self) -> str:
        model = self.result.get("model")
        return self.result["method"] + (f" ({model})" if model and model != "sd21" else "")

    @property
    def scores(self) -> dict:
        """The per-image scores: the row's entries that the run also scores as a whole."""
        names = self.result.get("scores") or {}
        return {key: value for key, value in self.row.items() if key in names}

    def grid(self) -> Optional[dict]:
        """Stage II's tile borders in output pixels, where the method tiles there; else None."""
        plan = (self.record.get("stage2") or {}).get("tile_plan")
        if not plan or plan.get("strategy") in (None, "none") or "output" not in self.record:
            return None
        rows, columns = output_borders(self.record)
        return {"rows": rows, "columns": columns, "tile_px": plan["tile_px"], "strategy": plan["strategy"]}


@dataclass
class Item:
    """One data-set item (or prompt) at one size on one profile, and every image made of it."""

    profile: str
    dataset: Optional[str]
    key: str  # the item's id, or the prompt
    size: tuple[int, int]
    panels: list[Panel] = field(default_factory=list)

    @property
    def title(self) -> str:
        where = (f"{paper.DATASET_NAMES.get(self.dataset, self.dataset)} item {self.key}" if self.dataset
                 else "prompt without a data set")
        return f"{where} at {self.size[0]}×{self.size[1]}"

    @property
    def prompt(self) -> str:
        return self.panels[0].record.get("prompt") or ""


def _panels(run: Path, result: dict, ceiling: bool):
    for row in result.get("per_image") or []:
        if row.get("status", "ok") != "ok" or not row.get("image") or not (run / row["image"]).is_file():
            continue  # oracle runs (latents), unmade samples
        record_path = run / "samples" / (Path(row["image"]).name.split(".")[0] + ".json")
        yield Panel(run, result, row, read_json(record_path) if record_path.is_file() else {}, ceiling)


def collect_items(runs: Path) -> list[Item]:
    """Every item with at least one image under ``runs``, by profile, data set and key."""
    items: dict[tuple, Item] = {}
    for path in sorted(Path(runs).rglob("results.json")):
        run = path.parent
        result = read_json(path)
        ceiling = run.relative_to(runs).parts[0] == CEILINGS
        dataset = (result.get("dataset") or {}).get("name")
        for panel in _panels(run, result, ceiling):
            key = panel.row.get("item") if dataset else panel.record.get("prompt", "")
            size = tuple(panel.row["size"])
            found = items.setdefault((result.get("profile", "?"), dataset or "", str(key), size),
                                     Item(result.get("profile", "?"), dataset, str(key), size))
            found.panels.append(panel)
    order = list(methods())
    for item in items.values():  # methods in registry order (as the tables), a method's runs in path order
        item.panels.sort(key=lambda p: order.index(p.result["method"]) if p.result["method"] in order else len(order))
    return [items[key] for key in sorted(items, key=lambda k: (k[0], k[1] == "", k[1], k[2], k[3]))]


def url(target: Path, site: Path) -> str:
    """A relative URL from the site's pages to a file, as a browser on the file system needs it (a site
    moved with its runs still finds their images)."""
    return quote(Path(os.path.relpath(target.resolve(), site.resolve())).as_posix())


def pyramid_folder(site: Path, image: Path) -> Path:
    return site / TILES / hashlib.sha1(str(image.resolve()).encode()).hexdigest()[:16]


def image_source(panel: Panel, site: Path, pyramid_above: int = PYRAMID_ABOVE) -> dict:
    """What the viewer loads for a panel, as URLs relative to the site's pages (all in ``site``): the PNG
    itself, or (above ``pyramid_above`` pixels) its tiles, written now unless they are already there."""
    height, width = panel.row["size"]
    if width * height <= pyramid_above:
        return {"kind": "image", "src": url(panel.image, site), "width": width, "height": height}
    folder = pyramid_folder(site, panel.image)
    pyramid = write_pyramid(panel.image, folder)
    return {"kind": "pyramid", "base": url(folder, site), **pyramid}


def thumbnail(source: dict) -> str:
    """A small picture of a panel for the gallery's index: the image, or its pyramid's one-tile level."""
    if source["kind"] == "image":
        return source["src"]
    top = len(level_sizes(source["width"], source["height"], source["tile"])) - 1
    return f"{source['base']}/{top}/0_0.png"


def prune_tiles(site: Path, kept: set[Path]):
    """Remove the pyramids of images that are no longer in the runs (a report rewrites what it shows)."""
    for folder in sorted((site / TILES).glob("*")) if (site / TILES).is_dir() else ():
        if folder not in kept:
            shutil.rmtree(folder)


def by_profile(items: list[Item]) -> dict[str, list[Item]]:
    grouped = defaultdict(list)
    for item in items:
        grouped[item.profile].append(item)
    return dict(grouped)
