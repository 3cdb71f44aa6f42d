"""Printing the figures: one block per figure, ratios beside the goals of issue 9."""

from __future__ import annotations


def print_report(letter: str, figure: dict, sizes) -> None:
    {"a": teacher_pass, "b": alignment, "c": distillation_step, "d": label_bytes, "e": training_throughput}[letter](figure, sizes)
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
    print("    variant                time        vs full logits   peak RSS    vs plain CE   step's own MB")
    for name in ("full_logits", "answer_only", "answer_chunked", "plain_cross_entropy"):
        print(f"    {name:20s} {figure['seconds'][name]:8.3f} s   {figure['time_vs_full_logits'][name]:6.2f}x        "
              f"{figure['peak_mb'][name]:8.0f} MB  {figure['peak_vs_plain_cross_entropy'][name]:6.2f}x      "
              f"{figure['step_mb'][name]:8.0f}")
    print("    goals: answer-only step <= 0.8x the full-logits step's time, peak <= 1.1x plain CE's")


def label_bytes(figure: dict, sizes) -> None:
    print(f"(d) soft labels per answer token at vocab {sizes.label_vocab} (random teacher: near-uniform, the worst case)")
    print(f"    dense fp16             {figure['dense_fp16']:8.0f} bytes")
    print(f"    sampled (N={sizes.num_samples})      {figure['sampled']:8.0f} bytes   {figure['sampled_vs_dense'] * 100:.2f}% "
          f"of dense ({figure['sampled_ids_per_token']:.0f} distinct ids)   goal <= 1%")
    print(f"    top-20                 {figure['topk']:8.0f} bytes   {figure['topk_vs_dense'] * 100:.2f}% of dense")


def training_throughput(figure: dict, sizes) -> None:
    print(f"(e) training the embedded default (toy-base), batch {sizes.mfu_batch} x {sizes.mfu_seq}, AdamW, answer-only head")
    print(f"    {figure['tokens_per_s']:.0f} tokens/s, {figure['model_gflops_per_s']:.2f} model GFLOP/s of "
          f"{figure['matmul_peak_gflops_per_s']:.1f} GFLOP/s measured matmul peak: MFU {figure['mfu'] * 100:.1f}%")
