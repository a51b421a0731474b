"""``sd21-bicubic``: SD 2.1 at the nearest ARAD bucket, then a plain bicubic upscale to the target.

The floor every super-resolution stage must beat: the same stage I as ``sr-tile`` and
``sr-tile-plus``, and no model at all in stage II.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from baselines.bicubic import resize
from baselines.models import TextToImageModels, load_text_to_image
from baselines.registry import LoadContext, Method, register_method
from baselines.sample_record import Crop, SampleRecord, StageOne
from baselines.settings import Seeds, centre_crop, nearest_bucket
from baselines.stage1 import generate


@dataclass
class BicubicSampler:
    """SD 2.1 loaded once per run; each call one image of exactly ``size``."""

    models: TextToImageModels
    context: LoadContext

    def __call__(self, prompt: str, size: tuple[int, int], seeds: Seeds, source=None):
        settings = self.context.settings
        bucket = nearest_bucket(size)
        result = generate(self.models, prompt, bucket, steps=settings.steps, guidance=settings.guidance,
                          generator=seeds.generator("noise"), vae_tiling=settings.vae_tiling)
        # the bicubic upscale keeps the bucket's ratio: scale to cover the target, then crop its centre
        scale = max(size[0] / bucket[0], size[1] / bucket[1])
        covering = (max(round(bucket[0] * scale), size[0]), max(round(bucket[1] * scale), size[1]))
        image, crop = centre_crop(resize(result.image.float(), covering), size)
        stage1 = StageOne(bucket, result.unet_calls, result.tile_evaluations, {
            "model": "SD 2.1", "size_rule": "nearest ARAD bucket (Eq. 1)", "steps": settings.steps,
            "guidance": settings.guidance})
        upscale = {"mode": "bicubic (torch, antialiased)", "size": list(covering)}
        return image, SampleRecord(size, stage1, crop=Crop(covering, crop), extra={"upscale": upscale})

    def describe(self) -> dict:
        models = self.models
        return {"method": "sd21-bicubic", "profile": self.context.profile, "backbone": None,
                "weights": {"stage1": {"model": models.name, "weights": models.weights,
                                       "dtype": str(models.unet.dtype)}},
                "steps": self.context.settings.steps, "guidance": self.context.settings.guidance,
                "vae_tiling": self.context.settings.vae_tiling.as_record(), "stage2": "bicubic upscale"}


def load(method: Method, context: LoadContext) -> BicubicSampler:
    with torch.no_grad():
        models = load_text_to_image(context.profile, context.device, paths=context.paths)
    return BicubicSampler(models, context)


register_method(Method("sd21-bicubic", "SD 2.1 at the nearest bucket, then a plain bicubic upscale (the floor of "
                                       "every SR stage)", load, needs=("base",)))
