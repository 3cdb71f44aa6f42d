"""Raw task input distributions (paper section 2.1), seeded and split.

Every source yields input dicts (`{"input": ..., "label": ...}`, label
optional, other keys kept for templates). `load_inputs` returns a distillation
set and a disjoint held-out eval set: inputs are deduplicated before splitting,
so no eval input was ever distilled on. With `eval.split` the held-out set is the
user's own split of the dataset, and any input in it is dropped from the
distillation set.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import random
from pathlib import Path

from engine.project.loader import read_text
from engine.project.schema import Project
from engine.errors import EngineError
from engine.project.usercode import UserFunction, load_callable

# Above this many wanted inputs, a python source is first asked for a probe of this size, and
# a probe full of duplicates fails at once with an estimate, instead of drawing millions of
# inputs only to find too few unique ones (issue 11).
PROBE_SIZE = 20_000


def load_inputs(project: Project, model=None, tokenizer=None) -> tuple[list[dict], list[dict]]:
    """(distill inputs, eval inputs), sizes `inputs.count` and `eval.count`."""
    if project.eval.split:
        return _with_eval_split(project)
    wanted = project.inputs.count + project.eval.count
    pool = _unique(_draw(project, wanted, model, tokenizer))
    if len(pool) < wanted:
        raise EngineError(
            f"`inputs.source` gave only {len(pool)} unique inputs, but `inputs.count` + `eval.count` = {wanted}; "
            "lower the counts or widen the input distribution")
    return pool[: project.inputs.count], pool[project.inputs.count: wanted]


def sample_inputs(project: Project, n: int, model=None, tokenizer=None) -> list[dict]:
    """A few held-out inputs for previews (never from the distillation set)."""
    if project.eval.split:
        return _unique(_draw(project, n, model, tokenizer, split_key="eval.split"))[:n]
    wanted = project.inputs.count + n
    pool = _unique(_draw(project, wanted, model, tokenizer))
    held_out = pool[project.inputs.count: wanted]
    return held_out or pool[:n]


def _with_eval_split(project: Project) -> tuple[list[dict], list[dict]]:
    """Held-out inputs from `eval.split` (the user's own test set), the distillation set from `inputs.split`."""
    count, eval_count = project.inputs.count, project.eval.count
    held_out = _unique(_draw(project, eval_count, None, None, split_key="eval.split"))
    if len(held_out) < eval_count:
        raise EngineError(f"`eval.split` = {project.eval.split!r} gave only {len(held_out)} unique inputs, but "
                          f"`eval.count` = {eval_count}; lower `eval.count`")
    held_out = held_out[:eval_count]
    scored = {_key(row["input"]) for row in held_out}
    # Ask for enough that dropping every input the eval split shares still leaves `inputs.count`.
    pool = [row for row in _unique(_draw(project, count + eval_count, None, None)) if _key(row["input"]) not in scored]
    if len(pool) < count:
        raise EngineError(f"`inputs.split` = {project.inputs.split!r} gave only {len(pool)} unique inputs that are not "
                          f"in `eval.split` = {project.eval.split!r}, but `inputs.count` = {count}; lower `inputs.count`")
    return pool[:count], held_out


def _draw(project: Project, wanted: int, model, tokenizer, split_key: str = "inputs.split") -> list[dict]:
    config = project.inputs
    rng = random.Random(config.seed)
    label = _label_function(project)
    if config.source == "python":
        function = load_callable(project.dir, config.function, "inputs.function", "function(rng, n, **inputs.options)")
        if wanted > PROBE_SIZE:
            _probe(function, config, wanted)
        # Ask for a margin of extra inputs: duplicates are dropped before the split.
        rows = _python_rows(function, rng, wanted + max(8, wanted // 10), config.options)
    elif config.source == "file":
        keep = _row_filter(project)
        rows = [row for row in _read_file(project.dir / config.path, config) if keep(row)]
        rng.shuffle(rows)
    elif config.source == "datasets":
        rows = _read_dataset(project, split_key, rng, wanted)
    else:
        if model is None:
            raise EngineError("`inputs.source` = 'fewshot' samples inputs from the model: load the model first")
        rows = _fewshot(project, wanted, model, tokenizer, keep=(lambda line: label(line) is not None) if label else None)
    if config.source != "python":  # _python_rows checked and normalized its rows
        rows = [_normalize(row, i) for i, row in enumerate(rows)]
    return _labelled(rows, label) if label else rows


def _label_function(project: Project):
    """`inputs.label_function`, checked: it must return a string, or None for an input to drop."""
    if not project.inputs.label_function:
        return None
    function = load_callable(project.dir, project.inputs.label_function, "inputs.label_function", "function(input)")

    def label(value):
        found = function(value)
        if found is not None and not isinstance(found, str):
            raise EngineError(f"`inputs.label_function` = {project.inputs.label_function!r} returned {_show(found)} "
                              f"for input {_show(value)}: expected a string, or None to drop the input")
        return found
    return label


def _labelled(rows: list[dict], label) -> list[dict]:
    """The rows `label` accepts, each with its label (it wins over a label the source gave)."""
    labelled = []
    for row in rows:
        found = label(row["input"])
        if found is not None:
            labelled.append({**row, "label": found})
    return labelled


EXAMPLE_INPUTS = '[{"input": "12+7", "label": "19"}, ...]'


def _python_rows(function: UserFunction, rng: random.Random, n: int, options: dict) -> list[dict]:
    """Call the project's input function and check what it returned: a list of dicts with `input`, or strings."""
    result = function(rng, n, **options)
    if result is None or isinstance(result, (str, bytes, dict)) or not hasattr(result, "__iter__"):
        raise EngineError(f"{function.name} returned {_show(result)}: expected a list of n inputs, each a dict "
                          f"with an `input` key (and optionally `label`) or a string, e.g. {EXAMPLE_INPUTS}")
    try:
        # A generator may be endless: take what was asked for (a list is used whole, as it always was).
        rows = list(result) if isinstance(result, (list, tuple)) else list(itertools.islice(result, n))
    except Exception as error:
        raise function.failure(error) from error
    rows = [_normalize(row, index, function.name + " returned") for index, row in enumerate(rows)]
    return rows


def _show(value, limit: int = 120) -> str:
    """`5 (int)`: a value and its type, cut to one short line."""
    text = repr(value)
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return text if value is None else f"{text} ({type(value).__name__})"


def _probe(function: UserFunction, config, wanted: int) -> None:
    """Fail fast when a small draw shows the source cannot give `wanted` unique inputs."""
    probe = _unique(_python_rows(function, random.Random(config.seed), PROBE_SIZE, config.options))
    if len(probe) >= 0.9 * PROBE_SIZE:
        return
    estimate = _population_estimate(PROBE_SIZE, len(probe))
    # Twice the margin: a skewed distribution repeats more than a uniform one of the same size.
    if 2 * estimate < wanted:
        raise EngineError(
            f"{function.name} gave {len(probe):,} unique inputs in a draw of {PROBE_SIZE:,}, which suggests about "
            f"{estimate:,} distinct inputs in all, far fewer than `inputs.count` + `eval.count` = {wanted:,}; "
            "lower the counts or widen the input distribution")


def _population_estimate(draws: int, unique: int) -> int:
    """N such that `draws` uniform draws from N things give `unique` distinct ones: unique = N (1 - e^(-draws/N))."""
    low, high = float(unique), float(unique) * 1000
    for _ in range(100):
        middle = (low + high) / 2
        if middle * (1 - math.exp(-draws / middle)) < unique:
            low = middle
        else:
            high = middle
    return round(high)


def _normalize(row, index: int, source: str = "") -> dict:
    if isinstance(row, str):
        row = {"input": row}
    if not isinstance(row, dict) or row.get("input") is None:
        problem = "has no `input` key" if isinstance(row, dict) else "is not a dict or a string"
        where = f"{source} a bad input (#{index})" if source else f"input #{index}"
        raise EngineError(f"{where}: {_show(row)} {problem}; every input must be a dict with an `input` key "
                          f"(and optionally `label`) or a string, e.g. {EXAMPLE_INPUTS}")
    row = dict(row)
    if row.get("label") is not None:
        row["label"] = str(row["label"])
    return row


def _unique(rows: list[dict]) -> list[dict]:
    seen, unique = set(), []
    for row in rows:
        key = _key(row)
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique


def _key(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _column_map(config) -> dict[str, tuple[str, str]]:
    """Template variable -> (column, the key that named it); `inputs.columns` wins over the *_field keys."""
    mapping = {"input": (config.input_field, "inputs.input_field"), "label": (config.label_field, "inputs.label_field")}
    mapping.update({variable: (column, f"inputs.columns.{variable}") for variable, column in config.columns.items()})
    return mapping


def _missing_column(columns, config) -> str | None:
    """The first problem of a mapped column that the data lacks (a label column is optional unless `columns` names it)."""
    for variable, (column, key) in _column_map(config).items():
        if column not in columns and key != "inputs.label_field":
            return f"`{key}` = {column!r}: not a column (columns: {', '.join(map(str, columns))})"
    return None


def _rename(row: dict, config, where: str = "") -> dict:
    problem = _missing_column(row, config)
    if problem:
        raise EngineError(where + problem)
    renamed = dict(row)
    for variable, (column, _key_name) in _column_map(config).items():
        if column in row:
            renamed[variable] = row[column]
    return renamed


def _row_filter(project: Project):
    """`inputs.filter` as a predicate on renamed rows, checked to answer true or false (all rows pass without it)."""
    reference = project.inputs.filter
    if not reference:
        return lambda row: True
    function = load_callable(project.dir, reference, "inputs.filter", "function(row)")

    def keep(row: dict) -> bool:
        verdict = function(row)
        if not isinstance(verdict, bool):
            raise EngineError(f"`inputs.filter` = {reference!r} returned {_show(verdict)} for row {_show(row)}: "
                              "expected true or false")
        return verdict
    return keep


def _read_file(path: Path, config) -> list[dict]:
    """A .jsonl or .csv pool. Data files are read, never run, so they may live outside the project folder."""
    if not path.exists():
        raise EngineError(f"`inputs.path` = {config.path!r}: no such file ({path})")
    if path.suffix not in (".jsonl", ".csv"):
        raise EngineError(f"`inputs.path` = {config.path!r}: expected a .jsonl or .csv file")
    text = read_text(path, "inputs.path")
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise EngineError(f"{path}, line {number}: not valid JSON ({error})") from None
            if not isinstance(row, dict):
                raise EngineError(f"{path}, line {number}: expected a JSON object like {{\"input\": \"...\"}}, "
                                  f"got {_show(row, 60)}")
            rows.append(_rename(row, config, f"{path}, line {number}: "))
        return rows
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise EngineError(f"{path}: not valid CSV ({error})") from None
    return [_rename(row, config) for row in rows]


def _read_dataset(project: Project, split_key: str, rng: random.Random, wanted: int) -> list[dict]:
    """A seeded sample of `wanted` unique rows (after `columns` and `filter`) of one split.

    Rows are read in a shuffled order and only until enough are found, so a large
    dataset is never turned into Python rows whole.
    """
    from engine.project.datasets_source import load_split

    config = project.inputs
    split = project.eval.split if split_key == "eval.split" else config.split
    dataset = load_split(project.dir, config, split, split_key)
    problem = _missing_column(dataset.column_names, config)
    if problem:
        raise EngineError(f"{problem} in split {split!r} of `inputs.dataset` = {config.dataset!r}")
    keep = _row_filter(project)
    order = list(range(len(dataset)))
    rng.shuffle(order)
    rows, seen = [], set()
    for index in order:
        row = _rename(dataset[index], config)
        if keep(row):
            rows.append(row)
            seen.add(_key(row))
            if len(seen) >= wanted and not config.label_function:  # a label function may drop some
                break
    return rows


def _fewshot(project: Project, wanted: int, model, tokenizer, keep=None) -> list[dict]:
    """Sample the model on a prompt of example inputs until `wanted` unique lines (paper 3.1)
    that `keep` accepts (all, without it)."""
    import torch

    config = project.inputs
    torch.manual_seed(config.seed)
    prompt_ids = tokenizer(config.fewshot_prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(model.device)
    found: dict[str, None] = {}
    for _attempt in range(max(20, wanted // 4)):
        batch = prompt_ids.repeat(min(64, wanted), 1)
        with torch.no_grad():
            output = model.generate(batch, do_sample=True, max_new_tokens=config.fewshot_max_new_tokens,
                                    pad_token_id=tokenizer.pad_token_id)
        for text in tokenizer.batch_decode(output[:, prompt_ids.shape[1]:], skip_special_tokens=True):
            line = text.strip("\n").split("\n")[0].strip()
            if line and (keep is None or keep(line)):
                found[line] = None
        if len(found) >= wanted:
            break
    return [{"input": line} for line in found]
