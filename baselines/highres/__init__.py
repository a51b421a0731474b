"""The field's training-free high-resolution methods on SD 2.1: HiDiffusion, ScaleCrafter, DemoFusion.

Each changes how SD 2.1's UNet runs at sizes it was not trained for, with no second stage;
:mod:`baselines.highres.base` holds what they share (noise, the VAE, the exact size, the
record) and each method's module only its denoising (docs/methods.md, "Training-free methods").
"""
