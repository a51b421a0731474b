"""SDXL as a registered base model: its published layout, its conditioning, and ``sr-plus`` on it against
diffusers' ``StableDiffusionXLPipeline`` built from the same tiny modules."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionXLPipeline
from open_clip.tokenizer import SimpleTokenizer
from PIL import Image

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
    assert record.stage1.details["model"] == get_base_model("sdxl").title and record.stage1.unet_calls == STEPS


# --- choosing the model: --model, refusals, records, run folders ------------------------------------------------

def test_a_method_that_does_not_declare_sdxl_is_refused_in_one_line_naming_its_models(capsys):
    from benchmark.cli import main

    assert main(["run", "--model", "sdxl", "--method", "ar-plus", "--limit", "1", "--no-score"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == "error: method ar-plus runs on the model sd21, not 'sdxl'"


def test_an_unknown_model_is_refused_naming_the_known_ones(capsys):
    from benchmark.cli import main

    assert main(["run", "--model", "sd3", "--method", "sr-plus", "--limit", "1", "--no-score"]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown model 'sd3'; known models: sd21, flux, flux-schnell, sdxl"


def test_a_method_entry_names_registered_models_only():
    from baselines.registry import Method, RegistrationError

    with pytest.raises(RegistrationError, match=r"model 'sd3' \(known: sd21, flux, flux-schnell, sdxl\)"):
        Method("mine", "a method", lambda method, context: None, models=("sd21", "sd3"))


def test_list_shows_the_models_and_which_methods_run_on_them(capsys):
    from benchmark.cli import main

    assert main(["list"]) == 0
    output = capsys.readouterr().out
    models = output.split("models (stage I, --model):\n")[1].split("profiles:")[0]
    assert [line.split()[0] for line in models.splitlines()] == ["sd21", "flux", "flux-schnell", "sdxl"]
    assert "(models: sd21, flux, flux-schnell, sdxl)" in next(line for line in output.splitlines()
                                                          if line.startswith("  sr-plus "))
    assert "(models: sd21)" in next(line for line in output.splitlines() if line.startswith("  ar-plus "))


def test_run_folders_name_a_model_other_than_sd21_only():
    from benchmark.spec import RunSpec

    default = RunSpec("sr-plus", size=(256, 256), prompt="a", runs=Path("r")).resolved().run_dir()
    sdxl = RunSpec("sr-plus", model="sdxl", size=(256, 256), prompt="a", runs=Path("r")).resolved().run_dir()
    assert sdxl.parent == default.parent and sdxl.name == "sdxl-" + default.name
    assert RunSpec("sr-plus", model="sdxl").as_record() == {"method": "sr-plus", "model": "sdxl"}


def test_run_model_sdxl_writes_the_exact_size_and_its_records_name_the_model(tmp_path, capsys):
    from benchmark.cli import main

    with one_thread():
        assert main(["run", "--model", "sdxl", "--method", "sr-plus", "--size", "256x128", "--prompt", "a lighthouse",
                     "--limit", "1", "--steps", "1", "--no-score", "--runs", str(tmp_path)]) == 0
    (results,) = tmp_path.glob("tiny/sr-plus/sdxl-*/results.json")
    record, run = json.loads(results.read_text()), json.loads((results.parent / "run.json").read_text())
    assert record["model"] == run["model"] == "sdxl" and run["weights"]["stage1"]["model"] == "tiny/sdxl"
    assert Image.open(results.parent / "samples" / "00000.image.png").size == (128, 256)


def test_ceiling_takes_the_model_into_its_folder_record_and_trials(tmp_path, capsys):
    from benchmark.cli import main
    from benchmark.runs import ceiling
    from benchmark.runs.measure import MemoryBudget

    budget = MemoryBudget.parse("1GiB")
    assert ceiling.ceiling_dir(tmp_path, "tiny", "sr-plus", budget).name == "sr-plus-1GiB"
    assert ceiling.ceiling_dir(tmp_path, "tiny", "sr-plus", budget, "sdxl").name == "sdxl-sr-plus-1GiB"
    assert main(["ceiling", "--model", "sdxl", "--method", "ar-plus", "--runs", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "error: method ar-plus runs on the model sd21, not 'sdxl'"
    record = ceiling.search("sr-plus", "tiny", budget, CPU, tmp_path, 512, 512, model="sdxl",
                            trial=lambda side: ceiling.TrialResult(side, ceiling.OK, 100.0, 1.0), log=print)
    assert record["model"] == "sdxl"
    assert (tmp_path / "ceiling" / "tiny" / "sdxl-sr-plus-1GiB" / "ceiling.json").is_file()


def test_sdxl_decodes_in_fp32_where_its_vae_says_so_and_sd21_in_the_runs_dtype():
    """SDXL's pipeline upcasts a ``force_upcast`` VAE (it overflows in fp16); SD 2.1's never does."""
    from baselines.models import load_text_to_image

    sdxl = load_text_to_image("tiny", torch.device("cpu"), torch.float16, model="sdxl")
    sd21 = load_text_to_image("tiny", torch.device("cpu"), torch.float16)
    assert sdxl.vae.config.force_upcast and sdxl.vae.dtype == torch.float32 and sdxl.unet.dtype == torch.float16
    assert sd21.vae.dtype == torch.float16
