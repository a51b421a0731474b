"""datasets_build's CLI, layout errors, and the API the benchmark calls (resolve, iter_items)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import datasets_build
from datasets_build.cli import main
from datasets_build.errors import DatasetError, LayoutError, NotBuiltError, StaleBuildError
from datasets_fixtures import jpeg, write_celeba, write_coco, write_img2dataset

REPO = Path(__file__).resolve().parent.parent


# --- layout errors: what was expected, where ----------------------------------------


def _coco_without(tmp_path, breakage):
    root = tmp_path / "coco"
    write_coco(root)
    breakage(root)
    return root


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda r: (r / "annotations" / "captions_val2014.json").unlink(), r"no COCO captions file in .*annotations/captions_val2014\.json"),
        (lambda r: (r / "annotations" / "captions_val2017.json").write_text("{}"), r"several COCO captions files"),
        (lambda r: (r / "val2014").rename(r / "images"), r"image folder .*val2014 does not exist"),
        (lambda r: (r / "annotations" / "captions_val2014.json").write_text('{"images": []}'), r"no 'images' and 'annotations' lists"),
        (lambda r: (r / "annotations" / "captions_val2014.json").write_text("{not json"), r"not a readable JSON"),
        (lambda r: (r / "annotations" / "captions_val2014.json").write_text('{"images": [], "annotations": []}'), r"lists no images"),
        (lambda r: [p.unlink() for p in (r / "val2014").iterdir()], r"image folder .*val2014 is empty"),
    ],
)
def test_coco_layout_errors_say_what_is_expected(tmp_path, breakage, message):
    root = _coco_without(tmp_path, breakage)
    with pytest.raises(LayoutError, match=message):
        datasets_build.build("ma-coco", tmp_path / "out", root, per_ratio=1)


def test_coco_accepts_the_json_itself_and_an_image_folder_elsewhere(tmp_path):
    root = tmp_path / "coco"
    write_coco(root, split="val2017")
    (root / "val2017").rename(tmp_path / "pictures")
    out = datasets_build.build("ma-coco", tmp_path / "out", root / "annotations" / "captions_val2017.json",
                               tmp_path / "pictures", per_ratio=1, limit=3)
    assert json.loads((out / "build_info.json").read_text())["counts"]["samples_read"] == 3


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, r"is not a folder"),
        (lambda p: p.mkdir(), r"no shards in .*expected img2dataset output: shard folders like 00000/"),
        (lambda p: (p / "00000").mkdir(parents=True), r"no samples found: the shards under .* are empty"),
        (lambda p: (p.mkdir(), (p / "photos").mkdir(), (p / "photos" / "a.jpg").write_bytes(jpeg(8, 8))), r"no shards in"),
    ],
)
def test_img2dataset_layout_errors(tmp_path, make, message):
    source = tmp_path / "laion"
    make(source)
    with pytest.raises(LayoutError, match=message):
        datasets_build.build("ma-laion-coco", tmp_path / "out", source, per_ratio=1)


def test_celeba_layout_errors(tmp_path):
    write_celeba(tmp_path / "mm", tmp_path / "hq")
    with pytest.raises(LayoutError, match=r"needs --source2 .*CelebA-HQ-img"):
        datasets_build.build("mm-celeba-hq", tmp_path / "o1", tmp_path / "mm")
    (tmp_path / "mm" / "test" / "filenames.pickle").unlink()
    with pytest.raises(LayoutError, match=r"has no test/filenames.pickle"):
        datasets_build.build("mm-celeba-hq", tmp_path / "o2", tmp_path / "mm", tmp_path / "hq")
    with pytest.raises(LayoutError, match=r"has no text/"):
        datasets_build.build("mm-celeba-hq", tmp_path / "o3", tmp_path / "hq", tmp_path / "hq")
    (tmp_path / "empty").mkdir()
    (tmp_path / "mm" / "test.txt").write_text("0\n")
    with pytest.raises(LayoutError, match=r"empty is not a folder of originals"):
        datasets_build.build("mm-celeba-hq", tmp_path / "o4", tmp_path / "mm", tmp_path / "empty")


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("ma-coco", {}, r"needs --source"),
        ("synthetic", {"source": Path(".")}, r"takes no --source"),
        ("mm-celeba-hq", {"source": Path("."), "per_ratio": 3}, r"--per-ratio does not apply"),
        ("mm-celeba-hq", {"source": Path("."), "max_upscale": 2.0}, r"never upscales"),
        ("ma-coco", {"source": Path("."), "buckets": 3}, r"arad-train only"),
        ("ma-coco", {"source": Path("."), "per_ratio": 0}, r"at least 1"),
        ("imagenet", {}, r"unknown data set"),
    ],
)
def test_options_that_do_not_apply_are_refused(tmp_path, name, kwargs, message):
    with pytest.raises(DatasetError, match=message):
        datasets_build.build(name, tmp_path / "out", **kwargs)


def test_a_non_empty_folder_is_not_overwritten(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.txt").write_text("keep me")
    with pytest.raises(StaleBuildError, match="not empty"):
        datasets_build.build("synthetic", tmp_path / "out")
    assert (tmp_path / "out" / "precious.txt").read_text() == "keep me"


# --- CLI ------------------------------------------------------------------------------


def test_cli_builds_and_prints_the_folder(tmp_path, capsys):
    source = tmp_path / "laion"
    write_img2dataset(source, "files")
    assert main(["arad-train", "--source", str(source), "--out", str(tmp_path / "out"), "--buckets", "5", "--limit", "4"]) == 0
    printed = capsys.readouterr()
    assert printed.out.strip() == str(tmp_path / "out")
    assert "4 items from 4 samples; skipped: none" in printed.err
    info = json.loads((tmp_path / "out" / "build_info.json").read_text())
    assert info["parameters"]["buckets"] == 5 and info["parameters"]["limit"] == 4
    assert len(info["parameters"]["sizes"]) == 5


def test_cli_layout_error_exits_2_without_traceback(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "datasets_build", "ma-laion-coco", "--source", str(tmp_path / "empty"), "--out", str(tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no shards in") and "00000.tar" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["ma-coco"])
    assert exit_.value.code == 2
    assert "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    for name in datasets_build.SETS:
        assert name in help_text
    assert main(["synthetic", "--out", "x", "--source", "y"]) == 2
    assert "takes no --source" in capsys.readouterr().err


# --- resolve and iter_items -----------------------------------------------------------


def test_resolve_builds_synthetic_once_and_iter_items_reads_it(tmp_path):
    folder = datasets_build.resolve("synthetic", tmp_path / "cache")
    assert folder == tmp_path / "cache" / "synthetic" and datasets_build.is_built(folder)
    stamp = (folder / "build_info.json").stat().st_mtime_ns
    assert datasets_build.resolve("synthetic", tmp_path / "cache") == folder
    assert (folder / "build_info.json").stat().st_mtime_ns == stamp
    assert datasets_build.resolve(str(folder), tmp_path / "elsewhere") == folder
    items = list(datasets_build.iter_items(folder))
    assert len(items) == 21
    assert {(i.height, i.width) for i in items} == {(s.height, s.width) for s in datasets_build.MA_SIZES}
    for item in items:
        assert item.image.is_file() and item.lr_image.is_file() and item.caption
        assert item.image.parent.name == f"{item.height}x{item.width}"


def test_resolve_explains_how_to_build_a_missing_set(tmp_path):
    with pytest.raises(NotBuiltError) as err:
        datasets_build.resolve("ma-coco", tmp_path)
    assert "python -m datasets_build ma-coco --source" in str(err.value)
    assert str(tmp_path / "ma-coco") in str(err.value)
    with pytest.raises(DatasetError, match="neither a folder nor a data set name"):
        datasets_build.resolve("no-such-set", tmp_path)
    (tmp_path / "partial").mkdir()
    with pytest.raises(NotBuiltError, match="not a finished build"):
        datasets_build.resolve(str(tmp_path / "partial"), tmp_path)


def test_resolve_finds_a_named_build_in_the_cache(tmp_path):
    write_coco(tmp_path / "coco")
    datasets_build.build("ma-coco", tmp_path / "cache" / "ma-coco", tmp_path / "coco", per_ratio=1, limit=4)
    assert datasets_build.resolve("ma-coco", tmp_path / "cache") == tmp_path / "cache" / "ma-coco"
    items = list(datasets_build.iter_items(tmp_path / "cache" / "ma-coco"))
    assert items and all(i.lr_image is None for i in items)


def test_hugging_face_datasets_opens_a_build(tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = datasets_build.build("synthetic", tmp_path / "syn")
    ds = datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert len(ds) == 21
    assert set(ds.column_names) >= {"id", "image", "lr", "caption", "height", "width"}
    first = ds[0]
    assert first["image"].size == (first["width"], first["height"])
    assert first["lr"].size == (first["width"] // 4, first["height"] // 4)
