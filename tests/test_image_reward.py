"""ImageReward against the release's own code: a stand-in folder in the published layout (ImageReward.pt with the
release's keys, med_config.json, a tokenizer) loads through ``$ASD_IMAGEREWARD`` and scores the fixture's images and
prompts as THUDM/ImageReward's ``ImageReward.score`` did on the same weights (tests/fixtures/imagereward/: its json
names the commit, the stand-ins and the command); a folder that does not fit is refused naming the keys, a
missing one is skipped naming where it was looked for, and ``weights`` lists it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import constants

from helpers import fixture_image, fixture_weight

from benchmark.metrics import image_reward, weight_files
from benchmark.metrics.image_reward import (TINY_MED_CONFIG, TINY_VISION, VARIABLE, load_image_reward,
                                            tiny_vocabulary)
from benchmark.metrics.registry import NotApplicable

FIXTURE = Path(__file__).parent / "fixtures" / "imagereward"


@pytest.fixture(scope="module")
def record():
    return json.loads((FIXTURE / "release.json").read_text())


def stand_in(folder: Path, record: dict, drop: str = "") -> Path:
    """The published layout: ImageReward.pt (the release's keys), med_config.json, and a tokenizer folder."""
    folder.mkdir(parents=True)
    state = {key: fixture_weight(index, key, tuple(shape)) for index, (key, shape) in
             enumerate(sorted(record["parameters"].items())) if key != drop}
    torch.save(state, folder / "ImageReward.pt")
    (folder / "med_config.json").write_text(json.dumps(record["med_config"]))
    (folder / "tokenizer").mkdir()
    shutil.copy(FIXTURE / record["vocabulary"], folder / "tokenizer" / "vocab.txt")
    return folder


def vision_of(record: dict) -> dict:
    """The release's VisionTransformer arguments as transformers' BlipVisionConfig names them."""
    vit = record["vision"]
    return dict(hidden_size=vit["embed_dim"], num_hidden_layers=vit["depth"], num_attention_heads=vit["num_heads"],
                patch_size=vit["patch_size"])


def test_the_small_configuration_is_the_tiny_profiles(record):
    assert vision_of(record) == TINY_VISION
    assert {key: record["med_config"][key] for key in TINY_MED_CONFIG if key != "vocab_size"} == \
        {key: value for key, value in TINY_MED_CONFIG.items() if key != "vocab_size"}
    assert (FIXTURE / record["vocabulary"]).read_text().split() == tiny_vocabulary()


def test_a_stand_in_folder_scores_as_the_release(record, tmp_path, monkeypatch):
    monkeypatch.setenv(VARIABLE, str(stand_in(tmp_path / "ImageReward", record)))
    model = load_image_reward("paper", vision=vision_of(record))
    cases = record["cases"]
    images = [fixture_image(case["image"]["fixture_image"], *case["image"]["size"]) for case in cases]
    ours = model.score(images, [case["prompt"] for case in cases])
    release = np.array([case["reward"] for case in cases])
    assert np.allclose(ours, release, atol=1e-5), (ours, release)
    assert len(set(np.round(release, 4))) == len(cases)  # the cases do differ
    assert model.conventions["pretrained"] == "THUDM/ImageReward/ImageReward.pt"
    listed = {entry.key: entry for entry in weight_files("paper", hash_files=False)}
    assert listed["image_reward"].present and not listed["image_reward"].needed


def test_the_packages_own_download_folder_is_found_when_no_folder_is_named(record, tmp_path, monkeypatch):
    """Whoever ran ``ImageReward.load`` holds its files in ``~/.cache/ImageReward``: found there, offline."""
    monkeypatch.delenv(VARIABLE, raising=False)
    monkeypatch.setattr(image_reward, "PACKAGE_FOLDER", stand_in(tmp_path / "ImageReward", record))
    assert image_reward.candidates()[0] == tmp_path / "ImageReward" / "ImageReward.pt"
    model = load_image_reward("paper", vision=vision_of(record))
    case = record["cases"][1]
    reward = model.score([fixture_image(case["image"]["fixture_image"], *case["image"]["size"])], [case["prompt"]])
    assert np.allclose(reward, case["reward"], atol=1e-5)


def test_a_checkpoint_that_does_not_fit_names_its_keys_and_a_missing_one_where_it_was_looked_for(
        record, tmp_path, monkeypatch):
    key = "blip.text_encoder.encoder.layer.1.crossattention.self.key.weight"
    monkeypatch.setenv(VARIABLE, str(stand_in(tmp_path / "short", record, drop=key)))
    with pytest.raises(NotApplicable, match="missing text_encoder.encoder.layer.1.crossattention.self.key.weight"):
        load_image_reward("paper", vision=vision_of(record))
    monkeypatch.setenv(VARIABLE, str(tmp_path / "nowhere"))
    monkeypatch.setattr(image_reward, "PACKAGE_FOLDER", tmp_path / "no-package-download")  # a user's own files
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # are not found by this test
    with pytest.raises(NotApplicable, match=f"ImageReward weights not found.*nowhere.*no-package-download.*hub.*"
                                            f"{VARIABLE}"):
        load_image_reward("paper")


def test_tiny_is_a_seeded_random_blip_labelled_as_such():
    image = [fixture_image(0, 96, 160)]
    first, again = load_image_reward("tiny"), load_image_reward("tiny")
    assert first.score(image, ["a lighthouse"]) == again.score(image, ["a lighthouse"])
    assert first.score(image, ["a lighthouse"]) != first.score(image, ["two red apples"])
    assert first.conventions["pretrained"] == "random (seed 0)"
