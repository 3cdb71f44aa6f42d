"""project.toml -> a frozen dataclass tree that mirrors the TOML tables.

Every field carries a one-line help text (the `help` metadata), which is also
what the error messages and the TUI's F1 show. Unknown keys and wrong types are
errors that name the file, the dotted key, the value and what was expected, and
suggest the nearest valid key; all problems are collected and raised together
as one `ConfigError`.
"""

from __future__ import annotations

import difflib
import tomllib
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal

from engine.errors import ConfigError

PROJECT_FILE = "project.toml"


def option(default: Any, help: str, choices: tuple | None = None):
    """A dataclass field with help text and, optionally, the allowed values."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, "choices": choices})
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class ModelConfig:
    name: str = option("toy-base", "Hub id, local folder, or `toy-base` (the embedded default model).")
    dtype: str = option("auto", "Weights dtype: auto (bf16 on CUDA, else float32), float32, bfloat16, float16.",
                        ("auto", "float32", "bfloat16", "float16"))
    device: str = option("auto", "auto (CUDA if present, else CPU), cpu, cuda, or cuda:N.")
    trust_remote_code: bool = option(False, "Allow model code from the hub folder (off: safetensors + built-in classes only).")
    chat_template: bool = option(False, "Wrap rendered prompts in the tokenizer's chat template (for chat models).")


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
    fewshot_max_new_tokens: int = option(48, "fewshot source: tokens sampled per invented input (one line is kept).")
    count: int = option(256, "Number of distillation inputs.")
    seed: int = option(0, "Seed for sampling and splitting inputs.")


@dataclass(frozen=True)
class TemplateConfig:
    template: str = option("", "Jinja2 template (inline). Variables: the input dict's keys, e.g. {{ input }}.")
    template_file: str = option("", "Jinja2 template file, relative to the project folder (instead of `template`).")


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
    max_new_tokens: int = option(64, "Most tokens the teacher generates per input.")
    temperature: float = option(1.0, "Sampling temperature of the teacher (0 = greedy).")
    top_p: float = option(1.0, "Nucleus sampling mass.")
    top_k: int = option(0, "Sample only among the k most likely tokens (0 = off).")
    stop: list = option([], "Stop strings: generation of an output ends at the first one (it is kept in the output).")
    batch_size: int = option(32, "Inputs generated at once.")


@dataclass(frozen=True)
class DistillConfig:
    labels: str = option("sampled", "Soft labels: sampled (N teacher samples per token, the paper's), topk, hard.",
                         ("sampled", "topk", "hard"))
    num_samples: int = option(100, "sampled: teacher samples per answer token (the paper uses 100).")
    top_k: int = option(20, "topk: kept teacher log-probs per answer token (the rest is tail mass).")
    epochs: int = option(0, "Passes over the distillation set (set this or max_steps).")
    max_steps: int = option(0, "Optimizer steps (set this or epochs).")
    batch_size: int = option(16, "Sequences per micro-batch per process.")
    grad_accum: int = option(1, "Micro-batches per optimizer step.")
    learning_rate: float = option(1e-4, "Peak learning rate (AdamW).")
    warmup_steps: int = option(0, "Linear warmup steps, then cosine decay to 10% of the peak.")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    max_grad_norm: float = option(1.0, "Gradient clipping norm (0 = off).")
    max_seq_len: int = option(1024, "Longest student sequence (prompt + answer); longer ones are an error.")
    seed: int = option(0, "Seed for shuffling, label sampling and initialization of anything random.")
    checkpoint_every: int = option(0, "Save a resumable checkpoint every N steps (0 = only at stop and end).")
    log_every: int = option(1, "Emit a train event every N steps.")
    mixed_precision: str = option("auto", "auto (bf16 on CUDA), no, bf16, fp16.", ("auto", "no", "bf16", "fp16"))
    num_processes: int = option(1, "Processes for `accelerate launch` (the TUI launches through it when > 1).")


@dataclass(frozen=True)
class EvalConfig:
    count: int = option(64, "Held-out inputs (disjoint from the distillation set).")
    metrics: list = option(["exact_match", "rouge_l"],
                           "exact_match, rouge_l, accuracy (vs labels), answer_kl, or `module:function(prediction, reference) -> float`.")
    reference: str = option("label", "What outputs are scored against: the input's label or the teacher's answer.",
                            ("label", "teacher"))
    batch_size: int = option(32, "Inputs decoded at once.")
    max_new_tokens: int = option(0, "Tokens decoded per output (0 = generate.max_new_tokens).")
    teacher_template_for_student: bool = option(False, "Also score the student with the teacher template (how much of the prompted skill it keeps).")


BASELINES = ("scdir", "sc+dir")


@dataclass(frozen=True)
class BaselinesConfig:
    methods: list = option([], "Supervised baselines on the same inputs (paper 3.3): scdir (scratch-pad then direct), sc+dir (both at once).")


@dataclass(frozen=True)
class Project:
    name: str = option("", "Project name (defaults to the folder name).")
    description: str = option("", "One line about what this project distills.")
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "The model (teacher and student start from it)."})
    inputs: InputsConfig = field(default_factory=InputsConfig, metadata={"help": "The raw task input distribution."})
    teacher: TemplateConfig = field(default_factory=TemplateConfig, metadata={"help": "The teacher template (long prompt)."})
    student: TemplateConfig = field(default_factory=TemplateConfig, metadata={"help": "The student template (short prompt)."})
    extract: ExtractConfig = field(default_factory=ExtractConfig, metadata={"help": "The answer extractor."})
    generate: GenerateConfig = field(default_factory=GenerateConfig, metadata={"help": "Teacher sampling."})
    distill: DistillConfig = field(default_factory=DistillConfig, metadata={"help": "Training."})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "Evaluation on held-out inputs."})
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig, metadata={"help": "Baselines trained and scored beside the student."})
    dir: Path = field(default=Path("."), compare=False, metadata={"help": "The project folder (not in the TOML).", "internal": True})

    @property
    def file(self) -> Path:
        return self.dir / PROJECT_FILE


# --- loading -----------------------------------------------------------------

def load_project(project_dir: Path | str) -> Project:
    """Read and validate `PROJECT_DIR/project.toml` (or a path to a .toml file)."""
    path = Path(project_dir)
    if path.is_file():
        path = path.parent
    file = path / PROJECT_FILE
    if not file.exists():
        raise ConfigError(file, [f"no {PROJECT_FILE} here; a project is a folder holding one (see sample_projects/)"])
    return project_from_toml_text(path, file.read_text(encoding="utf-8"))


def project_from_toml_text(project_dir: Path | str, text: str) -> Project:
    """Validate TOML text as the project file of `project_dir` (without writing it)."""
    project_dir = Path(project_dir).resolve()
    file = project_dir / PROJECT_FILE
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(file, [f"not valid TOML: {error}"]) from None
    problems: list[str] = []
    project = _build(Project, data, "", problems)
    if problems:
        raise ConfigError(file, problems)
    project = replace(project, dir=project_dir, name=project.name or project_dir.name)
    project = _resolve_template_files(project, problems)
    problems += validate(project)
    if problems:
        raise ConfigError(file, problems)
    return project


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


def _resolve_template_files(project: Project, problems: list[str]) -> Project:
    """Inline `template_file` contents so every consumer sees `template` text."""
    resolved = {}
    for part in ("teacher", "student"):
        config: TemplateConfig = getattr(project, part)
        if config.template and config.template_file:
            problems.append(f"set `{part}.template` or `{part}.template_file`, not both")
        elif config.template_file:
            path = project.dir / config.template_file
            if not path.exists():
                problems.append(f"`{part}.template_file` = {config.template_file!r}: no such file ({path})")
            else:
                resolved[part] = replace(config, template=path.read_text(encoding="utf-8"))
        elif not config.template:
            problems.append(f"`{part}.template` is missing: the {part} prompt needs a template, e.g. template = \"{{{{ input }}}}\"")
    return replace(project, **resolved)


def validate(project: Project) -> list[str]:
    """Cross-field rules, each naming the keys involved."""
    problems = []
    inputs, extract, distill = project.inputs, project.extract, project.distill
    needs = {"python": "function", "file": "path", "datasets": "dataset", "fewshot": "fewshot_prompt"}
    if not getattr(inputs, needs[inputs.source]):
        problems.append(f"`inputs.source` = {inputs.source!r} needs `inputs.{needs[inputs.source]}`")
    if inputs.source == "python" and inputs.function and ":" not in inputs.function:
        problems.append(f"`inputs.function` = {inputs.function!r}: expected `module:function`, e.g. \"tasks:make_inputs\"")
    if inputs.count == 0:
        problems.append("`inputs.count` must be at least 1")
    if project.eval.count == 0:
        problems.append("`eval.count` must be at least 1")
    if extract.kind == "regex" and not extract.pattern:
        problems.append("`extract.kind` = 'regex' needs `extract.pattern`")
    if extract.kind == "regex" and extract.pattern:
        import re
        try:
            compiled = re.compile(extract.pattern)
            if extract.group > compiled.groups:
                problems.append(f"`extract.group` = {extract.group}: the pattern has only {compiled.groups} group(s)")
        except re.error as error:
            problems.append(f"`extract.pattern` = {extract.pattern!r}: not a valid regular expression ({error})")
    if extract.kind == "after_marker" and not extract.marker:
        problems.append("`extract.kind` = 'after_marker' needs `extract.marker`")
    if extract.kind == "callable" and ":" not in extract.function:
        problems.append("`extract.kind` = 'callable' needs `extract.function` = \"module:function\"")
    if distill.epochs and distill.max_steps:
        problems.append("set `distill.epochs` or `distill.max_steps`, not both")
    if not distill.epochs and not distill.max_steps:
        problems.append("set `distill.epochs` or `distill.max_steps` (how long to train)")
    if distill.batch_size == 0 or distill.grad_accum == 0:
        problems.append("`distill.batch_size` and `distill.grad_accum` must be at least 1")
    if distill.labels == "sampled" and distill.num_samples == 0:
        problems.append("`distill.num_samples` must be at least 1 for sampled labels")
    if distill.labels == "topk" and distill.top_k == 0:
        problems.append("`distill.top_k` must be at least 1 for topk labels")
    if project.generate.max_new_tokens == 0:
        problems.append("`generate.max_new_tokens` must be at least 1")
    if project.generate.top_p > 1 or project.generate.top_p == 0:
        problems.append(f"`generate.top_p` = {project.generate.top_p}: expected a number in (0, 1]")
    for metric in project.eval.metrics:
        if metric not in METRICS and ":" not in metric:
            close = difflib.get_close_matches(metric, METRICS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"`eval.metrics` has {metric!r}: expected one of {', '.join(METRICS)} or `module:function`{hint}")
    for method in project.baselines.methods:
        if method not in BASELINES:
            problems.append(f"`baselines.methods` has {method!r}: expected one of {', '.join(BASELINES)}")
    return problems


METRICS = ("exact_match", "rouge_l", "accuracy", "answer_kl")


# --- writing -----------------------------------------------------------------

def project_to_dict(project: Project) -> dict:
    """The resolved project as plain data (templates inlined, defaults filled)."""
    data = asdict(project)
    data.pop("dir")
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
