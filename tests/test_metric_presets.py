"""Published protocol presets: each one's crop geometry against its stated definition, clean-fid's modes and
torchmetrics against the libraries themselves, and ``score --protocols all`` on a tiny run down to the report's
table and ``protocol --check``. The run's scoring uses a stand-in extractor of the Inception wrapper's shape (a
pooled linear map): the presets' machinery is under test here, not the network, and 2 cores cannot afford the
random Inception-v3 on a few hundred crops."""
import json
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cleanfid.fid import frechet_distance as clean_fid_frechet
from cleanfid.resize import build_resizer
from PIL import Image
from torch import nn

import benchmark.metrics as metrics
from benchmark import api
from benchmark.cli import main
from benchmark.metrics import PatchProtocol
from benchmark.metrics.inception import InceptionV3, resizer
from benchmark.metrics.presets import NATIVE, presets, resolve, torchmetrics_fid
from benchmark.metrics.repetition import native_side
from benchmark.reporting.protocol_spread import TITLE, protocol_spread
from benchmark.reporting.report import load_results
from benchmark.spec import RunSpec
from datasets_fixtures import make_dataset

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
PRESETS = {preset.name: preset for preset in presets()}


# -- crop geometry ---------------------------------------------------------------------------------------------

def test_demofusion_cuts_ten_native_crops_per_image_capped_at_the_smallest_side():
    crops = PRESETS["demofusion"].crops
    assert (crops.per_image, crops.side, crops.seed) == (10, NATIVE, 0)
    assert native_side({"model": "sdxl"}) == 1024 and native_side({}) == 512  # SD 2.1 for runs that name none
    protocol = crops.protocol(native=1024, smallest=2048)
    assert (protocol.crop, protocol.per_image, protocol.label) == (1024, 10, "random:10:0@1024")
    boxes = protocol.boxes(2048, 3072, index=5)
    rng = np.random.default_rng([0, 5])  # the stated seeding: default_rng([seed, image index]), tops then lefts
    assert boxes == list(zip(rng.integers(0, 1025, 10).tolist(), rng.integers(0, 2049, 10).tolist()))
    assert crops.protocol(native=1024, smallest=700).crop == 700  # capped: a 700-px reference still gives crops
    assert crops.protocol(native=512, smallest=4096).crop == 512
    assert PatchProtocol.parse("random:10:0@1024") == protocol  # the label reads back


@pytest.mark.parametrize("name, per_image", [("ultrapixel", 3), ("lsrna", 10)])
def test_patch_presets_cut_inception_sized_crops(name, per_image):
    protocol = PRESETS[name].crops.protocol(native=1024, smallest=1024)
    assert (protocol.crop, protocol.per_image, protocol.seed) == (299, per_image, 0)
    assert protocol.label == f"random:{per_image}:0"  # the 299-px label of --patch-protocol, unchanged
    boxes = protocol.boxes(1024, 2048, index=0)
    assert len(boxes) == per_image and all(0 <= t <= 1024 - 299 and 0 <= l <= 2048 - 299 for t, l in boxes)
    assert protocol.boxes(298, 2048, index=0) == []


def test_whole_image_presets_cut_nothing_and_name_their_library_and_mode():
    assert {n: (p.library, p.mode) for n, p in PRESETS.items() if p.crops is None} == {
        "cleanfid-clean": ("clean-fid", "clean"), "cleanfid-legacy-tf": ("clean-fid", "legacy_tensorflow"),
        "cleanfid-legacy-pt": ("clean-fid", "legacy_pytorch"), "torchmetrics": ("torchmetrics", "legacy_tensorflow")}
    for preset in PRESETS.values():
        assert preset.source and preset.pinned and preset.ours  # cited, and what is ours is said
    assert [p.name for p in resolve("all")] == list(PRESETS)
    assert [p.name for p in resolve("lsrna, demofusion,lsrna")] == ["lsrna", "demofusion"]
    with pytest.raises(ValueError, match="known: all, demofusion"):
        resolve("fid-c")
    with pytest.raises(ValueError, match="random:K"):
        PatchProtocol.parse("random:3@0")


# -- modes and libraries against the libraries -----------------------------------------------------------------

@pytest.fixture(scope="module")
def detailed():
    """A 640 x 480 image with detail at every scale: resize filters disagree on it."""
    rng = np.random.default_rng(1)
    return (rng.random((480, 640, 3)) * 255).astype(np.uint8)


def test_each_mode_resizes_as_clean_fid_does(detailed):
    for mode in ("clean", "legacy_pytorch"):
        np.testing.assert_array_equal(resizer(mode)(detailed), build_resizer(mode)(detailed))
    # legacy_tensorflow: clean-fid resizes inside the TorchScript graph, torch bilinear on the 8-bit values
    inside = F.interpolate(torch.from_numpy(detailed).permute(2, 0, 1)[None].float(), size=(299, 299),
                           mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(resizer("legacy_tensorflow")(detailed), inside, atol=1e-4)
    assert np.abs(resizer("clean")(detailed) - inside).mean() > 1.0  # bicubic with antialiasing vs bilinear
    with pytest.raises(ValueError, match="legacy_pytorch"):
        resizer("legacy")


def test_torchmetrics_fid_agrees_with_clean_fid_on_the_same_features():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(60, 12)), rng.normal(0.3, 1.2, size=(50, 12))
    expected = clean_fid_frechet(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert torchmetrics_fid(a, b) == pytest.approx(expected, rel=1e-6)
    assert torchmetrics_fid(a, a) == pytest.approx(0, abs=1e-6)


# -- a tiny run scored under every preset ------------------------------------------------------------------------

def _stand_in(profile, device=None, **_):
    """The Inception wrapper around a pooled linear map: 2048-d features and 10 logits in milliseconds."""
    torch.manual_seed(0)
    body = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 2048), nn.Tanh())
    return InceptionV3(body, nn.Linear(2048, 10), {"network": "test stand-in (pooled linear)", "weights": "seed 0",
                                                   "features": "2048-d", "logits": "10 classes"}).eval()


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """Two 'methods' on one 3-image build (the second's images a perturbed copy), the first scored with all
    presets, the second with all but torchmetrics'; a copy of the first scored without LSRNA's and torchmetrics'."""
    root = tmp_path_factory.mktemp("presets")
    dataset = make_dataset(root / "data", [(320, 320), (320, 400), (352, 320)], name="presetset")
    first = root / "runs" / "sr-plus"
    api.run(RunSpec("sr-plus", dataset=str(dataset), limit=3, out=first, steps=1, progress=False, score=False))
    second, third = root / "runs" / "ar-plus", root / "elsewhere" / "sr-plus"  # the third not in the report
    shutil.copytree(first, second)
    for path in sorted((second / "samples").glob("*.png")):
        pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
        Image.fromarray(np.clip(pixels[:, ::-1] + 40, 0, 255).astype(np.uint8)).save(path)
    results = json.loads((second / "results.json").read_text())
    (second / "results.json").write_text(json.dumps({**results, "method": "ar-plus"}))
    shutil.copytree(first, third)
    cheaper = ",".join(n for n in PRESETS if n not in ("lsrna", "torchmetrics"))  # eigvals of 2048 x 2048: 8 s
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metrics, "load_inception", _stand_in)
        api.score([first], bootstrap=20, protocols="all")
        api.score([second], bootstrap=20, protocols=cheaper + ",lsrna")
        api.score([third], bootstrap=20, protocols=cheaper)
    return first, second, third


def _results(out):
    return json.loads((out / "results.json").read_text())


def test_every_preset_gives_every_statistic_with_an_interval(scored):
    results = _results(scored[0])
    protocols = results["scores"]["protocols"]
    assert set(protocols) == set(PRESETS)
    for name, preset in PRESETS.items():
        assert set(protocols[name]) == set(preset.names), name
        for entry in protocols[name].values():
            assert np.isfinite(entry["value"]) and entry["low"] <= entry["high"], name
    # the clean preset is the run's own FID: the same features, statistics and distance
    assert protocols["cleanfid-clean"]["fid"]["value"] == pytest.approx(results["scores"]["fid"], rel=1e-9)
    # the two legacy modes share resize and network here (docs/metrics.md); clean resizes otherwise
    assert protocols["cleanfid-legacy-tf"]["fid"]["value"] == pytest.approx(protocols["cleanfid-legacy-pt"]["fid"]["value"])
    assert protocols["cleanfid-legacy-tf"]["fid"]["value"] != pytest.approx(protocols["cleanfid-clean"]["fid"]["value"])
    assert protocols["torchmetrics"]["fid"]["value"] == pytest.approx(protocols["cleanfid-legacy-tf"]["fid"]["value"],
                                                                      rel=1e-4)
    recorded = results["metric_conventions"]["protocols"]
    assert recorded["ultrapixel"]["statistics_recorded"]["fid"] == {"n": 9, "n_reference": 9}  # 3 crops x 3 images
    assert recorded["demofusion"]["definition"]["crops"]["crop_px"] == 320  # 512 native, capped at the smallest side
    assert recorded["demofusion"]["statistics_recorded"]["is"]["n"] == 30
    assert results["protocol"]["presets"]["lsrna"] == recorded["lsrna"]["definition"]


def test_the_report_shows_how_much_the_protocol_moves_a_score(scored):
    body = protocol_spread(load_results(scored[0].parent))
    assert body.count("| sr-plus ") == 3 and body.count("| ar-plus ") == 3  # FID, KID and IS tables
    fid = body.split("FID:")[1].split("KID:")[0]
    header = fid.splitlines()[2]
    assert "demofusion (FID_c)" in header and "ultrapixel (FID-patch)" in header and "spread across presets" in header
    row = next(line for line in fid.splitlines() if line.startswith("| sr-plus"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert all("[" in cell for cell in cells[1:-1])  # every value with its interval
    values = [float(cell.split(" [")[0]) for cell in cells[1:-1]]
    assert float(cells[-1]) == pytest.approx(max(values) - min(values), abs=0.011)
    assert "spread across methods" in fid
    assert next(line for line in fid.splitlines() if line.startswith("| ar-plus")).count("| —") == 1  # torchmetrics
    written = api.report(scored[0].parent, scored[0].parent / "reports")
    assert any(f"## {TITLE}" in path.read_text() for path in written)


def test_protocol_check_names_the_preset_that_differs(scored, capsys):
    first, second, third = scored
    assert main(["protocol", str(first), "--check", str(third)]) == 1
    output = capsys.readouterr().out
    assert output.startswith("differ: ") and "presets.demofusion" not in output
    assert output.split(": ", 1)[1].split() == ["presets.lsrna,", "presets.torchmetrics"]


def test_list_shows_the_presets_with_their_sources(capsys):
    assert main(["list"]) == 0
    output = capsys.readouterr().out
    for name in PRESETS:
        assert f"  {name} " in output
    assert "catcathh/UltraPixel#22" in output and "lzhxmu/AccDiffusion_v2#2" in output
