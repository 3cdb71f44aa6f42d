"""The libraries' own progress bars stay out of the engine's output unless `--verbose` (issue 26, item 7).

The engine draws its progress from the run's events (the CLI's bar, the TUI's
dashboard); a tqdm bar from transformers ("Loading weights"), huggingface_hub or
`datasets` would break into that output, or into the TUI's screen when it runs a
preview in its own process. The environment switches are the libraries' own and
have priority over their code; children (`accelerate launch` ranks) inherit them.
"""

from __future__ import annotations

import os
import sys

VERBOSE_ENV = "CTXDISTILL_VERBOSE"  # set by `ctxdistill --verbose`
SWITCHES = ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def quiet_libraries() -> None:
    """Turn the libraries' progress bars off, unless verbose (a user's own setting of a switch wins)."""
    from transformers.utils import logging as transformers_logging

    if verbose():
        transformers_logging.enable_progress_bar()
        return
    for switch in SWITCHES:
        os.environ.setdefault(switch, "1")  # read when the library is first imported
    transformers_logging.disable_progress_bar()  # also huggingface_hub's
    if "datasets" in sys.modules:  # imported before the switch was set
        import datasets

        datasets.disable_progress_bars()
