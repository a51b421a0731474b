"""One run sharded over the processes of ``accelerate launch``, on one node or several.

Process ``rank`` of ``world`` takes the samples i ≡ rank (mod world) of one run directory
(shared by every node); since each sample's seeds depend only on the run seed and its
index (:func:`benchmark.runs.runner.derived_seed`), a sharded run makes the same images
and records as one process. accelerate's :class:`~accelerate.PartialState` sets up the
process group (gloo on a CPU, NCCL on GPUs) and says the rank; this module adds only what
a run needs of it: which samples are whose, a barrier whose failure says what to do,
gathering figures in sample order, and rank 0 first where something is built and cached.

Not launched (no ``WORLD_SIZE`` > 1 from the launcher), :func:`current` is :data:`ONE`:
one process, no process group, nothing of accelerate touched. A rank that dies makes its
peers fail rather than hang: on one node ``accelerate launch`` (torch's elastic agent)
stops the others at once; across nodes the survivors' next collective fails when the
peer's connection closes, or at the latest after ``$ASD_BENCH_SHARD_TIMEOUT`` seconds
(default :data:`DEFAULT_TIMEOUT_S`, longer than any one sample should take). Either way the
finished samples are on disk, and the same command resumes.
"""

from __future__ import annotations

import datetime
import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch

TIMEOUT_VARIABLE = "ASD_BENCH_SHARD_TIMEOUT"
DEFAULT_TIMEOUT_S = 3 * 3600
#: What accelerate reads to decide that a process was launched as one of several.
_WORLD_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


class ShardError(RuntimeError):
    """The processes of a sharded run could not agree; the message says what to do."""


@dataclass(frozen=True)
class Shard:
    """This process's place in a run: ``rank`` of ``world`` (``state`` is accelerate's, None alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    state: Any = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.world > 1

    def mine(self, indices: Sequence[int]) -> list[int]:
        """Those of ``indices`` (sample indices, or positions) this process takes: i ≡ rank (mod world)."""
        return [i for i in indices if i % self.world == self.rank]

    def device(self, requested: torch.device) -> torch.device:
        """The device of this process: accelerate's (``cuda:LOCAL_RANK``) for ``--device cuda`` when sharded."""
        if not self.sharded or requested.type != "cuda":
            return requested
        if requested.index is not None:
            raise ShardError(f"--device {requested} puts every process on one GPU; give --device cuda and each "
                             "process of `accelerate launch` takes its own (cuda:LOCAL_RANK)")
        return self.state.device

    def barrier(self, what: str):
        """Wait until every process is here; a peer that died or stalled ends in an error that says so."""
        if not self.sharded:
            return
        try:
            self.state.wait_for_everyone()
        except Exception as error:  # gloo / NCCL raise their own types: all mean a peer is gone
            raise ShardError(f"rank {self.rank} of {self.world}: waiting for every process ({what}) failed: "
                             f"{str(error).splitlines()[0] if str(error) else type(error).__name__}. Another "
                             "process died or stalled (see its output above); the finished samples are kept: "
                             "run the same command again to resume") from error

    def share(self, value):
        """Rank 0's ``value`` on every process (any picklable object)."""
        if not self.sharded:
            return value
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([value], from_process=0)[0]

    def gather(self, values: list) -> list:
        """Every process's ``values`` on every process, concatenated in rank order."""
        if not self.sharded:
            return list(values)
        from accelerate.utils import gather_object

        return gather_object(list(values))

    def gather_rows(self, count: int, rows: np.ndarray) -> np.ndarray:
        """Rows computed by each process for its positions ``mine(range(count))``, put back in position order."""
        if not self.sharded:
            return rows
        parts = self.gather([(self.rank, rows)])
        out = None
        for rank, part in parts:
            if out is None:
                out = np.empty((count,) + part.shape[1:], dtype=part.dtype)
            out[rank::self.world] = part
        return out

    def main_first(self):
        """Rank 0 runs the block first (it builds what the others then find cached), then the others."""
        return self.state.main_process_first() if self.sharded else nullcontext()


ONE = Shard()


def timeout() -> datetime.timedelta:
    text = os.environ.get(TIMEOUT_VARIABLE, str(DEFAULT_TIMEOUT_S))
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1
    if seconds <= 0:
        raise ShardError(f"${TIMEOUT_VARIABLE}={text!r} is not a positive number of seconds")
    return datetime.timedelta(seconds=seconds)


def launched() -> bool:
    """Whether this process is one of several started by ``accelerate launch`` (or torchrun, mpirun)."""
    from accelerate.state import PartialState

    if PartialState._shared_state.get("num_processes", 1) > 1:
        return True
    return any(int(os.environ.get(name, "1") or 1) > 1 for name in _WORLD_VARIABLES)


def current(device: Optional[torch.device] = None) -> Shard:
    """This process's shard: from accelerate's state under a launcher (set up on first use, gloo when
    ``device`` is a CPU), else :data:`ONE` without touching accelerate."""
    if not launched():
        return ONE
    from accelerate import PartialState

    cpu = device is not None and device.type == "cpu"
    state = PartialState(cpu=cpu, timeout=timeout())
    if state.num_processes < 2:
        raise ShardError(f"launched as one of {os.environ.get('WORLD_SIZE')} processes, but accelerate set up "
                         f"{state.num_processes} ({state.distributed_type}): on a machine without GPUs give "
                         "--device cpu")
    return Shard(state.process_index, state.num_processes, state.local_process_index, state)

