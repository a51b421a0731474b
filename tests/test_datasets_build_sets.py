"""Building every data set from small raw releases in their real layouts.

Each build is checked for counts per size, exact sizes, and that every odd input
is counted in build_info.json; determinism is checked on the bytes of the manifest
and item files, and resumption by interrupting a build and finishing it.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile

import pandas as pd
import pytest
from PIL import Image

import datasets_build
from datasets_build import builder as build_module
from datasets_build import images as images_module
from datasets_build.errors import StaleBuildError
from datasets_build.sizes import ARAD_BUCKETS, MA_SIZES, Size, nearest
from datasets_fixtures import (
    CELEBA_EXPECTED_SKIPS,
    CELEBA_USABLE,
    COCO_EXPECTED_SKIPS,
    IMG2DATASET_EXPECTED_SKIPS,
    IMG2DATASET_USABLE,
    jpeg,
    tree_bytes,
    write_celeba,
    write_coco,
    write_img2dataset,
)


def info_of(out):
    return json.loads((out / "build_info.json").read_text())


def manifest_of(out):
    return pd.read_parquet(out / "manifest.parquet")


def check_items_match_manifest(out, manifest):
    """Every manifest row's files exist at exactly the target (and LR) size; nothing else is there."""
    for row in manifest.itertuples():
        with Image.open(out / row.image) as img:
            assert img.size == (row.target_width, row.target_height) and img.mode == "RGB", row.id
        if isinstance(row.lr_image, str):
            with Image.open(out / row.lr_image) as lr:
                assert lr.size == (row.target_width // 4, row.target_height // 4), row.id
        l, t, r, b = row.crop_box
        assert 0 <= l < r <= row.orig_width and 0 <= t < b <= row.orig_height
        assert (b - t) / (r - l) == pytest.approx(row.ratio, rel=0.03, abs=1.5 / (r - l))
    expected = set(manifest["image"]) | set(manifest["lr_image"].dropna())
    assert set(tree_bytes(out)) == expected


# --- MA-COCO ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    ids = write_coco(root)
    out = datasets_build.build("ma-coco", tmp_path_factory.mktemp("ma-coco-out"), root, per_ratio=1)
    return root, ids, out


def test_ma_coco_fills_every_size_once_with_exact_sizes(coco):
    root, ids, out = coco
    manifest = manifest_of(out)
    assert len(manifest) == 21
    assert [(h, w) for h, w in zip(manifest.target_height, manifest.target_width)] == [(s.height, s.width) for s in MA_SIZES]
    check_items_match_manifest(out, manifest)
    info = info_of(out)["counts"]
    assert {k: v["selected"] for k, v in info["per_size"].items()} == {s.name: 1 for s in MA_SIZES}
    borrowed = {k for k, v in info["per_size"].items() if v["borrowed"]}
    assert borrowed == {MA_SIZES[k].name for k in (9, 15, 16, 17, 18, 19, 20)}
    assert set(manifest[manifest.assignment == "borrowed"]["target_height"].astype(str) + "x" +
               manifest[manifest.assignment == "borrowed"]["target_width"].astype(str)) == borrowed
    assert all(v["shortfall"] == 0 for v in info["per_size"].values())
    # the images that are the only candidates of their size landed there
    by_id = manifest.set_index("id")
    for name, k in {"grey": 3, "cmyk": 4, "palette": 5, "rgba": 6, "exif6": 7, "sixteen": 8, "clean14_0": 14}.items():
        row = by_id.loc[str(ids[name])]
        assert (row.target_height, row.target_width) == (MA_SIZES[k].height, MA_SIZES[k].width), name
        assert row.assignment == "nearest"
    # one caption per image, one of its own
    clean = by_id.loc[str(ids["clean0_0"])] if str(ids["clean0_0"]) in by_id.index else by_id.loc[str(ids["clean0_1"])]
    assert clean.caption.startswith("picture 0-") and clean.caption[-1] in "ab"
    assert manifest.source_path.str.startswith("COCO_val2014_").all()
    assert manifest.source_sha256.str.fullmatch(r"[0-9a-f]{64}").all()


def test_ma_coco_counts_every_odd_input(coco):
    root, ids, out = coco
    info = info_of(out)
    counts = info["counts"]
    assert counts["skipped_by_reason"] == COCO_EXPECTED_SKIPS
    assert counts["samples_read"] == counts["selected"] + counts["not_selected"] + counts["skipped"]
    assert counts["handled"] == {
        "converted_to_rgb_from": {"CMYK": 1, "I;16": 1, "L": 1, "P": 1, "RGBA": 1},
        "alpha_composited_on_white": 2,
        "exif_transposed": 1,
        "upscaled": 21,
        "borrowed_and_cropped": 7,
        "declared_size_mismatch": 1,
    }
    reasons = {(s["id"], s["reason"]) for s in info["skipped_items"]}
    for name, reason in {"truncated": "corrupt", "garbage": "corrupt", "no_caption": "missing_caption",
                         "blank_caption": "missing_caption", "missing_file": "missing_image",
                         "duplicate": "duplicate_id"}.items():
        assert (str(ids[name]), reason) in reasons, name
    assert all(s["detail"] for s in info["skipped_items"])
    assert info["parameters"]["per_ratio"] == 1 and info["parameters"]["seed"] == 0
    assert len(info["source_fingerprint"]) == 64 and info["versions"]["pillow"]


def test_ma_coco_applies_orientation_and_white_background(coco):
    root, ids, out = coco
    by_id = manifest_of(out).set_index("id")
    rotated = by_id.loc[str(ids["exif6"])]
    assert (rotated.orig_width, rotated.orig_height, rotated.exif_orientation) == (96, 66, 6)
    rgba = by_id.loc[str(ids["rgba"])]
    with Image.open(out / rgba.image) as img:
        assert img.getpixel((2, img.height // 2)) == (255, 255, 255)  # transparent half is white
        assert img.getpixel((img.width - 3, img.height // 2)) != (255, 255, 255)


def test_ma_coco_is_byte_identical_when_built_again(coco, tmp_path):
    root, ids, out = coco
    again = datasets_build.build("ma-coco", tmp_path / "again", root, per_ratio=1)
    for name in ("manifest.parquet", "metadata.parquet"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    assert tree_bytes(again) == tree_bytes(out)
    first, second = info_of(out), info_of(again)
    assert first["counts"] == second["counts"] and first["source_fingerprint"] == second["source_fingerprint"]


def test_a_finished_build_is_kept_and_other_parameters_are_refused(coco):
    root, ids, out = coco
    before = (out / "manifest.parquet").stat().st_mtime_ns
    assert datasets_build.build("ma-coco", out, root, per_ratio=1) == out
    assert (out / "manifest.parquet").stat().st_mtime_ns == before
    with pytest.raises(StaleBuildError, match="other parameters"):
        datasets_build.build("ma-coco", out, root, per_ratio=2)


class Interrupt(BaseException):
    """Stands for Ctrl-C or a killed process."""


def interrupt_after(monkeypatch, module, name, calls):
    """Make ``module.name`` raise Interrupt once it has run ``calls`` times; count all calls."""
    original, seen = getattr(module, name), []

    def wrapper(*args, **kwargs):
        if len(seen) == calls:
            raise Interrupt
        seen.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return seen


def test_ma_coco_resumes_after_an_interruption(coco, tmp_path, monkeypatch):
    root, ids, out = coco
    target = tmp_path / "resumed"
    interrupt_after(monkeypatch, build_module, "write_item", calls=6)
    with pytest.raises(Interrupt):
        datasets_build.build("ma-coco", target, root, per_ratio=1)
    assert not (target / "build_info.json").exists()
    assert len(tree_bytes(target)) == 6  # six items were finished
    monkeypatch.undo()
    seen = interrupt_after(monkeypatch, build_module, "write_item", calls=10_000)
    datasets_build.build("ma-coco", target, root, per_ratio=1)
    assert len(seen) == 22 - 6  # 21 items + the truncated one, minus those already done
    assert (target / "manifest.parquet").read_bytes() == (out / "manifest.parquet").read_bytes()
    assert tree_bytes(target) == tree_bytes(out)
    assert info_of(target)["counts"] == info_of(out)["counts"]
    assert info_of(target)["source_fingerprint"] == info_of(out)["source_fingerprint"]  # scan read back
    assert not (target / ".work").exists()


def test_an_interrupted_header_scan_starts_over_cleanly(coco, tmp_path, monkeypatch):
    root, ids, out = coco
    target = tmp_path / "rescanned"
    interrupt_after(monkeypatch, images_module, "read_header", calls=5)
    with pytest.raises(Interrupt):
        datasets_build.build("ma-coco", target, root, per_ratio=1)
    monkeypatch.undo()
    with pytest.raises(StaleBuildError):  # the partial build remembers its parameters
        datasets_build.build("ma-coco", target, root, per_ratio=3)
    datasets_build.build("ma-coco", target, root, per_ratio=1)
    assert (target / "manifest.parquet").read_bytes() == (out / "manifest.parquet").read_bytes()


def test_a_different_seed_changes_the_selection_not_the_rules(coco, tmp_path):
    root, ids, out = coco
    other = datasets_build.build("ma-coco", tmp_path / "seed1", root, per_ratio=1, seed=1)
    a, b = manifest_of(out), manifest_of(other)
    assert len(b) == 21 and list(a.target_height) == list(b.target_height)
    assert list(a.id) != list(b.id) or list(a.caption) != list(b.caption)


# --- MA-LAION-COCO (img2dataset, both layouts) ----------------------------------------


@pytest.fixture(scope="module")
def laion(tmp_path_factory):
    base = tmp_path_factory.mktemp("laion")
    outs = {}
    for layout in ("files", "webdataset"):
        write_img2dataset(base / layout, layout)
        outs[layout] = datasets_build.build("ma-laion-coco", base / f"out-{layout}", base / layout, per_ratio=1)
    return base, outs


@pytest.mark.parametrize("layout", ["files", "webdataset"])
def test_ma_laion_coco_from_each_img2dataset_layout(laion, layout):
    base, outs = laion
    out = outs[layout]
    manifest = manifest_of(out)
    check_items_match_manifest(out, manifest)
    counts = info_of(out)["counts"]
    assert counts["selected"] == len(manifest) == IMG2DATASET_USABLE
    assert counts["skipped_by_reason"] == IMG2DATASET_EXPECTED_SKIPS
    assert sum(v["shortfall"] for v in counts["per_size"].values()) == 21 - IMG2DATASET_USABLE
    assert all(v["selected"] <= 1 for v in counts["per_size"].values())
    assert counts["handled"]["alpha_composited_on_white"] == 2 and counts["handled"]["exif_transposed"] == 1
    assert "000000001" not in set(manifest.id)  # its key is in two shards
    if layout == "webdataset":
        assert manifest.source_path.str.fullmatch(r"0000[01]\.tar").all()
        assert manifest.source_member.str.fullmatch(r"\d{9}\.(jpg|png)").all()
    else:
        assert manifest.source_path.str.fullmatch(r"0000[01]/\d{9}\.(jpg|png)").all()
        assert manifest.source_member.isna().all()


def test_both_img2dataset_layouts_give_the_same_items(laion):
    base, outs = laion
    files, tars = manifest_of(outs["files"]), manifest_of(outs["webdataset"])
    same = ["id", "caption", "target_height", "target_width", "source_sha256", "crop_box", "assignment"]
    pd.testing.assert_frame_equal(files[same], tars[same])
    assert tree_bytes(outs["files"]) == tree_bytes(outs["webdataset"])


def test_tar_members_that_leave_the_shard_are_refused(tmp_path):
    source = tmp_path / "evil"
    source.mkdir()
    with tarfile.open(source / "00000.tar", "w") as tar:
        for name, data in [("../../escape.jpg", b"x"), ("/abs.txt", b"y"), ("000000000.jpg", jpeg(64, 48)), ("000000000.txt", b"ok")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = datasets_build.build("ma-laion-coco", tmp_path / "out", source, per_ratio=1)
    assert info_of(out)["counts"]["skipped_by_reason"] == {"unsafe_name": 2}
    assert list(manifest_of(out).id) == ["000000000"]


def test_a_damaged_tar_shard_keeps_its_readable_samples(laion, tmp_path):
    base, outs = laion
    source = tmp_path / "damaged"
    shutil.copytree(base / "webdataset", source)
    shard = source / "00001.tar"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    out = datasets_build.build("ma-laion-coco", tmp_path / "out", source, per_ratio=1)
    intact, damaged = info_of(outs["webdataset"]), info_of(out)
    # the shard itself is reported, once, as damaged after the samples read from it
    assert not any(s["path"] == "00001.tar" for s in intact["skipped_items"])
    (skip,) = [s for s in damaged["skipped_items"] if s["path"] == "00001.tar"]
    assert skip["reason"] == "corrupt" and skip["detail"].startswith("shard damaged after")
    # what stands before the cut is still read; what stands after it is gone, not invented
    assert 0 < damaged["counts"]["samples_read"] < intact["counts"]["samples_read"]
    kept = manifest_of(out)
    assert set(kept.source_sha256) <= set(manifest_of(outs["webdataset"]).source_sha256)
    check_items_match_manifest(out, kept)


# --- ARAD training manifest ----------------------------------------------------------


@pytest.mark.parametrize("buckets", [9, 3])
def test_arad_train_buckets_every_usable_image_by_eq_1(laion, tmp_path, buckets):
    base, _ = laion
    out = datasets_build.build("arad-train", tmp_path / "arad", base / "files", buckets=buckets)
    manifest = manifest_of(out)
    check_items_match_manifest(out, manifest)
    assert len(manifest) == IMG2DATASET_USABLE  # every usable image, none borrowed
    assert (manifest.assignment == "nearest").all()
    sizes = ARAD_BUCKETS[:buckets]
    expected = nearest((manifest.orig_height / manifest.orig_width).to_numpy(), sizes)
    got = [sizes.index(Size(h, w)) for h, w in zip(manifest.target_height, manifest.target_width)]
    assert got == list(expected)
    assert list(info_of(out)["counts"]["per_size"]) == [s.name for s in sizes]


def test_too_small_images_are_skipped_when_an_upscale_limit_is_set(laion, tmp_path):
    base, _ = laion
    out = datasets_build.build("arad-train", tmp_path / "arad", base / "files", max_upscale=4.0)
    counts = info_of(out)["counts"]
    # every fixture image is under 100 px, so all need more than x4 to reach 512+
    assert counts["selected"] == 0
    assert counts["skipped_by_reason"]["too_small"] == IMG2DATASET_USABLE + 1  # + the truncated one
    assert all("limit x4" in s["detail"] for s in info_of(out)["skipped_items"] if s["reason"] == "too_small")


# --- MM-CelebA-HQ --------------------------------------------------------------------


@pytest.fixture(scope="module")
def celeba(tmp_path_factory):
    base = tmp_path_factory.mktemp("celeba")
    write_celeba(base / "mm", base / "CelebAMask-HQ")
    return base


def test_mm_celeba_hq_pairs_from_the_test_list(celeba, tmp_path):
    out = datasets_build.build("mm-celeba-hq", tmp_path / "out", celeba / "mm", celeba / "CelebAMask-HQ")
    manifest = manifest_of(out)
    check_items_match_manifest(out, manifest)
    assert sorted(manifest.id) == CELEBA_USABLE
    assert (manifest.target_height == 1024).all() and (manifest.target_width == 1024).all()
    assert info_of(out)["counts"]["skipped_by_reason"] == CELEBA_EXPECTED_SKIPS
    for row in manifest.itertuples():
        assert row.lr_image == f"lr/256x256/{row.id}.png"
        assert row.caption == f"face {row.id} caption {row.caption_index}"
        hr = Image.open(out / row.image)
        expected_lr = hr.resize((256, 256), Image.Resampling.BICUBIC)
        assert Image.open(out / row.lr_image).tobytes() == expected_lr.tobytes()
    cropped = manifest.set_index("id").loc["6"]
    assert list(cropped.crop_box) == [0, 38, 1024, 1062] and cropped.scale == 1.0
    ds = pd.read_parquet(out / "metadata.parquet")
    assert list(ds.columns) == ["id", "file_name", "lr_file_name", "caption", "height", "width"]


def test_mm_celeba_hq_limit_caps_the_test_list_and_seed_picks_captions(celeba, tmp_path):
    out = datasets_build.build("mm-celeba-hq", tmp_path / "a", celeba / "mm", celeba / "CelebAMask-HQ", limit=2)
    assert sorted(manifest_of(out).id) == ["0", "1"]
    assert info_of(out)["counts"]["samples_read"] == 2
    seeds = [
        list(manifest_of(datasets_build.build("mm-celeba-hq", tmp_path / f"s{s}", celeba / "mm",
                                              celeba / "CelebAMask-HQ", limit=2, seed=s)).caption)
        for s in range(4)
    ]
    assert len({tuple(c) for c in seeds}) > 1


def test_mm_celeba_hq_reads_a_plain_text_list_and_the_release_folder_names(tmp_path):
    write_celeba(tmp_path / "mm", tmp_path / "hq", split_format="text")
    (tmp_path / "mm" / "text").rename(tmp_path / "mm" / "celeba-caption")
    (tmp_path / "mm" / "text").mkdir()
    (tmp_path / "mm" / "celeba-caption").rename(tmp_path / "mm" / "text" / "celeba-caption")
    out = datasets_build.build("mm-celeba-hq", tmp_path / "out", tmp_path / "mm", tmp_path / "hq" / "CelebA-HQ-img")
    assert sorted(manifest_of(out).id) == CELEBA_USABLE


# --- synthetic -----------------------------------------------------------------------


def test_synthetic_covers_all_sizes_with_pairs_and_is_reproducible(tmp_path):
    a = datasets_build.build("synthetic", tmp_path / "a", per_ratio=2)
    b = datasets_build.build("synthetic", tmp_path / "b", per_ratio=2)
    manifest = manifest_of(a)
    check_items_match_manifest(a, manifest)
    assert manifest.groupby(["target_height", "target_width"]).size().to_dict() == {(s.height, s.width): 2 for s in MA_SIZES}
    assert manifest.caption.str.contains(r"^an? \w+ (?:circle|square|triangle)").all()
    assert manifest.lr_image.notna().all()
    assert (a / "manifest.parquet").read_bytes() == (b / "manifest.parquet").read_bytes()
    assert tree_bytes(a) == tree_bytes(b)
    assert info_of(a)["counts"]["skipped"] == 0
