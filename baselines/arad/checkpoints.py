"""Checkpoints of a training run and resuming from them: LoRA, optimizer, step, sampler
position and RNG states, written atomically, refused when made with other settings."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from ..lora import DEFAULT_ADAPTER, lora_state_dict
from .config import TrainingError

CHECKPOINTS = "checkpoints"
#: Bumped when what a checkpoint holds changes; part of the run's identity.
STATE_VERSION = 1


def list_checkpoints(output_dir: Path) -> list[Path]:
    root = output_dir / CHECKPOINTS
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / "state.json").is_file()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint under ``output_dir/checkpoints``, or None."""
    found = list_checkpoints(Path(output_dir))
    return found[-1] if found else None


def save_checkpoint(output_dir: Path, step: int, epoch: int, start: int, identity: dict, unet, optimizer,
                     generator: torch.Generator, losses: list[float], accelerator, keep: int) -> None:
    """Write ``checkpoints/step-N`` atomically: LoRA, optimizer, step, sampler position, RNG states."""
    from safetensors.torch import save_file

    root = output_dir / CHECKPOINTS
    final = root / f"step-{step:08d}"
    tmp = root / f".step-{step:08d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save({"generator": generator.get_state(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
               tmp / f"rng-{accelerator.process_index}.pt")
    if accelerator.is_main_process:
        save_file(lora_state_dict(unet), str(tmp / "lora.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        state = {"step": step, "sampler": {"epoch": epoch, "start": start}, "identity": identity, "losses": losses}
        (tmp / "state.json").write_text(json.dumps(state))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        if keep:
            for old in list_checkpoints(output_dir)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def load_checkpoint(ckpt: Path, identity: dict, unet, optimizer, generator: torch.Generator, accelerator):
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = json.loads((ckpt / "state.json").read_text())
    saved = state.get("identity", {})
    if saved != identity:
        diff = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
        if "config" in diff:
            a, b = saved.get("config", {}), identity["config"]
            diff = [f"config.{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)] + [
                d for d in diff if d != "config"]
        raise TrainingError(
            f"checkpoint {ckpt} was made with other settings, data or base model ({'; '.join(map(str, diff))}); "
            "use another output folder or the same settings"
        )
    weights = load_file(str(ckpt / "lora.safetensors"))
    result = set_peft_model_state_dict(unet, weights, adapter_name=DEFAULT_ADAPTER)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise TrainingError(f"checkpoint {ckpt} has LoRA keys this UNet lacks, e.g. {unexpected[:3]}")
    optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=False))
    rng_file = ckpt / f"rng-{accelerator.process_index}.pt"
    rng = torch.load(rng_file, map_location="cpu", weights_only=False)
    generator.set_state(rng["generator"])
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") is not None and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])
    sampler = state["sampler"]
    return int(state["step"]), int(sampler["epoch"]), int(sampler["start"]), list(state["losses"])
