"""Weight-free metrics: Diffusion-4K's GLCM score and compression ratio, and our repetition score.

The GLCM score is held to scikit-image's own calls as Diffusion-4K's eval.py makes them; the
repetition score to constructed images whose count of copies is known.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from skimage.feature import graycomatrix
from skimage.measure import shannon_entropy

from benchmark.metrics.detail import (ANGLES, DISTANCES, glcm_entropies, glcm_image_score, grey64,
                                      stored_as_released, value_entropy)
from benchmark.metrics.repetition import repetition_score

NATIVE = 512


def scene(side: int, seed: int, shapes: int = 40) -> Image.Image:
    """A picture without repeats: random ellipses and rectangles of random colours on a plain ground."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(shapes):
        x, y = rng.integers(0, side, 2)
        w, h = rng.integers(side // 20, side // 4, 2)
        fill = tuple(int(v) for v in rng.integers(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([int(x), int(y), int(x + w), int(y + h)], fill=fill)
    return image


def tiled(side: int, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """``rows`` x ``cols`` copies of one scene filling a ``side``-high image (each copy as square as the grid)."""
    copy = scene(side, seed).resize((side // rows, side // rows), Image.Resampling.LANCZOS)
    out = Image.new("RGB", (cols * (side // rows), side))
    for i in range(rows):
        for j in range(cols):
            out.paste(copy, (j * (side // rows), i * (side // rows)))
    return np.asarray(out)


# -- GLCM score ---------------------------------------------------------------------------------------

def test_value_entropy_is_scikit_images_shannon_entropy():
    rng = np.random.default_rng(0)
    for matrix in (rng.integers(0, 5, (8, 8, 2, 2)) / 7.0, np.zeros((4, 4)), np.ones((3, 3)), rng.random((16, 16))):
        assert value_entropy(matrix) == pytest.approx(shannon_entropy(matrix), abs=1e-12)


def test_patch_entropies_are_the_releases_per_patch_calls():
    """Noise, a flat patch, a narrow range and a ramp: each patch as eval.py scores it."""
    rng = np.random.default_rng(1)
    grey = np.concatenate([rng.integers(0, 64, (64, 128)), np.full((64, 128), 7), rng.integers(30, 34, (64, 128)),
                           np.repeat(np.arange(0, 128) // 2, 64).reshape(128, 64).T], axis=0).astype(np.uint8)
    expected = [shannon_entropy(graycomatrix(grey[i * 64:(i + 1) * 64, j * 64:(j + 1) * 64], list(DISTANCES),
                                             list(ANGLES), levels=64, normed=True))
                for i in range(4) for j in range(2)]
    np.testing.assert_allclose(glcm_entropies(grey), expected, atol=1e-12)


def test_grey_is_opencvs_fixed_point_bt601_at_64_levels():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [10, 200, 90]]], dtype=np.uint8)
    reference = np.floor(rgb.astype(float) @ [0.299, 0.587, 0.114] + 0.5) // 4
    np.testing.assert_array_equal(grey64(rgb), reference.astype(np.uint8))


def test_richer_texture_scores_higher_and_compresses_less():
    rng = np.random.default_rng(2)
    flat = np.full((256, 256, 3), 120, np.uint8)
    smooth = np.asarray(scene(256, 3))
    noisy = rng.integers(0, 256, (256, 256, 3)).astype(np.uint8)
    scores = [glcm_image_score(stored_as_released(image)[0]) for image in (flat, smooth, noisy)]
    assert scores[0] < scores[1] < scores[2]
    ratios = [image.size / stored_as_released(image)[1] for image in (flat, smooth, noisy)]
    assert ratios[0] > ratios[1] > ratios[2]


def test_leftover_pixels_are_not_scored_and_too_small_an_image_is_refused():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (130, 200, 3)).astype(np.uint8)
    assert glcm_image_score(image) == glcm_image_score(image[:128, :192])
    with pytest.raises(ValueError, match="64x64 patch"):
        glcm_image_score(image[:60])


# -- repetition ---------------------------------------------------------------------------------------

def test_repetition_rises_strictly_with_the_number_of_copies():
    """k = 1, 2, 4, 9 copies of one scene: 0, then about k - 1 (far peaks below the threshold aside)."""
    scores = [repetition_score(tiled(1024, rows, cols), NATIVE) for rows, cols in ((1, 1), (1, 2), (2, 2), (3, 3))]
    assert scores[0] < scores[1] < scores[2] < scores[3]
    assert scores[0] < 0.1
    assert scores[1] == pytest.approx(1, abs=0.15) and scores[2] == pytest.approx(3, abs=0.4)


def test_copies_of_an_object_on_a_plain_ground_count_too():
    sprite = scene(160, 5, shapes=12)
    scores = []
    for count in (1, 2, 4):
        canvas = Image.new("RGB", (1024, 1024), (90, 90, 90))
        for k in range(count):
            canvas.paste(sprite, (60 + 460 * (k % 2), 60 + 460 * (k // 2)))
        scores.append(repetition_score(np.asarray(canvas), NATIVE))
    assert scores[0] < 0.1 < scores[1] < scores[2]


@pytest.mark.parametrize("factor", [2, 4])
def test_an_upscale_is_not_a_repetition(factor):
    once = scene(512, 0)
    upscaled = np.asarray(once.resize((512 * factor, 512 * factor), Image.Resampling.BICUBIC))
    assert repetition_score(upscaled, NATIVE) < 0.1 < repetition_score(tiled(512 * factor, 1, 2), NATIVE)


def test_flat_texture_and_a_plain_background_are_not_repetitions():
    rng = np.random.default_rng(4)
    noise = rng.integers(0, 256, (1024, 1024, 3)).astype(np.uint8)
    checker = np.repeat(((np.indices((1024, 1024)).sum(0) // 2) % 2 * 255).astype(np.uint8)[..., None], 3, axis=2)
    plain = np.full((1024, 1024, 3), 128, np.uint8)
    for image in (noise, checker, plain):
        assert repetition_score(image, NATIVE) < 0.1
    for seed in range(10, 14):
        assert repetition_score(np.asarray(scene(1024, seed)), NATIVE) < 0.1


def test_the_native_scale_decides_what_a_copy_is():
    """Nine copies of a scene, each a sixth of SDXL's native side, are texture at SDXL's scale but repeats at a
    scale six times smaller (the analysis follows the base model)."""
    image = tiled(512, 3, 3)
    assert repetition_score(image, 170) > repetition_score(image, 4096)
