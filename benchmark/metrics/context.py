"""What a metric function reads: :class:`ScoringContext`, one per scoring of a run.

The shared, costly pieces (the Inception network and its outputs of the run's images,
CLIP scores, the reference set and its statistics, the crop pass of the patch scores,
the fidelity report) are computed at most once, on first use, and kept here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from baselines.models import asd_cache_dir
from benchmark import metrics
from benchmark.metrics.bootstrap import crops_of
from benchmark.metrics.registry import SUPER_RESOLUTION, TEXT_TO_IMAGE, NotApplicable
from benchmark.runs.records import recorded_inputs
from benchmark.runs.shard import Shard
from datasets_build import iter_items
from datasets_build.manifest import MANIFEST

RANDOM_NOTE = "random weights: not image quality"


@dataclass
class ScoringContext:
    """A finished run being scored: its files and records, and lazily computed shared pieces."""

    out: Path
    results: dict
    rows: list  # the per_image rows of finished images (status ok), in sample order
    images: list  # their image paths
    records: list  # their sample records (samples/<index>.json)
    profile: str  # metrics profile: "paper" or "tiny"
    device: Optional[torch.device]
    patch_protocol: "metrics.PatchProtocol"
    random_weights: bool
    task: str  # TEXT_TO_IMAGE or SUPER_RESOLUTION
    unmade: str = ""  # why samples have no image, e.g. "1 ran out of memory, 2 failed"
    shard: Shard = field(default_factory=Shard)
    generated: Optional["metrics.InceptionOutputs"] = None  # set by the collective prelude of score()
    clip_values: Optional[np.ndarray] = None  # CLIP score per image (text-to-image runs), set by the prelude
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def text_to_image(self) -> bool:
        return self.task == TEXT_TO_IMAGE

    @property
    def super_resolution(self) -> bool:
        return self.task == SUPER_RESOLUTION

    def cached(self, key: str, make):
        """``make()`` computed once per scoring under ``key`` (an exception is cached and raised again)."""
        if key not in self._cache:
            try:
                self._cache[key] = (True, make())
            except Exception as error:
                self._cache[key] = (False, error)
        ok, value = self._cache[key]
        if not ok:
            raise value
        return value

    def convention(self, library, mode, model, pretrained, nets_random: Optional[bool] = None, **extra) -> dict:
        """The conventions of a metric: library, mode, network and weights, whether they are random (with the
        note that says so), and ``extra``. ``nets_random`` defaults to the run's metrics profile."""
        nets_random = self.random_weights if nets_random is None else nets_random
        return {"library": library, "mode": mode, "model": model, "pretrained": pretrained,
                "random_weights": nets_random, **extra, **({"note": RANDOM_NOTE} if nets_random else {})}

    # -- networks ---------------------------------------------------------------------------------------

    @cached_property
    def inception(self):
        return metrics.load_inception(self.profile, device=self.device)

    @property
    def inception_conventions(self) -> dict:
        """``model`` and ``pretrained`` of the Inception network, for :meth:`convention`."""
        return dict(model=self.inception.conventions["network"], pretrained=self.inception.conventions["weights"])

    @cached_property
    def clip(self):
        return metrics.load_clip(self.profile, device=self.device)

    @cached_property
    def lpips(self):
        return metrics.load_lpips(self.profile, device=self.device)

    # -- collective pieces (every process of a sharded run) ------------------------------------------------
    # score() calls these on every process before the metrics run (on rank 0 only): a metric reads
    # ``generated`` / ``clip_values`` and never calls them (under accelerate the other ranks would not join).

    def compute_generated(self):
        """One Inception pass over the images: each process its share, gathered in image order."""
        images, shard = self.images, self.shard
        if not shard.sharded:
            self.generated = metrics.inception_outputs(images, self.inception)
            return self.generated
        mine = shard.mine(range(len(images)))
        part = metrics.inception_outputs([images[p] for p in mine], self.inception) if mine else None
        features = shard.gather_rows(len(images), None if part is None else part.features)
        logits = shard.gather_rows(len(images), None if part is None else part.logits)
        self.generated = metrics.InceptionOutputs(features, logits,
                                                  shard.share(None if part is None else part.conventions))
        return self.generated

    def compute_clip_values(self):
        """CLIP score of each image with its prompt: each process its share, gathered in image order."""
        images, shard = self.images, self.shard
        prompts = [record["prompt"] for record in self.records]
        mine = shard.mine(range(len(images)))
        part = metrics.clip_scores([images[p] for p in mine], [prompts[p] for p in mine], self.clip) if mine else None
        self.clip_values = shard.gather_rows(len(images), part)
        return self.clip_values

    # -- references -------------------------------------------------------------------------------------

    @cached_property
    def references(self) -> Union[tuple, str]:
        """(set name, items) of the run's reference images, or why there are none."""
        dataset = self.results.get("dataset")
        if not dataset:
            replaced = recorded_inputs(self.results).get("replaced")
            return f"no reference images ({replaced or 'no data set'})"
        folder = Path(dataset["folder"])
        if not (folder / MANIFEST).is_file():
            return f"the data set folder {folder} is gone"
        if metrics.manifest_hash([], folder / MANIFEST) != dataset["manifest_hash"]:
            return f"the data set in {folder} was rebuilt since the run (manifest hash differs)"
        return dataset["name"], list(iter_items(folder))

    @property
    def references_reason(self) -> Optional[str]:
        """Why metrics against the references cannot be computed (none, or fewer than 2 images); None: they can."""
        if isinstance(self.references, str):
            return self.references
        if len(self.images) < 2:
            return (f"needs at least 2 images, the run has {len(self.images)}"
                    + (f" ({self.unmade})" if self.unmade else ""))
        return None

    def require_references(self) -> tuple:
        """(set name, items), or NotApplicable with :attr:`references_reason`."""
        reason = self.references_reason
        if reason:
            raise NotApplicable(reason)
        return self.references

    @property
    def reference_folder(self) -> Path:
        return Path(self.results["dataset"]["folder"])

    def stats(self, key: str, items, protocol: Optional["metrics.PatchProtocol"] = None, mode: str = "clean"):
        """Reference statistics and features of ``items`` (of crops under ``protocol``, resized as clean-fid's
        ``mode`` does), cached here and under asd_cache_dir() by manifest hash, extractor, mode and protocol."""
        folder = self.reference_folder
        crops = protocol.label if protocol is not None else "whole"
        return self.cached(f"stats:{key}:{crops}:{mode}", lambda: metrics.reference_stats(
            [item.image for item in items], key, asd_cache_dir() / "fid-stats", self.inception,
            manifest=folder / MANIFEST, protocol=protocol, mode=mode))

    @property
    def reference_stats(self):
        """Statistics of the whole reference set (pooled FID / KID)."""
        name, items = self.require_references()
        return self.stats(name, items)

    # -- shared computations of several metrics -----------------------------------------------------------

    def per_ratio(self) -> tuple[dict, list]:
        """FID and KID per output size with at least two generated and two reference images; the sizes left out."""
        return self.cached("per_ratio", self._per_ratio)

    def _per_ratio(self):
        name, items = self.require_references()
        generated = self.generated
        by_size = defaultdict(list)
        for position, row in enumerate(self.rows):
            by_size[tuple(row["size"])].append(position)
        figures, too_few = {"fid": {}, "kid": {}}, []
        for (height, width), positions in sorted(by_size.items()):
            label = f"{height}x{width}"
            refs = [item for item in items if (item.height, item.width) == (height, width)]
            if len(positions) < 2 or len(refs) < 2:
                too_few.append(f"{label} ({len(positions)} generated, {len(refs)} reference)")
                continue
            subset = metrics.InceptionOutputs(generated.features[positions], generated.logits[positions],
                                              generated.conventions)
            stats = self.stats(f"{name}-{label}", refs)
            figures["fid"][label] = metrics.fid_score(subset, stats)["value"]
            figures["kid"][label] = metrics.kid_score(subset, stats)["value"]
        return figures, too_few

    def patch_scores(self) -> dict[str, Any]:
        """fid / kid dicts of the crops ``patch_protocol`` cuts from generated and reference images at native
        resolution (one crop pass for both patch scores), with what they record; NotApplicable where either
        side has fewer than two crops."""
        return self.cached("patch_scores", self._patch_scores)

    def _patch_scores(self):
        name, items = self.require_references()
        protocol = self.patch_protocol
        generated_crops = metrics.crop_summary([tuple(row["size"]) for row in self.rows], protocol)
        reference_crops = metrics.crop_summary([(item.height, item.width) for item in items], protocol)
        if generated_crops["crops"] < 2 or reference_crops["crops"] < 2:
            raise NotApplicable(
                f"not applicable: images smaller than the {protocol.crop}-px crop give no crop, and {protocol.label} "
                f"gives {generated_crops['crops']} generated and {reference_crops['crops']} reference crops (2 each "
                f"needed; generated sizes {', '.join(generated_crops['resolution'])})")
        stats = self.stats(f"{name}-patches", items, protocol)
        generated = metrics.patch_outputs(self.images, self.inception, protocol)
        counts = [len(protocol.boxes(*row["size"], position)) for position, row in enumerate(self.rows)]
        return {"fid": metrics.fid_score(generated, stats), "kid": metrics.kid_score(generated, stats),
                "features": generated.features, "stats": stats, "crops_of": crops_of(counts),
                "recorded": dict(crops=protocol.as_dict(), generated_crops=generated_crops,
                                 reference_crops=reference_crops)}

    def fidelity(self) -> dict:
        """PSNR / SSIM (Y) and LPIPS of each output against its HR image (super-resolution runs), per image
        and mean: :func:`benchmark.metrics.fidelity`'s report."""
        def make():
            high = [self.out / "samples" / f"{row['index']:05d}.hr.png" for row in self.rows]
            return metrics.fidelity(high, self.images, self.lpips)
        return self.cached("fidelity", make)
