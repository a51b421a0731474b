"""Every test session gets its own asd-bench cache (tiny LoRAs, data sets, FID statistics):
nothing is read from or left in the user's, and what one test builds the others reuse, across
the parallel workers of one session too. ``$ASD_TEST_CACHE`` names that folder instead: CI points it
at the regression guard's own, which builds the same tiny LoRA, data set and statistics beside the
tests (deterministically, written atomically, under the same file locks), so they are built once. Under pytest-xdist each worker runs torch on as many
threads as its share of the cores (one, on two cores with two workers), and so do the processes
it starts: threads fighting over shared cores are several times slower than one each."""

import os
from pathlib import Path

import pytest
import torch
from helpers import one_thread


#: The slowest test modules, slowest first (`pytest --durations=0` at 5a2e485, summed per module: 132 s down to
#: 30 s). pytest-xdist hands whole modules to its workers in collection order (``--no-loadscope-reorder`` in
#: pyproject.toml); these first, so that the last modules handed out are short and no worker idles long at the end.
SLOWEST_FIRST = ("test_sharding", "test_gpu_measure", "test_intervals", "test_plugins", "test_method_runs",
                 "test_methods", "test_reference_timing", "test_quiet_logs", "test_iqa", "test_docs_commands",
                 "test_fast_path", "test_training_free", "test_patch_metrics", "test_scoring", "test_arad_training",
                 "test_external_lora")


def pytest_collection_modifyitems(items):
    rank = {name: position for position, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: the others keep their order


def pytest_configure(config):
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        threads = max(1, (os.cpu_count() or 1) // int(workers))
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def asd_cache(tmp_path_factory, worker_id):
    # the workers' base folders share a parent: one cache for the session, whatever the worker count
    root = tmp_path_factory.getbasetemp()
    shared = os.environ.get("ASD_TEST_CACHE")
    folder = Path(shared) if shared else (root.parent if worker_id != "master" else root) / "asd-bench-cache"
    folder.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("ASD_BENCH_CACHE")
    os.environ["ASD_BENCH_CACHE"] = str(folder)
    yield folder
    if previous is None:
        del os.environ["ASD_BENCH_CACHE"]
    else:
        os.environ["ASD_BENCH_CACHE"] = previous


@pytest.fixture
def single_thread():
    """Torch on one thread for the test (see :func:`helpers.one_thread`)."""
    with one_thread():
        yield
