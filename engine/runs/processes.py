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
from pathlib import Path

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


SHARED_MARKER = ".shared-disk"


def marker_problem(run_dir: Path, token: str, rank: int) -> str | None:
    """Why this process cannot read the main process's marker in `run_dir` (one line), or None."""
    try:
        if (Path(run_dir) / SHARED_MARKER).read_text() == token:
            return None
    except OSError:
        pass
    return (f"the run folder is not on a shared disk: rank {rank} on {socket.gethostname()} cannot read "
            f"{Path(run_dir) / SHARED_MARKER}, written by the main process; give every node the same folder "
            "(a network or cluster file system) with --run-dir")


def check_shared_folder(state, run_dir: Path) -> None:
    """Before any work: every process reads a marker the main process wrote in the run folder.

    Several nodes write one run folder (checkpoint shards, teacher batches) and read what the
    main process wrote: on a disk one node cannot see, they would fail far later, or each
    write its own half run. A rank that cannot see it stops every rank with one clear line.
    """
    from engine.errors import EngineError

    if state.num_processes == 1:
        return
    token = None
    if state.is_main_process:
        token = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(8).hex()}"
        (Path(run_dir) / SHARED_MARKER).write_text(token)
    token = shared(state, token)
    problem = marker_problem(run_dir, token, state.process_index)
    problems = gathered(state, {"problem": problem})
    if state.is_main_process:
        (Path(run_dir) / SHARED_MARKER).unlink(missing_ok=True)
    first = next((entry["problem"] for entry in problems if entry["problem"]), None)
    if first:
        raise EngineError(first)


def dead_ranks(ranks: list[dict]) -> list[dict]:
    """The ranks (`whoami` records) whose process has ended, among those on this host (another
    host's cannot be seen from here). A killed rank the launcher has not reaped yet is a zombie."""
    here = socket.gethostname()
    died = []
    for rank in ranks:
        if rank["host"] != here or rank["pid"] == os.getpid():
            continue
        try:
            state = Path(f"/proc/{rank['pid']}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            state = "gone"
        if state in ("gone", "Z", "X"):
            died.append(rank)
    return died


def whoami(state) -> dict:
    """This process's rank, pid and host, for the events (the proof that each rank ran)."""
    return {"rank": state.process_index, "pid": os.getpid(), "host": socket.gethostname()}


# --- how the student is spread over the processes (issue 19) -------------------

def training_accelerator(mixed_precision: str, cpu: bool):
    """accelerate's Accelerator for the recipe: single, DDP, or FSDP when accelerate's environment asks for it.

    `accelerate launch` with an FSDP config (examples/accelerate/fsdp.yaml) sets ACCELERATE_USE_FSDP
    and the FSDP_* settings; plain torchrun takes the same variables. accelerate (1.16, state.py)
    turns FSDP on for GPU processes only and quietly falls back to DDP on CPUs, yet its FSDP2 path
    (fully_shard, sharded checkpoints, the gathered state dict) runs there over gloo: so on CPU
    processes the state is switched to FSDP here, and the suite tests on CPUs the code GPUs run.
    """
    from accelerate import Accelerator, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    wants_fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    plugin = FullyShardedDataParallelPlugin() if wants_fsdp and launched() else None  # read from FSDP_* variables
    accelerator = Accelerator(mixed_precision=mixed_precision, cpu=cpu, fsdp_plugin=plugin)
    if plugin is not None and accelerator.distributed_type == DistributedType.MULTI_CPU:
        # Both shared states: every AcceleratorState() made later copies PartialState's over its own.
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = plugin
    return accelerator


def parallelism(accelerator) -> str:
    """`FSDP`, `DDP` or `single`: how the student's weights are held across processes."""
    from accelerate.utils import DistributedType

    if accelerator.num_processes == 1:
        return "single"
    return {DistributedType.FSDP: "FSDP", DistributedType.DEEPSPEED: "DeepSpeed"}.get(accelerator.distributed_type, "DDP")


def parameter_bytes(model) -> int:
    """Bytes of the student's parameters held by this process (its shard under FSDP)."""
    total = 0
    for parameter in model.parameters():
        local = parameter.to_local() if hasattr(parameter, "to_local") else parameter  # an FSDP2 DTensor's shard
        total += local.numel() * local.element_size()
    return total
