"""Tiled VAE, region-by-region bicubic resize and the tile-by-tile colour fix against their whole-image forms."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
from helpers import CPU

from baselines.bicubic import Bicubic, resize
from baselines.models import load_upscaler
from baselines.notes import SampleNote
from baselines.stage2 import FIX_TILE, adain, colour_fixed_uint8, to_uint8, wavelet
from baselines.vae_tiling import (VAE_TILING_MODES, SharedGroupNorms, VaeTiling, decode, encode_moments,
                                  latent_sample, spread, tiles, vae_factor)
from benchmark.runs.vae_study import psnr

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def vae():
    return load_upscaler("tiny", CPU).vae


def _image(seed: int, height: int, width: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    low = torch.rand((1, 3, height // 8, width // 8), generator=generator) * 2 - 1
    return resize(low, (height, width))  # smooth, like an image


@pytest.mark.parametrize("mode", VAE_TILING_MODES)
def test_where_one_tile_covers_the_latent_every_mode_is_the_untiled_call(vae, mode):
    tiling = VaeTiling(mode, tile=32)
    latent = torch.randn((1, 4, 32, 24), generator=torch.Generator().manual_seed(0))
    assert tiling.effective((32, 24)) == "off"
    assert torch.equal(decode(vae, latent, tiling), vae.decode(latent).sample)

    image = _image(1, 128, 96)
    moments = encode_moments(vae, Bicubic(image, (128, 96)), (128, 96), tiling)
    untiled = vae.encode(image).latent_dist
    assert torch.equal(moments, untiled.parameters)
    assert torch.equal(latent_sample(moments, torch.Generator().manual_seed(5)),
                       untiled.sample(generator=torch.Generator().manual_seed(5)))


def test_sync_decode_with_every_tile_sampled_and_a_wide_halo_is_the_untiled_decode(vae):
    latent = torch.randn((1, 4, 80, 72), generator=torch.Generator().manual_seed(2))  # 3 x 3 tiles of 32
    whole = vae.decode(latent).sample
    exact = decode(vae, latent, VaeTiling("sync", tile=32, halo=12, sample_tiles=9))
    narrow = decode(vae, latent, VaeTiling("sync", tile=32, halo=2, sample_tiles=9))
    sampled = decode(vae, latent, VaeTiling("sync", tile=32, halo=12, sample_tiles=2))
    assert exact.shape == whole.shape and exact.dtype == torch.float32
    assert psnr(exact, whole) > 90  # float rounding only: statistics of every pixel, context the decoder reaches
    assert psnr(narrow, whole) < 40  # context cut off
    assert psnr(sampled, whole) < 40  # statistics from two tiles only


def test_the_statistics_gathered_a_few_windows_at_a_time_are_those_of_one_batch(vae):
    """Batches of 4, 2 and 1 of the 9 sample windows: several passes, at most one per GroupNorm, none larger than
    the batch, and the decode of one batch."""
    latent = torch.randn((1, 4, 80, 72), generator=torch.Generator().manual_seed(2))  # 3 x 3 tiles of 32
    one_batch = decode(vae, latent, VaeTiling("sync", tile=32, halo=12, sample_tiles=9))
    norms = sum(isinstance(m, torch.nn.GroupNorm) for m in vae.decoder.modules())
    calls = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vae.decoder, "forward", _counted(vae.decoder.forward, calls))
        for batch in (4, 2, 1):
            calls.clear()
            batched = decode(vae, latent, VaeTiling("sync", tile=32, halo=12, sample_tiles=9, sample_batch=batch))
            batches, tiles_decoded = math.ceil(9 / batch), 9
            assert max(calls) == batch and 2 * batches < len(calls) - tiles_decoded <= norms * batches
            assert psnr(batched, one_batch) > 100, batch


def _counted(forward, calls: list):
    def counted(z, *args, **kwargs):
        calls.append(z.shape[0])
        return forward(z, *args, **kwargs)
    return counted


def test_a_statistics_batch_that_runs_out_of_memory_is_halved_to_the_same_decode(vae):
    """torch's own allocator failing for batches above 2 windows: the decode halves 9 to 5, 3, 2 and goes on."""
    latent = torch.randn((1, 4, 80, 72), generator=torch.Generator().manual_seed(2))
    tiling = VaeTiling("sync", tile=32, halo=12, sample_tiles=9)
    one_batch = decode(vae, latent, tiling)
    forward = vae.decoder.forward

    def tight(z, *args, **kwargs):
        if z.shape[0] > 2:
            torch.empty(2**50, dtype=torch.uint8)  # more than any machine: the CPU allocator's own error
        return forward(z, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch, pytest.warns(SampleNote) as notes:
        patch.setattr(vae.decoder, "forward", tight)
        halved = decode(vae, latent, tiling)
        with pytest.raises(RuntimeError, match="can't allocate memory"):
            patch.setattr(vae.decoder, "forward", lambda z: torch.empty(2**50, dtype=torch.uint8))
            decode(vae, latent, tiling)  # one window that does not fit is out of memory, for the runner to record
    assert psnr(halved, one_batch) > 100
    assert [str(note.message).split("; gathered ")[1].split(" at a time")[0] for note in notes] == [
        "5", "3", "2", "5", "3", "2", "1"]


def test_sync_encode_is_close_to_untiled(vae):
    size = (320, 256)
    image = _image(3, *size)
    whole = vae.encode(image).latent_dist.parameters
    tiled = encode_moments(vae, Bicubic(image, size), size, VaeTiling("sync", tile=32, halo=16))
    assert tiled.shape == whole.shape
    torch.testing.assert_close(tiled, whole, atol=1e-4, rtol=1e-4)


def test_shared_group_norms_gather_once_then_reuse(vae):
    decoder = vae.decoder
    x = torch.randn((1, 4, 24, 24), generator=torch.Generator().manual_seed(4))
    plain = decoder(x)
    with SharedGroupNorms(decoder) as shared:
        gathered = decoder(x)  # first call: statistics of this very input, as GroupNorm's own
        crop_shared = decoder(x[..., :12, :12])
    norms = [m for m in decoder.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(shared.stats) == len(norms) > 0
    torch.testing.assert_close(gathered, plain, atol=1e-5, rtol=1e-4)
    crop_plain = decoder(x[..., :12, :12])  # restored: the crop's own statistics again
    assert not torch.allclose(crop_shared, crop_plain, atol=1e-3)


def test_the_tile_grid_covers_the_latent_once_and_the_sample_is_spread():
    grid = tiles((70, 33), 32)
    covered = torch.zeros(70, 33, dtype=torch.int64)
    for (top, bottom), (left, right) in grid:
        covered[top:bottom, left:right] += 1
    assert bool((covered == 1).all())
    assert spread(list(range(9)), 3) == [1, 4, 7] and spread([1, 2], 5) == [1, 2]


def test_bad_vae_tiling_is_refused():
    with pytest.raises(ValueError, match="unknown VAE tiling 'tiles'"):
        VaeTiling("tiles")
    with pytest.raises(ValueError, match="tile >= 8"):
        VaeTiling("sync", tile=4)


@pytest.mark.parametrize("source, size", [((48, 80), (256, 200)), ((768, 512), (1000, 3000)), ((64, 64), (40, 50))])
def test_bicubic_regions_are_crops_of_the_whole_resize(source, size):
    image = torch.rand((1, 3) + source, generator=torch.Generator().manual_seed(0)) * 2 - 1
    whole, regions = resize(image, size), Bicubic(image, size)
    torch.testing.assert_close(regions(0, 0, *size), whole, atol=1e-5, rtol=0)
    top, left = size[0] // 3, size[1] // 5
    torch.testing.assert_close(regions(top, left, 17, 29), whole[..., top:top + 17, left:left + 29], atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["adain", "wavelet", "none"])
def test_the_tile_by_tile_colour_fix_equals_the_whole_image_one(kind):
    size = (FIX_TILE + 200, 2 * FIX_TILE + 37)  # several tiles, ragged edges
    source = torch.rand((1, 3, 90, 160), generator=torch.Generator().manual_seed(1)) * 2 - 1
    image = (torch.randn((1, 3) + size, generator=torch.Generator().manual_seed(2)) * 0.4).clamp(-1, 1)
    reference = resize(source, size)
    whole = {"adain": adain, "wavelet": wavelet, "none": lambda x, _ref: x}[kind](image, reference)
    tiled = colour_fixed_uint8(image, Bicubic(source, size), kind)
    assert tiled.dtype == torch.uint8 and tiled.shape == image.shape
    differ = (tiled.int() - to_uint8(whole).int()).abs()
    assert int(differ.max()) <= 1  # float sums in another order may flip a rounding
    assert float((differ > 0).float().mean()) < 1e-3


def test_vae_factor_follows_the_blocks(vae):
    assert vae_factor(vae) == 4


def test_the_vae_study_ranks_the_modes_and_the_report_shows_it(tmp_path):
    from benchmark.reporting.report import write_report
    from benchmark.runs.vae_study import vae_study

    out = tmp_path / "runs" / "vae-tiling" / "tiny-256"
    results = vae_study("tiny", (256, 256), CPU, VaeTiling("sync", tile=16, halo=12), out)
    rows = {row["mode"]: row for row in results["rows"]}
    assert set(rows) == {"off", "diffusers", "sync"}
    assert math.isinf(rows["off"]["psnr_decode_db"])  # the reference itself
    assert rows["sync"]["psnr_decode_db"] > 60 > rows["diffusers"]["psnr_decode_db"]  # shared GroupNorms
    report = (write_report(tmp_path / "runs", tmp_path / "reports")[0]).read_text()
    assert "## VAE tiling" in report and "| sync | " in report and "--vae-tile 16 --vae-halo 12" in report


def test_a_vae_with_mid_block_attention_is_tiled_too():
    """Its attention's GroupNorm sees (B, C, H * W): the statistics follow the tile masks there too."""
    from diffusers import AutoencoderKL

    from baselines.models import TINY_UPSCALER_VAE

    torch.manual_seed(0)
    attending = AutoencoderKL(**dict(TINY_UPSCALER_VAE, mid_block_add_attention=True)).eval()
    latent = torch.randn((1, 4, 64, 48), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = attending.decode(latent).sample
    assert psnr(decode(attending, latent, VaeTiling("sync", tile=32, halo=12)), whole) > 35


@pytest.mark.parametrize("attention", [False, True])
def test_the_cores_statistics_are_those_of_their_pixels_pooled(attention):
    """Read window by window on views and pooled: equal to the statistics of all the cores' pixels at once,
    at a layer twice the windows' resolution, and on an attention block's (B, C, H * W) layout."""
    from baselines.vae_tiling import _pooled, _window_moments

    generator = torch.Generator().manual_seed(7)
    widths, level = torch.arange(1.0, 4.0)[:, None, None, None], torch.tensor([-2.0, 0.5, 3.0])[:, None, None, None]
    x = torch.randn((3, 8, 20, 24), generator=generator) * widths + level  # windows unlike each other
    cores = [((0, 5), (1, 12)), ((3, 10), (0, 4)), ((2, 3), (5, 6))]  # in the windows' 10 x 12 latent px
    pixels = torch.cat([x[b, :, 2 * t:2 * u, 2 * l:2 * r].reshape(4, -1)  # 4 groups of 2 channels
                        for b, ((t, u), (l, r)) in enumerate(cores)], dim=1)
    variance, mean = torch.var_mean(pixels, dim=1, unbiased=False)
    layer = x.flatten(2) if attention else x
    pooled_mean, pooled_variance = _pooled(*_window_moments(layer, 4, cores, (10, 12)))
    torch.testing.assert_close(pooled_mean, mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled_variance, variance, atol=1e-5, rtol=1e-5)


def test_statistics_pooled_before_running_out_of_memory_are_kept(vae):
    """Out of memory in the decoder's last convolution, after every GroupNorm has pooled all 9 windows: the
    halved batches rerun nothing but one forward (2 windows) before the tiles, and the decode is the same."""
    latent = torch.randn((1, 4, 80, 72), generator=torch.Generator().manual_seed(2))
    tiling = VaeTiling("sync", tile=32, halo=12, sample_tiles=9)
    one_batch = decode(vae, latent, tiling)
    convolve, calls = vae.decoder.conv_out.forward, []

    def tight(x):
        calls.append(x.shape[0])
        if x.shape[0] > 2:
            torch.empty(2**50, dtype=torch.uint8)  # the CPU allocator's own error
        return convolve(x)

    with pytest.MonkeyPatch.context() as patch, pytest.warns(SampleNote) as notes:
        patch.setattr(vae.decoder.conv_out, "forward", tight)
        halved = decode(vae, latent, tiling)
    assert calls == [9, 5, 3, 2] + [1] * 9 and len(notes) == 3
    assert psnr(halved, one_batch) > 100


def test_8_bit_in_bands_of_rows_is_the_whole_image_rounded_at_once():
    """Taller than a band, values past [-1, 1] and on every half step of 0..255: what the whole-image formula
    gives, so that no full-size float copy is needed."""
    generator = torch.Generator().manual_seed(3)
    halves = (torch.arange(511.0) / 510 * 2 - 1).expand(3, 2, 511)[..., :300]
    image = torch.cat([torch.rand((3, FIX_TILE + 70, 300), generator=generator) * 2.4 - 1.2, halves], dim=1)
    assert torch.equal(to_uint8(image), ((image.clamp(-1, 1) / 2 + 0.5) * 255).round().to(torch.uint8))
    assert torch.equal(to_uint8(image[None].half()),
                       ((image[None].half().float().clamp(-1, 1) / 2 + 0.5) * 255).round().to(torch.uint8))


@pytest.mark.parametrize("vae, side, batch", [("x4", 640, ["--sample-batch", "1"]), ("sdxl", 1280, [])])
def test_the_decode_memory_script_reports_the_decode(vae, side, batch):
    import json
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "scripts" / "vae-decode-memory.py"
    done = subprocess.run([sys.executable, str(script), "--vae", vae, "--latent", "160", "--sample-tiles", "2", *batch],
                          capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["vae"] == vae and figures["image"] == [side, side] and figures["sample_tiles"] == 2
    assert figures["sample_batch"] == (1 if batch else None)
    assert figures["seconds"] > 0 and figures["peak_above_weights_mib"] > 0
