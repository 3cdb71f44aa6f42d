"""Sample detail in columns with next/previous, and export of the table and the grid."""

from __future__ import annotations

import csv
import json

import pytest

from conftest import SAMPLES, write_run
from ctxtui.app import CtxApp
from ctxtui.screens.sample_detail import SampleDetailScreen, sample_kl

pytestmark = pytest.mark.anyio


async def test_detail_columns_step_and_export(project_dir):
    write_run(project_dir)
    app = CtxApp(project_dir, attach=False, start_mode="results")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        results = app.screen
        await pilot.press("f")  # student wrong: samples 1 and 3
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        detail = app.screen
        assert isinstance(detail, SampleDetailScreen) and detail.sample["index"] == 1
        titles = [str(widget.render()) for widget in detail.query(".column .role-title")]
        assert [title.split()[0:2] for title in titles] == [["teacher", "✓"], ["student", "before"], ["student", "after"]]
        assert len(detail.query(".column .prompt")) == 3
        await pilot.press("n")  # the next row the grid shows, not the next in the file
        await pilot.pause()
        assert app.screen.sample["index"] == 3
        await pilot.press("n")
        await pilot.pause()
        assert app.screen.sample["index"] == 1
        await pilot.press("escape", "x")
        await pilot.pause()
        written = results.last_export
    names = sorted(path.name for path in written)
    assert names == ["20260101T000000Z-demo-metrics.csv", "20260101T000000Z-demo-metrics.json",
                     "20260101T000000Z-demo-samples.csv", "20260101T000000Z-demo-samples.json"]
    folder = project_dir / "exports"
    rows = list(csv.DictReader(open(folder / "20260101T000000Z-demo-samples.csv")))
    assert [row["index"] for row in rows] == ["1", "3"] and rows[0]["student_after_output"] == "dgo"
    metrics = {row["metric"]: row for row in csv.DictReader(open(folder / "20260101T000000Z-demo-metrics.csv"))}
    assert float(metrics["exact_match"]["delta_after_minus_before"]) == pytest.approx(0.25)
    assert float(metrics["answer_kl"]["student_after"]) == 0.4
    assert [s["index"] for s in json.loads((folder / "20260101T000000Z-demo-samples.json").read_text())] == [1, 3]


def test_sample_kl_shown_when_recorded():
    assert sample_kl(SAMPLES[0]) is None
    assert sample_kl({**SAMPLES[0], "answer_kl": {"before": 1.5, "after": 0.5}}).endswith("(Δ after − before -1.0000)")


async def test_csv_export_gives_answer_kl_before_and_after_as_number_columns(project_dir):
    """Issue 20 item 14: each sample's answer KL is two numeric columns a spreadsheet can sort."""
    run_dir = write_run(project_dir)
    samples = [{**sample, "answer_kl": {"before": 1.5 + sample["index"], "after": 0.25}} for sample in SAMPLES]
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(sample) + "\n" for sample in samples))
    app = CtxApp(project_dir, attach=False, start_mode="results")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        await pilot.press("x")
        await pilot.pause()
    rows = list(csv.DictReader(open(project_dir / "exports" / "20260101T000000Z-demo-samples.csv")))
    assert len(rows) == 4 and "answer_kl" not in rows[0]
    assert [float(row["answer_kl_before"]) for row in rows] == [1.5, 2.5, 3.5, 4.5]
    assert {float(row["answer_kl_after"]) for row in rows} == {0.25}
