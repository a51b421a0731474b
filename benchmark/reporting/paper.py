"""The paper's own figures (docs/design.md, "The paper's numbers"), to print beside ours. Nothing here is measured."""

# Table 4: stage II alone, MM-CelebA-HQ 256² -> 1024², tile overlap 32 (latent px). LPIPS is
# legible only for the implicit rows ("≈ 0.08"); the other SSIM/LPIPS/FID cells are unreadable.
TABLE4 = {
    "nonoverlap": {"label": "no overlap", "psnr": 26.89, "fid": None, "lpips": None, "seconds": 75.08},
    "explicit": {"label": "explicit overlap", "psnr": 27.49, "fid": None, "lpips": None, "seconds": 166.8},
    "implicit-fixed": {"label": "implicit, fixed offset", "psnr": 26.83, "fid": 21.37, "lpips": "≈ 0.08",
                       "seconds": 75.01},
    "implicit-random": {"label": "implicit, random offset", "psnr": 27.53, "fid": 22.25, "lpips": "≈ 0.08",
                        "seconds": 75.19},
}
TABLE4_DATASET = "mm-celeba-hq"
#: Image px per latent px of the paper's backbone (StableSR on SD 2.1's VAE): the tile, overlap
#: and offset range of Tables 4, 6 and 7 are in these latent px (64 = 512 image px).
LATENT_FACTOR = 8

# Table 6: implicit overlap, random offset range (latent px).
TABLE6 = {16: {"psnr": 27.51, "seconds": 75.39}, 32: {"psnr": 27.53, "seconds": 75.19},
          48: {"psnr": 27.52, "seconds": 75.21}}

# Table 7: explicit overlap (latent px); 0 is the non-overlap grid.
TABLE7 = {0: {"psnr": 26.89, "seconds": 75.1}, 16: {"psnr": 27.50, "seconds": 148.7},
          32: {"psnr": 27.49, "seconds": 166.8}, 48: {"psnr": 27.64, "seconds": 182.6}}

SOURCE = ("Zheng et al., Any-Size-Diffusion, AAAI 2024: StableSR backbone, 200-step DDPM, "
          "MM-CelebA-HQ 256²→1024², 32 GB GPU")

# Table 1: the full pipeline on MM-CelebA-HQ. ratio S = single, A = any; max res. under a
# 32 GB GPU. The descriptive columns describe our methods as well.
TABLE1 = {
    "sr-plus": {"ratio": "S", "tile": "no", "overlap": "–", "max_res": "2048²", "seam": "N",
                "fid": 118.83, "is": 2.11, "clip": 27.22},
    "sr-tile": {"ratio": "S", "tile": "yes", "overlap": "no", "max_res": "18432²", "seam": "Y",
                "fid": 111.96, "is": 2.46, "clip": 27.46},
    "sr-tile-plus": {"ratio": "S", "tile": "yes", "overlap": "implicit", "max_res": "18432²",
                     "seam": "N", "fid": 111.06, "is": 2.53, "clip": 27.55},
    "ar-plus": {"ratio": "A", "tile": "no", "overlap": "–", "max_res": "2048²", "seam": "N",
                "fid": 92.80, "is": 3.97, "clip": 29.15},
    "ar-tile": {"ratio": "A", "tile": "yes", "overlap": "no", "max_res": "18432²", "seam": "Y",
                "fid": 85.66, "is": 3.98, "clip": 29.17},
    "asd": {"ratio": "A", "tile": "yes", "overlap": "implicit", "max_res": "18432²", "seam": "N",
            "fid": 85.34, "is": 4.04, "clip": 29.23},
}
TABLE1_DATASET = "mm-celeba-hq"

# Table 2: stage I alone, 21 sizes, per data set. Strings keep what the source lost ("31.x").
TABLE2 = {
    "ma-laion-coco": {"sr-plus": {"fid": 14.32, "is": 31.25, "clip": "31.x"},
                      "md": {"fid": 14.57, "is": 28.95, "clip": "32.x"},
                      "ar-plus": {"fid": 13.98, "is": 34.03, "clip": "32.x"}},
    "ma-coco": {"sr-plus": {"fid": 42.50, "is": 30.20, "clip": "31.x"},
                "md": {"fid": 43.25, "is": 28.92, "clip": "30.x"},
                "ar-plus": {"fid": 40.28, "is": 29.77, "clip": "31.x"}},
}
TABLE2_NAMES = {"sr-plus": "SD 2.1", "md": "MD 2.1", "ar-plus": "ARAD"}

# Table 3: ARAD (ar-plus) trained on 3 / 5 / 9 ratios, per data set.
TABLE3 = {
    "ma-laion-coco": {3: {"fid": 14.36, "is": 32.53}, 5: {"fid": 14.10, "is": "33.x"},
                      9: {"fid": 13.98, "is": 34.03}},
    "ma-coco": {3: {"fid": 41.28, "is": 29.58}, 5: {"fid": 40.25, "is": 29.63},
                9: {"fid": 40.28, "is": 29.77}},
}

DATASET_NAMES = {"ma-laion-coco": "MA-LAION-COCO", "ma-coco": "MA-COCO",
                 "mm-celeba-hq": "MM-CelebA-HQ"}

# Figure 7: peak GPU memory (GB) against the square side, 32 GB card. None: out of memory;
# a string: what the paper says where it gives no figure.
FIGURE7 = {
    "sr-plus": {1024: 17.45, 2048: 31.69, 4096: None},
    "asd": {1024: 13.44, 2048: 27.73, 18432: "runs (no figure given)"},
}
FIGURE7_BUDGET_GB = 32
