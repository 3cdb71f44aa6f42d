"""One lock for the workers that may import the heavy libraries first.

transformers' lazy module is not safe to import from two threads at once: a
second thread can find a half-initialised module and fail with "cannot import
name 'AutoModelForCausalLM'" (or 'LogitsProcessorList', seen when the project
check and the preview's model load started together). Every worker that may be
the first to import the engine's model code, or to run a project's tasks.py,
takes turns under this lock.
"""

from __future__ import annotations

import threading

HEAVY_IMPORTS = threading.Lock()
