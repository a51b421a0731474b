"""The base-model registry: stage I's text-to-image model, built-in or a user's, is one :class:`BaseModel`
found by name, as a method is one :class:`baselines.registry.Method`.

An entry holds what stage I needs and nothing a method decides: the architectures of the
random-weight profiles (``tiny``, ``paper-arch``), the model classes and subfolders of a
diffusers folder and the hub repos (with mirrors) the ``paper`` profile loads, the DDIM
settings of its scheduler, its native size, its aspect buckets (stage I's "bucket" rule, Eq. 1, picks
the nearest), and :attr:`BaseModel.condition`, which turns
prompts into what its UNet is called with (a :class:`Conditioning`). The stage I loop
(:mod:`baselines.stage1`) reads the conditioning and never the model's name, so a method
is written once for every model it declares (``Method.models``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Optional

import torch
from diffusers import UNet2DConditionModel

from baselines.origins import BUILT_IN, RegistrationError, origin_of

DEFAULT_MODEL = "sd21"  # the paper's base model; run folders of other models name theirs
DEFAULT_GUIDANCE = 7.5  # diffusers' SD default; the authors' UI uses 7.0 (docs/design.md, "Stage I")


class BaseModelError(RegistrationError):
    """A base model that cannot be registered, or a name no entry holds (a plugin's import that registers a bad
    or clashing model is refused as a method's is)."""


@dataclass(frozen=True)
class Conditioning:
    """What a UNet is called with for a batch of prompts: ``encoder_hidden_states`` and, for a model with
    added conditions (SDXL: pooled ``text_embeds`` and micro-conditioning ``time_ids``), ``added_cond_kwargs``.
    Every tensor is batch-first, so a batch is chunked, expanded to a tile count and concatenated alike."""

    hidden: torch.Tensor
    added: Mapping[str, torch.Tensor] = field(default_factory=dict)

    def _map(self, fn) -> "Conditioning":
        return Conditioning(fn(self.hidden), {key: fn(value) for key, value in self.added.items()})

    def chunk(self, count: int) -> tuple["Conditioning", ...]:
        return tuple(self._map(lambda tensor: tensor.chunk(count)[i]) for i in range(count))

    def expand(self, count: int) -> "Conditioning":
        return self._map(lambda tensor: tensor.expand(count, *tensor.shape[1:]))

    @staticmethod
    def cat(items: list["Conditioning"]) -> "Conditioning":
        return Conditioning(torch.cat([item.hidden for item in items]),
                            {key: torch.cat([item.added[key] for item in items]) for key in items[0].added})

    def unet_kwargs(self) -> dict:
        """Keyword arguments of ``UNet2DConditionModel.forward`` (no ``added_cond_kwargs`` where there are none,
        so SD 2.1's call is the one it always was)."""
        return {"encoder_hidden_states": self.hidden, **({"added_cond_kwargs": dict(self.added)} if self.added else {})}


def as_conditioning(value) -> Conditioning:
    """A bare tensor of encoder hidden states (SD 2.1's, as callers before the registry pass it) or a Conditioning."""
    return value if isinstance(value, Conditioning) else Conditioning(value)


@dataclass(frozen=True)
class TextEncoder:
    """One text encoder: its transformers class, its diffusers subfolder, its configs per random-weight
    profile, and the id its tokenizer pads with (the ids are open_clip's BPE, which every CLIP text
    encoder here shares; only padding differs). ``tokenizer``: the subfolder of a published folder whose
    tokenizer files this encoder's ids come from on ``paper`` (T5's SentencePiece vocabulary, which no wheel
    ships); None: open_clip's BPE on every profile."""

    cls: type
    subfolder: str
    configs: Mapping[str, dict]
    pad_id: int
    tokenizer: Optional[str] = None

    def build(self, profile: str) -> torch.nn.Module:
        """The encoder of a random-weight profile's config (weights as initialised)."""
        return self.cls(self.cls.config_class(**self.configs[profile]))


@dataclass(frozen=True)
class BaseModel:
    """One base model for stage I. ``networks``/``vaes`` are diffusers configs per random-weight profile
    (``tiny``, ``paper-arch``) of its denoising network (``network``: a UNet, or FLUX's transformer, kept in
    the ``network_subfolder`` of a published folder) and VAE; ``repos`` the hub ids the ``paper`` profile tries in order (the
    original first, then mirrors); ``condition(models, prompts, size)`` the :class:`Conditioning`
    of ``prompts`` for an image of ``size`` (loaded models: ``baselines.models.TextToImageModels``);
    ``tokenizer``: what the encoders are fed, in words (``run.json``); ``unconditional(positive)``: the
    unconditional branch made from the prompt's conditioning (None: the empty prompt's encoding, as SD 2.1's
    pipeline makes it); ``seed``: the first of the random weights' seeds (UNet, VAE, then each text encoder);
    ``buckets``: the (H, W) sizes stage I's "bucket" rule picks from (none: the native size alone), named by
    ``bucket_source``; ``multi_aspect``: the model itself was trained on them (SDXL), so methods that would
    adapt it to aspect ratios (ARAD's LoRA) run it as it is; ``suite``: RunSpec fields of every method's step
    on this model in the tiny regression suite (a model other than the default runs there small; None: the model
    has no steps there, another model's hold its code);
    ``paper_tables``: its runs fill the paper's tables (SD 2.1, the paper's model); every model has its own;
    ``vae_upcast``: its pipeline decodes in fp32 where the VAE's config says ``force_upcast`` (SDXL's VAE
    overflows in fp16; SD 2.1's pipeline never upcasts, whatever its config's default says); ``guidance``: its
    pipeline's default guidance scale (classifier-free, or FLUX dev's embedded one); ``sampling``: how stage I
    samples it (:class:`baselines.stage1.StageOneSampling`; None: the suite's DDIM loop on a UNet); ``half_dtype``:
    the half precision it runs in where the device's default is half (CUDA): fp16, or bf16 (FLUX)."""

    name: str
    title: str
    summary: str
    native_size: tuple[int, int]
    networks: Mapping[str, dict]
    vaes: Mapping[str, dict]
    text_encoders: tuple[TextEncoder, ...]
    scheduler: Mapping[str, object]
    repos: tuple[str, ...]
    condition: Callable
    tokenizer: str
    unconditional: Optional[Callable[[Conditioning], Conditioning]] = None
    seed: int = 0
    origin: Optional[str] = None
    buckets: tuple[tuple[int, int], ...] = ()
    bucket_source: str = "the native size alone"
    multi_aspect: bool = False
    suite: Optional[Mapping[str, object]] = field(default_factory=dict, hash=False)
    paper_tables: bool = False
    vae_upcast: bool = False
    guidance: float = DEFAULT_GUIDANCE
    network: type = UNet2DConditionModel
    network_subfolder: str = "unet"
    sampling: Optional[object] = field(default=None, hash=False)
    half_dtype: str = "fp16"

    def __post_init__(self):
        profiles = set(self.networks) | set(self.vaes) | {p for encoder in self.text_encoders for p in encoder.configs}
        lacking = sorted(p for p in profiles if p not in self.networks or p not in self.vaes
                         or any(p not in encoder.configs for encoder in self.text_encoders))
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise BaseModelError(f"base model {self.name!r} has a bad name (letters, digits, '-', '_', '.')")
        if lacking or not self.text_encoders or not callable(self.condition):
            raise BaseModelError(f"base model {self.name!r} needs a network, VAE and text encoder config for each "
                                 f"profile (lacking: {', '.join(lacking) or 'none'}), at least one text encoder "
                                 "and a callable condition")

    @property
    def aspect_buckets(self) -> tuple[tuple[int, int], ...]:
        return self.buckets or (tuple(self.native_size),)

    @property
    def layout(self) -> dict[str, str]:
        """The subfolders a diffusers folder of this model holds, each with the file that configures it."""
        return {self.network_subfolder: "config.json", "vae": "config.json",
                **{encoder.subfolder: "config.json" for encoder in self.text_encoders},
                **{encoder.tokenizer: "tokenizer_config.json" for encoder in self.text_encoders if encoder.tokenizer},
                "scheduler": "scheduler_config.json"}


_MODELS: dict[str, BaseModel] = {}


def _builtins_loaded():
    """The built-ins register themselves on import of their modules."""
    import baselines.base_models.sd21  # noqa: F401
    import baselines.base_models.sdxl  # noqa: F401
    import baselines.base_models.flux  # noqa: F401


def register_base_model(model: BaseModel) -> BaseModel:
    """Add ``model``; a name another entry holds is refused, naming both. An unset ``origin`` becomes the module
    (or ``--include`` file) that registers it."""
    if model.origin is None:
        model = replace(model, origin=origin_of(sys._getframe(1).f_globals.get("__name__", "?")))
    if model.origin != BUILT_IN:
        _builtins_loaded()  # so that a user's model clashes with a built-in one, whichever is imported first
    taken = _MODELS.get(model.name)
    if taken is not None and taken != model:
        raise BaseModelError(f"model {model.name!r} from {model.origin} clashes with the {taken.origin} model of "
                             "that name; choose another name")
    _MODELS[model.name] = model
    return model


def unregister_base_model(name: str):
    """Remove a user's model (tests, notebooks); built-ins stay."""
    if name in _MODELS and _MODELS[name].origin != BUILT_IN:
        del _MODELS[name]


def base_models() -> dict[str, BaseModel]:
    """Every registered base model by name: the default, the other built-ins by name, then users' in the order
    they registered (the same order whichever module was imported first)."""
    _builtins_loaded()
    built_in = sorted((m for m in _MODELS.values() if m.origin == BUILT_IN), key=lambda m: (m.name != DEFAULT_MODEL,
                                                                                               m.name))
    return {m.name: m for m in built_in} | {n: m for n, m in _MODELS.items() if m.origin != BUILT_IN}


def get_base_model(name: str) -> BaseModel:
    known = base_models()
    if name not in known:
        raise BaseModelError(f"unknown model {name!r}; known models: {', '.join(known)}")
    return known[name]


def name_parts(model: str) -> list[str]:
    """The model in a run's folder name or a log line: nothing for the default one (runs made before models were
    entries keep their folders), else its name."""
    return [] if model == DEFAULT_MODEL else [model]


def token_ids(tokenizer, prompts: list[str], pad_id: int) -> torch.Tensor:
    """open_clip's ids of ``prompts`` (77 tokens, its BPE: CLIP's), padded after the end-of-text token with
    ``pad_id``: SimpleTokenizer pads with 0 ("!"), as SD 2's and SDXL's second tokenizer do, while CLIP
    ViT-L/14's tokenizer (SD 1's, SDXL's first) pads with end-of-text itself, 49407."""
    ids = tokenizer(list(prompts))
    if pad_id == 0:
        return ids
    after_end = (ids == tokenizer.eot_token_id).int().cumsum(-1) - (ids == tokenizer.eot_token_id).int() > 0
    return ids.masked_fill(after_end, pad_id)
