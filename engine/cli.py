"""`ctxdistill run | preview | eval`: the engine without the UI.

Errors a user can cause are printed as one clear message (exit status 2),
never a traceback, unless `--debug`.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import time
from pathlib import Path

from engine.errors import EngineError


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand and flag (tests/engine/test_docs.py checks the docs' command lines against it)."""
    from engine.project.scaffold import DESCRIPTIONS, TEMPLATES
    from engine.versions import VersionAction

    parser = argparse.ArgumentParser(prog="ctxdistill", description="Context distillation (Snell, Klein & Zhong, 2022).",
                                     epilog=NO_ARGUMENT_RULE)
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument("--debug", action="store_true", help="show a traceback for an error (default: one line)")
    parser.add_argument("--verbose", action="store_true",
                        help="let transformers, huggingface_hub and datasets draw their own progress bars")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="distill a project: teacher pass, training, evaluation")
    run.add_argument("project_dir", type=Path, help=PROJECT_DIR_HELP, nargs="?", metavar="PROJECT_DIR")
    run.add_argument("--run-dir", type=Path, help="write the run here (default: PROJECT_DIR/runs/<utc>-<name>)")
    run.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a stopped run from its last checkpoint")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--seeds", metavar="N|S1,S2,...", help="repeat the run over N seeds (distill.seed, distill.seed + 1, "
                     "...) or over these seeds, and summarize every figure as mean, min and max")
    run.add_argument("--same-inputs", action="store_true", help="with --seeds: keep inputs.seed, vary only distill.seed")

    preview = commands.add_parser("preview", help="render both prompts for K inputs and show the teacher's answers")
    preview.add_argument("project_dir", type=Path, nargs="?", metavar="PROJECT_DIR", help=PROJECT_DIR_HELP)
    preview.add_argument("--n", type=positive_int, default=3, help="how many inputs (at least 1)")
    preview.add_argument("--op", metavar="NAME", help="which operation (default: each one in turn)")

    check = commands.add_parser("check", help="check a project without loading a model: settings, inputs, code, templates")
    check.add_argument("project_dir", type=Path, nargs="?", metavar="PROJECT_DIR", help=PROJECT_DIR_HELP)

    evaluate = commands.add_parser("eval", help="re-evaluate a run's saved student on its held-out inputs")
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                          help="a run folder (PROJECT_DIR/runs/<utc>-<name>) whose student was saved")

    export = commands.add_parser("export", help="write a finished run's student as a Hugging Face model folder "
                                 "(full weights, LoRA merged; tokenizer, generation config, model card)")
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished run folder (PROJECT_DIR/runs/<utc>-<name>)")
    export.add_argument("dest", type=Path, metavar="DEST", help="a new or empty folder")

    init = commands.add_parser("init", help="create a new project folder from a template (runs as it is)")
    init.add_argument("project_dir", type=Path, metavar="DIR", help="the new project's folder")
    init.add_argument("--template", default="instructions", choices=TEMPLATES,
                      help="; ".join(f"{name}: {DESCRIPTIONS[name]}" for name in TEMPLATES) + " (default: instructions)")
    init.add_argument("--model", metavar="NAME",
                      help="the model: a local folder or a hub id in the local cache (default: the template's own; "
                           "chat: Qwen/Qwen2.5-0.5B-Instruct)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "init":
        try:
            return command_init(args)
        except EngineError as error:
            print_error(f"error: {error}")
            return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from engine.quiet import VERBOSE_ENV, quiet_libraries

    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"
    quiet_libraries()  # our own progress comes from the run's events
    try:
        if args.command == "run":
            return command_run(args)
        if args.command == "preview":
            return command_preview(args)
        if args.command == "check":
            return command_check(args)
        if args.command == "export":
            return command_export(args)
        return command_eval(args)
    except EngineError as error:
        if args.debug:
            raise
        report(f"error: {error}")
        return 2
    except OSError as error:
        if args.debug or error.errno not in DISK_ERRORS:
            raise
        report(f"error: {disk_message(error, args)}")
        return 2
    except KeyboardInterrupt:
        return 130


def print_error(line: str) -> None:
    """One write for the line and its newline: under torchrun every process prints its error to one pipe,
    and Python's stderr writes through, so `print` would let another process's line land between the two."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def report(line: str) -> None:
    """The error line on stderr and, under torchrun, at the end of its failure report too."""
    from engine.runs.launcher import report_error

    print_error(line)
    report_error(line)


# A full, read-only or forbidden disk, or a path through a file: the user's to fix, never a traceback.
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EEXIST}


def disk_message(error: OSError, args) -> str:
    what = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
            errno.EROFS: "the file system is read-only", errno.ENOTDIR: "a part of the path is a file, not a folder",
            errno.EEXIST: "a file is in the way"}.get(error.errno, "permission denied")
    where = f" writing {error.filename}" if error.filename else ""
    resume = getattr(args, "resume", None) or getattr(args, "run_dir", None)
    hint = (f"; free space or fix the path, then `ctxdistill run --resume {resume}` goes on from the last finished "
            "batch or checkpoint" if getattr(args, "command", "") == "run" and resume else
            "; free space or choose another folder (`--run-dir`) and run again")
    return f"{what}{where} ({error.strerror}){hint}"


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (a bad one exits 2 with argparse's usage line)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def command_check(args) -> int:
    from engine.checks import check_project
    from engine.project.loader import load_project

    print(check_project(load_project(project_dir(args))))
    return 0


# One rule for "no argument", the same in ctxtui (issue 23).
NO_ARGUMENT_RULE = "Without PROJECT_DIR, run, check and preview use the project in the current folder, as ctxtui does."
PROJECT_DIR_HELP = "a folder holding project.toml (default: the current folder)"


def project_dir(args) -> Path:
    """The PROJECT_DIR argument, else the current folder: an error that says what to pass when it has no project."""
    if args.project_dir is not None:
        return args.project_dir
    here = Path.cwd()
    if not (here / "project.toml").is_file():
        raise EngineError(f"no project.toml in the current folder ({here}): pass PROJECT_DIR, e.g. "
                          f"`ctxdistill {args.command} sample_projects/instructions`, or create one with `ctxdistill init DIR`")
    return here


def command_run(args) -> int:
    from engine.project.loader import load_project
    from engine.runs.resume import project_for_resume
    from engine.run import new_run_dir, run

    if args.seeds is not None:
        return command_sweep(args)
    if args.resume:
        run_dir = args.resume
        project, adopted = project_for_resume(run_dir)
        if adopted:
            print(f"resuming with the project file's new {', '.join(adopted)}")
    else:
        project = load_project(project_dir(args))
        run_dir = args.run_dir or new_run_dir(project)
    from engine.runs.processes import process_state, shared

    state = process_state(project.model.device)
    run_dir = shared(state, run_dir)  # one folder for all processes: the main process's choice
    main_process = state.is_main_process
    if main_process:
        print(f"run folder: {run_dir}")
    listeners = [ProgressPrinter()] if main_process and not args.quiet else []
    metrics = run(project, run_dir, resume=bool(args.resume), listeners=listeners)
    if not main_process:
        return 0
    if metrics is None:
        print(f"stopped; resume with: ctxdistill run --resume {run_dir}")
        return 0
    print(format_table(metrics))
    return 0


def command_sweep(args) -> int:
    """`run --seeds`: one ordinary run per seed, then the sweep's summary (engine/runs/sweep.py)."""
    from engine.project.loader import load_project
    from engine.run import new_run_dir, run
    from engine.runs import sweep
    from engine.runs.processes import process_state, shared

    if args.resume or args.run_dir:
        raise EngineError("--seeds starts a new sweep: resume a stopped member with `ctxdistill run --resume RUN_DIR` "
                          "(each member is an ordinary run folder), and give no --run-dir (the sweep names its runs)")
    project = load_project(project_dir(args))
    seeds = sweep.parse_seeds(args.seeds, project.distill.seed)
    state = process_state(project.model.device)
    main_process = state.is_main_process
    sweep_dir = shared(state, new_run_dir(project).with_name(new_run_dir(project).name + "-seeds"))
    if main_process:
        sweep.start_sweep(sweep_dir, seeds, args.same_inputs)
        print(f"sweep folder: {sweep_dir} ({len(seeds)} seeds: {', '.join(map(str, seeds))})")
    for index, seed in enumerate(seeds):
        member = sweep.with_seed(project, seed, args.same_inputs)
        run_dir = shared(state, new_run_dir(member).with_name(f"{new_run_dir(member).name}-seed{seed}"))
        if main_process:
            sweep.join_sweep(sweep_dir, run_dir, seed, index, len(seeds))
            print(f"seed {seed} ({index + 1}/{len(seeds)}): run folder {run_dir}")
        metrics = run(member, run_dir, listeners=[ProgressPrinter()] if main_process and not args.quiet else [])
        if metrics is None:
            if main_process:
                print(f"stopped at seed {seed}; resume it with: ctxdistill run --resume {run_dir}")
            return 0
    if main_process:
        print(sweep.format_summary(sweep.summarize(sweep_dir)))
    return 0


def command_eval(args) -> int:
    from engine.run import reevaluate

    metrics = reevaluate(args.run_dir, listeners=[ProgressPrinter()])
    print(format_table(metrics))
    return 0


def command_export(args) -> int:
    from engine.runs.export import export_student

    print(f"exported {args.run_dir} to {export_student(args.run_dir, args.dest)}")
    return 0


def command_preview(args) -> int:
    from engine.project.loader import load_project
    from engine.preview import preview

    project = load_project(project_dir(args))
    names = [operation.name for operation in project.operations]
    if args.op is not None and args.op not in names:
        raise EngineError(f"--op {args.op!r}: no such operation (operations: {', '.join(names)})")
    for name in [args.op] if args.op else names:
        if project.combined:
            print(f"#### operation {name}")
        _print_preview(preview(project.for_operation(name), args.n))
    return 0


def _print_preview(items) -> None:
    for item in items:
        print("=" * 72)
        print(f"input: {json.dumps(item.input)}")
        for index, prompt in enumerate(item.ensemble_prompts[1:], 2):
            print(f"--- teacher prompt {index} of the ensemble\n{prompt}")
        print(f"--- teacher prompt ({item.teacher_tokens} tokens)\n{item.teacher_prompt}")
        print(f"--- student prompt ({item.student_tokens} tokens)\n{item.student_prompt}")
        print(f"--- teacher output\n{item.teacher_output}")
        answer = "(the extractor found no answer)" if item.answer is None else repr(item.answer)
        verdict = "" if item.label is None else ("  [match]" if item.answer == item.label else f"  [no match: label {item.label!r}]")
        print(f"--- extracted answer: {answer}{verdict}")


def command_init(args) -> int:
    from engine.project.scaffold import create_project

    folder = create_project(args.project_dir, args.template, model=args.model)
    print(f"created {folder / 'project.toml'} and {folder / 'tasks.py'} ({args.template})\n"
          f"next: ctxdistill preview {folder}   ctxdistill run {folder}   or open it with: ctxtui {folder}")
    return 0


# --- drawing ------------------------------------------------------------------

class ProgressPrinter:
    """Draws a progress bar and stage lines from the run's events (the same ones the TUI reads)."""

    def __init__(self, stream=sys.stderr, width: int = 30):
        self.stream = stream
        self.width = width
        self.interactive = stream.isatty()
        self.last_draw = 0.0

    def __call__(self, event: dict) -> None:
        kind = event["type"]
        if kind in ("progress", "train"):
            now = time.time()
            final = event["step"] >= event["total_steps"]
            if not final and now - self.last_draw < (0.1 if self.interactive else 5.0):
                return
            self.last_draw = now
            done = event["step"] / max(1, event["total_steps"])
            bar = "#" * int(done * self.width) + "-" * (self.width - int(done * self.width))
            figures = f"{event['step']}/{event['total_steps']} {event.get('unit', 'steps')}"
            if kind == "train":
                figures += f"  loss {event['loss']:.4f}  lr {event['lr']:.2e}  {event['tokens_per_s']:.0f} tok/s"
            eta = event.get("eta_s")
            figures += f"  {format_seconds(event.get('elapsed_s', 0))} elapsed" + (f", eta {format_seconds(eta)}" if eta is not None else "")
            line = f"[{event['stage']:<7}] [{bar}] {figures}"
            if self.interactive:
                self.stream.write("\r" + line[:160] + ("\n" if final else ""))
            else:
                self.stream.write(line + "\n")
        elif kind in ("status", "checkpoint", "error"):
            message = event.get("message") or f"checkpoint saved at step {event.get('step')}"
            self.stream.write(f"[{event['stage']:<7}] {message}\n")
        self.stream.flush()


def format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"


def format_table(metrics: dict) -> str:
    """The before/after table the run ends with: one block per stage and operation, then the overwrite matrix."""
    if not metrics.get("combined"):
        return format_operation(metrics)
    blocks = []
    for stage, figures in metrics["stages"].items():
        for operation, operation_metrics in figures["operations"].items():
            blocks.append(f"== stage {stage} · operation {operation}\n{format_operation(operation_metrics)}")
    blocks.append(format_matrix(metrics["matrix"]))
    return "\n\n".join(blocks)


def format_matrix(matrix: dict[str, dict[str, dict]]) -> str:
    """Rows: after each stage; columns: operations; cells: the student's first metric of that operation."""
    operations = list(dict.fromkeys(name for row in matrix.values() for name in row))
    metric = {name: next(iter(cell)) for row in matrix.values() for name, cell in row.items() if cell}
    width = max([12] + [len(name) + 2 for name in operations])
    used = ", ".join(dict.fromkeys(metric.values()))
    lines = [f"overwrite matrix ({used} of the student after each stage, per operation)",
             f"{'after stage':<24}" + "".join(f"{name:>{width}}" for name in operations)]
    for stage, row in matrix.items():
        cells = "".join(f"{row[name][metric[name]]:>{width}.3f}" if name in row and name in metric else f"{'-':>{width}}"
                        for name in operations)
        lines.append(f"{stage:<24}" + cells)
    return "\n".join(lines)


def format_operation(metrics: dict) -> str:
    """One operation's teacher / student before / student after table."""
    rows = [key for key in ("teacher", "teacher_single_mean", "student_before", "student_after",
                            "student_after_teacher_template") if key in metrics]
    rows += sorted(key for key in metrics if key.startswith("baseline_"))
    names = sorted({name for row in rows for name in metrics[row]})
    widths = [max(14, len(name) + 2) for name in names]  # a long metric name (`module:function`) keeps its column
    lines = [f"{'':<32}" + "".join(f"{name:>{width}}" for name, width in zip(names, widths))]
    for row in rows:
        lines.append(f"{row:<32}" + "".join(f"{metrics[row].get(name, float('nan')):>{width}.3f}"
                                            for name, width in zip(names, widths)))
    prompt, total, kl = metrics.get("prompt_tokens"), metrics.get("inference_tokens"), metrics.get("answer_kl")
    if prompt:
        lines.append(f"prompt tokens: teacher {prompt['teacher']}, student {prompt['student']} ({prompt['ratio']}x fewer)")
    if total:
        lines.append(f"inference tokens (prompt + generated): teacher {total['teacher']}, student {total['student']} ({total['ratio']}x fewer)")
    if kl and kl.get("before") is not None:
        lines.append(f"answer-token KL(teacher || student): before {kl['before']}, after {kl['after']}")
    if metrics.get("teacher_singles"):
        first = names[0]
        lines.append(f"single teachers ({first}), one per ensemble prompt: "
                     + ", ".join(f"{single.get(first, float('nan')):.3f}" for single in metrics["teacher_singles"])
                     + (" (the teacher row is the ensemble, greedy on their mean distribution)"
                        if metrics.get("teacher_decoding") == "ensemble-greedy" else " (the teacher row is prompt 0)"))
    if "baselines_budget" in metrics:
        lines.append(f"baselines trained with the {metrics['baselines_budget']} step budget")
    for method, chosen in metrics.get("baselines_selection", {}).items():
        lines.append(f"baseline {method}: best epoch {chosen['best_epoch']} of {chosen['epochs']} at lr "
                     f"{chosen['learning_rate']:g} (by {chosen['metric']} on these held-out inputs, as appendix B.5)")
    if "count" in metrics:
        lines.append(f"held-out inputs: {metrics['count']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
