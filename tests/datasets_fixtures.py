"""Small raw releases in their real layouts, with every odd case, for the datasets_build tests;
and a finished build of a few items written directly (:func:`make_dataset`), for the model-run tests.

Images are tiny (long side <= 96) smooth gradients so that building stays fast; the
built items are still at the real target sizes.
"""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from datasets_build.builder import BUILD_INFO
from datasets_build.images import downscale
from datasets_build.manifest import write_manifest
from datasets_build.sizes import MA_SIZES, Size


def gradient(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth RGB image whose colours depend on ``seed``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    a, b = rng.uniform(0.2, 1.0, 3), rng.uniform(0, 255, 3)
    pixels = (b + a[None, None, :] * 200 * (x[..., None] / max(1, width) + y[..., None] / max(1, height)) / 2) % 256
    return Image.fromarray(pixels.astype(np.uint8))


def shape_for(size: Size, long_side: int = 96) -> tuple[int, int]:
    """(width, height) of a small image with the ratio of ``size``."""
    if size.height >= size.width:
        return round(long_side * size.width / size.height), long_side
    return long_side, round(long_side * size.height / size.width)


def encode(img: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def jpeg(width: int, height: int, seed: int = 0) -> bytes:
    return encode(gradient(width, height, seed), "JPEG", quality=90)


def truncated_jpeg(width: int, height: int) -> bytes:
    """Header intact, entropy-coded data cut: only a full decode notices."""
    data = jpeg(width, height, seed=99)
    return data[: len(data) * 2 // 3]


def odd_images(size_of) -> dict[str, tuple[bytes, str]]:
    """The odd-but-usable images: name -> (bytes, extension); ``size_of(k)`` gives (w, h)."""
    w3, h3 = size_of(3)
    w4, h4 = size_of(4)
    w5, h5 = size_of(5)
    w6, h6 = size_of(6)
    w7, h7 = size_of(7)
    w8, h8 = size_of(8)
    grey = encode(gradient(w3, h3, 3).convert("L"), "JPEG")
    cmyk = encode(gradient(w4, h4, 4).convert("CMYK"), "JPEG")
    palette = gradient(w5, h5, 5).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette_png = encode(palette, "PNG", transparency=0)
    rgba = gradient(w6, h6, 6).convert("RGBA")
    alpha = np.full((h6, w6), 255, np.uint8)
    alpha[:, : w6 // 2] = 0  # left half fully transparent: must come out white
    rgba.putalpha(Image.fromarray(alpha))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; displayed (and sized) after rotating 90° clockwise
    rotated = encode(gradient(h7, w7, 7), "JPEG", exif=exif)
    sixteen = Image.fromarray((np.linspace(0, 65535, w8 * h8).reshape(h8, w8)).astype(np.uint16))
    return {
        "grey": (grey, ".jpg"),
        "cmyk": (cmyk, ".jpg"),
        "palette": (palette_png, ".png"),
        "rgba": (encode(rgba, "PNG"), ".png"),
        "exif6": (rotated, ".jpg"),
        "sixteen": (encode(sixteen, "PNG"), ".png"),
    }


def write_coco(root: Path, split: str = "val2014") -> dict:
    """A COCO captions release designed so that, with per_ratio=1, every one of the
    21 sizes ends with exactly one item:

    sizes 0-2 and 10-13 have two clean images (7 spare ones), 14 has one; sizes 3-8
    have one odd-but-usable image each (grey, CMYK, palette with transparency,
    RGBA, EXIF-rotated, 16-bit grey); size 9 only a truncated JPEG (its header
    reads, its pixels do not); sizes 15-20 have none. The 7 spare images fill size
    9 and sizes 15-20 by borrowing. Plus one of each unusable case.
    """
    images_dir = root / split
    images_dir.mkdir(parents=True)
    (root / "annotations").mkdir()
    images, annotations = [], []
    next_id = iter(range(1, 1000))

    def add(data: bytes, ext: str, captions: list[str], declared: tuple[int, int] | None = None) -> int:
        image_id = next(next_id)
        name = f"COCO_{split}_{image_id:012d}{ext}"
        (images_dir / name).write_bytes(data)
        with Image.open(io.BytesIO(data)) as img:
            width, height = declared or img.size
        images.append({"id": image_id, "file_name": name, "height": height, "width": width})
        annotations.extend({"id": 10_000 + len(annotations), "image_id": image_id, "caption": c} for c in captions)
        return image_id

    def size_of(k: int) -> tuple[int, int]:
        return shape_for(MA_SIZES[k])

    ids = {}
    for k in (0, 1, 2, 10, 11, 12, 13, 14):
        for copy in range(1 if k == 14 else 2):
            w, h = size_of(k)
            declared = (w + 1, h) if k == 14 else None  # the JSON's size is wrong; the file counts
            captions = [f"picture {k}-{copy} a", f"picture {k}-{copy} b"]
            ids[f"clean{k}_{copy}"] = add(jpeg(w, h, 100 * k + copy), ".jpg", captions, declared)
    for k, (name, (data, ext)) in zip(range(3, 9), odd_images(size_of).items()):
        ids[name] = add(data, ext, [f"odd {name}"])
    ids["truncated"] = add(truncated_jpeg(*size_of(9)), ".jpg", ["truncated"])
    ids["garbage"] = add(jpeg(10, 10), ".jpg", ["garbage"])
    (images_dir / images[-1]["file_name"]).write_bytes(b"this is not an image at all" * 10)
    ids["no_caption"] = add(jpeg(*size_of(0)), ".jpg", [])
    ids["blank_caption"] = add(jpeg(*size_of(0)), ".jpg", ["   ", ""])
    ids["missing_file"] = add(jpeg(*size_of(0)), ".jpg", ["gone"])
    (images_dir / images[-1]["file_name"]).unlink()
    ids["duplicate"] = add(jpeg(*size_of(1)), ".jpg", ["dup"])
    images.append(dict(images[-1], file_name=images[-1]["file_name"]))
    annotations.append({"id": 99_999, "image_id": 4242, "caption": "for an image that is not listed"})
    (root / "annotations" / f"captions_{split}.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    return ids


COCO_EXPECTED_SKIPS = {
    "corrupt": 2,  # garbage (header) and truncated (pixels)
    "duplicate_id": 2,  # both entries of the repeated id
    "missing_caption": 2,  # none, and only blank ones
    "missing_image": 1,
    "unmatched_caption": 1,
}


def img2dataset_samples() -> list[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) for a small LAION-like release with its odd cases."""
    samples = []
    for i, k in enumerate((0, 4, 8, 10, 12, 16, 20, 10)):
        w, h = shape_for(MA_SIZES[k])
        samples.append((f"{i:09d}", {".jpg": jpeg(w, h, i), ".txt": f"caption {i}".encode(), ".json": b"{}"}))
    odd = odd_images(lambda k: shape_for(MA_SIZES[k]))
    for j, (name, (data, ext)) in enumerate(odd.items(), start=100):
        samples.append((f"{j:09d}", {ext: data, ".txt": f"odd {name}".encode(), ".json": b"{}"}))
    w, h = shape_for(MA_SIZES[6])
    samples += [
        ("000000200", {".txt": b"failed download", ".json": b'{"status": "failed_to_download"}'}),
        ("000000201", {".jpg": jpeg(w, h), ".json": b"{}"}),  # no caption file
        ("000000202", {".jpg": jpeg(w, h), ".txt": b"  \n ", ".json": b"{}"}),  # blank caption
        ("000000203", {".jpg": jpeg(w, h), ".txt": b"\xff\xfe caption", ".json": b"{}"}),  # not UTF-8
        ("000000204", {".jpg": b"\x00garbage" * 20, ".txt": b"garbage", ".json": b"{}"}),
        ("000000205", {".jpg": truncated_jpeg(w, h), ".txt": b"truncated", ".json": b"{}"}),
        ("000000206", {".jpg": jpeg(w, h), ".png": encode(gradient(w, h), "PNG"), ".txt": b"two images"}),
    ]
    return samples


#: What :func:`write_img2dataset` sources contain beyond the clean samples.
IMG2DATASET_EXPECTED_SKIPS = {
    "corrupt": 2,  # garbage header, truncated pixels
    "duplicate_id": 3,  # two images for one key; one key in two shards (both copies)
    "missing_caption": 3,  # none, blank, not UTF-8
    "missing_image": 1,
}
IMG2DATASET_USABLE = 8 - 1 + 6  # clean (one key is duplicated) + odd-but-usable


def write_img2dataset(root: Path, layout: str) -> None:
    """The samples of :func:`img2dataset_samples` as img2dataset ``files`` or ``webdataset``
    shards (two shards, plus a duplicate key in a third), with img2dataset's side files."""
    samples = img2dataset_samples()
    shards = {"00000": samples[: len(samples) // 2], "00001": samples[len(samples) // 2 :]}
    shards["00002"] = [("000000001", samples[1][1])]  # same key as in shard 00000
    root.mkdir(parents=True)
    for shard, members in shards.items():
        (root / f"{shard}.parquet").write_bytes(b"PAR1")  # img2dataset's side files: ignored
        (root / f"{shard}_stats.json").write_text("{}")
        if layout == "files":
            (root / shard).mkdir()
            for key, files in members:
                for ext, data in files.items():
                    (root / shard / f"{key}{ext}").write_bytes(data)
        else:
            with tarfile.open(root / f"{shard}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
                for key, files in members:
                    for ext, data in files.items():
                        info = tarfile.TarInfo(f"{key}{ext}")
                        info.size, info.mtime = len(data), 0
                        tar.addfile(info, io.BytesIO(data))


def write_celeba(mm_root: Path, hq_root: Path, split_format: str = "pickle") -> None:
    """Multi-Modal-CelebA-HQ (text/, train and test lists) and CelebAMask-HQ originals.

    Test list: 0, 1 and 6 are usable (6 is not square: cropped); 2 has no caption
    file, 3 a blank one; 4 has no original; 5's original is too small (512²);
    7 is listed twice. 8 is in the train list only.
    """
    (mm_root / "text").mkdir(parents=True)
    (mm_root / "train").mkdir()
    (mm_root / "test").mkdir()
    hr = hq_root / "CelebA-HQ-img"
    hr.mkdir(parents=True)
    test = ["0", "1", "2", "3", "4", "5", "6", "7", "7"]
    for idx in range(9):
        if idx != 2:
            lines = "" if idx == 3 else "\n".join(f"face {idx} caption {c}" for c in range(10)) + "\n"
            (mm_root / "text" / f"{idx}.txt").write_text(lines)
        if idx != 4:
            w, h = {5: (512, 512), 6: (1024, 1100)}.get(idx, (1024, 1024))
            (hr / f"{idx}.jpg").write_bytes(jpeg(w, h, idx))
    if split_format == "pickle":
        (mm_root / "test" / "filenames.pickle").write_bytes(pickle.dumps(test, protocol=2))
        (mm_root / "train" / "filenames.pickle").write_bytes(pickle.dumps(["8"], protocol=2))
    else:
        (mm_root / "test.txt").write_text("\n".join(f"{t}.jpg" for t in test) + "\n")


CELEBA_EXPECTED_SKIPS = {"duplicate_id": 2, "missing_caption": 2, "missing_image": 1, "too_small": 1}
CELEBA_USABLE = ["0", "1", "6"]


def tree_bytes(root: Path, folders=("images", "lr")) -> dict[str, bytes]:
    """Every item file under a build, by relative path, for byte comparisons."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for folder in folders
        if (root / folder).is_dir()
        for p in sorted((root / folder).rglob("*"))
        if p.is_file()
    }


def make_dataset(folder: Path, sizes, name: str = "mini", lr_factor: int | None = 4) -> Path:
    """``folder`` as a finished build of one item per entry of ``sizes`` (H, W), LR images if asked."""
    rows = []
    for index, (height, width) in enumerate(sizes):
        item = f"{name}-{index:03d}"
        image = gradient(width, height, seed=index)
        (folder / "images").mkdir(parents=True, exist_ok=True)
        image.save(folder / "images" / f"{item}.png")
        lr = None
        if lr_factor:
            (folder / "lr").mkdir(exist_ok=True)
            downscale(image, lr_factor).save(folder / "lr" / f"{item}.png")
            lr = f"lr/{item}.png"
        rows.append(dict(id=item, caption=f"a gradient number {index}", caption_index=0,
                         target_height=height, target_width=width, ratio=height / width,
                         image=f"images/{item}.png", lr_image=lr, source_path=f"{item}.png",
                         source_member=None, source_sha256="0" * 64, orig_height=height,
                         orig_width=width, source_ratio=height / width, crop_box=[0, 0, width, height],
                         scale=1.0, assignment="nearest", source_mode="RGB", exif_orientation=1))
    write_manifest(pd.DataFrame(rows), folder)
    (folder / BUILD_INFO).write_text(json.dumps({"name": name}))
    return folder
