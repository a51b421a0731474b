"""Large images as tiled pyramids, so that the gallery opens a 8192² or 16384² output smoothly.

A browser that shows a 16384² PNG decodes all of its 268 million pixels (about 1 GB) before it
draws one; the gallery instead loads, at each zoom, only the tiles that are on screen from the
level whose pixels are nearest the screen's. Level ``k`` is the image reduced ``2**k`` times (box
filter, sides rounded up, as :meth:`PIL.Image.Image.reduce` does), cut into ``TILE``-px tiles
``<k>/<row>_<column>.png``, down to the level that fits one tile (the gallery's backdrop and
thumbnail). Tiles are written once per image: ``pyramid.json`` records the source's size and
modification time, and a later report reuses the tiles while they match.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from PIL import Image

TILE = 256
#: Images with more pixels than this (a little over 2048²) are shown as pyramids; smaller ones as one PNG.
PYRAMID_ABOVE = 2048 * 2048
RECORD = "pyramid.json"


def level_sizes(width: int, height: int, tile: int = TILE) -> list[tuple[int, int]]:
    """(width, height) of every level, full size first, until one tile holds the level."""
    sizes = [(width, height)]
    while max(sizes[-1]) > tile:
        w, h = sizes[-1]
        sizes.append((math.ceil(w / 2), math.ceil(h / 2)))
    return sizes


def tile_grid(width: int, height: int, tile: int = TILE) -> tuple[int, int]:
    """(rows, columns) of tiles that cover a level of this size."""
    return math.ceil(height / tile), math.ceil(width / tile)


def _stamp(source: Path) -> dict:
    status = source.stat()
    return {"source_bytes": status.st_size, "source_mtime_ns": status.st_mtime_ns}


def open_trusted(path: Path) -> Image.Image:
    """Open one of our own run outputs, whatever its size: PIL refuses images above ~179 MP as
    possible decompression bombs, and a 16384² output is 268 MP. The limit is restored after."""
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        image = Image.open(path)
        image.load()
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return image


def write_pyramid(source: Path, folder: Path, tile: int = TILE) -> dict:
    """Tile ``source`` into ``folder`` (reusing tiles that match it); returns the pyramid's description:
    width, height, tile, levels (the number of levels, full size first)."""
    record_path = folder / RECORD
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if record.get("stamp") == _stamp(source) and record.get("tile") == tile:
            return {key: record[key] for key in ("width", "height", "tile", "levels")}
        shutil.rmtree(folder)
    record = tile_image(open_trusted(source), folder, tile)
    record_path.write_text(json.dumps({**record, "stamp": _stamp(source)}))  # last: a stopped report redoes it
    return record


def tile_image(image: Image.Image, folder: Path, tile: int = TILE) -> dict:
    """Write every level's tiles of ``image`` under ``folder``; returns width, height, tile, levels."""
    image = image.convert("RGB")
    sizes = level_sizes(*image.size, tile)
    for level, _ in enumerate(sizes):
        if level:
            image = image.reduce(2)
        rows, columns = tile_grid(*image.size, tile)
        (folder / str(level)).mkdir(parents=True, exist_ok=True)
        for row in range(rows):
            for column in range(columns):
                box = (column * tile, row * tile, min((column + 1) * tile, image.width),
                       min((row + 1) * tile, image.height))
                image.crop(box).save(folder / str(level) / f"{row}_{column}.png", compress_level=1)
    return {"width": sizes[0][0], "height": sizes[0][1], "tile": tile, "levels": len(sizes)}
