"""The published protocols, each a :class:`~benchmark.metrics.presets.Preset` citing its source.

``pinned`` holds what the source fixes (and where it says so), ``ours`` what it leaves open and
the default chosen here. Sources were read where they are public: the authors' answers in their
issue threads (quoted in docs/metrics.md); the papers' evaluation sections are cited by section.
None of DemoFusion (PRIS-CV/DemoFusion), LSRNA (3587jjh/LSRNA at af8da69) or UltraPixel
publishes evaluation code, so no preset can be checked against its authors' script.
"""

from __future__ import annotations

from benchmark.metrics.patches import CROP
from benchmark.metrics.presets import NATIVE, Crops, Preset, register_preset

SEEDING = "numpy.random.default_rng([seed, image index]), seed 0: the source gives no positions or seed"
REFERENCE_CROPS = "the same rule on every reference image: the source names no reference crops"
CAP = "capped at the smallest side of the generated and reference images, so every image gives crops"
ACC_V2 = ("lzhxmu/AccDiffusion_v2#2 (2025-07-21, the authors): FID_c / IS_c follow DemoFusion's protocol, "
          "'10-crop strategy', through torch-fidelity")
CLEAN_FID = "Parmar et al., 'On Aliased Resizing and Surprising Subtleties in GAN Evaluation', CVPR 2022; " \
            "clean-fid 0.1.35, cleanfid/resize.py build_resizer and cleanfid/features.py build_feature_extractor"

register_preset(Preset(
    "demofusion", "DemoFusion FID_c / KID_c / IS_c",
    "Du et al., 'DemoFusion', CVPR 2024, Sec. 4 (metrics on crops at the base model's 1x resolution); "
    + ACC_V2,
    {"fid": "FID_c", "kid": "KID_c", "is": "IS_c"}, Crops(10, NATIVE),
    pinned={"crops per image": "10: " + ACC_V2, "crop side": "the base model's native side (1x): DemoFusion Sec. 4",
            "reference": "real high-resolution images of the prompts' set: DemoFusion Sec. 4"},
    ours={"positions": SEEDING, "reference crops": REFERENCE_CROPS, "crop side cap": CAP,
          "resize of a crop to 299 px": "clean-fid 'clean' (PIL bicubic); AccDiffusion v2 used torch-fidelity, "
                                         "whose bilinear resize the legacy modes stand nearer to"}))

register_preset(Preset(
    "lsrna", "LSRNA pFID / pKID",
    "Jeong et al., 'Latent Space Super-Resolution for Higher-Resolution Image Generation with Diffusion Models' "
    "(LSRNA), CVPR 2025, Sec. 5.2 and App. B.2; 3587jjh/LSRNA#7 (2025-12-01, open: the code is asked for and not "
    "published; 3587jjh/LSRNA at af8da69 has none)",
    {"fid": "pFID", "kid": "pKID"}, Crops(10, CROP),
    pinned={"statistics": "FID and KID on patches of the generated and reference images: LSRNA Sec. 5.2"},
    ours={"crop side": f"{CROP} px, Inception's input, not resized: the paper's crop size was not checked here",
          "crops per image": "10, DemoFusion's count: not checked against LSRNA App. B.2",
          "positions": SEEDING, "reference crops": REFERENCE_CROPS}))

register_preset(Preset(
    "ultrapixel", "UltraPixel FID-patch",
    "Ren et al., 'UltraPixel', NeurIPS 2024; catcathh/UltraPixel#22 (2024-10-28/29, the authors: 'crop several "
    "patches' from each real high-resolution image as the ground truth, patches of the same size from each "
    "generated image, 'the patch size corresponds to the input image size of the feature extractor', 'for each "
    "image, we crop three patches', FID from IQA-PyTorch)",
    {"fid": "FID-patch"}, Crops(3, CROP),
    pinned={"crops per image": "3: UltraPixel#22", "crop side": f"the extractor's input, {CROP} px for "
            "Inception-v3 (the authors were unsure whether theirs was 224): UltraPixel#22",
            "reference crops": "the same size from the real high-resolution images: UltraPixel#22",
            "library": "pyiqa (IQA-PyTorch) FID: UltraPixel#22"},
    ours={"positions": SEEDING, "reference crops per image": "3, as for generated images",
          "library": "clean-fid 'clean': pyiqa's FID follows clean-fid (chaofengc/IQA-PyTorch#251) and pyiqa "
                     "is not installed beside our pins here"}))

for short, mode, note in (("clean", "clean", "PIL bicubic in float32, the suite's default"),
                          ("legacy-tf", "legacy_tensorflow", "torch bilinear inside the TorchScript TF graph"),
                          ("legacy-pt", "legacy_pytorch", "torch bilinear outside the network; clean-fid's network for this mode is "
                                      "pytorch-fid's port of the same TF graph, which the suite does not load: here "
                                      "the TF graph, so it equals legacy_tensorflow and only the port's own "
                                      "difference is left out")):
    register_preset(Preset(
        f"cleanfid-{short}", f"clean-fid FID / KID, mode '{mode}' (whole images)", CLEAN_FID,
        {"fid": "FID", "kid": "KID"}, None, mode=mode,
        pinned={"resize": f"{note}: clean-fid build_resizer / build_feature_extractor ('{mode}')",
                "KID": "unbiased cubic-kernel MMD^2 as clean-fid computes it"},
        ours={"KID subsets": "100 of min(1000, n) as torchmetrics draws them, seed 0 (docs/metrics.md, KID)"}))

register_preset(Preset(
    "torchmetrics", "torchmetrics FrechetInceptionDistance (whole images)",
    "torchmetrics 1.9 torchmetrics.image.fid.FrechetInceptionDistance (float64 running sums, "
    "torch.linalg.eigvals of the covariance product); its default extractor is torch-fidelity's "
    "FeatureExtractorInceptionV3 (the TF graph, TF1-style bilinear resize)",
    {"fid": "FID"}, None, library="torchmetrics", mode="legacy_tensorflow",
    pinned={"statistics and distance": "torchmetrics' FrechetInceptionDistance, on the suite's features"},
    ours={"features": "the suite's TF graph resized as clean-fid's 'legacy_tensorflow' (torch bilinear), the "
                      "nearest mode to torch-fidelity's TF1-style bilinear: torch-fidelity is not a dependency"}))
