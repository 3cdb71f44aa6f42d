"""How many CPU threads torch uses (issue 9, item 6).

torch's default is one thread per core, and its threads spin while they wait. On a
machine shared with other work (a second run, the TUI, a test suite, other users)
that oversubscribes the cores and every step waits for a descheduled thread: on a
loaded 2-core machine one thread trained 5.4x faster than two. So the default leaves
half the CPUs this process may use to everything else.

On a shared machine set the project's thread count to 1 (or `OMP_NUM_THREADS=1`);
on a dedicated machine set it to the number of physical cores. With a GPU the count
matters little: the CPU only feeds the device.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

# Past this, tiny and small models gain nothing, and big ones belong on a GPU.
MOST_BY_DEFAULT = 8


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, lowered by a cgroup CPU quota if there is one."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(count, quota)) if quota else max(1, count)


def _cgroup_cpu_quota() -> int | None:
    try:
        limit, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(1, int(limit) // int(period))


def default_threads() -> int:
    """`OMP_NUM_THREADS` when the user set it, else half the usable CPUs (1 to MOST_BY_DEFAULT)."""
    from_environment = os.environ.get("OMP_NUM_THREADS", "")
    if from_environment.isdigit() and int(from_environment) > 0:
        return int(from_environment)
    return max(1, min(MOST_BY_DEFAULT, usable_cpus() // 2))


def configure_threads(setting: int | None) -> int:
    """Set torch's intra-op thread count: `setting` when positive, else `default_threads()`. Returns it."""
    count = setting if setting and setting > 0 else default_threads()
    torch.set_num_threads(count)
    return count
