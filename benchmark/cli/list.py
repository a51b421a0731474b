"""``list``: the verbs, the registered methods, metrics and base models, the profiles."""

from __future__ import annotations

import argparse

from baselines.base_models import base_models
from baselines.profiles import profiles
from baselines.registry import PROMPTS, methods
from benchmark.cli.options import add_include
from benchmark.metrics.presets import presets
from benchmark.metrics.registry import metrics
from benchmark.plugins import load_plugins

NAME = "list"
HELP = "list verbs, methods (built-in and yours), metrics, protocol presets, base models and profiles"


def add_arguments(parser: argparse.ArgumentParser):
    parser.description = HELP + "."
    add_include(parser)


def command(args: argparse.Namespace) -> int:
    from benchmark.cli import VERBS

    load_plugins(args.include)
    print("commands:")
    for verb in VERBS:
        print(f"  {verb.NAME:16s} {verb.HELP}")
    print("methods:")
    for method in methods().values():
        models = f" (models: {', '.join(method.model_names)})" if method.inputs == PROMPTS else ""
        print(f"  {method.name:16s} {method.summary}{models}" + ("" if method.built_in else f" [{method.origin}]"))
    print("metrics:")
    for metric in metrics():
        applies = " and ".join(sorted(metric.applies_to))
        print(f"  {metric.name:16s} {applies}" + (", against references" if metric.needs_references else "")
              + (", opt-in (score --metrics)" if metric.opt_in else "")
              + ("" if metric.origin == "built-in" else f" [{metric.origin}]"))
        if metric.source:
            print(f"  {'':16s} source: {metric.source}")
    print("protocol presets (score --protocols):")
    for preset in presets():
        print(f"  {preset.name:16s} {preset.title}: {', '.join(preset.names.values())}\n"
              f"  {'':16s} source: {preset.source}")
    print("models (stage I, --model):")
    for name, model in base_models().items():
        print(f"  {name:16s} {model.summary}" + ("" if model.origin == "built-in" else f" [{model.origin}]"))
    print("profiles:")
    for name, profile in profiles().items():
        default = f" [default for {'the oracle' if profile.analytic else 'every other'} method]" * profile.default
        print(f"  {name:16s} {profile.description}{default}")
    return 0
