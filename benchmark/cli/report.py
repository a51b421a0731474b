"""``report``: markdown tables, and the static site beside them, from finished runs."""

from __future__ import annotations

import argparse

from benchmark import api
from benchmark.cli.options import add_include, add_reports, add_runs
from benchmark.errors import UsageError

NAME = "report"
HELP = "write markdown tables and a static site from finished runs"


def add_arguments(parser: argparse.ArgumentParser):
    parser.description = ("Render the paper's tables, and one of all methods per data set, from the runs under --runs; "
                          "beside them, a static site to look at the images (--no-html: none).")
    add_runs(parser, what="folder searched for results.json")
    add_reports(parser, "--out")
    add_include(parser)
    parser.add_argument("--html", action=argparse.BooleanOptionalAction, default=True,
                        help="also write a static site beside the markdown, site/index.html in the reports "
                             "folder: sortable tables with intervals and provenance, a gallery of every item's "
                             "images side by side with synchronised zoom down to the pixel (large images as tile pyramids), SVG plots; it "
                             "opens from the file system, no server or network (default: on; see docs/site.md)")


def command(args: argparse.Namespace) -> int:
    written = api.report(args.runs, args.out, args.include, html=args.html)
    if not written:
        raise UsageError(f"no finished runs under {args.runs}; run `python -m benchmark run` first")
    for path in written:
        print(f"wrote {path}")
    return 0
