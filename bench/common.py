"""Shared pieces of the bench: random Llama-shaped models, a stand-in tokenizer, timing."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from types import SimpleNamespace

import torch


def random_llama(vocab_size: int, hidden_size: int, num_layers: int, num_heads: int, max_positions: int, seed: int = 0):
    """A Llama with random weights (the shapes decide the cost, not the weights), in eval mode."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=(hidden_size * 8 // 3 + 31) // 32 * 32,
                         num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
                         max_position_embeddings=max_positions, tie_word_embeddings=True, pad_token_id=0,
                         bos_token_id=None, eos_token_id=None)
    model = LlamaForCausalLM(config).eval()
    # No end-of-sequence: every output runs to max_new_tokens, so variants do the same work.
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


@dataclass
class IdTokenizer:
    """What generation needs from a tokenizer when prompts are given as ids: pad, no EOS, a decode."""

    pad_token_id: int = 0
    eos_token_id: int | None = None

    def __call__(self, prompt: list[int]):
        """Prompts are given as id lists: `generate_all` encodes them to themselves."""
        return SimpleNamespace(input_ids=list(prompt))

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return " ".join(map(str, ids))


def median_seconds(variants: dict, repeats: int) -> dict[str, float]:
    """Median wall time of each variant (a no-argument function); variants interleaved per repeat
    so load from other processes falls on all of them alike."""
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def return_freed_memory_to_the_os() -> None:
    """Serve every allocation of 128 KiB or more with its own mapping, unmapped when freed, so the
    resident size follows the live tensors (glibc otherwise keeps freed blocks and hides the next peak)."""
    import ctypes

    M_MMAP_THRESHOLD = -3
    ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 128 * 1024)


def _status_mb(key: str) -> float:
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return float("nan")


def resident_mb_during(function) -> tuple[float, float]:
    """(resident MB before, peak resident MB while `function()` ran), Linux only.

    Writing 5 to /proc/self/clear_refs resets the peak (VmHWM) to the current size.
    """
    import gc

    gc.collect()
    with open("/proc/self/clear_refs", "w") as file:
        file.write("5")
    before = _status_mb("VmRSS")
    function()
    return before, _status_mb("VmHWM")
