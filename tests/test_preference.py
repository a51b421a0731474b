"""HPSv2.1 and PickScore: each against its reference's own forward (open_clip's CLIP, transformers' CLIPModel),
HPSv2.1's images through its fork's own eval transform (tests/fixtures/hpsv2/), loaded from stand-in files in the
published layouts (the hub cache, the environment's paths), listed by ``weights``, and skipped with where they were
looked for when missing."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from huggingface_hub import constants
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

from helpers import fixture_image

from benchmark.metrics.clip_score import TINY_BASE, TINY_OVERRIDES
from benchmark.metrics.preference import HPS_FILE, TINY_PICKSCORE, hps_transform, load_hps, load_pickscore
from benchmark.metrics.registry import NotApplicable
from benchmark.metrics.weights import seeded, weight_files

PROMPTS = ["a lighthouse", "a red bicycle"]
HPS_FIXTURE = Path(__file__).parent / "fixtures" / "hpsv2"


@pytest.fixture
def images():
    generator = np.random.default_rng(0)
    return [generator.integers(0, 256, (300, 500, 3), dtype=np.uint8) for _ in PROMPTS]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("ASD_HPSV2", raising=False)
    monkeypatch.delenv("ASD_PICKSCORE", raising=False)
    return tmp_path / "hub"


def test_hps_images_go_through_the_forks_own_eval_transform():
    """Wide, square, tall and small images: the longest side to 224, zero-padded, as hpsv2.img_score's."""
    record = json.loads((HPS_FIXTURE / "transform.json").read_text())
    stored, transform = load_file(HPS_FIXTURE / record["file"]), hps_transform()
    for index, image in enumerate(record["images"]):
        pixels = transform(Image.fromarray(fixture_image(image["fixture_image"], *image["size"])))
        assert pixels.shape == (3, 224, 224)
        assert torch.allclose(F.avg_pool2d(pixels[None], record["pool"])[0], stored[f"image{index}"], atol=1e-6)
    corner = F.avg_pool2d(transform(Image.fromarray(fixture_image(0, 300, 500)))[None], 4)[0][:, 0, 0]
    assert torch.allclose(corner, stored["image0"][:, 0, 0]) and not torch.allclose(corner, stored["image0"][:, 28, 28])


def test_hps_is_open_clips_own_image_text_cosine(images):
    model = load_hps("tiny")
    with seeded(0):
        net = open_clip.create_model(TINY_BASE, **copy.deepcopy(TINY_OVERRIDES))
    preprocess = hps_transform(net.visual.image_size[0])
    pixels = torch.stack([preprocess(Image.fromarray(image)) for image in images])
    with torch.no_grad():
        image_features, text_features, _ = net.eval()(pixels, open_clip.get_tokenizer(TINY_BASE)(PROMPTS))
    assert np.allclose(model.score(images, PROMPTS), torch.diagonal(image_features @ text_features.T).numpy(),
                       atol=1e-5)


def test_pickscore_is_transformers_logits_per_image(images):
    model = load_pickscore("tiny")
    with seeded(0):
        net = CLIPModel(CLIPConfig(**TINY_PICKSCORE)).eval()
    pixels = CLIPImageProcessor()([Image.fromarray(image) for image in images], return_tensors="pt").pixel_values
    with torch.no_grad():
        logits = net(input_ids=open_clip.get_tokenizer(TINY_BASE)(PROMPTS), pixel_values=pixels).logits_per_image
    assert np.allclose(model.score(images, PROMPTS), torch.diagonal(logits).numpy(), atol=1e-4)


def test_both_load_from_the_published_layouts_and_weights_lists_them(images, hub, tmp_path, monkeypatch):
    with pytest.raises(NotApplicable, match="HPSv2.1 weights not found.*models--xswu--HPSv2"):
        load_hps("paper")
    with pytest.raises(NotApplicable, match="PickScore weights not found.*ASD_PICKSCORE"):
        load_pickscore("paper")
    listed = {record.key: record for record in weight_files("paper", hash_files=False)}
    assert not listed["hpsv2"].present and not listed["pickscore"].present and not listed["hpsv2"].needed

    config = tmp_path / "configs" / "tiny-hps.json"  # a stand-in architecture, registered as open_clip reads configs
    config.parent.mkdir()
    base = open_clip.get_model_config(TINY_BASE)
    config.write_text(json.dumps({**base, **copy.deepcopy(TINY_OVERRIDES),
                                  "vision_cfg": {**base["vision_cfg"], **TINY_OVERRIDES["vision_cfg"]},
                                  "text_cfg": {**base["text_cfg"], **TINY_OVERRIDES["text_cfg"]}}))
    open_clip.add_model_config(config)
    with seeded(3):
        net = open_clip.create_model("tiny-hps")
    snapshot = hub / "models--xswu--HPSv2" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    torch.save({"state_dict": net.state_dict()}, snapshot / HPS_FILE)
    hps = load_hps("paper", architecture="tiny-hps")
    assert hps.conventions["pretrained"] == f"xswu/HPSv2/{HPS_FILE}"

    with seeded(4):
        clip = CLIPModel(CLIPConfig(**TINY_PICKSCORE))
    folder = tmp_path / "PickScore_v1"
    clip.save_pretrained(folder)
    monkeypatch.setenv("ASD_PICKSCORE", str(folder))
    pick = load_pickscore("paper")
    assert pick.conventions["pretrained"] == str(folder)
    listed = {record.key: record for record in weight_files("paper", hash_files=False)}
    assert listed["hpsv2"].present and listed["pickscore"].present
    # the loaded weights are the stand-ins', not the tiny profile's
    assert not np.allclose(hps.score(images, PROMPTS), load_hps("tiny").score(images, PROMPTS))
    assert not np.allclose(pick.score(images, PROMPTS), load_pickscore("tiny").score(images, PROMPTS))
