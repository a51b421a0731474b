"""The typed sample record: its JSON is the layout runs have always had, and reads back to the same record."""

import pytest

from baselines.sample_record import Crop, SampleRecord, StageOne, StageTwo, sample_record

RECORD = SampleRecord((200, 700), StageOne((256, 768), 8, 16, {"model": "SD 2.1", "tiling": {"tile": 64}}),
                      StageTwo((200, 704), 12, 48, 4, {"backbone": "x4", "tile_plan": {"tile": 32, "tile_px": 128}}),
                      Crop((200, 704), (0, 2)), {"prompt": "a kite"})


def test_a_record_reads_back_from_its_json_unchanged():
    assert SampleRecord.from_dict(RECORD.as_dict()) == RECORD


def test_the_json_keeps_the_layout_the_tables_and_the_seam_score_read():
    record = RECORD.as_dict()
    assert record["stage1"]["unet_calls"] == 8 and record["stage1"]["size"] == [256, 768]
    assert record["stage1"]["model"] == "SD 2.1" and record["stage1"]["tiling"] == {"tile": 64}
    assert record["stage2"]["tile_plan"] == {"tile": 32, "tile_px": 128, "tiles_per_step": 4}
    assert record["stage2"]["denoiser_calls"] == 12 and record["stage2"]["tile_evaluations"] == 48
    assert record["output"] == {"working_size": [200, 704], "cropped": True, "crop_top_left": [0, 2]}
    assert record["prompt"] == "a kite" and record["size"] == [200, 700]


def test_a_plugins_plain_dict_is_read_by_its_layout_and_absent_stages_stay_absent():
    typed = sample_record({"stage1": {"unet_calls": 3, "size": [64, 64]}, "painted": "noise"}, (64, 64))
    assert typed.stage1 == StageOne((64, 64), 3, 0, {}) and typed.stage2 is None and typed.cropped is None
    assert typed.extra == {"painted": "noise"} and "stage2" not in typed.as_dict()
    assert sample_record(RECORD, (1, 1)) is RECORD


def test_a_record_of_another_type_is_refused_naming_what_a_sampler_returns():
    with pytest.raises(TypeError, match="SampleRecord or a dict"):
        sample_record(["stage1"], (64, 64))
