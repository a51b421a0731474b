"""Command line: ``python -m datasets_build NAME --source DIR --out DIR [options]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .builder import BUILD_INFO, build
from .errors import DatasetError
from .sets import SETS

_EPILOG = """\
examples:
  python -m datasets_build ma-coco --source coco/ --out data/ma-coco
  python -m datasets_build ma-laion-coco --source laion-coco-img2dataset/ --out data/ma-laion-coco
  python -m datasets_build mm-celeba-hq --source Multi-Modal-CelebA-HQ/ --source2 CelebAMask-HQ/ --out data/mm-celeba-hq --limit 2824
  python -m datasets_build arad-train --source laion-aesthetics-img2dataset/ --buckets 9 --out data/arad-train
  python -m datasets_build synthetic --out data/synthetic --per-ratio 1

Exit status: 0 when built, 2 for a usage or layout error (the message says what
was expected where). An interrupted build resumes when the same command is run
again. The output folder holds images/, manifest.parquet, metadata.parquet and
build_info.json (counts, and why each skipped sample was skipped); load it with
datasets.load_dataset(OUT) or datasets_build.iter_items(OUT). See docs/datasets.md.
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m datasets_build",
        description="Build an ASD benchmark data set from its raw release, reproducibly and resumably.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sets = "\n".join(f"  {s.name}: {s.summary}" for s in SETS.values())
    p.add_argument("name", choices=list(SETS), metavar="NAME", help=f"data set to build, one of: {', '.join(SETS)}")
    p.add_argument("--source", type=Path, metavar="DIR", help="the raw release (see docs/datasets.md); not for synthetic")
    p.add_argument("--source2", type=Path, metavar="DIR",
                   help="second folder: CelebAMask-HQ for mm-celeba-hq, the image folder for ma-coco (optional)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (new, empty, or a partial build to resume)")
    p.add_argument("--per-ratio", type=int, metavar="N",
                   help="items per size (defaults: ma-coco 100, ma-laion-coco 1000, synthetic 1, arad-train all)")
    p.add_argument("--limit", type=int, metavar="N",
                   help="read only the first N samples of the source (for mm-celeba-hq: of the test list)")
    p.add_argument("--seed", type=int, default=0, help="seed of the selection and caption choice (default 0)")
    p.add_argument("--buckets", type=int, choices=(3, 5, 9), help="arad-train: the first 3, 5 or 9 ARAD buckets (default 9)")
    p.add_argument("--max-upscale", type=float, metavar="F",
                   help="skip images that must be enlarged more than F times (default: upscale as needed; "
                        "mm-celeba-hq never upscales)")
    p.description += "\n\ndata sets:\n" + sets
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        out = build(
            args.name,
            args.out,
            args.source,
            args.source2,
            per_ratio=args.per_ratio,
            limit=args.limit,
            seed=args.seed,
            buckets=args.buckets,
            max_upscale=args.max_upscale,
        )
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(out), file=sys.stderr)
    print(out)
    return 0


def summary(out: Path) -> str:
    """One paragraph of a build's counts; the details are in build_info.json."""
    counts = json.loads((out / BUILD_INFO).read_text())["counts"]
    reasons = ", ".join(f"{n} {reason}" for reason, n in counts["skipped_by_reason"].items()) or "none"
    short = {size: c["shortfall"] for size, c in counts["per_size"].items() if c["shortfall"]}
    lines = [
        f"{counts['selected']} items from {counts['samples_read']} samples; skipped: {reasons}",
        f"short sizes (fewer candidates than asked): {short}" if short else "every size is full",
        f"details: {out / BUILD_INFO}",
    ]
    return "\n".join(lines)
