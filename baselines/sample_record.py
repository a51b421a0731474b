"""What a sampler says of one sample: a typed record that the runner reads for its counts, sizes and crop.

Each stage reports its working size, its network calls and its tile evaluations (the figures the runner
averages into ``results.json`` and the guard holds exactly) as fields; whatever else a stage wants to say
(model, sampler, tiling, a method's own settings) goes in ``details`` and is written into the sample's
JSON as given. :meth:`SampleRecord.as_dict` is that JSON, in the layout runs have always had, and
:meth:`SampleRecord.from_dict` reads it back (a finished sample on resume, or a plugin's sampler that
returns the plain dict).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union


def _pair(value) -> Optional[tuple[int, int]]:
    return None if value is None else (int(value[0]), int(value[1]))


@dataclass(frozen=True)
class StageOne:
    """Stage I of a sample: text to image at ``size`` (px) in ``unet_calls`` UNet (or transformer) calls."""

    size: Optional[tuple[int, int]] = None
    unet_calls: int = 0
    tile_evaluations: int = 0
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        size = {"size": list(self.size)} if self.size else {}
        return {**self.details, **size, "unet_calls": self.unet_calls, "tile_evaluations": self.tile_evaluations}

    @classmethod
    def from_dict(cls, record: dict) -> "StageOne":
        rest = {k: v for k, v in record.items() if k not in ("size", "unet_calls", "tile_evaluations")}
        return cls(_pair(record.get("size")), record.get("unet_calls", 0), record.get("tile_evaluations", 0), rest)


@dataclass(frozen=True)
class StageTwo:
    """Stage II of a sample: super-resolution at ``size`` (px) in ``denoiser_calls`` calls, ``tiles_per_step``
    tiles a step (None where it does not tile)."""

    size: Optional[tuple[int, int]] = None
    denoiser_calls: int = 0
    tile_evaluations: int = 0
    tiles_per_step: Optional[int] = None
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        record = {**self.details, "denoiser_calls": self.denoiser_calls, "tile_evaluations": self.tile_evaluations}
        if self.size:
            record["size"] = list(self.size)
        if self.tiles_per_step is not None:
            record["tile_plan"] = {**record.get("tile_plan", {}), "tiles_per_step": self.tiles_per_step}
        return record

    @classmethod
    def from_dict(cls, record: dict) -> "StageTwo":
        rest = {k: v for k, v in record.items() if k not in ("size", "denoiser_calls", "tile_evaluations")}
        plan = dict(record.get("tile_plan") or {})
        tiles_per_step = plan.pop("tiles_per_step", None)
        if "tile_plan" in rest:
            rest["tile_plan"] = plan
        return cls(_pair(record.get("size")), record.get("denoiser_calls", 0), record.get("tile_evaluations", 0),
                   tiles_per_step, rest)


@dataclass(frozen=True)
class Crop:
    """How the working image became the exact size: cut at ``top_left`` from ``working_size`` (px)."""

    working_size: tuple[int, int]
    top_left: tuple[int, int] = (0, 0)

    def cropped(self, size: tuple[int, int]) -> bool:
        return tuple(self.working_size) != tuple(size)


@dataclass(frozen=True)
class SampleRecord:
    """One sample as its sampler made it: the exact ``size``, its stages (None: a stage it has not), how it was
    cropped, and ``extra``: anything else for the sample's JSON."""

    size: tuple[int, int]
    stage1: Optional[StageOne] = None
    stage2: Optional[StageTwo] = None
    crop: Optional[Crop] = None
    extra: dict = field(default_factory=dict)

    @property
    def cropped(self) -> Optional[bool]:
        return self.crop.cropped(self.size) if self.crop else None

    def as_dict(self) -> dict:
        record = {**self.extra, "size": list(self.size)}
        if self.stage1:
            record["stage1"] = self.stage1.as_dict()
        if self.stage2:
            record["stage2"] = self.stage2.as_dict()
        if self.crop:
            record["output"] = {"working_size": list(self.crop.working_size), "cropped": self.cropped,
                                "crop_top_left": list(self.crop.top_left)}
        return record

    @classmethod
    def from_dict(cls, record: dict) -> "SampleRecord":
        output = record.get("output")
        crop = Crop(_pair(output["working_size"]), _pair(output.get("crop_top_left", (0, 0)))) if output else None
        extra = {k: v for k, v in record.items() if k not in ("size", "stage1", "stage2", "output")}
        return cls(_pair(record["size"]), StageOne.from_dict(record["stage1"]) if record.get("stage1") else None,
                   StageTwo.from_dict(record["stage2"]) if record.get("stage2") else None, crop, extra)


def sample_record(record: Union[SampleRecord, dict], size: tuple[int, int]) -> SampleRecord:
    """A sampler's record as typed: a :class:`SampleRecord` as it is, a plugin's plain dict read by its layout."""
    if isinstance(record, SampleRecord):
        return record
    if not isinstance(record, dict):
        raise TypeError(f"a sampler returns (image, record) with a SampleRecord or a dict as the record, "
                        f"not {type(record).__name__}")
    return SampleRecord.from_dict({"size": list(size), **record})
