"""What the GPU plan measures (:mod:`benchmark.gpu_measure` measures it): sizes, steps, ceilings, other base
models' runs, the time budget; the real plan and its dry run on the CPU."""

from __future__ import annotations

from dataclasses import dataclass

from baselines.registry import get_method, in_plan


@dataclass(frozen=True)
class Plan:
    """What one measurement makes: profile, device, sizes, steps, ceilings, time budget."""

    profile: str
    device: str
    sizes: tuple[int, ...]  # square sides of the method runs; the first is also Table 4's
    steps: int
    sr_steps: int
    budget: str  # the ceilings' memory budget
    ceilings: tuple[tuple[str, int, int], ...]  # (method, min side, max side), in order
    matmul_side: int
    time_budget_s: float
    repeats: int  # timed steps per fast-path variant
    compile_backend: str  # the dry run's captures the graph without inductor's minutes of C++
    model_runs: tuple[tuple[str, tuple[str, ...], tuple[int, ...]], ...] = ()  # other base models: (model, methods, sides)
    model_steps: tuple[int, int] = (2, 2)  # their stage I and II steps


def ceiling_plan() -> tuple[tuple[str, int, int], ...]:
    """The GPU plan's methods (the registry's ``gpu`` plan), FSTD's first (the headline); with stage II tiles
    from 8192 px up to the paper's 18432, without from 1024 capped at 4096 (one step at 8192² is 14 PFLOP
    of attention)."""
    names = sorted(in_plan("gpu"), key=lambda name: get_method(name).stage2 != "implicit")
    return tuple((name, 8192, 18432) if get_method(name).stage2 else (name, 1024, 4096) for name in names)


SDXL_METHODS = ("sr-plus", "md", "asd")  # direct, views, buckets + stage II: the three costs of the SDXL table
#: FLUX (bf16): direct, FSTD in stage I, buckets + stage II, I-Max; md (625 views a step at 4096²) to 2048²
FLUX_RUNS = (("flux", ("sr-plus", "fstd-t2i", "asd", "i-max"), (1024, 2048, 4096)), ("flux", ("md",), (1024, 2048)))
GPU_PLAN = Plan("paper-arch", "cuda", (1024, 2048), 50, 200, "32GiB", ceiling_plan(), 8192, 480.0, 5, "inductor",
                (("sdxl", SDXL_METHODS, (2048, 4096)), *FLUX_RUNS))
#: The dry run's budget only guards against a hung machine: every phase is meant to run (SDXL's, FLUX's too:
#: the path of its model runs, on two of its methods).
DRY_PLAN = Plan("tiny", "cpu", (64,), 1, 2, "4GiB", ((ceiling_plan()[0][0], 512, 512),), 256, 900.0, 1, "eager",
                (("sdxl", SDXL_METHODS, (64,)), ("flux", ("sr-plus", "fstd-t2i"), (128,))), (1, 1))
