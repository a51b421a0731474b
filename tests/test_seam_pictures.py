"""Pictures of the seams: the grid drawn is the plan's, crops lie on tile borders, files are
written and embedded in the reports.

The ground truth for where tiles meet comes from the tiling engine itself (``plan_step``'s
windows at offset 0, scaled to image px): an image whose value is the set of tiles covering
each pixel changes exactly at the borders, independently of how the pictures compute them.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
import torch
from PIL import Image

from baselines.tiling import TilingConfig, plan_step
from benchmark import api
from benchmark.reporting import seam_pictures as pictures
from benchmark.reporting.report import write_report
from benchmark.runs.records import write_json
from benchmark.spec import RunSpec
from test_model_tables import make_run

FACTOR = 4  # image px per latent px of the x4 upscaler


def record(size, working, crop, tile_px, index=0) -> dict:
    return {"index": index, "item": f"{index:09d}", "size": list(size),
            "output": {"working_size": list(working), "crop_top_left": list(crop), "cropped": tuple(size) != working},
            "stage2": {"tile_plan": {"tile_px": tile_px, "reset_every": 4}}}


def coverage_image(size, working, crop, tile_px, seed=0) -> np.ndarray:
    """H×W×3 uint8: each pixel coloured by the set of non-overlap tiles (the engine's plan) covering it."""
    latent = (working[0] // FACTOR, working[1] // FACTOR)
    plan = plan_step(latent, TilingConfig("nonoverlap", tile=tile_px // FACTOR, offset_range=0))
    rng = np.random.default_rng(seed)
    codes = np.zeros(working, dtype=np.uint64)  # a sum of random 62-bit tags: one code per set of tiles
    for top, left in plan.windows:
        h, w = plan.tile_hw
        codes[top * FACTOR:(top + h) * FACTOR, left * FACTOR:(left + w) * FACTOR] += np.uint64(rng.integers(1, 1 << 62))
    sets, ids = np.unique(codes, return_inverse=True)
    colours = rng.choice(1 << 24, size=len(sets), replace=False)  # all distinct
    image = np.stack([(colours[ids.reshape(working)] >> shift) & 255 for shift in (16, 8, 0)], axis=-1).astype(np.uint8)
    return image[crop[0]:crop[0] + size[0], crop[1]:crop[1] + size[1]]


def random_case(rng: random.Random):
    tile_px = FACTOR * rng.choice([8, 16, 32])
    working = tuple(FACTOR * rng.randint(5, 70) for _ in range(2))
    size = tuple(rng.randint(max(16, n - 3 * FACTOR), n) for n in working)
    crop = tuple((w - s) // 2 for w, s in zip(working, size))
    return size, working, crop, tile_px


def true_borders(image: np.ndarray) -> tuple[list[int], list[int]]:
    """Where the colour changes: rows p with image[p] != image[p - 1], and columns alike."""
    pixels = image.astype(int)
    rows = np.flatnonzero(np.any(pixels[1:] != pixels[:-1], axis=(1, 2))) + 1
    columns = np.flatnonzero(np.any(pixels[:, 1:] != pixels[:, :-1], axis=(0, 2))) + 1
    return rows.tolist(), columns.tolist()


def test_borders_from_the_record_are_where_the_plans_tiles_meet():
    rng = random.Random(0)
    for _ in range(60):
        size, working, crop, tile_px = random_case(rng)
        image = coverage_image(size, working, crop, tile_px)
        assert pictures.output_borders(record(size, working, crop, tile_px)) == true_borders(image)
        energy = pictures.jump_energy(torch.from_numpy(image.astype(np.float64)).permute(2, 0, 1))
        rows, columns = true_borders(image)
        on_grid = np.isin(np.arange(size[0]), rows)[:, None] | np.isin(np.arange(size[1]), columns)[None, :]
        assert np.array_equal(energy > 0, on_grid)  # the jump energy lights the borders and nothing else


def grid_positions(drawn: np.ndarray) -> tuple[set[int], set[int], np.ndarray]:
    mask = np.all(drawn == pictures.GRID, axis=2)
    full_rows = {r for r in range(mask.shape[0]) if mask[r].sum() >= mask.shape[1] // 2}
    full_columns = {c for c in range(mask.shape[1]) if mask[:, c].sum() >= mask.shape[0] // 2}
    return full_rows, full_columns, mask


@pytest.mark.parametrize("factor", [1, 3])
def test_the_grid_drawn_is_the_plans_grid_and_nothing_else(factor):
    rng = random.Random(factor)
    for _ in range(40):
        size, working, crop, tile_px = random_case(rng)
        rows, columns = pictures.output_borders(record(size, working, crop, tile_px))
        shape = (-(-size[0] // factor), -(-size[1] // factor))
        drawn = pictures.draw_grid(np.zeros(shape + (3,), dtype=np.uint8), rows, columns, factor)
        full_rows, full_columns, mask = grid_positions(drawn)
        assert full_rows == {min(p // factor, shape[0] - 1) for p in rows}
        assert full_columns == {min(p // factor, shape[1] - 1) for p in columns}
        off_grid = mask.copy()
        off_grid[sorted(full_rows), :] = False
        off_grid[:, sorted(full_columns)] = False
        assert not off_grid.any()


def test_crops_are_centred_on_tile_borders_inside_the_image():
    rng = random.Random(1)
    for _ in range(60):
        size, working, crop, tile_px = random_case(rng)
        rows, columns = pictures.output_borders(record(size, working, crop, tile_px))
        side = min(pictures.CROP, *size)
        windows = pictures.crop_windows(size, rows, columns)
        assert len(windows) == min(pictures.CROPS, max(len(rows), 1) * max(len(columns), 1)) if rows or columns \
            else windows == []
        for top, left in windows:
            assert 0 <= top <= size[0] - side and 0 <= left <= size[1] - side
            on_row = any(top < p < top + side for p in rows)
            on_column = any(left < p < left + side for p in columns)
            assert on_row or on_column
            centre = (top + side // 2, left + side // 2)
            assert (not rows or centre[0] in rows or top in (0, size[0] - side)) and \
                   (not columns or centre[1] in columns or left in (0, size[1] - side))


def _fake_run(folder, method, images, records, **kwargs):
    run = make_run(method, sizes=[tuple(r["size"]) for r in records], **kwargs)
    for row, image, rec in zip(run["per_image"], images, records):
        row["image"] = f"samples/{rec['index']:05d}.image.png"
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / row["image"])
        write_json(folder / "samples" / f"{rec['index']:05d}.json", rec)
    write_json(folder / "results.json", run)
    return run


def test_model_pictures_are_written_embedded_and_their_crops_lie_on_the_records_borders(tmp_path):
    size, working, crop, tile_px = (700, 1000), (704, 1024), (2, 12), 512
    rec = record(size, working, crop, tile_px)
    seamed = coverage_image(size, working, crop, tile_px)
    smooth = np.full(size + (3,), 128, dtype=np.uint8)
    twin = _fake_run(tmp_path / "runs" / "ar-tile", "ar-tile", [seamed], [rec])
    twin["sr_tiling"] = {"strategy": "nonoverlap", "tile": 128, "weighting": "gaussian", "tile_batch_size": 1}
    write_json(tmp_path / "runs" / "ar-tile" / "results.json", twin)
    _fake_run(tmp_path / "runs" / "asd", "asd", [smooth], [rec])
    [path] = write_report(tmp_path / "runs", tmp_path / "reports")
    text = path.read_text()
    section = text.split(f"## {'Seams, seen'}", 1)[1]
    [link] = re.findall(r"!\[[^\]]*\]\((figures/seams-[^)]+\.png)\)", section)
    picture = Image.open(tmp_path / "reports" / link)
    assert picture.size[0] > 2 * pictures.OVERVIEW and picture.size[1] > pictures.OVERVIEW
    assert "`asd` (implicit) beside `ar-tile` (nonoverlap)" in section
    assert "profile `tiny`" in section and "backbone SD x4 upscaler" in section
    assert "Random weights" in section and "no quality claim" in section
    rows, columns = pictures.output_borders(rec)
    assert rows == [190, 510] and columns == [500]  # 192 and 512 less the crop (2, 12)
    crops = [tuple(map(int, c)) for c in re.findall(r"\((\d+), (\d+)\)", section.split("Crops at", 1)[1].split(".")[0])]
    assert crops == [(190 - 32, 500 - 32), (510 - 32, 500 - 32)]
    assert "No tiled run" not in section


def test_a_report_without_twins_says_so_and_links_no_picture(tmp_path):
    write_json(tmp_path / "runs" / "a" / "results.json", make_run("asd"))
    [path] = write_report(tmp_path / "runs", tmp_path / "reports")
    assert "No tiled run beside its no-overlap twin" in path.read_text()
    assert not list((tmp_path / "reports").glob("figures/seams-*"))


def test_oracle_pictures_show_the_three_tilings_latents(tmp_path):
    runs = tmp_path / "runs"
    for tiling in ("nonoverlap", "explicit", "implicit"):
        api.run(RunSpec("fstd", tiling=tiling, size=(1024, 1024), steps=2, limit=1, progress=False, runs=runs))
    written = write_report(runs, tmp_path / "reports")
    text = (tmp_path / "reports" / "oracle.md").read_text()
    assert tmp_path / "reports" / "oracle.md" in written
    [link] = re.findall(r"!\[oracle latents with the tile grid\]\((figures/seams-oracle-[^)]+\.png)\)", text)
    picture = np.asarray(Image.open(tmp_path / "reports" / link).convert("RGB"))
    assert picture.shape[0] > 3 * pictures.OVERVIEW  # three rows
    assert "no overlap, explicit overlap 32, implicit, random offset: latent channel 0" in text
    assert "grid of 64 latent px" in text and "profile `oracle` (no weights" in text
