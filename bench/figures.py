"""The bench's figures, (a) to (e) of issue 9 and (f) to (h) of issue 17; each returns a dict of plain numbers."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from bench.common import IdTokenizer, median_seconds, random_llama, resident_mb_during, return_freed_memory_to_the_os


@dataclass(frozen=True)
class Sizes:
    """Default sizes finish in a few minutes on 2 CPU cores; `tiny()` in seconds (the tests)."""

    repeats: int = 3
    # (a) teacher pass
    prefix_tokens: int = 2000
    inputs: int = 32
    input_tokens: int = 24
    batch_size: int = 8
    new_tokens: int = 16
    teacher_vocab: int = 32000
    teacher_hidden: int = 128
    teacher_layers: int = 2
    # (b) alignment
    alignment_lengths: tuple = (512, 2048)
    alignment_vocab: int = 4000
    # (c) training step
    step_vocab: int = 128256
    step_hidden: int = 128
    step_layers: int = 2
    step_batch: int = 8
    step_seq: int = 64
    step_answer: int = 16
    step_label_width: int = 20
    vocab_chunk: int = 16384
    # (d) soft labels
    label_vocab: int = 32000
    label_positions: int = 256
    num_samples: int = 100
    # (e) training throughput on the embedded default
    mfu_batch: int = 16
    mfu_seq: int = 64
    mfu_steps: int = 5
    # (f) teacher labels, row by row against BatchLabels
    label_batches: tuple = (1, 16, 64)
    label_steps: int = 16
    labels_vocab: int = 32000
    label_pass_inputs: int = 32
    # (g) shared prefix: encoding at a large vocabulary, KV bytes per batch row
    prefix_vocab: int = 128256
    prefix_rows: int = 16
    # (h) token batches on a skewed set of input lengths
    skew_short: int = 20
    skew_short_count: int = 60
    skew_long: int = 1500
    skew_long_count: int = 4
    skew_batch_size: int = 16
    skew_max_tokens: int = 4096

    @classmethod
    def tiny(cls) -> "Sizes":
        return cls(repeats=1, prefix_tokens=40, inputs=4, input_tokens=6, batch_size=2, new_tokens=3, teacher_vocab=500,
                   teacher_hidden=32, alignment_lengths=(32, 64), alignment_vocab=300, step_vocab=1000, step_hidden=32,
                   step_batch=2, step_seq=16, step_answer=4, step_label_width=4, vocab_chunk=256, label_vocab=1000,
                   label_positions=8, num_samples=20, mfu_batch=2, mfu_seq=16, mfu_steps=1,
                   label_batches=(1, 4), label_steps=3, labels_vocab=500, label_pass_inputs=4, prefix_vocab=1000,
                   prefix_rows=2, skew_short=4, skew_short_count=6, skew_long=40, skew_long_count=2, skew_batch_size=4,
                   skew_max_tokens=100)


# --- (a) teacher pass with a long shared prefix -------------------------------------

def teacher_pass(sizes: Sizes) -> dict:
    from engine.teacher.generation import encode_shared_prefix, generate_all, generate_batch

    model = random_llama(sizes.teacher_vocab, sizes.teacher_hidden, sizes.teacher_layers, 4,
                         sizes.prefix_tokens + sizes.input_tokens + sizes.new_tokens + 8)
    tokenizer = IdTokenizer()
    generator = torch.Generator().manual_seed(0)
    prefix = torch.randint(1, sizes.teacher_vocab, (sizes.prefix_tokens,), generator=generator).tolist()
    inputs = [torch.randint(1, sizes.teacher_vocab, (sizes.input_tokens // 2 + i % (sizes.input_tokens // 2 + 1),),
                            generator=generator).tolist() for i in range(sizes.inputs)]
    options = dict(batch_size=sizes.batch_size, max_new_tokens=sizes.new_tokens, temperature=1.0)
    outputs = {}

    def run(name, prompts, reuse_prefix):
        def go():
            torch.manual_seed(0)
            outputs[name] = [g.output_ids for g in generate_all(model, tokenizer, prompts, reuse_prefix=reuse_prefix, **options)]
        return go

    with_prefix = [prefix + ids for ids in inputs]
    seconds = median_seconds({"no_prefix": run("no_prefix", inputs, True),
                              "prefix_reused": run("prefix_reused", with_prefix, True),
                              "prefix_recomputed": run("prefix_recomputed", with_prefix, False)}, sizes.repeats)

    # The breakdown: the prefix paid once, and what a decoding step costs with it in the cache.
    encode_seconds = median_seconds({"encode": lambda: encode_shared_prefix(model, with_prefix)}, sizes.repeats)["encode"]
    shared = encode_shared_prefix(model, with_prefix)
    batch = with_prefix[: sizes.batch_size]

    def decode_step_seconds(prompt_ids, prefix_cache):
        times = {}
        for new_tokens in (1, sizes.new_tokens):
            started = time.perf_counter()
            generate_batch(model, tokenizer, prompt_ids, max_new_tokens=new_tokens, prefix=prefix_cache)
            times[new_tokens] = time.perf_counter() - started
        return (times[sizes.new_tokens] - times[1]) / max(1, sizes.new_tokens - 1)

    # The prefix is paid once per pass: with more inputs only the per-batch part grows.
    batches = -(-sizes.inputs // sizes.batch_size)
    per_batch_reused = (seconds["prefix_reused"] - encode_seconds) / batches
    per_batch_plain = seconds["no_prefix"] / batches
    batches_at_256 = -(-256 // sizes.batch_size)
    return {"seconds": seconds,
            "prefix_reused_vs_no_prefix": seconds["prefix_reused"] / seconds["no_prefix"],
            "projected_256_inputs_reused_vs_no_prefix":
                (encode_seconds + batches_at_256 * per_batch_reused) / (batches_at_256 * per_batch_plain),
            "prefix_recomputed_vs_reused": seconds["prefix_recomputed"] / seconds["prefix_reused"],
            "identical_tokens": outputs["prefix_reused"] == outputs["prefix_recomputed"],
            "prefix_encode_seconds": encode_seconds,
            "decode_step_seconds_with_prefix": decode_step_seconds(batch, shared),
            "decode_step_seconds_without_prefix": decode_step_seconds(inputs[: sizes.batch_size], None)}


# --- (b) answer alignment -------------------------------------------------------------

ALIGNMENT_TEXT = ("Step 1: carry the one, café naïve 日本語 🙂 and\ttabs  spaces\nAnswer: 42 résumé 東京 🚀\n"
                  "The quick brown fox jumps over the lazy dog. Ünïcödé ☃ ok.\n")


def byte_level_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator([ALIGNMENT_TEXT] * 50, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", clean_up_tokenization_spaces=False)


def alignment(sizes: Sizes) -> dict:
    from engine.teacher.extractors import _bounds_by_prefix_decoding, token_char_bounds, token_char_offsets

    tokenizer = byte_level_tokenizer(sizes.alignment_vocab)
    # Every byte on its own too, so multi-byte characters are split over tokens.
    one_text = tokenizer(ALIGNMENT_TEXT).input_ids + [tokenizer.convert_tokens_to_ids(c) for c in "Ã©æĹ¥ðŁĻĤ"]
    figures = {}
    for length in sizes.alignment_lengths:
        ids = (one_text * (length // len(one_text) + 1))[:length]
        assert token_char_offsets(tokenizer, ids) == _bounds_by_prefix_decoding(tokenizer, ids).whole  # same answer
        # The linear method takes about a millisecond: many more repeats keep its median steady.
        seconds = {**median_seconds({"linear": lambda: token_char_bounds(tokenizer, ids)}, 20 * sizes.repeats),
                   **median_seconds({"prefix_decoding": lambda: _bounds_by_prefix_decoding(tokenizer, ids)},
                                    sizes.repeats)}
        figures[length] = {"ms_per_1000_tokens": {name: value / length * 1e6 for name, value in seconds.items()},
                           "speedup": seconds["prefix_decoding"] / seconds["linear"]}
    short, long = sizes.alignment_lengths[0], sizes.alignment_lengths[-1]
    figures["linear_per_token_growth"] = (figures[long]["ms_per_1000_tokens"]["linear"]
                                          / figures[short]["ms_per_1000_tokens"]["linear"])
    return figures


# --- (c) distillation step -------------------------------------------------------------

def _step_batch(sizes: Sizes):
    """Right-padded rows of different prompt lengths, each ending in `step_answer` answer tokens."""
    from engine.training.losses import SparseTargets, pad_labels

    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1, sizes.step_vocab, (sizes.step_batch, sizes.step_seq), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    positions, per_position = [], []
    for row in range(sizes.step_batch):
        length = sizes.step_seq - row * 2
        attention_mask[row, length:] = 0
        for column in range(length - 1 - sizes.step_answer, length - 1):
            positions.append((row, column))
            ids = torch.randperm(sizes.step_vocab, generator=generator)[: sizes.step_label_width]
            probs = torch.rand(len(ids), generator=generator)
            per_position.append((ids, probs / probs.sum()))
    label_ids, label_probs = pad_labels(per_position)
    return input_ids, attention_mask, SparseTargets(torch.tensor(positions), label_ids, label_probs)


def _step_functions(model, sizes: Sizes) -> dict:
    from engine.training.losses import soft_cross_entropy
    from engine.training.student_forward import answer_cross_entropy

    input_ids, attention_mask, targets = _step_batch(sizes)
    labels = input_ids.masked_fill(attention_mask == 0, -100)

    def step(loss_function):
        def go():
            model.zero_grad(set_to_none=True)
            loss_function().backward()
        return go

    return {
        "full_logits": step(lambda: soft_cross_entropy(model(input_ids=input_ids, attention_mask=attention_mask).logits, targets)[0]),
        "answer_only": step(lambda: answer_cross_entropy(model, input_ids, attention_mask, targets)[0]),
        "answer_chunked": step(lambda: answer_cross_entropy(model, input_ids, attention_mask, targets,
                                                            vocab_chunk=sizes.vocab_chunk)[0]),
        "plain_cross_entropy": step(lambda: model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss),
    }


def _step_model(sizes: Sizes):
    model = random_llama(sizes.step_vocab, sizes.step_hidden, sizes.step_layers, 4, sizes.step_seq)
    return model.train()


def distillation_step(sizes: Sizes) -> dict:
    return_freed_memory_to_the_os()
    model = _step_model(sizes)
    variants = _step_functions(model, sizes)
    for run in variants.values():
        run()  # warm-up: first-call allocations
    seconds = median_seconds(variants, sizes.repeats)
    memory = {}
    for name, run in variants.items():
        model.zero_grad(set_to_none=True)  # each step's own memory then includes allocating its gradients
        memory[name] = resident_mb_during(run)
    plain_peak, full_peak = memory["plain_cross_entropy"][1], memory["full_logits"][1]
    return {"seconds": seconds,
            "time_vs_full_logits": {name: value / seconds["full_logits"] for name, value in seconds.items()},
            "peak_mb": {name: peak for name, (_, peak) in memory.items()},
            "step_mb": {name: peak - before for name, (before, peak) in memory.items()},
            "peak_vs_plain_cross_entropy": {name: peak / plain_peak for name, (_, peak) in memory.items()},
            "peak_vs_full_logits": {name: peak / full_peak for name, (_, peak) in memory.items()}}


# --- (d) soft-label bytes --------------------------------------------------------------

def label_bytes(sizes: Sizes) -> dict:
    """Bytes per answer token as the teacher cache stores them (int32 ids, fp16 probs, int64 offsets)."""
    from engine.teacher.teacher_pass import output_labels

    model = random_llama(sizes.label_vocab, 64, 1, 4, sizes.label_positions + 1)
    input_ids = torch.randint(1, sizes.label_vocab, (1, sizes.label_positions), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(input_ids=input_ids).logits[0]
    figures = {"dense_fp16": sizes.label_vocab * 2}
    for kind in ("sampled", "topk"):
        offsets, ids, probs = output_labels(torch.softmax(logits.float(), -1), kind, sizes.num_samples, 20,
                                            torch.Generator().manual_seed(0))
        figures[kind] = (ids.numel() * 4 + probs.numel() * 2 + offsets.numel() * 8) / sizes.label_positions
        figures[f"{kind}_vs_dense"] = figures[kind] / figures["dense_fp16"]
        figures[f"{kind}_ids_per_token"] = ids.numel() / sizes.label_positions
    return figures


# --- (e) training throughput of the embedded default -----------------------------------

def matmul_peak_gflops(repeats: int, threads: int | None = None) -> float:
    """This machine's fp32 matmul rate with `threads` torch threads (default: the current count):
    the best of a few square sizes."""
    if threads is not None:
        current = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return matmul_peak_gflops(repeats)
        finally:
            torch.set_num_threads(current)
    best = 0.0
    for size in (256, 512, 1024):
        a, b = torch.randn(size, size), torch.randn(size, size)
        a @ b
        seconds = statistics.median(_timed(lambda: a @ b) for _ in range(max(3, repeats)))
        best = max(best, 2 * size**3 / seconds / 1e9)
    return best


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def training_throughput(sizes: Sizes) -> dict:
    from engine.project.schema import ModelConfig
    from engine.training.losses import SparseTargets
    from engine.models import load_model
    from engine.training.student_forward import answer_cross_entropy

    model, _ = load_model(ModelConfig(name="toy-base", dtype="float32", device="cpu"))
    model.train()
    config = model.config
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(4, config.vocab_size, (sizes.mfu_batch, sizes.mfu_seq), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    answer = sizes.mfu_seq // 4  # distillation trains on the answer, the last quarter here
    positions = torch.tensor([(row, column) for row in range(sizes.mfu_batch)
                              for column in range(sizes.mfu_seq - 1 - answer, sizes.mfu_seq - 1)])
    label_ids = torch.randint(0, config.vocab_size, (len(positions), 8), generator=generator)
    targets = SparseTargets(positions, label_ids, torch.full(label_ids.shape, 1 / 8))

    def step():
        loss, _ = answer_cross_entropy(model, input_ids, attention_mask, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    seconds = statistics.median(_timed(step) for _ in range(sizes.mfu_steps))
    tokens = sizes.mfu_batch * sizes.mfu_seq
    embedding = config.vocab_size * config.hidden_size
    non_embedding = sum(p.numel() for p in model.parameters()) - embedding
    # 6 N per token (forward + backward), attention scores 12 L T d per token, the head at answer rows only.
    flops = (tokens * (6 * non_embedding + 12 * config.num_hidden_layers * sizes.mfu_seq * config.hidden_size)
             + 6 * len(positions) * embedding)
    # MFU against the whole machine: the matmul rate with one thread per usable CPU, however many
    # threads the step itself ran with (a step held to fewer threads than cores scores lower, as it should).
    from engine.threads import usable_cpus

    # On a loaded machine the all-core measurement comes out low (the other work takes cores), so the
    # peak is the larger of it and N x the one-thread rate: an MFU that errs low, never high.
    all_cores = usable_cpus()
    measured_all = matmul_peak_gflops(sizes.repeats, threads=all_cores)
    one_thread = matmul_peak_gflops(sizes.repeats, threads=1)
    peak = max(measured_all, all_cores * one_thread)
    step_threads_peak = matmul_peak_gflops(sizes.repeats)
    return {"tokens_per_s": tokens / seconds, "step_seconds": seconds, "model_gflops_per_s": flops / seconds / 1e9,
            "step_threads": torch.get_num_threads(), "peak_threads": all_cores,
            "matmul_gflops_per_s_all_threads_measured": measured_all, "matmul_gflops_per_s_one_thread": one_thread,
            "matmul_peak_gflops_per_s": peak, "mfu": flops / seconds / 1e9 / peak,
            "matmul_peak_gflops_per_s_at_step_threads": step_threads_peak,
            "mfu_at_step_threads": flops / seconds / 1e9 / step_threads_peak}


# --- (f) teacher labels: row by row (before commit 745cd07) against BatchLabels ----------------

def row_by_row_labels(logits: torch.Tensor, num_samples: int, generators: list[torch.Generator]) -> list:
    """The label drawing of engine/teacher/teacher_pass.py before 745cd07, per step: for every row a
    softmax, `torch.multinomial` of N with replacement from that input's CPU generator, `torch.unique`."""
    labels = []
    for row, generator in enumerate(generators):
        probs = torch.softmax(logits[row: row + 1].float(), dim=-1)
        draws = torch.multinomial(probs, num_samples, replacement=True, generator=generator)
        for draw in draws:
            unique, counts = torch.unique(draw, return_counts=True)
            labels.append((unique, counts.float() / num_samples))
    return labels


class RowByRowRecorder:
    """A StepRecorder that draws as the teacher pass did before 745cd07 (one call per row per step)."""

    def __init__(self, num_samples: int, generators: list[torch.Generator]):
        self.num_samples, self.generators = num_samples, generators
        self.steps: list[list] = []

    def __call__(self, logits: torch.Tensor) -> None:
        self.steps.append(row_by_row_labels(logits, self.num_samples, self.generators))

    def rows(self, kept: list[int]) -> list:
        from engine.teacher.labels import _offsets

        joined = []
        for row, length in enumerate(kept):
            per_step = [step[row] for step in self.steps[:length]]
            ids = torch.cat([ids for ids, _ in per_step]).long() if per_step else torch.zeros(0, dtype=torch.long)
            probs = torch.cat([probs for _, probs in per_step]) if per_step else torch.zeros(0)
            joined.append((_offsets(torch.tensor([len(ids) for ids, _ in per_step], dtype=torch.long)), ids, probs))
        return joined


def teacher_labels(sizes: Sizes) -> dict:
    from engine.teacher.generation import generate_all
    from engine.teacher.labels import BatchLabels, seeded_generators

    figures = {"draw": {}, "pass": {}}
    steps = sizes.label_steps
    for batch in sizes.label_batches:
        logits = torch.randn(steps, batch, sizes.labels_vocab, generator=torch.Generator().manual_seed(batch)) * 3

        def before():
            generators = seeded_generators(0, batch)
            for step in range(steps):
                row_by_row_labels(logits[step], sizes.num_samples, generators)

        def after():
            recorder = BatchLabels("sampled", sizes.num_samples, 0, seeded_generators(0, batch), steps)
            for step in range(steps):
                recorder(logits[step])
            recorder.rows([steps] * batch)

        before(), after()  # warm-up
        seconds = median_seconds({"row_by_row": before, "batch_labels": after}, sizes.repeats)
        figures["draw"][batch] = {"ms_per_step": {name: value / steps * 1e3 for name, value in seconds.items()},
                                  "speedup": seconds["row_by_row"] / seconds["batch_labels"]}

    # The whole teacher pass (generation + labels) on a small random Llama, same inputs at each batch size.
    model = random_llama(sizes.labels_vocab, sizes.teacher_hidden, sizes.teacher_layers, 4,
                         sizes.input_tokens + sizes.label_steps + 8)
    generator = torch.Generator().manual_seed(1)
    inputs = [torch.randint(1, sizes.labels_vocab, (sizes.input_tokens // 2 + i % (sizes.input_tokens // 2 + 1),),
                            generator=generator).tolist() for i in range(sizes.label_pass_inputs)]
    for batch in sizes.label_batches:
        def run(make):
            def go():
                generate_all(model, IdTokenizer(), inputs, batch_size=batch, max_new_tokens=steps, temperature=1.0,
                             seed=0, recorder_for=lambda indices: make(seeded_generators(0, len(inputs)), indices))
            return go

        seconds = median_seconds({
            "row_by_row": run(lambda gens, idx: RowByRowRecorder(sizes.num_samples, [gens[i] for i in idx])),
            "batch_labels": run(lambda gens, idx: BatchLabels("sampled", sizes.num_samples, 0, [gens[i] for i in idx],
                                                              steps)),
            "no_labels": run(lambda gens, idx: None)}, sizes.repeats)
        figures["pass"][batch] = {"seconds": seconds, "speedup": seconds["row_by_row"] / seconds["batch_labels"],
                                  "labels_share_before": 1 - seconds["no_labels"] / seconds["row_by_row"],
                                  "labels_share_after": 1 - seconds["no_labels"] / seconds["batch_labels"]}
    return figures


# --- (g) the shared prefix: encoded without the LM head; its KV cache per batch row ------------

def shared_prefix(sizes: Sizes) -> dict:
    from engine.teacher.generation import cache_keyword, encode_shared_prefix, prefix_cache_for_batch

    return_freed_memory_to_the_os()
    model = random_llama(sizes.prefix_vocab, sizes.teacher_hidden, sizes.teacher_layers, 4, sizes.prefix_tokens + 8)
    ids = torch.randint(1, sizes.prefix_vocab, (sizes.prefix_tokens,), generator=torch.Generator().manual_seed(0)).tolist()
    prompts = [ids + [5], ids + [6]]
    caches = {}

    @torch.no_grad()
    def full_logits():  # what encode_shared_prefix did before 745cd07: the LM head over every position
        output = model(input_ids=torch.tensor([ids]), use_cache=True)
        caches["full_logits"] = output[cache_keyword(model)]

    def keep_one():
        caches["logits_to_keep_1"] = encode_shared_prefix(model, prompts).cache

    full_logits(), keep_one()  # warm-up
    identical = all(torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)
                    for a, b in zip(caches["full_logits"].layers, caches["logits_to_keep_1"].layers))
    seconds = median_seconds({"full_logits": full_logits, "logits_to_keep_1": keep_one}, sizes.repeats)
    memory = {}
    for name, run in (("full_logits", full_logits), ("logits_to_keep_1", keep_one)):
        caches.clear()
        memory[name] = resident_mb_during(run)
    encode = {"seconds": seconds, "time_ratio": seconds["logits_to_keep_1"] / seconds["full_logits"],
              "step_mb": {name: peak - before for name, (before, peak) in memory.items()},
              "identical_cache": identical}

    # (ii) what a batch's cache holds of the prefix, per row, read from the cache tensors: a copy
    # per row (before, and models whose attention cannot share) against one copy for the batch.
    shared = encode_shared_prefix(model, prompts)
    config = model.config
    rows, max_length = sizes.prefix_rows, sizes.prefix_tokens + 1 + sizes.new_tokens
    one_copy = prefix_cache_for_batch(shared, rows, max_length, model)
    one_copy_bytes = sum(t.numel() * t.element_size() for layer in one_copy.layers
                         for t in (layer.prefix_keys, layer.prefix_values))
    cache = prefix_cache_for_batch(shared, rows, max_length)
    cache_bytes = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    prefix_bytes = sum(t[:, :, : len(shared.ids)].numel() * t.element_size()
                       for layer in cache.layers for t in (layer.keys, layer.values))
    shared_bytes = sum(t.numel() * t.element_size() for layer in shared.cache.layers for t in (layer.keys, layer.values))
    head_dim = config.hidden_size // config.num_attention_heads
    element = torch.finfo(model.dtype).bits // 8
    formula = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * len(shared.ids) * element
    kv = {"shape": {"layers": config.num_hidden_layers, "kv_heads": config.num_key_value_heads, "head_dim": head_dim,
                    "bytes_per_element": element, "prefix_tokens": len(shared.ids), "rows": rows,
                    "cache_positions": max_length},
          "cache_type": type(cache).__name__,
          "prefix_bytes_per_row_measured": prefix_bytes / rows, "cache_bytes_per_row": cache_bytes / rows,
          "shared_prefix_cache_bytes": shared_bytes, "prefix_bytes_per_row_formula": formula,
          "one_copy": {"shares_prefix": bool(getattr(one_copy, "shares_prefix", False)),
                       "prefix_bytes_per_batch": one_copy_bytes, "prefix_bytes_per_row": one_copy_bytes / rows},
          "rows_share_storage": len({layer.keys.data_ptr() for layer in cache.layers}) < len(cache.layers)
                                or cache.layers[0].keys.stride(0) == 0}
    # Llama-3-8B: 32 layers, 8 KV heads, head dim 128, bf16; a 2,000-token prefix.
    llama_row = 2 * 32 * 8 * 128 * 2000 * 2
    kv["llama3_8b"] = {"prefix_bytes_per_row": llama_row, "batch_16": 16 * llama_row, "batch_128": 128 * llama_row,
                       "one_copy": {"per_row_at_16": llama_row / 16, "batch_16": llama_row, "batch_128": llama_row}}
    return {"encode": encode, "kv_per_row": kv}


# --- (h) token batches on a skewed set of input lengths -----------------------------------------

def token_batching(sizes: Sizes) -> dict:
    from engine.teacher.generation import generate_batch, token_batches

    return_freed_memory_to_the_os()
    model = random_llama(sizes.teacher_vocab, sizes.teacher_hidden, sizes.teacher_layers, 4,
                         sizes.skew_long + sizes.new_tokens + 8)
    generator = torch.Generator().manual_seed(2)
    lengths = [sizes.skew_short] * sizes.skew_short_count + [sizes.skew_long] * sizes.skew_long_count
    order = torch.randperm(len(lengths), generator=generator).tolist()  # long inputs anywhere in the set
    prompts = [torch.randint(1, sizes.teacher_vocab, (lengths[i],), generator=generator).tolist() for i in order]
    tokenizer = IdTokenizer()
    plans = {"rows_only": token_batches(prompts, sizes.new_tokens, sizes.skew_batch_size, 0),
             "max_batch_tokens": token_batches(prompts, sizes.new_tokens, sizes.skew_batch_size, sizes.skew_max_tokens)}

    def run(batches):
        def go():
            torch.manual_seed(0)
            for batch in batches:
                generate_batch(model, tokenizer, [prompts[i] for i in batch], max_new_tokens=sizes.new_tokens,
                               temperature=1.0)
        return go

    figures = {}
    for name, batches in plans.items():
        widths = [max(len(prompts[i]) for i in batch) for batch in batches]
        figures[name] = {"batches": len(batches), "rows": [len(batch) for batch in batches],
                         "padded_prompt_tokens": sum(w * len(b) for w, b in zip(widths, batches)),
                         "padding_tokens": sum(w * len(b) - sum(len(prompts[i]) for i in b)
                                               for w, b in zip(widths, batches)),
                         "largest_batch_tokens": max((w + sizes.new_tokens) * len(b) for w, b in zip(widths, batches))}
    variants = {name: run(batches) for name, batches in plans.items()}
    seconds = median_seconds(variants, sizes.repeats)
    for name, go in variants.items():
        before, peak = resident_mb_during(go)
        figures[name].update(seconds=seconds[name], peak_mb=peak, step_mb=peak - before)
    figures["real_tokens"] = sum(lengths)
    figures["time_ratio"] = seconds["max_batch_tokens"] / seconds["rows_only"]
    figures["step_mb_ratio"] = figures["max_batch_tokens"]["step_mb"] / max(1e-9, figures["rows_only"]["step_mb"])
    return figures
