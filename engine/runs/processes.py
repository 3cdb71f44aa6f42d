"""Several processes (data parallel): the state they share and the few things they agree on.

Under `torchrun --nproc_per_node N -m engine.cli run ...` (or `accelerate launch
--multi_gpu --num_processes N ...`) every process runs the same command. The main
process chooses the run folder and writes every shared file; the others learn its
choices here, and a stop is taken by all of them at the same point, since a process
that goes on alone waits forever in a collective the stopped ones never enter.

With one process every function here is a plain pass-through.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import torch

# The other processes wait at a barrier while the main one evaluates, which on a real
# model can outlast torch's default 30-minute collective timeout. A process that dies
# does not leave the others waiting: torchrun stops them all when one fails.
WAIT_LIMIT = timedelta(hours=6)


def launched() -> bool:
    """True under torchrun / `accelerate launch --multi_gpu` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def process_state(device: str = "auto"):
    """accelerate's PartialState, made before anything else asks for it.

    accelerate (1.15, state.py `_prepare_backend`) forms a CPU process group over gloo only
    when asked for `cpu=True`; without it each process of a CPU-only torchrun believes it is
    alone. One process keeps the state it always had.
    """
    from accelerate import PartialState

    if not launched():
        return PartialState()
    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    return PartialState(cpu=cpu, timeout=WAIT_LIMIT)


def shared(state, value):
    """The main process's `value`, on every process (e.g. the run folder it chose)."""
    if state.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def any_process(state, flag: bool) -> bool:
    """True on every process when it is true on any (a STOP file one process saw before another)."""
    if state.num_processes == 1:
        return flag
    tensor = torch.tensor([int(flag)], device=state.device)
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
    return bool(tensor.item())


def gathered(state, record: dict) -> list[dict]:
    """Every process's `record`, in rank order, on every process."""
    if state.num_processes == 1:
        return [record]
    from accelerate.utils import gather_object

    return gather_object([record])


def whoami(state) -> dict:
    """This process's rank, pid and host, for the events (the proof that each rank ran)."""
    return {"rank": state.process_index, "pid": os.getpid(), "host": socket.gethostname()}
