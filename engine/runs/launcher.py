"""What a launcher (torchrun) is told when the engine stops a worker with a clear error (issue 24, item 8).

torchrun ends a failed job with its own report, printed after everything the
workers printed. Without a word from the worker, the report's last field reads
"To enable traceback see ...", which looks like a crash and buries the engine's
line. torchrun reads each worker's error from the file named by
TORCHELASTIC_ERROR_FILE (torch.distributed.elastic.multiprocessing.errors); written
there, the engine's line is repeated at the end of the report, in its `traceback`
field. Without a launcher, nothing happens.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def report_error(message: str) -> None:
    """Hand the launcher the line the user must read, in the layout torch's own `@record` writes
    (the report shows `py_callstack`; a bare string makes the agent log a format warning)."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    record = {"message": {"message": message, "extraInfo": {"py_callstack": message, "timestamp": str(int(time.time()))}}}
    try:
        Path(path).write_text(json.dumps(record), encoding="utf-8")
    except OSError:
        pass  # the line is on stderr already; the report then only lacks the repeat
