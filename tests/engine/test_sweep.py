"""Results over seeds (issue 25): `ctxdistill run PROJECT --seeds N` runs the project once per seed
and summarizes every figure as mean, min and max."""

from __future__ import annotations

import json

import pytest

from engine.cli import main
from engine.errors import EngineError
from engine.runs.sweep import parse_seeds
from engine_fixtures import write_project


def test_three_seeds_make_three_runs_and_a_summary_of_their_metrics(tmp_path, char_model_dir, capsys):
    project = write_project(tmp_path / "p", char_model_dir, max_steps=2, count=6, eval_count=3)
    assert main(["run", str(project), "--seeds", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    (sweep_dir,) = [path for path in (project / "runs").iterdir() if path.name.endswith("-seeds")]
    sweep = json.loads((sweep_dir / "sweep.json").read_text())
    assert sweep["seeds"] == [0, 1, 2] and len(sweep["runs"]) == 3
    metrics = [json.loads((tmp_path / member["run_dir"] / "metrics.json").read_text()) for member in sweep["runs"]]
    for index, member in enumerate(sweep["runs"]):  # each member knows its place in the sweep
        assert json.loads((tmp_path / member["run_dir"] / "sweep.json").read_text())["index"] == index + 1
    summary = json.loads((sweep_dir / "summary.json").read_text())
    after = summary["figures"]["student_after.rouge_l"]
    values = [m["student_after"]["rouge_l"] for m in metrics]
    assert after["count"] == 3 and after["mean"] == pytest.approx(sum(values) / 3, abs=1e-6)
    assert after["min"] == min(values) and after["max"] == max(values)
    assert "over 3 of 3 seeds (0, 1, 2): mean (min - max)" in out and "student_after.rouge_l" in out
    # The seeds reached the project: distill and inputs seeds differ between members.
    launched = [(tmp_path / member["run_dir"] / "project.toml").read_text() for member in sweep["runs"]]
    assert len(set(launched)) == 3


@pytest.mark.parametrize("text, message", [("0", "at least 1 seed"), ("-2", "at least 1 seed"),
                                           ("1,2,1", "seed 1 is listed twice"), ("x", "expected a count")])
def test_bad_seed_lists_are_one_clear_line(text, message):
    with pytest.raises(EngineError, match=message):
        parse_seeds(text, 0)
    assert parse_seeds("3", 10) == [10, 11, 12] and parse_seeds("4,7", 0) == [4, 7]


def test_seeds_with_resume_says_how_to_resume(tmp_path, char_model_dir, capsys):
    project = write_project(tmp_path / "p", char_model_dir)
    assert main(["run", "--resume", str(tmp_path), "--seeds", "2"]) == 2
    assert "resume a stopped member with `ctxdistill run --resume RUN_DIR`" in capsys.readouterr().err
