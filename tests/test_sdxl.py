"""SDXL as a registered base model: its published layout, its conditioning, and ``sr-plus`` on it against
diffusers' ``StableDiffusionXLPipeline`` built from the same tiny modules."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionXLPipeline
from open_clip.tokenizer import SimpleTokenizer

from helpers import CPU, one_thread

from baselines.base_models import get_base_model
from baselines.base_models.registry import token_ids
from baselines.models import WeightPaths, load_text_to_image, meta_models, parameter_count
from baselines.registry import LoadContext, get_method
from baselines.settings import Seeds, Settings
from baselines.stage1 import denoise

SIZE, STEPS, GUIDANCE, PROMPT = (128, 192), 3, 7.5, "a lighthouse"
SEEDS = Seeds(7, 8, 9)


@pytest.fixture(scope="module")
def models():
    return load_text_to_image("tiny", CPU, model="sdxl")




def pipeline_of(models, tokenizers=(None, None)) -> StableDiffusionXLPipeline:
    pipe = StableDiffusionXLPipeline(
        vae=models.vae, text_encoder=models.text_encoder, text_encoder_2=models.text_encoder_2,
        tokenizer=tokenizers[0], tokenizer_2=tokenizers[1], unet=models.unet,
        scheduler=DDIMScheduler.from_config(models.scheduler_config), add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


class ReleasedTokenizer:
    """A stand-in for one of SDXL's two ``CLIPTokenizer``s: the same ids (CLIP's BPE) and padding
    (``pad``: 49407 for ``tokenizer``, 0 = "!" for ``tokenizer_2``), as the pipeline calls it."""

    model_max_length = 77
    added_tokens_encoder: dict = {}

    def __init__(self, pad: int):
        self.pad, self.bpe = pad, SimpleTokenizer()

    def __call__(self, prompts, **_options):
        prompts = [prompts] if isinstance(prompts, str) else prompts
        ids = self.bpe(list(prompts))
        ids[:, 1:] = torch.where((ids == self.bpe.eot_token_id).int().cumsum(-1)[:, :-1] > 0, self.pad, ids[:, 1:])
        return SimpleNamespace(input_ids=ids)

    def tokenize(self, text):
        return text.split()


def test_the_published_sdxl_unet_has_its_2567_m_parameters_and_encoders_their_widths():
    meta = meta_models("paper-arch", "sdxl")
    assert parameter_count(meta["unet"]) == 2_567_463_684
    assert parameter_count(meta["text_encoder"]) == 123_060_480  # CLIP ViT-L/14's text tower
    assert parameter_count(meta["text_encoder_2"]) == 694_659_840  # OpenCLIP ViT-bigG/14's, with projection
    assert meta["unet"].config.cross_attention_dim == (meta["text_encoder"].config.hidden_size
                                                       + meta["text_encoder_2"].config.hidden_size)


def test_each_encoder_pads_as_its_released_tokenizer(models):
    tokenizer = SimpleTokenizer()
    for pad in (49407, 0):
        assert torch.equal(token_ids(tokenizer, ["a cat", ""], pad), ReleasedTokenizer(pad)(["a cat", ""]).input_ids)
    first = token_ids(tokenizer, ["a cat"], 49407)[0]
    assert first[:4].tolist() == [49406, 320, 2368, 49407] and set(first[4:].tolist()) == {49407}


def test_sdxl_conditioning_is_the_pipelines_with_its_size_micro_conditioning(models):
    pipe = pipeline_of(models, (ReleasedTokenizer(49407), ReleasedTokenizer(0)))
    hidden, _, pooled, _ = pipe.encode_prompt(PROMPT, device=CPU, do_classifier_free_guidance=False)
    negative, positive = models.guidance_pair(PROMPT, SIZE)
    assert torch.equal(positive.hidden, hidden) and torch.equal(positive.added["text_embeds"], pooled)
    assert positive.added["time_ids"].tolist() == [[128, 192, 0, 0, 128, 192]]
    assert not negative.hidden.any() and not negative.added["text_embeds"].any()  # force_zeros_for_empty_prompt
    assert torch.equal(negative.added["time_ids"], positive.added["time_ids"])


def test_sr_plus_on_sdxl_equals_diffusers_sdxl_pipeline_on_the_latent(models):
    with one_thread():
        negative, positive = models.guidance_pair(PROMPT, SIZE)
        ours, _ = denoise(models, negative, positive, (SIZE[0] // 8, SIZE[1] // 8), steps=STEPS, guidance=GUIDANCE,
                          generator=SEEDS.generator("noise"))
        pipe = pipeline_of(models, (ReleasedTokenizer(49407), ReleasedTokenizer(0)))
        theirs = pipe(PROMPT, height=SIZE[0], width=SIZE[1], num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                      generator=SEEDS.generator("noise"), output_type="latent").images
        method = get_method("sr-plus")
        sampler = method.load(method, LoadContext("tiny", Settings(STEPS, 1, GUIDANCE), CPU, WeightPaths(), "sdxl"))
        image, record = sampler(PROMPT, SIZE, SEEDS)
    difference = (ours - theirs).abs().max().item()
    print(f"sr-plus on tiny SDXL vs StableDiffusionXLPipeline: max |latent difference| {difference:.3g}")
    assert difference <= 1e-5
    decoded = models.vae.decode(theirs / models.vae.config.scaling_factor).sample.clamp(-1, 1)
    assert image.shape == (1, 3, *SIZE) and (image - decoded).abs().max() <= 1e-4
    assert record["stage1"]["model"] == get_base_model("sdxl").title and record["stage1"]["unet_calls"] == STEPS
