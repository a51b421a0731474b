"""ARAD multi-aspect LoRA training: buckets, the batch sampler, training, resuming, the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from arad_fixtures import RUN_CONFIG, run_data, scratch, tiny_models, trained_run

from baselines import train_arad as cli
from baselines.arad import (
    BucketBatchSampler,
    BucketDataset,
    Example,
    TrainConfig,
    TrainingError,
    assign_buckets,
    bucket_sizes,
    cover_resize,
    fixed_loss,
    generated_training_set,
    latest_checkpoint,
    load_training_data,
    smallest_divisor,
    train_arad,
)
from datasets_build.sizes import ARAD_BUCKETS, Size


pytestmark = pytest.mark.usefixtures("single_thread")


# --------------------------------------------------------------------------- buckets and data


def test_bucket_sets_are_table_3_prefixes_and_divisors_keep_ratios():
    assert bucket_sizes(9) == ARAD_BUCKETS
    assert bucket_sizes(3) == ARAD_BUCKETS[:3] and bucket_sizes(5) == ARAD_BUCKETS[:5]
    small = bucket_sizes(9, 16)
    assert [s.name for s in small[:3]] == ["32x32", "36x48", "48x36"]
    assert [s.ratio for s in small] == pytest.approx([s.ratio for s in ARAD_BUCKETS])


@pytest.mark.parametrize("count", [0, 4, 7, 10])
def test_unknown_bucket_count_is_refused(count):
    with pytest.raises(TrainingError, match="3, 5 or 9"):
        bucket_sizes(count)
    with pytest.raises(TrainingError, match="3, 5 or 9"):
        TrainConfig(buckets=count).validate()


def test_bucket_divisor_must_divide_every_side():
    with pytest.raises(TrainingError, match="divisor 7"):
        bucket_sizes(9, 7)


def test_cli_refuses_unknown_bucket_count(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--data", "generated:4", "--output", "x", "--buckets", "4"])
    assert exit_info.value.code == 2
    assert "invalid choice: 4" in capsys.readouterr().err


def test_eq1_assigns_the_nearest_ratio():
    sizes = bucket_sizes(9)
    # H/W: 1.0 -> 512x512; 0.7 -> 0.75; 0.52 -> 0.5; 1.9 -> 2.0; 1.7 -> 1.778 (|0.078| < |0.1|); 0.59 -> 0.5625
    examples = [Example("", h, w) for h, w in [(100, 100), (70, 100), (52, 100), (190, 100), (170, 100), (59, 100)]]
    names = [sizes[i].name for i in assign_buckets(examples, sizes)]
    assert names == ["512x512", "576x768", "512x1024", "1024x512", "1024x576", "576x1024"]
    # with only 3 buckets, a 2:1 tall image goes to the tallest of them (768x576)
    assert [bucket_sizes(3)[i].name for i in assign_buckets(examples[3:4], bucket_sizes(3))] == ["768x576"]


def test_cover_resize_scales_the_short_side_and_centre_crops():
    # 200x100 (W x H): red | green | green | blue quarters -> a square bucket keeps the green middle
    img = Image.new("RGB", (200, 100), (0, 255, 0))
    img.paste((255, 0, 0), (0, 0, 50, 100))
    img.paste((0, 0, 255), (150, 0, 200, 100))
    out = np.asarray(cover_resize(img, Size(32, 32))).astype(int)
    assert out.shape == (32, 32, 3)
    # no red or blue left (a squeeze would keep 8 red and 8 blue columns); the bicubic
    # filter reads a little past the crop box, so the outermost columns may be tinted
    assert np.abs(out[:, 1:-1] - [0, 255, 0]).max() <= 2
    assert np.abs(out - [0, 255, 0]).max() < 40
    tall = cover_resize(Image.new("RGB", (30, 90)), Size(64, 32))
    assert tall.size == (32, 64)


def test_generated_set_is_deterministic_and_spans_the_buckets():
    a, b = generated_training_set(17, seed=3, long_side=64), generated_training_set(17, seed=3, long_side=64)
    assert a.sha256 == b.sha256 and len(a) == 17
    assert all(np.array_equal(np.asarray(x.image), np.asarray(y.image)) for x, y in zip(a.examples, b.examples))
    assert all(x.caption == y.caption and x.caption for x, y in zip(a.examples, b.examples))
    assert generated_training_set(17, seed=4, long_side=64).sha256 != a.sha256
    used = set(assign_buckets(a.examples, bucket_sizes(9)).tolist())
    assert used == set(range(9))
    dataset = BucketDataset(a, bucket_sizes(9, 16))
    pixels, caption = dataset[0]
    size = dataset.sizes[dataset.buckets[0]]
    assert pixels.shape == (3, size.height, size.width) and caption == a.examples[0].caption
    assert -1.0 <= float(pixels.min()) and float(pixels.max()) <= 1.0


def _arad_train_build(tmp_path, buckets=3):
    from datasets_build import build
    from datasets_build.sources.synthetic import write_release

    raw = tmp_path / "raw"
    write_release(raw, (Size(60, 80), Size(100, 50), Size(64, 64)), per_size=1, seed=0)
    return build("arad-train", tmp_path / "arad", raw, buckets=buckets)


def test_training_set_from_an_arad_train_build(tmp_path):
    from datasets_build.manifest import MANIFEST

    out = _arad_train_build(tmp_path)
    data = load_training_data(str(out))
    assert len(data) == 3
    assert data.sha256 == hashlib.sha256((out / MANIFEST).read_bytes()).hexdigest()
    # the build already cut each image to its bucket: Eq. 1 on the built images keeps them there
    sizes = bucket_sizes(3)
    assert sorted(sizes[i].name for i in assign_buckets(data.examples, sizes)) == ["512x512", "576x768", "768x576"]
    assert all((e.height, e.width) == e.load().size[::-1] for e in data.examples)
    with pytest.raises(TrainingError, match="neither a folder nor a data set name"):
        load_training_data("no-such-set", tmp_path)


# --------------------------------------------------------------------------- the batch sampler


def _buckets(n=53, k=5, seed=0):
    return np.random.default_rng(seed).integers(0, k, n)


@pytest.mark.parametrize("batch_size", [1, 4, 7])
def test_sampler_one_bucket_per_batch_and_every_item_once_per_epoch(batch_size):
    buckets = _buckets()
    sampler = BucketBatchSampler(buckets, batch_size, seed=1)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        for batch in batches:
            assert 1 <= len(batch) <= batch_size
            assert len({int(buckets[i]) for i in batch}) == 1, batch
        assert sorted(i for b in batches for i in b) == list(range(len(buckets)))
        # at most one short batch per bucket
        short = Counter(int(buckets[b[0]]) for b in batches if len(b) < batch_size)
        assert all(v <= 1 for v in short.values())
        epochs.append(batches)
    if batch_size > 1:
        assert epochs[0] != epochs[1] != epochs[2]  # reshuffled every epoch


def test_sampler_is_deterministic_by_seed():
    buckets = _buckets()

    def order(seed, epoch):
        s = BucketBatchSampler(buckets, 4, seed=seed)
        s.set_epoch(epoch)
        return list(s)

    assert order(5, 0) == order(5, 0) and order(5, 2) == order(5, 2)
    assert order(5, 0) != order(6, 0)
    # batches from different buckets are interleaved, not bucket after bucket
    firsts = [int(buckets[b[0]]) for b in order(5, 0)]
    assert firsts != sorted(firsts)


def test_sampler_drop_last_keeps_full_batches_only():
    buckets = _buckets()
    sampler = BucketBatchSampler(buckets, 4, seed=0, drop_last=True)
    batches = list(sampler)
    assert all(len(b) == 4 for b in batches)
    counts = Counter(buckets.tolist())
    assert len(batches) == sum(c // 4 for c in counts.values())


def test_sampler_state_resumes_mid_epoch():
    buckets = _buckets()
    full = BucketBatchSampler(buckets, 4, seed=2)
    full.set_epoch(1)
    expected = list(full)
    s = BucketBatchSampler(buckets, 4, seed=2)
    s.set_epoch(1, start=5)
    state = s.state_dict()
    fresh = BucketBatchSampler(buckets, 4, seed=2)
    fresh.load_state_dict(state)
    assert list(fresh) == expected[5:]
    with pytest.raises(TrainingError, match="seed"):
        BucketBatchSampler(buckets, 4, seed=3).load_state_dict(state)


def test_sampler_deals_batches_to_processes():
    buckets = _buckets()
    global_batches = BucketBatchSampler(buckets, 4, seed=0).global_batches(0)
    parts = [list(BucketBatchSampler(buckets, 4, seed=0, num_replicas=3, rank=r)) for r in range(3)]
    assert len({len(p) for p in parts}) == 1  # every process takes as many steps
    seen = [b for p in parts for b in p]
    assert all(b in global_batches for b in seen)
    assert sorted(i for b in global_batches for i in b) == sorted({i for b in seen for i in b})


def test_sampler_bad_input():
    with pytest.raises(TrainingError, match="batch size"):
        BucketBatchSampler([0, 1], 0)
    with pytest.raises(TrainingError, match="no batch"):
        BucketBatchSampler([0, 1], 4, drop_last=True)


# --------------------------------------------------------------------------- training


def test_training_lowers_the_loss_on_fixed_noise_and_timesteps():
    models, base_unet, result, *_ = trained_run()
    sizes = bucket_sizes(RUN_CONFIG.buckets, RUN_CONFIG.bucket_divisor)
    before = fixed_loss(models, run_data(), sizes, unet=base_unet)
    after = fixed_loss(models, run_data(), sizes, unet=result.unet)
    assert after < before - 0.03, (before, after)
    assert result.finished and result.steps == RUN_CONFIG.steps and len(result.losses) == RUN_CONFIG.steps


def test_only_lora_parameters_are_trained():
    models, base_unet, result, vae_state, text_state = trained_run()
    trained = result.unet.state_dict()
    base = base_unet.state_dict()
    lora_keys = [k for k in trained if "lora_" in k]
    assert lora_keys and all(".arad." in k for k in lora_keys)
    assert {p for n, p in result.unet.named_parameters() if p.requires_grad} == {
        p for n, p in result.unet.named_parameters() if "lora_" in n}
    # peft wraps each target Linear: its base weight is now "<module>.base_layer.weight"
    for key, value in trained.items():
        if "lora_" in key:
            continue
        original = key.replace(".base_layer.", ".")
        assert torch.equal(value, base[original]), key
    assert len([k for k in trained if "lora_" not in k]) == len(base)
    # the LoRA moved: lora_B started at zero
    assert any(float(v.abs().max()) > 0 for k, v in trained.items() if "lora_B" in k)
    for k, v in models.vae.state_dict().items():
        assert torch.equal(v, vae_state[k]), k
    for k, v in models.text_encoder.state_dict().items():
        assert torch.equal(v, text_state[k]), k


def test_resume_after_interruption_equals_an_uninterrupted_run():
    _, _, reference, *_ = trained_run()
    out = scratch() / "interrupted"
    models = tiny_models(0)
    # killed at step 13: the last checkpoint is step 8, so steps 9..13 are redone on resume
    stopped = train_arad(models, run_data(), out, RUN_CONFIG, stop_at=13, log=None)
    assert not stopped.finished and stopped.steps == 13 and stopped.path is None
    assert latest_checkpoint(out).name == "step-00000008"
    assert not (out / "arad_lora.json").exists()
    resumed = train_arad(tiny_models(0), run_data(), out, RUN_CONFIG, resume=True, log=None)
    assert resumed.finished and resumed.steps == RUN_CONFIG.steps
    assert resumed.losses == reference.losses
    a, b = reference.unet.state_dict(), resumed.unet.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    from safetensors.torch import load_file

    saved_a = load_file(str(reference.path / "pytorch_lora_weights.safetensors"))
    saved_b = load_file(str(resumed.path / "pytorch_lora_weights.safetensors"))
    assert saved_a.keys() == saved_b.keys() and all(torch.equal(saved_a[k], saved_b[k]) for k in saved_a)


def test_resume_refuses_a_checkpoint_of_other_settings():
    _, _, reference, *_ = trained_run()
    out = scratch() / "other"
    shutil.copytree(reference.path / "checkpoints", out / "checkpoints")
    other = dataclasses.replace(RUN_CONFIG, rank=8)
    with pytest.raises(TrainingError, match=r"config.rank: 4 -> 8"):
        train_arad(tiny_models(0), run_data(), out, other, resume=True, log=None)
    with pytest.raises(TrainingError, match="data_sha256"):
        train_arad(tiny_models(0), generated_training_set(8, seed=1, long_side=64), out, RUN_CONFIG,
                   resume=True, log=None)


def test_a_finished_run_can_be_extended_and_is_not_overwritten_by_accident():
    _, _, reference, *_ = trained_run()
    out = scratch() / "extend"
    shutil.copytree(reference.path / "checkpoints", out / "checkpoints")
    with pytest.raises(TrainingError, match="already holds a run"):
        train_arad(tiny_models(0), run_data(), out, RUN_CONFIG, log=None)
    longer = dataclasses.replace(RUN_CONFIG, steps=RUN_CONFIG.steps + 2)
    result = train_arad(tiny_models(0), run_data(), out, longer, resume=True, log=None)
    assert result.steps == RUN_CONFIG.steps + 2 and result.losses[: RUN_CONFIG.steps] == reference.losses


def test_metadata_records_base_rank_buckets_steps_and_data():
    models, base_unet, result, *_ = trained_run()
    meta = json.loads((result.path / "arad_lora.json").read_text())
    from baselines.lora import fingerprint

    assert meta["base"]["fingerprint"] == fingerprint(base_unet) and meta["base"]["name"] == "tiny-test"
    assert meta["lora"]["rank"] == 4 and meta["lora"]["alpha"] == 4
    assert meta["lora"]["target_modules"] == ["to_q", "to_k", "to_v", "to_out.0"]
    assert meta["training"]["bucket_sizes"] == [s.name for s in bucket_sizes(9, 16)]
    assert meta["training"]["steps_done"] == 24 and meta["training"]["learning_rate"] == 1e-2
    assert meta["data"]["sha256"] == run_data().sha256 and meta["data"]["count"] == 8
    assert json.loads((result.path / "losses.json").read_text()) == result.losses


def test_gradient_accumulation_and_bf16_mixed_precision():
    config = dataclasses.replace(RUN_CONFIG, steps=3, batch_size=2, gradient_accumulation=2, checkpoint_every=3,
                                 mixed_precision="bf16", learning_rate=1e-3)
    out = scratch() / "accumulate"
    result = train_arad(tiny_models(0), run_data(), out, config, log=None)
    assert result.finished and len(result.losses) == 3
    # 3 optimizer steps x 2 micro-batches = 6 batches drawn from the sampler
    state = json.loads((latest_checkpoint(out) / "state.json").read_text())
    per_epoch = len(BucketBatchSampler(BucketDataset(run_data(), bucket_sizes(9, 16)).buckets, 2, seed=0))
    assert state["sampler"]["epoch"] * per_epoch + state["sampler"]["start"] == 6
    dtypes = {n: p.dtype for n, p in result.unet.named_parameters()}
    assert {d for n, d in dtypes.items() if "lora_" in n} == {torch.float32}  # the LoRA trains in fp32
    assert {d for n, d in dtypes.items() if "lora_" not in n} == {torch.bfloat16}
    assert json.loads((out / "arad_lora.json").read_text())["training"]["effective_batch"] == 4


def test_only_the_newest_checkpoints_are_kept():
    config = dataclasses.replace(RUN_CONFIG, steps=3, checkpoint_every=1, keep_checkpoints=2)
    out = scratch() / "keep"
    train_arad(tiny_models(0), run_data(), out, config, log=None)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002", "step-00000003"]


def test_smallest_divisor_follows_the_model_factors():
    assert smallest_divisor(tiny_models(0)) == 16  # VAE x2, UNet x2


def test_sizes_the_model_cannot_take_are_refused():
    bad = dataclasses.replace(RUN_CONFIG, bucket_divisor=64)
    with pytest.raises(TrainingError, match="not multiples of 4"):
        train_arad(tiny_models(0), run_data(), scratch() / "bad", bad, log=None)


def test_cli_trains_and_resumes(monkeypatch, capsys):
    monkeypatch.setattr(cli, "load_models", lambda profile, device=None, sd21=None: tiny_models(0, name=profile))
    out = scratch() / "cli"
    args = ["--profile", "tiny", "--data", "generated:6", "--output", str(out), "--bucket-divisor", "auto",
            "--steps", "4", "--batch-size", "2", "--checkpoint-every", "2", "--lr", "1e-3"]
    assert cli.main(args + ["--stop-at", "2"]) == 0
    assert latest_checkpoint(out).name == "step-00000002" and not (out / "arad_lora.json").exists()
    assert cli.main(args + ["--resume"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "resumed from" in captured.err
    meta = json.loads((out / "arad_lora.json").read_text())
    assert meta["base"]["name"] == "tiny" and meta["training"]["steps_done"] == 4
    assert meta["training"]["bucket_divisor"] == 16
    assert cli.main(args[:-2] + ["--lr", "1e-2", "--resume"]) == 2  # other settings than the checkpoint
    assert "other settings" in capsys.readouterr().err


def test_cli_with_the_tiny_profile_of_baselines_models(capsys):
    models = pytest.importorskip("baselines.models")
    out = scratch() / "cli-tiny"
    assert cli.main(["--profile", "tiny", "--data", "generated:4", "--output", str(out), "--bucket-divisor", "auto",
                     "--steps", "2", "--batch-size", "2", "--checkpoint-every", "0"]) == 0
    meta = json.loads((out / "arad_lora.json").read_text())
    loaded = models.load_text_to_image("tiny", torch.device("cpu"))
    assert meta["base"]["name"] == loaded.name and meta["profile"] == "tiny"
    from baselines.lora import load_arad_lora

    load_arad_lora(loaded.unet, out, base_name=loaded.name)
    # what the methods call for the tiny profile: a cached LoRA, the caller's UNet untouched
    from baselines.arad import tiny_arad_lora

    fresh = models.load_text_to_image("tiny", torch.device("cpu"))
    path = tiny_arad_lora(fresh, scratch(), steps=2)
    assert not getattr(fresh.unet, "peft_config", None)
    from baselines.arad.train_models import smallest_divisor

    side = 512 // smallest_divisor(fresh)  # the first bucket, 512x512, divided as the UNet and VAE allow
    assert json.loads((path / "arad_lora.json").read_text())["training"]["bucket_sizes"][0] == f"{side}x{side}"
    load_arad_lora(fresh.unet, path, base_name=fresh.name)
    assert cli.main(["--profile", "nope", "--data", "generated:4", "--output", str(out)]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err


def test_cli_trains_on_a_build_and_warns_when_its_buckets_differ(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "load_models", lambda profile, device=None, sd21=None: tiny_models(0, name=profile))
    build = _arad_train_build(tmp_path, buckets=3)
    common = ["--data", str(build), "--bucket-divisor", "16", "--steps", "1", "--batch-size", "2",
              "--checkpoint-every", "0"]
    assert cli.main(common + ["--buckets", "3", "--output", str(tmp_path / "lora3")]) == 0
    assert "warning" not in capsys.readouterr().err
    meta = json.loads((tmp_path / "lora3" / "arad_lora.json").read_text())
    assert meta["data"]["source"] == str(build.absolute()) and meta["data"]["count"] == 3
    assert cli.main(common + ["--buckets", "9", "--output", str(tmp_path / "lora9")]) == 0
    assert "was built for sizes 512x512 576x768 768x576; training rebuckets" in capsys.readouterr().err
    assert cli.main(["--data", str(tmp_path / "nothing"), "--output", str(tmp_path / "x")]) == 2
    assert "error:" in capsys.readouterr().err
