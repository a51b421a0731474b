"""ImageReward: a BLIP reward model trained on people's rankings of generated images.

Xu et al. 2023, "ImageReward", NeurIPS, arXiv 2304.05977; the release THUDM/ImageReward at c1392c6
(``ImageReward/ImageReward.py``, ``models/BLIP/``). The model is BLIP's ViT-L/16 at 224 px and its
BERT-base text encoder, whose every layer also attends to the image tokens; the reward of a prompt
and an image is the text encoder's first ([CLS]) output through an MLP (1024, 128, 64, 16, 1, no
activations between, as released), minus the release's mean 0.16717 and divided by its std 1.03334.
Prompts are bert-base-uncased WordPieces padded or cut to 35 tokens; an image is resized (bicubic)
to 224 on its shortest side and centre-cropped, with CLIP's mean and std (the release's transform).

The package is not installed: it pins timm 0.6.13 and fairscale, and its ``med.py`` needs transformers
4. Its two networks are the ones transformers ports from BLIP (``BlipVisionModel``, and
``BlipTextModel`` with cross-attention), with ``ImageReward.pt``'s keys renamed onto them;
tests/test_image_reward.py holds this module to the release's own code run on a small configuration
(tests/fixtures/imagereward/). On ``paper`` the file comes from ``$ASD_IMAGEREWARD`` (a folder),
the package's own download folder ``~/.cache/ImageReward`` or the hub cache (THUDM/ImageReward),
with ``med_config.json`` beside it and the bert-base-uncased tokenizer from a ``tokenizer`` folder
beside it or the hub cache; a missing piece skips the metric, naming where it was looked for. On
``tiny`` and ``paper-arch`` it is a small random BLIP of the same classes, labelled.
"""

from __future__ import annotations

import json
import os
import re
import string
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image
from torchvision import transforms
from transformers import BertTokenizerFast, BlipTextConfig, BlipTextModel, BlipVisionConfig, BlipVisionModel

from benchmark.metrics.images import to_rgb_array
from benchmark.metrics import preference  # as a module: the registry imports both, in either order
from benchmark.metrics.registry import TEXT_TO_IMAGE, NotApplicable, register_metric
from benchmark.metrics.weights import misfit, seeded, uses_random_weights

if TYPE_CHECKING:
    from benchmark.metrics.context import ScoringContext

REPO, FILE, VARIABLE = "THUDM/ImageReward", "ImageReward.pt", "ASD_IMAGEREWARD"
PACKAGE_FOLDER = Path("~/.cache/ImageReward")  # where the package's load() downloads to
TOKENIZER_REPOS = ("bert-base-uncased", "google-bert/bert-base-uncased")
MEAN, STD, TOKENS = 0.16717362830052426, 1.0333394966054072, 35
#: BLIP's ViT-L/16 (``create_vit("large", 224)``: 1024 wide, 24 blocks of 16 heads, MLP ratio 4, LayerNorm eps 1e-6).
VISION_L16 = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, patch_size=16)
#: BLIP's med_config.json, the text encoder's: BERT-base with two added tokens, cross-attending to 1024-wide images.
MED_CONFIG = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                  vocab_size=30524, max_position_embeddings=512, layer_norm_eps=1e-12, hidden_act="gelu")
TINY_VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, patch_size=32)
TINY_MED_CONFIG = dict(MED_CONFIG, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       max_position_embeddings=64)
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_vocabulary() -> list[str]:
    """A WordPiece vocabulary of single characters, for tiny tokenizers (no network, no files)."""
    pieces = list(string.ascii_lowercase + string.digits)
    return SPECIALS + pieces + ["##" + piece for piece in pieces] + list(string.punctuation)


def tokenizer_from_vocabulary(words: list[str]) -> BertTokenizerFast:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "vocab.txt").write_text("\n".join(words) + "\n")
        return BertTokenizerFast(vocab_file=str(Path(folder) / "vocab.txt"))


class RewardModel(torch.nn.Module):
    """BLIP's two encoders and the reward MLP, with ``ImageReward.pt``'s module layout under ``mlp``."""

    def __init__(self, vision: dict, med_config: dict):
        super().__init__()
        width = vision["hidden_size"]
        self.visual_encoder = BlipVisionModel(BlipVisionConfig(
            **vision, intermediate_size=4 * width, image_size=224, hidden_act="gelu", layer_norm_eps=1e-6))
        self.text_encoder = BlipTextModel(BlipTextConfig(
            **{key: med_config[key] for key in MED_CONFIG}, encoder_hidden_size=width, is_decoder=True,
            bos_token_id=None, sep_token_id=None),  # special ids play no part in the encoder's forward
            add_pooling_layer=False)
        size = med_config["hidden_size"]
        self.mlp = torch.nn.Module()
        self.mlp.layers = torch.nn.Sequential(  # the release's indices: dropouts at 1, 3, 5 (inactive in eval)
            torch.nn.Linear(size, 1024), torch.nn.Dropout(0.2), torch.nn.Linear(1024, 128), torch.nn.Dropout(0.2),
            torch.nn.Linear(128, 64), torch.nn.Dropout(0.1), torch.nn.Linear(64, 16), torch.nn.Linear(16, 1))

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        image = self.visual_encoder(pixel_values=pixels).last_hidden_state
        text = self.text_encoder(input_ids=ids, attention_mask=mask, encoder_hidden_states=image,
                                 encoder_attention_mask=torch.ones(image.shape[:-1], dtype=torch.long,
                                                                   device=image.device)).last_hidden_state
        return (self.mlp.layers(text[:, 0]).squeeze(-1) - MEAN) / STD


#: ImageReward.pt's BLIP ViT names (timm's) onto transformers' BlipVisionModel's.
VISION_RENAMES = [(r"^cls_token$", "embeddings.class_embedding"), (r"^pos_embed$", "embeddings.position_embedding"),
                  (r"^patch_embed\.proj\.", "embeddings.patch_embedding."), (r"^norm\.", "post_layernorm."),
                  (r"^blocks\.(\d+)\.norm1\.", r"encoder.layers.\1.layer_norm1."),
                  (r"^blocks\.(\d+)\.norm2\.", r"encoder.layers.\1.layer_norm2."),
                  (r"^blocks\.(\d+)\.attn\.qkv\.", r"encoder.layers.\1.self_attn.qkv."),
                  (r"^blocks\.(\d+)\.attn\.proj\.", r"encoder.layers.\1.self_attn.projection."),
                  (r"^blocks\.(\d+)\.mlp\.", r"encoder.layers.\1.mlp.")]


def converted(release: dict) -> dict:
    """The release's state dict in :class:`RewardModel`'s names (BLIP's text encoder already has them)."""
    state = {}
    for key, value in release.items():
        if key.startswith("blip.visual_encoder."):
            name = key[len("blip.visual_encoder."):]
            for pattern, replacement in VISION_RENAMES:
                name = re.sub(pattern, replacement, name)
            state["visual_encoder." + name] = value
        elif key.startswith("blip.text_encoder."):
            state[key[len("blip."):]] = value
        elif key.startswith("mlp."):
            state[key] = value
    return state


def load_weights(model: RewardModel, release: dict, source: Path):
    """``release`` into ``model``, every key it needs present and of its shape (extra ones, e.g. BLIP's
    projection heads and position-id buffers, are not used)."""
    state, wanted = converted(release), model.state_dict()
    problem = misfit(wanted, state, extra_allowed=True)
    if problem:
        raise NotApplicable(f"{source} does not fit ImageReward's BLIP: {problem}")
    model.load_state_dict({key: state[key] for key in wanted})


def candidates() -> list[Path]:
    """Where ImageReward.pt is looked for: ``$ASD_IMAGEREWARD``, the package's download folder, the hub cache."""
    given = os.environ.get(VARIABLE)
    snapshots = preference.hub_snapshots(REPO)
    cached = sorted(snapshots.glob(f"*/{FILE}")) if snapshots.is_dir() else []
    return ([Path(given).expanduser() / FILE] if given else []) + [PACKAGE_FOLDER.expanduser() / FILE] + cached \
        + [snapshots / "*" / FILE]


def paper_tokenizer(folder: Path) -> BertTokenizerFast:
    """bert-base-uncased: a ``tokenizer`` folder beside the weights, else the hub cache (offline)."""
    if (folder / "tokenizer").is_dir():
        return BertTokenizerFast.from_pretrained(folder / "tokenizer")
    for repo in TOKENIZER_REPOS:
        try:
            return BertTokenizerFast.from_pretrained(repo, local_files_only=True)
        except OSError:
            continue
    raise NotApplicable(f"ImageReward's tokenizer (bert-base-uncased) not found in {folder / 'tokenizer'} or the "
                        f"Hugging Face cache ({', '.join(TOKENIZER_REPOS)})")


def load_image_reward(profile: str, device=None, seed: int = 0,
                      vision: Optional[dict] = None) -> "preference.PreferenceModel":
    """ImageReward on ``profile`` (``vision``: the ViT's size, for stand-ins in tests; the release's is ViT-L/16)."""
    if uses_random_weights(profile):
        with seeded(seed):
            model = RewardModel(TINY_VISION, dict(TINY_MED_CONFIG, vocab_size=len(tiny_vocabulary())))
        tokenizer, label, weights = tokenizer_from_vocabulary(tiny_vocabulary()), "tiny BLIP", f"random (seed {seed})"
    else:
        file = preference.found_weights(candidates(), "ImageReward", VARIABLE)
        config_file = file.parent / "med_config.json"
        med_config = {**MED_CONFIG, **(json.loads(config_file.read_text()) if config_file.is_file() else {})}
        tokenizer = paper_tokenizer(file.parent)
        model = RewardModel(vision or VISION_L16, med_config)
        load_weights(model, torch.load(file, map_location="cpu", weights_only=True), file)
        label, weights = "BLIP ViT-L/16 + BERT-base" if vision is None else "BLIP stand-in", f"{REPO}/{file.name}"
    model = model.to(device or "cpu").eval()
    preprocess = transforms.Compose([transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC),
                                     transforms.CenterCrop(224), transforms.ToTensor(),
                                     transforms.Normalize(OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)])

    @torch.no_grad()
    def score(images, prompts) -> np.ndarray:
        device_of = next(model.parameters()).device
        pixels = torch.stack([preprocess(Image.fromarray(to_rgb_array(image))) for image in images]).to(device_of)
        tokens = tokenizer(list(prompts), padding="max_length", truncation=True, max_length=TOKENS, return_tensors="pt")
        return model(pixels, tokens.input_ids.to(device_of), tokens.attention_mask.to(device_of)).double().cpu().numpy()

    return preference.PreferenceModel(score, {
        "model": label, "pretrained": weights, "preprocess": preference.RULE + " (the release's transform)",
        "score": "(MLP([CLS] of the text encoder over the image) - 0.16717) / 1.03334, as ImageReward.score"})


@register_metric(applies_to=(TEXT_TO_IMAGE,), tolerance={"rel": 0.02, "abs": 0.02}, higher_is_better=True,
                 digits=3,
                 inapplicable_reason="super-resolution: its images follow the LR input, not the caption",
                 source="Xu et al. 2023 (ImageReward, arXiv 2304.05977): THUDM/ImageReward's ImageReward.pt on BLIP, "
                        "scored as ImageReward.score")
def image_reward(context: "ScoringContext"):
    return preference.score_pairs(context, "image_reward", load_image_reward, "benchmark.metrics.image_reward")
