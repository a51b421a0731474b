"""``scalecrafter``: SD 2.1 or SDXL at the target size with re-dilated convolutions and noise-damped guidance.

ScaleCrafter (He et al., ICLR 2024) re-dilates the UNet's 3×3 convolutions in chosen blocks
during the first steps (the noisiest), so that their receptive field grows with the image,
and, where its settings say, damps the guidance: a second pass with milder dilation gives the
unconditional prediction the guidance starts from, while its direction stays that of the two
fully re-dilated predictions, ``eps = eps_uncond(milder) + w (eps_text - eps_uncond)`` (the
release's ``pipeline_processor`` in ``text2image.py`` and ``text2image_xl.py``;
``tests/test_scalecrafter_release.py`` holds our loop to both).
:data:`SETTINGS` holds its released settings per base model, one row per size, each naming its
source files in YingqingHe/ScaleCrafter at :data:`RELEASE_COMMIT` (read, not copied); a size
without a row takes the run's model's nearest row (either orientation: dilation is isotropic)
and the record says so. The native size has no row of the release: it is the plain model (no
dilation), which is what the method gives there. The release's SDXL files name SD 2.1's modules,
some of which SDXL's UNet lacks; like the release's loop we re-dilate the names that exist, and
the record lists the others (:func:`unmatched`).
Dispersed convolution is the option of ``scalecrafter-disperse``: in the modules of the
release's dispersion list (2048² on SD 2.1, 4096² on SDXL: the only sizes with one), during the
re-dilation steps, the kernel is dispersed to 5×5 and the dilation halved. ``scalecrafter`` leaves
it out as the release does: every released config sets its step count (``inflate_tau``) to 0.
``scalecrafter`` samples as every method of the suite does, DDIM with eta 0 and no FreeU, so that
comparisons isolate the method's idea; ``scalecrafter-release`` samples as the release's script
for the model does, DDIM with eta 1 and FreeU (:data:`RELEASE_FREEU`, through diffusers' ``enable_freeu``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import torch

from baselines.base_models import Conditioning
from baselines.highres.base import TrainingFreeSampler
from baselines.highres.dispersion import dispersed_weight
from baselines.highres.redilation import redilated
from baselines.sample_record import StageOne
from baselines.stage1 import start
from baselines.vae_tiling import vae_factor

RELEASE = "YingqingHe/ScaleCrafter"
RELEASE_COMMIT = "9dc11851f7700df0037db7a1e7e42dab060e05dc"  # the commit the rows were read at
RELEASE_STEPS = 50  # the release's taus count steps out of 50
RELEASE_ETA = 1.0  # text2image.py and text2image_xl.py: pipeline_processor's forward(eta=1.0), which main() keeps
#: FreeU as each release script registers it (on unless --disable_freeu): text2image.py (SD 2.1), text2image_xl.py.
RELEASE_FREEU = {"sd21": {"b1": 1.1, "b2": 1.2, "s1": 0.9, "s2": 0.2},
                 "sdxl": {"b1": 1.1, "b2": 1.2, "s1": 0.6, "s2": 0.4}}
#: Guidance the release scripts sample with (forward's default, which main() keeps); runs use --guidance.
RELEASE_GUIDANCE = {"sd21": 7.5, "sdxl": 5.0}


@dataclass(frozen=True)
class Row:
    """One size's settings. ``blocks``: block -> (dilation of its resnets' convolutions, of its
    down/upsampler's convolution or None); the same for ``ndcfg_blocks`` (the damped pass)."""

    size: tuple[int, int]  # (height, width) in px
    dilate_tau: int
    blocks: dict
    ndcfg_tau: int = 0
    ndcfg_blocks: Optional[dict] = None
    progressive: bool = False
    source: str = ""
    disperse_blocks: Optional[dict] = None  # as ``blocks``: the convolutions dispersed (1) where asked for


def _release(*files: str) -> str:
    return f"{RELEASE}@{RELEASE_COMMIT[:7]} {', '.join(files)}"


def _uniform(d: float) -> dict:
    return {"down_blocks.1": (d, d), "down_blocks.2": (d, d), "down_blocks.3": (d, None), "mid_block": (d, None),
            "up_blocks.0": (d, d), "up_blocks.1": (d, d), "up_blocks.2": (d, d)}


def _sdxl_lowest(d: float) -> dict:
    """What the release's SDXL files list for the lowest resolution: SD 2.1's names (``down_blocks.3`` is not
    SDXL's; see :func:`unmatched`)."""
    return {"down_blocks.3": (d, None), "mid_block": (d, None), "up_blocks.0": (d, d)}


_DAMPED_2048 = {"down_blocks.2": (3, 4), "down_blocks.3": (4, None), "mid_block": (4, None),
                "up_blocks.0": (4, 4), "up_blocks.1": (4, 4), "up_blocks.2": (3, 3)}
_SDXL_4096 = {"down_blocks.2": (3, 3), "down_blocks.3": (4, None), "mid_block": (4, None), "up_blocks.0": (4, 4),
              "up_blocks.1": (3, 3), "up_blocks.2": (2, 2)}
#: The release's settings per base model, one row per size, each naming its files at :data:`RELEASE_COMMIT`.
SETTINGS = {
    "sd21": (
        Row((512, 512), 0, {}, source="SD 2.1-base's training size: no re-dilation"),
        Row((1024, 1024), 20, _uniform(2),
            source=_release("configs/sd2.1_1024x1024.yaml", "assets/dilate_settings/sd2.1_1024x1024.txt")),
        Row((1280, 1280), 30, _uniform(2.5),
            source=_release("configs/sd2.1_1280x1280.yaml", "assets/dilate_settings/sd2.1_1280x1280.txt")),
        Row((1024, 2048), 37, {"down_blocks.1": (2, 2), "down_blocks.2": (3, 3), "down_blocks.3": (4, None),
                               "mid_block": (4, None), "up_blocks.0": (4, 4), "up_blocks.1": (3, 3),
                               "up_blocks.2": (2, 2)},
            ndcfg_tau=0, ndcfg_blocks=_DAMPED_2048, progressive=True,
            source=_release("configs/sd2.1_2048x1024.yaml (width x height)",
                            "assets/dilate_settings/sd2.1_2048x1024.txt")),
        Row((2048, 2048), 37, {**_DAMPED_2048, "up_blocks.3": (2, None)},
            ndcfg_tau=37, ndcfg_blocks=_DAMPED_2048, progressive=True,
            disperse_blocks={"down_blocks.2": (None, 1), "down_blocks.3": (1, None), "mid_block": (1, None),
                             "up_blocks.0": (1, 1), "up_blocks.1": (1, 1)},
            source=_release("configs/sd2.1_2048x2048.yaml", "assets/dilate_settings/sd2.1_2048x2048.txt",
                            "assets/ndcfg_dilate_settings/sd2.1_2048x2048.txt",
                            "assets/disperse_settings/sd2.1_2048x2048.txt")),
    ),
    "sdxl": (
        Row((1024, 1024), 0, {}, source="SDXL base's training size: no re-dilation"),
        Row((2048, 2048), 30, _sdxl_lowest(2),
            source=_release("configs/sdxl_2048x2048.yaml", "assets/dilate_settings/sdxl_2048x2048.txt")),
        Row((2560, 2560), 30, _sdxl_lowest(2.5),
            source=_release("configs/sdxl_2560x2560.yaml", "assets/dilate_settings/sdxl_2560x2560.txt")),
        Row((2048, 4096), 35, _SDXL_4096, ndcfg_tau=35, ndcfg_blocks=_sdxl_lowest(2), progressive=True,
            source=_release("configs/sdxl_4096x2048.yaml (pixel_height 2048, pixel_width 4096)",
                            "assets/dilate_settings/sdxl_4096x2048.txt",
                            "assets/ndcfg_dilate_settings/sdxl_4096x2048.txt")),
        Row((4096, 4096), 35, {**_SDXL_4096, "down_blocks.2": (4, 4)}, ndcfg_tau=35, ndcfg_blocks=_sdxl_lowest(2),
            progressive=True,
            disperse_blocks={"down_blocks.2": (1, 1), "mid_block": (1, None), "up_blocks.0": (1, 1)},
            source=_release("configs/sdxl_4096x4096.yaml", "assets/dilate_settings/sdxl_4096x4096.txt",
                            "assets/ndcfg_dilate_settings/sdxl_4096x4096.txt",
                            "assets/disperse_settings/sdxl_4096x4096.txt (configs/sdxl_4096x4096_disperse.yaml)")),
    ),
}


def settings_of(model: str) -> tuple[Row, ...]:
    if model not in SETTINGS:
        raise ValueError(f"ScaleCrafter's release has settings for the base models {', '.join(SETTINGS)}, "
                         f"not {model!r}")
    return SETTINGS[model]


def nearest_row(size: tuple[int, int], model: str = "sd21") -> tuple[Row, bool]:
    """``model``'s row nearest ``size`` in log height and log width, either orientation (a tie: the row listed
    first); and whether it was transposed."""
    def distance(row_size: tuple[int, int]) -> float:
        return sum(math.log(a / b) ** 2 for a, b in zip(size, row_size))

    rows = settings_of(model)
    candidates = [(distance(row.size), False, n, row) for n, row in enumerate(rows)]
    candidates += [(distance(row.size[::-1]), True, n, row) for n, row in enumerate(rows)]
    _, transposed, _, row = min(candidates)
    return row, transposed


def module_dilations(unet: torch.nn.Module, blocks: dict, dilation_scale: Optional[float] = None) -> dict[str, float]:
    """The per-convolution dilations of ``blocks`` on ``unet``'s module names; ``dilation_scale``: as
    :func:`shrunk`."""
    dilations = {}
    for name, module in unet.named_modules():
        if not isinstance(module, torch.nn.Conv2d) or module.kernel_size == (1, 1):
            continue
        block = next((b for b in blocks if name.startswith(b + ".")), None)
        if block is None:
            continue
        resnets, sampler = blocks[block]
        rest = name[len(block) + 1:]
        if rest.startswith("resnets.") and rest.endswith((".conv1", ".conv2")) and resnets is not None:
            d = resnets
        elif rest in ("downsamplers.0.conv", "upsamplers.0.conv") and sampler is not None:
            d = sampler
        else:
            continue
        dilations[name] = d
    return dilations if dilation_scale is None else shrunk(dilations, dilation_scale)


def unmatched(unet: torch.nn.Module, blocks: dict) -> list[str]:
    """The entries of ``blocks`` that name no convolution of ``unet``: the release's SDXL files list SD 2.1's
    names (``down_blocks.3``, ``down_blocks.2.downsamplers``, ``up_blocks.2.upsamplers``), which SDXL's UNet lacks;
    the release's loop matches names and skips them, as :func:`module_dilations` does."""
    found = module_dilations(unet, blocks)
    missing = []
    for block, (resnets, sampler) in blocks.items():
        names = [name[len(block) + 1:] for name in found if name.startswith(block + ".")]
        if resnets is not None and not any(name.startswith("resnets.") for name in names):
            missing.append(f"{block}.resnets")
        if sampler is not None and not any(name.endswith("samplers.0.conv") for name in names):
            missing.append(f"{block}.{'down' if block.startswith('down') else 'up'}samplers")
    return missing


def shrunk(dilations: dict[str, float], scale: float) -> dict[str, float]:
    """ScaleCrafter's progressive schedule: each dilation shrunk toward 2, ``max(ceil(d * scale), 2)``."""
    return {name: max(math.ceil(d * scale), 2) for name, d in dilations.items()}


def steps_of(tau: int, steps: int) -> int:
    """The release's ``tau`` (of 50 steps) for a run of ``steps``."""
    return round(tau * steps / RELEASE_STEPS)


@dataclass
class ScaleCrafterSampler(TrainingFreeSampler):
    """The base model's DDIM loop at the target size with the nearest row (of that model's settings) of
    re-dilation and damped guidance."""

    disperse: bool = False  # dispersed convolution where the row lists it (``scalecrafter-disperse``)
    eta: float = 0.0  # DDIM's eta; above 0 its variance noise continues the sample's "noise" generator
    #: diffusers' ``enable_freeu`` arguments during the sample, "release" for the release's on the run's model
    #: (:data:`RELEASE_FREEU`), or None
    freeu: Union[None, str, dict] = None

    @property
    def freeu_arguments(self) -> Optional[dict]:
        """The FreeU a sample runs with: the release's for the run's model where ``freeu`` is "release"."""
        if self.freeu == "release":
            return dict(RELEASE_FREEU[self.models.base_model])
        return dict(self.freeu) if self.freeu else None

    def latent(self, negative, positive, latent_hw, seeds):
        unet, steps, scale = self.models.unet, self.settings.steps, self.settings.guidance
        factor = vae_factor(self.models.vae)  # the rows' sizes are in px
        px = (latent_hw[0] * factor, latent_hw[1] * factor)
        row, transposed = nearest_row(px, self.models.base_model)
        dilate_steps, ndcfg_steps = steps_of(row.dilate_tau, steps), steps_of(row.ndcfg_tau, steps)

        full = {"dilate": module_dilations(unet, row.blocks), "ndcfg": module_dilations(unet, row.ndcfg_blocks or {})}

        def dilations(which: str, tau_steps: int, i: int) -> dict:
            if i >= tau_steps:
                return {}
            return shrunk(full[which], (tau_steps - i) / tau_steps) if row.progressive else full[which]

        convs = dict(unet.named_modules())
        spread = ({name: dispersed_weight(convs[name].weight) for name in module_dilations(unet, row.disperse_blocks)}
                  if self.disperse and row.disperse_blocks else {})  # dispersed once a sample, not once a step
        generator = seeds.generator("noise")  # the initial latent, then DDIM's variance noise where eta > 0
        scheduler, latent = start(self.models, latent_hw, steps, generator)
        calls, rows, freeu = 0, 0, self.freeu_arguments
        if freeu:
            unet.enable_freeu(**freeu)
        try:
            for i, t in enumerate(scheduler.timesteps):
                x = scheduler.scale_model_input(latent, t).to(unet.dtype)
                with redilated(unet, dilations("dilate", dilate_steps, i), spread):
                    if scale <= 1:
                        eps = unet(x, t, **positive.unet_kwargs()).sample.float()
                    else:
                        both = Conditioning.cat([negative, positive])
                        uncond, text = unet(torch.cat([x, x]), t, **both.unet_kwargs()).sample.float().chunk(2)
                calls, rows = calls + 1, rows + (2 if scale > 1 else 1)
                if scale > 1:
                    base = uncond
                    if i < ndcfg_steps:  # noise-damped guidance: the base from a milder dilation, not the direction
                        with redilated(unet, dilations("ndcfg", ndcfg_steps, i)):
                            base = unet(x, t, **negative.unet_kwargs()).sample.float()
                        calls, rows = calls + 1, rows + 1
                    eps = base + scale * (text - uncond)
                latent = scheduler.step(eps, t, latent, eta=self.eta, generator=generator).prev_sample
        finally:
            if freeu:
                unet.disable_freeu()  # the UNet is shared: as it was for whatever runs next
        return latent, StageOne(unet_calls=calls, tile_evaluations=calls, details={"unet_rows": rows, **self._sampling(),
                        "scalecrafter": {"settings_for": "x".join(map(str, row.size)), "source": row.source,
                                         "exact": (row.size[::-1] if transposed else row.size) == px,
                                         "transposed": transposed, "dilate_steps": dilate_steps,
                                         "ndcfg_steps": ndcfg_steps, "progressive": row.progressive,
                                         "dilations": {k: list(v) for k, v in row.blocks.items()},
                                         "ndcfg_dilations": ({k: list(v) for k, v in row.ndcfg_blocks.items()}
                                                             if row.ndcfg_blocks else None),
                                         "convolutions": {which: len(names) for which, names in full.items()},
                                         "unmatched": sorted(set(unmatched(unet, row.blocks)
                                                                 + unmatched(unet, row.ndcfg_blocks or {}))),
                                         "dispersed_convolutions": len(spread)}})

    def _sampling(self) -> dict:
        """How the DDIM loop ran, in the record and ``run.json`` (the variant differs from the release here)."""
        return {"sampler": f"DDIM (eta {self.eta:g})", "freeu": self.freeu_arguments,
                "variance_noise": "the sample's noise generator, after the initial latent" if self.eta else None}

    def parameters(self) -> dict:
        model = self.models.base_model
        return {"release": RELEASE, "commit": RELEASE_COMMIT, "model": model,
                "taus_of": f"{RELEASE_STEPS} steps, scaled to the run's", **self._sampling(),
                "release_sampling": {"sampler": f"DDIM (eta {RELEASE_ETA:g})", "freeu": dict(RELEASE_FREEU[model]),
                                     "guidance": RELEASE_GUIDANCE[model]},
                "damped_guidance": "eps_uncond(ndcfg dilation) + w (eps_text - eps_uncond), both re-dilated",
                "interpolation": "bilinear (fractional dilations)",
                "dispersed_convolution": ("5x5 kernels at half the dilation, during the re-dilation steps, where the "
                                          "row lists them" if self.disperse else False),
                "settings": [{"size": "x".join(map(str, row.size)), "dilate_tau": row.dilate_tau,
                              "ndcfg_tau": row.ndcfg_tau, "progressive": row.progressive, "source": row.source}
                             for row in settings_of(model)]}


@dataclass
class DispersedScaleCrafterSampler(ScaleCrafterSampler):
    """ScaleCrafter with its optional dispersed convolution (``scalecrafter-disperse``)."""

    disperse: bool = True


@dataclass
class ReleaseScaleCrafterSampler(ScaleCrafterSampler):
    """ScaleCrafter sampled as the release's scripts (``text2image.py``, ``text2image_xl.py``) do it: DDIM eta 1
    and FreeU at the script's values for the run's model (``scalecrafter-release``)."""

    eta: float = RELEASE_ETA
    freeu: Union[None, str, dict] = "release"
