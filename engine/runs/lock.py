"""One live process per run folder: an exclusive lock held for the run's life (issue 24, item 2).

Two runs given the same `--run-dir` (or a `--resume` / `eval` of a run that is still
going) would append to one `events.jsonl` and overwrite each other's checkpoints.
So whatever writes a run folder holds `RUN_DIR/.lock` while it does, and a second
one stops at once, naming the live run's pid.

The lock is an `flock` on that file, not the file's existence: the kernel drops it
when the holder exits in any way (an exception, Ctrl-C, SIGKILL, a power cut),
so a killed run never leaves a folder locked, and a reused pid never keeps one
locked. The file only says who holds it (pid, host, command) for the message.
Where the file system has no `flock` (some network mounts), the lock falls back
to the file's existence, and a file naming a process that no longer runs on
this host is stale and taken over.

Under torchrun only the main process takes it (engine/run.py): the others write
nothing the main one does not choose.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
from pathlib import Path

from engine.errors import EngineError

LOCK_FILE = ".lock"
NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class RunLocked(EngineError):
    """Another live process holds the run folder."""


class RunLock:
    """`with RunLock(run_dir):` holds the folder's lock, or raises `RunLocked` at once."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        if not self.path.parent.is_dir():
            raise EngineError(f"{self.path.parent}: no such run folder")
        for _ in range(10):  # the holder may unlink the file between our open and our flock: try the new one
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunLocked(locked_message(self.path.parent, read_holder(self.path))) from None
            except OSError as error:
                os.close(fd)
                if error.errno not in NO_FLOCK:
                    raise
                return self._acquire_by_pid()
            if _same_file(fd, self.path):
                self.fd = fd
                _write_holder(fd)
                return
            os.close(fd)
        raise RunLocked(f"{self.path.parent}: could not take the run folder's lock ({self.path}); try again")

    def _acquire_by_pid(self) -> None:
        """No flock here: the file's existence is the lock, and a holder that is gone makes it stale."""
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = read_holder(self.path)
                if holder_is_alive(holder):
                    raise RunLocked(locked_message(self.path.parent, holder)) from None
                self.path.unlink(missing_ok=True)  # stale: its process was killed
                continue
            self.fd = fd
            _write_holder(fd)
            return
        raise RunLocked(f"{self.path.parent}: could not take the run folder's lock ({self.path}); try again")

    def release(self) -> None:
        if self.fd is None:
            return
        # Unlink first, while still holding: a process that opens the old file after this finds it
        # gone from the folder (`_same_file`) and opens a fresh one.
        self.path.unlink(missing_ok=True)
        os.close(self.fd)  # closing drops the flock
        self.fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _write_holder(fd: int) -> None:
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)


def read_holder(path: Path) -> dict:
    """Who holds the lock, as its file says ({} when unreadable or still being written)."""
    try:
        holder = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def holder_is_alive(holder: dict) -> bool:
    """Whether the holder's pid still runs; one on another host cannot be asked, so it counts as alive."""
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return False
    if holder.get("host") not in (None, socket.gethostname()):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, under another user
    return True


def locked_message(run_dir: Path, holder: dict) -> str:
    who = f"pid {holder['pid']}" if "pid" in holder else "another process"
    if holder.get("host") and holder["host"] != socket.gethostname():
        who += f" on {holder['host']}"
    return (f"{run_dir} is in use by a live run ({who}); wait for it to end or stop it "
            f"(`touch {run_dir / 'STOP'}`), or give this run another folder (`--run-dir`)")


def lock_run_folder(state, run_dir: Path) -> RunLock:
    """The run's lock, taken by the main process; every process learns the outcome, so all stop together.

    A refused process that went on alone would wait forever in the first collective (processes.py).
    """
    from engine.runs.processes import shared

    lock, refusal = RunLock(run_dir), None
    if state.is_main_process:
        try:
            lock.acquire()
        except RunLocked as error:
            refusal = str(error)
    refusal = shared(state, refusal)
    if refusal:
        raise RunLocked(refusal)
    return lock


def refuse_if_locked(run_dir: Path) -> None:
    """Raise `RunLocked` when a live process other than this one holds the folder (before a resume rewrites it)."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = read_holder(path)
        if holder.get("pid") != os.getpid():
            raise RunLocked(locked_message(Path(run_dir), holder)) from None
    except OSError as error:
        if error.errno not in NO_FLOCK:
            raise
        holder = read_holder(path)
        if holder.get("pid") != os.getpid() and holder_is_alive(holder):
            raise RunLocked(locked_message(Path(run_dir), holder)) from None
    finally:
        os.close(fd)
