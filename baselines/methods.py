"""The built-in methods, registered by name: the paper's Table 1, MultiDiffusion and stage II alone.

This is the one module that spells their names (the paper's figures aside). Each runs on SD 2.1 only
(``Method.models``' default) unless its entry names more base models; ``sr-plus``, the model's own sampling
at the target size, runs on every registered one (a user's model too). "The model" is the run's (``--model``):
its buckets are SD 2.1's nine ARAD buckets, SDXL's 40 training buckets (FLUX: the same ~1 MP table);
``ar-plus`` and ``ar-tile`` stay on SD 2.1, since on SDXL and FLUX, trained on many sizes, they would be
``sr-plus`` and ``sr-tile`` again. The training-free methods patch UNet modules, so they stay on the UNet
models; ``fstd-t2i``'s code is model-independent, declared for FLUX, where tiles carry positions.

| method | stage I | stage II |
|---|---|---|
| ``sr-plus`` | any registered base model (``--model``) at the requested size | – |
| ``sr-tile`` | the model at its nearest bucket (Eq. 1) | tiled SR, no overlap |
| ``sr-tile-plus`` | the model at its nearest bucket | FSTD (implicit overlap) |
| ``ar-plus`` | ARAD at the requested size | – |
| ``ar-tile`` | ARAD at the nearest ARAD bucket | tiled SR, no overlap |
| ``asd`` | ARAD at the nearest ARAD bucket; on SDXL, SDXL (no LoRA) at its nearest bucket | FSTD (implicit overlap) |
| ``md`` | MultiDiffusion on the model at the requested size, views of its native latent | – |
| ``fstd-t2i`` | FLUX at the requested size, FSTD's shifted grid of native-size tiles at their global positions | – |
| ``fstd`` | – (a low-resolution input) | tiled SR, any strategy (FSTD by default) |
| ``hidiffusion`` | SD 2.1 or SDXL at the requested size, RAU-Net and windowed attention (the ``hidiffusion`` package) | – |
| ``scalecrafter`` | SD 2.1 or SDXL at the requested size, re-dilated convolutions, noise-damped guidance | – |
| ``scalecrafter-disperse`` | the same with its optional dispersed convolution | – |
| ``scalecrafter-release`` | the same sampled as its release does: DDIM eta 1, FreeU | – |
| ``demofusion`` | SD 2.1 or SDXL at its native size, then ×2, ×3, … with skip residuals, local views, dilated sampling | – |
| ``i-max`` | FLUX.1 [dev] at the native size, then at the target with its flow projected toward the first's | – |
"""

from __future__ import annotations

from baselines.base_models.flux import FLUX_DEV, FLUX_SCHNELL
from baselines.base_models.sd21 import SD21
from baselines.base_models.sdxl import SDXL
from baselines.highres.demofusion import DemoFusionSampler
from baselines.highres.hidiffusion_sampler import HiDiffusionSampler
from baselines.highres.imax import IMaxSampler
from baselines.highres.scalecrafter import (DispersedScaleCrafterSampler, ReleaseScaleCrafterSampler,
                                            ScaleCrafterSampler)
from baselines.paper_weights import BASE
from baselines.pipeline import Stages
from baselines.registry import ANY_MODEL, BUILT_IN, LOW_RESOLUTION, PROMPTS, Method, register_method


BOTH = (SD21.name, SDXL.name)  # the UNet models, which the training-free methods' code addresses
FLUX = (FLUX_DEV.name, FLUX_SCHNELL.name)
ALL_BUILT_IN = BOTH + FLUX


def _built_in(name: str, summary: str, stages: Stages, **entry) -> Method:
    return register_method(Method(name, summary, stages, needs=stages.needs,
                                  inputs=PROMPTS if stages.base else LOW_RESOLUTION, stage2=stages.stage2, origin=BUILT_IN,
                                  **entry))


_built_in("sr-plus", "the base model (SD 2.1, or any --model) directly at the target size", Stages("base"),
          rows=("table1", "table2", "figure7"), plans=("tiny", "gpu"), models=(ANY_MODEL,))
#: On SDXL and FLUX, which take no LoRA, sr-tile-plus computes what asd does and sr-tile differs from it only in
#: stage II's tiles, which their SD 2.1 steps hold: the suite runs them on SD 2.1 alone.
_built_in("sr-tile", "SD 2.1 (or SDXL, FLUX) at the model's nearest bucket, then tiled SR without overlap",
          Stages("base", "bucket", "nonoverlap"), rows=("table1", "figure7"), models=ALL_BUILT_IN,
          suite_models=(SD21.name,))
_built_in("sr-tile-plus", "SD 2.1 (or SDXL, FLUX) at the model's nearest bucket, then FSTD (implicit overlap)",
          Stages("base", "bucket", "implicit"), twin="sr-tile", rows=("table1", "figure7"), models=ALL_BUILT_IN,
          suite_models=(SD21.name,))
_built_in("ar-plus", "ARAD (SD 2.1 + LoRA) directly at the target size", Stages("arad"),
          rows=("table1", "table2", "table3", "figure7"), plans=("tiny", "gpu"))
_built_in("ar-tile", "ARAD at the nearest bucket, then tiled SR without overlap",
          Stages("arad", "bucket", "nonoverlap"), rows=("table1", "figure7"), plans=("tiny", "gpu"))
_built_in("asd", "Any-Size-Diffusion: ARAD at the nearest bucket, then FSTD (on SDXL and FLUX: the model, trained "
                 "on its buckets, without LoRA)", Stages("arad", "bucket", "implicit"), twin="ar-tile",
          rows=("table1", "figure7"), plans=("tiny", "stablesr", "gpu"), headline=True, models=ALL_BUILT_IN)
_built_in("md", "MultiDiffusion on SD 2.1 (or SDXL, FLUX) at the target size (views of the native size, stride an "
                "eighth: 64 at 8 latent px, SDXL 128 at 16, FLUX 64 at 8 tokens)", Stages("base", "multidiffusion"),
          rows=("table2", "figure7"), suite={"limit": 1},  # the 768x1024 item's 45 views a step were most of
          models=ALL_BUILT_IN)                               # the tiny suite's time
_built_in("fstd-t2i", "FSTD in stage I: the model at the target size, its latent cut every step into native-size tiles "
                      "whose grid shifts (an exact cover), each tile at its global positions (FLUX's rotary ids)",
          Stages("base", "fstd"), rows=("model-tables",), plans=("tiny",), models=FLUX)  # the GPU plan: gpu_plan.FLUX_RUNS
_built_in("fstd", "stage II alone: FSTD tiled super-resolution of low-resolution inputs (--tiling chooses the "
                  "strategy); on the oracle profile it samples a Gaussian random field with an analytic denoiser",
          Stages(stage2="any"), rows=("stage2",), plans=("tiny", "stablesr"), oracle=True)


def _training_free(name: str, summary: str, sampler, **entry) -> Method:
    """The field's training-free methods: stage I alone (SD 2.1, or the models the entry names), no stage II
    (docs/methods.md)."""
    entry = {"rows": ("all-methods", "figure7"), "plans": ("tiny", "gpu"), "suite": {"limit": 1, "size": (1024, 1024)},
             **entry}
    return register_method(Method(name, summary, sampler.load, needs=(BASE,), inputs=PROMPTS, origin=BUILT_IN,
                                  **entry))


_training_free("hidiffusion", "HiDiffusion (RAU-Net, MSW-MSA) on SD 2.1 or SDXL at the target size, by the "
                              "hidiffusion package", HiDiffusionSampler, models=(SD21.name, SDXL.name))
_training_free("scalecrafter", "ScaleCrafter on SD 2.1 or SDXL at the target size: re-dilated convolutions, "
                               "noise-damped guidance", ScaleCrafterSampler, models=(SD21.name, SDXL.name))
_training_free("scalecrafter-disperse", "ScaleCrafter with its optional dispersed convolution (5x5 kernels at "
                                        "half the dilation where its 2048x2048 (SDXL: 4096x4096) settings list them)",
               DispersedScaleCrafterSampler, rows=(), plans=(), suite=None, models=(SD21.name, SDXL.name))
_training_free("scalecrafter-release", "ScaleCrafter sampled as its release's scripts do: DDIM eta 1 and FreeU "
                                       "(b1 1.1, b2 1.2; s1 0.9, s2 0.2 on SD 2.1, s1 0.6, s2 0.4 on SDXL)",
               ReleaseScaleCrafterSampler, rows=(), plans=(), suite=None, models=(SD21.name, SDXL.name))
_training_free("demofusion", "DemoFusion on SD 2.1 (or SDXL: --model sdxl): native size, then progressive upscaling "
                             "with skip residuals, local views and dilated sampling", DemoFusionSampler,
               models=(SD21.name, SDXL.name))
_training_free("i-max", "I-Max on FLUX.1 [dev]: the native-size image's flow guides the target's (projected flow), "
                        "with the release's RoPE, attention and text extrapolation (PRIS-CV/I-Max)", IMaxSampler,
               models=(FLUX_DEV.name,), rows=("model-tables",), plans=("tiny",), suite={"limit": 1})
