"""No-reference image quality: MUSIQ, MANIQA and CLIP-IQA, as pyiqa computes them (opt-in; the ``iqa`` extra).

* **MUSIQ** (Ke et al. 2021, ICCV, arXiv 2108.05997): a multi-scale image transformer over 32 px patches of the
  image and of copies resized to 224 and 384 on their longer side; pyiqa's ``musiq`` with its KonIQ-10k
  checkpoint ``musiq_koniq_ckpt-e95806b9.pth``: a mean opinion score, about 0-100.
* **MANIQA** (Yang et al. 2022, CVPR workshops, arXiv 2204.08958): ViT-B/8 features through transposed attention
  and Swin blocks, a weighted mean of per-patch scores; pyiqa's ``maniqa`` with ``ckpt_koniq10k.pt``, about 0-1,
  the mean over 20 crops of 224 px placed uniformly over the image.
* **CLIP-IQA** (Wang et al. 2023, AAAI, arXiv 2207.12396): CLIP RN50 (OpenAI's ``RN50.pt``; its attention pool
  without positional embedding, so any size goes in) against five antonym prompt pairs; pyiqa's ``clipiqa``,
  the mean over the pairs of the softmax on the positive prompt, 0-1.

The networks and their forward passes are pyiqa's own (chaofengc/IQA-PyTorch, 0.1.16): each is built with
``pretrained=False`` and the file found here is loaded into it, its keys checked (a misfit names them). Two of
pyiqa's constructors fetch weights themselves: MANIQA asks timm for the ImageNet ViT-B/8 that its checkpoint then
overwrites, and CLIP-IQA downloads RN50 by name. While a metric is built those two calls are pointed at local
construction (:func:`_built_locally`), so nothing is downloaded and the result is the same as pyiqa's with a warm
cache. Diffusion-4K measured that MUSIQ and MANIQA agree with people at 4K less than its GLCM score and
compression ratio (:mod:`benchmark.metrics.detail`); they are here because papers report them (FouriScale's
numbers come from pyiqa).

**Size rule** (recorded): all three were trained on KonIQ-10k's 1024 x 768 photographs, and MUSIQ's and CLIP-IQA's
cost grows with the area (MUSIQ's full-resolution patches attend to each other: 16k tokens at 4096²). An image
whose longer side is above 1024 is resized (PIL bicubic, antialiased) to a longer side of 1024 first; smaller
images go in as they are. **Opt-in**: MANIQA's 20 ViT-B/8 crops cost about a minute an image on a CPU, and pyiqa is an
optional dependency, so these are scored only when asked (``score RUN --metrics musiq,maniqa,clipiqa`` or
``all``). **Weights** (``paper``): ``$ASD_IQA`` (a folder holding the files under their release names), pyiqa's
own cache (``torch.hub.get_dir()/pyiqa``; RN50 under ``.../clip``, or openai-clip's ``~/.cache/clip``), then
the hub cache of ``chaofengc/IQA-PyTorch-Weights``. On ``tiny`` and ``paper-arch``: the same architectures with
seeded random weights, labelled.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional
from unittest import mock

import numpy as np
import torch
from PIL import Image

from benchmark.metrics import preference  # as a module: the registry imports both, in either order
from benchmark.metrics.images import to_rgb_array
from benchmark.metrics.registry import MetricValue, NotApplicable, register_metric
from benchmark.metrics.weights import misfit, seeded, uses_random_weights

if TYPE_CHECKING:
    from benchmark.metrics.context import ScoringContext

VARIABLE, REPO, MAX_SIDE, CLIP_FILE = "ASD_IQA", "chaofengc/IQA-PyTorch-Weights", 1024, "RN50.pt"
INSTALL = ("pyiqa is not installed: `pip install -e '.[iqa]'` (pyiqa and all it declares), or the few packages "
           "these three metrics import: `bash scripts/install-iqa.sh`")
SIZE_RULE = f"longer side above {MAX_SIDE} resized to {MAX_SIDE} (PIL bicubic, antialiased); smaller as they are"
#: OpenAI CLIP RN50's hyperparameters (what pyiqa's ``build_model`` reads off ``RN50.pt``), for random weights.
CLIP_RN50 = dict(embed_dim=1024, image_resolution=224, vision_layers=(3, 4, 6, 3), vision_width=64,
                 vision_patch_size=None, context_length=77, vocab_size=49408, transformer_width=512,
                 transformer_heads=8, transformer_layers=12)


@dataclass(frozen=True)
class Model:
    """One of pyiqa's no-reference metrics: its file, what it is, how its score reads."""

    title: str
    column: str  # the report's column, shown where a run in the table was scored with it
    file: str
    score: str
    digits: int
    tolerance: float
    source: str

    def candidates(self) -> list[Path]:
        """Where the file is looked for: ``$ASD_IQA``, then pyiqa's cache and the hub cache of its weights (RN50:
        pyiqa's and openai-clip's download folders)."""
        given = [Path(os.environ[VARIABLE]).expanduser() / self.file] if os.environ.get(VARIABLE) else []
        hub = Path(torch.hub.get_dir())
        if self.file == CLIP_FILE:
            return given + [hub / "clip" / self.file, Path("~/.cache/clip").expanduser() / self.file]
        snapshots = preference.hub_snapshots(REPO)
        cached = sorted(snapshots.glob(f"*/{self.file}")) if snapshots.is_dir() else []
        return given + [hub / "pyiqa" / self.file] + cached + [snapshots / "*" / self.file]


MODELS = {
    "musiq": Model("MUSIQ (KonIQ-10k)", "MUSIQ↑", "musiq_koniq_ckpt-e95806b9.pth", "MOS, about 0-100", 2, 2.0,
                   "Ke et al. 2021 (MUSIQ, arXiv 2108.05997), KonIQ-10k checkpoint, as pyiqa's `musiq`"),
    "maniqa": Model("MANIQA (KonIQ-10k)", "MANIQA↑", "ckpt_koniq10k.pt",
                    "about 0-1, mean of 20 uniform 224 px crops", 3, 0.02,
                    "Yang et al. 2022 (MANIQA, arXiv 2204.08958), KonIQ-10k checkpoint, as pyiqa's `maniqa`"),
    "clipiqa": Model("CLIP-IQA (CLIP RN50)", "CLIP-IQA↑", CLIP_FILE,
                     "0-1, softmax on the positive of 5 antonym prompt pairs", 3, 0.02,
                     "Wang et al. 2023 (CLIP-IQA, arXiv 2207.12396), OpenAI CLIP RN50, as pyiqa's `clipiqa`"),
}


def _pyiqa():
    try:
        import pyiqa
    except ImportError as error:
        raise NotApplicable(f"{INSTALL} ({error})") from None
    return pyiqa


def _read_state(file: Path) -> dict:
    """A checkpoint as pyiqa reads it (its own released files, pickled: ``weights_only=False`` as pyiqa loads them),
    under ``params`` or bare, without DataParallel's ``module.`` prefixes."""
    state = torch.load(file, map_location="cpu", weights_only=False)
    state = state.get("params", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise NotApplicable(f"{file} holds a {type(state).__name__}, not a state dict")
    return {key[len("module."):] if key.startswith("module.") else key: value for key, value in state.items()}


def load_state(net: torch.nn.Module, state: dict, file: Path, title: str):
    """``state`` into ``net``, every key present and of its shape; a misfit names the keys."""
    problem = misfit(net.state_dict(), state)
    if problem:
        raise NotApplicable(f"{file} does not fit {title}: {problem}")
    net.load_state_dict(state)


@contextlib.contextmanager
def _built_locally(clip_model: Optional[torch.nn.Module]):
    """pyiqa's constructors without their own fetches: MANIQA's timm ViT built without ImageNet weights (the
    checkpoint loaded next replaces them all), CLIP-IQA's ``load("RN50")`` answered with ``clip_model``."""
    from pyiqa.archs import clipiqa_arch, maniqa_arch

    import timm

    def create_model(name, pretrained=False, **kwargs):
        return timm.create_model(name, pretrained=False, **kwargs)

    with mock.patch.object(maniqa_arch, "timm", types.SimpleNamespace(create_model=create_model)), \
            mock.patch.object(clipiqa_arch, "load", lambda name, device="cpu", **kwargs: clip_model):
        yield


def _clip(random: bool, seed: int, file: Optional[Path]) -> torch.nn.Module:
    from pyiqa.archs import clip_model

    if random:
        with seeded(seed):
            return clip_model.CLIP(**CLIP_RN50).float()
    try:  # a TorchScript archive (OpenAI's) or a state dict, as pyiqa reads it
        with warnings.catch_warnings():  # torch.jit.load's deprecation: the file is TorchScript as published
            warnings.simplefilter("ignore", FutureWarning)
            return clip_model.load(str(file), "cpu")
    except (KeyError, RuntimeError, AssertionError) as error:
        raise NotApplicable(f"{file} does not fit CLIP RN50 ({type(error).__name__}: {error})") from None


@dataclass
class Scorer:
    """A loaded metric: ``score(image)`` for one image; ``conventions`` say how."""

    metric: torch.nn.Module
    device: torch.device
    conventions: dict

    @torch.no_grad()
    def score(self, image) -> float:
        picture = Image.fromarray(to_rgb_array(image))
        if max(picture.size) > MAX_SIDE:
            scale = MAX_SIDE / max(picture.size)
            picture = picture.resize(tuple(max(1, round(side * scale)) for side in picture.size), Image.BICUBIC)
        pixels = torch.from_numpy(np.array(picture)).permute(2, 0, 1)[None].float().div(255)
        return float(self.metric(pixels.to(self.device)).flatten()[0])


def load_iqa(name: str, profile: str, device=None, seed: int = 0, crops: int = 20) -> Scorer:
    """pyiqa's metric ``name`` on ``profile`` (``crops``: MANIQA's crops per image, pyiqa's 20 by default)."""
    pyiqa, model, device = _pyiqa(), MODELS[name], torch.device(device or "cpu")
    random = uses_random_weights(profile)
    file = None if random else preference.found_weights(model.candidates(), model.title, VARIABLE)
    options = {"pretrained": False} if name != "clipiqa" else {}
    if name == "maniqa":
        options["test_sample"] = crops
    with seeded(seed), _built_locally(_clip(random, seed, file) if name == "clipiqa" else None):
        metric = pyiqa.create_metric(name, device=device, **options)
    if file is not None and name != "clipiqa":
        load_state(metric.net, _read_state(file), file, model.title)
    version = importlib.metadata.version("pyiqa")
    return Scorer(metric.eval(), device, {"library": f"pyiqa {version}", "mode": model.score, "model": model.title,
                           "pretrained": f"random (seed {seed})" if random else str(file), "preprocess": SIZE_RULE,
                           **({"crops_per_image": crops} if name == "maniqa" else {})})


def _register(name: str, model: Model):
    def compute(context: "ScoringContext") -> MetricValue:
        scorer = context.cached(f"iqa.{name}", lambda: load_iqa(name, context.profile, device=context.device))
        values = [scorer.score(image) for image in context.images]
        conventions = dict(scorer.conventions)
        return MetricValue(float(np.mean(values)), context.convention(
            conventions.pop("library"), conventions.pop("mode"), conventions.pop("model"),
            conventions.pop("pretrained"), **conventions), per_image=values)

    compute.__name__ = name
    register_metric(name, higher_is_better=True, digits=model.digits, opt_in=True, column=model.column,
                    tolerance={"rel": 0.02, "abs": model.tolerance}, source=model.source)(compute)


for _name, _model in MODELS.items():
    _register(_name, _model)
