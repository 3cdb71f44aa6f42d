"""A staged run as the dashboard shows it (issue 20): its plan, each stage's state, its summaries.

No Textual here. The plan comes from the run's `project.toml` (the engine writes
every stage out in full there) or, before a launch, from the loaded project;
the states and figures come from the run's events as `WatchedRun` folds them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

# The engine's phase (an event's `stage`) -> the word a stage's state shows.
PHASE_STATES = {"setup": "setup", "teacher": "teacher", "train": "training", "eval": "evaluating"}
ENDED_STATES = {"stopped": "stopped", "failed": "failed", "interrupted": "interrupted"}


@dataclass(frozen=True)
class PlannedStage:
    """One [[stages]] item: what it trains, what it only scores, whose weights teach."""

    name: str
    operations: tuple[str, ...]
    teacher: str = "base"  # "base" or "previous" (recursive distillation)
    evaluate: tuple[str, ...] = ()
    policy: str = "off"  # distill.policy: off (the teacher's cached answers), on, mixed


def _policy(stage: dict, data: dict) -> str:
    """A stage's `distill.policy`: its own override, else the top-level [distill]'s, else off."""
    own = stage.get("distill") if isinstance(stage.get("distill"), dict) else {}
    top = data.get("distill") if isinstance(data.get("distill"), dict) else {}
    return str(own.get("policy") or top.get("policy") or "off")


def _from_data(stages: list, operations: list[str], data: dict) -> list[PlannedStage]:
    return [PlannedStage(str(stage.get("name", "")), tuple(str(op) for op in stage.get("operations") or operations),
                         str(stage.get("teacher") or "base"), tuple(str(op) for op in stage.get("evaluate") or ()),
                         _policy(stage, data))
            for stage in stages if isinstance(stage, dict)]


def planned_stages(run_dir: Path) -> list[PlannedStage]:
    """The stages the run's project.toml declares; [] for a run without operations or stages."""
    try:
        data = tomllib.loads((Path(run_dir) / "project.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    operations = [str(op.get("name", "")) for op in data.get("operations") or [] if isinstance(op, dict)]
    stages = data.get("stages") or []
    if not stages:
        return [PlannedStage("main", tuple(operations), policy=_policy({}, data))] if operations else []
    return _from_data(stages, operations, data)


def project_stages(project) -> list[PlannedStage]:
    """The stages of a loaded engine `Project` (before a launch); [] unless it declares operations or stages."""
    if project is None or not getattr(project, "combined", False):
        return []
    return [PlannedStage(stage.name, tuple(stage.operations), stage.teacher, tuple(stage.evaluate), stage.distill.policy)
            for stage in project.stages]


def stage_states(planned: list[PlannedStage], state, status: str) -> dict[str, str]:
    """stage -> waiting / setup / teacher / training / evaluating / done / stopped / failed / interrupted."""
    reached = set(state.stage_names)
    current = state.stage_name
    states = {}
    for stage in planned:
        if status == "completed" and stage.name in reached:
            states[stage.name] = "done"
        elif stage.name == current:
            states[stage.name] = (PHASE_STATES.get(state.stage, state.stage) if status in ("running", "starting")
                                  else ENDED_STATES.get(status, status))
        elif stage.name in reached:
            states[stage.name] = "done"
        else:
            states[stage.name] = "waiting"
    return states


def live_label(planned: list[PlannedStage], state, status: str) -> str:
    """`stage 1/2 · associate · train 7/40`: where a running staged run is; "" when not staged or not running."""
    names = [stage.name for stage in planned]
    if status not in ("running", "starting") or state.stage_name not in names:
        return ""
    where = f"stage {names.index(state.stage_name) + 1}/{len(names)} · {state.stage_name} · {state.stage}"
    if state.operation and state.stage in ("teacher", "eval"):
        where += f" ({state.operation})"
    if state.total_steps:
        where += f" {state.step}/{state.total_steps}"
    return where


# --- results of a staged run -------------------------------------------------

def stage_results(metrics: dict, state=None) -> dict[str, dict[str, dict]]:
    """{stage: {operation: its before/after table}}: metrics.json's, else the evaluations seen live."""
    if metrics.get("combined"):
        return {stage: dict(figures.get("operations") or {}) for stage, figures in (metrics.get("stages") or {}).items()}
    if state is not None and state.stage_evals:
        return {stage: {operation: dict(tables) for operation, tables in operations.items()}
                for stage, operations in state.stage_evals.items()}
    return {}


def first_score(tables: dict) -> str | None:
    """The metric that stands for an operation: the first one its student_after row has."""
    for role in ("student_after", "student_before", "teacher"):
        if tables.get(role):
            return next(iter(tables[role]))
    return None


def summary_rows(results: dict[str, dict[str, dict]]) -> tuple[str, list[tuple[str, dict]]]:
    """(the latest stage evaluated, [(operation, its tables)]) in evaluation order."""
    if not results:
        return "", []
    stage = list(results)[-1]
    return stage, list(results[stage].items())


def trained_steps(state) -> str:
    """`80/80`: the student's training steps over every stage (not the teacher's or evaluation's counts)."""
    step, total = state.trained
    return f"{step}/{total}" if total else "–"


def headline_of(metrics: dict) -> tuple[str, dict]:
    """(`stage/operation` or "", the one table that stands for the run): a staged run's last stage, first operation."""
    if not metrics.get("combined"):
        return "", metrics
    stage, rows = summary_rows(stage_results(metrics))
    if not rows:
        return "", {}
    operation, tables = rows[0]
    return f"{stage}/{operation}", tables


def overwrite_matrix(results: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict]]:
    """{stage: {operation: the student's scores after it}}, as metrics.json's "matrix" (for a live run)."""
    return {stage: {name: tables["student_after"] for name, tables in operations.items() if tables.get("student_after")}
            for stage, operations in results.items()}
