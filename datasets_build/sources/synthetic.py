"""A procedural raw release, so every benchmark can run with nothing downloaded.

Each image is a smooth two-colour gradient with one to three soft shapes, drawn at
an eighth of the size and enlarged bicubically (smooth, so compressing and
resampling are well behaved); its caption says what was drawn. Images are made at
the exact target sizes and written in img2dataset's ``files`` layout, then built by
the same code as the real sets. The content is a pure function of (size, index,
seed): the same arguments give the same bytes.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

from ..sizes import Size

COLOURS = {
    "red": (214, 39, 40),
    "orange": (255, 127, 14),
    "yellow": (240, 210, 40),
    "green": (44, 160, 44),
    "teal": (23, 190, 207),
    "blue": (31, 119, 180),
    "purple": (148, 103, 189),
    "pink": (247, 129, 191),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle")
SAMPLES_PER_SHARD = 10_000  # as img2dataset's default


def draw(size: Size, rng: random.Random) -> tuple[Image.Image, str]:
    """One image of the given size and the caption describing it."""
    small = (max(8, size.width // 8), max(8, size.height // 8))
    top, bottom = rng.sample(sorted(COLOURS), 2)
    gradient = Image.linear_gradient("L").resize(small)
    canvas = Image.composite(Image.new("RGB", small, COLOURS[bottom]), Image.new("RGB", small, COLOURS[top]), gradient)
    pen = ImageDraw.Draw(canvas)
    things = []
    for _ in range(rng.randint(1, 3)):
        shape, colour = rng.choice(SHAPES), rng.choice([c for c in COLOURS if c not in (top, bottom)])
        radius = rng.uniform(0.1, 0.25) * min(small)
        cx, cy = rng.uniform(radius, small[0] - radius), rng.uniform(radius, small[1] - radius)
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        if shape == "circle":
            pen.ellipse(box, fill=COLOURS[colour])
        elif shape == "square":
            pen.rectangle(box, fill=COLOURS[colour])
        else:
            pen.polygon([(cx, cy - radius), (cx + radius, cy + radius), (cx - radius, cy + radius)], fill=COLOURS[colour])
        things.append(f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} {shape}")
    image = canvas.resize((size.width, size.height), Image.Resampling.BICUBIC)
    listed = things[0] if len(things) == 1 else ", ".join(things[:-1]) + f" and {things[-1]}"
    return image, f"{listed} on a background fading from {top} to {bottom}"


def write_release(dest: Path, sizes: tuple[Size, ...], per_size: int, seed: int) -> None:
    """Write ``per_size`` images for every size as img2dataset ``files`` shards under ``dest``.

    Files already present are kept (they are a pure function of the arguments), so an
    interrupted generation resumes.
    """
    index = 0
    for size in sizes:
        for k in range(per_size):
            key = f"{index // SAMPLES_PER_SHARD:05d}{index % SAMPLES_PER_SHARD:04d}"
            shard = dest / key[:5]
            index += 1
            if (shard / f"{key}.png").exists():
                continue
            shard.mkdir(parents=True, exist_ok=True)
            image, caption = draw(size, random.Random(f"{seed}:{size.name}:{k}"))
            (shard / f"{key}.txt").write_text(caption, encoding="utf-8")
            meta = {"key": key, "status": "success", "caption": caption, "width": size.width, "height": size.height}
            (shard / f"{key}.json").write_text(json.dumps(meta), encoding="utf-8")
            tmp = shard / f".{key}.png.tmp"
            image.save(tmp, format="PNG")
            tmp.replace(shard / f"{key}.png")
