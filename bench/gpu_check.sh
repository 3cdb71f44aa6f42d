#!/usr/bin/env bash
# The GPU check of issues 10 (item 8) and 17 (item 9): one prepared script, under 10 minutes on one H200.
#
#   0. installs the project (pip install --no-deps --no-build-isolation -e ., offline);
#   1. the CUDA tests (they skip elsewhere) with the device, label, generation, LoRA and chat-template tests;
#   2. a random-weight model with Qwen2.5-0.5B-Instruct's shapes (no weights can be fetched there), bf16,
#      the ChatML template and a 1,500-token system prompt, and three runs of `ctxdistill run`, each a
#      teacher pass and training:
#        sampled  labels = "sampled" (N = 100), LoRA r = 16 on all linear layers, STEPS steps, 512 inputs
#        topk     labels = "topk" (k = 20), full fine-tuning (every weight), STEPS steps, 512 inputs
#        ensemble teacher.ensemble = 4, sampled labels, LoRA, STEPS / 3 steps, 128 inputs
#   3. figures per run -> $OUT/gpu_check.json and printed: teacher seconds and tokens/s, training
#      tokens/s, peak memory, MFU against the card's dense bf16 peak, the card's name.
#
# Run from the repository root:  bash bench/gpu_check.sh        (STEPS=300 by default)
# DRY=1 checks the plumbing on a CPU in a minute or two: a 2-layer model of the same kind, tiny counts,
# no tests, no install (tests/engine/test_gpu_check.py runs it).
# Needs torch with CUDA, transformers>=5, peft, accelerate, jinja2, tokenizers, safetensors; tomlkit,
# rouge-score, nltk and datasets where missing (the device README's .whl carry; then WHEELS=1 installs them first).
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
INSTALL=${INSTALL:-$([ "$DRY" = 1 ] && echo 0 || echo 1)}
[ "$DRY" = 1 ] && STEPS=3
BEGAN=$(date +%s)
$PYTHON -c "import torch; assert torch.cuda.is_available() or $DRY, 'no CUDA here'; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu (dry run)')" | tee "$OUT/gpu.txt"
$PYTHON -c "import torch, transformers, peft, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__)" | tee -a "$OUT/gpu.txt"

# --- 0. install -----------------------------------------------------------------------------
INSTALLED=skipped
if [ "$INSTALL" = 1 ]; then
  set +e
  # Offline: the dependencies come from the image or WHEELS=1; the project itself from this checkout.
  $PYTHON -m pip install -q --no-deps --no-index --no-build-isolation -e . 2>&1 | tail -5 | tee "$OUT/install.log"
  INSTALLED=${PIPESTATUS[0]}
  set -e
  (cd /tmp && $PYTHON -c "import engine, engine.cli; print('installed engine from', engine.__file__)") | tee -a "$OUT/install.log"
fi

# --- 1. tests -------------------------------------------------------------------------------
TESTS=skipped
if [ "$DRY" != 1 ]; then
set +e
timeout 150 $PYTHON -m pytest -q -p no:cacheprovider -x tests/engine/test_models.py tests/engine/test_devices.py \
  tests/engine/test_labels.py tests/engine/test_lora.py tests/engine/test_chat_templates.py 2>&1 | tee "$OUT/tests.log"
TESTS=${PIPESTATUS[0]}
set -e
fi

# --- 2. a Qwen2.5-0.5B-shaped model in bf16; three runs ---------------------------------------
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
model = Qwen2ForCausalLM(config)
# The test tokenizer has a few hundred tokens and the teacher samples from the raw softmax (the model's own
# generation_config, suppress_tokens included, is not applied), so the random weights themselves keep the
# other ids unlikely: the last hidden channel carries +1 for every id the tokenizer has (no layer adds to
# it), and the tied head reads it back as +1 for those ids and -1 for the rest, a logit gap of about
# 2 x sqrt(hidden) that no sampled token crosses. Labels still cover the whole vocabulary.
known = len(tokenizer)
with torch.no_grad():
    embedding = model.get_input_embeddings().weight
    embedding[:, -1] = -1.0
    embedding[:known, -1] = 1.0
    for layer in model.model.layers:
        layer.self_attn.o_proj.weight[-1] = 0
        layer.mlp.down_proj.weight[-1] = 0
model = model.to(torch.bfloat16)
model.save_pretrained(work / "model")
tokenizer.save_pretrained(work / "model")
print("parameters", sum(p.numel() for p in model.parameters()))

rules = "\n".join(f"{i}. Rule {i}: answer politely, name the order number, never promise a refund, "
                  f"and keep to the facts of case {i}." for i in range(1, 16))
examples = "\n".join(f"Customer: where is order {n}?\nAda: Order {n} ships tomorrow." for n in range(100, 112))
system = f"You are Ada, the support assistant of Example Corp.\n{rules}\n{examples}\n"
print("system prompt tokens", len(tokenizer(system).input_ids))
# Each rendering of the ensemble draws 2 of these worked examples into the user turn.
shots = [f"Customer: where is order {n}? Ada: Order {n} ships on day {n % 7}." for n in range(200, 208)]
lora = 'lora = { r = 16, alpha = 32, target_modules = "all-linear", merge = true }'
runs = {  # name: (inputs, steps, labels, LoRA or full, ensemble, learning rate)
    "sampled": (512, steps, "sampled", lora, 1, "2e-4"),
    "topk": (512, steps, "topk", "", 1, "2e-5"),
    "ensemble": (128, max(2, steps // 3), "sampled", lora, 4, "2e-4"),
}
TRIPLE = '"' * 3
for name, (count, run_steps, labels, adapter, ensemble, rate) in runs.items():
    folder = work / name
    folder.mkdir()
    (folder / "tasks.py").write_text(
        "def questions(rng, n):\n"
        "    return [{'input': f'where is order {rng.randint(100, 999)}?'} for _ in range(n)]\n")
    teacher = ("{% for shot in " + repr(shots) + " | sample(2) %}{{ shot }}\n{% endfor %}{{ input }}"
               if ensemble > 1 else "{{ input }}")
    (folder / "project.toml").write_text(f"""
name = "gpu-check-{name}"
[model]
name = "{work / 'model'}"
chat_template = true
[inputs]
function = "tasks:questions"
count = {16 if dry else count}
[teacher]
system = {TRIPLE}{system}{TRIPLE}
template = {TRIPLE}{teacher}{TRIPLE}
ensemble = {ensemble}
[student]
template = "{{{{ input }}}}"
[extract]
kind = "identity"
strip = false
[generate]
max_new_tokens = 64
batch_size = 64
[distill]
labels = "{labels}"
max_steps = {run_steps}
batch_size = {4 if dry else 16}
learning_rate = {rate}
log_every = {1 if dry else 10}
{adapter}
[eval]
count = {4 if dry else 32}
reference = "teacher"
metrics = ["rouge_l", "answer_kl"]
""")
PY
# Each run has its own limit, so one that stalls leaves time for the others (the whole script < 10 minutes).
declare -A LIMIT=([sampled]=150 [topk]=150 [ensemble]=100)
[ "$DRY" = 1 ] && LIMIT=([sampled]=900 [topk]=900 [ensemble]=900)  # a loaded CPU, not a time budget
STATUS=""
for NAME in sampled topk ensemble; do
  START=$(date +%s)
  set +e
  timeout "${LIMIT[$NAME]}" $PYTHON -m engine.cli run "$WORK/$NAME" --quiet > "$OUT/run_$NAME.log" 2>&1
  CODE=$?
  set -e
  tail -3 "$OUT/run_$NAME.log"
  echo "run $NAME: exit $CODE, $(( $(date +%s) - START )) s" | tee -a "$OUT/gpu.txt"
  STATUS="$STATUS $NAME=$CODE"
done

# --- 3. figures -------------------------------------------------------------------------------
$PYTHON - "$WORK" "$OUT" "$TESTS" "$INSTALLED" "$STATUS" "$(( $(date +%s) - BEGAN ))" <<'PY'
import json
import statistics
import sys
from pathlib import Path

import torch

from engine.teacher.teacher_pass import KEY_FILE, LABELS_FILE

work, out, tests, installed, status, seconds = Path(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:7]
name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (dry run)"
peak = 989e12 if ("H100" in name or "H200" in name) else None  # dense bf16, SXM
config = json.loads((work / "model" / "config.json").read_text())
hidden, layers, intermediate = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
kv = config["num_key_value_heads"] * hidden // config["num_attention_heads"]
# Parameters the student's tokens pass through (embedding lookup excluded; the LM head runs on answer rows only).
n = layers * (hidden * hidden * 2 + hidden * kv * 2 + 3 * hidden * intermediate)


def figures_of(run: str) -> dict:
    found = sorted((work / run / "runs").glob("*/events.jsonl")) if (work / run / "runs").exists() else []
    if not found:
        return {"error": f"no run folder (see run_{run}.log)"}
    run_dir = found[-1].parent
    events = [json.loads(line) for line in found[-1].read_text().splitlines()]
    train = [event for event in events if event["type"] == "train"]
    done = [event for event in events if event["type"] == "done"]
    figures = {"status": done[-1].get("status") if done else "unfinished",
               "error": next((e["message"] for e in events if e["type"] == "error"), None)}
    teacher = run_dir / "teacher"
    if (teacher / KEY_FILE).exists():
        meta = json.loads((teacher / KEY_FILE).read_text())
        generated = sum(len(t["output_ids"]) for t in torch.load(teacher / LABELS_FILE, weights_only=True))
        figures.update(teacher_seconds=meta["seconds"], teacher_outputs=meta["count"], teacher_tokens=generated,
                       teacher_tokens_per_s=round(generated / max(meta["seconds"], 1e-9), 1))
    if train:
        steady = train[len(train) // 2:]
        tokens_per_s = statistics.median(event["tokens_per_s"] for event in steady)
        lora = "lora" in (work / run / "project.toml").read_text()
        # LoRA: forward 2N + activation gradients 2N per token (frozen weights need no weight gradients);
        # full fine-tuning 6N. Both also as 6N, for comparison with published MFU figures.
        flops_per_token = (4 if lora else 6) * n
        figures.update(trained="LoRA r=16" if lora else "full", steps=train[-1]["step"],
                       train_seconds=train[-1]["elapsed_s"], tokens_per_s=tokens_per_s,
                       peak_memory_mb=max(event["memory_mb"] for event in train), final_loss=train[-1]["loss"],
                       mfu=round(flops_per_token * tokens_per_s / peak, 4) if peak else None,
                       mfu_6n=round(6 * n * tokens_per_s / peak, 4) if peak else None)
    if (run_dir / "metrics.json").exists():
        figures["metrics"] = json.loads((run_dir / "metrics.json").read_text())
    return figures


result = {"card": name, "install_exit_status": installed, "tests_exit_status": tests,
          "run_exit_status": dict(item.split("=") for item in status.split()), "script_seconds": int(seconds),
          "non_embedding_parameters": n, "runs": {run: figures_of(run) for run in ("sampled", "topk", "ensemble")}}
(out / "gpu_check.json").write_text(json.dumps(result, indent=2))
print(json.dumps({**result, "runs": {run: {k: v for k, v in f.items() if k != "metrics"}
                                     for run, f in result["runs"].items()}}, indent=2))
print(f"{'run':9s} {'teacher tok/s':>13s} {'train tok/s':>11s} {'peak MB':>8s} {'MFU':>6s}  trained")
for run, f in result["runs"].items():
    mfu = f"{f['mfu'] * 100:5.1f}%" if f.get("mfu") is not None else "     -"
    print(f"{run:9s} {f.get('teacher_tokens_per_s', float('nan')):13.0f} {f.get('tokens_per_s', float('nan')):11.0f} "
          f"{f.get('peak_memory_mb', float('nan')):8.0f} {mfu}  {f.get('trained', '-')}")
PY
