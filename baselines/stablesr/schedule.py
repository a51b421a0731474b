"""StableSR's sampling schedule: SD's 1000-step DDPM respaced as LDM's ``space_timesteps``.

StableSR samples N of the 1000 training timesteps, ``round(k * 999 / (N - 1))`` accumulated
in floating point and rounded half to even (Python's ``round``), as guided-diffusion's
``space_timesteps`` does for one section; the respaced betas follow from ᾱ of the kept
timesteps, which is what diffusers' ``DDPMScheduler.step`` computes from custom timesteps.
This differs from diffusers' ``timestep_spacing="linspace"`` for 278 of the N in 1..1000
(rounding), so the timesteps are set explicitly. The networks are fed these original
timesteps.
"""

from __future__ import annotations

from typing import Optional

from diffusers import DDPMScheduler

#: SD 2.1-base's training schedule (LDM "linear" = diffusers' scaled_linear), eps-prediction, no clipping.
STABLESR_SCHEDULER = dict(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                          beta_end=0.012, prediction_type="epsilon", clip_sample=False, variance_type="fixed_small")


def space_timesteps(num_train_timesteps: int, steps: int) -> list[int]:
    """The kept timesteps, ascending (one section of guided-diffusion's ``space_timesteps``)."""
    if not 1 <= steps <= num_train_timesteps:
        raise ValueError(f"cannot take {steps} steps from a {num_train_timesteps}-step schedule")
    stride = 1 if steps == 1 else (num_train_timesteps - 1) / (steps - 1)
    kept, position = [], 0.0
    for _ in range(steps):
        kept.append(round(position))
        position += stride
    return sorted(set(kept))


class RespacedDDPMScheduler(DDPMScheduler):
    """``DDPMScheduler`` whose ``set_timesteps(N)`` keeps :func:`space_timesteps`' N timesteps."""

    def set_timesteps(self, num_inference_steps: Optional[int] = None, device=None,
                      timesteps: Optional[list[int]] = None):
        if timesteps is None:
            timesteps = space_timesteps(self.config.num_train_timesteps, num_inference_steps)[::-1]
        super().set_timesteps(device=device, timesteps=timesteps)
