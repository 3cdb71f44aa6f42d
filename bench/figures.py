"""The bench's figures, (a) to (e) of issue 9; each returns a dict of plain numbers."""

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

    @classmethod
    def tiny(cls) -> "Sizes":
        return cls(repeats=1, prefix_tokens=40, inputs=4, input_tokens=6, batch_size=2, new_tokens=3, teacher_vocab=500,
                   teacher_hidden=32, alignment_lengths=(32, 64), alignment_vocab=300, step_vocab=1000, step_hidden=32,
                   step_batch=2, step_seq=16, step_answer=4, step_label_width=4, vocab_chunk=256, label_vocab=1000,
                   label_positions=8, num_samples=20, mfu_batch=2, mfu_seq=16, mfu_steps=1)


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
    plain_peak = memory["plain_cross_entropy"][1]
    return {"seconds": seconds,
            "time_vs_full_logits": {name: value / seconds["full_logits"] for name, value in seconds.items()},
            "peak_mb": {name: peak for name, (_, peak) in memory.items()},
            "step_mb": {name: peak - before for name, (before, peak) in memory.items()},
            "peak_vs_plain_cross_entropy": {name: peak / plain_peak for name, (_, peak) in memory.items()}}


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

def matmul_peak_gflops(repeats: int) -> float:
    """This machine's fp32 matmul rate at the current thread count: the best of a few square sizes."""
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
    peak = matmul_peak_gflops(sizes.repeats)
    return {"tokens_per_s": tokens / seconds, "step_seconds": seconds, "model_gflops_per_s": flops / seconds / 1e9,
            "matmul_peak_gflops_per_s": peak, "mfu": flops / seconds / 1e9 / peak}
