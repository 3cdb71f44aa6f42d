"""Raw task input distributions (paper section 2.1), seeded and split.

Every source yields input dicts (`{"input": ..., "label": ...}`, label
optional, other keys kept for templates). `load_inputs` returns a distillation
set and a disjoint held-out eval set: inputs are deduplicated before splitting,
so no eval input was ever distilled on.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from engine.config import Project
from engine.errors import EngineError
from engine.usercode import load_callable


def load_inputs(project: Project, model=None, tokenizer=None) -> tuple[list[dict], list[dict]]:
    """(distill inputs, eval inputs), sizes `inputs.count` and `eval.count`."""
    wanted = project.inputs.count + project.eval.count
    pool = _unique(_draw(project, wanted, model, tokenizer))
    if len(pool) < wanted:
        raise EngineError(
            f"`inputs.source` gave only {len(pool)} unique inputs, but `inputs.count` + `eval.count` = {wanted}; "
            "lower the counts or widen the input distribution")
    return pool[: project.inputs.count], pool[project.inputs.count: wanted]


def sample_inputs(project: Project, n: int, model=None, tokenizer=None) -> list[dict]:
    """A few held-out inputs for previews (never from the distillation set)."""
    wanted = project.inputs.count + n
    pool = _unique(_draw(project, wanted, model, tokenizer))
    held_out = pool[project.inputs.count: wanted]
    return held_out or pool[:n]


def _draw(project: Project, wanted: int, model, tokenizer) -> list[dict]:
    config = project.inputs
    rng = random.Random(config.seed)
    if config.source == "python":
        function = load_callable(project.dir, config.function, "inputs.function")
        # Ask for a margin of extra inputs: duplicates are dropped before the split.
        try:
            rows = function(rng, wanted + max(8, wanted // 10), **config.options)
        except TypeError as error:
            raise EngineError(f"`inputs.function` = {config.function!r} could not be called as "
                              f"function(rng, n, **inputs.options): {error}") from None
    elif config.source == "file":
        rows = _read_file(project.dir / config.path, config)
        rng.shuffle(rows)
    elif config.source == "datasets":
        rows = _read_dataset(project)
        rng.shuffle(rows)
    else:
        if model is None:
            raise EngineError("`inputs.source` = 'fewshot' samples inputs from the model: load the model first")
        rows = _fewshot(project, wanted, model, tokenizer)
    return [_normalize(row, i) for i, row in enumerate(rows)]


def _normalize(row, index: int) -> dict:
    if isinstance(row, str):
        row = {"input": row}
    if not isinstance(row, dict) or "input" not in row:
        raise EngineError(f"input #{index} is {row!r}: every input must be a dict with an `input` key (or a string)")
    row = dict(row)
    if row.get("label") is not None:
        row["label"] = str(row["label"])
    return row


def _unique(rows: list[dict]) -> list[dict]:
    seen, unique = set(), []
    for row in rows:
        key = json.dumps(row, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique


def _rename(row: dict, config) -> dict:
    if config.input_field not in row:
        raise EngineError(f"`inputs.input_field` = {config.input_field!r}: not a column (columns: {', '.join(row)})")
    renamed = {key: value for key, value in row.items()}
    renamed["input"] = row[config.input_field]
    if config.label_field in row:
        renamed["label"] = row[config.label_field]
    return renamed


def _read_file(path: Path, config) -> list[dict]:
    if not path.exists():
        raise EngineError(f"`inputs.path` = {config.path!r}: no such file ({path})")
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise EngineError(f"{path}, line {number}: not valid JSON ({error})") from None
    elif path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
    else:
        raise EngineError(f"`inputs.path` = {config.path!r}: expected a .jsonl or .csv file")
    return [_rename(row, config) for row in rows]


def _read_dataset(project: Project) -> list[dict]:
    import datasets

    config = project.inputs
    local = project.dir / config.dataset
    name = str(local) if local.exists() else config.dataset
    try:
        dataset = datasets.load_dataset(name, config.dataset_config or None, split=config.split)
    except Exception as error:
        raise EngineError(f"`inputs.dataset` = {config.dataset!r}: could not load it ({type(error).__name__}: {error})") from None
    return [_rename(dict(row), config) for row in dataset]


def _fewshot(project: Project, wanted: int, model, tokenizer) -> list[dict]:
    """Sample the model on a prompt of example inputs until `wanted` unique lines (paper 3.1)."""
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
            if line:
                found[line] = None
        if len(found) >= wanted:
            break
    return [{"input": line} for line in found]
