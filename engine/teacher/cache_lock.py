"""One teacher pass per cache key across runs of a project (issue 19, item 6).

Two runs of the same project started at once would both miss the cache and both
generate it. The main process of each run holds `runs/.teacher-<key>.lock` (an
`flock`, dropped by the kernel however its holder ends) from the cache lookup to
the cache's save: the second run waits there, then finds the first run's cache
and copies it (a hit) instead of generating it again. The holder removes the file
as it lets go (`runs/` keeps only run folders); a waiter that then holds a removed
file's lock takes the lock again on the path.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from engine.runs.lock import _same_file, read_holder


@contextmanager
def teacher_cache_lock(runs_dir: Path, key: str, on_wait=lambda holder: None, enabled: bool = True):
    """Held while this run looks for, or generates, the teacher cache `key`; `on_wait(holder)` is
    called once if another run holds it (holder: its pid, host and command, as far as known)."""
    if not enabled:
        yield
        return
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    path = Path(runs_dir) / f".teacher-{key}.lock"
    waited = False
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not waited:
                on_wait(read_holder(path))
                waited = True
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        if _same_file(descriptor, path):
            break
        os.close(descriptor)  # the holder removed this file as it let go: lock the path again
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode(), 0)
        yield
    finally:
        path.unlink(missing_ok=True)  # before letting go, so a waiter sees it was removed
        os.close(descriptor)
