"""The GPU fast path on the CPU: every setting leaves the outputs equal (fp32 settings to float
rounding, reduced precision within a stated tolerance), the CPU defaults are today's behaviour,
and results.json records every setting."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
from PIL import Image

from baselines.fast_path import CPU_DEFAULTS, CUDA_DEFAULTS, CUDA_ESTIMATES, FastPath
from baselines.settings import Settings
from baselines.models import load_text_to_image, load_upscaler
from baselines.stage1 import guided
from baselines.stage2 import X4UpscalerBackbone
from baselines.tiling import TiledDenoiser, TilingConfig
from benchmark import api
from benchmark.spec import RunSpec
from helpers import CPU, load_sampler

#: fp32 settings change only the order of float operations: rounding (1.2e-7) through tens of
#: layers, amplified by the guidance scale 7.5 in stage I; a wrong setting moves outputs by O(1).
FP32_TOLERANCE = 1e-4
#: Reduced precision, relative to the output's norm, through the tiny UNets: bf16 keeps 8
#: mantissa bits (2^-8 = 4e-3 per rounding), fp16 11 (5e-4); a few dozen layers add up.
#: Stage I is compared unguided: guidance multiplies the difference by up to its scale.
REDUCED_TOLERANCE = {"bf16": 5e-2, "fp16": 1e-2}
TILING = TilingConfig("nonoverlap", tile=16, offset_range=8)  # 40x56 latent: 3 x 4 = 12 tiles, the last row and column clamped


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value.float() - reference.float()).norm() / reference.float().norm())


def stage2_step(fast: FastPath, tiling: TilingConfig = TILING, compile_backend: str = "inductor") -> torch.Tensor:
    """One stitched stage II prediction of the tiny x4 UNet under ``fast``, on fixed inputs."""
    fast = fast.resolve(CPU)
    models = load_upscaler("tiny", CPU, fast.torch_dtype)
    fast.apply([models.unet], [models.vae], compile_backend)
    generator = torch.Generator().manual_seed(0)
    latent = torch.randn((1, 4, 40, 56), generator=generator)
    cond = torch.randn((1, 3, 40, 56), generator=generator).to(models.unet.dtype)
    tiled = TiledDenoiser(X4UpscalerBackbone(models).denoise, tiling)
    return tiled(latent, torch.tensor(500), 0, cond)


def stage1_call(fast: FastPath, scale: float = 7.5) -> torch.Tensor:
    """One UNet call of tiny SD 2.1 (it has self-attention) under ``fast``, guided by ``scale``."""
    fast = fast.resolve(CPU)
    models = load_text_to_image("tiny", CPU, fast.torch_dtype)
    fast.apply([models.unet], [models.vae])
    negative, positive = models.encode_text(["", "a lighthouse"]).chunk(2)
    latent = torch.randn((1, 4, 24, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return guided(models.unet, negative, positive, scale)(latent, torch.tensor(500), None)


@pytest.fixture(scope="module")
def reference():
    return {"stage2": stage2_step(FastPath()), "stage1": stage1_call(FastPath()),
            "stage1_unguided": stage1_call(FastPath(), scale=1.0)}


def test_cpu_defaults_are_todays_behaviour_and_cuda_defaults_are_documented_estimates():
    assert FastPath().resolve(CPU) == FastPath(**{k: v for k, v in CPU_DEFAULTS.items() if k != "tile_batch_size"})
    cuda = FastPath(attention="classic").resolve(torch.device("cuda"))
    assert (cuda.dtype, cuda.attention, cuda.channels_last) == (CUDA_DEFAULTS["dtype"], "classic",
                                                                CUDA_DEFAULTS["channels_last"])
    assert set(CUDA_ESTIMATES) == set(CUDA_DEFAULTS)  # each CUDA default says why
    record = cuda.as_record(torch.device("cuda"), FastPath(attention="classic"))
    assert record["given"] == ["attention"] and "estimate" in record["defaults"]

    pipeline = load_sampler("sr-tile-plus", Settings(steps=1, sr_steps=1))
    for unet in (pipeline.text_to_image.unet, pipeline.backbone.models.unet):
        assert all(type(p) is AttnProcessor2_0 for p in unet.attn_processors.values())  # diffusers' own default
        assert unet.dtype == torch.float32 and all(p.is_contiguous() for p in unet.parameters())
    assert pipeline.sr_tiling.tile_batch_size == 1
    described = pipeline.describe()
    assert described["fast_path"]["given"] == [] and described["fast_path"]["attention"] == "sdpa"
    assert described["weights"]["stage2"]["vae_dtype"] == "torch.float32"


def test_bad_settings_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="fp16, bf16, fp32"):
        FastPath(dtype="half")
    with pytest.raises(ValueError, match="sdpa, classic"):
        FastPath(attention="flash")


@pytest.mark.parametrize("batch", [1, 5, 12])
def test_tile_batches_leave_the_stitched_prediction_equal(reference, batch):
    tiling = TilingConfig("nonoverlap", tile=16, offset_range=8, tile_batch_size=batch)
    assert relative_error(stage2_step(FastPath(), tiling), reference["stage2"]) < FP32_TOLERANCE


@pytest.mark.parametrize("setting", [dict(attention="classic"), dict(channels_last=True)])
def test_fp32_settings_leave_both_stages_equal(reference, setting):
    assert relative_error(stage2_step(FastPath(**setting)), reference["stage2"]) < FP32_TOLERANCE
    assert relative_error(stage1_call(FastPath(**setting)), reference["stage1"]) < FP32_TOLERANCE


def test_classic_attention_is_really_set():
    models = load_text_to_image("tiny", CPU)
    FastPath(attention="classic").resolve(CPU).apply([models.unet], [models.vae])
    assert all(type(p) is AttnProcessor for p in models.unet.attn_processors.values())


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_reduced_precision_stays_within_its_tolerance(reference, dtype):
    try:
        stage2, stage1 = stage2_step(FastPath(dtype=dtype)), stage1_call(FastPath(dtype=dtype), scale=1.0)
    except RuntimeError as error:  # an op without a CPU kernel in this dtype
        pytest.skip(f"{dtype} on this CPU: {error}")
    assert stage2.dtype == torch.float32  # the engine stitches in fp32 whatever the model dtype
    assert relative_error(stage2, reference["stage2"]) < REDUCED_TOLERANCE[dtype]
    assert relative_error(stage1, reference["stage1_unguided"]) < REDUCED_TOLERANCE[dtype]  # guidance 7.5 scales it
    assert 0 < relative_error(stage2, reference["stage2"])  # the dtype really changed something


def test_compile_captures_the_unet_and_leaves_its_call_equal():
    """--compile's path (Module.compile, dynamo's capture of the diffusers UNet, one shape) on one
    untiled call, with the aot_eager backend: the graph torch.compile builds, run without inductor's
    code generation, which is torch's own and takes minutes on a CPU (see the next test)."""
    tiling = TilingConfig("none")
    eager = stage2_step(FastPath(), tiling)
    assert relative_error(stage2_step(FastPath(compile=True), tiling, "aot_eager"), eager) < FP32_TOLERANCE


@pytest.mark.skipif(not os.environ.get("ASD_BENCH_SLOW_TESTS"),
                    reason="inductor compiles the tiny x4 UNet in 7 minutes on the 2-core development CPU "
                           "(far over a minute); set ASD_BENCH_SLOW_TESTS=1 to run it")
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="torch.compile's CPU backend (inductor) needs a C++ compiler")
def test_inductor_leaves_one_unet_call_equal():
    tiling = TilingConfig("none")
    eager = stage2_step(FastPath(), tiling)
    assert relative_error(stage2_step(FastPath(compile=True), tiling), eager) < 1e-4


def _image(run_dir) -> np.ndarray:
    with Image.open(run_dir / "samples" / "00000.image.png") as image:
        return np.asarray(image, dtype=np.int16)


def _run(tmp_path, **fields) -> tuple[dict, np.ndarray]:
    before = set(tmp_path.glob("tiny/sr-tile-plus/*"))
    finished = api.run(RunSpec("sr-tile-plus", size=(256, 256), prompt="a lighthouse", steps=1, sr_steps=2, tile=16,
                               offset_range=8, score=False, progress=False, runs=tmp_path, **fields))
    (out,) = set(tmp_path.glob("tiny/sr-tile-plus/*")) - before  # each setting has its own run directory
    assert finished.out == out
    return json.loads((out / "results.json").read_text()), _image(out)


def test_results_record_every_setting_and_the_images_stay_equal(tmp_path):
    default, default_image = _run(tmp_path)
    results, image = _run(tmp_path, tile_batch_size=3, attention="classic", channels_last=True)
    fast = results["fast_path"]
    assert (fast["attention"], fast["channels_last"], fast["compile"], fast["dtype"]) == ("classic", True, False, "fp32")
    assert sorted(fast["given"]) == ["attention", "channels_last"]
    assert results["sr_tiling"]["tile_batch_size"] == 3 and default["sr_tiling"]["tile_batch_size"] == 1
    assert results["warm_up_seconds"] > 0
    difference = np.abs(image - default_image)
    assert difference.max() <= 1 and difference.mean() < 0.01  # 8-bit rounding of float-rounding changes



def test_reduced_precision_keeps_the_x4_vae_in_fp32_and_says_so():
    pipeline = load_sampler("sr-tile-plus", Settings(steps=1, sr_steps=1, fast_path=FastPath(dtype="bf16")))
    described = pipeline.describe()
    assert described["weights"]["stage1"]["dtype"] == "torch.bfloat16"
    assert described["weights"]["stage2"]["dtype"] == "torch.bfloat16"
    assert described["weights"]["stage2"]["vae_dtype"] == "torch.float32"  # force_upcast: it overflows in fp16
    assert described["fast_path"]["dtype"] == "bf16" and described["fast_path"]["given"] == ["dtype"]
