"""The tiny metric networks' Inception-v3: a small seeded stand-in with the real network's interface, so that FID,
KID and IS on tiny runs cost little; seeded in every layer, so that a score is the same at every load."""

import torch

import benchmark.metrics as metrics


def _weights(seed: int) -> list:
    torch.rand(7)  # whatever the caller's generator has done
    return [p.detach().clone() for p in metrics.load_inception("tiny", seed=seed, device="cpu").parameters()]


def test_the_same_network_at_every_load_and_another_for_another_seed():
    first, again, other = _weights(0), _weights(0), _weights(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(not torch.equal(a, c) for a, c in zip(first, other, strict=True))  # biases too: every layer seeded


def test_it_has_the_real_networks_interface_and_tells_images_apart():
    net = metrics.load_inception("tiny", device="cpu")
    images = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 255
    features, logits = net(images)
    assert features.shape == (2, 2048) and logits.shape == (2, 1008)
    assert (features[0] - features[1]).abs().max() > 1e-3
    assert net.conventions["network"].startswith("tiny stand-in") and net.conventions["weights"] == "random (seed 0)"
