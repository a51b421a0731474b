"""StableSR (Wang et al., IJCV 2024), the paper's stage II backbone, on diffusers' modules.

StableSR is Stable Diffusion 2.1-base whose UNet is steered by the low-resolution latent:

- ``spade.py``: a SPADE layer on the residual branch of every ResNet block of diffusers'
  ``UNet2DConditionModel``, fed by
- ``encoder.py``: the time-aware encoder of the clean LR latent (diffusers' blocks);
- ``cfw.py``: the controllable feature wrapping decoder, diffusers' ``AutoencoderKL`` with
  fusion layers at decoder levels 1 and 2 fed by its own encoder's features;
- ``text.py``: the empty-prompt embedding from the checkpoint's OpenCLIP text tower;
- ``schedule.py``: DDPM respaced as LDM's ``space_timesteps``;
- ``architecture.py``: the configurations of the profiles and the models they build;
- ``convert.py``: the released checkpoints' key layout to these modules and back;
- ``backbone.py``: all of it behind :class:`baselines.stage2.SRBackbone`.

The original (IceClear/StableSR) is under a non-commercial licence: this is a re-implementation
from reading it, checked against it by the parity test (``tests/test_stablesr_parity.py``).
"""
