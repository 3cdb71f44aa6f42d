"""A run repeated over seeds, summarized with its spread (issue 25).

With one seed, an ordering of two methods is a draw: the same command gave
ScDir above and below distillation on two machines. A sweep runs the project
once per seed (`distill.seed` in every stage and, unless `same_inputs`,
`inputs.seed` of every operation), each an ordinary run folder beside the
others, and writes a sweep folder with what they share:

    runs/<utc>-<name>-seeds/
      sweep.json      the seeds and the member run folders
      summary.json    every numeric figure of the members' metrics.json as mean, min, max, count

Each member holds `sweep.json` too (its seed, index and the sweep's folder), so a
UI can show "seed 2/3" and group the runs. Teacher passes that do not depend on
the seed (none sample without it today; a cache is keyed by the seed) are found
in the cache like any run's.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from engine.errors import EngineError
from engine.project.schema import Project
from engine.runs import atomic

SWEEP_FILE, SUMMARY_FILE = "sweep.json", "summary.json"


def parse_seeds(text: str, base: int) -> list[int]:
    """`--seeds 3` -> base, base + 1, base + 2; `--seeds 0,5,9` -> those seeds."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        raise EngineError(f"--seeds {text!r}: expected a count (3) or a list of seeds (0,1,2)") from None
    if len(numbers) == 1 and "," not in text:
        if numbers[0] < 1:
            raise EngineError(f"--seeds {numbers[0]}: a sweep needs at least 1 seed")
        return [base + index for index in range(numbers[0])]
    if len(set(numbers)) != len(numbers):
        repeated = sorted({number for number in numbers if numbers.count(number) > 1})
        raise EngineError(f"--seeds {text!r}: seed {', '.join(map(str, repeated))} is listed twice; each seed runs once")
    if not numbers:
        raise EngineError("--seeds: no seed given")
    return numbers


def with_seed(project: Project, seed: int, same_inputs: bool = False) -> Project:
    """The project with `distill.seed` = seed everywhere (and `inputs.seed`, unless `same_inputs`)."""
    distill = dataclasses.replace(project.distill, seed=seed)
    stages = tuple(dataclasses.replace(stage, distill=dataclasses.replace(stage.distill, seed=seed))
                   for stage in project.stages)
    operations = project.operations
    inputs = project.inputs
    if not same_inputs:
        inputs = dataclasses.replace(project.inputs, seed=seed)
        operations = tuple(dataclasses.replace(operation, inputs=dataclasses.replace(operation.inputs, seed=seed))
                           for operation in project.operations)
    return dataclasses.replace(project, distill=distill, stages=stages, operations=operations, inputs=inputs)


def start_sweep(sweep_dir: Path, seeds: list[int], same_inputs: bool) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(sweep_dir / SWEEP_FILE, json.dumps({"seeds": seeds, "same_inputs": same_inputs, "runs": []}, indent=1))


def join_sweep(sweep_dir: Path, run_dir: Path, seed: int, index: int, count: int) -> None:
    """Record a member run in the sweep, and the sweep in the run (before it starts, so a UI sees it live)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(run_dir / SWEEP_FILE, json.dumps({"sweep": str(sweep_dir), "seed": seed, "index": index + 1,
                                                        "count": count}))
    sweep = json.loads((sweep_dir / SWEEP_FILE).read_text())
    sweep["runs"].append({"seed": seed, "run_dir": str(run_dir)})
    atomic.write_text(sweep_dir / SWEEP_FILE, json.dumps(sweep, indent=1))


def numeric_leaves(tree, prefix: str = "") -> dict[str, float]:
    """Every finite number of a metrics.json, by its dotted path (`student_after.exact_match`)."""
    if isinstance(tree, dict):
        leaves = {}
        for key, value in tree.items():
            leaves.update(numeric_leaves(value, f"{prefix}{key}."))
        return leaves
    if isinstance(tree, (int, float)) and not isinstance(tree, bool) and math.isfinite(tree):
        return {prefix[:-1]: float(tree)}
    return {}


def summarize(sweep_dir: Path) -> dict:
    """summary.json from the members' metrics.json: mean, min, max and count of every figure they report."""
    sweep = json.loads((sweep_dir / SWEEP_FILE).read_text())
    finished = [member for member in sweep["runs"] if (Path(member["run_dir"]) / "metrics.json").is_file()]
    values: dict[str, list[float]] = {}
    for member in finished:
        leaves = numeric_leaves(json.loads((Path(member["run_dir"]) / "metrics.json").read_text()))
        for path, value in leaves.items():
            values.setdefault(path, []).append(value)
    figures = {path: {"mean": round(sum(found) / len(found), 6), "min": min(found), "max": max(found), "count": len(found)}
               for path, found in values.items()}
    summary = {"seeds": [member["seed"] for member in finished], "runs": [member["run_dir"] for member in finished],
               "planned": len(sweep["seeds"]), "figures": figures}
    atomic.write_text(sweep_dir / SUMMARY_FILE, json.dumps(summary, indent=1))
    return summary


BOOKKEEPING = ("prompt_tokens", "inference_tokens", "count", "eval_seconds")


def format_summary(summary: dict) -> str:
    """The table printed at the end: the scores (a project's own metrics too), not the token counts
    and timings, as mean (min - max) over the runs."""
    rows = [(path, figure) for path, figure in summary["figures"].items()
            if not any(part in BOOKKEEPING for part in path.split("."))]
    width = max((len(path) for path, _ in rows), default=10)
    lines = [f"over {len(summary['seeds'])} of {summary['planned']} seeds ({', '.join(map(str, summary['seeds']))}): "
             "mean (min - max)"]
    lines += [f"  {path:<{width}}  {figure['mean']:.3f} ({figure['min']:.3f} - {figure['max']:.3f})" for path, figure in rows]
    return "\n".join(lines)
