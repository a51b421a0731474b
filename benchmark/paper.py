"""The paper's own figures (SPEC.md §5), to print beside ours. Nothing here is measured."""

# Table 4: stage II alone, MM-CelebA-HQ 256² -> 1024², tile overlap 32 (latent px).
TABLE4 = {
    "nonoverlap": {"label": "no overlap", "psnr": 26.89, "fid": None, "seconds": 75.08},
    "explicit": {"label": "explicit overlap", "psnr": 27.49, "fid": None, "seconds": 166.8},
    "implicit-fixed": {"label": "implicit, fixed offset", "psnr": 26.83, "fid": 21.37,
                       "seconds": 75.01},
    "implicit-random": {"label": "implicit, random offset", "psnr": 27.53, "fid": 22.25,
                        "seconds": 75.19},
}

# Table 6: implicit overlap, random offset range (latent px).
TABLE6 = {16: {"psnr": 27.51, "seconds": 75.39}, 32: {"psnr": 27.53, "seconds": 75.19},
          48: {"psnr": 27.52, "seconds": 75.21}}

# Table 7: explicit overlap (latent px); 0 is the non-overlap grid.
TABLE7 = {0: {"psnr": 26.89, "seconds": 75.1}, 16: {"psnr": 27.50, "seconds": 148.7},
          32: {"psnr": 27.49, "seconds": 166.8}, 48: {"psnr": 27.64, "seconds": 182.6}}

SOURCE = ("Zheng et al., Any-Size-Diffusion, AAAI 2024: StableSR backbone, 200-step DDPM, "
          "MM-CelebA-HQ 256²→1024², 32 GB GPU")
