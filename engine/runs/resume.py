"""Which project a resumed (or re-evaluated) run uses: the one it was launched with, plus safe corrections.

A run folder keeps the project as launched (`project.toml`), and a resume must
finish the same run. But a mistake that only shows late (a metric that raises,
a device that is busy) must be fixable without losing the teacher pass and the
training. So `--resume` and `eval` read the project file as it is now, and take
it when every key that differs is one that cannot invalidate finished work:

- `eval.*` and `description`: evaluation comes last and is redone whole;
- `model.device`, `model.threads`, `*.log_every`, `*.checkpoint_every`,
  `*.vocab_chunk`: where and how fast the same computation runs.

Not `generate.batch_size` nor `generate.max_batch_tokens`: how inputs are batched
changes the padding, so the teacher's outputs, and both are in the cache key.

Each rule holds for every copy of a key: an operation's own `[eval]` shows up as
`operations.<name>.eval.*` and a stage's `[distill]` as `stages.<name>.distill.*`.

Any other change (templates, inputs, model, labels, steps...) would silently
mix two projects in one run, so it is refused, naming the keys: start a new run.
"""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

from engine.runs import atomic
from engine.project.loader import load_project, project_from_toml_text
from engine.project.schema import Project, PROJECT_FILE
from engine.project.writer import project_to_dict, project_to_toml
from engine.errors import EngineError
from engine.runs.events import read_events
from engine.runs.lock import refuse_if_locked

SAFE_TO_CHANGE = ("description", "eval.*", "model.device", "model.threads", "*log_every", "*checkpoint_every",
                  "*vocab_chunk")


def project_of_run(run_dir: Path) -> Project:
    """The project as launched (run_dir/project.toml), with its folder from the run's first event."""
    run_dir = Path(run_dir)
    for needed in (PROJECT_FILE, "events.jsonl"):
        if not (run_dir / needed).is_file():
            raise EngineError(f"{run_dir}: not a whole run folder (no {needed}); "
                              "start a new run with `ctxdistill run PROJECT_DIR`")
    events = read_events(run_dir / "events.jsonl")
    project_dir = next((event["project_dir"] for event in events if "project_dir" in event), None)
    if project_dir is None:
        raise EngineError(f"{run_dir}: not a run folder (its events.jsonl does not name a project)")
    return project_from_toml_text(project_dir, (run_dir / PROJECT_FILE).read_text(encoding="utf-8"))


def changed_keys(old: Project, new: Project) -> list[str]:
    """Dotted keys whose values differ (lists of operations and stages compared item by item)."""
    def flatten(value, prefix: str) -> dict:
        if isinstance(value, dict):
            return {key: leaf for name, item in value.items() for key, leaf in flatten(item, f"{prefix}{name}.").items()}
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            return {key: leaf for index, item in enumerate(value)
                    for key, leaf in flatten(item, f"{prefix}{item.get('name', index)}.").items()}
        return {prefix.rstrip("."): value}

    before, after = flatten(project_to_dict(old), ""), flatten(project_to_dict(new), "")
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def project_for_resume(run_dir: Path) -> tuple[Project, list[str]]:
    """(the project to resume with, the keys taken from the current project file); refuses unsafe changes."""
    launched = project_of_run(run_dir)
    if not launched.file.exists():
        return launched, []  # the project folder moved or is gone: the frozen copy is the whole truth
    current = load_project(launched.dir)
    changed = changed_keys(launched, current)
    if not changed:
        return launched, []
    items = {f"{array}.{item.name}." for project in (launched, current)
             for array in ("operations", "stages") for item in getattr(project, array)}
    unsafe = [key for key in changed if not is_safe_change(key, items)]
    if unsafe:
        raise EngineError(
            f"{launched.file} changed since this run was launched, in keys a resume cannot take without mixing two "
            f"projects in one run: {', '.join(unsafe)}. Undo those changes to resume, or start a new run "
            f"(`ctxdistill run {launched.dir}`; the teacher cache is reused where the teacher did not change). "
            f"Keys a resume takes: {', '.join(SAFE_TO_CHANGE)}")
    refuse_if_locked(run_dir)  # a live run's project file is not ours to rewrite
    atomic.write_text(Path(run_dir) / PROJECT_FILE, project_to_toml(current))
    return current, changed


def is_safe_change(key: str, items: set[str]) -> bool:
    """`key` matches a safe pattern, itself or with its `operations.<name>.` / `stages.<name>.` prefix taken off.

    `items` holds those prefixes for the names the projects use: a name may hold a dot, so the
    prefix is found by name (the longest that fits: `x.eval` before `x`), never by splitting the key.
    """
    prefix = max((prefix for prefix in items if key.startswith(prefix)), key=len, default="")
    return any(fnmatch(key, pattern) or (prefix and fnmatch(key[len(prefix):], pattern)) for pattern in SAFE_TO_CHANGE)
