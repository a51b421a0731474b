"""Quiet logs: with progress off, no library draws a bar (no carriage return in a log), and the warnings
that restate our own choices are dropped while others still show."""

import logging
import os
import subprocess
import sys
import warnings

from hub_fixtures import hub_cache

from baselines.quiet import OUR_CHOICES, _library_handlers, quiet_libraries


def _log(args, tmp_path, **env):
    process = subprocess.run([sys.executable, "-m", "benchmark", *args, "--runs", str(tmp_path / "runs")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **env},
                             timeout=600)
    assert process.returncode == 0, process.stdout.decode(errors="replace")[-3000:]
    return process.stdout.decode(errors="replace")


def test_a_tiny_runs_log_holds_no_carriage_return(tmp_path):
    log = _log(["run", "--method", "asd", "--limit", "1", "--steps", "1", "--sr-steps", "1", "--no-progress"], tmp_path)
    assert "asd on tiny" in log and "\r" not in log


def test_a_paper_run_loading_weights_from_the_cache_holds_no_bar_nor_our_own_choices(tmp_path):
    cache = hub_cache(tmp_path / "hub")
    args = ["run", "--method", "sr-plus", "--profile", "paper", "--size", "64x64", "--steps", "1", "--limit", "1",
            "--no-score"]
    env = dict(HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1", ASD_SD21="", ASD_SD21_REPO="")
    quiet = _log([*args, "--no-progress"], tmp_path / "quiet", **env)
    assert "sr-plus on paper" in quiet and "\r" not in quiet
    assert not any(fragment in quiet for fragment in OUR_CHOICES)
    loud = _log([*args, "--progress"], tmp_path / "loud", **env)
    assert "\r" in loud  # the same run with bars on draws them: the check above can fail


def test_quiet_libraries_turns_every_librarys_bars_off_and_on_again():
    import diffusers.utils.logging as diffusers_logging
    import huggingface_hub.utils as hub_utils
    import transformers.utils.logging as transformers_logging

    try:
        assert quiet_libraries(False) is False
        assert not diffusers_logging.is_progress_bar_enabled() and not transformers_logging.is_progress_bar_enabled()
        assert hub_utils.are_progress_bars_disabled()
        assert quiet_libraries(True) is True
        assert diffusers_logging.is_progress_bar_enabled() and transformers_logging.is_progress_bar_enabled()
        assert not hub_utils.are_progress_bars_disabled()
    finally:
        quiet_libraries(False)


def test_only_the_warnings_restating_our_choices_are_dropped():
    quiet_libraries(False)

    def shown(message):
        record = logging.makeLogRecord({"msg": message, "levelno": logging.WARNING})
        return all(handler.filter(record) for handler in _library_handlers())

    assert not shown("The config of DDIMScheduler has not set the configuration `clip_sample`. Set it.")
    assert not shown("There are modules in UNet2DConditionModel that should be kept in float32: conv_in")
    assert shown("Some weights of the model checkpoint were not used")
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn("The configuration file of this scheduler: {\n 'x': 1\n} has not set the configuration "
                      "`clip_sample`. Please update it.", FutureWarning)
        warnings.warn("a warning of its own", FutureWarning)
    assert [str(w.message) for w in caught] == ["a warning of its own"]
