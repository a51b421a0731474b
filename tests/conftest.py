"""Every test session gets its own asd-bench cache (tiny LoRAs, data sets, FID statistics):
nothing is read from or left in the user's, and what one test builds the others reuse."""

import os

import pytest
from helpers import one_thread


@pytest.fixture(scope="session", autouse=True)
def asd_cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("asd-bench-cache")
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
