"""Which candidate goes to which target size: Eq. 1, seeded selection, borrowing.

Every choice is a pure function of the candidates' ids, sizes and the seed: ranks
and caption picks come from SHA-256 of ``"{seed}:{id}"`` rather than from a random
generator, so they do not depend on the order the source was read in, and adding,
removing or failing one candidate does not reshuffle the others.

Each size first takes its own candidates (those whose nearest size it is, Eq. 1) in
rank order. Where a size still has fewer than ``per_size``, it borrows the unused
candidates whose ratio is nearest to its own (ties by rank), sizes served in list
order; a borrowed image is centre-cropped to the size's ratio, the crop recorded.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from .sizes import Size, box_scale, cover_box, nearest


def rank_key(seed: int, sample_id: str) -> str:
    """The seeded sort key of a candidate."""
    return hashlib.sha256(f"{seed}:{sample_id}".encode()).hexdigest()


def caption_index(seed: int, sample_id: str, count: int) -> int:
    """Which of a sample's ``count`` captions is used."""
    return int(hashlib.sha256(f"{seed}:{sample_id}:caption".encode()).hexdigest(), 16) % count


def assign(candidates: pd.DataFrame, sizes: tuple[Size, ...]) -> pd.DataFrame:
    """Add each candidate's nearest size (``size_index``) and the upscale factor it needs there."""
    size_index = nearest((candidates["height"] / candidates["width"]).to_numpy(), sizes)
    scales = [_scale(w, h, sizes[k]) for w, h, k in zip(candidates["width"], candidates["height"], size_index)]
    return candidates.assign(size_index=size_index, native_scale=scales)


def select(
    candidates: pd.DataFrame,
    sizes: tuple[Size, ...],
    per_size: int | None,
    borrow: bool,
    seed: int,
    max_upscale: float | None = None,
) -> pd.DataFrame:
    """The plan: one row per chosen candidate with its size, crop box and how it got there.

    ``candidates`` needs ``id``, ``width``, ``height`` (after EXIF orientation) and the
    columns added by :func:`assign`; its other columns are carried along. The work is
    done on those four columns only, so memory stays small for large sources.
    ``per_size=None`` keeps every candidate.
    """
    slim = candidates[["id", "width", "height", "size_index"]]
    pool = slim.assign(rank=[rank_key(seed, i) for i in slim["id"]]).sort_values("rank", kind="stable")
    chosen = pool.groupby("size_index", sort=False).head(per_size) if per_size is not None else pool
    chosen = chosen.assign(assignment="nearest")
    if borrow and per_size is not None:
        pool = pool.drop(chosen.index)
        have = chosen["size_index"].value_counts()
        borrowed = []
        for k, size in enumerate(sizes):
            deficit = per_size - int(have.get(k, 0))
            if deficit <= 0 or pool.empty:
                continue
            eligible = pool.assign(distance=(pool["height"] / pool["width"] - size.ratio).abs())
            if max_upscale is not None:
                fits = [_scale(w, h, size) <= max_upscale for w, h in zip(eligible["width"], eligible["height"])]
                eligible = eligible[np.array(fits, dtype=bool)]
            picks = eligible.sort_values(["distance", "rank"], kind="stable").head(deficit)
            borrowed.append(picks[["size_index"]].assign(size_index=k, assignment="borrowed"))
            pool = pool.drop(picks.index)
        chosen = pd.concat([chosen[["size_index", "assignment"]], *borrowed])
    plan = candidates.drop(columns="size_index").loc[chosen.index].assign(
        size_index=chosen["size_index"], assignment=chosen["assignment"]
    )
    return _with_boxes(plan, sizes).sort_values(["size_index", "id"], kind="stable").reset_index(drop=True)


def _scale(width: int, height: int, size: Size) -> float:
    return box_scale(cover_box(width, height, size), size)


def _with_boxes(plan: pd.DataFrame, sizes: tuple[Size, ...]) -> pd.DataFrame:
    boxes = [cover_box(w, h, sizes[k]) for w, h, k in zip(plan["width"], plan["height"], plan["size_index"])]
    scales = [box_scale(b, sizes[k]) for b, k in zip(boxes, plan["size_index"])]
    return plan.assign(crop_box=boxes, scale=scales)
