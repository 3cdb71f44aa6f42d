#!/usr/bin/env bash
# The GPU check of issue 10 (item 8): one prepared script, well under a 10-minute limit.
#
#   1. the tests that need CUDA (they skip elsewhere), with the chat/LoRA/model tests, on the GPU machine's python;
#   2. a random-weight model with Qwen2.5-0.5B-Instruct's shapes (no weights can be fetched there), the
#      ChatML template, a 1,500-token system prompt, LoRA r=16 on all linear layers, bf16, STEPS steps;
#   3. figures from the run's events -> $OUT/gpu_check.json: tokens/s, peak memory, MFU, the card's name.
#
# Run from the repository root:  bash bench/gpu_check.sh        (STEPS=300 by default)
# DRY=1 checks the plumbing on a CPU in a minute: a 2-layer model of the same kind, tiny counts, no tests.
# Needs torch with CUDA, transformers>=5, peft, accelerate, jinja2, tokenizers, safetensors; tomlkit,
# rouge-score and nltk where missing (the device README's .whl carry; then WHEELS=1 installs them first).
set -euo pipefail
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
STEPS=${STEPS:-300}
WORK=${WORK:-/tmp/ctxdistill-gpu-check}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
if [ "${WHEELS:-0}" = 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=$PYTHONPATH:/tmp/site
fi

PYTHON=${PYTHON:-python3}
DRY=${DRY:-0}
[ "$DRY" = 1 ] && STEPS=2
$PYTHON -c "import torch; assert torch.cuda.is_available() or $DRY, 'no CUDA here'; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu (dry run)')" | tee "$OUT/gpu.txt"
$PYTHON -c "import torch, transformers, peft, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__)" | tee -a "$OUT/gpu.txt"

# --- 1. tests -------------------------------------------------------------------------------
TESTS=skipped
if [ "$DRY" != 1 ]; then
set +e
timeout 240 $PYTHON -m pytest -q -p no:cacheprovider -x tests/engine/test_models.py tests/engine/test_lora.py \
  tests/engine/test_chat_templates.py 2>&1 | tee "$OUT/tests.log"
TESTS=${PIPESTATUS[0]}
set -e
fi

# --- 2. a Qwen2.5-0.5B-shaped model, LoRA in bf16 ---------------------------------------------
rm -rf "$WORK" && mkdir -p "$WORK"
$PYTHON - "$WORK" "$STEPS" "$DRY" <<'PY'
import sys
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

sys.path.insert(0, "tests/engine")
from chat_fixtures import build_qwen2_tokenizer  # a Qwen2Tokenizer (small BPE) with ChatML, as Qwen's

work, steps, dry = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
tokenizer = build_qwen2_tokenizer()
vocab = 151936 if not dry else 1024  # Qwen2.5's: the LM head is a large share of the model
shapes = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14)
if dry:
    shapes = dict(hidden_size=56, intermediate_size=128, num_hidden_layers=2, num_attention_heads=14)
config = Qwen2Config(vocab_size=vocab, **shapes, num_key_value_heads=2, max_position_embeddings=32768,
                     rope_theta=1_000_000.0, tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id)
torch.manual_seed(0)
model = Qwen2ForCausalLM(config).to(torch.bfloat16)
# The test tokenizer has ~300 tokens: ids past it are never sampled (labels still cover the whole vocabulary).
model.generation_config.suppress_tokens = list(range(len(tokenizer), vocab))
model.save_pretrained(work / "model")
tokenizer.save_pretrained(work / "model")
print("parameters", sum(p.numel() for p in model.parameters()))

rules = "\n".join(f"{i}. Rule {i}: answer politely, name the order number, never promise a refund, "
                  f"and keep to the facts of case {i}." for i in range(1, 16))
examples = "\n".join(f"Customer: where is order {n}?\nAda: Order {n} ships tomorrow." for n in range(100, 112))
system = f"You are Ada, the support assistant of Example Corp.\n{rules}\n{examples}\n"
(work / "project").mkdir()
(work / "project" / "tasks.py").write_text('''
def questions(rng, n):
    return [{"input": f"where is order {rng.randint(100, 999)}?"} for _ in range(n)]
''')
(work / "project" / "project.toml").write_text(f'''
name = "gpu-check"
[model]
name = "{work / 'model'}"
chat_template = true
[inputs]
function = "tasks:questions"
count = {16 if dry else 512}
[teacher]
system = """{system}"""
template = "{{{{ input }}}}"
[student]
template = "{{{{ input }}}}"
[extract]
kind = "identity"
strip = false
[generate]
max_new_tokens = 64
batch_size = 64
[distill]
max_steps = {steps}
batch_size = {4 if dry else 16}
learning_rate = 2e-4
log_every = {1 if dry else 10}
lora = {{ r = 16, alpha = 32, target_modules = "all-linear", merge = true }}
[eval]
count = {4 if dry else 64}
reference = "teacher"
metrics = ["rouge_l", "answer_kl"]
''')
print("system prompt tokens", len(tokenizer(system).input_ids))
PY
START=$(date +%s)
timeout 420 $PYTHON -m engine.cli run "$WORK/project" --quiet 2>&1 | tee "$OUT/run.log"
echo "run seconds $(( $(date +%s) - START ))" | tee -a "$OUT/run.log"

# --- 3. figures -------------------------------------------------------------------------------
$PYTHON - "$WORK" "$OUT" "$TESTS" <<'PY'
import json
import statistics
import sys
from pathlib import Path

import torch

work, out, tests = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
(run_dir,) = (work / "project" / "runs").iterdir()
events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
train = [event for event in events if event["type"] == "train"]
steady = train[len(train) // 2:] or train
tokens_per_s = statistics.median(event["tokens_per_s"] for event in steady)
name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (dry run)"
peak = 989e12 if ("H100" in name or "H200" in name) else None  # dense bf16, SXM
hidden, layers, intermediate, kv = 896, 24, 4864, 2 * 64
# Parameters the student's tokens pass through (embedding lookup excluded; the LM head runs on answer rows only).
per_layer = hidden * hidden * 2 + hidden * kv * 2 + 3 * hidden * intermediate
n = layers * per_layer
figures = {
    "card": name, "tests_exit_status": tests, "steps": train[-1]["step"] if train else 0,
    "tokens_per_s": tokens_per_s, "peak_memory_mb": max(event["memory_mb"] for event in train),
    "train_seconds": train[-1]["elapsed_s"] if train else None,
    "phases_s": {e.get("stage"): e.get("elapsed_s") for e in events if e["type"] == "progress"},
    "non_embedding_parameters": n,
    # LoRA: forward 2N + activation gradients 2N per token (frozen weights need no weight gradients);
    # 6N is the usual full fine-tuning count, given for comparison with published MFU figures.
    "mfu_4n": round(4 * n * tokens_per_s / peak, 4) if peak else None,
    "mfu_6n": round(6 * n * tokens_per_s / peak, 4) if peak else None,
    "metrics": json.loads((run_dir / "metrics.json").read_text()),
}
(out / "gpu_check.json").write_text(json.dumps(figures, indent=2))
print(json.dumps({key: value for key, value in figures.items() if key != "metrics"}, indent=2))
PY
