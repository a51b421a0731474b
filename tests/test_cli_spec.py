"""The command line and the Python API share one set of defaults: every option of ``run`` that fills a field
of the run specification defaults to that field's default, so that a run typed with no options is the run
``RunSpec(method)`` makes."""

import argparse
from dataclasses import fields

from benchmark.cli import run as run_verb
from benchmark.cli.options import spec_default, spec_from
from benchmark.spec import RunSpec


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    run_verb.add_arguments(parser)
    return parser


def test_every_run_option_defaults_to_its_spec_field():
    names = {item.name for item in fields(RunSpec)}
    options = [action for action in _run_parser()._actions if action.dest in names and action.dest != "method"]
    assert len({action.dest for action in options}) == len(names) - 1  # every field but the method has an option
    for action in options:
        default = tuple(action.default) if action.dest == "include" else action.default  # append: a fresh list
        assert default == spec_default(action.dest), action.dest


def test_a_run_with_no_options_is_the_apis_default_run():
    assert spec_from(_run_parser().parse_args(["--method", "asd"])) == RunSpec("asd")
    changed = spec_from(_run_parser().parse_args(["--method", "asd", "--seed", "3", "--fill", "latent"]))
    assert changed == RunSpec("asd", seed=3, fill="latent") != RunSpec("asd")
