"""StableSR's models for each profile: seeded random networks, or the two released files.

``tiny`` and ``paper-arch`` build the networks of their architecture with fixed-seed random
weights. ``paper`` reads ``stablesr_000117.ckpt`` and ``vqgan_cfw_00011.ckpt`` (paths from
``--stablesr-ckpt`` / ``$ASD_STABLESR`` and ``--stablesr-vae`` / ``$ASD_STABLESR_VAE``): the
networks are built on the ``meta`` device and take the files' tensors, so the published sizes
are never initialised twice. Files in the released layout at the ``tiny`` configuration (what
the tests write) are recognised by their shapes, and the weights record says so.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch

from baselines.stablesr.architecture import ARCHITECTURES, PAPER_ARCH, PARITY, Architecture, StableSRModels, build_networks, ready
from baselines.stablesr.convert import CFW_FILE, STABLESR_FILE, load_networks, read_state_dict, released_state_dicts

WEIGHT_SEED = 20  # apart from the x4 upscaler's seeds in baselines.models
FILE_NAMES = {STABLESR_FILE: "stablesr_000117.ckpt", CFW_FILE: "vqgan_cfw_00011.ckpt"}


@contextmanager
def _seeded(seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def random_models(profile: str, device: torch.device, dtype: torch.dtype) -> StableSRModels:
    """The networks of ``profile``'s architecture with weights that depend on the seed only."""
    with _seeded(WEIGHT_SEED):
        networks = build_networks(ARCHITECTURES[profile])
    return ready(networks, device, dtype, f"{profile}/stablesr",
                 f"random (seed {WEIGHT_SEED}, {profile} configs of StableSR)")


def _architecture_of(released: dict[str, dict[str, torch.Tensor]]) -> tuple[str, Architecture]:
    """The architecture whose released layout has the files' key shapes; the published one otherwise
    (whose conversion then names what does not fit)."""
    for name, arch in (("paper", PAPER_ARCH), ("tiny", ARCHITECTURES["tiny"]), ("parity", PARITY)):
        with torch.device("meta"):
            expected = released_state_dicts(build_networks(arch))
        probe = [(file, key) for file in expected for key in list(expected[file])[:40]]
        if all(key in released[file] and released[file][key].shape == expected[file][key].shape
               for file, key in probe):
            return name, arch
    return "paper", PAPER_ARCH


def released_models(files: dict[str, Path], device: torch.device, dtype: torch.dtype) -> StableSRModels:
    """StableSR from the released files (``{"stablesr": ckpt, "cfw": vae}``), every key accounted for."""
    released = {file: read_state_dict(path) for file, path in files.items()}
    config, arch = _architecture_of(released)
    with torch.device("meta"):
        networks = build_networks(arch)
    load_networks(networks, released, {file: str(path) for file, path in files.items()}, assign=True)
    note = "" if config == "paper" else f" (at the {config} configuration, not the published one)"
    weights = ", ".join(f"{FILE_NAMES[file]}: {path}" for file, path in files.items()) + note
    return ready(networks, device, dtype, "IceClear/StableSR" + note, weights,
                 {file: str(path) for file, path in files.items()})


def save_released(models_or_networks, folder: Path, names: dict[str, str] = FILE_NAMES) -> dict[str, Path]:
    """Write the networks' weights as the two released files (``.ckpt`` as a Lightning ``state_dict``,
    or ``.safetensors``): files a test or a timing run can load like the real ones."""
    networks = getattr(models_or_networks, "networks", models_or_networks)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for file, state in released_state_dicts(networks).items():
        path = folder / names[file]
        state = {key: tensor.detach().cpu().float().contiguous() for key, tensor in state.items()}
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, path)
        else:
            torch.save({"state_dict": state}, path)
        paths[file] = path
    return paths
