"""Experiment trackers (`distill.report_to`, issue 10 item 6): the run's figures, also sent to TensorBoard, W&B, ...

`events.jsonl` stays the record of the run (the TUI reads only it); a tracker gets a
copy of the numbers of its `train` and `eval` events, through accelerate's tracker
classes (the ones `Accelerator(log_with=...)` builds). The run's `EventWriter` holds
them rather than an `Accelerator`: a run makes one Accelerator per training phase
(the student, each baseline, each stage) and none for the teacher pass and
evaluation, while one tracker run must cover the whole run folder.

Where each writes: TensorBoard under `RUN_DIR/tensorboard/`; W&B under
`RUN_DIR/wandb/` (with `WANDB_MODE=offline` it needs no network: `wandb sync` later);
aim under `RUN_DIR/`; the others where their own settings say.

Tags: `train/loss`, `train/kl`, `train/lr`, ... and `eval/<which>/<metric>`, with
`<stage>/` in front in a project of several stages, the baseline's folder for a
baseline's training (`baselines/scdir/train/loss`), and `<operation>/` after `eval/`
with several operations. The tracker step counts optimizer steps over the whole run:
each training phase restarts at step 1 in `events.jsonl`, and W&B drops a point whose
step goes back, so a later phase continues after the last step of the one before; in
a single-phase run it is the event's own step. Evaluation figures are logged at the
step training ended.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

# accelerate's tracker names -> the pip package that provides each.
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "comet_ml": "comet-ml", "aim": "aim",
            "clearml": "clearml", "dvclive": "dvclive", "swanlab": "swanlab", "trackio": "trackio"}
TENSORBOARD_DIR = "tensorboard"
NOT_FIGURES = {"step", "total_steps"}  # a train event's position, not a figure to plot


def tracker_name_problems(names: list[str], key: str = "distill.report_to") -> list[str]:
    """Names that are not trackers (checked when the project loads; no tracker package needed)."""
    problems = []
    for name in names:
        if name not in TRACKERS:
            close = difflib.get_close_matches(name, list(TRACKERS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"`{key}` has {name!r}: expected some of {', '.join(TRACKERS)}{hint}")
    return problems


def tracker_problems(project) -> list[str]:
    """Trackers asked for that cannot start here: the package is missing, or accelerate predates the tracker.

    Part of the start-up checks (engine/checks.py), so they stop a run before any model loads.
    """
    names = [name for name in project.distill.report_to if name in TRACKERS]
    if not names:
        return []
    import accelerate.utils
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    problems = []
    for name in names:
        if name not in LOGGER_TYPE_TO_CLASS:
            problems.append(f"`distill.report_to` has {name!r}, which this accelerate ({accelerate.__version__}) "
                            "does not know; upgrade it: `pip install -U accelerate`")
        elif not getattr(accelerate.utils, f"is_{name}_available")():
            problems.append(f"`distill.report_to` has {name!r}, but its package is not installed here: "
                            f"`pip install {TRACKERS[name]}` (or remove it from `distill.report_to`)")
    return problems


def _tag_prefix(event: dict) -> str:
    stage = event.get("stage_name")
    return f"{stage}/" if stage and stage != "main" else ""


def _numbers(values: dict, prefix: str) -> dict[str, float]:
    """The numbers in a (nested) metrics table, keyed `prefix/key/subkey`; text and flags are left out."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_numbers(value, f"{prefix}/{key}"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f"{prefix}/{key}"] = value
    return flat


class TrackerSteps:
    """The tracker step of each event: optimizer steps counted over every training phase of the run."""

    def __init__(self):
        self.offsets: dict[tuple, int] = {}  # (stage_name, phase) -> the run step before its step 1
        self.step = 0  # the last run step logged

    def of_train(self, event: dict) -> int:
        phase = (event.get("stage_name"), event.get("phase", "student"))
        if phase not in self.offsets:
            self.offsets[phase] = self.step
        self.step = max(self.step, self.offsets[phase] + event["step"])
        return self.offsets[phase] + event["step"]


def figures_of(event: dict, steps: TrackerSteps) -> tuple[dict[str, float], int] | None:
    """(tag -> value, tracker step) for the numbers of one event, or None when it carries none to plot."""
    prefix = _tag_prefix(event)
    if event.get("type") == "train":
        phase = event.get("phase", "student")
        where = prefix + ("" if phase == "student" else f"{phase}/") + "train"
        figures = {f"{where}/{key}": value for key, value in event.items()
                   if key not in NOT_FIGURES and isinstance(value, (int, float)) and not isinstance(value, bool)
                   and key != "time"}
        return figures, steps.of_train(event)
    if event.get("type") == "eval":
        operation = event.get("operation")
        where = prefix + "eval/" + (f"{operation}/" if operation and operation != "main" else "") + event["which"]
        return _numbers(event.get("metrics") or {}, where), steps.step
    return None


def _flat_config(values: dict, prefix: str = "") -> dict:
    """The project as the flat `key: str | number | bool` table trackers take as hyperparameters."""
    import json

    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flat_config(value, f"{prefix}{key}."))
        elif isinstance(value, (str, int, float, bool)):
            flat[prefix + key] = value
        elif value is not None:
            flat[prefix + key] = json.dumps(value, default=str)
    return flat


class Trackers:
    """The run's trackers, fed by its EventWriter: started with the teacher stage, closed with the writer.

    They start once set-up is over (the start-up checks have found every missing package by
    then, and a tracker that fails to start, e.g. W&B without a login or offline mode, stops
    the run before the teacher pass). A tracker that fails later, mid-run, is dropped with a
    warning on stderr: the run goes on, and events.jsonl has every figure.
    """

    def __init__(self, names: list[str], run_dir: Path, project_name: str, config: dict | None = None,
                 earlier_events: list[dict] = ()):
        self.names, self.run_dir, self.project_name, self.config = list(names), Path(run_dir), project_name, config
        self.trackers: list | None = None  # None: not started yet
        self.steps = TrackerSteps()
        for event in earlier_events:  # a resumed run: phases logged before the stop keep their run steps
            figures_of(event, self.steps)

    @classmethod
    def for_run(cls, project, run_dir: Path) -> "Trackers":
        from engine.project.writer import project_to_dict
        from engine.runs.events import read_events

        events_file = Path(run_dir) / "events.jsonl"
        return cls(project.distill.report_to, run_dir, project.name, _flat_config(project_to_dict(project)),
                   read_events(events_file) if project.distill.report_to and events_file.exists() else [])

    def start(self) -> None:
        from accelerate.tracking import LOGGER_TYPE_TO_CLASS

        from engine.errors import EngineError

        self.trackers = []
        for name in self.names:
            tracker_class = LOGGER_TYPE_TO_CLASS[name]
            try:
                if name == "tensorboard":  # RUN_DIR/tensorboard/: the writer's folder is logging_dir/run_name
                    tracker = tracker_class(TENSORBOARD_DIR, self.run_dir)
                elif name == "wandb":  # the W&B project is the ctxdistill project; the run is named like its folder
                    tracker = tracker_class(self.project_name, name=self.run_dir.name, dir=str(self.run_dir))
                elif tracker_class.requires_logging_directory:
                    tracker = tracker_class(self.project_name, self.run_dir)
                else:
                    tracker = tracker_class(self.project_name)
                tracker.start()
                if self.config:
                    tracker.store_init_configuration(self.config)
            except Exception as error:
                raise EngineError(f"`distill.report_to`: the {name} tracker did not start ({type(error).__name__}: "
                                  f"{str(error).splitlines()[0] if str(error) else ''})"
                                  + ("; without a network or a login set WANDB_MODE=offline" if name == "wandb" else "")
                                  ) from None
            self.trackers.append(tracker)

    def observe(self, event: dict) -> None:
        """Called by the EventWriter with every event it writes (main process only)."""
        if not self.names:
            return
        if self.trackers is None:
            if event.get("stage", "setup") in ("setup", "done") or event.get("type") == "error":
                return  # nothing to plot yet (the start-up checks may not have run), or a run that failed in set-up
            self.trackers = []  # a failed start is reported once, not again by the error event that follows
            self.start()
        found = figures_of(event, self.steps)
        if not found or not found[0]:
            return
        values, step = found
        for tracker in list(self.trackers):
            try:
                tracker.log(values, step=step)
            except Exception as error:  # a tracker is a copy: losing it must not lose the run
                print(f"warning: the {tracker.name} tracker failed ({type(error).__name__}: {error}); "
                      "it gets no more figures this run (events.jsonl has them all)", file=sys.stderr)
                self.trackers.remove(tracker)

    def finish(self) -> None:
        for tracker in self.trackers or []:
            try:
                tracker.finish()
            except Exception as error:
                print(f"warning: the {tracker.name} tracker did not close cleanly ({type(error).__name__}: {error})",
                      file=sys.stderr)
        self.trackers = []  # closed: never started again
