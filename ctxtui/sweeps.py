"""Sweeps: a run repeated over seeds (`ctxdistill run PROJECT --seeds N`, issue 25), read for the screens.

The engine writes the sweep folder `runs/<utc>-<name>-seeds/` (sweep.json: the
seeds and member runs; summary.json once done: every figure of the members'
metrics.json as mean, min, max, count) and a `sweep.json` in each member run
(its seed, index 1..n and the sweep folder). The sweep folder is not a run.

The figures come back as a metrics.json-shaped tree whose numbers are
`Spread`s: floats equal to the mean that also carry min and max, so every
screen that reads metrics.json reads a sweep's too, and `number()` prints the
spread wherever a value is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ctxtui import runner
from engine.runs.sweep import SUMMARY_FILE, SWEEP_FILE, numeric_leaves


class Spread(float):
    """The mean of a figure over a sweep's runs, with its min, max and count."""

    def __new__(cls, mean: float, low: float, high: float, count: int):
        value = super().__new__(cls, mean)
        value.low, value.high, value.count = float(low), float(high), int(count)
        return value

    def __reduce__(self):  # copy, deepcopy and pickle keep the spread
        return (Spread, (float(self), self.low, self.high, self.count))


def number(value, digits: int = 3) -> str:
    """`0.500`, a sweep's `0.500 (0.400–0.600)`; "–" for no number."""
    if not isinstance(value, (int, float)):
        return "–"
    if isinstance(value, Spread):
        return f"{value:.{digits}f} ({value.low:.{digits}f}–{value.high:.{digits}f})"
    return f"{value:.{digits}f}"


def member_of(run_dir: Path) -> dict:
    """A member run's sweep.json ({"sweep", "seed", "index", "count"}), or {} for a run of its own."""
    found = runner.load_json(Path(run_dir) / SWEEP_FILE)
    return found if "sweep" in found and "index" in found else {}


def seed_label(run_dir: Path) -> str:
    """"seed 2/3" for the second of three members of a sweep, "" otherwise."""
    member = member_of(run_dir)
    return f"seed {member['index']}/{member['count']}" if member else ""


def is_sweep(folder: Path) -> bool:
    """Whether `folder` is a sweep folder (its sweep.json lists seeds; it has no events of its own)."""
    return "seeds" in runner.load_json(Path(folder) / SWEEP_FILE) and not (Path(folder) / "events.jsonl").exists()


def spread_metrics(figures: dict) -> dict:
    """summary.json's {"a.b.c": {"mean", "min", "max", "count"}} -> {"a": {"b": {"c": Spread}}}."""
    tree: dict = {}
    for path, figure in figures.items():
        *parents, leaf = path.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[leaf] = Spread(figure["mean"], figure["min"], figure["max"], figure["count"])
    if "stages" in tree:
        tree["combined"] = True  # numeric_leaves drops metrics.json's boolean
    return tree


def figures_of(members: list[runner.RunInfo]) -> dict:
    """A summary's figures from the finished members' metrics (a sweep still running has no summary.json)."""
    values: dict[str, list[float]] = {}
    for info in members:
        for path, value in numeric_leaves(info.metrics).items():
            values.setdefault(path, []).append(value)
    return {path: {"mean": sum(found) / len(found), "min": min(found), "max": max(found), "count": len(found)}
            for path, found in values.items()}


@dataclass
class SweepInfo:
    """One sweep folder and its member runs (index order)."""

    sweep_dir: Path
    seeds: list[int]
    members: list[runner.RunInfo] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.sweep_dir.name

    @property
    def done(self) -> int:
        return sum(info.status == "completed" for info in self.members)

    @property
    def status(self) -> str:
        """`3/3 done`, `running 2/3`, `stopped 1/3`: the members' states in one cell."""
        planned = len(self.seeds)
        live = [info for info in self.members if info.status in ("running", "starting")]
        if live:
            return f"running {self.members.index(live[0]) + 1}/{planned}"
        ended = [info.status for info in self.members if info.status != "completed"]
        if ended:
            return f"{ended[0]} {self.done}/{planned}"
        return f"{self.done}/{planned} done" if self.done >= planned else f"incomplete {self.done}/{planned}"

    @property
    def date(self) -> str:
        return self.members[0].date if self.members else ""

    @property
    def metrics(self) -> dict:
        """The members' metrics as mean (min–max): summary.json's, or the finished members' so far."""
        figures = self.summary.get("figures") or figures_of([info for info in self.members if info.metrics])
        return spread_metrics(figures)

    @property
    def over(self) -> str:
        """`over 3 of 3 seeds (0, 1, 2)`: which runs the figures are from."""
        seeds = self.summary.get("seeds")
        if seeds is None:
            seeds = [member_of(info.run_dir).get("seed") for info in self.members if info.metrics]
        so_far = "" if self.summary else " so far"
        return f"over {len(seeds)} of {len(self.seeds)} seeds ({', '.join(map(str, seeds))}){so_far}"


def sweep_info(sweep_dir: Path, runs: dict[Path, runner.RunInfo] | None = None) -> SweepInfo:
    """The sweep in `sweep_dir`; its members from `runs` (by folder) where given, else read now."""
    sweep_dir = Path(sweep_dir)
    found = runner.load_json(sweep_dir / SWEEP_FILE)
    members = []
    for member in found.get("runs") or []:
        run_dir = sweep_dir.parent / Path(member["run_dir"]).name  # the folder may have moved with the project
        if runs is not None and run_dir in runs:
            members.append(runs[run_dir])
        elif runs is None and run_dir.is_dir():
            members.append(runner.run_info(run_dir))
    return SweepInfo(sweep_dir, list(found.get("seeds") or []), members,
                     runner.load_json(sweep_dir / SUMMARY_FILE))


def list_sweeps(project_dir: Path, runs: list[runner.RunInfo]) -> list[SweepInfo]:
    """The project's sweep folders, newest first, their members taken from `runs`."""
    runs_root = Path(project_dir) / "runs"
    if not runs_root.is_dir():
        return []
    by_dir = {info.run_dir: info for info in runs}
    folders = [folder for folder in runs_root.iterdir() if folder.is_dir() and is_sweep(folder)]
    return [sweep_info(folder, by_dir) for folder in sorted(folders, key=lambda path: path.name, reverse=True)]


def config_file(run: Path) -> Path:
    """A run's project.toml; a sweep's is its first member's (they differ only in seeds)."""
    if is_sweep(run):
        members = sweep_info(run).members
        if members:
            return members[0].run_dir / "project.toml"
    return Path(run) / "project.toml"
