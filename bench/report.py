"""Printing the figures: one block per figure, ratios beside the goals of issues 9 and 17."""

from __future__ import annotations


def print_report(letter: str, figure: dict, sizes) -> None:
    {"a": teacher_pass, "b": alignment, "c": distillation_step, "d": label_bytes, "e": training_throughput,
     "f": teacher_labels, "g": shared_prefix, "h": token_batching}[letter](figure, sizes)
    print(f"    (measured in {figure['bench_seconds']:.0f} s)\n")


def teacher_pass(figure: dict, sizes) -> None:
    seconds = figure["seconds"]
    print(f"(a) teacher pass: {sizes.inputs} inputs of {sizes.input_tokens // 2}-{sizes.input_tokens} tokens, "
          f"{sizes.prefix_tokens}-token shared prefix, batch {sizes.batch_size}, {sizes.new_tokens} new tokens "
          f"(random Llama, hidden {sizes.teacher_hidden}, {sizes.teacher_layers} layers, vocab {sizes.teacher_vocab})")
    print(f"    no prefix            {seconds['no_prefix']:8.3f} s   1.00x")
    print(f"    prefix, reused       {seconds['prefix_reused']:8.3f} s   {figure['prefix_reused_vs_no_prefix']:.2f}x   goal <= 1.5x")
    print(f"    prefix, recomputed   {seconds['prefix_recomputed']:8.3f} s   "
          f"{seconds['prefix_recomputed'] / seconds['no_prefix']:.2f}x   (reuse is {figure['prefix_recomputed_vs_reused']:.2f}x faster; "
          f"identical tokens: {figure['identical_tokens']})")
    print(f"    projected for 256 inputs (prefix paid once, measured per-batch times): "
          f"{figure['projected_256_inputs_reused_vs_no_prefix']:.2f}x   goal <= 1.5x")
    print(f"    breakdown: prefix encoded once in {figure['prefix_encode_seconds']:.3f} s; a decoding step of one batch "
          f"{figure['decode_step_seconds_with_prefix'] * 1e3:.1f} ms with the prefix in the cache, "
          f"{figure['decode_step_seconds_without_prefix'] * 1e3:.1f} ms without")


def alignment(figure: dict, sizes) -> None:
    print("(b) answer alignment (byte-level BPE, multi-byte characters split over tokens): ms per 1,000 output tokens")
    for length in sizes.alignment_lengths:
        row = figure[length]["ms_per_1000_tokens"]
        print(f"    {length:5d} tokens   linear {row['linear']:8.3f}   decoding every prefix {row['prefix_decoding']:9.2f}"
              f"   {figure[length]['speedup']:.0f}x faster   goal <= 1 ms")
    print(f"    per-token time, longest / shortest output: {figure['linear_per_token_growth']:.2f} (1.0 = linear)")


def distillation_step(figure: dict, sizes) -> None:
    print(f"(c) distillation step (forward + backward): batch {sizes.step_batch} x {sizes.step_seq} tokens, "
          f"{sizes.step_answer} answer tokens per row, vocab {sizes.step_vocab} (random Llama, hidden {sizes.step_hidden})")
    print("    variant                time        vs full logits   peak RSS    vs full logits (before)   vs plain CE (HF labels=)   step's own MB")
    for name in ("full_logits", "answer_only", "answer_chunked", "plain_cross_entropy"):
        print(f"    {name:20s} {figure['seconds'][name]:8.3f} s   {figure['time_vs_full_logits'][name]:6.2f}x        "
              f"{figure['peak_mb'][name]:8.0f} MB  {figure['peak_vs_full_logits'][name]:6.2f}x                    "
              f"{figure['peak_vs_plain_cross_entropy'][name]:6.2f}x                     {figure['step_mb'][name]:8.0f}")
    print("    goals: answer-only step <= 0.8x the full-logits step's time, peak <= 1.1x plain CE's")


def label_bytes(figure: dict, sizes) -> None:
    print(f"(d) soft labels per answer token at vocab {sizes.label_vocab} (random teacher: near-uniform, the worst case)")
    print(f"    dense fp16             {figure['dense_fp16']:8.0f} bytes")
    print(f"    sampled (N={sizes.num_samples})      {figure['sampled']:8.0f} bytes   {figure['sampled_vs_dense'] * 100:.2f}% "
          f"of dense ({figure['sampled_ids_per_token']:.0f} distinct ids)   goal <= 1%")
    print(f"    top-20                 {figure['topk']:8.0f} bytes   {figure['topk_vs_dense'] * 100:.2f}% of dense")


def training_throughput(figure: dict, sizes) -> None:
    print(f"(e) training the embedded default (toy-base), batch {sizes.mfu_batch} x {sizes.mfu_seq}, AdamW, answer-only head")
    print(f"    {figure['tokens_per_s']:.0f} tokens/s with {figure['step_threads']} torch thread(s), "
          f"{figure['model_gflops_per_s']:.2f} model GFLOP/s of a {figure['matmul_peak_gflops_per_s']:.1f} GFLOP/s fp32 "
          f"matmul peak over all {figure['peak_threads']} usable CPUs: MFU {figure['mfu'] * 100:.1f}%")
    print(f"    peak = max(measured with {figure['peak_threads']} threads {figure['matmul_gflops_per_s_all_threads_measured']:.1f}, "
          f"{figure['peak_threads']} x one thread's {figure['matmul_gflops_per_s_one_thread']:.1f}) GFLOP/s")
    print(f"    (against the {figure['matmul_peak_gflops_per_s_at_step_threads']:.1f} GFLOP/s of {figure['step_threads']} "
          f"thread(s) alone: {figure['mfu_at_step_threads'] * 100:.1f}%)")


def teacher_labels(figure: dict, sizes) -> None:
    print(f"(f) teacher labels, sampled N={sizes.num_samples}: row by row (softmax, multinomial, unique per row per step; "
          f"before 745cd07) against BatchLabels (one inverse-CDF draw per step, one transfer per batch)")
    print(f"    drawing alone, random logits, vocab {sizes.labels_vocab}, {sizes.label_steps} steps: ms per step")
    for batch, row in figure["draw"].items():
        ms = row["ms_per_step"]
        print(f"    batch {batch:3d}   row by row {ms['row_by_row']:8.2f}   BatchLabels {ms['batch_labels']:8.2f}   "
              f"row by row / BatchLabels {row['speedup']:.2f}x")
    print(f"    whole teacher pass, {sizes.label_pass_inputs} inputs of {sizes.input_tokens // 2}-{sizes.input_tokens} tokens, "
          f"{sizes.label_steps} new tokens (random Llama, hidden {sizes.teacher_hidden}, {sizes.teacher_layers} layers, "
          f"vocab {sizes.labels_vocab}): seconds")
    for batch, row in figure["pass"].items():
        seconds = row["seconds"]
        print(f"    batch {batch:3d}   row by row {seconds['row_by_row']:7.2f}   BatchLabels {seconds['batch_labels']:7.2f}   "
              f"no labels {seconds['no_labels']:7.2f}   row by row / BatchLabels {row['speedup']:.2f}x; labels' share of the pass "
              f"{row['labels_share_before'] * 100:.0f}% -> {row['labels_share_after'] * 100:.0f}%")


def shared_prefix(figure: dict, sizes) -> None:
    encode, kv = figure["encode"], figure["kv_per_row"]
    print(f"(g) shared prefix of {sizes.prefix_tokens} tokens (random Llama, hidden {sizes.teacher_hidden}, "
          f"{sizes.teacher_layers} layers, vocab {sizes.prefix_vocab})")
    for name in ("full_logits", "logits_to_keep_1"):
        print(f"    encode, {name:17s} {encode['seconds'][name]:7.3f} s   step's own memory {encode['step_mb'][name]:7.0f} MB")
    print(f"    logits_to_keep=1 takes {encode['time_ratio']:.2f}x the time; identical cache: {encode['identical_cache']}")
    shape = kv["shape"]
    print(f"    prefix KV held per batch row ({kv['cache_type']}, {shape['rows']} rows, {shape['layers']} layers, "
          f"{shape['kv_heads']} KV heads, head dim {shape['head_dim']}, {shape['bytes_per_element']}-byte elements): "
          f"{kv['prefix_bytes_per_row_measured'] / 1e6:.3f} MB measured, {kv['prefix_bytes_per_row_formula'] / 1e6:.3f} MB "
          f"by formula 2 x layers x kv_heads x head_dim x prefix x bytes; rows share storage: {kv['rows_share_storage']}")
    one = kv["one_copy"]
    print(f"    one copy for the batch (engine/teacher/shared_prefix.py, used: {one['shares_prefix']}): "
          f"{one['prefix_bytes_per_batch'] / 1e6:.3f} MB per batch, {one['prefix_bytes_per_row'] / 1e6:.3f} MB per row")
    llama = kv["llama3_8b"]
    print(f"    Llama-3-8B, 2,000-token prefix, bf16: a copy per row {llama['prefix_bytes_per_row'] / 1e6:.0f} MB per row, "
          f"{llama['batch_16'] / 1e9:.2f} GB at batch 16, {llama['batch_128'] / 1e9:.1f} GB at batch 128; one copy: "
          f"{llama['one_copy']['batch_16'] / 1e6:.0f} MB at any batch size")


def token_batching(figure: dict, sizes) -> None:
    print(f"(h) token batches: {sizes.skew_short_count} prompts of {sizes.skew_short} tokens and {sizes.skew_long_count} of "
          f"{sizes.skew_long}, {sizes.new_tokens} new tokens, batch_size {sizes.skew_batch_size} "
          f"(random Llama, hidden {sizes.teacher_hidden}, vocab {sizes.teacher_vocab})")
    for name, label in (("rows_only", "rows only (before)"), ("max_batch_tokens", f"max_batch_tokens {sizes.skew_max_tokens}")):
        row = figure[name]
        print(f"    {label:22s} {row['batches']:3d} batches  padding {row['padding_tokens']:6d} tokens  largest batch "
              f"{row['largest_batch_tokens']:6d} tokens  {row['seconds']:7.2f} s  step's own memory {row['step_mb']:6.0f} MB")
    print(f"    prompt tokens {figure['real_tokens']}; max_batch_tokens takes {figure['time_ratio']:.2f}x the time, "
          f"{figure['step_mb_ratio']:.2f}x the memory")
