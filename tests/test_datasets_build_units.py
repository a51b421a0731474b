"""datasets_build building blocks: sizes and Eq. 1, image normalisation, selection, split lists."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from datasets_build import images, selection
from datasets_build.errors import DecodeError, LayoutError
from datasets_build.sizes import ARAD_BUCKETS, MA_SIZES, Size, arad_buckets, box_scale, cover_box, nearest
from datasets_build.sources.celeba import read_split
from datasets_fixtures import encode, jpeg, odd_images, shape_for, truncated_jpeg


# --- sizes -----------------------------------------------------------------------------


def test_the_21_sizes_follow_the_spec():
    assert len(MA_SIZES) == len(set(MA_SIZES)) == 21
    assert MA_SIZES[0] == Size(256, 1024) and MA_SIZES[10] == Size(1024, 1024) and MA_SIZES[-1] == Size(1024, 256)
    assert all(max(s.height, s.width) == 1024 and s.height % 64 == 0 and s.width % 64 == 0 for s in MA_SIZES)
    ratios = [s.ratio for s in MA_SIZES]
    assert ratios == sorted(ratios)
    assert MA_SIZES[:10] == tuple(Size(s.width, s.height) for s in MA_SIZES[:-11:-1])  # symmetric


def test_arad_buckets_are_table_5_and_its_prefixes():
    assert [s.name for s in ARAD_BUCKETS] == [
        "512x512", "576x768", "768x576", "576x1024", "1024x576", "640x1024", "1024x640", "512x1024", "1024x512"
    ]
    assert arad_buckets(3) == ARAD_BUCKETS[:3] and arad_buckets(5) == ARAD_BUCKETS[:5]
    with pytest.raises(ValueError):
        arad_buckets(4)


def test_nearest_is_eq_1_with_ties_to_the_first_listed():
    sizes = (Size(512, 1024), Size(1024, 1024), Size(1024, 512))  # ratios 0.5, 1, 2
    assert list(nearest(np.array([0.1, 0.74, 0.76, 1.49, 1.51, 9.0]), sizes)) == [0, 0, 1, 1, 2, 2]
    assert list(nearest(np.array([0.75]), sizes)) == [0]  # exactly between: first listed
    # each of the 21 ratios maps to itself
    assert list(nearest(np.array([s.ratio for s in MA_SIZES]), MA_SIZES)) == list(range(21))


@pytest.mark.parametrize(
    "width, height, size, box",
    [
        (640, 480, Size(1024, 1024), (80, 0, 560, 480)),  # wide image into a square: cut the sides
        (480, 640, Size(1024, 1024), (0, 80, 480, 560)),  # tall image into a square: cut top and bottom
        (1024, 256, Size(256, 1024), (0, 0, 1024, 256)),  # exact ratio: nothing cut
        (100, 100, Size(256, 1024), (0, 37, 100, 62)),  # 25 rows; the odd pixel of margin goes to the bottom
    ],
)
def test_cover_box_is_a_centred_crop_with_the_target_ratio(width, height, size, box):
    assert cover_box(width, height, size) == box


def test_box_scale_says_how_much_is_enlarged():
    assert box_scale((80, 0, 560, 480), Size(1024, 1024)) == pytest.approx(1024 / 480)
    assert box_scale((0, 0, 2048, 1024), Size(512, 1024)) == pytest.approx(0.5)


# --- images --------------------------------------------------------------------------


def _decode(data: bytes) -> Image.Image:
    return images.decode_rgb(io.BytesIO(data))


def test_every_odd_mode_becomes_rgb_with_the_header_size():
    odd = odd_images(lambda k: shape_for(MA_SIZES[k]))
    for name, (data, _) in odd.items():
        header = images.read_header(io.BytesIO(data))
        img = _decode(data)
        assert img.mode == "RGB", name
        assert img.size == (header.width, header.height), name
    assert images.read_header(io.BytesIO(odd["cmyk"][0])).mode == "CMYK"
    assert images.read_header(io.BytesIO(odd["sixteen"][0])).mode == "I;16"


def test_exif_orientation_swaps_the_size_and_is_applied():
    data = odd_images(lambda k: shape_for(MA_SIZES[k]))["exif6"][0]
    header = images.read_header(io.BytesIO(data))
    assert header.orientation == 6
    assert (header.raw_width, header.raw_height) == (66, 96)
    assert (header.width, header.height) == (96, 66)
    assert _decode(data).size == (96, 66)


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (4, 2), (255, 0, 0, 0))
    rgba.putpixel((3, 0), (0, 0, 255, 255))
    rgba.putpixel((2, 0), (0, 0, 0, 128))
    out = images.to_rgb(rgba)
    assert out.getpixel((0, 0)) == (255, 255, 255)  # transparent red is white, not red or black
    assert out.getpixel((3, 0)) == (0, 0, 255)
    assert out.getpixel((2, 0)) == (127, 127, 127)  # half black over white
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 255, 0, 10, 20, 30])
    palette.putpixel((1, 0), 1)
    out = images.to_rgb(Image.open(io.BytesIO(encode(palette, "PNG", transparency=0))))
    assert out.getpixel((0, 0)) == (255, 255, 255) and out.getpixel((1, 0)) == (10, 20, 30)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    img = Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.uint16))
    assert [images.to_rgb(img).getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


def test_broken_files_raise_decode_error():
    with pytest.raises(DecodeError) as err:
        images.read_header(io.BytesIO(b"not an image" * 10))
    assert err.value.reason == "corrupt"
    data = truncated_jpeg(64, 48)
    assert images.read_header(io.BytesIO(data)).width == 64  # the header survives...
    with pytest.raises(DecodeError, match="truncated"):
        _decode(data)  # ...the pixels do not
    with pytest.raises(DecodeError) as err:
        images.read_header(io.BytesIO(encode(Image.new("F", (4, 4)), "TIFF")))
    assert err.value.reason == "unsupported_mode"


def test_fit_crops_the_box_and_reaches_the_target(tmp_path):
    img = _decode(jpeg(640, 480))
    out = images.fit(img, Size(256, 1024), cover_box(640, 480, Size(256, 1024)))
    assert out.size == (1024, 256)
    assert images.downscale(out, 4).size == (256, 64)
    path = tmp_path / "a" / "x.png"
    images.save_png_atomic(out, path)
    assert Image.open(path).size == (1024, 256)
    assert os.listdir(path.parent) == ["x.png"]  # no temp file left


# --- selection -----------------------------------------------------------------------


def _candidates(shapes: list[tuple[int, int]]) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"c{i}" for i in range(len(shapes))], "width": [w for w, _ in shapes], "height": [h for _, h in shapes]})


SIZES3 = (Size(512, 1024), Size(1024, 1024), Size(1024, 512))


def test_selection_takes_own_candidates_by_seeded_rank_and_is_order_free():
    cands = selection.assign(_candidates([(100, 100)] * 6 + [(200, 100)] * 3), SIZES3)
    plan = selection.select(cands, SIZES3, per_size=2, borrow=False, seed=0)
    assert plan.groupby("size_index").size().to_dict() == {0: 2, 1: 2}
    ranks = sorted(cands[cands.size_index == 1]["id"], key=lambda i: selection.rank_key(0, i))
    assert sorted(plan[plan.size_index == 1]["id"]) == sorted(ranks[:2])
    shuffled = selection.select(cands.sample(frac=1, random_state=3), SIZES3, per_size=2, borrow=False, seed=0)
    pd.testing.assert_frame_equal(plan, shuffled)
    other_seed = selection.select(cands, SIZES3, per_size=2, borrow=False, seed=1)
    assert set(other_seed.id) != set(plan.id)


def test_short_sizes_borrow_the_nearest_ratio_and_record_the_crop():
    # four squares, one 0.6 image; nothing tall
    cands = selection.assign(_candidates([(100, 100)] * 4 + [(100, 60)]), SIZES3)
    plan = selection.select(cands, SIZES3, per_size=2, borrow=True, seed=0)
    assert plan.groupby("size_index").size().to_dict() == {0: 2, 1: 2, 2: 1}
    borrowed = plan[plan.assignment == "borrowed"]
    assert len(borrowed) == 2
    # the 512x1024 size borrowed a square (nearest spare ratio), cropped to 2:1
    row = borrowed[borrowed.size_index == 0].iloc[0]
    assert (row.width, row.height) == (100, 100) and tuple(row.crop_box) == (0, 25, 100, 75)
    assert row.scale == pytest.approx(1024 / 100)
    # a per-size limit of None keeps everything, unborrowed
    assert len(selection.select(cands, SIZES3, None, borrow=True, seed=0)) == 5


def test_borrowing_respects_the_upscale_limit():
    cands = selection.assign(_candidates([(2048, 2048), (2048, 2048), (300, 300)]), SIZES3)
    plan = selection.select(cands, SIZES3, per_size=1, borrow=True, seed=0, max_upscale=2.0)
    assert set(plan[plan.assignment == "borrowed"]["width"]) <= {2048}


def test_caption_choice_is_seeded_and_in_range():
    picks = {selection.caption_index(seed, "123", 10) for seed in range(50)}
    assert picks <= set(range(10)) and len(picks) > 3
    assert selection.caption_index(7, "123", 10) == selection.caption_index(7, "123", 10)


# --- split lists ---------------------------------------------------------------------


def test_split_lists_in_every_accepted_form(tmp_path):
    forms = {
        "a.pickle": pickle.dumps(["0", "12", "image/7.jpg"], protocol=2),
        "b.pickle": pickle.dumps([b"0", 12, "7.txt"], protocol=2),
        # what Python 2's pickle.dumps(['0', 12, '7.txt'], 2) writes (AttnGAN-era lists)
        "py2.pickle": b"\x80\x02]q\x00(U\x010q\x01K\x0cU\x057.txtq\x02e.",
        "c.txt": b"0\n12\n\n7.jpg\n",
    }
    for name, data in forms.items():
        (tmp_path / name).write_bytes(data)
        assert read_split(tmp_path / name) == ["0", "12", "7"], name


def test_split_list_pickles_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (tmp_path / "evil.pickle").write_bytes(pickle.dumps([Evil()]))
    with pytest.raises(LayoutError, match="refusing"):
        read_split(tmp_path / "evil.pickle")
    (tmp_path / "dict.pickle").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(LayoutError, match="not a list"):
        read_split(tmp_path / "dict.pickle")
