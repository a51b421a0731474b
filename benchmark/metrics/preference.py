"""Human preference scores: HPSv2.1 and PickScore, each a CLIP ViT-H/14 fine-tuned on people's choices.

* **HPSv2.1** (Wu et al. 2023, "Human Preference Score v2", arXiv 2306.09341; the ``hpsv2`` package,
  ``img_score.py``): open_clip's ``ViT-H-14`` with the state dict of ``HPS_v2.1_compressed.pt``
  (hub repo ``xswu/HPSv2``; under ``state_dict`` or bare); the score of an image and its prompt is
  the cosine of their normalised embeddings (the package's ``logits_per_image`` diagonal, no
  temperature), about 0.2-0.35 on real models. The package pins pytest 7.2 and its own open_clip
  fork, so it is not installed here: the model is open_clip's ViT-H-14, and images go through the
  fork's eval transform as ``img_score`` builds it (``light_augmentation=True``: the image as a tensor,
  its longest side resized to 224, bicubic, zero-padded to a square, OpenAI mean and std; held to the
  fork's own code in tests/test_preference.py, fixture tests/fixtures/hpsv2/).
* **PickScore** (Kirstain et al. 2023, "Pick-a-Pic", arXiv 2305.01569; the model card of
  ``yuvalkirstain/PickScore_v1``): a transformers ``CLIPModel`` folder; the score is the model's
  ``logit_scale.exp()`` times the cosine of ``get_image_features`` and ``get_text_features``, as
  the card computes it (about 18-23 on real models). Its processor (that of
  ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``) is transformers' ``CLIPImageProcessor`` defaults
  (shortest side 224, bicubic, centre crop, OpenAI mean and std); its tokens are CLIP's BPE, here
  open_clip's (the text tower is causal and pooled at end-of-text, so padding does not matter).

Images of any size are scored as each reference scores them (recorded): HPSv2.1 sees the whole image,
padded; PickScore its centre, cropped. On ``paper`` the weights come from
``$ASD_HPSV2`` (the file) / ``$ASD_PICKSCORE`` (the folder) or the Hugging Face cache, offline; a
missing one skips its metric with where it was looked for (``python -m benchmark weights`` lists
both, not needed to score). On ``tiny`` both are small random towers of the same classes, labelled.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import numpy as np
import open_clip
import torch
import torchvision.transforms.functional as TF
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image
from torchvision.transforms import InterpolationMode
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

from benchmark.metrics.clip_score import TINY_BASE, TINY_OVERRIDES, _quiet_logging
from benchmark.metrics.images import to_rgb_array
from benchmark.metrics.registry import TEXT_TO_IMAGE, MetricValue, NotApplicable, register_metric
from benchmark.metrics.weights import seeded, uses_random_weights

if TYPE_CHECKING:
    from benchmark.metrics.context import ScoringContext

HPS_REPO, HPS_FILE, HPS_ARCHITECTURE = "xswu/HPSv2", "HPS_v2.1_compressed.pt", "ViT-H-14"
PICKSCORE_REPO = "yuvalkirstain/PickScore_v1"
HPS_VARIABLE, PICKSCORE_VARIABLE = "ASD_HPSV2", "ASD_PICKSCORE"
RULE = "shortest side resized to 224 (bicubic), centre crop 224"
HPS_RULE = "longest side resized to 224 (bicubic, on the tensor), zero-padded to 224 x 224"
TINY_PICKSCORE = dict(text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
                      vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, image_size=224, patch_size=32),
                      projection_dim=32)


def hub_snapshots(repo: str) -> Path:
    """The hub cache's snapshots folder of ``repo`` (it may not exist)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / ("models--" + repo.replace("/", "--")) / "snapshots"


def hps_candidates() -> list[Path]:
    """Where HPSv2.1's file is looked for: ``$ASD_HPSV2``, then the hub cache's snapshots of xswu/HPSv2."""
    given = os.environ.get(HPS_VARIABLE)
    snapshots = hub_snapshots(HPS_REPO)
    cached = sorted(snapshots.glob(f"*/{HPS_FILE}")) if snapshots.is_dir() else []
    return ([Path(given).expanduser()] if given else []) + cached + [snapshots / "*" / HPS_FILE]


def pickscore_candidates() -> list[Path]:
    """Where PickScore's folder is looked for (by its config.json): ``$ASD_PICKSCORE``, then the hub cache."""
    given = os.environ.get(PICKSCORE_VARIABLE)
    snapshots = hub_snapshots(PICKSCORE_REPO)
    cached = sorted(snapshots.glob("*/config.json")) if snapshots.is_dir() else []
    return ([Path(given).expanduser() / "config.json"] if given else []) + cached + [snapshots / "*" / "config.json"]


def found_weights(candidates: list[Path], name: str, variable: str) -> Path:
    """The first candidate that is a file, else a skip naming them all and ``$variable``."""
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        raise NotApplicable(f"{name} weights not found (looked in {', '.join(map(str, candidates))}); copy them "
                            f"there or set ${variable}")
    return found


@dataclass
class PreferenceModel:
    """A loaded scorer: ``score(images, prompts)`` gives one value per pair; ``conventions`` say how."""

    score: Callable[[Sequence, Sequence[str]], np.ndarray]
    conventions: dict


def hps_transform(size: int = 224) -> Callable[[Image.Image], torch.Tensor]:
    """HPSv2's eval transform (its open_clip fork's ``ResizeMaxSize`` with fill 0, as ``hpsv2.img_score`` builds
    it): the image as a float tensor, its longest side resized to ``size`` (bicubic), centred on a zero square,
    normalised with OpenAI's mean and std. The fork leaves an image whose longest side is already ``size``
    unpadded (and so unstackable unless square); here every image is padded."""
    def transform(image: Image.Image) -> torch.Tensor:
        tensor = TF.to_tensor(image.convert("RGB"))
        height, width = tensor.shape[1:]
        new = tuple(round(side * size / max(height, width)) for side in (height, width))
        tensor = TF.resize(tensor, list(new), InterpolationMode.BICUBIC)
        pad_h, pad_w = size - new[0], size - new[1]
        tensor = TF.pad(tensor, [pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2], fill=0)
        return TF.normalize(tensor, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)

    return transform


def _pixels(images, preprocess) -> torch.Tensor:
    return torch.stack([preprocess(Image.fromarray(to_rgb_array(image))) for image in images])


def load_hps(profile: str, device=None, seed: int = 0, architecture: str = HPS_ARCHITECTURE) -> PreferenceModel:
    """HPSv2.1 on ``profile`` (``architecture``: open_clip's config name, for stand-ins in tests)."""
    if uses_random_weights(profile):
        with seeded(seed), _quiet_logging():  # open_clip warns that no weights were loaded: intended here
            net = open_clip.create_model(TINY_BASE, pretrained=None, **copy.deepcopy(TINY_OVERRIDES))
        tokenizer, label, weights = open_clip.get_tokenizer(TINY_BASE), f"tiny ({TINY_BASE})", f"random (seed {seed})"
    else:
        file = found_weights(hps_candidates(), "HPSv2.1", HPS_VARIABLE)
        with _quiet_logging():  # the state dict is loaded below
            net = open_clip.create_model(architecture, pretrained=None)
        state = torch.load(file, map_location="cpu", weights_only=True)
        net.load_state_dict(state.get("state_dict", state))
        tokenizer, label, weights = open_clip.get_tokenizer(architecture), architecture, f"{HPS_REPO}/{file.name}"
    net, preprocess = net.to(device or "cpu").eval(), hps_transform(net.visual.image_size[0])

    @torch.no_grad()
    def score(images, prompts) -> np.ndarray:
        device_of = next(net.parameters()).device
        image = torch.nn.functional.normalize(net.encode_image(_pixels(images, preprocess).to(device_of)), dim=-1)
        text = torch.nn.functional.normalize(net.encode_text(tokenizer(list(prompts)).to(device_of)), dim=-1)
        return (image * text).sum(-1).double().cpu().numpy()

    return PreferenceModel(score, {"model": label, "pretrained": weights, "score": "cos(image, text), as hpsv2",
                                   "preprocess": HPS_RULE + " (HPSv2's open_clip fork, light_augmentation)"})


def load_pickscore(profile: str, device=None, seed: int = 0) -> PreferenceModel:
    """PickScore on ``profile``: the folder's CLIPModel, or a tiny random one."""
    if uses_random_weights(profile):
        with seeded(seed):
            net = CLIPModel(CLIPConfig(**TINY_PICKSCORE))
        label, weights = "tiny CLIPModel", f"random (seed {seed})"
    else:
        folder = found_weights(pickscore_candidates(), "PickScore", PICKSCORE_VARIABLE).parent
        net = CLIPModel.from_pretrained(folder, local_files_only=True)
        label, weights = PICKSCORE_REPO, str(folder)
    net = net.to(device or "cpu").eval()
    processor, tokenizer = CLIPImageProcessor(), open_clip.get_tokenizer(TINY_BASE)

    @torch.no_grad()
    def score(images, prompts) -> np.ndarray:
        device_of = next(net.parameters()).device
        pixels = processor([Image.fromarray(to_rgb_array(image)) for image in images],
                           return_tensors="pt").pixel_values.to(device_of)
        image = torch.nn.functional.normalize(_tensor(net.get_image_features(pixel_values=pixels)), dim=-1)
        text = torch.nn.functional.normalize(
            _tensor(net.get_text_features(input_ids=tokenizer(list(prompts)).to(device_of))), dim=-1)
        return (net.logit_scale.exp() * (image * text).sum(-1)).double().cpu().numpy()

    return PreferenceModel(score, {"model": label, "pretrained": weights,
                                   "score": "logit_scale.exp() * cos(image, text), as PickScore's model card",
                                   "preprocess": RULE + " (transformers CLIPImageProcessor defaults)"})


def _tensor(output) -> torch.Tensor:
    """The features of ``get_*_features``: a tensor, or the pooled output of a model output object."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def score_pairs(context: "ScoringContext", key: str, load, module: str = __name__) -> MetricValue:
    """A preference model's score of every (image, prompt) pair of the run, in batches of 16, and their mean."""
    model = context.cached(key, lambda: load(context.profile, device=context.device))
    prompts = [record["prompt"] for record in context.records]
    values = np.concatenate([model.score(context.images[start:start + 16], prompts[start:start + 16])
                             for start in range(0, len(context.images), 16)])
    conventions = model.conventions
    return MetricValue(float(values.mean()), context.convention(module, conventions["score"],
                                                                conventions["model"], conventions["pretrained"],
                                                                preprocess=conventions["preprocess"]),
                       per_image=[float(v) for v in values])


@register_metric(applies_to=(TEXT_TO_IMAGE,), tolerance={"rel": 0.02, "abs": 0.005}, higher_is_better=True,
                 digits=3,
                 inapplicable_reason="super-resolution: its images follow the LR input, not the caption",
                 source="Wu et al. 2023 (HPSv2, arXiv 2306.09341): HPS_v2.1_compressed.pt on open_clip ViT-H-14, "
                        "cos(image, text) as the hpsv2 package scores")
def hpsv2(context: "ScoringContext") -> MetricValue:
    return score_pairs(context, "hpsv2", load_hps)


@register_metric(applies_to=(TEXT_TO_IMAGE,), tolerance={"rel": 0.02, "abs": 0.05}, higher_is_better=True,
                 digits=2,
                 inapplicable_reason="super-resolution: its images follow the LR input, not the caption",
                 source="Kirstain et al. 2023 (Pick-a-Pic, arXiv 2305.01569): yuvalkirstain/PickScore_v1, "
                        "logit_scale.exp() * cos(image, text) as its model card")
def pickscore(context: "ScoringContext") -> MetricValue:
    return score_pairs(context, "pickscore", load_pickscore)
