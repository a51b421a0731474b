"""The compared methods of the ASD paper, the FSTD tiling engine and the ARAD LoRA training."""
