"""Metrics: cross-checks against the libraries and against definitions, offline, tiny weights."""
import hashlib
import os
import socket
import urllib.request

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from cleanfid.fid import frechet_distance as cleanfid_frechet_distance
from PIL import Image
from torch import nn

import benchmark.metrics as metrics
import benchmark.metrics.fid as fid_module
from benchmark.metrics.inception import InceptionOutputs

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class DownloadAttempt(AssertionError):
    pass


def _refuse(*args, **kwargs):
    raise DownloadAttempt(f"network access attempted: {args[:2]}")


@pytest.fixture(scope="module", autouse=True)
def offline():
    """Every network path the metric libraries use to fetch weights raises."""
    import huggingface_hub

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _refuse)
        mp.setattr(urllib.request, "urlopen", _refuse)
        mp.setattr(torch.hub, "load_state_dict_from_url", _refuse)
        mp.setattr(torch.hub, "download_url_to_file", _refuse)
        mp.setattr(huggingface_hub, "hf_hub_download", _refuse)
        yield


@pytest.fixture(scope="module")
def inception(offline):
    return metrics.load_inception("tiny", device="cpu")


@pytest.fixture(scope="module")
def lpips_tiny(offline):
    return metrics.load_lpips("tiny", device="cpu")


@pytest.fixture(scope="module")
def clip_tiny(offline):
    return metrics.load_clip("tiny", device="cpu")


def _image(seed, h=40, w=48):
    """A smooth gradient plus noise: structure for SSIM, texture for PSNR."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], axis=-1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def _features(seed, n=300, d=32, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mixing * scale + shift


def _outputs(features, conventions=None):
    return InceptionOutputs(features, np.zeros((len(features), 10)), conventions or {"weights": "test"})


def _stats(features, conventions=None):
    mu, sigma = metrics.gaussian_stats(features)
    return metrics.ReferenceStats("ref", mu, sigma, len(features), "0" * 64, conventions or {"weights": "test"},
                                  None, False, features=features)


class IdentityFeatures(nn.Module):
    """A torchmetrics feature extractor that passes given features through unchanged."""

    def __init__(self, dimensions):
        super().__init__()
        self.num_features = dimensions

    def forward(self, x):
        return x


# ---------------------------------------------------------------- nothing downloads


@pytest.mark.parametrize("load", [metrics.load_inception, metrics.load_lpips, metrics.load_clip])
def test_real_weights_that_are_missing_are_an_error_not_a_download(load, tmp_path):
    """Under the offline guard a loader that reached for the network would raise DownloadAttempt
    (an AssertionError); the product must name the missing file instead."""
    with pytest.raises(DownloadAttempt):  # the guard itself is in force
        urllib.request.urlopen("https://example.com")
    with pytest.raises(metrics.MissingWeightsError, match=str(tmp_path)):
        load("full", path=tmp_path / "absent")


# ---------------------------------------------------------------- FID


def test_frechet_distance_matches_cleanfid_and_torchmetrics():
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, fake = _features(0), _features(1, shift=0.3, scale=1.2)
    ours = metrics.frechet_distance(*metrics.gaussian_stats(fake), *metrics.gaussian_stats(real))

    mu1, mu2 = fake.mean(0), real.mean(0)
    reference = cleanfid_frechet_distance(mu1, np.cov(fake, rowvar=False), mu2, np.cov(real, rowvar=False))

    tm = FrechetInceptionDistance(feature=IdentityFeatures(real.shape[1]))  # fits its own mean, covariance
    tm.update(torch.from_numpy(real), real=True)
    tm.update(torch.from_numpy(fake), real=False)
    torchmetrics_value = float(tm.compute())

    assert ours > 1.0
    assert ours == pytest.approx(reference, rel=1e-3)
    assert ours == pytest.approx(torchmetrics_value, rel=1e-3)


def test_fid_of_a_set_against_itself_is_zero():
    features = _features(2)
    result = metrics.fid_score(_outputs(features), _stats(features))
    assert abs(result["value"]) < 1e-6
    assert result["n"] == result["n_reference"] == len(features)
    assert "cleanfid" in result["conventions"]["distance"]


def test_fid_refuses_features_from_another_extractor():
    features = _features(3)
    with pytest.raises(ValueError, match="extracted differently"):
        metrics.fid_score(_outputs(features, {"weights": "random (seed 0)"}), _stats(features, {"weights": "real"}))


# ---------------------------------------------------------------- KID


def test_kid_matches_torchmetrics_on_the_same_features_and_subsets():
    """torchmetrics draws its subsets with torch.randperm from the global generator: seeded with
    our subset seed, it draws the very subsets we draw, so the two must agree to rounding."""
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = _features(6, n=120), _features(7, n=90, shift=0.2, scale=1.1)
    tm = KernelInceptionDistance(feature=IdentityFeatures(real.shape[1]), subsets=25, subset_size=60)
    tm.update(torch.from_numpy(real), real=True)
    tm.update(torch.from_numpy(fake), real=False)
    torch.manual_seed(11)
    tm_mean, tm_std = (float(v) for v in tm.compute())

    result = metrics.kid_score(_outputs(fake), _stats(real), subsets=25, subset_size=60, seed=11)
    assert result["value"] > 1e-3
    assert result["value"] == pytest.approx(tm_mean, rel=1e-6)
    assert result["std"] == pytest.approx(tm_std, rel=1e-6) and result["std"] > 0
    conventions = result["conventions"]
    assert (conventions["subsets"], conventions["subset_size"], conventions["subset_seed"]) == (25, 60, 11)
    other_seed = metrics.kid_score(_outputs(fake), _stats(real), subsets=25, subset_size=60, seed=12)
    assert other_seed["value"] != result["value"]  # the subsets really come from the seed
    assert metrics.kid_score(_outputs(fake), _stats(real), subsets=25, subset_size=60, seed=11) == result


def test_kid_on_whole_sets_matches_cleanfid_and_records_the_subset_size():
    """With fewer images than the subset size every subset is the whole (smaller) set, as clean-fid
    takes it; clean-fid's kernel_distance then leaves nothing to chance."""
    from cleanfid.fid import kernel_distance

    real, fake = _features(8, n=40), _features(9, n=40, shift=0.3)
    result = metrics.kid_score(_outputs(fake), _stats(real))
    assert result["conventions"]["subsets"] == 100 and result["conventions"]["subset_size_requested"] == 1000
    assert result["conventions"]["subset_size"] == 40  # min(1000, n)
    assert result["value"] == pytest.approx(kernel_distance(real, fake, num_subsets=3), rel=1e-9)
    assert result["std"] == pytest.approx(0, abs=1e-12)

    halves = _features(8, n=80)  # two samples of one distribution
    same_distribution = metrics.kid_score(_outputs(halves[:40]), _stats(halves[40:]))
    assert abs(same_distribution["value"]) < result["value"] / 5
    with pytest.raises(ValueError, match="at least 2"):
        metrics.kernel_inception_distance(fake[:1], real)
    with pytest.raises(ValueError, match="extracted differently"):
        metrics.kid_score(_outputs(fake, {"weights": "a"}), _stats(real, {"weights": "b"}))


# ---------------------------------------------------------------- Inception pass and reference statistics


def test_tiny_inception_is_labelled_and_handles_any_size(inception):
    images = [_image(0, 64, 128), Image.fromarray(_image(1, 96, 40)), _image(2, 50, 50)[..., 0]]
    out = metrics.inception_outputs(images, inception, batch_size=2)
    assert out.features.shape == (3, 2048) and out.logits.shape == (3, 1008)
    assert np.isfinite(out.features).all() and out.features.std() > 0
    assert out.conventions["weights"] == "random (seed 0)"
    assert "PIL bicubic" in out.conventions["resize"]
    assert metrics.clean_resize(images[0]).shape == (299, 299, 3)
    assert metrics.clean_resize(images[0]).dtype == np.float32


def test_reference_stats_cache_hit_and_miss(tmp_path, inception, monkeypatch):
    paths = []
    for i, (h, w) in enumerate([(32, 64), (64, 32), (48, 48)]):
        paths.append(tmp_path / f"ref{i}.png")
        Image.fromarray(_image(i, h, w)).save(paths[-1])
    cache = tmp_path / "cache"

    computed = []
    real_outputs = fid_module.inception_outputs
    monkeypatch.setattr(fid_module, "inception_outputs",
                        lambda *a, **k: computed.append(real_outputs(*a, **k)) or computed[-1])

    first = metrics.reference_stats(paths, "toy", cache, inception)
    assert not first.from_cache and first.cache_path.is_file() and first.count == 3 and len(computed) == 1
    np.testing.assert_allclose(first.mu, computed[0].features.mean(0))
    np.testing.assert_allclose(first.sigma, np.cov(computed[0].features, rowvar=False))
    assert first.sigma.shape == (2048, 2048)
    np.testing.assert_array_equal(first.features, computed[0].features)  # KID reads these very features

    again = metrics.reference_stats(list(reversed(paths)), "toy", cache, inception)  # order does not matter
    assert again.from_cache and len(computed) == 1 and again.cache_path == first.cache_path
    np.testing.assert_array_equal(again.mu, first.mu)
    np.testing.assert_array_equal(again.sigma, first.sigma)
    np.testing.assert_array_equal(again.features, first.features)  # float32 on disk loses nothing
    assert again.features.dtype == np.float64 and again.conventions == first.conventions

    with np.load(first.cache_path) as cached:  # a file from before KID (statistics only) is made again
        np.savez(first.cache_path, **{k: cached[k] for k in cached.files if k != "features"})
    stale = metrics.reference_stats(paths, "toy", cache, inception)
    assert not stale.from_cache and len(computed) == 2 and stale.cache_path == first.cache_path
    assert metrics.reference_stats(paths, "toy", cache, inception).from_cache
    computed.pop()

    fewer = metrics.reference_stats(paths[:2], "toy", cache, inception)  # another file list: miss
    assert not fewer.from_cache and fewer.cache_path != first.cache_path and len(computed) == 2

    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text('{"file": "ref0.png", "sha256": "abc"}\n')
    by_manifest = metrics.reference_stats(paths[:2], "toy", cache, inception, manifest=manifest)
    assert not by_manifest.from_cache and by_manifest.manifest_sha256 == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert metrics.reference_stats(paths[:2], "toy", cache, inception, manifest=manifest).from_cache

    other_weights = metrics.load_inception("tiny", seed=1, device="cpu")  # same files, other extractor: miss
    assert metrics.manifest_hash(paths) == first.manifest_sha256
    assert not metrics.reference_stats(paths[:2], "toy", cache, other_weights).from_cache

    Image.fromarray(_image(9, 40, 40)).save(paths[0])  # same file list, rewritten file: another hash
    assert metrics.manifest_hash(paths) != first.manifest_sha256
    arrays = [_image(0), _image(1)]
    assert metrics.manifest_hash(arrays) == metrics.manifest_hash([Image.fromarray(a) for a in arrays])
    assert metrics.manifest_hash(arrays) != metrics.manifest_hash([_image(0), _image(2)])

    with pytest.raises(ValueError):
        metrics.reference_stats(paths, "../escape", cache, inception)


def test_real_inception_loader_reads_cleanfid_torchscript_layout(tmp_path):
    """A stand-in with the TorchScript file's `layers` and `output` modules, loaded by explicit path."""

    class FakeInception(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(3, 2048, 1))
            self.output = nn.Linear(2048, 1008)

        def forward(self, x):
            return self.output(self.layers(x).reshape(-1, 2048))

    fake = torch.jit.script(FakeInception())
    fake.save(str(tmp_path / "inception-2015-12-05.pt"))
    files = []
    for i, (h, w) in enumerate([(40, 48), (30, 60)]):
        files.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(_image(i, h, w)).save(files[-1])

    net = metrics.load_inception("full", path=tmp_path, device="cpu")
    out = metrics.inception_outputs(files, net)
    assert out.features.shape == (2, 2048) and out.logits.shape == (2, 1008)

    # clean-fid's own pipeline (file loading, "clean" resize, InceptionV3W) gives the same features
    from cleanfid.fid import get_files_features
    from cleanfid.inception_torchscript import InceptionV3W

    cleanfid_net = InceptionV3W(str(tmp_path), download=False)
    expected = get_files_features(files, model=cleanfid_net, num_workers=0, device=torch.device("cpu"),
                                  mode="clean", verbose=False)
    np.testing.assert_allclose(out.features, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.logits, out.features @ fake.output.weight.detach().double().numpy().T,
                               rtol=1e-4, atol=1e-4)
    assert out.conventions["weights_sha256"] == hashlib.sha256(
        (tmp_path / "inception-2015-12-05.pt").read_bytes()).hexdigest()

    with pytest.raises(metrics.MissingWeightsError, match="nowhere"):
        metrics.load_inception("full", path=tmp_path / "nowhere.pt")


# ---------------------------------------------------------------- IS


def test_inception_score_of_identical_images_is_one(inception):
    out = metrics.inception_outputs([_image(5)] * 3, inception)
    result = metrics.inception_score(out)
    assert result["value"] == pytest.approx(1.0, abs=1e-6)
    assert result["conventions"]["splits"] == 3 and result["conventions"]["splits_requested"] == 10


def test_inception_score_matches_torchmetrics():
    from torchmetrics.image.inception import InceptionScore

    logits = np.random.default_rng(0).normal(0, 3, (40, 20))
    tm = InceptionScore(feature=nn.Identity(), splits=4)
    tm.update(torch.from_numpy(logits))
    torch.manual_seed(0)
    tm_mean, tm_std = tm.compute()
    torch.manual_seed(0)
    order = torch.randperm(len(logits)).numpy()  # torchmetrics shuffles before splitting

    mean, std, used = metrics.inception_score_from_logits(logits[order], splits=4)
    assert used == 4 and mean > 1.5
    assert mean == pytest.approx(float(tm_mean), rel=1e-6)
    assert std == pytest.approx(float(tm_std) * np.sqrt(3 / 4), rel=1e-6)  # population vs sample std


# ---------------------------------------------------------------- PSNR / SSIM on Y


def _y_by_definition(rgb):
    r, g, b = np.moveaxis(rgb.astype(np.float64) / 255, -1, 0)
    return 16 + 65.481 * r + 128.553 * g + 24.966 * b


def _ssim_by_definition(x, y, sigma=1.5, radius=5):
    """Wang et al. 2004: Gaussian-weighted local statistics over every window fully inside the image."""
    offsets = np.arange(-radius, radius + 1)
    g = np.exp(-0.5 * offsets ** 2 / sigma ** 2)
    window = np.outer(g, g) / np.outer(g, g).sum()
    wx = np.lib.stride_tricks.sliding_window_view(x, window.shape)
    wy = np.lib.stride_tricks.sliding_window_view(y, window.shape)

    def mean(a):
        return (a * window).sum(axis=(-1, -2))

    mx, my = mean(wx), mean(wy)
    vx = mean(wx ** 2) - mx ** 2
    vy = mean(wy ** 2) - my ** 2
    cxy = mean(wx * wy) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return s.mean()


@pytest.mark.parametrize("crop", [0, 4])
def test_psnr_and_ssim_on_y_match_their_definitions(crop):
    ref = _image(10, 40, 48)
    noise = np.random.default_rng(11).normal(0, 12, ref.shape)
    test = np.clip(ref + noise, 0, 255).astype(np.uint8)

    y_ref, y_test = _y_by_definition(ref), _y_by_definition(test)
    np.testing.assert_allclose(metrics.y_channel(ref), y_ref, atol=1e-9)
    if crop:
        y_ref, y_test = y_ref[crop:-crop, crop:-crop], y_test[crop:-crop, crop:-crop]

    psnr = 10 * np.log10(255 ** 2 / np.mean((y_ref - y_test) ** 2))
    assert metrics.psnr_y(ref, test, crop_border=crop) == pytest.approx(psnr, rel=1e-9)
    assert metrics.ssim_y(ref, test, crop_border=crop) == pytest.approx(_ssim_by_definition(y_ref, y_test), rel=1e-6)
    assert metrics.ssim_y(ref, ref) == pytest.approx(1.0)
    assert metrics.psnr_y(ref, ref) == np.inf


# ---------------------------------------------------------------- LPIPS and the fidelity report


def test_lpips_of_an_image_with_itself_is_zero(lpips_tiny):
    a, b = _image(20, 64, 64), _image(21, 64, 64)
    assert lpips_tiny(a, a) == 0.0
    assert lpips_tiny(a, b) > 0.0
    assert lpips_tiny.conventions["weights"] == "backbone random (seed 0)"
    with pytest.raises(ValueError):
        lpips_tiny(a, _image(21, 64, 32))


def test_fidelity_report(lpips_tiny):
    refs = [_image(30, 40, 48), _image(31, 64, 32)]
    tests = [np.clip(r.astype(int) + 8, 0, 255).astype(np.uint8) for r in refs]
    report = metrics.fidelity(refs, tests, lpips_tiny, crop_border=2)
    assert report["n"] == 2 and set(report["values"]) == {"psnr", "ssim", "lpips"}
    assert report["values"]["psnr"] == pytest.approx(np.mean([metrics.psnr_y(r, t, 2) for r, t in zip(refs, tests)]))
    assert report["conventions"]["crop_border"] == 2 and report["conventions"]["data_range"] == 255


def test_real_lpips_loader_copies_alexnet_features(tmp_path):
    from torchvision.models import alexnet

    torch.manual_seed(3)
    features = alexnet(weights=None).features
    checkpoint = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, checkpoint)

    model = metrics.load_lpips("full", path=tmp_path, device="cpu")
    torch.testing.assert_close(model.net.net.slice1[0].weight, features[0].weight)
    torch.testing.assert_close(getattr(model.net.net.slice5, "10").bias, features[10].bias)
    assert model(_image(1), _image(1)) == 0.0

    with pytest.raises(metrics.MissingWeightsError, match="alexnet-owt-7be5be79.pth"):
        metrics.load_lpips("full", path=tmp_path / "empty")


# ---------------------------------------------------------------- CLIP score


def test_clip_score_range_and_determinism(clip_tiny):
    images = [_image(40, 64, 128), _image(41, 128, 64), _image(40, 64, 128)]
    texts = ["a red square", "a photo of a face", "a red square"]
    scores = metrics.clip_scores(images, texts, clip_tiny, batch_size=2)
    assert scores.shape == (3,)
    assert ((scores >= 0) & (scores <= 100)).all()
    assert scores[0] == pytest.approx(scores[2], abs=1e-4)  # same pair, other batch
    result = metrics.clip_score(images, texts, clip_tiny)
    assert result["value"] == pytest.approx(scores.mean(), abs=1e-4)
    assert result["conventions"]["pretrained"] == "random (seed 0)"
    assert "cos" in result["conventions"]["score"]
    with pytest.raises(ValueError):
        metrics.clip_scores(images, texts[:2], clip_tiny)


def test_clip_score_formula_by_hand(clip_tiny):
    images = [_image(seed, 80, 60 + 20 * seed) for seed in range(4)]
    texts = ["a gradient", "a red square", "two cats on a sofa", "noise"]
    with torch.no_grad():
        i = clip_tiny.model.encode_image(torch.stack([clip_tiny.preprocess(Image.fromarray(x)) for x in images]))
        t = clip_tiny.model.encode_text(clip_tiny.tokenizer(texts))
    expected = (100 * torch.nn.functional.cosine_similarity(i, t)).clamp(min=0).numpy()
    assert (expected > 0).any()
    np.testing.assert_allclose(metrics.clip_scores(images, texts, clip_tiny, batch_size=3), expected, atol=1e-4)


def test_real_clip_loader_reads_a_local_checkpoint(tmp_path, clip_tiny):
    """A registered small architecture saved to disk stands in for real OpenCLIP weights."""
    import json

    import open_clip
    from benchmark.metrics.clip_score import TINY_OVERRIDES

    (tmp_path / "asd-test-clip.json").write_text(json.dumps(TINY_OVERRIDES))
    open_clip.add_model_config(tmp_path / "asd-test-clip.json")
    checkpoint = tmp_path / "weights.bin"
    torch.save(clip_tiny.model.state_dict(), checkpoint)

    loaded = metrics.load_clip("full", model="asd-test-clip", pretrained="local-test", path=checkpoint, device="cpu")
    assert loaded.conventions["model"] == "asd-test-clip" and loaded.conventions["pretrained"] == "local-test"
    assert loaded.conventions["weights_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    images, texts = [_image(50, 64, 80), _image(51, 70, 70)], ["a gradient", "a cat"]
    np.testing.assert_allclose(metrics.clip_scores(images, texts, loaded),
                               metrics.clip_scores(images, texts, clip_tiny), atol=1e-4)


# ---------------------------------------------------------------- weights


def test_weight_files_and_missing_weights(tmp_path):
    nowhere = {"inception": tmp_path / "a.pt", "lpips-alexnet": tmp_path / "b.pth", "clip": tmp_path / "c.bin"}
    tiny = {r.key: r for r in metrics.weight_files("tiny", nowhere)}
    assert not tiny["inception"].needed and tiny["lpips-linear"].needed and tiny["lpips-linear"].present
    assert not any(r.needed for r in metrics.weight_files("oracle", nowhere) if r.key != "lpips-linear")
    assert metrics.require_weights("tiny", nowhere).keys() == {"lpips-linear"}

    with pytest.raises(metrics.MissingWeightsError) as error:
        metrics.require_weights("full", nowhere)
    for path in nowhere.values():
        assert str(path) in str(error.value)

    (tmp_path / "a.pt").write_bytes(b"weights")
    records = {r.key: r for r in metrics.weight_files("full", nowhere)}
    assert records["inception"].present and records["inception"].sha256 == hashlib.sha256(b"weights").hexdigest()
    assert not records["clip"].present and records["clip"].sha256 is None
    assert set(records["clip"].as_dict()) >= {"name", "used_by", "path", "looked_in", "present", "sha256"}


def test_default_locations_follow_the_libraries_caches():
    records = {r.key: r for r in metrics.weight_files("full", hash_files=False)}
    assert records["inception"].looked_in == ("/tmp/inception-2015-12-05.pt",)  # cleanfid.features on Linux
    assert records["lpips-alexnet"].looked_in[0] == os.path.join(torch.hub.get_dir(), "checkpoints",
                                                                 "alexnet-owt-7be5be79.pth")
    assert any("vit_large_patch14_clip_224.openai" in p for p in records["clip"].looked_in)
    with pytest.raises(metrics.MissingWeightsError):
        metrics.load_clip("full", path="/nonexistent/clip.bin")


def test_fid_of_fewer_images_than_dimensions_is_the_exact_low_rank_form():
    real, fake = _features(4, n=200, d=32), _features(5, n=6, d=32, shift=0.3)
    result = metrics.fid_score(_outputs(fake), _stats(real))
    reference = cleanfid_frechet_distance(fake.mean(0), np.cov(fake, rowvar=False), *metrics.gaussian_stats(real))
    assert result["value"] == pytest.approx(reference, rel=1e-4)
    assert "low-rank" in result["conventions"]["distance"]
