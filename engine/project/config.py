"""project.toml -> a frozen dataclass tree that mirrors the TOML tables.

Every field carries a one-line help text (the `help` metadata), which is also
what the error messages and the TUI's F1 show. Unknown keys and wrong types are
errors that name the file, the dotted key, the value and what was expected, and
suggest the nearest valid key; all problems are collected and raised together
as one `ConfigError`.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal

from engine.errors import ConfigError, EngineError
from engine.runs.trackers import tracker_name_problems

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


@dataclass(frozen=True)
class ModelConfig:
    name: str = option("toy-base", "Hub id, local folder, or `toy-base` (the embedded default model).")
    dtype: str = option("auto", "Weights dtype: auto (bf16 on CUDA, else float32), float32, bfloat16, float16.",
                        ("auto", "float32", "bfloat16", "float16"))
    device: str = option("auto", "auto (CUDA if present, else CPU), cpu, cuda, cuda:N, or mps.")
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
    dataset: str = option("", "datasets source: a dataset name or local folder for `datasets.load_dataset`.")
    dataset_config: str = option("", "datasets source: the configuration name, if any.")
    split: str = option("train", "datasets source: the split to read.")
    input_field: str = option("input", "file/datasets source: the column holding the raw input.")
    label_field: str = option("label", "file/datasets source: the column holding the label (optional).")
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
                              "their probabilities are averaged at every answer token (paper hypothesis 5).", minimum=1)


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
    batch_size: int = option(32, "Inputs generated at once.", minimum=1)
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
    batch_size: int = option(16, "Sequences per micro-batch per process.", minimum=1)
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
    vocab_chunk: int = option(0, "Apply the LM head to the answer rows this many vocabulary entries at a time "
                                 "(0 = all at once; set e.g. 32768 for 128k vocabularies to cut peak memory).")
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass (less memory, about a "
                                                 "third more time per step).")
    report_to: list = option([], "Experiment trackers that also get the run's figures (events.jsonl stays the record): "
                                 "tensorboard (writes RUN_DIR/tensorboard/), wandb (WANDB_MODE=offline needs no "
                                 "network), mlflow, comet_ml, aim, clearml, dvclive, swanlab, trackio.")
    lora: LoraSettings = field(default_factory=LoraSettings, metadata={
        "help": "LoRA through peft, e.g. lora = { r = 16, alpha = 32, target_modules = \"all-linear\" } (r = 0: full fine-tuning)."})


@dataclass(frozen=True)
class EvalConfig:
    count: int = option(64, "Held-out inputs (disjoint from the distillation set).", minimum=1, maximum=MAX_COUNT)
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
                                  "appendix B.6) or equal-compute (scdir's two phases share it).", ("paper", "equal-compute"))


NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"  # operation and stage names become folder names
OPERATION_TABLES = ("inputs", "teacher", "student", "extract", "eval")
IMPLICIT = "main"  # the name of the one operation and stage of a project that declares none


@dataclass(frozen=True)
class Operation:
    """One context distillation: inputs, teacher template, student template, extractor (paper 2.1)."""

    name: str = option("", "Unique name of the operation (a folder name: letters, digits, _ . -).")
    weight: float = option(1.0, "Share of every training batch and weight of this operation's loss in its stage (> 0).")
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


# --- loading -----------------------------------------------------------------

def load_project(project_dir: Path | str) -> Project:
    """Read and validate `PROJECT_DIR/project.toml` (or a path to a .toml file)."""
    path = Path(project_dir)
    if path.is_file():
        path = path.parent
    file = path / PROJECT_FILE
    if not file.exists():
        raise ConfigError(file, [f"no {PROJECT_FILE} here; a project is a folder holding one (see sample_projects/)"])
    if not file.is_file():
        raise ConfigError(file, [f"{PROJECT_FILE} is a folder, not a file; the project file is a TOML text file"])
    try:
        text = read_text(file)
    except EngineError as error:
        raise ConfigError(file, [str(error)]) from None
    return project_from_toml_text(path, text)


def read_text(path: Path, key: str = "") -> str:
    """A UTF-8 text file the user named; every way it can be unreadable is one clear EngineError.

    A byte-order mark is dropped. A decoding error names the line and byte offset and
    suggests how to convert the file (issue 11).
    """
    path = Path(path)
    named = f"`{key}`: {path}" if key else str(path)
    if path.is_dir():
        raise EngineError(f"{named} is a folder; expected a file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise EngineError(f"{named}: no such file") from None
    except OSError as error:
        raise EngineError(f"{named}: cannot be read ({error.strerror or error})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        byte = data[error.start]
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            guess, encoding = "it looks like UTF-16", "utf-16"
        else:
            guess, encoding = "perhaps it is Latin-1 or Windows-1252", "latin1"
        raise EngineError(f"{named} is not UTF-8 text: byte 0x{byte:02x} at byte offset {error.start} (line {line}); "
                          f"{guess}: save it as UTF-8, e.g. `iconv -f {encoding} -t utf-8 {path.name} > utf8-{path.name}`") from None


def project_from_toml_text(project_dir: Path | str, text: str) -> Project:
    """Validate TOML text as the project file of `project_dir` (without writing it)."""
    project_dir = Path(project_dir).resolve()
    file = project_dir / PROJECT_FILE
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(file, [f"not valid TOML: {error}"]) from None
    problems: list[str] = []
    raw_operations, raw_stages = data.pop("operations", None), data.pop("stages", None)
    project = _build(Project, data, "", problems)
    if project.name:
        problems += _project_name_problems(project.name)
    project = replace(project, dir=project_dir, name=project.name or safe_folder_name(project_dir.name))
    project = _resolve_template_files(project, "", problems)
    operations = _build_operations(project, raw_operations, problems)
    stages = _build_stages(project, raw_stages, operations, problems)
    if problems:
        raise ConfigError(file, problems)
    project = replace(project, operations=operations, stages=stages,
                      combined=raw_operations is not None or raw_stages is not None)
    problems += validate(project)
    if problems:
        raise ConfigError(file, problems)
    return project


# --- operations and stages: tables inherited key by key ---------------------------

def _build_operations(project: Project, raw: Any, problems: list[str]) -> tuple[Operation, ...]:
    if raw is None:
        implicit = Operation(name=IMPLICIT, inputs=project.inputs, teacher=project.teacher,
                             student=project.student, extract=project.extract, eval=project.eval)
        return (implicit,)
    if not isinstance(raw, list) or not raw:
        problems.append("`operations` must be an array of tables: [[operations]] with a `name` each")
        return ()
    operations = []
    for index, table in enumerate(raw):
        prefix = _item_prefix("operations", index, table)
        if not isinstance(table, dict):
            problems.append(f"`{prefix}` = {table!r}: expected a table ([[operations]])")
            continue
        own = {key: value for key, value in table.items() if key not in OPERATION_TABLES}
        operation = _build(Operation, own, prefix + ".", problems)
        inherited = {part: _override(getattr(project, part), table.get(part), f"{prefix}.{part}", problems)
                     for part in OPERATION_TABLES}
        operation = replace(operation, **inherited)
        for part in ("teacher", "student"):
            template = _resolve_template_file(project.dir, getattr(operation, part), f"{prefix}.{part}", problems)
            operation = replace(operation, **{part: template})
        operations.append(operation)
    return tuple(operations)


def _build_stages(project: Project, raw: Any, operations: tuple[Operation, ...], problems: list[str]) -> tuple[Stage, ...]:
    every = [operation.name for operation in operations]
    if raw is None:
        return (Stage(name=IMPLICIT, operations=every, distill=project.distill),)
    if not isinstance(raw, list) or not raw:
        problems.append("`stages` must be an array of tables: [[stages]] with a `name` each")
        return ()
    stages = []
    for index, table in enumerate(raw):
        prefix = _item_prefix("stages", index, table)
        if not isinstance(table, dict):
            problems.append(f"`{prefix}` = {table!r}: expected a table ([[stages]])")
            continue
        stage = _build(Stage, {key: value for key, value in table.items() if key != "distill"}, prefix + ".", problems)
        distill = _override(project.distill, table.get("distill"), f"{prefix}.distill", problems)
        stages.append(replace(stage, operations=list(stage.operations) or every, distill=distill))
    return tuple(stages)


def _item_prefix(array: str, index: int, table: Any) -> str:
    """`operations.upper` for a named item, `operations[2]` otherwise (errors name the item the user wrote)."""
    name = table.get("name") if isinstance(table, dict) else None
    return f"{array}.{name}" if isinstance(name, str) and name else f"{array}[{index}]"


# Setting one of these keys replaces the whole group: an operation that sets `template_file`
# must not also inherit the top level's inline `template`, nor a stage's `max_steps` its `epochs`.
EXCLUSIVE_KEYS = ({"template", "template_file"}, {"epochs", "max_steps"})


def _override(parent, raw: Any, prefix: str, problems: list[str]):
    """`parent` (a top-level table) with the keys set in `raw` replaced."""
    if raw is None:
        return parent
    own = _build(type(parent), raw, prefix + ".", problems)
    if not isinstance(raw, dict):
        return parent
    changed = {key: getattr(own, key) for key in raw if hasattr(own, key)}
    for group in EXCLUSIVE_KEYS:
        if group & changed.keys():
            for key in group - changed.keys():
                if hasattr(parent, key):
                    changed[key] = type(getattr(parent, key))()
    return replace(parent, **changed)


def _build(cls, data: Any, prefix: str, problems: list[str]):
    if not isinstance(data, dict):
        problems.append(f"`{prefix.rstrip('.')}` = {data!r}: expected a table")
        return cls()
    known = {f.name: f for f in fields(cls) if not f.metadata.get("internal")}
    values = {}
    for key, value in data.items():
        dotted = prefix + key
        if key not in known:
            suggestion = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
            hint = f"; did you mean `{prefix}{suggestion[0]}`?" if suggestion else f"; valid keys: {', '.join(sorted(known))}"
            problems.append(f"unknown key `{dotted}`{hint}")
            continue
        spec = known[key]
        hint_type = typing.get_type_hints(cls)[key]
        if is_dataclass(hint_type):
            values[key] = _build(hint_type, value, dotted + ".", problems)
            continue
        checked = _check_value(dotted, value, hint_type, spec.metadata.get("choices"), problems)
        if checked is not _INVALID:
            values[key] = checked
    return cls(**values)


_INVALID = object()


def _check_value(dotted: str, value: Any, expected: Any, choices: tuple | None, problems: list[str]):
    def wrong(what: str):
        problems.append(f"`{dotted}` = {value!r}: expected {what}")
        return _INVALID

    if expected is bool:
        if not isinstance(value, bool):
            return wrong("true or false")
    elif expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return wrong("an integer")
        if value < 0:
            return wrong("a non-negative integer")
    elif expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return wrong("a number")
        value = float(value)
        if not math.isfinite(value):
            return wrong("a finite number")
        if value < 0:
            return wrong("a non-negative number")
    elif expected is str:
        if not isinstance(value, str):
            return wrong("a string")
    elif expected is dict:
        if not isinstance(value, dict):
            return wrong("a table, e.g. {digits = 4}")
    elif expected is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return wrong("a list of strings")
    if choices and value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return wrong("one of " + ", ".join(repr(c) for c in choices) + hint)
    return value


def _resolve_template_files(project: Project, prefix: str, problems: list[str]) -> Project:
    """Inline the top level's `template_file` contents so every consumer sees `template` text."""
    return replace(project, **{part: _resolve_template_file(project.dir, getattr(project, part), prefix + part, problems)
                               for part in ("teacher", "student")})


def _resolve_template_file(project_dir: Path, config: TemplateConfig, dotted: str, problems: list[str]) -> TemplateConfig:
    if config.template and config.template_file:
        problems.append(f"set `{dotted}.template` or `{dotted}.template_file`, not both")
    elif config.template_file:
        # A template is text, never run as code: it may live outside the project folder (README, "Trust model").
        path = project_dir / config.template_file
        if not path.exists():
            problems.append(f"`{dotted}.template_file` = {config.template_file!r}: no such file ({path})")
        else:
            try:
                text = read_text(path, f"{dotted}.template_file")
            except EngineError as error:
                problems.append(str(error))
                return config
            # Cleared once inlined: an operation inheriting this table must not see both keys set.
            return replace(config, template=text, template_file="")
    return config


def validate(project: Project) -> list[str]:
    """Cross-field rules, each naming the keys involved.

    A project without [[operations]] or [[stages]] is validated under the
    top-level names (`inputs.function`), as it always was.
    """
    problems = []
    for operation in project.operations:
        problems += _validate_operation(project, operation)
    problems += _validate_names(project)
    for index, stage in enumerate(project.stages):
        problems += _validate_stage(project, index, stage)
    for part in ("model", "generate"):
        problems += _range_problems(getattr(project, part), part + ".")
    for operation in project.operations:
        owner = f"operations.{operation.name}." if operation.eval != project.eval else ""
        problems += _range_problems(operation.eval, owner + "eval.") + _metric_problems(operation.eval, owner)
    device = project.model.device
    if not re.fullmatch(DEVICE_PATTERN, device):
        close = difflib.get_close_matches(device, ["auto", "cpu", "cuda", "cuda:0", "mps"], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(f"`model.device` = {device!r}: expected auto, cpu, cuda, cuda:N (e.g. cuda:1) or mps{hint}")
    for operation in project.operations:
        for table in ("teacher", "student"):
            if getattr(operation, table).system and not project.model.chat_template:
                owner = f"operations.{operation.name}." if getattr(operation, table) != getattr(project, table) else ""
                problems.append(f"`{owner}{table}.system` is set, but `model.chat_template` is false: a system message "
                                f"needs the chat template; set `model.chat_template = true`, or move the text into "
                                f"`{owner}{table}.template`")
    if "" in project.generate.stop:
        problems.append("`generate.stop` has an empty string, which would end every teacher output at once; remove it")
    for method in project.baselines.methods:
        if method not in BASELINES:
            problems.append(f"`baselines.methods` has {method!r}: expected one of {', '.join(BASELINES)}")
    if "examples" in project.baselines.methods:
        shown = project.operations[0].teacher.vars.get("examples")
        if not isinstance(shown, list) or not shown or not all(
                isinstance(row, dict) and "input" in row and ("label" in row or "output" in row) for row in shown):
            problems.append("`baselines.methods` has 'examples', which trains on the teacher's worked examples: set "
                            "`teacher.vars.examples` to a list like [{input = \"CAB\", label = \"cs at br\"}, ...]")
    if project.baselines.methods and len(project.stages) > 1:
        problems.append("`baselines.methods`: the supervised baselines run on single-stage projects only "
                        "(they train on the stage's first operation)")
    return list(dict.fromkeys(problems))  # operations inheriting the same faulty table report it once


def _metric_problems(config: EvalConfig, owner: str) -> list[str]:
    from engine.project.usercode import reference_problem

    problems = []
    for metric in config.metrics:
        if ":" in metric:
            problem = reference_problem(metric, f"{owner}eval.metrics")
            if problem:
                problems.append(problem)
        elif metric not in METRICS:
            close = difflib.get_close_matches(metric, METRICS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"`{owner}eval.metrics` has {metric!r}: expected one of {', '.join(METRICS)} or `module:function`{hint}")
    return problems


def _range_problems(config, prefix: str) -> list[str]:
    """The numeric fields of one table that lie outside their schema range (`option(minimum=...)`)."""
    problems = []
    for spec in fields(config):
        value = getattr(config, spec.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        minimum, above, maximum = (spec.metadata.get(bound) for bound in ("minimum", "above", "maximum"))
        if ((minimum is None or value >= minimum) and (above is None or value > above)
                and (maximum is None or value <= maximum)):
            continue
        bounds = ([f"at least {minimum:,}"] if minimum is not None else []) + \
                 ([f"greater than {above}"] if above is not None else []) + \
                 ([f"at most {maximum:,}"] if maximum is not None else [])
        kind = "an integer" if isinstance(value, int) else "a number"
        why = ""
        if spec.name == "count" and maximum is not None and value > maximum:
            why = ("; every input is drawn at once and passed through the teacher, "
                   "so split a bigger job into several runs")
        of = "of " if minimum is not None else ""
        problems.append(f"`{prefix}{spec.name}` = {value!r}: expected {kind} {of}{' and '.join(bounds)}{why}")
    return problems


def safe_folder_name(name: str) -> str:
    """`name` made usable as a folder name: unsafe runs become `-`, at most 100 characters."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-._")[:100] or "project"


def _project_name_problems(name: str) -> list[str]:
    """The project name becomes `runs/<stamp>-<name>`: a separator or `..` would put the run elsewhere."""
    if re.fullmatch(NAME_PATTERN, name) and len(name) <= 100:
        return []
    shown = name if len(name) <= 60 else name[:57] + "..."
    return [f"`name` = {shown!r}: it names the run folder under runs/, so use at most 100 letters, digits, `_`, `.` "
            f"or `-`, starting with a letter or digit (e.g. {safe_folder_name(name)!r})"]


def _validate_operation(project: Project, operation: Operation) -> list[str]:
    """Each problem names the key where the user wrote it: the operation's own table, or the top level's it inherits."""
    from engine.project.usercode import reference_problem

    def owner(part: str) -> str:
        return f"operations.{operation.name}." if getattr(operation, part) != getattr(project, part) else ""

    problems = []
    inputs, extract, teacher = operation.inputs, operation.extract, operation.teacher
    if project.combined and operation.weight <= 0:
        problems.append(f"`operations.{operation.name}.weight` = {operation.weight}: expected a positive number")
    for part in ("teacher", "student"):
        if not getattr(operation, part).template:
            problems.append(f"`{owner(part)}{part}.template` is missing: the {part} prompt needs a template, "
                            f"e.g. template = \"{{{{ input }}}}\"")
    prefix = owner("inputs")
    needs = {"python": "function", "file": "path", "datasets": "dataset", "fewshot": "fewshot_prompt"}
    if not getattr(inputs, needs[inputs.source]):
        problems.append(f"`{prefix}inputs.source` = {inputs.source!r} needs `{prefix}inputs.{needs[inputs.source]}`")
    for key, reference in (("function", inputs.function if inputs.source == "python" else ""),
                           ("label_function", inputs.label_function)):
        problem = reference and reference_problem(reference, f"{prefix}inputs.{key}")
        if problem:
            problems.append(problem)
    problems += _range_problems(inputs, prefix + "inputs.")
    problems += _range_problems(teacher, owner("teacher") + "teacher.")
    prefix = owner("extract")
    if extract.kind == "regex" and not extract.pattern:
        problems.append(f"`{prefix}extract.kind` = 'regex' needs `{prefix}extract.pattern`")
    if extract.kind == "regex" and extract.pattern:
        import re
        try:
            compiled = re.compile(extract.pattern)
            if extract.group > compiled.groups:
                problems.append(f"`{prefix}extract.group` = {extract.group}: the pattern has only {compiled.groups} group(s)")
        except re.error as error:
            problems.append(f"`{prefix}extract.pattern` = {extract.pattern!r}: not a valid regular expression ({error})")
    if extract.kind == "after_marker" and not extract.marker:
        problems.append(f"`{prefix}extract.kind` = 'after_marker' needs `{prefix}extract.marker`")
    if extract.kind == "callable" and ":" not in extract.function:
        problems.append(f"`{prefix}extract.kind` = 'callable' needs `{prefix}extract.function` = \"module:function\"")
    elif extract.kind == "callable":
        problem = reference_problem(extract.function, f"{prefix}extract.function")
        if problem:
            problems.append(problem)
    problems += _validate_ensemble(teacher, owner("teacher"))
    return problems


def _validate_ensemble(teacher: TeacherConfig, prefix: str) -> list[str]:
    """An ensemble needs prompts that differ: a template that draws `| sample(n)` from enough examples."""
    import math
    import re

    if teacher.ensemble <= 1:
        return []  # 0 is out of the schema's range, reported with the others
    draws = re.findall(r"\b(\w+)\s*\|\s*sample\(\s*(\d+)\s*\)", teacher.template)
    if not draws:
        return [f"`{prefix}teacher.ensemble` = {teacher.ensemble}: the teacher template draws no random subset, so all "
                f"{teacher.ensemble} prompts would be the same; draw examples with e.g. `{{% for ex in examples | sample(4) %}}`"]
    problems = []
    for variable, size in draws:
        pool = teacher.vars.get(variable)
        if not isinstance(pool, list):
            continue  # drawn from the input's own keys: checked when the prompts are rendered
        if int(size) > len(pool):
            problems.append(f"`{prefix}teacher.template` draws sample({size}) from `{prefix}teacher.vars.{variable}`, "
                            f"which holds only {len(pool)} item(s)")
        elif math.comb(len(pool), int(size)) < teacher.ensemble:
            problems.append(f"`{prefix}teacher.ensemble` = {teacher.ensemble} is larger than the examples allow: "
                            f"{len(pool)} examples give only {math.comb(len(pool), int(size))} distinct subsets of {size}")
    return problems


def _validate_names(project: Project) -> list[str]:
    import re

    problems = []
    for array, items in (("operations", project.operations), ("stages", project.stages)):
        seen = set()
        for index, item in enumerate(items):
            if not item.name:
                problems.append(f"`{array}[{index}].name` is missing: every item of [[{array}]] needs a unique name")
            elif not re.fullmatch(NAME_PATTERN, item.name) or len(item.name) > 64:
                problems.append(f"`{array}[{index}].name` = {item.name!r}: use at most 64 letters, digits, `_`, `.` or `-` "
                                "(it names a folder of the run)")
            elif item.name in seen:
                problems.append(f"`{array}[{index}].name` = {item.name!r}: two {array} have this name; names must be unique")
            seen.add(item.name)
    return problems


def _validate_stage(project: Project, index: int, stage: Stage) -> list[str]:
    problems = []
    prefix = f"stages.{stage.name}."
    known = [operation.name for operation in project.operations]
    for key, names in (("operations", stage.operations), ("evaluate", stage.evaluate)):
        for name in names:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; operations: {', '.join(known)}"
                problems.append(f"`{prefix}{key}` names {name!r}, which is not an operation{hint}")
    if len(set(stage.operations)) != len(stage.operations):
        problems.append(f"`{prefix}operations` lists an operation twice")
    if stage.teacher == "previous" and index == 0:
        problems.append(f"`{prefix}teacher` = 'previous' on the first stage: there is no previous student yet "
                        "(recursive distillation starts at the second stage)")
    distill = stage.distill
    prefix = prefix if distill != project.distill else ""  # inherited: the fault is in the top-level [distill]
    if distill.epochs and distill.max_steps:
        problems.append(f"set `{prefix}distill.epochs` or `{prefix}distill.max_steps`, not both")
    if not distill.epochs and not distill.max_steps:
        problems.append(f"set `{prefix}distill.epochs` or `{prefix}distill.max_steps` (how long to train)")
    problems += _range_problems(distill, prefix + "distill.")
    problems += _range_problems(distill.lora, prefix + "distill.lora.")
    if distill.lora.r and not distill.lora.target_modules:
        problems.append(f"`{prefix}distill.lora.target_modules` is empty: name the modules that get an adapter, "
                        "or \"all-linear\"")
    if distill.report_to != project.distill.report_to:
        problems.append(f"`{prefix}distill.report_to`: trackers follow the whole run; set `distill.report_to` "
                        "at the top level only")
    else:
        problems += tracker_name_problems(distill.report_to, "distill.report_to")
    if distill.labels == "sampled" and distill.num_samples == 0:
        problems.append(f"`{prefix}distill.num_samples` must be at least 1 for sampled labels")
    if distill.labels == "topk" and distill.top_k == 0:
        problems.append(f"`{prefix}distill.top_k` must be at least 1 for topk labels")
    return problems


METRICS = ("exact_match", "exact_match_normalized", "rouge_l", "accuracy", "answer_kl")


# --- writing -----------------------------------------------------------------

def project_to_dict(project: Project) -> dict:
    """The resolved project as plain data (templates inlined, defaults filled).

    Operations and stages are written out in full (nothing left to inherit) when the
    project declared them; a project that did not is written exactly as before.
    """
    data = asdict(project)
    for key in ("dir", "operations", "stages", "combined"):
        data.pop(key)
    for part in ("teacher", "student"):
        data[part].pop("template_file")
    if project.combined:
        data["operations"] = [_operation_dict(operation) for operation in project.operations]
        data["stages"] = [asdict(stage) for stage in project.stages]
    return data


def _operation_dict(operation: Operation) -> dict:
    data = asdict(operation)
    for part in ("teacher", "student"):
        data[part].pop("template_file")
    return data


def project_to_toml(project: Project) -> str:
    import tomlkit

    return tomlkit.dumps(project_to_dict(project))


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
