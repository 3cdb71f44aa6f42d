"""The model card (`README.md`) of a distilled student: what a published folder must say about itself.

One card, filled from the run folder (issue 17, item 8): the base model, what was
distilled (each operation's teacher and student templates, or a template's hash
when it is long), the soft labels, the training steps and the before/after table
from metrics.json. The run writes it into `student/` (and `student/merged/`), and
`ctxdistill export` into the folder it exports (engine/runs/export.py).

The YAML header is the Hub's: `base_model` only when the project's model is a hub
id (the Hub rejects a local path there; the body names it either way).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from engine.project.schema import Project, Stage
from engine.runs.events import read_events

CARD = "README.md"
LONG_TEMPLATE = 1500  # characters: a longer template is recorded by its hash (it is whole in the run's project.toml)
TABLE_ROWS = ("teacher", "student_before", "student_after")


def write_model_card(folder: Path, project: Project, run_dir: Path, metrics: dict, *, adapter: bool = False) -> None:
    """Write the filled card into `folder` (an adapter folder gets peft's header: `library_name: peft`)."""
    from engine.runs import atomic

    atomic.write_text(Path(folder) / CARD, model_card(project, run_dir, metrics, adapter=adapter))


def model_card(project: Project, run_dir: Path, metrics: dict, *, adapter: bool = False) -> str:
    base = project.model.name
    header = ["---"]
    if is_hub_id(project):
        header.append(f"base_model: {base}")
    header += [f"library_name: {'peft' if adapter else 'transformers'}", "pipeline_tag: text-generation",
               "tags:", "- ctxdistill", "- context-distillation", "---", ""]
    lines = [f"# {project.name}: {base} with a context distilled into its weights", ""]
    if project.description:
        lines += [project.description, ""]
    lines += [f"This model is `{base}` fine-tuned by context distillation (Snell, Klein & Zhong, 2022, \"Learning by "
              "Distilling Context\") with ctxdistill: given only the short student prompt, it answers the way the "
              "base model answers the long teacher prompt.", "",
              "## What was distilled", "", f"- base model: `{base}`"]
    if adapter:
        lines.append(f"- this folder is a LoRA adapter onto `{base}` (load it with `PeftModel.from_pretrained`)")
    if project.model.chat_template:
        lines.append("- prompts: rendered as a conversation with the tokenizer's chat template (`apply_chat_template`)")
    steps = training_steps(run_dir)
    for stage in project.stages:
        distill = stage.distill
        where = f" (stage `{stage.name}`)" if project.combined else ""
        lines.append(f"- labels{where}: {labels_text(stage)}")
        lines.append(f"- training{where}: {steps.get(stage.name, '?')} steps, batch size {distill.batch_size} x "
                     f"{distill.grad_accum} accumulation, learning rate {distill.learning_rate:g}"
                     + (f", LoRA r = {distill.lora.r}, alpha = {distill.lora.alpha:g}" if distill.lora.r else ""))
    for operation in project.operations:
        view = project.for_operation(operation.name)
        lines += ["", f"### Operation `{operation.name}`" if project.combined else "", ""]
        lines += template_text("teacher template", view.teacher.template, view.teacher.system)
        lines += template_text("student template", view.student.template, view.student.system)
    lines += ["", "## Before and after", "", *metrics_text(project, metrics), "",
              "## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", ""]
    if adapter:
        lines += ["from peft import PeftModel", "",
                  f'base = AutoModelForCausalLM.from_pretrained("{base}")',
                  'model = PeftModel.from_pretrained(base, "THIS_FOLDER")']
    else:
        lines += ['model = AutoModelForCausalLM.from_pretrained("THIS_FOLDER")']
    lines += ['tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")', "```", ""]
    return "\n".join(header + [line for index, line in enumerate(lines)
                               if line or (index and lines[index - 1])])  # no double blank lines


def is_hub_id(project: Project) -> bool:
    """The project's model is a hub id (not `toy-base`, not a folder): the Hub's `base_model` may name it."""
    from engine.models import is_local_reference, resolve_model_path

    name = project.model.name
    return name != "toy-base" and not is_local_reference(name) and resolve_model_path(name, project.dir) == name


def labels_text(stage: Stage) -> str:
    distill = stage.distill
    if distill.labels == "sampled":
        return f"sampled: counts of {distill.num_samples} teacher samples per answer token (the paper's)"
    if distill.labels == "topk":
        return f"topk: the teacher's {distill.top_k} most likely tokens per answer token"
    return "hard: the teacher's sampled token (supervised fine-tuning on the teacher's answers)"


def template_text(what: str, template: str, system: str = "") -> list[str]:
    """A template in a fenced block, or its SHA-256 when it is long."""
    lines = []
    for name, text in ((f"{what}, system message", system), (what, template)):
        if not text:
            continue
        if len(text) > LONG_TEMPLATE:
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            lines += [f"- {name}: {len(text)} characters, SHA-256 `{digest}`", ""]
        else:
            fence = "````" if "```" in text else "```"
            lines += [f"- {name}:", "", fence + "jinja", text, fence, ""]
    return lines


def training_steps(run_dir: Path) -> dict[str, int]:
    """{stage name: optimizer steps the student trained}, from the run's train events."""
    steps: dict[str, int] = {}
    events = Path(run_dir) / "events.jsonl"
    for event in read_events(events) if events.exists() else []:
        if event["type"] == "train" and event.get("phase", "student") == "student":
            name = event.get("stage_name") or "main"
            steps[name] = max(steps.get(name, 0), event["step"])
    return steps


def metrics_text(project: Project, metrics: dict) -> list[str]:
    """metrics.json as Markdown tables: one per stage and operation, and the run's overwrite matrix."""
    if not metrics.get("combined"):
        return operation_table(metrics)
    lines = []
    for stage, figures in metrics["stages"].items():
        for operation, operation_metrics in figures["operations"].items():
            lines += [f"After stage `{stage}`, operation `{operation}`:", "", *operation_table(operation_metrics), ""]
    return lines


def operation_table(metrics: dict) -> list[str]:
    rows = [row for row in TABLE_ROWS if row in metrics]
    names = sorted({name for row in rows for name in metrics[row]})
    lines = ["| | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    lines += [f"| {row} | " + " | ".join(f"{metrics[row].get(name, float('nan')):.3f}" for name in names) + " |"
              for row in rows]
    notes = []
    kl = metrics.get("answer_kl")
    if kl and kl.get("before") is not None:
        notes.append(f"answer-token KL(teacher || student): before {kl['before']}, after {kl['after']}")
    prompt = metrics.get("prompt_tokens")
    if prompt:
        notes.append(f"prompt tokens: teacher {prompt['teacher']}, student {prompt['student']} ({prompt['ratio']}x fewer)")
    if "count" in metrics:
        notes.append(f"held-out inputs: {metrics['count']}")
    return lines + ([""] + [f"- {note}" for note in notes] if notes else [])


def read_metrics(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text(encoding="utf-8"))


def write_student_cards(project: Project, student: Path, run_dir: Path, metrics: dict) -> None:
    """The run's own `student/` (an adapter's card says so) and `student/merged/` where it exists."""
    from engine.runs.layout import is_saved_model
    from engine.training import lora

    write_model_card(student, project, run_dir, metrics, adapter=lora.is_adapter_folder(student))
    merged = Path(student) / lora.MERGED_DIR
    if is_saved_model(merged):
        write_model_card(merged, project, run_dir, metrics)
