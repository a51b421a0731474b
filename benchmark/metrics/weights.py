"""Where the metric networks' weight files are looked for, and what a profile needs.

Nothing here downloads: each file is looked for where its library would have cached it
(or at an explicit path), so a run works offline and a missing file is reported with
every place that was searched instead of triggering a download. The `tiny` and
`paper-arch` profiles run the same architectures with seeded random weights (so does `oracle`)
and need only files shipped inside installed packages.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional

import torch

from baselines.profiles import profiles

CLIP_MODEL = "ViT-L-14"  # our choice: the paper does not name its CLIP model
CLIP_PRETRAINED = "openai"
INCEPTION_FILE = "inception-2015-12-05.pt"
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"

PathOverrides = Optional[Mapping[str, "str | os.PathLike"]]


class MissingWeightsError(FileNotFoundError):
    """Real weights are needed but not on disk; the message names each file and where it was looked for."""


@dataclass(frozen=True)
class WeightFile:
    """One weight file of a metric network, as `python -m benchmark weights` lists it."""

    key: str
    name: str
    used_by: str
    path: str
    looked_in: tuple[str, ...]
    present: bool
    needed: bool
    sha256: Optional[str]

    def as_dict(self) -> dict:
        return asdict(self)


def uses_random_weights(profile: str) -> bool:
    """Metric networks get seeded random weights on no-weight profiles; every other name (a published profile, or a
    loader's ``"full"``) needs the real files."""
    known = profiles()
    return profile in known and known[profile].random_metric_networks


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed random initialisation without disturbing the caller's global torch RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def sha256_file(path: "str | os.PathLike") -> str:
    """The file's sha256, computed once per process for an unchanged file: every network load
    records its weights' hash, and a run of many scored runs loads the same networks again."""
    stat = os.stat(path)
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=None)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def misfit(wanted: Mapping, given: Mapping, extra_allowed: bool = False) -> Optional[str]:
    """How the state dict ``given`` fails to fit ``wanted``'s keys and shapes, up to six keys of each kind named
    ("missing ...; [unexpected ...;] wrong shape ..."); None where it fits. ``extra_allowed``: keys ``wanted``
    lacks are not counted (a release that holds heads this model does not use)."""
    def named(keys: list) -> str:
        return ", ".join(keys[:6]) + (" ..." if len(keys) > 6 else "") or "none"

    missing = sorted(set(wanted) - set(given))
    unexpected = [] if extra_allowed else sorted(set(given) - set(wanted))
    wrong = sorted(key for key in set(wanted) & set(given) if tuple(wanted[key].shape) != tuple(given[key].shape))
    if not (missing or unexpected or wrong):
        return None
    return "; ".join([f"missing {named(missing)}", *([] if extra_allowed else [f"unexpected {named(unexpected)}"]),
                      f"wrong shape {named(wrong)}"])


def _explicit(path: "str | os.PathLike", filename: str) -> list[Path]:
    path = Path(path).expanduser()
    return [path / filename] if path.is_dir() else [path]


def inception_candidates(path: "str | os.PathLike | None" = None) -> list[Path]:
    """clean-fid caches the TorchScript Inception in /tmp (./ on Windows): see cleanfid.features."""
    if path is not None:
        return _explicit(path, INCEPTION_FILE)
    return [Path("./" if platform.system() == "Windows" else "/tmp") / INCEPTION_FILE]


def alexnet_candidates(path: "str | os.PathLike | None" = None) -> list[Path]:
    """lpips builds torchvision's AlexNet, whose weights torch.hub caches under checkpoints/."""
    if path is not None:
        return _explicit(path, ALEXNET_FILE)
    return [Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE]


def lpips_linear_path() -> Path:
    """LPIPS' learned linear layers ship inside the lpips package (v0.1, AlexNet)."""
    import lpips

    return Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"


def clip_candidates(
    model: str = CLIP_MODEL, pretrained: str = CLIP_PRETRAINED, path: "str | os.PathLike | None" = None
) -> list[Path]:
    """Where open_clip would have cached `model`/`pretrained`: the Hugging Face hub cache, then ~/.cache/clip."""
    if path is not None:
        return [Path(path).expanduser()]
    import open_clip
    from huggingface_hub import constants, try_to_load_from_cache

    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    candidates = []
    if cfg.get("hf_hub"):
        repo_id, filename = os.path.split(cfg["hf_hub"])  # as open_clip.pretrained.download_pretrained
        filenames = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        repo_dir = Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
        for name in filenames:
            cached = try_to_load_from_cache(repo_id, name)
            candidates.append(Path(cached) if isinstance(cached, str) else repo_dir / "snapshots" / "*" / name)
    if cfg.get("url"):
        candidates.append(Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"]))
    if not candidates:
        raise ValueError(f"open_clip knows no pretrained tag {pretrained!r} for {model!r}; pass an explicit path")
    return candidates


def _record(key, name, used_by, candidates, needed, hash_files) -> WeightFile:
    found = next((p for p in candidates if p.is_file()), None)
    return WeightFile(
        key=key,
        name=name,
        used_by=used_by,
        path=str(found or candidates[0]),
        looked_in=tuple(str(p) for p in candidates),
        present=found is not None,
        needed=needed,
        sha256=sha256_file(found) if found is not None and hash_files else None,
    )


def weight_files(
    profile: str,
    paths: PathOverrides = None,
    clip_model: str = CLIP_MODEL,
    clip_pretrained: str = CLIP_PRETRAINED,
    hash_files: bool = True,
) -> list[WeightFile]:
    """Every weight file of the metric networks, whether `profile` needs it, and whether it is on disk.

    `paths` overrides where a file is looked for, by key: inception, lpips-alexnet, clip.
    """
    paths = paths or {}
    real = not uses_random_weights(profile)
    return [
        _record("inception", INCEPTION_FILE, "FID, IS (Inception-v3, clean-fid TorchScript)",
                inception_candidates(paths.get("inception")), real, hash_files),
        _record("lpips-alexnet", ALEXNET_FILE, "LPIPS backbone (torchvision AlexNet)",
                alexnet_candidates(paths.get("lpips-alexnet")), real, hash_files),
        _record("lpips-linear", "lpips v0.1 alex.pth", "LPIPS linear layers (shipped with lpips)",
                [lpips_linear_path()], True, hash_files),
        _record("clip", f"{clip_model} / {clip_pretrained}", "CLIP score (OpenCLIP)",
                clip_candidates(clip_model, clip_pretrained, paths.get("clip")), real, hash_files),
        # optional: a missing one skips its metric alone
        _record("hpsv2", "HPS_v2.1_compressed.pt", "HPSv2.1 (open_clip ViT-H-14; optional)",
                _preference_candidates("hps"), False, hash_files),
        _record("pickscore", "PickScore_v1/config.json", "PickScore (transformers CLIPModel folder; optional)",
                _preference_candidates("pickscore"), False, hash_files),
        _record("image_reward", "ImageReward.pt", "ImageReward (BLIP; med_config.json and a bert-base-uncased "
                "tokenizer beside it or cached; optional)", _preference_candidates("image_reward"), False, hash_files),
        *(_record(name, model.file, f"{model.title} (pyiqa; opt-in, optional)", model.candidates(), False, hash_files)
          for name, model in _iqa_models().items()),
    ]


def _iqa_models() -> dict:
    from benchmark.metrics.iqa import MODELS

    return MODELS


def _preference_candidates(which: str) -> list[Path]:
    from benchmark.metrics import image_reward
    from benchmark.metrics.preference import hps_candidates, pickscore_candidates

    return {"hps": hps_candidates, "pickscore": pickscore_candidates, "image_reward": image_reward.candidates}[which]()


def missing_error(records: list[WeightFile]) -> MissingWeightsError:
    lines = [f"  - {r.name} ({r.used_by}); looked in: {', '.join(r.looked_in)}" for r in records]
    return MissingWeightsError(
        "real metric weights are missing (use profile 'tiny' for random weights, or pass explicit paths):\n"
        + "\n".join(lines)
    )


def require_weights(profile: str, paths: PathOverrides = None, **kwargs) -> dict[str, Path]:
    """Paths of every file `profile` needs, or one MissingWeightsError listing all that are missing."""
    records = [r for r in weight_files(profile, paths, hash_files=False, **kwargs) if r.needed]
    missing = [r for r in records if not r.present]
    if missing:
        raise missing_error(missing)
    return {r.key: Path(r.path) for r in records}


def locate(key: str, candidates: list[Path], name: str, used_by: str) -> Path:
    """The first existing candidate, or a MissingWeightsError for this one file."""
    record = _record(key, name, used_by, candidates, True, hash_files=False)
    if not record.present:
        raise missing_error([record])
    return Path(record.path)
