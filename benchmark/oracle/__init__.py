"""The weight-free oracle: a Gaussian random field with its exact denoiser, FSTD on it as a
runner job, and the study of every tiling of the paper's Tables 4, 6 and 7.
"""
