"""project.toml's schema: one frozen dataclass per TOML table, mirroring the file.

Every field carries a one-line help text (the `help` metadata), which is also
what the error messages and the TUI's F1 show (`field_help`), and, where it has
them, its allowed values or range, which `validation.py` checks. Reading the file
is `loader.py`'s, writing it `writer.py`'s.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

PROJECT_FILE = "project.toml"


def option(default: Any, help: str, choices: tuple | None = None, *, minimum: float | None = None,
           above: float | None = None, maximum: float | None = None):
    """A dataclass field with help text and, optionally, the allowed values or range.

    `minimum`/`maximum` are inclusive bounds, `above` an exclusive lower bound; `validate()`
    checks them under the key where the user wrote the value (issue 11).
    """
    metadata = {"help": help, "choices": choices, "minimum": minimum, "above": above, "maximum": maximum}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# More inputs than this is a typo (10**9) or a job no teacher pass finishes; a source is
# asked for every input at once, so a huge count would run out of memory without a word.
MAX_COUNT = 10_000_000
DEVICE_PATTERN = r"auto|cpu|mps|cuda(:\d+)?"
# Each rendering of a teacher ensemble is one more teacher forward pass per input (2,000 took
# 116 s on 16 inputs of the tiny model, issue 24); engine/checks.py warns well before this.
MAX_ENSEMBLE = 64


@dataclass(frozen=True)
class ModelConfig:
    name: str = option("toy-base", "Hub id, local folder, or `toy-base` (the embedded default model).")
    dtype: str = option("auto", "Weights dtype: auto (bf16 on CUDA, else float32), float32, bfloat16, float16.",
                        ("auto", "float32", "bfloat16", "float16"))
    device: str = option("auto", "auto (CUDA if present, else CPU), cpu, cuda, cuda:N, or mps.")
    device_map: str = option("", "\"auto\": one process spreads the teacher (teacher pass, evaluation) over every GPU, "
                                 "then CPU memory (accelerate's big-model placement), for a model that does not fit "
                                 "one device; not with several processes. \"\": the whole model on `model.device`.",
                             ("", "auto"))
    trust_remote_code: bool = option(False, "Allow model code from the hub folder (off: safetensors + built-in classes only).")
    chat_template: bool = option(False, "Render prompts as a conversation with the tokenizer's chat template: `system` "
                                        "is the system message, `template` the user turn; generation starts in the "
                                        "assistant turn (for chat models).")
    safetensors_only: bool = option(True, "Load weights from *.safetensors only; false also loads pickle *.bin "
                                          "weights, which can run code: only for a model source you trust.")
    threads: int = option(0, "CPU threads for torch (0 = OMP_NUM_THREADS if set, else half the usable CPUs; "
                             "1 on a shared machine).")
    context_window: int = option(0, "Tokens a prompt and its output may use: 0 = the model's own window "
                                    "(max_position_embeddings); a smaller project limit, e.g. to study prompts that "
                                    "do not fit (paper hypothesis 5).", minimum=0)


@dataclass(frozen=True)
class InputsConfig:
    source: str = option("python", "Where raw task inputs come from.", ("python", "file", "datasets", "fewshot"))
    function: str = option("", "python source: `module:function` in the project folder, called as function(rng, n, **options).")
    options: dict = option({}, "python source: keyword settings passed to the function, e.g. {digits = 4}.")
    path: str = option("", "file source: a .jsonl or .csv file, relative to the project folder.")
    dataset: str = option("", "datasets source: a hub id in the local cache, a `save_to_disk` folder, a .jsonl/.json/"
                              ".csv/.parquet file, or a folder of data files (relative to the project folder).")
    dataset_config: str = option("", "datasets source: the configuration name, if any.")
    split: str = option("train", "datasets source: the split to read (a single data file has only `train`).")
    input_field: str = option("input", "file/datasets source: the column holding the raw input.")
    label_field: str = option("label", "file/datasets source: the column holding the label (optional).")
    columns: dict = option({}, "file/datasets source: template variable -> column, e.g. {input = \"question\", label = "
                               "\"answer\"}; wins over input_field/label_field; other columns keep their names.")
    filter: str = option("", "file/datasets source: `module:function(row) -> bool` in the project folder; rows "
                             "(after `columns`) it rejects are never drawn.")
    fewshot_prompt: str = option("", "fewshot source: a prompt of example inputs; the model continues it to invent new ones.")
    fewshot_max_new_tokens: int = option(48, "fewshot source: tokens sampled per invented input (one line is kept).", minimum=1)
    label_function: str = option("", "Optional `module:function(input) -> label or None` in the project folder: labels every "
                                     "input (any source), e.g. those a `fewshot` source invents; None drops an input "
                                     "that is not a valid one (a fewshot source then samples more).")
    count: int = option(256, "Number of distillation inputs.", minimum=1, maximum=MAX_COUNT)
    seed: int = option(0, "Seed for sampling and splitting inputs.")


@dataclass(frozen=True)
class TemplateConfig:
    template: str = option("", "Jinja2 template (inline). Variables: the input dict's keys, e.g. {{ input }}, and `vars`.")
    template_file: str = option("", "Jinja2 template file, relative to the project folder (instead of `template`).")
    vars: dict = option({}, "Extra template variables shared by every input, e.g. examples = [{input = \"ab\", output = \"ba\"}]; an input's own keys win.")
    system: str = option("", "Chat models (`model.chat_template`): Jinja2 template of the system message; "
                             "`template` is then the user turn. Empty: no system message.")


@dataclass(frozen=True)
class TeacherConfig(TemplateConfig):
    ensemble: int = option(1, "Teacher prompts rendered per input (each draws its own `| sample(n)` of examples); "
                              "their probabilities are averaged at every answer token (paper hypothesis 5).",
                           minimum=1, maximum=MAX_ENSEMBLE)


@dataclass(frozen=True)
class ExtractConfig:
    kind: str = option("identity", "Answer extractor.", ("identity", "regex", "after_marker", "callable"))
    pattern: str = option("", "regex: a Python regular expression searched in the teacher's output text.")
    group: int = option(0, "regex: which group is the answer (0 = the whole match).")
    marker: str = option("", "after_marker: the answer is the text after the last occurrence of this marker.")
    until: str = option("\n", "after_marker: the answer stops before this text (empty: to the end).")
    function: str = option("", "callable: `module:function(text) -> (start, end) | None` in the project folder.")
    strip: bool = option(True, "Leave surrounding whitespace out of the answer span.")


@dataclass(frozen=True)
class GenerateConfig:
    max_new_tokens: int = option(64, "Most tokens the teacher generates per input.", minimum=1)
    temperature: float = option(1.0, "Sampling temperature of the teacher (0 = greedy).")
    top_p: float = option(1.0, "Nucleus sampling mass.", above=0, maximum=1)
    top_k: int = option(0, "Sample only among the k most likely tokens (0 = off).")
    stop: list = option([], "Stop strings (non-empty): generation of an output ends at the first one (it is kept in the output).")
    batch_size: int = option(32, "Most inputs generated at once.", minimum=1)
    max_batch_tokens: int = option(65536, "Most tokens in one generation batch: rows x (longest prompt + max_new_tokens); "
                                          "inputs sorted by length fill each batch up to it (0 = rows only).", minimum=0)
    reuse_prefix: bool = option(True, "Encode the prompts' common token prefix once and reuse its KV cache in every batch.")


@dataclass(frozen=True)
class LoraSettings:
    r: int = option(0, "LoRA rank (0 = off: every weight is trained).", minimum=0)
    alpha: float = option(32.0, "LoRA scaling numerator (the update is scaled by alpha / r).", above=0)
    dropout: float = option(0.0, "Dropout on the LoRA input.", maximum=1)
    target_modules: list = option(["all-linear"], "Modules that get an adapter: \"all-linear\" (every linear layer but "
                                                  "the LM head) or names such as [\"q_proj\", \"v_proj\"].")
    merge: bool = option(False, "Also save the student with the adapter merged in (`student/merged/`, a full model folder).")


@dataclass(frozen=True)
class DistillConfig:
    labels: str = option("sampled", "Soft labels: sampled (N teacher samples per token, the paper's), topk, hard.",
                         ("sampled", "topk", "hard"))
    num_samples: int = option(100, "sampled: teacher samples per answer token (the paper uses 100).")
    top_k: int = option(20, "topk: the teacher's k most likely tokens per answer token, their probabilities "
                            "renormalized to sum to 1 (the rest of the mass is dropped).")
    epochs: int = option(0, "Passes over the distillation set (set this or max_steps).")
    max_steps: int = option(0, "Optimizer steps (set this or epochs).")
    batch_size: int = option(16, "Sequences per micro-batch, over all processes (each takes its share).", minimum=1)
    grad_accum: int = option(1, "Micro-batches per optimizer step.", minimum=1)
    learning_rate: float = option(1e-4, "Peak learning rate (AdamW).", above=0)
    warmup_steps: int = option(0, "Linear warmup steps, then cosine decay to 10% of the peak.")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    max_grad_norm: float = option(1.0, "Gradient clipping norm (0 = off).")
    max_seq_len: int = option(1024, "Longest student sequence (prompt + answer); longer ones are an error.", minimum=1)
    seed: int = option(0, "Seed for shuffling, label sampling and initialization of anything random.")
    checkpoint_every: int = option(0, "Save a resumable checkpoint every N steps (0 = only at stop and end).")
    log_every: int = option(1, "Emit a train event every N steps.", minimum=1)
    mixed_precision: str = option("auto", "auto (bf16 on CUDA), no, bf16, fp16.", ("auto", "no", "bf16", "fp16"))
    num_processes: int = option(1, "Processes for `accelerate launch` (the TUI launches through it when > 1).", minimum=1)
    vocab_chunk: int = option(-1, "Apply the LM head to the answer rows this many vocabulary entries at a time, "
                                  "recomputed in the backward pass: less memory for the logits, one more LM-head pass "
                                  "of time. -1 (auto): 32768 only where that saves memory (a frozen head, as with "
                                  "LoRA, or far more answer tokens per batch than the hidden size); 0: never.",
                              minimum=-1)
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass (less memory, about a "
                                                 "third more time per step).")
    report_to: list = option([], "Experiment trackers that also get the run's figures (events.jsonl stays the record): "
                                 "tensorboard (writes RUN_DIR/tensorboard/), wandb (WANDB_MODE=offline needs no "
                                 "network), mlflow, comet_ml, aim, clearml, dvclive, swanlab, trackio.")
    policy: str = option("off", "Who writes the answers the student learns from: off (the teacher's cached answers, "
                                "the paper's method), on (the student samples its own answers each step and the "
                                "teacher scores every token of them), mixed (a share of each batch each way).",
                         ("off", "on", "mixed"))
    on_policy_fraction: float = option(0.5, "mixed: the share of each micro-batch the student samples itself.",
                                       minimum=0, maximum=1)
    student_temperature: float = option(1.0, "on/mixed: the temperature the student samples its answers at.", above=0)
    divergence: str = option("reverse_kl", "on/mixed: the loss on the student's tokens: reverse_kl (KL(student || "
                                           "teacher), GKD's), forward_kl, or jsd (generalized Jensen-Shannon, `jsd_beta`).",
                             ("reverse_kl", "forward_kl", "jsd"))
    jsd_beta: float = option(0.5, "jsd: the teacher's weight in the mixture (0 = forward KL, 1 = reverse KL).",
                             minimum=0, maximum=1)
    lora: LoraSettings = field(default_factory=LoraSettings, metadata={
        "help": "LoRA through peft, e.g. lora = { r = 16, alpha = 32, target_modules = \"all-linear\" } (r = 0: full fine-tuning)."})


@dataclass(frozen=True)
class EvalConfig:
    count: int = option(64, "Held-out inputs (disjoint from the distillation set).", minimum=1, maximum=MAX_COUNT)
    split: str = option("", "datasets source: draw the held-out inputs from this split of `inputs.dataset` (e.g. "
                            "\"test\"); empty: a seeded share of `inputs.split`.")
    metrics: list = option(["exact_match", "rouge_l"],
                           "exact_match, exact_match_normalized (case, punctuation, articles), rouge_l (stemmed, best over an "
                           "input's `references`), accuracy (vs labels), answer_kl, or `module:function(prediction, reference) -> float`.")
    reference: str = option("label", "What outputs are scored against: the input's label or the teacher's answer.",
                            ("label", "teacher"))
    batch_size: int = option(32, "Inputs decoded at once.", minimum=1)
    max_new_tokens: int = option(0, "Tokens decoded per output (0 = generate.max_new_tokens).")
    teacher_template_for_student: bool = option(False, "Also score the student with the teacher template (how much of the prompted skill it keeps).")


BASELINES = ("scdir", "sc+dir", "examples")


@dataclass(frozen=True)
class BaselinesConfig:
    methods: list = option([], "Supervised baselines (paper 3.3): scdir (scratch-pad then direct), sc+dir (both at once), "
                               "on the same inputs; examples (paper 3.2): gradient descent on `teacher.vars.examples` under "
                               "the student template. With several operations, on the first one.")
    budget: str = option("paper", "Steps of each baseline: paper (every phase trains the distillation's full step budget, "
                                  "appendix B.6; examples: one batch, 25 epochs at lr 1e-5, the best epoch, B.5) or "
                                  "equal-compute (scdir's two phases share it; examples: the distillation's steps at the "
                                  "best of lr 1e-5, 1e-4, 1e-3).", ("paper", "equal-compute"))


NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"  # operation and stage names become folder names
OPERATION_TABLES = ("inputs", "teacher", "student", "extract", "eval")
IMPLICIT = "main"  # the name of the one operation and stage of a project that declares none


@dataclass(frozen=True)
class Operation:
    """One context distillation: inputs, teacher template, student template, extractor (paper 2.1)."""

    name: str = option("", "Unique name of the operation (a folder name: letters, digits, _ . -).")
    weight: float = option(1.0, "Share of every training batch and weight of this operation's loss in its stage (> 0).",
                           above=0)
    inputs: InputsConfig = field(default_factory=InputsConfig, metadata={"help": "Overrides of the top-level [inputs], key by key."})
    teacher: TeacherConfig = field(default_factory=TeacherConfig, metadata={"help": "Overrides of the top-level [teacher]."})
    student: TemplateConfig = field(default_factory=TemplateConfig, metadata={"help": "Overrides of the top-level [student]."})
    extract: ExtractConfig = field(default_factory=ExtractConfig, metadata={"help": "Overrides of the top-level [extract]."})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "Overrides of the top-level [eval] (e.g. its own metrics)."})


TEACHER_SOURCES = ("base", "previous")


@dataclass(frozen=True)
class Stage:
    """Operations trained together into one student, starting from the previous stage's student (paper 2.3)."""

    name: str = option("", "Unique name of the stage (a folder name).")
    operations: list = option([], "Names of the operations trained together in this stage (default: all).")
    teacher: str = option("base", "Whose weights teach: the base model, or the previous stage's student (recursive distillation).",
                          TEACHER_SOURCES)
    evaluate: list = option([], "Operations only scored after this stage, never trained on (e.g. probes of what "
                                "the student does with a wrong task id).")
    distill: DistillConfig = field(default_factory=DistillConfig, metadata={"help": "Overrides of the top-level [distill], key by key."})


@dataclass(frozen=True)
class Project:
    name: str = option("", "Project name (defaults to the folder name); it names the run folder, so letters, digits, "
                           "_ . - only, at most 100.")
    description: str = option("", "One line about what this project distills.")
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "The model (teacher and student start from it)."})
    inputs: InputsConfig = field(default_factory=InputsConfig, metadata={"help": "The raw task input distribution."})
    teacher: TeacherConfig = field(default_factory=TeacherConfig, metadata={"help": "The teacher template (long prompt)."})
    student: TemplateConfig = field(default_factory=TemplateConfig, metadata={"help": "The student template (short prompt)."})
    extract: ExtractConfig = field(default_factory=ExtractConfig, metadata={"help": "The answer extractor."})
    generate: GenerateConfig = field(default_factory=GenerateConfig, metadata={"help": "Teacher sampling."})
    distill: DistillConfig = field(default_factory=DistillConfig, metadata={"help": "Training."})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "Evaluation on held-out inputs."})
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig, metadata={"help": "Baselines trained and scored beside the student."})
    # [[operations]] and [[stages]], resolved (inherited tables filled in); never empty after loading:
    # a project that declares none has one implicit operation and stage, both named "main".
    operations: tuple = field(default=(), metadata={"help": "Distillation operations ([[operations]]).", "internal": True})
    stages: tuple = field(default=(), metadata={"help": "Sequential stages ([[stages]]).", "internal": True})
    combined: bool = field(default=False, metadata={"help": "The file declares operations or stages.", "internal": True})
    dir: Path = field(default=Path("."), compare=False, metadata={"help": "The project folder (not in the TOML).", "internal": True})

    @property
    def file(self) -> Path:
        return self.dir / PROJECT_FILE

    def operation(self, name: str) -> Operation:
        for operation in self.operations:
            if operation.name == name:
                return operation
        raise KeyError(f"no operation {name!r} (operations: {', '.join(op.name for op in self.operations)})")

    def for_operation(self, name: str, stage: Stage | None = None) -> "Project":
        """A single-operation project whose top-level tables are operation `name`'s (and `stage`'s [distill]).

        Everything that handles one distillation (sources, teacher pass, alignment,
        evaluation, preview) takes such a view, so none of it knows about operations.
        """
        operation = self.operation(name)
        distill = stage.distill if stage is not None else self.distill
        only = replace(operation, weight=1.0)
        return replace(self, inputs=operation.inputs, teacher=operation.teacher, student=operation.student,
                       extract=operation.extract, eval=operation.eval, distill=distill, operations=(only,),
                       stages=(Stage(name=stage.name if stage else IMPLICIT, operations=[name], distill=distill),),
                       combined=False)


def field_help(dotted: str) -> str:
    """The help text of a dotted key, e.g. `distill.labels` (for UIs and errors)."""
    cls: Any = Project
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        spec = {f.name: f for f in fields(cls)}.get(part)
        if spec is None:
            return ""
        if i == len(parts) - 1:
            return spec.metadata.get("help", "")
        cls = typing.get_type_hints(cls)[part]
    return ""
