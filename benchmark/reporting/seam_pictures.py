"""Pictures of the seams: a tiled method beside its no-overlap twin, at the tile borders.

Seams are seen before they are measured, so each picture puts, for one sample, the method
and its twin in two rows: the whole output downscaled, its jump energy, and 4× crops
around tile borders with their jump energy. The jump energy is the seam score's own
quantity (``benchmark.metrics.seams.squared_jumps``: squared differences to the upper and
the left neighbour, averaged over channels), on a log scale shared by the picture's rows.
The grid drawn is the non-overlap tile grid that the seam score measures, laid as the
sample record says (stage II's ``tile_px`` on the working size, shifted by the output's
crop); on the image crops it is drawn as ticks in the margin so that it hides no pixel.
On the oracle the subject is a latent channel, for no overlap, explicit and implicit.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw

from baselines.profiles import is_analytic
from baselines.registry import methods, oracle_method, stage2_alone
from benchmark.metrics.images import to_rgb_array
from benchmark.metrics.seams import squared_jumps, tile_borders
from benchmark.oracle.study import study_rows
from benchmark.reporting.model_tables import group_of, pick
from benchmark.reporting.oracle_tables import comparable, settings_of
from benchmark.reporting.provenance import commits, devices, has_random_weights
from benchmark.reporting.stage2_tables import table4_runs
from benchmark.runs.records import read_array, read_json

CROP = 64  # image px of a crop around a tile border
ZOOM = 4  # crops are shown at 4×, nearest neighbour
OVERVIEW = 384  # the downscaled whole output fits in this many px
CROPS = 2  # crops per sample: the border crossings nearest the centre
MARGIN = 6  # px around each panel; the crops' ticks are drawn there
LABEL = 16  # px of the text line above each row
GRID = (0, 255, 255)  # cyan: it stands out on the magma energy map and on the latents' red and blue
DASH = 3  # px on, then off, of the grid's dashed lines
CROP_BOX = (255, 0, 255)
GAP = (255, 255, 255)
#: Tiled methods and their no-overlap twins (fstd: tilings, by Table 4's row keys).
FSTD_TWINS = {"implicit-random": "nonoverlap", "explicit": "nonoverlap"}


@dataclass
class Subject:
    """One row of a picture: what is shown (H×W×3 uint8), its jump energy (H×W) and the image px
    where a tile border lies along each axis (between p - 1 and p)."""

    label: str
    view: np.ndarray
    energy: np.ndarray
    rows: list[int]
    columns: list[int]


def jump_energy(values: torch.Tensor) -> np.ndarray:
    """(..., H, W) -> H×W: the jump into each pixel from its upper plus from its left neighbour,
    so a border at p lights row (or column) p."""
    vertical, horizontal = squared_jumps(values, -2), squared_jumps(values, -1)
    energy = torch.zeros(values.shape[-2:], dtype=torch.float64)
    energy[1:, :] += vertical
    energy[:, 1:] += horizontal
    return energy.numpy()


def output_borders(record: dict) -> tuple[list[int], list[int]]:
    """Tile borders of a model sample's output (rows, columns), from its record: the stage II
    non-overlap grid of ``tile_px`` on the working size, moved by the output's crop."""
    tile = record["stage2"]["tile_plan"]["tile_px"]
    output = record["output"]
    borders = []
    for axis in (0, 1):
        start, size = output["crop_top_left"][axis], record["size"][axis]
        borders.append([p - start for p in tile_borders(output["working_size"][axis], tile) if 0 < p - start < size])
    return borders[0], borders[1]


def crop_windows(size: tuple[int, int], rows: list[int], columns: list[int], crop: int = CROP,
                 count: int = CROPS) -> list[tuple[int, int]]:
    """Top-left corners of ``count`` crops centred on tile borders: border crossings nearest the
    centre first (a border and the middle of the other axis where that axis has none)."""
    height, width = size
    side = min(crop, height, width)
    if not rows and not columns:
        return []
    centres = [(y, x) for y in rows or [height // 2] for x in columns or [width // 2]]
    centres.sort(key=lambda c: ((c[0] - height / 2) ** 2 + (c[1] - width / 2) ** 2, c))
    windows = []
    for y, x in centres[:count]:
        windows.append((min(max(y - side // 2, 0), height - side), min(max(x - side // 2, 0), width - side)))
    return windows


def _colours(values: np.ndarray, low: float, high: float, cmap: str) -> np.ndarray:
    scaled = np.clip((values - low) / max(high - low, 1e-12), 0, 1)
    return (matplotlib.colormaps[cmap](scaled)[..., :3] * 255).round().astype(np.uint8)


def energy_view(energy: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    return _colours(np.log10(energy + 1e-12), *scale, "magma")


def energy_scale(subjects: list[np.ndarray]) -> tuple[float, float]:
    """One log scale for every row of a picture (1st to 99.9th percentile of all energies)."""
    logs = np.concatenate([np.log10(e[1:, 1:] + 1e-12).ravel() for e in subjects])
    return float(np.percentile(logs, 1)), float(np.percentile(logs, 99.9))


def downscale_factor(size: tuple[int, int], fit: int = OVERVIEW) -> int:
    return max(1, math.ceil(max(size) / fit))


def reduce_view(view: np.ndarray, factor: int) -> np.ndarray:
    """The view downscaled by an integer factor, box filter (PIL's ``reduce``)."""
    return np.asarray(Image.fromarray(view).reduce(factor)) if factor > 1 else view


def reduce_energy(energy: np.ndarray, factor: int) -> np.ndarray:
    """Block maximum, so that a one-pixel seam stays visible at any downscale."""
    if factor == 1:
        return energy
    height, width = (math.ceil(n / factor) * factor for n in energy.shape)
    padded = np.zeros((height, width))
    padded[:energy.shape[0], :energy.shape[1]] = energy
    return padded.reshape(height // factor, factor, width // factor, factor).max(axis=(1, 3))


def draw_grid(view: np.ndarray, rows: list[int], columns: list[int], factor: int = 1) -> np.ndarray:
    """A copy of ``view`` with the tile borders drawn dashed (what lies under them shows between
    the dashes): border p on the row / column holding pixel p after downscaling by ``factor``."""
    drawn = view.copy()
    height, width = drawn.shape[:2]
    along_rows, along_columns = np.arange(width) % (2 * DASH) < DASH, np.arange(height) % (2 * DASH) < DASH
    for p in rows:
        drawn[min(p // factor, height - 1), along_rows] = GRID
    for p in columns:
        drawn[along_columns, min(p // factor, width - 1)] = GRID
    return drawn


def zoom(view: np.ndarray, factor: int = ZOOM) -> np.ndarray:
    return view.repeat(factor, axis=0).repeat(factor, axis=1)


def framed(view: np.ndarray, rows: list[int] = (), columns: list[int] = ()) -> np.ndarray:
    """``view`` in a white margin, with ticks in the margin at the given rows / columns of the view."""
    height, width = view.shape[:2]
    out = np.full((height + 2 * MARGIN, width + 2 * MARGIN, 3), GAP, dtype=np.uint8)
    out[MARGIN:MARGIN + height, MARGIN:MARGIN + width] = view
    for r in rows:
        out[MARGIN + r, :MARGIN - 1] = out[MARGIN + r, -MARGIN + 1:] = GRID
    for c in columns:
        out[:MARGIN - 1, MARGIN + c] = out[-MARGIN + 1:, MARGIN + c] = GRID
    return out


def crop_panels(subject: Subject, window: tuple[int, int], side: int, scale) -> list[np.ndarray]:
    """A crop of the view (ticks at its borders) and of the jump energy (grid drawn), both ×ZOOM."""
    top, left = window
    rows = [p - top for p in subject.rows if top < p < top + side]
    columns = [p - left for p in subject.columns if left < p < left + side]
    view = zoom(subject.view[top:top + side, left:left + side])
    energy = zoom(energy_view(subject.energy[top:top + side, left:left + side], scale))
    return [framed(view, [r * ZOOM for r in rows], [c * ZOOM for c in columns]),
            framed(draw_grid(energy, [r * ZOOM for r in rows], [c * ZOOM for c in columns]))]


def row_panels(subject: Subject, windows: list[tuple[int, int]], side: int, scale) -> list[np.ndarray]:
    factor = downscale_factor(subject.view.shape[:2])
    overview = reduce_view(subject.view, factor).copy()
    for top, left in windows:  # the crops' places, outlined
        t, l, b, r = top // factor, left // factor, (top + side - 1) // factor, (left + side - 1) // factor
        overview[t, l:r + 1] = overview[b, l:r + 1] = CROP_BOX
        overview[t:b + 1, l] = overview[t:b + 1, r] = CROP_BOX
    panels = [framed(draw_grid(overview, subject.rows, subject.columns, factor)),
              framed(draw_grid(energy_view(reduce_energy(subject.energy, factor), scale),
                               subject.rows, subject.columns, factor))]
    for window in windows:
        panels += crop_panels(subject, window, side, scale)
    return panels


def compose(subjects: list[Subject], windows: list[tuple[int, int]], side: int) -> Image.Image:
    """The picture: one labelled row of panels per subject, the same crops in every row."""
    scale = energy_scale([s.energy for s in subjects])
    rows = [row_panels(s, windows, side, scale) for s in subjects]
    height = max(p.shape[0] for row in rows for p in row)
    width = max(sum(p.shape[1] for p in row) for row in rows)
    canvas = np.full(((height + LABEL) * len(rows), width, 3), GAP, dtype=np.uint8)
    for index, row in enumerate(rows):
        x, y = 0, index * (height + LABEL) + LABEL
        for panel in row:
            canvas[y:y + panel.shape[0], x:x + panel.shape[1]] = panel
            x += panel.shape[1]
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for index, subject in enumerate(subjects):
        draw.text((MARGIN, index * (height + LABEL) + 2), subject.label, fill=(0, 0, 0))
    return picture


def _save(picture: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path


def _weights(result: dict) -> str:
    return "; ".join(f"{stage} {w['model']} ({w['weights']})" for stage, w in result["weights"].items())


def _how(results: list[dict]) -> str:
    first = results[0]
    claim = (" **Random weights: these pictures show where tiles meet, not image quality; no quality "
             "claim.**" if any(has_random_weights(r) for r in results) else "")
    return (f"profile `{first['profile']}`, weights: {_weights(first)}, backbone {first.get('backbone')}, "
            f"device {devices(results)}, commit {commits(results)}.{claim}")


def _layout(side: int, factor: int, zoomed: str = "") -> str:
    return (f"Columns: the whole {zoomed}output downscaled ÷{factor} (box filter) with the tile grid (cyan) and "
            f"the crops (magenta); its jump energy (block maximum ÷{factor}); then for each crop ({side} px, "
            f"top-left corner given) the crop ×{ZOOM} (nearest neighbour; cyan ticks in the margin: tile "
            f"borders) and its jump energy ×{ZOOM} with the grid (dashed, so that the line under it shows). "
            "Jump energy: squared differences to the upper and left neighbours, averaged over channels (the seam score's quantity), log scale shared by the "
            "rows; a seam is a bright line on the grid.")


def _image_subject(label: str, out: Path, record: dict) -> Subject:
    view = to_rgb_array(out / "samples" / f"{record['index']:05d}.image.png")
    rows, columns = output_borders(record)
    return Subject(label, view, jump_energy(torch.from_numpy(view.astype(np.float64)).permute(2, 0, 1)),
                   rows, columns)


def _common_sample(pair: list[tuple[Path, dict]]) -> Optional[list[dict]]:
    """The records of the first sample both runs finished (and kept) whose output has tile borders
    on both axes (else on one); None where no such sample has a border."""
    indices = [{row["index"] for row in result["per_image"] if row.get("status", "ok") == "ok"
                and (out / row["image"]).is_file() and (out / "samples" / f"{row['index']:05d}.json").is_file()}
               for out, result in pair]  # a results.json copied without its samples has nothing to show
    best = None
    for index in sorted(set.intersection(*indices)):
        records = [read_json(out / "samples" / f"{index:05d}.json") for out, _ in pair]
        rows, columns = output_borders(records[0])
        if rows and columns:
            return records
        if (rows or columns) and best is None:
            best = records
    return best


def _tiling_name(result: dict) -> str:
    tiling = result.get("sr_tiling") or {}
    return tiling.get("strategy", "untiled") + (f" {tiling['overlap']}" if "overlap" in tiling else "")


def pair_picture(pair: list[tuple[Path, dict]], path: Path) -> Optional[str]:
    """The picture of a tiled run beside its twin (same group) as markdown (image and caption);
    None where no common sample has a tile border."""
    records = _common_sample(pair)
    if records is None:
        return None
    record = records[0]
    subjects = [_image_subject(f"{result['method']} ({_tiling_name(result)})", out, rec)
                for (out, result), rec in zip(pair, records)]
    for subject, rec in zip(subjects, records):
        subject.label += f", sample {rec['index']} ({rec['size'][0]}x{rec['size'][1]})"
    size = tuple(record["size"])
    side = min(CROP, *size)
    windows = crop_windows(size, subjects[0].rows, subjects[0].columns)
    written = _save(compose(subjects, windows, side), path)
    names = " beside ".join(f"`{result['method']}` ({_tiling_name(result)})" for _, result in pair)
    crops = ", ".join(f"({top}, {left})" for top, left in windows)
    tile = record["stage2"]["tile_plan"]["tile_px"]
    caption = (f"{names}: sample {record['index']} (item {record.get('item')}, {size[0]}×{size[1]} px). "
               f"Grid: the non-overlap tile grid of {tile} px on the working size "
               f"{record['output']['working_size'][0]}×{record['output']['working_size'][1]}, moved by the output's "
               f"crop {tuple(record['output']['crop_top_left'])}: where no-overlap tiles meet and the seam score "
               f"looks (implicit overlap returns to it every {record['stage2']['tile_plan'].get('reset_every', '–')} "
               f"steps). Crops at {crops}. " + _layout(side, downscale_factor(size))
               + " Made from " + _how([result for _, result in pair]))
    return f"![{names}]({written.parent.name}/{written.name})\n\n{caption}\n"


def model_pictures(runs: list[tuple[Path, dict]], figures: Path) -> str:
    """One picture per tiled method and its twin in each group of comparable runs (data set,
    sizes, backbone), the run each table shows (``pick``), as a markdown section body."""
    where = {id(result): out for out, result in runs}
    groups: dict = {}
    for out, result in runs:
        if result.get("dataset") and result.get("sr_tiling") is not None:
            groups.setdefault((group_of(result), result.get("backbone")), []).append(result)
    blocks = []
    for (group, backbone), members in sorted(groups.items(), key=lambda kv: (kv[0][0].title, str(kv[0][1]))):
        by_method = {m: [r for r in members if r["method"] == m] for m in {r["method"] for r in members}}
        alone = by_method.get(stage2_alone().name, [])
        pairs = [(by_method.get(name, []), by_method.get(method.twin, [])) for name, method in methods().items()
                 if method.twin]
        pairs += [(table4_runs(alone, m), table4_runs(alone, t)) for m, t in FSTD_TWINS.items()]
        for tiled, twin in pairs:
            if not tiled or not twin:
                continue
            pair = [(where[id(r)], r) for r in (pick(tiled), pick(twin))]
            name = "-".join([pair[0][1]["method"], _tiling_name(pair[0][1]).replace(" ", ""), "vs",
                             pair[1][1]["method"], _tiling_name(pair[1][1]).replace(" ", "")])
            key = hashlib.sha256(f"{group.title}|{backbone}".encode()).hexdigest()[:8]
            picture = pair_picture(pair, figures / f"seams-{pair[0][1]['profile']}-{key}-{name}.png")
            blocks.append(f"### {group.title}, backbone {backbone}: {name.replace('-vs-', ' vs ')}\n\n"
                          + (picture or "No sample of both runs, kept in their folders, has a tile border.\n"))
    return "\n".join(blocks) if blocks else "No tiled run beside its no-overlap twin on a data set: nothing to show.\n"


ORACLE_ROWS = ("nonoverlap", "explicit", "implicit-random")
ORACLE_SIGMAS = 3  # the latent channel's colour scale: ±3 standard deviations of the unit-variance field


def _latent_subject(label: str, out: Path, result: dict, index: int) -> Subject:
    latent = read_array(out / "samples" / f"{index:05d}.latent.npy")[0].double()
    height, width = latent.shape[-2:]
    factor = max(1, OVERVIEW // max(height, width))  # small latents are shown enlarged
    tile = result["tiling"]["tile"]
    view = _colours(latent[0].numpy(), -ORACLE_SIGMAS, ORACLE_SIGMAS, "RdBu_r")
    return Subject(label, zoom(view, factor), zoom(jump_energy(latent), factor),
                   [p * factor for p in tile_borders(height, tile)], [p * factor for p in tile_borders(width, tile)])


def oracle_pictures(runs: list[tuple[Path, dict]], figures: Path) -> str:
    """For each set of oracle study settings, sample 0's latent for no overlap, explicit and implicit
    overlap (Table 4's rows, the newest run of each) with the tile grid, as a markdown section body."""
    groups: dict = {}
    for out, result in runs:
        if is_analytic(result.get("profile")) and result.get("method") == oracle_method().name:
            groups.setdefault(settings_of(result), []).append((out, result))
    blocks = []
    for settings, members in sorted(groups.items(), key=lambda kv: repr(kv[0])):
        chosen = []
        for key in ORACLE_ROWS:
            row = next(r for r in study_rows() if r.table == "4" and r.key == key)
            fits = [(out, r) for out, r in members
                    if comparable(r["tiling"]) == comparable(row.tiling.as_record())
                    and (out / "samples" / "00000.latent.npy").is_file()]
            if fits:
                chosen.append((row.label, *max(fits, key=lambda m: m[1]["environment"]["date"])))
        if len(chosen) < 2:
            continue
        subjects = [_latent_subject(f"{label}, sample 0", out, result, 0) for label, out, result in chosen]
        size = subjects[0].view.shape[:2]
        side = min(CROP, *size)
        windows = crop_windows(size, subjects[0].rows, subjects[0].columns)
        (height, width), steps = settings[0], settings[1]
        path = _save(compose(subjects, windows, side),
                     figures / f"seams-oracle-{height}x{width}-s{steps}-n{settings[3]}-seed{settings[2]}.png")
        results = [result for _, _, result in chosen]
        latent = results[0]["latent_size"]
        enlarged = size[0] // latent[0]
        caption = (f"{', '.join(label for label, _, _ in chosen)}: latent channel 0 of sample 0 "
                   f"({latent[0]}×{latent[1]} latent px, image {height}×{width}, {steps} steps, seed "
                   f"{settings[2]}), shown ×{enlarged} (colour: ±{ORACLE_SIGMAS} standard deviations of the "
                   f"unit-variance field), with the non-overlap grid of {results[0]['tiling']['tile']} latent px "
                   f"(the seam score's). Crops at {', '.join(f'({t}, {l})' for t, l in windows)} of the enlarged "
                   "latent. " + _layout(side, downscale_factor(size), "enlarged ")
                   + f" Made from profile `oracle` (no weights: {results[0]['weights']}; "
                   f"backbone {results[0]['backbone']}), device {devices(results)}, commit {commits(results)}: "
                   "the seams are the tiling's alone.")
        blocks.append(f"### Latents at {height}×{width} px, {steps} steps\n\n"
                      f"![oracle latents with the tile grid]({path.parent.name}/{path.name})\n\n{caption}\n")
    return "\n".join(blocks)
